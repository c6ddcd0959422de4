//! Faults before and after the first byte: failover on 503, on 429 with `Retry-After`, on a
//! connection reset and on a stall past the first-token deadline; streams cut or malformed
//! mid-way end with an error event and no `[DONE]`; 502/503/504 when everything failed;
//! provider 4xx passed through; passive ejection of a failing target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn two(primary_extra: &str) -> String {
    format!(
        r#"
route chat {{
  use a/m
  failover to b/m
  {primary_extra}
}}
"#
    )
}

fn served_by(a: &Answer, provider: &str, attempts: &str) {
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-switchyard-provider"), provider, "{}", a.text);
    assert_eq!(a.header("x-switchyard-attempts"), attempts);
}

#[tokio::test(flavor = "multi_thread")]
async fn fails_over_on_503() {
    let (a, b, proxy) = pair(&two("")).await;
    script(&a, json!([{"kind": "status", "status": 503}]));
    let r = post(&proxy, "/v1/chat/completions", &chat("x", false)).await;
    served_by(&r, "b", "2");
    assert_eq!(
        (a.state().requests().len(), b.state().requests().len()),
        (1, 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_after_429_honouring_retry_after_then_fails_over() {
    let (a, b, proxy) = pair(&two("retry 1 backoff 10ms..20ms")).await;
    script(
        &a,
        json!([{"kind": "rate_limit", "retry_after": 1, "times": 2}]),
    );
    let start = Instant::now();
    let r = post(&proxy, "/v1/chat/completions", &chat("x", false)).await;
    served_by(&r, "b", "3");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "waited for Retry-After"
    );
    assert_eq!(
        (a.state().requests().len(), b.state().requests().len()),
        (2, 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_succeeds_on_the_same_target() {
    let (a, b, proxy) = pair(&two("retry 2 backoff 10ms..20ms")).await;
    script(&a, json!([{"kind": "status", "status": 500}]));
    let r = post(&proxy, "/v1/chat/completions", &chat("x", true)).await;
    served_by(&r, "a", "2");
    assert_eq!(r.events().last().map(String::as_str), Some("[DONE]"));
    assert!(b.state().requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn fails_over_on_connection_reset() {
    let (a, _b, proxy) = pair(&two("")).await;
    script(&a, json!([{"kind": "reset"}]));
    let r = post(&proxy, "/v1/chat/completions", &chat("x", true)).await;
    served_by(&r, "b", "2");
    assert_eq!(r.events().last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn fails_over_on_a_stall_past_first_token() {
    let (a, _b, proxy) = pair(&two("timeout first_token 300ms")).await;
    script(&a, json!([{"kind": "stall", "ms": 5000}]));
    let start = Instant::now();
    let r = post(&proxy, "/v1/chat/completions", &chat("x", true)).await;
    served_by(&r, "b", "2");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "did not wait for the stall"
    );
    script(&a, json!([{"kind": "slow_ttft", "ms": 5000}]));
    let r = post(&proxy, "/v1/chat/completions", &chat("x", true)).await;
    served_by(&r, "b", "2");
}

fn assert_error_event_without_done(r: &Answer) {
    assert_eq!(r.status, 200, "the stream had started: {}", r.text);
    let events = r.events();
    assert!(!events.iter().any(|e| e == "[DONE]"), "{}", r.text);
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{}", r.text);
    assert!(events.len() > 1, "the first chunks were relayed");
}

#[tokio::test(flavor = "multi_thread")]
async fn cut_stream_ends_with_an_error_event() {
    let (a, b, proxy) = pair(&two("")).await;
    script(&a, json!([{"kind": "cut_stream", "after_chunks": 3}]));
    let r = post(&proxy, "/v1/chat/completions", &chat("x", true)).await;
    assert_error_event_without_done(&r);
    assert_eq!(r.header("x-switchyard-provider"), "a");
    assert!(
        b.state().requests().is_empty(),
        "no failover after the first byte"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_chunk_ends_with_an_error_event() {
    let (a, b, proxy) = pair(&two("")).await;
    script(&a, json!([{"kind": "malformed_chunk", "after_chunks": 2}]));
    let r = post(&proxy, "/v1/chat/completions", &chat("x", true)).await;
    assert_error_event_without_done(&r);
    assert!(
        !r.text.contains(r#"{"content":"#)
            || r.events()
                .iter()
                .all(|e| serde_json::from_str::<serde_json::Value>(e).is_ok())
    );
    assert!(b.state().requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_or_malformed_whole_answers_fail_over() {
    let (a, _b, proxy) = pair(&two("")).await;
    script(&a, json!([{"kind": "cut_stream", "after_chunks": 1}]));
    served_by(
        &post(&proxy, "/v1/chat/completions", &chat("x", false)).await,
        "b",
        "2",
    );
    script(&a, json!([{"kind": "malformed_chunk", "after_chunks": 1}]));
    served_by(
        &post(&proxy, "/v1/chat/completions", &chat("x", false)).await,
        "b",
        "2",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_candidate_failing_gives_502_503_504() {
    let (a, b, proxy) = pair(&two("timeout first_token 200ms")).await;
    script(&a, json!([{"kind": "status", "status": 500}]));
    script(&b, json!([{"kind": "reset"}]));
    let r = post(&proxy, "/v1/chat/completions", &chat("x", false)).await;
    assert_eq!(r.status, 502, "{}", r.text);
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("a/m: status 500") && msg.contains("b/m: connection failed"),
        "{msg}"
    );
    assert_eq!(r.header("x-switchyard-attempts"), "2");

    script(&a, json!([{"kind": "rate_limit", "retry_after": 1}]));
    script(&b, json!([{"kind": "status", "status": 503}]));
    let r = post(&proxy, "/v1/chat/completions", &chat("x", false)).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.header("retry-after"), "1");

    script(&a, json!([{"kind": "stall", "ms": 3000}]));
    script(&b, json!([{"kind": "stall", "ms": 3000}]));
    let r = post(&proxy, "/v1/chat/completions", &chat("x", true)).await;
    assert_eq!(r.status, 504, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_400_passes_through_without_failover() {
    let (a, b, proxy) = pair(&two("")).await;
    script(
        &a,
        json!([{"kind": "status", "status": 400, "message": "bad messages", "code": "invalid_value"}]),
    );
    let r = post(&proxy, "/v1/chat/completions", &chat("x", false)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"]["message"], "bad messages");
    assert_eq!(r.header("x-switchyard-provider"), "a");
    assert!(b.state().requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_target_is_ejected_then_skipped() {
    let (a, b, proxy) = pair(&two("")).await;
    script(&a, json!([{"kind": "status", "status": 500, "times": 5}]));
    for _ in 0..5 {
        served_by(
            &post(&proxy, "/v1/chat/completions", &chat("x", false)).await,
            "b",
            "2",
        );
    }
    let r = post(&proxy, "/v1/chat/completions", &chat("x", false)).await;
    served_by(&r, "b", "1");
    assert_eq!(
        a.state().requests().len(),
        5,
        "the ejected target was skipped"
    );
    let view = proxy.shared.health.view();
    assert_eq!(view[0].target, "a/m");
    assert_eq!(view[0].state, "ejected");
    assert!(view[0].ejected_until.is_some());
    let admin = get(&proxy.admin_url, "/admin/targets").await;
    assert!(admin.text.contains("ejected"), "{}", admin.text);
    let _ = b;
}
