//! Reconcile against a mocked API server: one scenario per test; a missing, extra or different
//! call fails the test.

use std::sync::Arc;

use serde_json::Value;
use switchyard_crds::RoutePolicy;

use crate::context::Context;
use crate::fixtures::{Call, NS, Scenario, World, provider, route_policy, secret};
use crate::reconcile::reconcile;

const GOOD: &str = "route chat {\n  when model == \"gpt-4o\"\n  use mock-primary/large\n}\n";
const BROKEN: &str = "route chat {\n  when model == \"gpt-4o\"\n  use nope/large\n}\n";

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn json<T: serde::Serialize>(o: &T) -> Value {
    serde_json::to_value(o).expect("json")
}

#[tokio::test]
async fn route_policy_that_compiles_gets_compiled_true_and_a_version() {
    let rp = route_policy("chat", GOOD);
    let world = World {
        providers: vec![provider("mock-primary", None)],
        route_policies: vec![rp.clone()],
        ..World::default()
    };
    let (ctx, verifier, _writers) = Context::test(world);
    let calls = verifier.run(Scenario(vec![Call::PatchStatus {
        plural: "routepolicies",
        name: "chat",
        object: json(&rp),
        check: |status| {
            let compiled = condition(status, "Compiled");
            assert_eq!(compiled["status"], "True", "{compiled}");
            assert_eq!(compiled["reason"], "Compiled");
            assert_eq!(compiled["observedGeneration"], 3);
            assert_eq!(condition(status, "Accepted")["status"], "True");
            assert_eq!(condition(status, "Applied")["reason"], "NoProxies");
            assert_eq!(status["observedGeneration"], 3);
            assert_eq!(status["snapshotVersion"], 1);
            assert_eq!(status["appliedPods"], "0/0");
            assert_eq!(status["snapshotHash"].as_str().map(str::len), Some(64));
            assert!(status.get("diagnostics").is_none(), "{status}");
        },
    }]));
    reconcile(Arc::new(rp), ctx.clone())
        .await
        .expect("reconcile");
    calls.await.expect("scenario played");
    assert_eq!(ctx.publisher.current().map(|p| p.version), Some(1));
}

#[tokio::test]
async fn route_policy_with_an_error_gets_line_column_and_an_event_and_publishes_nothing() {
    let rp = route_policy("chat", BROKEN);
    let world = World {
        providers: vec![provider("mock-primary", None)],
        route_policies: vec![rp.clone()],
        ..World::default()
    };
    let (ctx, verifier, _writers) = Context::test(world);
    let calls = verifier.run(Scenario(vec![
        Call::PatchStatus {
            plural: "routepolicies",
            name: "chat",
            object: json(&rp),
            check: |status| {
                let compiled = condition(status, "Compiled");
                assert_eq!(compiled["status"], "False", "{compiled}");
                assert_eq!(compiled["reason"], "CompileFailed");
                let message = compiled["message"].as_str().expect("message");
                assert!(message.starts_with("3:7: error: "), "{message}");
                assert!(message.contains("`nope`"), "{message}");
                let diag = &status["diagnostics"][0];
                assert_eq!(
                    (diag["line"].as_i64(), diag["column"].as_i64()),
                    (Some(3), Some(7))
                );
                assert_eq!(diag["severity"], "error");
                assert_eq!(condition(status, "Applied")["status"], "False");
            },
        },
        Call::Event {
            check: |event| {
                assert_eq!(event["type"], "Warning");
                assert_eq!(event["reason"], "CompileFailed");
                assert_eq!(event["regarding"]["name"], "chat");
                assert!(event["note"].as_str().is_some_and(|n| n.contains("3:7")));
            },
        },
    ]));
    reconcile(Arc::new(rp), ctx.clone())
        .await
        .expect("reconcile");
    calls.await.expect("scenario played");
    assert!(
        ctx.publisher.current().is_none(),
        "a broken policy published"
    );
}

#[tokio::test]
async fn provider_with_a_missing_secret_is_not_accepted() {
    let p = provider("mock-primary", Some(("openai-key", "apiKey")));
    let world = World {
        providers: vec![p.clone()],
        route_policies: vec![route_policy("chat", GOOD)],
        ..World::default()
    };
    let (ctx, verifier, _writers) = Context::test(world);
    let calls = verifier.run(Scenario(vec![
        Call::PatchStatus {
            plural: "llmproviders",
            name: "mock-primary",
            object: json(&p),
            check: |status| {
                let accepted = condition(status, "Accepted");
                assert_eq!(accepted["status"], "False", "{accepted}");
                assert_eq!(accepted["reason"], "SecretMissing");
                let message = accepted["message"].as_str().expect("message");
                assert!(message.contains(&format!("`{NS}/openai-key`")), "{message}");
                assert!(message.contains("`apiKey`"), "{message}");
            },
        },
        Call::Event {
            check: |event| assert_eq!(event["reason"], "SecretMissing"),
        },
    ]));
    reconcile(Arc::new(p), ctx).await.expect("reconcile");
    calls.await.expect("scenario played");
}

#[tokio::test]
async fn provider_with_a_missing_key_names_the_key_never_the_value() {
    let p = provider("mock-primary", Some(("openai-key", "apiKey")));
    let world = World {
        providers: vec![p.clone()],
        secrets: vec![secret("openai-key", "other", "sk-very-secret")],
        ..World::default()
    };
    let (ctx, verifier, _writers) = Context::test(world);
    let calls = verifier.run(Scenario(vec![
        Call::PatchStatus {
            plural: "llmproviders",
            name: "mock-primary",
            object: json(&p),
            check: |status| {
                let accepted = condition(status, "Accepted");
                assert_eq!(accepted["reason"], "SecretMissing");
                assert!(
                    accepted["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("has no key `apiKey`"))
                );
            },
        },
        Call::Event { check: |_| {} },
    ]));
    reconcile(Arc::new(p), ctx).await.expect("reconcile");
    let seen = calls.await.expect("scenario played");
    assert!(!format!("{seen:?}").contains("sk-very-secret"));
}

#[tokio::test]
async fn resolved_secret_goes_into_the_envelope_and_the_provider_is_accepted() {
    let p = provider("mock-primary", Some(("openai-key", "apiKey")));
    let world = World {
        providers: vec![p.clone()],
        route_policies: vec![route_policy("chat", GOOD)],
        secrets: vec![secret("openai-key", "apiKey", "sk-very-secret")],
        ..World::default()
    };
    let (ctx, verifier, _writers) = Context::test(world);
    let calls = verifier.run(Scenario(vec![Call::PatchStatus {
        plural: "llmproviders",
        name: "mock-primary",
        object: json(&p),
        check: |status| {
            assert_eq!(condition(status, "Accepted")["status"], "True");
            assert!(!status.to_string().contains("sk-very-secret"));
        },
    }]));
    reconcile(Arc::new(p), ctx.clone())
        .await
        .expect("reconcile");
    calls.await.expect("scenario played");
    let live = ctx.publisher.current().expect("published");
    assert!(live.data.contains("\"mock-primary\":\"sk-very-secret\""));
}

#[tokio::test]
async fn unchanged_status_is_not_written_again() {
    let rp = route_policy("chat", GOOD);
    let world = World {
        providers: vec![provider("mock-primary", None)],
        route_policies: vec![rp.clone()],
        ..World::default()
    };
    let (ctx, verifier, _writers) = Context::test(world);
    let calls = verifier.run(Scenario(vec![Call::PatchStatus {
        plural: "routepolicies",
        name: "chat",
        object: json(&rp),
        check: |_| {},
    }]));
    reconcile(Arc::new(rp.clone()), ctx.clone())
        .await
        .expect("first reconcile");
    let written = calls.await.expect("scenario played");
    // The watch now delivers the object with the written status; the verifier is gone, so
    // any further API call would fail this reconcile.
    let mut stored: RoutePolicy = rp;
    stored.status = Some(serde_json::from_value(written[0]["status"].clone()).expect("status"));
    reconcile(Arc::new(stored), ctx.clone())
        .await
        .expect("second reconcile writes nothing");
    assert_eq!(ctx.publisher.current().map(|p| p.version), Some(1));
}

#[tokio::test]
async fn a_policy_nested_far_too_deep_is_a_located_compile_error_not_a_crash() {
    // 100,000 levels of `not`: the recursive stages would overflow this test thread's stack;
    // the compiler's nesting limit refuses it before any of them runs.
    let deep = format!(
        "route chat {{\n  when {}model == \"gpt-4o\"\n  use mock-primary/large\n}}\n",
        "not ".repeat(100_000)
    );
    let rp = route_policy("chat", &deep);
    let world = World {
        providers: vec![provider("mock-primary", None)],
        route_policies: vec![rp.clone()],
        ..World::default()
    };
    let (ctx, verifier, _writers) = Context::test(world);
    let calls = verifier.run(Scenario(vec![
        Call::PatchStatus {
            plural: "routepolicies",
            name: "chat",
            object: json(&rp),
            check: |status| {
                let compiled = condition(status, "Compiled");
                assert_eq!(compiled["status"], "False", "{compiled}");
                assert_eq!(compiled["reason"], "CompileFailed");
                let message = compiled["message"].as_str().expect("message");
                assert!(
                    message.starts_with("2:136: error: condition nested too deeply"),
                    "{message}"
                );
                let diag = &status["diagnostics"][0];
                assert_eq!(
                    (diag["line"].as_i64(), diag["column"].as_i64()),
                    (Some(2), Some(136))
                );
                assert!(
                    diag["help"].as_str().is_some_and(|h| h.contains("32")),
                    "{diag}"
                );
                // The status carries the diagnostic, not the 400 kB line it is about.
                assert!(
                    status.to_string().len() < 8192,
                    "{} bytes",
                    status.to_string().len()
                );
            },
        },
        Call::Event {
            check: |event| assert_eq!(event["reason"], "CompileFailed"),
        },
    ]));
    reconcile(Arc::new(rp), ctx.clone())
        .await
        .expect("reconcile");
    calls.await.expect("scenario played");
    assert!(
        ctx.publisher.current().is_none(),
        "a refused policy published"
    );
}
