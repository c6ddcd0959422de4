//! Client keys and budgets end to end: the real proxy binary on a config folder with a
//! client-key Secret and Budget documents, in front of `switchyard_mock` upstreams.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod quota_support;

use quota_support::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn missing_unknown_expired_and_refused_keys_get_401() {
    let up = mock(8).await;
    let dir = folder(
        &up,
        "budget none {\n  for team \"nobody\"\n  limit 1 requests per day\n}",
    );
    let proxy = Proxy::start(dir.path(), &[]);
    let a = chat(&proxy, None, body(false)).await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert_eq!(a.json()["error"]["code"], "invalid_api_key");
    let a = chat(&proxy, Some("sk-wrong-key-42"), body(false)).await;
    assert_eq!(a.status, 401);
    assert!(!a.text.contains("sk-wrong-key-42"));
    let a = chat(&proxy, Some("sk-dora-0123456789"), body(false)).await;
    assert_eq!(a.status, 401);
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let a = chat(&proxy, Some("sk-eve-0123456789"), body(false)).await;
    assert_eq!(a.status, 401);
    // /v1/models needs a key too.
    let r = reqwest::get(format!("{}/v1/models", proxy.url))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let a = chat(&proxy, Some("sk-alpha-0123456789"), body(false)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let metrics = reqwest::get(format!("{}/metrics", proxy.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("switchyard_auth_failures_total{reason=\"missing\"} 2"));
    for secret in [
        "sk-wrong-key-42",
        "sk-alpha-0123456789",
        "sk-dora-0123456789",
    ] {
        assert!(!metrics.contains(secret));
        assert!(!proxy.log().contains(secret), "a key in the log");
    }
    // With --allow-anonymous a request without a key is served.
    let open = Proxy::start(dir.path(), &["--allow-anonymous"]);
    assert_eq!(chat(&open, None, body(false)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_budget_answers_429_with_retry_after_and_admin_shows_it() {
    let up = mock(8).await;
    let dir = folder(
        &up,
        "budget per-key {\n  for each key\n  limit 3 requests per day\n  warn at 50%\n}",
    );
    let proxy = Proxy::start(dir.path(), &[]);
    for _ in 0..3 {
        let a = chat(&proxy, Some("sk-alpha-0123456789"), body(false)).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let a = chat(&proxy, Some("sk-alpha-0123456789"), body(false)).await;
    assert_eq!(a.status, 429, "{}", a.text);
    let e = a.json();
    assert_eq!(e["error"]["type"], "insufficient_quota");
    assert_eq!(e["error"]["code"], "insufficient_quota");
    let retry: u64 = a.header("retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    // Another key still has its own allowance.
    assert_eq!(
        chat(&proxy, Some("sk-charlie-0123456789"), body(false))
            .await
            .status,
        200
    );
    let v = budgets(&proxy).await;
    let rows = v["budgets"].as_array().unwrap();
    let alpha = rows
        .iter()
        .find(|r| r["scope"] == "key=alpha")
        .expect("alpha row");
    assert_eq!(alpha["state"], "exhausted");
    assert_eq!(alpha["limits"][0]["spent"], 3);
    assert_eq!(alpha["limits"][0]["remaining"], 0);
    assert!(
        alpha["limits"][0]["resets_at"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00Z")
    );
    let charlie = rows
        .iter()
        .find(|r| r["scope"] == "key=charlie")
        .expect("charlie row");
    assert_eq!(charlie["state"], "ok");
    let metrics = reqwest::get(format!("{}/metrics", proxy.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("switchyard_budget_rejections_total{budget=\"per-key\"} 1"));
    assert!(metrics.contains("switchyard_budget_warnings_total{budget=\"per-key\",metric=\"requests\",threshold_bp=\"5000\"}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_budget_downgrades_with_a_header() {
    let up = mock(8).await;
    let dir = folder(
        &up,
        "budget support {\n  for team \"support\"\n  limit 1 requests per day\n  on exhausted downgrade to up/small\n}",
    );
    let proxy = Proxy::start(dir.path(), &[]);
    let a = chat(&proxy, Some("sk-bravo-0123456789"), body(false)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-switchyard-downgraded"), "");
    assert_eq!(a.header("x-switchyard-model"), "big");
    let a = chat(&proxy, Some("sk-bravo-0123456789"), body(false)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-switchyard-model"), "small");
    assert_eq!(
        a.header("x-switchyard-downgraded"),
        "up/small (budget support)"
    );
    // Another team is not affected.
    let a = chat(&proxy, Some("sk-alpha-0123456789"), body(false)).await;
    assert_eq!(a.header("x-switchyard-model"), "big");
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_is_cut_when_the_budget_runs_out() {
    let up = mock(2_000).await;
    let dir = folder(
        &up,
        "budget tokens {\n  for key \"charlie\"\n  limit 300 tokens per day\n  on overrun cut\n}",
    );
    let proxy = Proxy::start(dir.path(), &["--default-max-tokens", "50"]);
    let a = chat(&proxy, Some("sk-charlie-0123456789"), body(true)).await;
    assert_eq!(a.status, 200);
    let events: Vec<&str> = a
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "insufficient_quota", "{}", a.text);
    assert!(!a.text.contains("[DONE]"));
    // Well short of the 2000 tokens the upstream would have sent.
    assert!(events.len() < 400, "{} events", events.len());
    // No usage block in the stream (the client did not ask for one): settled on an estimate,
    // just after the response ended.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = reqwest::get(format!("{}/metrics", proxy.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("switchyard_usage_estimated_total{endpoint=\"chat\"} 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(metrics.contains("switchyard_usage_estimated_total{endpoint=\"chat\"} 1"));
    assert!(metrics.contains("switchyard_budget_stream_cutoffs_total{budget=\"tokens\"} 1"));
    // The budget is used up: the next request is refused.
    let a = chat(&proxy, Some("sk-charlie-0123456789"), body(true)).await;
    assert_eq!(a.status, 429);
    // Without `cut` (another key, no budget) the same stream runs to the end.
    let a = chat(&proxy, Some("sk-alpha-0123456789"), body(true)).await;
    assert!(a.text.contains("[DONE]"));
}
