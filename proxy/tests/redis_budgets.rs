//! Three proxy processes sharing one real `redis-server`: concurrent clients against one
//! limit, a check of the overspend bound and of exact accounting afterwards, a proxy restart
//! that loses no recorded spend, and Redis killed mid-test (fail-open keeps serving with
//! local accounting, fail-closed answers 503, both recover when Redis returns).
//!
//! Needs `redis-server` on the PATH (Debian package `redis-server`); fails without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod quota_support;
#[path = "common/redis.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quota_support::*;
use redis_server::Redis;
use serde_json::{Value, json};

const LIMIT: u64 = 3_000;
const MAX_TOKENS: u64 = 40;

fn request() -> Value {
    json!({
        "model": "gpt",
        "messages": [{"role": "user", "content": "Tell me about rail yards."}],
        "max_tokens": MAX_TOKENS,
    })
}

/// `total_tokens` spent in the shared budget, from one proxy's admin view.
async fn spent(proxy: &Proxy) -> (i64, Value) {
    let v = budgets(proxy).await;
    let row = v["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["budget"] == "shared")
        .cloned()
        .expect("shared budget row");
    (row["limits"][0]["spent"].as_i64().unwrap(), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_one_limit_within_the_bound() {
    // Completions longer than `max_tokens`: the mock stops at the cap, so usage is close to
    // the reservation and the counter really crosses the limit.
    let up = mock(200).await;
    let dir = folder(
        &up,
        &format!(
            "budget shared {{\n  for all\n  limit {LIMIT} tokens per day\n}}\n\nbudget per-key {{\n  for each key\n  limit 1000000 requests per day\n}}"
        ),
    );
    let mut redis = Redis::start(dir.path(), free_port());
    let url = redis.url();
    let open = ["--redis-url", &url, "--redis-failure", "fail-open"];
    let closed = ["--redis-url", &url, "--redis-failure", "fail-closed"];
    let mut proxies = vec![
        Arc::new(Proxy::start(dir.path(), &open)),
        Arc::new(Proxy::start(dir.path(), &open)),
        Arc::new(Proxy::start(dir.path(), &closed)),
    ];

    // 24 concurrent clients, spread over the three replicas, until every one is refused.
    let used = Arc::new(AtomicU64::new(0));
    let max_reservation = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..24 {
        let proxy = Arc::clone(&proxies[c % 3]);
        let (used, served, max_res) = (
            Arc::clone(&used),
            Arc::clone(&served),
            Arc::clone(&max_reservation),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let a = chat(&proxy, Some("sk-alpha-0123456789"), request()).await;
                match a.status {
                    200 => {
                        let u = &a.json()["usage"];
                        let total = u["total_tokens"].as_u64().unwrap();
                        used.fetch_add(total, Ordering::SeqCst);
                        served.fetch_add(1, Ordering::SeqCst);
                        // What the proxy reserved: its prompt estimate (body bytes / 4)
                        // plus max_tokens.
                        let body = serde_json::to_vec(&request()).unwrap();
                        max_res.fetch_max(body.len() as u64 / 4 + MAX_TOKENS, Ordering::SeqCst);
                    }
                    429 => {
                        assert_eq!(a.json()["error"]["code"], "insufficient_quota");
                        return;
                    }
                    s => panic!("unexpected {s}: {}", a.text),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let used = used.load(Ordering::SeqCst);
    let served = served.load(Ordering::SeqCst);
    let max_res = max_reservation.load(Ordering::SeqCst);
    // The bound (proxy/src/quota/README.md): every request used no more than it reserved,
    // so the total is past the limit by less than the one reservation that crossed it, and
    // certainly by no more than the reservations in flight then (at most one per client).
    assert!(used < LIMIT + max_res, "{used} >= {LIMIT} + {max_res}");
    assert!(used <= LIMIT + 24 * max_res);
    // Every reservation is settled to the provider's usage: Redis holds exactly what the
    // clients were billed, whichever replica served them, and it is near the limit.
    // (Settlement runs just after a response ends: give the last ones time, generously on a
    // loaded machine.)
    let mut recorded = spent(&proxies[0]).await.0;
    for _ in 0..400 {
        if recorded as u64 == used {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        recorded = spent(&proxies[0]).await.0;
    }
    assert_eq!(recorded as u64, used, "{served} requests");
    assert!(used + max_res >= LIMIT, "stopped early: {used}");
    for p in &proxies {
        assert_eq!(spent(p).await.0, recorded);
    }
    eprintln!("served {served} requests, {used} tokens of {LIMIT} (largest reservation {max_res})");

    // Store latency as the proxies measured it.
    let metrics = reqwest::get(format!("{}/metrics", proxies[0].admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let read = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(name) && l.contains("store=\"redis\"") && l.contains("op=\"reserve\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let (sum, count) = (
        read("switchyard_quota_store_seconds_sum"),
        read("switchyard_quota_store_seconds_count"),
    );
    assert!(count > 0.0, "no redis reservations measured");
    eprintln!(
        "redis reserve: mean {:.3} ms over {count} calls",
        sum / count * 1e3
    );

    // Restart a replica: the spend lives in Redis, nothing is lost and the limit holds.
    let p = Arc::try_unwrap(proxies.remove(0)).ok().expect("only owner");
    drop(p);
    let restarted = Arc::new(Proxy::start(dir.path(), &open));
    let (after_restart, v) = spent(&restarted).await;
    assert_eq!(after_restart, recorded);
    // Per-key scopes come from Redis too: this replica has not served `alpha` yet.
    let alpha = v["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["budget"] == "per-key" && r["scope"] == "key=alpha")
        .unwrap_or_else(|| panic!("no per-key row for alpha: {v}"));
    assert_eq!(alpha["limits"][0]["spent"].as_u64(), Some(served));
    let a = chat(&restarted, Some("sk-alpha-0123456789"), request()).await;
    assert_eq!(a.status, 429, "{}", a.text);
    proxies.insert(0, restarted);

    // Redis goes away while clients are sending: every answer is a proper one (429 from
    // the exhausted budget before, then 200 from fail-open replicas counting locally and
    // 503 from the fail-closed one); no request hangs past the bound, nothing panics.
    let stop = Instant::now() + Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for (i, p) in proxies.iter().enumerate() {
        for _ in 0..2 {
            let p = Arc::clone(p);
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                while Instant::now() < stop {
                    let t = Instant::now();
                    let a = chat(&p, Some("sk-bravo-0123456789"), request()).await;
                    assert!(
                        t.elapsed() < Duration::from_secs(2),
                        "slow: {:?}",
                        t.elapsed()
                    );
                    seen.push(a.status);
                }
                (i, seen)
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    redis.kill();
    for t in tasks {
        let (i, seen) = t.await.unwrap();
        let allowed: &[u16] = if i == 2 { &[429, 503] } else { &[429, 200] };
        assert!(
            seen.iter().all(|s| allowed.contains(s)),
            "replica {i}: {seen:?}"
        );
        assert!(
            seen.iter().any(|s| *s != 429),
            "replica {i} never noticed: {seen:?}"
        );
    }
    let a = chat(&proxies[2], Some("sk-alpha-0123456789"), request()).await;
    assert_eq!(a.status, 503, "fail-closed: {}", a.text);
    assert_eq!(a.json()["error"]["code"], "quota_store_unavailable");
    assert_eq!(a.header("retry-after"), "1");
    let (_, v) = spent(&proxies[1]).await;
    assert_eq!(v["store"], "memory");

    // Redis returns (empty: no persistence in this test); both modes recover.
    let _redis = Redis::start(dir.path(), redis.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = chat(&proxies[2], Some("sk-alpha-0123456789"), request()).await;
        if a.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fail-closed never recovered: {}",
            a.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (after, v) = spent(&proxies[2]).await;
    assert_eq!(v["store"], "redis");
    assert!(after > 0);
    for p in &mut proxies {
        let p = Arc::get_mut(p).expect("only owner");
        assert!(p.child.try_wait().unwrap().is_none(), "a proxy exited");
        assert!(!p.log().contains("panicked"), "{}", p.log());
    }
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
    (at(0.5), at(0.99), at(1.0))
}

/// What a reservation costs: the Redis script against a local `redis-server` next to the
/// in-memory store, three counters per request (a budget with three limits), sequential
/// calls after a warm-up. Printed for BENCHMARKS.md; the assertion is only the 100 ms bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_overhead_is_bounded() {
    use switchyard_proxy::quota::redis::RedisStore;
    use switchyard_proxy::quota::store::{CounterOp, MemoryStore};
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), free_port());
    let store = RedisStore::new(&redis.url()).unwrap();
    let memory = MemoryStore::default();
    let now = switchyard_proxy::clock::unix_secs();
    let ops: Vec<CounterOp> = ["requests", "total_tokens", "micro_usd"]
        .iter()
        .map(|m| CounterOp {
            key: format!("bench|global|{m}|day|0"),
            amount: 1,
            limit: Some(i64::MAX),
            expire_at: now + 3600,
        })
        .collect();
    for _ in 0..100 {
        store.reserve(&ops).await.unwrap();
    }
    let (mut shared, mut local) = (Vec::new(), Vec::new());
    for _ in 0..2_000 {
        let t = Instant::now();
        store.reserve(&ops).await.unwrap();
        shared.push(t.elapsed());
        let t = Instant::now();
        memory.reserve(&ops, now);
        local.push(t.elapsed());
    }
    let (p50, p99, max) = percentiles(shared);
    eprintln!("redis reserve (3 counters): p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms");
    let (m50, m99, mmax) = percentiles(local);
    eprintln!("memory reserve (3 counters): p50 {m50:.4} ms, p99 {m99:.4} ms, max {mmax:.4} ms");
    assert!(max < 100.0 + 50.0, "a reservation took {max} ms");
}
