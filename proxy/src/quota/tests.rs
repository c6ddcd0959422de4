//! Unit tests of admission, settlement, top-ups and scope keys over the in-memory store.

use switchyard_dsl::ir::{Provider, ProviderKind};
use switchyard_dsl::{RequestView, Snapshot, Source, compile, decide};

use super::*;

fn provider(name: &str, models: &[(&str, u64, u64)]) -> Provider {
    Provider::priced(name, ProviderKind::Mock, models)
}

fn snapshot(budgets: &str) -> Snapshot {
    let policy = format!("route chat {{\n  when model == \"gpt\"\n  use p/big\n}}\n{budgets}");
    let sources = [Source::new("t.policy", policy.as_str())];
    // $10 / $30 per million tokens; the small model $1 / $2.
    let catalogue = [provider(
        "p",
        &[
            ("big", 10_000_000, 30_000_000),
            ("small", 1_000_000, 2_000_000),
        ],
    )];
    let compiled = compile(&sources, &catalogue);
    match compiled.snapshot {
        Some(s) => s,
        None => panic!(
            "{}",
            switchyard_dsl::render_all(&compiled.diagnostics, &sources)
        ),
    }
}

fn view<'a>(key: &'a str, team: &'a str, prompt: u64) -> RequestView<'a> {
    RequestView {
        model: "gpt",
        key: Some(key),
        team: Some(team),
        prompt_tokens: prompt,
        ..RequestView::default()
    }
}

fn quota() -> Quota {
    Quota {
        default_max_tokens: 100,
        ..Quota::default()
    }
}

async fn admit(
    q: &Quota,
    s: &Snapshot,
    r: &RequestView<'_>,
    max: Option<u64>,
) -> Result<Option<Admitted>, ApiError> {
    let d = decide(s, r, 0.0).expect("route");
    q.admit(s, &d, r, max).await
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn price_is_micro_usd_per_million_tokens_rounded_up() {
    let p = Price {
        input: 10_000_000,
        output: 30_000_000,
        cached_input: 2_500_000,
    };
    assert_eq!(p.cost(1_000_000, 0), 10_000_000);
    assert_eq!(p.cost(1, 0), 10);
    assert_eq!(p.cost(0, 1), 30);
    assert_eq!(
        Price {
            input: 1,
            output: 0,
            cached_input: 0,
        }
        .cost(1, 0),
        1
    );
    // A cached input token costs the cached price: 1M input of which 600k cached is
    // 400k × $10/M + 600k × $2.50/M = $5.50.
    assert_eq!(p.cost_cached(1_000_000, 600_000, 0), 5_500_000);
    assert_eq!(
        p.cost_cached(10, 99, 0),
        p.cost_cached(10, 10, 0),
        "at most all input"
    );
}

#[test]
fn no_budget_no_store_call() {
    block_on(async {
        let s = snapshot("budget t { for team \"other\" limit 5 requests per day }");
        let a = admit(&quota(), &s, &view("k", "support", 10), None).await;
        assert!(a.expect("ok").is_none());
    });
}

#[test]
fn reserve_then_reject_with_retry_after_until_the_window_resets() {
    block_on(async {
        let s = snapshot("budget per-key {\n  for each key\n  limit 2 requests per day\n}");
        let q = quota();
        let r = view("alpha", "t", 10);
        assert!(admit(&q, &s, &r, None).await.expect("1st").is_some());
        assert!(admit(&q, &s, &r, None).await.expect("2nd").is_some());
        let e = admit(&q, &s, &r, None).await.expect_err("3rd is refused");
        assert_eq!(e.status, 429);
        assert_eq!(e.code, Some("insufficient_quota"));
        let ra = e.retry_after.expect("retry-after");
        assert!((1..=86_400).contains(&ra), "{ra}");
        assert!(e.message.contains("per-key") && e.message.contains("key=alpha"));
        // Another key has its own counter.
        assert!(
            admit(&q, &s, &view("beta", "t", 10), None)
                .await
                .expect("beta")
                .is_some()
        );
    });
}

#[test]
fn settlement_returns_the_unused_reservation() {
    block_on(async {
        let s = snapshot("budget tok {\n  for all\n  limit 1000 tokens per day, $1 per day\n}");
        let q = quota();
        let r = view("k", "t", 100);
        let a = admit(&q, &s, &r, Some(400))
            .await
            .expect("ok")
            .expect("budget");
        let res = &a.reservation;
        let tokens = res
            .charges
            .iter()
            .find(|c| c.metric == LimitMetric::TotalTokens)
            .expect("tokens");
        assert_eq!(tokens.op.amount, 500);
        let dollars = res
            .charges
            .iter()
            .find(|c| c.metric == LimitMetric::MicroUsd)
            .expect("usd");
        // 100 × $10/M + 400 × $30/M = $0.013.
        assert_eq!(dollars.op.amount, 13_000);
        let big = Price::by_name(&s, "p", "big");
        q.settle(
            res,
            Some(Usage {
                input: 90,
                output: 10,
                cached: 0,
            }),
            Some(big),
            "chat",
        )
        .await;
        let keys = [tokens.op.key.clone(), dollars.op.key.clone()];
        assert_eq!(
            q.local.get(&keys, crate::clock::unix_secs()),
            vec![100, 900 + 300]
        );
        // Nothing served: only the request itself would count, tokens and dollars go back.
        let a = admit(&q, &s, &r, Some(400))
            .await
            .expect("ok")
            .expect("budget");
        q.settle(&a.reservation, None, None, "chat").await;
        assert_eq!(
            q.local.get(&keys, crate::clock::unix_secs()),
            vec![100, 1200]
        );
    });
}

#[test]
fn downgrade_when_exhausted_and_warnings_do_not_block() {
    block_on(async {
        let s = snapshot(
            "budget support {\n  for team \"support\"\n  limit 2 requests per day\n  warn at 50%\n  on exhausted downgrade to p/small\n}",
        );
        let q = quota();
        let r = view("k", "support", 10);
        for _ in 0..2 {
            let a = admit(&q, &s, &r, None).await.expect("ok").expect("budget");
            assert!(a.downgrade.is_none());
        }
        let a = admit(&q, &s, &r, None).await.expect("ok").expect("budget");
        let (t, budget) = a.downgrade.expect("downgraded");
        assert_eq!(s.target_name(t), "p/small");
        assert_eq!(budget, "support");
        let status = q.status(&s).await;
        assert_eq!(status.budgets[0].scope, "team=support");
        assert_eq!(status.budgets[0].state, "exhausted");
        assert_eq!(status.budgets[0].limits[0].spent, 3);
        assert_eq!(status.budgets[0].limits[0].remaining, 0);
    });
}

#[test]
fn stream_top_ups_stop_at_the_limit() {
    block_on(async {
        let s = snapshot(
            "budget b {\n  for all\n  limit 300 output_tokens per day\n  on overrun cut\n}",
        );
        let q = quota();
        let r = view("k", "t", 10);
        let a = admit(&q, &s, &r, Some(100))
            .await
            .expect("ok")
            .expect("budget");
        let res = &a.reservation;
        assert!(q.top_up(res, TOP_UP_TOKENS).await.is_ok());
        assert!(q.top_up(res, TOP_UP_TOKENS).await.is_ok());
        assert!(q.top_up(res, TOP_UP_TOKENS).await.is_ok());
        // 100 + 3 × 64 = 292 < 300: one more is admitted, then the counter is at its limit.
        assert!(q.top_up(res, TOP_UP_TOKENS).await.is_ok());
        assert_eq!(
            q.top_up(res, TOP_UP_TOKENS).await,
            Err(("b".to_string(), true))
        );
        assert_eq!(res.extra_tokens.load(Ordering::Relaxed), 4 * TOP_UP_TOKENS);
        // Settling to what was really relayed returns the rest.
        q.settle(
            res,
            Some(Usage {
                input: 10,
                output: 250,
                cached: 0,
            }),
            Some(Price::default()),
            "chat",
        )
        .await;
        let key = res.charges[0].op.key.clone();
        assert_eq!(q.local.get(&[key], crate::clock::unix_secs()), vec![250]);
    });
}

#[test]
fn scope_labels_hash_header_values() {
    let r = RequestView {
        model: "gpt",
        headers: &[("X-Tenant", "acme")],
        key: Some("k1"),
        ..RequestView::default()
    };
    assert_eq!(
        scope_label(&BudgetScope::EachKey, "chat", &r).as_deref(),
        Some("key=k1")
    );
    assert_eq!(
        scope_label(&BudgetScope::Route("chat".into()), "chat", &r).as_deref(),
        Some("route=chat")
    );
    assert_eq!(scope_label(&BudgetScope::EachTeam, "chat", &r), None);
    let h =
        scope_label(&BudgetScope::EachHeaderValue("x-tenant".into()), "chat", &r).expect("header");
    assert!(
        h.starts_with("header x-tenant=sha256:") && !h.contains("acme"),
        "{h}"
    );
    assert_eq!(
        counter_key("b", "key=k1", LimitMetric::Requests, 60, "minute"),
        "b|key=k1|requests|minute|60"
    );
}
