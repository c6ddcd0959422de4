//! What `affinity by ...` adds to a request's routing: the rendezvous choice in `decide`, the
//! session memory lookup and load check in the candidate order, the in-flight count, and
//! hashing a conversation's prefix. Each pair of lines compares the same split with and
//! without affinity; the goal is under 1 µs added.
//!
//! `cargo bench -p switchyard-proxy --bench affinity`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::value::RawValue;
use switchyard_dsl::ir::{Provider, ProviderKind, Snapshot};
use switchyard_dsl::{RequestView, Source, decide};
use switchyard_proxy::router::affinity::AffinityState;
use switchyard_proxy::router::health::HealthRegistry;
use switchyard_proxy::router::observe::RoutingObserver;
use switchyard_proxy::router::select;
use switchyard_proxy::router::stats::StatsRegistry;

fn snapshot(policy: &str) -> Snapshot {
    let catalogue = [
        Provider::new("openai", ProviderKind::Mock, &["gpt-4o"]),
        Provider::new("deepseek", ProviderKind::Mock, &["deepseek-chat"]),
        Provider::new("anthropic", ProviderKind::Mock, &["claude-sonnet-4"]),
    ];
    let sources = [Source::new("bench.policy", policy)];
    switchyard_dsl::compile(&sources, &catalogue)
        .snapshot
        .expect("the bench policy compiles")
}

const SPLIT: &str = "route chat {\n  split { 70% openai/gpt-4o, 20% deepseek/deepseek-chat, 10% anthropic/claude-sonnet-4 }\n";

fn routing(c: &mut Criterion) {
    let plain = snapshot(&format!("{SPLIT}}}\n"));
    let sticky = snapshot(&format!(
        "{SPLIT}  affinity by header(\"x-session-id\") for 10m\n}}\n"
    ));
    let headers = [("x-session-id", "3f1c9a70-5b8e-4d2a-9c61-0e7d2b4a8f15")];
    let req = RequestView {
        model: "gpt-4o",
        headers: &headers,
        ..RequestView::default()
    };
    c.bench_function("decide: split of 3, drawn", |b| {
        b.iter(|| black_box(decide(&plain, black_box(&req), 0.42)))
    });
    c.bench_function("decide: split of 3, affinity by header", |b| {
        b.iter(|| black_box(decide(&sticky, black_box(&req), 0.42)))
    });

    let registry = prometheus::Registry::new();
    let observer = RoutingObserver::new(&registry);
    let health = HealthRegistry::default();
    let stats = Arc::new(StatsRegistry::default());
    let affinity = AffinityState::default();
    let reg = select::Registries {
        stats: &stats,
        health: &health,
        observer: &observer,
        affinity: &affinity,
    };
    let mut rng = fastrand::Rng::with_seed(3);
    c.bench_function("decide + order: split of 3, drawn", |b| {
        b.iter(|| {
            let d = decide(&plain, &req, 0.42).expect("routes");
            black_box(select::order(&plain, &d, reg, &mut rng))
        })
    });
    c.bench_function(
        "decide + order: affinity, session at its first choice",
        |b| {
            b.iter(|| {
                let d = decide(&sticky, &req, 0.42).expect("routes");
                black_box(select::order(&sticky, &d, reg, &mut rng))
            })
        },
    );
    let d = decide(&sticky, &req, 0.42).expect("routes");
    let session = d.session().expect("a session");
    affinity.served(
        session,
        Some("openai/gpt-4o"),
        "deepseek/deepseek-chat",
        Duration::from_secs(600),
    );
    c.bench_function("decide + order: affinity, remembered session", |b| {
        b.iter(|| {
            let d = decide(&sticky, &req, 0.42).expect("routes");
            black_box(select::order(&sticky, &d, reg, &mut rng))
        })
    });
    c.bench_function("affinity: count a request in flight", |b| {
        b.iter(|| black_box(affinity.start("chat", "openai/gpt-4o")))
    });
}

fn prefix(c: &mut Criterion) {
    // A system prompt of ~2,000 tokens and ten turns after it.
    let mut messages =
        vec![serde_json::json!({"role": "system", "content": "Rules. ".repeat(1_150)})];
    for k in 0..10 {
        messages.push(
            serde_json::json!({"role": "user", "content": format!("question {k} ").repeat(40)}),
        );
        messages.push(
            serde_json::json!({"role": "assistant", "content": format!("answer {k} ").repeat(60)}),
        );
    }
    let raw: Box<RawValue> = serde_json::value::to_raw_value(&messages).expect("raw");
    c.bench_function("affinity: prefix(1k) of a 10-turn conversation", |b| {
        b.iter(|| {
            black_box(switchyard_proxy::router::session::prefix(
                "chat", 1_000, &raw,
            ))
        })
    });
}

criterion_group!(benches, routing, prefix);
criterion_main!(benches);
