//! The front end's limits: nesting of every recursive construct and the policy size, proved on
//! a thread with a small stack (so limits, not a big stack, keep each stage safe), with golden
//! renderings of the diagnostics.

mod common;

use std::collections::BTreeMap;

use common::catalogue;
use switchyard_dsl::channel::SnapshotEnvelope;
use switchyard_dsl::explain::{condition_text, explain};
use switchyard_dsl::fmt::format;
use switchyard_dsl::limits::{MAX_NESTING, MAX_POLICY_BYTES};
use switchyard_dsl::{RequestView, Snapshot, Source, SourceId, compile, decide, parse, render_all};

/// Far smaller than the 2 MiB of a spawned thread (the proxy's config watcher, the operator's
/// workers) or the 8 MiB of `main`: input past the limits is refused before anything recurses.
const SMALL_STACK: usize = 256 * 1024;

/// What a policy nested right at the limit needs at most. Unoptimized builds spend several
/// times more stack per frame (pest alone takes about 5 KiB per parenthesis there), so a
/// debug test gets twice the room an optimized build needs; both are a quarter or less of a
/// default thread's stack.
const AT_LIMIT_STACK: usize = if cfg!(debug_assertions) { 512 } else { 256 } * 1024;

/// Runs `f` on a thread with `stack` bytes; a stack overflow aborts the test binary.
fn on_stack<T: Send + 'static>(stack: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(f)
        .expect("spawn a thread")
        .join()
        .expect("the thread does not panic")
}

/// A route whose condition is `cond`.
fn route(cond: &str) -> String {
    format!("route deep {{\n  when {cond}\n  use openai/gpt-4o\n}}\n")
}

/// Each recursive construct of the grammar, nested `n` deep around `model == "gpt-4o"`.
fn shapes(n: usize) -> Vec<(&'static str, String)> {
    let leaf = "model == \"gpt-4o\"";
    let mut groups = String::new();
    for i in 0..n {
        groups.push_str(if i % 2 == 0 {
            "(stream == false and "
        } else {
            "(stream == false or "
        });
    }
    groups.push_str(leaf);
    groups.push_str(&")".repeat(n));
    vec![
        ("not", format!("{}{leaf}", "not ".repeat(n))),
        (
            "parentheses",
            format!("{}{leaf}{}", "(".repeat(n), ")".repeat(n)),
        ),
        (
            "not and parentheses",
            format!("{}{leaf}{}", "not (".repeat(n / 2), ")".repeat(n / 2)),
        ),
        ("and/or groups", groups),
    ]
}

fn request() -> RequestView<'static> {
    RequestView {
        model: "gpt-4o",
        headers: &[],
        key: None,
        team: None,
        user: None,
        prompt_tokens: 10,
        stream: false,
    }
}

/// Every stage over a policy at the limit: compile (parse → check → lower), fmt and reparse,
/// decide, explain, the condition's text, and the control channel's JSON both ways.
fn every_stage(policy: String) -> Result<Snapshot, String> {
    let sources = [Source::new("deep.sy", policy.clone())];
    let compiled = compile(&sources, &catalogue());
    let Some(snapshot) = compiled.snapshot else {
        return Err(render_all(&compiled.diagnostics, &sources));
    };
    let file = parse(SourceId(0), &sources[0]).map_err(|d| render_all(&d, &sources))?;
    let again = format(&file, &policy);
    let reparsed = parse(SourceId(0), &Source::new("deep.sy", again.clone()))
        .map_err(|_| format!("formatted text does not parse:\n{again}"))?;
    if reparsed != file {
        return Err("formatting changed the tree".into());
    }
    decide(&snapshot, &request(), 0.5);
    explain(&snapshot, &request(), 0.5);
    condition_text(&snapshot.routes[0].condition);
    let envelope = SnapshotEnvelope {
        version: 1,
        snapshot: snapshot.clone(),
        credentials: BTreeMap::new(),
        client_keys: Vec::new(),
        traceparent: None,
        shadow: None,
    };
    let json = serde_json::to_string(&envelope).map_err(|e| e.to_string())?;
    let back: SnapshotEnvelope = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    if back != envelope {
        return Err("the envelope changed through JSON".into());
    }
    Ok(snapshot)
}

#[test]
fn every_construct_at_the_limit_passes_every_stage_on_a_small_stack() {
    for (name, cond) in shapes(MAX_NESTING) {
        let result = on_stack(AT_LIMIT_STACK, move || every_stage(route(&cond)));
        if let Err(e) = result {
            panic!("{name} nested {MAX_NESTING} deep: {e}");
        }
    }
}

#[test]
fn every_construct_far_past_the_limit_is_a_located_error_on_a_small_stack() {
    let mut cases = shapes(100_000);
    cases.push(("unclosed parentheses", "(".repeat(100_000)));
    cases.push(("not (", "not (".repeat(50_000)));
    for (name, cond) in cases {
        let policy = route(&cond);
        let out = on_stack(SMALL_STACK, move || {
            let sources = [Source::new("deep.sy", policy)];
            let compiled = compile(&sources, &catalogue());
            assert!(compiled.snapshot.is_none());
            render_all(&compiled.diagnostics, &sources)
        });
        assert!(
            out.starts_with(
                "error: condition nested too deeply: more than 32 levels of `not` and parentheses\n --> deep.sy:2:"
            ),
            "{name}: {out}"
        );
        assert!(out.contains("= help: "), "{name}: {out}");
        assert_eq!(
            out.matches("error: condition nested").count(),
            1,
            "{name}: {out}"
        );
    }
}

#[test]
fn one_level_past_the_limit_of_not() {
    let text = route(&format!("{}stream", "not ".repeat(MAX_NESTING + 1)));
    insta::assert_snapshot!(render_all(&errors(&text), &[Source::new("deep.sy", text)]));
}

#[test]
fn one_level_past_the_limit_of_parentheses() {
    let text = route(&format!(
        "model == \"a\" or\n    {}stream{}",
        "(".repeat(MAX_NESTING + 1),
        ")".repeat(MAX_NESTING + 1)
    ));
    insta::assert_snapshot!(render_all(&errors(&text), &[Source::new("deep.sy", text)]));
}

#[test]
fn a_policy_over_the_size_limit() {
    let line = "# padding padding padding padding padding padding padding padding padding\n";
    let text = format!(
        "route a {{\n  use openai/gpt-4o\n}}\n{}",
        line.repeat(MAX_POLICY_BYTES / line.len() + 1)
    );
    assert!(text.len() > MAX_POLICY_BYTES);
    insta::assert_snapshot!(render_all(&errors(&text), &[Source::new("big.sy", text)]));
}

#[test]
fn a_policy_at_the_size_limit_parses() {
    let head = "route a {\n  use openai/gpt-4o\n}\n";
    let mut text = head.to_string();
    text.push_str(&"#".repeat(MAX_POLICY_BYTES - head.len()));
    assert_eq!(text.len(), MAX_POLICY_BYTES);
    assert!(parse(SourceId(0), &Source::new("big.sy", text)).is_ok());
}

fn errors(text: &str) -> Vec<switchyard_dsl::Diagnostic> {
    match parse(SourceId(0), &Source::new("deep.sy", text)) {
        Ok(_) => panic!("parses, but should not"),
        Err(d) => d,
    }
}
