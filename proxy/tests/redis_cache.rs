//! The response cache in a real `redis-server`: two proxies share it (what one stored, the
//! other answers as a hit), and Redis unreachable or killed makes lookups misses, never
//! errors. Needs `redis-server` on the PATH; fails without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::redis::Redis;
use common::*;
use serde_json::{Value, json};

const POLICY: &str = "route chat {\n  use a/m\n  cache for 10m\n}\n";

fn req(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "x",
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "stream": stream,
    })
}

fn proxy_on(mock: &switchyard_mock::MockServer, redis_url: &str) -> Proxy {
    let url = redis_url.to_owned();
    start_proxy(
        snapshot(POLICY, vec![upstream("a", mock, &["m"])]),
        move |s| s.cache_redis_url = Some(url),
    )
}

fn calls(m: &switchyard_mock::MockServer) -> usize {
    m.state().requests().len()
}

/// Waits until `proxy` has stored `n` answers: a store happens after the answer reached the
/// client, so a client can be faster than the `SET`.
async fn stored(proxy: &Proxy, n: usize) {
    let line = format!("switchyard_cache_stores_total{{result=\"stored\"}} {n}");
    let start = std::time::Instant::now();
    while !get(&proxy.admin_url, "/metrics").await.text.contains(&line) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{line} never appeared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_proxies_share_one_redis() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), free_port());
    let a = mock("a").await;
    let (one, two) = (proxy_on(&a, &redis.url()), proxy_on(&a, &redis.url()));
    let first = post(&one, "/v1/chat/completions", &req("shared", false)).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("x-switchyard-cache"), "miss");
    stored(&one, 1).await;
    let second = post(&two, "/v1/chat/completions", &req("shared", false)).await;
    assert_eq!(
        second.header("x-switchyard-cache"),
        "hit",
        "{}",
        second.text
    );
    assert_eq!(second.json(), first.json());
    assert_eq!(second.header("x-switchyard-provider"), "a");
    // A stream stored by the second proxy is a hit on the first, replayed as SSE.
    let streamed = post(&two, "/v1/chat/completions", &req("streamed", true)).await;
    assert_eq!(streamed.header("x-switchyard-cache"), "miss");
    stored(&two, 1).await;
    let replayed = post(&one, "/v1/chat/completions", &req("streamed", true)).await;
    assert_eq!(replayed.header("x-switchyard-cache"), "hit");
    assert_eq!(replayed.events().last().map(String::as_str), Some("[DONE]"));
    assert_eq!(calls(&a), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_trouble_is_a_miss_not_an_error() {
    let a = mock("a").await;
    // Nothing listens here.
    let nowhere = proxy_on(&a, &format!("redis://127.0.0.1:{}/", free_port()));
    for _ in 0..2 {
        let r = post(&nowhere, "/v1/chat/completions", &req("down", false)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-switchyard-cache"), "miss");
    }
    assert_eq!(calls(&a), 2);
    let metrics = get(&nowhere.admin_url, "/metrics").await.text;
    assert!(
        metrics.contains("switchyard_cache_store_errors_total{op=\"get\"}"),
        "{metrics}"
    );
    // Redis killed while in use: hits turn into misses, still answered.
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path(), free_port());
    let proxy = proxy_on(&a, &redis.url());
    post(&proxy, "/v1/chat/completions", &req("killed", false)).await;
    let r = post(&proxy, "/v1/chat/completions", &req("killed", false)).await;
    assert_eq!(r.header("x-switchyard-cache"), "hit");
    redis.kill();
    for stream in [false, true] {
        let r = post(&proxy, "/v1/chat/completions", &req("killed", stream)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-switchyard-cache"), "miss");
    }
    assert_eq!(calls(&a), 5);
}
