//! Latency-aware routing over real HTTP, with mock targets whose latency changes mid-test:
//! a target whose p95 climbs past a trigger's threshold leaves rotation within its window
//! and returns once it recovers; a first-token deadline fails over before the first byte;
//! a hedge wins against a stalled target and the stalled connection is closed; `fastest of`
//! moves traffic to the measured fastest member.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use switchyard_mock::{MockServer, Script};

fn seen(mock: &MockServer) -> usize {
    mock.state().requests().len()
}

/// Waits up to 3 s for the mock's request `index` (0-based) to be marked cancelled.
async fn closed_by_client(mock: &MockServer, index: usize) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        if mock
            .state()
            .requests()
            .get(index)
            .is_some_and(|r| r.cancelled)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn target_view(proxy: &Proxy, target: &str) -> Value {
    let all: Value = get(&proxy.admin_url, "/admin/targets").await.json();
    all["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == target)
        .cloned()
        .unwrap_or_else(|| panic!("{target} not in {all}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_p95_leaves_rotation_within_its_window_and_returns_after_recovery() {
    let policy = r#"
route chat {
  use a/m
  failover to b/m when status 5xx or p95(latency) > 300ms over 2s min_samples 5
}
"#;
    let (a, b, proxy) = pair(policy).await;
    for _ in 0..10 {
        let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
        assert_eq!(r.header("x-switchyard-provider"), "a", "{}", r.text);
    }
    assert_eq!(target_view(&proxy, "a/m").await["state"], "healthy");

    // `a` slows down to 450 ms: once its p95 over the window passes 300 ms (with 10 fast
    // samples in the window that takes 2 slow ones), requests go straight to `b`.
    behave(&a, json!({"latency_ms": 450}));
    let mut slow = 0;
    let skipped = loop {
        let before = seen(&a);
        let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if seen(&a) == before {
            break r;
        }
        slow += 1;
        assert!(slow <= 4, "a still in rotation after {slow} slow answers");
    };
    assert_eq!(skipped.header("x-switchyard-provider"), "b");
    let why = skipped.header("x-switchyard-failover");
    assert!(
        why.starts_with("a/m: degraded, p95(latency)") && why.contains("> 300ms over 2s"),
        "{why}"
    );
    let view = target_view(&proxy, "a/m").await;
    assert_eq!(view["state"], "degraded", "{view}");
    assert!(
        view["routes"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("p95(latency)"),
        "{view}"
    );
    let window = view["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window_ms"] == 2000)
        .cloned()
        .unwrap_or_else(|| panic!("no 2s window in {view}"));
    assert!(
        window["total"]["p95_ms"].as_f64().unwrap() > 300.0,
        "{view}"
    );

    // Out of rotation: over the next second `a` sees at most its probe requests (one per
    // window / min_samples = 400 ms), `b` the rest.
    let (a_before, b_before) = (seen(&a), seen(&b));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (to_a, to_b) = (seen(&a) - a_before, seen(&b) - b_before);
    assert!(to_a <= 4, "a got {to_a} requests while degraded");
    assert!(to_b >= 10, "b got only {to_b}");

    // `a` recovers: probes measure it fast, the slow samples leave the 2 s window, and it is
    // back in rotation (five answers from `a` in a row).
    behave(&a, json!({"latency_ms": 0}));
    let start = Instant::now();
    let mut in_a_row = 0;
    while in_a_row < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "a never came back: {}",
            target_view(&proxy, "a/m").await
        );
        let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
        if r.header("x-switchyard-provider") == "a" {
            in_a_row += 1;
        } else {
            in_a_row = 0;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(target_view(&proxy, "a/m").await["state"], "healthy");
    let metrics = get(&proxy.admin_url, "/metrics").await.text;
    for state in ["degraded", "healthy"] {
        let series = format!(
            "switchyard_target_state_changes_total{{route=\"chat\",state=\"{state}\",target=\"a/m\"}}"
        );
        assert!(metrics.contains(&series), "{series} missing");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn first_token_deadline_fails_over_before_the_first_byte() {
    let policy = "route chat {\n  use a/m\n  failover to b/m\n  timeout first_token 250ms\n}\n";
    let (a, b, proxy) = pair(policy).await;
    let r = post(&proxy, "/v1/chat/completions", &chat("m", true)).await;
    assert_eq!(r.header("x-switchyard-provider"), "a");
    // `a` now sends its headers at once but its first token only after 3 s.
    behave(&a, json!({"ttft_ms": 3000}));
    let start = Instant::now();
    let r = post(&proxy, "/v1/chat/completions", &chat("m", true)).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-switchyard-provider"), "b", "{}", r.text);
    assert_eq!(r.events().last().map(String::as_str), Some("[DONE]"));
    let why = r.header("x-switchyard-failover");
    assert!(
        why.contains("a/m: ") && why.contains("first token"),
        "{why}"
    );
    assert_eq!(seen(&b), 1);
    assert!(
        closed_by_client(&a, 1).await,
        "the slow stream's connection stayed open"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hedge_wins_against_a_stalled_target_and_closes_it() {
    let policy = "route chat {\n  use a/m\n  failover to b/m\n  hedge after 150ms\n}\n";
    let (a, b, proxy) = pair(policy).await;
    // A stream: `a` never answers, the hedge to `b` does.
    script(&a, json!([{"kind": "stall", "forever": true}]));
    let start = Instant::now();
    let r = post(&proxy, "/v1/chat/completions", &chat("m", true)).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-switchyard-provider"), "b");
    assert_eq!(r.header("x-switchyard-attempts"), "2");
    assert_eq!(
        r.header("x-switchyard-hedged"),
        "b/m answered first; hedge sent to b/m after 150ms"
    );
    assert_eq!(r.events().last().map(String::as_str), Some("[DONE]"));
    assert!(
        closed_by_client(&a, 0).await,
        "the stalled connection stayed open"
    );

    // Not streamed: `a` takes 2 s for the whole answer, the hedge wins again.
    behave(&a, json!({"latency_ms": 2000}));
    let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(r.header("x-switchyard-provider"), "b", "{}", r.text);
    assert!(
        r.header("x-switchyard-hedged")
            .starts_with("b/m answered first")
    );
    assert!(closed_by_client(&a, 1).await);

    // `a` answers well within the hedge delay: no hedge is sent.
    behave(&a, json!({"latency_ms": 0}));
    let b_before = seen(&b);
    let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(r.header("x-switchyard-provider"), "a");
    assert_eq!(r.header("x-switchyard-hedged"), "");
    assert_eq!(seen(&b), b_before);

    // A request the provider stores is never sent twice, however slow.
    behave(&a, json!({"latency_ms": 500}));
    let mut body = chat("m", false);
    body["store"] = json!(true);
    let r = post(&proxy, "/v1/chat/completions", &body).await;
    assert_eq!(r.header("x-switchyard-provider"), "a", "{}", r.text);
    assert_eq!(r.header("x-switchyard-hedged"), "");
    assert_eq!(seen(&b), b_before);

    let metrics = get(&proxy.admin_url, "/metrics").await.text;
    assert!(
        metrics.contains("switchyard_hedged_requests_total{route=\"chat\",winner=\"hedge\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "switchyard_upstream_attempts_total{outcome=\"hedge_cancelled\",provider=\"a\",route=\"chat\"} 2"
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn fastest_moves_traffic_to_the_measured_fastest_member() {
    let policy = "route chat {\n  fastest of a/m, b/m by p50(latency) explore 20%\n}\n";
    let (a, b, proxy) = pair(policy).await;
    behave(&a, json!({"latency_ms": 30}));
    // Until `b` is measured (5 samples, via the 20% exploration share: all but certain within
    // the first 80 requests) the list order holds; then `b`, the faster, takes all but the
    // exploration share (about 40 of the last 50; 30 is 3.5 standard deviations below).
    let mut last = Vec::new();
    for i in 0..130 {
        let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if i >= 80 {
            last.push(r.header("x-switchyard-provider").to_owned());
        }
    }
    let to_b = last.iter().filter(|p| *p == "b").count();
    assert!(to_b >= 30, "b served {to_b} of the last 50: {last:?}");
    assert!(seen(&a) > 0 && seen(&b) > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn total_deadline_ends_the_request_cleanly() {
    let policy = "route chat {\n  use a/m\n  failover to b/m\n  timeout total 600ms\n}\n";
    let (a, b, proxy) = pair(policy).await;
    // A stream that starts at once but would take 3 s: cut at the deadline with an error
    // event, never a `[DONE]`, and the upstream connection closed.
    behave(&a, json!({"tokens_per_second": 5.0}));
    let start = Instant::now();
    let r = post(&proxy, "/v1/chat/completions", &chat("m", true)).await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(r.status, 200);
    let events = r.events();
    assert!(!events.iter().any(|e| e == "[DONE]"), "{}", r.text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("total deadline"),
        "{last}"
    );
    assert!(closed_by_client(&a, 0).await);
    // Not streamed, and every candidate too slow: 504 once the deadline passes, not later.
    behave(&a, json!({"tokens_per_second": 0.0, "latency_ms": 3000}));
    behave(&b, json!({"latency_ms": 3000}));
    let start = Instant::now();
    let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(r.status, 504, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");
}

fn is_check(r: &switchyard_mock::RecordedRequest) -> bool {
    r.body["max_tokens"] == 1 && r.body["messages"][0]["content"] == "ping"
}

fn client_requests(mock: &MockServer) -> usize {
    mock.state()
        .requests()
        .iter()
        .filter(|r| !is_check(r))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_readmit_an_ejected_target_and_measure_a_slow_one() {
    let (a, b) = (mock("a").await, mock("b").await);
    let mut checked = upstream("a", &a, &["m"]);
    checked.health_check = Some(switchyard_dsl::ir::HealthCheck {
        interval_ms: 150,
        timeout_ms: 3_000,
    });
    let catalogue = vec![checked, upstream("b", &b, &["m"])];
    let policy = "route chat {\n  use a/m\n  failover to b/m when status 5xx or p95(ttft) > 300ms over 2s min_samples 3\n}\n";
    let proxy = start_proxy(snapshot(policy, catalogue), |_| {});

    // Checks run on their own: streamed one-token completions.
    let start = Instant::now();
    while !a.state().requests().iter().any(is_check) {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "no health check sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.state().requests()[0].body["stream"], true);

    // `a` fails everything: the failing checks alone eject it.
    let fail: Script =
        serde_json::from_value(json!({"default": {"kind": "status", "status": 500}})).unwrap();
    a.state().apply(fail);
    let start = Instant::now();
    while target_view(&proxy, "a/m").await["state"] != "ejected" {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "a was never ejected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(r.header("x-switchyard-provider"), "b", "{}", r.text);
    // `a` recovers: the next passing check readmits it long before the 10 s cooldown ends.
    let clear: Script = serde_json::from_value(json!({"default": {"kind": "none"}})).unwrap();
    a.state().apply(clear);
    let start = Instant::now();
    loop {
        let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
        if r.header("x-switchyard-provider") == "a" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "a not readmitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // `a` slows down: the checks' time to first token degrades it without client traffic,
    // and no client request is used as a probe while it is out.
    behave(&a, json!({"latency_ms": 500}));
    let start = Instant::now();
    while target_view(&proxy, "a/m").await["state"] != "degraded" {
        assert!(start.elapsed() < Duration::from_secs(5), "a never degraded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = client_requests(&a);
    for _ in 0..10 {
        let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
        assert_eq!(r.header("x-switchyard-provider"), "b", "{}", r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client_requests(&a), before, "a client request probed a");
    // Fast again: the checks bring it back once the slow samples leave the window.
    behave(&a, json!({"latency_ms": 0}));
    let start = Instant::now();
    loop {
        let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
        if r.header("x-switchyard-provider") == "a" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "a never came back: {}",
            target_view(&proxy, "a/m").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
