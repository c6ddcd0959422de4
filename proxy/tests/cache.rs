//! The response cache over real HTTP, in memory: a repeated deterministic request is answered
//! without an upstream call (streamed or not, across the two), the TTL ends it, request
//! headers bypass or refresh it, nondeterministic requests and failed, cut or errored
//! answers are never stored, hits are not charged tokens, and metrics count it all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const POLICY: &str = "route chat {\n  use a/m\n  cache for 10m\n}\n";

async fn setup(policy: &str) -> (switchyard_mock::MockServer, Proxy) {
    let a = mock("a").await;
    let proxy = start_proxy(snapshot(policy, vec![upstream("a", &a, &["m"])]), |_| {});
    (a, proxy)
}

/// A deterministic chat request.
fn req(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "x",
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
    })
}

async fn send(proxy: &Proxy, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap();
    Answer {
        status,
        headers,
        text,
    }
}

/// The text of a streamed answer, checking it is a complete, well-formed stream.
fn streamed_text(a: &Answer) -> String {
    let events = a.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        a.text
    );
    let mut text = String::new();
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert!(v.get("error").is_none(), "{}", a.text);
        if let Some(s) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(s);
        }
    }
    text
}

fn calls(m: &switchyard_mock::MockServer) -> usize {
    m.state().requests().len()
}

fn cache_header(a: &Answer) -> &str {
    a.header("x-switchyard-cache")
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_request_is_a_hit_without_an_upstream_call() {
    let (a, proxy) = setup(POLICY).await;
    let first = send(&proxy, &req("hello", false), &[]).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(cache_header(&first), "miss");
    let second = send(&proxy, &req("hello", false), &[]).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(cache_header(&second), "hit");
    assert_eq!(calls(&a), 1);
    assert_eq!(second.json(), first.json());
    assert_eq!(second.header("x-switchyard-route"), "chat");
    assert_eq!(second.header("x-switchyard-provider"), "a");
    assert_eq!(second.header("x-switchyard-model"), "m");
    assert_eq!(second.header("x-switchyard-attempts"), "");
    // Excluded fields (user, metadata) do not change the key; the model does.
    let mut other = req("hello", false);
    other["user"] = json!("someone-else");
    other["metadata"] = json!({"trace": "t-1"});
    assert_eq!(cache_header(&send(&proxy, &other, &[]).await), "hit");
    let mut other_model = req("hello", false);
    other_model["model"] = json!("y");
    assert_eq!(cache_header(&send(&proxy, &other_model, &[]).await), "miss");
    assert_eq!(calls(&a), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_answer_is_cached_once_complete_and_replayed_as_sse() {
    let (a, proxy) = setup(POLICY).await;
    let first = send(&proxy, &req("stream me", true), &[]).await;
    assert_eq!(cache_header(&first), "miss");
    let text = streamed_text(&first);
    assert!(!text.is_empty());
    let second = send(&proxy, &req("stream me", true), &[]).await;
    assert_eq!(cache_header(&second), "hit");
    assert!(
        second
            .header("content-type")
            .starts_with("text/event-stream")
    );
    assert_eq!(streamed_text(&second), text);
    let events = second.events();
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(calls(&a), 1);
    // The same answer for a non-streaming client, from the same entry.
    let whole = send(&proxy, &req("stream me", false), &[]).await;
    assert_eq!(cache_header(&whole), "hit");
    assert_eq!(whole.json()["choices"][0]["message"]["content"], text);
    assert_eq!(whole.json()["object"], "chat.completion");
    assert_eq!(calls(&a), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn non_streamed_answer_replays_to_a_streaming_client() {
    let (a, proxy) = setup(POLICY).await;
    let first = send(&proxy, &req("whole first", false), &[]).await;
    assert_eq!(cache_header(&first), "miss");
    let content = first.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let streamed = send(&proxy, &req("whole first", true), &[]).await;
    assert_eq!(cache_header(&streamed), "hit");
    assert_eq!(streamed_text(&streamed), content);
    assert_eq!(calls(&a), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_expire_after_the_ttl() {
    let (a, proxy) = setup("route chat {\n  use a/m\n  cache for 300ms\n}\n").await;
    assert_eq!(
        cache_header(&send(&proxy, &req("t", false), &[]).await),
        "miss"
    );
    assert_eq!(
        cache_header(&send(&proxy, &req("t", false), &[]).await),
        "hit"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cache_header(&send(&proxy, &req("t", false), &[]).await),
        "miss"
    );
    assert_eq!(calls(&a), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_store_bypasses_and_no_cache_refreshes() {
    let (a, proxy) = setup(POLICY).await;
    let no_store = [("cache-control", "no-store")];
    let r = send(&proxy, &req("h", false), &no_store).await;
    assert_eq!((r.status, cache_header(&r)), (200, "bypass"));
    // Nothing was stored.
    assert_eq!(
        cache_header(&send(&proxy, &req("h", false), &[]).await),
        "miss"
    );
    assert_eq!(
        cache_header(&send(&proxy, &req("h", false), &[]).await),
        "hit"
    );
    // no-store also skips the lookup.
    assert_eq!(
        cache_header(&send(&proxy, &req("h", false), &no_store).await),
        "bypass"
    );
    assert_eq!(calls(&a), 3);
    // no-cache goes upstream and stores the fresh answer.
    let r = send(&proxy, &req("h", false), &[("cache-control", "no-cache")]).await;
    assert_eq!((r.status, cache_header(&r)), (200, "miss"));
    assert_eq!(calls(&a), 4);
    assert_eq!(
        cache_header(&send(&proxy, &req("h", false), &[]).await),
        "hit"
    );
    assert_eq!(calls(&a), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_deterministic_or_allowed_requests_are_cached() {
    let (a, proxy) = setup(POLICY).await;
    let mut warm = req("n", false);
    warm["temperature"] = json!(0.7);
    let mut absent = req("n", false);
    absent.as_object_mut().unwrap().remove("temperature");
    for body in [&warm, &warm, &absent, &absent] {
        assert_eq!(cache_header(&send(&proxy, body, &[]).await), "bypass");
    }
    assert_eq!(calls(&a), 4);
    let mut many = req("n", false);
    many["n"] = json!(2);
    assert_eq!(cache_header(&send(&proxy, &many, &[]).await), "bypass");
    let allow = [("x-switchyard-cache", "allow")];
    assert_eq!(cache_header(&send(&proxy, &warm, &allow).await), "miss");
    assert_eq!(cache_header(&send(&proxy, &warm, &allow).await), "hit");
    assert_eq!(calls(&a), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_without_cache_say_nothing() {
    let (a, proxy) = setup("route chat {\n  use a/m\n}\n").await;
    for _ in 0..2 {
        let r = send(&proxy, &req("plain", false), &[]).await;
        assert_eq!(r.status, 200);
        assert!(r.headers.get("x-switchyard-cache").is_none());
    }
    assert_eq!(calls(&a), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_errors_are_not_cached() {
    let (a, proxy) = setup(POLICY).await;
    script(&a, json!([{"kind": "status", "status": 400}]));
    let r = send(&proxy, &req("e", false), &[]).await;
    assert_eq!((r.status, cache_header(&r)), (400, "miss"));
    script(&a, json!([{"kind": "status", "status": 503}]));
    let r = send(&proxy, &req("e", false), &[]).await;
    assert!(r.status >= 500, "{}", r.status);
    let r = send(&proxy, &req("e", false), &[]).await;
    assert_eq!((r.status, cache_header(&r)), (200, "miss"));
    assert_eq!(
        cache_header(&send(&proxy, &req("e", false), &[]).await),
        "hit"
    );
    assert_eq!(calls(&a), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn cut_or_errored_streams_are_never_cached() {
    let (a, proxy) = setup(POLICY).await;
    script(&a, json!([{"kind": "cut_stream", "after_chunks": 2}]));
    let r = send(&proxy, &req("cut", true), &[]).await;
    assert_eq!(cache_header(&r), "miss");
    assert!(!r.text.contains("[DONE]"), "{}", r.text);
    script(&a, json!([{"kind": "stream_error", "after_chunks": 2}]));
    let r = send(&proxy, &req("cut", true), &[]).await;
    assert_eq!(cache_header(&r), "miss");
    assert!(r.text.contains("\"error\""), "{}", r.text);
    // Both were misses that stored nothing: the next one goes upstream too.
    let r = send(&proxy, &req("cut", true), &[]).await;
    assert_eq!(cache_header(&r), "miss");
    let full = streamed_text(&r);
    assert_eq!(calls(&a), 3);
    let r = send(&proxy, &req("cut", true), &[]).await;
    assert_eq!(cache_header(&r), "hit");
    assert_eq!(streamed_text(&r), full);
    assert_eq!(calls(&a), 3);
    let metrics = get(&proxy.admin_url, "/metrics").await.text;
    assert!(
        metrics.contains(r#"switchyard_cache_stores_total{result="failed"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"switchyard_cache_stores_total{result="stored"} 1"#));
}

#[tokio::test(flavor = "multi_thread")]
async fn hits_cost_no_tokens_and_are_counted_in_metrics() {
    let policy = format!(
        "{POLICY}\nbudget tokens {{\n  for all\n  limit 1000000 tokens per day\n}}\n\nbudget calls {{\n  for all\n  limit 1000 requests per day\n}}\n"
    );
    let (a, proxy) = setup(&policy).await;
    send(&proxy, &req("b", false), &[]).await;
    let spent = |v: &Value, budget: &str| {
        v["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["budget"] == budget)
            .map(|b| b["limits"][0]["spent"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("{budget} in {v}"))
    };
    // Settlement runs after the response went out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = get(&proxy.admin_url, "/admin/budgets").await.json();
    let tokens = spent(&before, "tokens");
    assert!(tokens > 0, "{before}");
    let hit = send(&proxy, &req("b", false), &[]).await;
    assert_eq!(cache_header(&hit), "hit");
    assert_eq!(calls(&a), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = get(&proxy.admin_url, "/admin/budgets").await.json();
    assert_eq!(spent(&after, "tokens"), tokens, "{after}");
    assert_eq!(spent(&after, "calls"), 2, "{after}");
    let usage = &hit.json()["usage"];
    let metrics = get(&proxy.admin_url, "/metrics").await.text;
    for line in [
        r#"switchyard_cache_requests_total{result="hit",route="chat"} 1"#.to_string(),
        r#"switchyard_cache_requests_total{result="miss",route="chat"} 1"#.to_string(),
        format!(
            r#"switchyard_cache_saved_tokens_total{{direction="output"}} {}"#,
            usage["completion_tokens"]
        ),
        format!(
            r#"switchyard_cache_saved_tokens_total{{direction="input"}} {}"#,
            usage["prompt_tokens"]
        ),
    ] {
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    assert!(metrics.contains("switchyard_cache_saved_micro_usd_total "));
    assert!(!metrics.contains("switchyard_cache_memory_bytes 0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_messages_clients_are_served_from_the_cache() {
    let (a, proxy) = setup(POLICY).await;
    let body = |stream: bool| {
        json!({
            "model": "x",
            "max_tokens": 50,
            "temperature": 0,
            "stream": stream,
            "messages": [{"role": "user", "content": "hello from an Anthropic SDK"}],
        })
    };
    let first = post(&proxy, "/v1/messages", &body(false)).await;
    assert_eq!(
        (first.status, cache_header(&first)),
        (200, "miss"),
        "{}",
        first.text
    );
    let second = post(&proxy, "/v1/messages", &body(false)).await;
    assert_eq!(cache_header(&second), "hit");
    assert_eq!(second.json()["type"], "message");
    assert_eq!(second.json()["content"], first.json()["content"]);
    assert_eq!(second.json()["usage"], first.json()["usage"]);
    // A streaming Messages client gets Anthropic events from the same entry.
    let streamed = post(&proxy, "/v1/messages", &body(true)).await;
    assert_eq!(cache_header(&streamed), "hit");
    let text: String = streamed
        .events()
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|v| v["type"] == "content_block_delta")
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, first.json()["content"][0]["text"].as_str().unwrap());
    assert!(
        streamed.text.contains("event: message_stop"),
        "{}",
        streamed.text
    );
    assert_eq!(calls(&a), 1);
    // An OpenAI client with the same conversation does not share the Messages entry.
    let openai = send(&proxy, &req("hello from an Anthropic SDK", false), &[]).await;
    assert_eq!(cache_header(&openai), "miss");
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_passed_through_natively_are_not_stored() {
    let a = mock("a").await;
    let target = provider(
        "a",
        switchyard_dsl::ir::ProviderKind::Anthropic,
        Some(format!("{}/v1", a.url())),
        &["m"],
    );
    // A budget on: streams go through the meter, which the capture must see past.
    let policy =
        format!("{POLICY}\nbudget all {{\n  for all\n  limit 1000000 tokens per day\n}}\n");
    let proxy = start_proxy(snapshot(&policy, vec![target]), |_| {});
    for stream in [false, false, true, true] {
        let body = json!({"model": "x", "max_tokens": 50, "temperature": 0, "stream": stream,
            "messages": [{"role": "user", "content": "native"}]});
        let r = post(&proxy, "/v1/messages", &body).await;
        assert_eq!((r.status, cache_header(&r)), (200, "miss"), "{}", r.text);
    }
    assert_eq!(calls(&a), 4);
    // The same target answering an OpenAI client is translated, hence stored.
    for expected in ["miss", "hit"] {
        let r = send(&proxy, &req("native", false), &[]).await;
        assert_eq!((r.status, cache_header(&r)), (200, expected), "{}", r.text);
    }
    let metrics = get(&proxy.admin_url, "/metrics").await.text;
    assert!(
        metrics.contains(r#"switchyard_cache_stores_total{result="native"} 4"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_from_a_budget_downgrade_are_not_stored() {
    let a = mock("a").await;
    let policy = format!(
        "{POLICY}\nbudget one {{\n  for all\n  limit 1 requests per day\n  on exhausted downgrade to a/small\n}}\n"
    );
    let proxy = start_proxy(
        snapshot(&policy, vec![upstream("a", &a, &["m", "small"])]),
        |_| {},
    );
    assert_eq!(
        cache_header(&send(&proxy, &req("first", false), &[]).await),
        "miss"
    );
    for _ in 0..2 {
        let r = send(&proxy, &req("second", false), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-switchyard-model"), "small");
        assert_eq!(cache_header(&r), "miss");
    }
    assert_eq!(calls(&a), 3);
    // The route's own answer, stored before the budget ran out, is still a hit.
    assert_eq!(
        cache_header(&send(&proxy, &req("first", false), &[]).await),
        "hit"
    );
    let metrics = get(&proxy.admin_url, "/metrics").await.text;
    assert!(metrics.contains(r#"switchyard_cache_stores_total{result="downgraded"} 2"#));
}
