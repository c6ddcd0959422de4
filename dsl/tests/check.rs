//! Golden tests of rendered diagnostics (one per check), and of lowering: defaults, ordering,
//! exposed models and the content hash.

mod common;

use common::catalogue;

use switchyard_dsl::ir::{
    Condition, ErrorClass, LatencyKind, OnExhausted, OnOverrun, Selection, Snapshot, StatusRange,
};
use switchyard_dsl::{Source, SourceKind, compile, render_all};

/// Compiles the sources and renders every diagnostic.
fn diagnose(sources: &[Source]) -> String {
    let compiled = compile(sources, &catalogue());
    render_all(&compiled.diagnostics, sources)
}

fn one(text: &str) -> String {
    diagnose(&[Source::new("policy.sy", text)])
}

fn source(file: &str, kind: SourceKind, text: &str) -> Source {
    Source {
        kind,
        origin: format!("default/{file}"),
        ..Source::new(file, text)
    }
}

fn snapshot(text: &str) -> Snapshot {
    let compiled = compile(&[Source::new("policy.sy", text)], &catalogue());
    match compiled.snapshot {
        Some(s) => s,
        None => panic!(
            "does not compile:\n{}",
            render_all(&compiled.diagnostics, &[Source::new("policy.sy", text)])
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Diagnostics, one golden per check

#[test]
fn unknown_provider() {
    insta::assert_snapshot!(one("route a {\n  use opnai/gpt-4o\n}\n"));
}

#[test]
fn unknown_model() {
    insta::assert_snapshot!(one("route a {\n  use openai/gpt-4o-mni\n}\n"));
}

#[test]
fn split_weights_must_sum_to_100() {
    insta::assert_snapshot!(one(
        "route a {\n  split {\n    80% openai/gpt-4o\n    10% deepseek/deepseek-chat\n  }\n}\n"
    ));
}

#[test]
fn split_weights_are_whole_percentages() {
    insta::assert_snapshot!(one(
        "route a {\n  split { 50.5% openai/gpt-4o, 49.5% deepseek/deepseek-chat }\n}\n"
    ));
}

#[test]
fn duplicate_route_names_across_sources() {
    insta::assert_snapshot!(diagnose(&[
        source(
            "a.sy",
            SourceKind::Routes,
            "route chat {\n  when team == \"a\"\n  use openai/gpt-4o\n}\n"
        ),
        source(
            "b.sy",
            SourceKind::Routes,
            "\nroute chat {\n  when team == \"b\"\n  use openai/gpt-4o\n}\n"
        ),
    ]));
}

#[test]
fn duplicate_budget_names() {
    insta::assert_snapshot!(diagnose(&[
        source(
            "a.sy",
            SourceKind::Budgets,
            "budget cap {\n  for all\n  limit 10 requests per second\n}\n"
        ),
        source(
            "b.sy",
            SourceKind::Budgets,
            "budget cap {\n  for each key\n  limit 5 requests per second\n}\n"
        ),
    ]));
}

#[test]
fn route_without_selection() {
    insta::assert_snapshot!(one("route a {\n  when model == \"x\"\n  retry 2\n}\n"));
}

#[test]
fn route_with_two_selections() {
    insta::assert_snapshot!(one(
        "route a {\n  use openai/gpt-4o\n  cheapest of openai/gpt-4o-mini, deepseek/deepseek-chat\n}\n"
    ));
}

#[test]
fn duplicate_statements() {
    insta::assert_snapshot!(one(
        "route a {\n  when model == \"x\"\n  when model == \"y\"\n  use openai/gpt-4o\n  retry 1\n  retry 2\n  \
         timeout total 10s, total 20s\n}\nbudget b {\n  for all\n  limit 5 requests per second\n  \
         on overrun cut\n  on overrun finish\n}\n"
    ));
}

#[test]
fn unknown_condition_subject() {
    insta::assert_snapshot!(one(
        "route a {\n  when modle == \"gpt-4o\"\n  use openai/gpt-4o\n}\n"
    ));
}

#[test]
fn operator_and_value_type_mismatches() {
    insta::assert_snapshot!(one(
        "route a {\n  when prompt_tokens matches \"x\" or model < 5 or stream == \"yes\" or team == 3 \
         or prompt_tokens > \"many\" or key in \"k\"\n  use openai/gpt-4o\n}\n"
    ));
}

#[test]
fn bare_subject_that_is_not_boolean() {
    insta::assert_snapshot!(one(
        "route a {\n  when model and header(\"x-team\")\n  use openai/gpt-4o\n}\n"
    ));
}

#[test]
fn unknown_trigger() {
    insta::assert_snapshot!(one(
        "route a {\n  use openai/gpt-4o\n  failover to deepseek/deepseek-chat when overloded or timeout\n}\n"
    ));
}

#[test]
fn bad_status_codes() {
    insta::assert_snapshot!(one(
        "route a {\n  use openai/gpt-4o\n  failover to deepseek/deepseek-chat when status in [99, 600, 6xx, 504..500]\n}\n"
    ));
}

#[test]
fn bad_units() {
    insta::assert_snapshot!(one(
        "route a {\n  use openai/gpt-4o\n  timeout total 5\n  cache for 10\n  hedge after 2M\n}\n\
         budget b {\n  for all\n  limit 5s tokens per day, 1.5 requests per day\n  warn at 80\n}\n"
    ));
}

#[test]
fn backoff_min_over_max() {
    insta::assert_snapshot!(one(
        "route a {\n  use openai/gpt-4o\n  retry 3 backoff 5s..1s\n}\n"
    ));
}

#[test]
fn fastest_by_unknown_metric() {
    insta::assert_snapshot!(one(
        "route a {\n  fastest of openai/gpt-4o, mistral/mistral-large by p95(throughput) explore 150%\n}\n"
    ));
}

#[test]
fn bad_percentiles() {
    insta::assert_snapshot!(one(
        "route a {\n  use openai/gpt-4o\n  hedge after p100(ttft)\n  \
         failover to deepseek/deepseek-chat when q95(latency) > 2s over 1m\n}\n"
    ));
}

#[test]
fn budget_without_for_or_limit() {
    insta::assert_snapshot!(one("budget a {\n  warn at 80%\n}\n"));
}

#[test]
fn unknown_scope_subject() {
    insta::assert_snapshot!(one(
        "budget a {\n  for tenant \"x\"\n  limit 5 requests per second\n}\nbudget b {\n  for each route\n  \
         limit 5 requests per second\n}\n"
    ));
}

#[test]
fn unknown_limit_metric_and_window() {
    insta::assert_snapshot!(one(
        "budget a {\n  for all\n  limit 5 tokenz per minute, 10 requests per fortnight, 500 per day\n}\n"
    ));
}

#[test]
fn money_with_metric() {
    insta::assert_snapshot!(one("budget a {\n  for all\n  limit $5 tokens per day\n}\n"));
}

#[test]
fn warn_thresholds_out_of_range_or_not_ascending() {
    insta::assert_snapshot!(one(
        "budget a {\n  for all\n  limit $5 per day\n  warn at 90%, 80%, 120%, 0%\n}\n"
    ));
}

#[test]
fn unknown_overrun_action() {
    insta::assert_snapshot!(one(
        "budget a {\n  for all\n  limit $5 per day\n  on overrun stop\n}\n"
    ));
}

#[test]
fn budget_names_unknown_route_or_target() {
    insta::assert_snapshot!(one(
        "route chat {\n  use openai/gpt-4o\n}\nbudget a {\n  for route caht\n  limit $5 per day\n  \
         on exhausted downgrade to openai/gpt-3\n}\n"
    ));
}

#[test]
fn blocks_in_the_wrong_kind_of_object() {
    insta::assert_snapshot!(diagnose(&[
        source(
            "routes.yaml",
            SourceKind::Routes,
            "budget b {\n  for all\n  limit $5 per day\n}\n"
        ),
        source(
            "budgets.yaml",
            SourceKind::Budgets,
            "route r {\n  when team == \"r\"\n  use openai/gpt-4o\n}\n"
        ),
        source(
            "any.sy",
            SourceKind::Any,
            "route s {\n  use openai/gpt-4o\n}\nbudget c {\n  for all\n  limit $5 per day\n}\n"
        ),
    ]));
}

#[test]
fn failover_target_already_selected() {
    insta::assert_snapshot!(one(
        "route a {\n  cheapest of openai/gpt-4o, deepseek/deepseek-chat\n  \
         failover to deepseek/deepseek-chat, anthropic/claude-sonnet-4\n}\n"
    ));
}

#[test]
fn failover_to_another_split_arm_is_meaningful() {
    // The split tries only the arm it drew, so the other arm as a backup is no repetition.
    assert_eq!(
        one(
            "route a {\n  split { 50% openai/gpt-4o 50% deepseek/deepseek-chat }\n  \
             failover to deepseek/deepseek-chat\n}\n"
        ),
        ""
    );
}

#[test]
fn shadowed_routes() {
    insta::assert_snapshot!(diagnose(&[
        source(
            "a.sy",
            SourceKind::Routes,
            "route by-model {\n  when model == \"gpt-4o\"\n  use openai/gpt-4o\n}\n\
             route same {\n  when model == \"gpt-4o\"\n  use deepseek/deepseek-chat\n}\n\
             route narrower {\n  when model == \"gpt-4o\" and stream\n  use deepseek/deepseek-chat\n}\n\
             route wider {\n  when model in [\"gpt-4o\", \"o1\"]\n  use deepseek/deepseek-chat\n}\n\
             route catch-all {\n  use openai/gpt-4o-mini\n}\n",
        ),
        source(
            "b.sy",
            SourceKind::Routes,
            "route late {\n  when team == \"x\"\n  use openai/gpt-4o\n}\n"
        ),
    ]));
}

#[test]
fn every_error_is_reported() {
    let text = "route a {\n  when modle == \"x\"\n  use opnai/gpt-4o\n  retry 2 backoff 3s..1s\n  timeout total 5\n}\n\
                route a {\n  split { 60% openai/gpt-4o 60% deepseek/deepseek-chat }\n  \
                failover to openai/gpt-4o when explodes\n}\n\
                budget b {\n  for team\n  limit $5 tokens per week\n  warn at 95%, 80%\n  on overrun stop\n}\n";
    let out = one(text);
    for needle in [
        "modle",
        "opnai",
        "backoff",
        "expected a duration",
        "duplicate route name",
        "add up to 120%",
        "explodes",
        "malformed scope",
        "money amount",
        "week",
        "not ascending",
        "stop",
    ] {
        assert!(out.contains(needle), "missing {needle:?}");
    }
    insta::assert_snapshot!(out);
}

#[test]
fn the_reference_example_is_clean() {
    let text = r#"
# Support traffic: mostly GPT-4o, a tenth on DeepSeek, Claude when OpenAI struggles.
route support-chat {
  when model == "gpt-4o" and header("x-team") == "support"
  split {
    90% openai/gpt-4o
    10% deepseek/deepseek-chat
  }
  failover to anthropic/claude-sonnet-4, mistral/mistral-large
    when status in [429, 5xx] or overloaded or p95(ttft) > 2s over 1m or error_rate > 5% over 30s
  retry 2 backoff 100ms..2s
  timeout total 60s, first_token 5s
  hedge after p90(ttft)
}

route summaries {
  when header("x-task") == "summarize" or prompt_tokens < 500
  use deepseek/deepseek-chat
  cache for 10m
}

route everything-else {
  cheapest of openai/gpt-4o-mini, deepseek/deepseek-chat
}

budget team-support {
  for team "support"
  limit 2M tokens per minute, 600 requests per minute, $500 per month
  warn at 80%, 95%
  on exhausted downgrade to deepseek/deepseek-chat
}
"#;
    assert_eq!(one(text), "");
}

// ---------------------------------------------------------------------------------------------
// Lowering

const BASE: &str = r#"
route a {
  when model == "gpt-4o" and not model == "x" or model in ["o1", "gpt-4o"] or header("X-Team") != "y"
  cheapest of anthropic/claude-sonnet-4, mistral/mistral-large, openai/gpt-4o-mini, deepseek/deepseek-chat
  failover to openai/gpt-4o
  retry 1
}
route b {
  when stream
  fastest of openai/gpt-4o, mistral/mistral-large
  failover to deepseek/deepseek-chat when timeout or p99.9(latency) > 3s over 1m
}
budget c { for all limit 1k requests per hour }
"#;

#[test]
fn lowering_applies_documented_defaults() {
    let s = snapshot(BASE);
    let names: Vec<&str> = s.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["anthropic", "deepseek", "mistral", "openai"]);
    let a = &s.routes[0];
    let Selection::Cheapest(ts) = &a.selection else {
        panic!("cheapest expected")
    };
    let order: Vec<String> = ts.iter().map(|&t| s.target_name(t)).collect();
    assert_eq!(
        order,
        [
            "openai/gpt-4o-mini",
            "deepseek/deepseek-chat",
            "mistral/mistral-large",
            "anthropic/claude-sonnet-4"
        ]
    );
    assert_eq!(
        a.triggers.statuses,
        [
            StatusRange { lo: 429, hi: 429 },
            StatusRange { lo: 500, hi: 599 }
        ]
    );
    assert_eq!(
        a.triggers.errors,
        [ErrorClass::ConnectFailure, ErrorClass::Timeout]
    );
    assert_eq!(
        (
            a.retry.attempts,
            a.retry.backoff_min_ms,
            a.retry.backoff_max_ms
        ),
        (1, 100, 2_000)
    );
    assert_eq!(a.exposed_models, ["gpt-4o", "o1"]);
    let Condition::Any(parts) = &a.condition else {
        panic!("or expected")
    };
    assert!(
        matches!(&parts[2], Condition::Not(inner) if matches!(&**inner, Condition::Header { name, .. } if name == "x-team"))
    );

    let b = &s.routes[1];
    assert_eq!(b.condition, Condition::Stream(true));
    assert!(b.exposed_models.is_empty());
    let Selection::Fastest { by, explore_bp, .. } = &b.selection else {
        panic!("fastest expected")
    };
    assert_eq!(
        (by.kind, by.percentile_centi, *explore_bp),
        (LatencyKind::Ttft, 5_000, 500)
    );
    assert_eq!(b.retry.attempts, 0);
    assert_eq!(b.triggers.errors, [ErrorClass::Timeout]);
    assert!(b.triggers.statuses.is_empty());
    assert_eq!(b.triggers.latency[0].min_samples, 20);
    assert_eq!(b.triggers.latency[0].metric.percentile_centi, 9_990);

    let c = &s.budgets[0];
    assert_eq!(c.on_exhausted, OnExhausted::Reject);
    assert_eq!(c.on_overrun, OnOverrun::Finish);
    assert_eq!(c.limits[0].amount, 1_000);
    // Targets are deduplicated in first-use order.
    let targets: Vec<String> = (0..s.targets.len())
        .map(|i| s.target_name(switchyard_dsl::ir::TargetId(i as u32)))
        .collect();
    assert_eq!(
        targets,
        [
            "openai/gpt-4o-mini",
            "deepseek/deepseek-chat",
            "mistral/mistral-large",
            "anthropic/claude-sonnet-4",
            "openai/gpt-4o"
        ]
    );
}

#[test]
fn the_hash_is_deterministic_and_tracks_every_route() {
    let s1 = snapshot(BASE);
    let s2 = snapshot(BASE);
    assert_eq!(s1, s2);
    assert_eq!(s1.hash, s2.hash);
    assert_eq!(s1.hash, s1.compute_hash());
    assert_eq!(s1.hash.len(), 64);
    let edits = [
        ("model == \"gpt-4o\" and", "model == \"gpt-4\" and"),
        ("retry 1", "retry 2"),
        ("when stream", "when not stream"),
        ("3s over 1m", "3s over 2m"),
        (
            "failover to openai/gpt-4o\n",
            "failover to openai/gpt-4o-mini\n",
        ),
        ("1k requests", "2k requests"),
    ];
    for (from, to) in edits {
        assert!(BASE.contains(from), "{from}");
        let changed = snapshot(&BASE.replacen(from, to, 1));
        assert_ne!(
            changed.hash, s1.hash,
            "editing {from:?} → {to:?} kept the hash"
        );
    }
    // Comments and layout do not change the hash.
    let relaid = snapshot(&format!(
        "# a comment\n{}",
        BASE.replace("\n  retry 1", "\n\n      retry 1  # one retry")
    ));
    assert_eq!(relaid.hash, s1.hash);
}
