//! `affinity by ...`: parsing, formatting, checks (golden diagnostics), lowering, and the
//! session → target mapping of `decide` and `explain`.

mod common;

use common::catalogue;

use switchyard_dsl::affinity::{DEFAULT_IDLE_MS, WithBody, choose, ranking};
use switchyard_dsl::explain::explain;
use switchyard_dsl::ir::{Affinity, AffinityKey, Selection, Snapshot};
use switchyard_dsl::{RequestView, Source, compile, decide, render_all};

fn compiled(text: &str) -> (Option<Snapshot>, String) {
    let sources = [Source::new("policy.sy", text)];
    let c = compile(&sources, &catalogue());
    (c.snapshot, render_all(&c.diagnostics, &sources))
}

fn snapshot(text: &str) -> Snapshot {
    match compiled(text) {
        (Some(s), _) => s,
        (None, diags) => panic!("does not compile:\n{diags}"),
    }
}

fn diagnose(text: &str) -> String {
    compiled(text).1
}

fn split(weights: (u32, u32), affinity: &str) -> Snapshot {
    snapshot(&format!(
        "route chat {{\n  split {{ {}% openai/gpt-4o, {}% deepseek/deepseek-chat }}\n  {affinity}\n}}\n",
        weights.0, weights.1
    ))
}

fn session(id: &str) -> [(&str, &str); 1] {
    [("x-session-id", id)]
}

#[test]
fn every_session_source_lowers() {
    let cases = [
        (
            "affinity by header(\"X-Session-Id\") for 30m",
            AffinityKey::Header("x-session-id".into()),
            1_800_000,
        ),
        (
            "affinity by body(\"prompt_cache_key\")",
            AffinityKey::Body("prompt_cache_key".into()),
            DEFAULT_IDLE_MS,
        ),
        (
            "affinity by body(\"metadata.user_id\") for 1h",
            AffinityKey::Body("metadata.user_id".into()),
            3_600_000,
        ),
        (
            "affinity by prefix(1k) for 5m",
            AffinityKey::Prefix { tokens: 1_000 },
            300_000,
        ),
        ("affinity by key", AffinityKey::Key, DEFAULT_IDLE_MS),
        ("affinity by user for 90s", AffinityKey::User, 90_000),
    ];
    for (text, by, idle_ms) in cases {
        let s = split((50, 50), text);
        assert_eq!(
            s.routes[0].affinity,
            Some(Affinity { by, idle_ms }),
            "{text}"
        );
    }
    // A route without affinity has none, and its JSON (so its hash) does not mention it.
    let plain = snapshot("route chat {\n  use openai/gpt-4o\n}\n");
    assert_eq!(plain.routes[0].affinity, None);
    assert!(
        !serde_json::to_string(&plain)
            .expect("json")
            .contains("affinity")
    );
}

#[test]
fn fmt_prints_affinity_back() {
    let text = "route chat {\n  split { 50% openai/gpt-4o, 50% deepseek/deepseek-chat }\n  affinity   by   header( \"x-session-id\" )   for 10m\n}\nroute two {\n  use openai/gpt-4o\n  failover to deepseek/deepseek-chat\n  affinity by prefix(2k)\n}\n";
    let formatted =
        switchyard_dsl::fmt::format_source(switchyard_dsl::SourceId(0), &Source::new("p", text))
            .expect("formats");
    assert!(
        formatted.contains("  affinity by header(\"x-session-id\") for 10m\n"),
        "{formatted}"
    );
    assert!(
        formatted.contains("  affinity by prefix(2k)\n"),
        "{formatted}"
    );
    // Formatting is idempotent and keeps the meaning.
    let again = switchyard_dsl::fmt::format_source(
        switchyard_dsl::SourceId(0),
        &Source::new("p", &formatted),
    )
    .expect("formats");
    assert_eq!(again, formatted);
    assert_eq!(snapshot(text).hash, snapshot(&formatted).hash);
}

#[test]
fn bad_affinity_clauses() {
    insta::assert_snapshot!(diagnose(
        "route a {\n  when model == \"a\"\n  use openai/gpt-4o\n  failover to deepseek/deepseek-chat\n  affinity by cookie(\"sid\")\n}\n\
         route b {\n  when model == \"b\"\n  use openai/gpt-4o\n  failover to deepseek/deepseek-chat\n  affinity by header\n}\n\
         route c {\n  when model == \"c\"\n  use openai/gpt-4o\n  failover to deepseek/deepseek-chat\n  affinity by prefix(0)\n}\n\
         route d {\n  when model == \"d\"\n  use openai/gpt-4o\n  failover to deepseek/deepseek-chat\n  affinity by key(\"x\") for 2d\n}\n\
         route e {\n  when model == \"e\"\n  use openai/gpt-4o\n  failover to deepseek/deepseek-chat\n  affinity by body(\"a..b\") for 10\n}\n\
         route f {\n  when model == \"f\"\n  use openai/gpt-4o\n  failover to deepseek/deepseek-chat\n  affinity by user\n  affinity by key\n}\n"
    ));
}

#[test]
fn affinity_without_a_choice_is_a_warning() {
    let (snapshot, diags) = compiled("route a {\n  use openai/gpt-4o\n  affinity by key\n}\n");
    assert!(snapshot.is_some(), "a warning only");
    insta::assert_snapshot!(diags);
}

#[test]
fn a_broken_affinity_statement_is_a_parse_error() {
    insta::assert_snapshot!(diagnose(
        "route a {\n  split { 50% openai/gpt-4o, 50% deepseek/deepseek-chat }\n  affinity header(\"x\")\n}\n"
    ));
}

/// Over many sessions each arm gets its weight's share, and every turn of one session the
/// same arm, whatever the draw.
#[test]
fn sessions_follow_the_weights_and_stay_put() {
    for weights in [(50, 50), (90, 10), (70, 30)] {
        let s = split(weights, "affinity by header(\"x-session-id\")");
        const N: usize = 20_000;
        let mut first = 0usize;
        for i in 0..N {
            let id = format!("session-{i}");
            let headers = session(&id);
            let req = RequestView {
                model: "gpt-4o",
                headers: &headers,
                ..RequestView::default()
            };
            let d = decide(&s, &req, 0.0).expect("routes");
            for draw in [0.3, 0.999] {
                let again = decide(&s, &req, draw).expect("routes");
                assert_eq!(again.primary(), d.primary(), "one session, one target");
            }
            first += usize::from(d.split_arm() == Some(0));
        }
        let share = first as f64 / N as f64;
        let want = f64::from(weights.0) / 100.0;
        assert!(
            (share - want).abs() < 0.01,
            "{weights:?}: first arm share {share}"
        );
    }
}

/// When a session's arm is out, its next choice follows the remaining weights, and the
/// sessions of the other arms do not move.
#[test]
fn next_choices_follow_the_remaining_weights() {
    let s = snapshot(
        "route chat {\n  split { 50% openai/gpt-4o, 30% deepseek/deepseek-chat, 20% mistral/mistral-large }\n  affinity by key\n}\n",
    );
    let Selection::Split(arms) = &s.routes[0].selection else {
        panic!("a split")
    };
    let out = arms[0].target;
    let mut counts = [0usize; 3];
    const N: u64 = 20_000;
    for session in 0..N {
        let session = session.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let home = choose(&s, arms, session, |_| true).expect("an arm");
        let next = choose(&s, arms, session, |t| t != out).expect("an arm");
        if home != 0 {
            assert_eq!(next, home, "sessions of the other arms stay");
        }
        assert_eq!(ranking(&s, arms, session)[0].0, home);
        if home == 0 {
            counts[next] += 1;
        }
    }
    let moved = (counts[1] + counts[2]) as f64;
    assert!(
        (counts[1] as f64 / moved - 0.6).abs() < 0.02,
        "30:20 → 60% of the moved sessions on the second arm: {counts:?}"
    );
}

#[test]
fn requests_without_a_session_key_are_drawn() {
    let s = split((50, 50), "affinity by header(\"x-session-id\")");
    let req = RequestView {
        model: "gpt-4o",
        ..RequestView::default()
    };
    let low = decide(&s, &req, 0.1).expect("routes");
    let high = decide(&s, &req, 0.9).expect("routes");
    assert_eq!(low.session(), None);
    assert_eq!((low.split_arm(), high.split_arm()), (Some(0), Some(1)));
    // An empty value is no key either.
    let headers = session("");
    let empty = RequestView {
        model: "gpt-4o",
        headers: &headers,
        ..RequestView::default()
    };
    assert_eq!(decide(&s, &empty, 0.1).expect("routes").session(), None);
}

#[test]
fn body_and_prefix_keys_read_the_body() {
    let s = split((50, 50), "affinity by body(\"metadata.user_id\")");
    let req = RequestView {
        model: "gpt-4o",
        ..RequestView::default()
    };
    let body = serde_json::json!({"model": "gpt-4o", "metadata": {"user_id": "u-1"}});
    let with = WithBody {
        request: req,
        body: &body,
    };
    assert!(decide(&s, &with, 0.5).expect("routes").session().is_some());
    assert_eq!(decide(&s, &req, 0.5).expect("routes").session(), None);

    let s = split((50, 50), "affinity by prefix(256)");
    let turn = |n: usize| {
        let mut messages = vec![
            serde_json::json!({"role": "system", "content": "You are a careful assistant."}),
            serde_json::json!({"role": "user", "content": "Summarize the yard report."}),
        ];
        for k in 1..n {
            messages
                .push(serde_json::json!({"role": "assistant", "content": format!("answer {k}")}));
            messages.push(serde_json::json!({"role": "user", "content": format!("question {k}")}));
        }
        serde_json::json!({"model": "gpt-4o", "messages": messages})
    };
    let sessions: Vec<Option<u64>> = (1..=3)
        .map(|n| {
            let body = turn(n);
            let with = WithBody {
                request: req,
                body: &body,
            };
            decide(&s, &with, 0.5).expect("routes").session()
        })
        .collect();
    assert!(sessions[0].is_some());
    assert!(sessions.iter().all(|s| *s == sessions[0]), "{sessions:?}");
}

#[test]
fn explain_shows_the_sessions_choice() {
    let s = split((90, 10), "affinity by header(\"x-session-id\") for 10m");
    let headers = session("abc");
    let req = RequestView {
        model: "gpt-4o",
        headers: &headers,
        ..RequestView::default()
    };
    let ex = explain(&s, &req, 0.5);
    let d = decide(&s, &req, 0.5).expect("routes");
    let chosen = s.target_name(d.primary());
    let selection = ex.selection.clone().expect("a selection");
    assert!(selection.starts_with("split by session "), "{selection}");
    assert!(selection.ends_with(&format!("→ `{chosen}`")), "{selection}");
    assert_eq!(ex.candidates[0], chosen);
    let text = ex.to_string();
    assert!(
        text.contains("affinity: by header(\"x-session-id\") for 10m: session "),
        "{text}"
    );
    let none = RequestView {
        model: "gpt-4o",
        ..RequestView::default()
    };
    let text = explain(&s, &none, 0.5).to_string();
    assert!(text.contains("this request has no session key"), "{text}");
    assert!(text.contains("draw 0.5000"), "{text}");
}
