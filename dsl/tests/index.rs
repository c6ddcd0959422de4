//! The model index changes nothing but speed: for random policies and requests, `decide`
//! (which walks the index) picks the route a linear first-match scan picks, `explain` agrees,
//! and a snapshot that went through JSON rebuilds the same index.

mod common;

use common::{catalogue, provider};

use proptest::prelude::*;
use switchyard_dsl::decide::eval;
use switchyard_dsl::explain::explain;
use switchyard_dsl::ir::{
    Condition, NumOp, ProviderId, ProviderKind, Route, Selection, Snapshot, StringMatch, Target,
    TargetId,
};
use switchyard_dsl::{RequestView, Source, compile, decide};

/// The decision as it was before the index: the first route, in policy order, whose
/// condition holds. Kept here, for the tests only.
fn linear(s: &Snapshot, r: &RequestView<'_>) -> Option<usize> {
    s.routes.iter().position(|route| eval(&route.condition, r))
}

const MODELS: [&str; 5] = ["a", "b", "c", "gpt-4o", "gpt-4o-mini"];
const TEAMS: [&str; 3] = ["t0", "t1", "t2"];

fn model() -> impl Strategy<Value = String> {
    prop::sample::select(&MODELS[..]).prop_map(str::to_string)
}

fn string_match(values: &'static [&'static str]) -> impl Strategy<Value = StringMatch> {
    prop_oneof![
        3 => prop::sample::select(values).prop_map(|v| StringMatch::Exact(v.into())),
        2 => prop::sample::subsequence(values, 0..=values.len())
            .prop_map(|vs| StringMatch::OneOf(vs.into_iter().map(str::to_string).collect())),
        1 => prop::sample::select(&["*", "gpt-4*", "?", "t*", "a*"][..])
            .prop_map(|g| StringMatch::Glob(g.into())),
    ]
}

fn leaf() -> impl Strategy<Value = Condition> {
    prop_oneof![
        6 => string_match(&MODELS).prop_map(Condition::Model),
        3 => string_match(&TEAMS).prop_map(|m| Condition::Header {
            name: "x-team".into(),
            matches: m
        }),
        1 => Just(Condition::HasHeader("x-team".into())),
        1 => Just(Condition::Always),
        1 => string_match(&TEAMS).prop_map(Condition::Team),
        1 => (0u64..3_000).prop_map(|value| Condition::PromptTokens { op: NumOp::Lt, value }),
        1 => any::<bool>().prop_map(Condition::Stream),
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    let nested = leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            3 => prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::All),
            2 => prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::Any),
            1 => inner.prop_map(|c| Condition::Not(Box::new(c))),
        ]
    });
    prop_oneof![
        // The common shape: `model == "x" and header("x-team") == "t"`.
        4 => (model(), prop::sample::select(&TEAMS[..])).prop_map(|(m, t)| Condition::All(vec![
            Condition::Model(StringMatch::Exact(m)),
            Condition::Header { name: "x-team".into(), matches: StringMatch::Exact(t.into()) },
        ])),
        4 => nested,
    ]
}

fn route(i: usize, condition: Condition) -> Route {
    Route {
        name: format!("r{i}"),
        origin: "test/index".into(),
        exposed_models: Vec::new(),
        condition,
        selection: Selection::Single(TargetId(0)),
        failover: Vec::new(),
        triggers: Default::default(),
        retry: Default::default(),
        timeouts: Default::default(),
        hedge: None,
        cache_ttl_ms: None,
        affinity: None,
    }
}

fn ir_snapshot(conditions: Vec<Condition>) -> Snapshot {
    let routes = conditions
        .into_iter()
        .enumerate()
        .map(|(i, c)| route(i, c))
        .collect();
    Snapshot::new(
        vec![provider("p", ProviderKind::Mock, &[("m", 0, 0)])],
        vec![Target {
            provider: ProviderId(0),
            model_index: 0,
            model: "m".into(),
        }],
        routes,
        Vec::new(),
    )
    .seal()
}

#[derive(Debug, Clone)]
struct Request {
    model: String,
    team_header: Option<&'static str>,
    team: Option<&'static str>,
    prompt_tokens: u64,
    stream: bool,
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop_oneof![4 => model(), 1 => Just("unknown".to_string()), 1 => Just(String::new())],
        prop::option::of(prop::sample::select(&TEAMS[..])),
        prop::option::of(prop::sample::select(&TEAMS[..])),
        0u64..3_000,
        any::<bool>(),
    )
        .prop_map(
            |(model, team_header, team, prompt_tokens, stream)| Request {
                model,
                team_header,
                team,
                prompt_tokens,
                stream,
            },
        )
}

/// Decides `r` both ways and checks `explain` against them.
fn agree(s: &Snapshot, r: &Request) -> Result<(), TestCaseError> {
    let headers: Vec<(&str, &str)> = r.team_header.iter().map(|t| ("X-Team", *t)).collect();
    let view = RequestView {
        model: &r.model,
        headers: &headers,
        team: r.team,
        prompt_tokens: r.prompt_tokens,
        stream: r.stream,
        ..Default::default()
    };
    let expected = linear(s, &view);
    let indexed = decide(s, &view, 0.5).map(|d| d.route_index());
    prop_assert_eq!(indexed, expected, "request {:?}", r);

    let ex = explain(s, &view, 0.5);
    let expected_name = expected.map(|i| s.routes[i].name.clone());
    prop_assert_eq!(&ex.route, &expected_name);
    let scanned = expected.map_or(s.routes.len(), |i| i + 1);
    prop_assert_eq!(ex.steps.len() + ex.skipped_by_index, scanned);
    prop_assert!(ex.steps.windows(2).all(|w| w[0].index < w[1].index));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn indexed_decision_equals_linear_decision(
        conditions in prop::collection::vec(condition(), 0..24),
        requests in prop::collection::vec(request(), 1..16),
    ) {
        let s = ir_snapshot(conditions);
        for r in &requests {
            agree(&s, r)?;
        }
        // Through the wire: the index is rebuilt on load and comes out identical.
        let json = serde_json::to_string(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!json.contains("\"index\""), "the index is not serialized");
        let back: Snapshot = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.index(), s.index());
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(back.compute_hash(), s.hash.clone());
    }
}

/// One `route` in policy text: a pinned model, a `model in` list, an `or`, a `not`, a glob,
/// a header-only condition, or a catch-all.
fn route_text() -> impl Strategy<Value = String> {
    let m = || prop::sample::select(&MODELS[..]);
    let t = || prop::sample::select(&TEAMS[..]);
    prop_oneof![
        4 => (m(), t()).prop_map(|(m, t)| format!(r#"when model == "{m}" and header("x-team") == "{t}""#)),
        2 => (m(), m()).prop_map(|(a, b)| format!(r#"when model in ["{a}", "{b}"] and prompt_tokens < 1000"#)),
        1 => (m(), t()).prop_map(|(m, t)| format!(r#"when model == "{m}" or header("x-team") == "{t}""#)),
        1 => (m(), m()).prop_map(|(a, b)| format!(r#"when model == "{a}" or model == "{b}""#)),
        1 => m().prop_map(|m| format!(r#"when not (model == "{m}")"#)),
        1 => m().prop_map(|m| format!(r#"when model != "{m}" and stream"#)),
        1 => Just(r#"when model matches "gpt-4*""#.to_string()),
        1 => t().prop_map(|t| format!(r#"when header("x-team") == "{t}""#)),
        1 => Just(String::new()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The same through the whole pipeline (parse → check → lower), from policy text.
    #[test]
    fn compiled_policies_decide_as_the_linear_scan(
        whens in prop::collection::vec(route_text(), 1..16),
        requests in prop::collection::vec(request(), 1..16),
    ) {
        let text: String = whens
            .iter()
            .enumerate()
            .map(|(i, w)| format!("route r{i} {{ {w} use openai/gpt-4o }}\n"))
            .collect();
        let compiled = compile(&[Source::new("index.sy", text.clone())], &catalogue());
        let Some(s) = compiled.snapshot else {
            return Err(TestCaseError::fail(format!("does not compile:\n{text}\n{:#?}", compiled.diagnostics)));
        };
        for r in &requests {
            agree(&s, r)?;
        }
    }
}

#[test]
fn the_index_skips_routes_of_other_models() {
    let mut text = String::new();
    for i in 0..1_000 {
        text.push_str(&format!(
            "route r{i} {{ when model == \"m{i}\" and header(\"x-team\") == \"t{}\" use openai/gpt-4o }}\n",
            i % 7
        ));
    }
    text.push_str("route fallback { when header(\"x-team\") == \"none\" use openai/gpt-4o }\n");
    let compiled = compile(&[Source::new("scale.sy", text)], &catalogue());
    let s = compiled.snapshot.expect("compiles");
    assert_eq!(s.index().model_names(), 1_000);
    assert_eq!(s.index().any_model_routes(), 1);

    let headers = [("x-team", "t5")];
    let last = RequestView {
        model: "m999",
        headers: &headers,
        ..Default::default()
    };
    assert_eq!(decide(&s, &last, 0.5).map(|d| d.route_index()), Some(999));
    let ex = explain(&s, &last, 0.5);
    assert_eq!(ex.steps.len(), 1);
    assert_eq!(ex.skipped_by_index, 999);
    let text = ex.to_string();
    assert!(text.contains("  1000. r999 (scale.sy): matched"), "{text}");
    assert!(
        text.contains("skipped by the model index: 999 routes"),
        "{text}"
    );

    let unknown = RequestView {
        model: "m-unknown",
        headers: &headers,
        ..Default::default()
    };
    assert!(decide(&s, &unknown, 0.5).is_none());
    let ex = explain(&s, &unknown, 0.5);
    assert_eq!(ex.steps.len(), 1, "only the any-model route is evaluated");
    assert_eq!(ex.skipped_by_index, 1_000);
    assert!(
        ex.to_string()
            .contains("skipped by the model index: 1,000 routes"),
        "{ex}"
    );
}

#[test]
fn a_snapshot_edited_in_place_is_reindexed() {
    let mut s = ir_snapshot(vec![Condition::Model(StringMatch::Exact("a".into()))]);
    s.routes[0].condition = Condition::Model(StringMatch::Exact("b".into()));
    s.reindex();
    let b = RequestView {
        model: "b",
        ..Default::default()
    };
    assert_eq!(decide(&s, &b, 0.5).map(|d| d.route_index()), Some(0));
    assert_eq!(linear(&s, &b), Some(0));
}
