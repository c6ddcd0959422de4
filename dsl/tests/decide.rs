//! Route decisions end to end: policy text → snapshot → `decide` / `explain`.

mod common;

use common::{catalogue, provider};

use proptest::prelude::*;
use switchyard_dsl::explain::explain;
use switchyard_dsl::ir::{
    self, Condition, ProviderKind, Route, Selection, Snapshot, Target, TargetId, WeightedTarget,
};
use switchyard_dsl::{RequestView, Source, compile, decide};

fn snapshot(text: &str) -> Snapshot {
    let compiled = compile(&[Source::new("policy.sy", text)], &catalogue());
    match compiled.snapshot {
        Some(s) => s,
        None => panic!("policy does not compile: {:#?}", compiled.diagnostics),
    }
}

fn route_of(s: &Snapshot, r: &RequestView<'_>) -> Option<String> {
    decide(s, r, 0.5).map(|d| d.route().name.clone())
}

fn names(s: &Snapshot, ids: impl Iterator<Item = TargetId>) -> Vec<String> {
    ids.map(|t| s.target_name(t)).collect()
}

const CONDITIONS: &str = r#"
route by-model { when model == "m-exact" use openai/gpt-4o }
route by-not { when model != "m-other" and model matches "m-not*" use openai/gpt-4o }
route by-glob { when model matches "org/*-v?" use openai/gpt-4o }
route by-list { when model in ["l1", "l2"] use openai/gpt-4o }
route by-header { when header("X-Team") == "support" use openai/gpt-4o }
route by-has { when has header("x-debug") use openai/gpt-4o }
route by-key { when key == "k1" use openai/gpt-4o }
route by-team { when team in ["t1"] use openai/gpt-4o }
route by-user { when user matches "u-*" use openai/gpt-4o }
route by-tokens { when prompt_tokens >= 4k use openai/gpt-4o }
route by-stream { when stream and not model == "x" use openai/gpt-4o }
route by-nostream { when stream == false and model == "plain" use openai/gpt-4o }
"#;

#[test]
fn every_condition_kind_selects_its_route() {
    let s = snapshot(CONDITIONS);
    let base = RequestView {
        model: "none",
        ..Default::default()
    };
    let cases: Vec<(RequestView<'_>, Option<&str>)> = vec![
        (
            RequestView {
                model: "m-exact",
                ..base
            },
            Some("by-model"),
        ),
        (
            RequestView {
                model: "m-not-this",
                ..base
            },
            Some("by-not"),
        ),
        (
            RequestView {
                model: "org/a/b-v1",
                ..base
            },
            Some("by-glob"),
        ),
        (
            RequestView {
                model: "org/a-v12",
                ..base
            },
            None,
        ),
        (
            RequestView {
                model: "l2",
                ..base
            },
            Some("by-list"),
        ),
        (
            RequestView {
                headers: &[("x-team", "support")],
                ..base
            },
            Some("by-header"),
        ),
        (
            RequestView {
                headers: &[("X-TEAM", "support")],
                ..base
            },
            Some("by-header"),
        ),
        (
            RequestView {
                headers: &[("x-team", "sales")],
                ..base
            },
            None,
        ),
        (
            RequestView {
                headers: &[("X-Debug", "")],
                ..base
            },
            Some("by-has"),
        ),
        (
            RequestView {
                key: Some("k1"),
                ..base
            },
            Some("by-key"),
        ),
        (
            RequestView {
                team: Some("t1"),
                ..base
            },
            Some("by-team"),
        ),
        (
            RequestView {
                user: Some("u-7"),
                ..base
            },
            Some("by-user"),
        ),
        (
            RequestView {
                user: Some("v-7"),
                ..base
            },
            None,
        ),
        (
            RequestView {
                prompt_tokens: 4_000,
                ..base
            },
            Some("by-tokens"),
        ),
        (
            RequestView {
                prompt_tokens: 3_999,
                ..base
            },
            None,
        ),
        (
            RequestView {
                stream: true,
                ..base
            },
            Some("by-stream"),
        ),
        (
            RequestView {
                stream: true,
                model: "x",
                ..base
            },
            None,
        ),
        (
            RequestView {
                model: "plain",
                ..base
            },
            Some("by-nostream"),
        ),
        (
            RequestView {
                model: "plain",
                stream: true,
                ..base
            },
            Some("by-stream"),
        ),
    ];
    for (req, want) in cases {
        assert_eq!(route_of(&s, &req).as_deref(), want, "request {req:?}");
    }
}

#[test]
fn first_matching_route_wins_in_order() {
    let s = snapshot(
        r#"
route a { when team == "x" use openai/gpt-4o }
route b { when model == "gpt-4o" use deepseek/deepseek-chat }
route c { use anthropic/claude-sonnet-4 }
"#,
    );
    let both = RequestView {
        model: "gpt-4o",
        team: Some("x"),
        ..Default::default()
    };
    assert_eq!(route_of(&s, &both).as_deref(), Some("a"));
    let model_only = RequestView {
        model: "gpt-4o",
        ..Default::default()
    };
    assert_eq!(route_of(&s, &model_only).as_deref(), Some("b"));
    let neither = RequestView {
        model: "other",
        ..Default::default()
    };
    let d = decide(&s, &neither, 0.3);
    assert_eq!(d.map(|d| d.route_index()), Some(2));
}

#[test]
fn no_route_means_none_and_explains_404() {
    let s = snapshot(r#"route only { when header("x-team") == "support" use openai/gpt-4o }"#);
    let req = RequestView {
        model: "gpt-4o",
        ..Default::default()
    };
    assert!(decide(&s, &req, 0.1).is_none());
    let ex = explain(&s, &req, 0.1);
    assert_eq!(ex.route, None);
    let text = ex.to_string();
    assert!(text.contains("no route matches → 404"), "{text}");
    assert!(
        text.contains(r#"skipped: `header("x-team") == "support"` is false (header absent)"#),
        "{text}"
    );
}

#[test]
fn candidates_in_order_without_duplicates() {
    let s = snapshot(
        r#"
route cheap {
  when model == "cheap"
  cheapest of anthropic/claude-sonnet-4, openai/gpt-4o-mini, deepseek/deepseek-chat
  failover to openai/gpt-4o-mini, mistral/mistral-large
}
route fast {
  when model == "fast"
  fastest of mistral/mistral-large, openai/gpt-4o
  failover to openai/gpt-4o, deepseek/deepseek-chat
}
route split {
  split { 50% openai/gpt-4o 50% deepseek/deepseek-chat }
  failover to anthropic/claude-sonnet-4, deepseek/deepseek-chat
}
"#,
    );
    let cheap = RequestView {
        model: "cheap",
        ..Default::default()
    };
    let d = decide(&s, &cheap, 0.5).expect("matches");
    assert_eq!(
        names(&s, d.candidates()),
        [
            "openai/gpt-4o-mini",
            "deepseek/deepseek-chat",
            "anthropic/claude-sonnet-4",
            "mistral/mistral-large"
        ]
    );
    let fast = RequestView {
        model: "fast",
        ..Default::default()
    };
    let d = decide(&s, &fast, 0.5).expect("matches");
    assert_eq!(s.target_name(d.primary()), "mistral/mistral-large");
    assert_eq!(
        names(&s, d.candidates()),
        [
            "mistral/mistral-large",
            "openai/gpt-4o",
            "deepseek/deepseek-chat"
        ]
    );
    let other = RequestView {
        model: "x",
        ..Default::default()
    };
    let d = decide(&s, &other, 0.75).expect("matches");
    assert_eq!(d.split_arm(), Some(1));
    // The other split arm is not a candidate; failover duplicates of the primary are skipped.
    assert_eq!(
        names(&s, d.candidates()),
        ["deepseek/deepseek-chat", "anthropic/claude-sonnet-4"]
    );
    let d = decide(&s, &other, 0.25).expect("matches");
    assert_eq!(
        names(&s, d.candidates()),
        [
            "openai/gpt-4o",
            "anthropic/claude-sonnet-4",
            "deepseek/deepseek-chat"
        ]
    );
}

#[test]
fn budgets_apply_by_scope() {
    let s = snapshot(
        r#"
route chat { when model == "chat" use openai/gpt-4o }
route rest { use deepseek/deepseek-chat }
budget global { for all limit 10 requests per second }
budget key-k1 { for key "k1" limit 10 requests per second }
budget team-a { for team "a" limit 10 requests per second }
budget user-u { for user "u" limit 10 requests per second }
budget each-key { for each key limit 10 requests per second }
budget each-team { for each team limit 10 requests per second }
budget each-user { for each user limit 10 requests per second }
budget by-header { for each user in header "X-User-Id" limit 10 requests per second }
budget chat-route { for route chat limit $5 per day on exhausted downgrade to openai/gpt-4o-mini }
"#,
    );
    let applicable = |r: &RequestView<'_>| -> Vec<String> {
        let d = decide(&s, r, 0.5).expect("a route matches");
        d.budgets(r).map(|(_, b)| b.name.clone()).collect()
    };
    let anon = RequestView {
        model: "other",
        ..Default::default()
    };
    assert_eq!(applicable(&anon), ["global"]);
    let full = RequestView {
        model: "chat",
        key: Some("k1"),
        team: Some("a"),
        user: Some("u"),
        headers: &[("x-user-id", "42")],
        ..Default::default()
    };
    assert_eq!(
        applicable(&full),
        [
            "global",
            "key-k1",
            "team-a",
            "user-u",
            "each-key",
            "each-team",
            "each-user",
            "by-header",
            "chat-route"
        ]
    );
    let other = RequestView {
        model: "chat",
        key: Some("k2"),
        team: Some("b"),
        user: Some("v"),
        ..Default::default()
    };
    assert_eq!(
        applicable(&other),
        ["global", "each-key", "each-team", "each-user", "chat-route"]
    );
    let indices: Vec<usize> = decide(&s, &full, 0.5)
        .expect("matches")
        .budgets(&full)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(indices, (0..9).collect::<Vec<_>>());
}

#[test]
fn explain_names_route_candidates_and_budgets() {
    let s = snapshot(
        r#"
route support {
  when model == "gpt-4o" and header("x-team") == "support"
  split { 90% openai/gpt-4o 10% deepseek/deepseek-chat }
  failover to anthropic/claude-sonnet-4 when status in [429, 5xx] or overloaded or p95(ttft) > 2s over 1m
  retry 2 backoff 100ms..2s
  timeout total 60s, first_token 5s
  hedge after p90(ttft)
  cache for 10m
}
route rest { use openai/gpt-4o-mini }
budget team-support { for team "support" limit 2M tokens per minute, $500 per month warn at 80%, 95% }
"#,
    );
    let req = RequestView {
        model: "gpt-4o",
        headers: &[("x-team", "support")],
        team: Some("support"),
        ..Default::default()
    };
    let ex = explain(&s, &req, 0.95);
    assert_eq!(ex.route.as_deref(), Some("support"));
    assert_eq!(
        ex.candidates,
        ["deepseek/deepseek-chat", "anthropic/claude-sonnet-4"]
    );
    assert_eq!(ex.candidate_kinds, ["openai-compatible", "anthropic"]);
    assert_eq!(ex.budgets, ["team-support"]);
    let text = ex.to_string();
    for needle in [
        "arm 2 (`deepseek/deepseek-chat`, 10%)",
        "timeouts: total 1m, first_token 5s",
        "retry: 2 (backoff 100ms..2s)",
        "status 429 or status 500..599 or overloaded or p95(ttft) > 2s over 1m min_samples 20",
        "hedge: after p90(ttft)",
        "cache: for 10m",
        "2M tokens per minute, $500 per month; warn at 80%, 95%",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let other = RequestView {
        model: "gpt-4o",
        ..Default::default()
    };
    let ex = explain(&s, &other, 0.5);
    assert_eq!(ex.route.as_deref(), Some("rest"));
    assert!(
        ex.steps[0]
            .reason
            .contains(r#"`header("x-team") == "support"` is false (header absent)"#),
        "{:?}",
        ex.steps
    );
}

/// A snapshot with one route splitting over `weights.len()` targets, built by hand.
fn split_snapshot(weights: &[u32]) -> Snapshot {
    let p = provider("p", ProviderKind::Mock, &[("m", 0, 0)]);
    Snapshot::new(
        vec![p],
        (0..weights.len())
            .map(|_| Target {
                provider: ir::ProviderId(0),
                model_index: 0,
                model: "m".into(),
            })
            .collect(),
        vec![Route {
            name: "split".into(),
            origin: "test".into(),
            condition: Condition::Always,
            selection: Selection::Split(
                weights
                    .iter()
                    .enumerate()
                    .map(|(i, &weight)| WeightedTarget {
                        target: TargetId(i as u32),
                        weight,
                    })
                    .collect(),
            ),
            failover: Vec::new(),
            triggers: Default::default(),
            retry: Default::default(),
            timeouts: Default::default(),
            hedge: None,
            cache_ttl_ms: None,
            affinity: None,
            exposed_models: Vec::new(),
        }],
        Vec::new(),
    )
}

/// Weights (whole percentages) summing to 100, 1 to 6 arms, zeros allowed.
fn weights() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0u32..=100, 0..6).prop_map(|cuts| {
        let mut cuts: Vec<u32> = cuts;
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut prev = 0;
        for c in cuts.into_iter().chain([100]) {
            out.push(c - prev);
            prev = c;
        }
        out
    })
}

proptest! {
    #[test]
    fn split_shares_match_weights(weights in weights(), n in 1usize..5_000) {
        let s = split_snapshot(&weights);
        let req = RequestView::default();
        let mut counts = vec![0usize; weights.len()];
        for i in 0..n {
            let draw = (i as f64 + 0.5) / n as f64;
            let d = decide(&s, &req, draw).expect("always matches");
            counts[d.primary().0 as usize] += 1;
        }
        for (arm, (&w, &c)) in weights.iter().zip(&counts).enumerate() {
            let expected = n as f64 * f64::from(w) / 100.0;
            prop_assert!((c as f64 - expected).abs() <= 1.0, "arm {arm}: weight {w}%, {c} of {n}, expected {expected}");
        }
    }
}
