//! Cost of shadow evaluation per request: deciding the `--shadow` policy with the live
//! request's features and draw and counting the comparison, next to the live decision alone.
//! The target is under 2 µs per request (issue #18).
//!
//! `cargo bench -p switchyard-proxy --bench shadow`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_dsl::ir::{Provider, ProviderKind, Snapshot};
use switchyard_dsl::{RequestView, Source, decide};
use switchyard_proxy::config::ActiveConfig;
use switchyard_proxy::shadow::Shadow;

/// A policy of `n` routes by model plus a header-tagged route in front, like a team's
/// candidate change.
fn config(n: usize, tagged: bool) -> ActiveConfig {
    let catalogue = [Provider::new("p", ProviderKind::Mock, &["a", "b", "c"])];
    let mut policy = String::new();
    if tagged {
        policy.push_str(
            "route tagged { when model == \"m7\" and header(\"x-team\") == \"a\" use p/c }\n",
        );
    }
    for i in 0..n {
        policy.push_str(&format!(
            "route r{i} {{ when model == \"m{i}\" split {{ 90% p/a, 10% p/b }} failover to p/c }}\n"
        ));
    }
    let snapshot: Snapshot =
        switchyard_dsl::compile(&[Source::new("bench.policy", policy)], &catalogue)
            .snapshot
            .expect("the bench policy compiles")
            .seal();
    ActiveConfig {
        version: 1,
        snapshot,
        ..ActiveConfig::empty()
    }
}

fn shadow(c: &mut Criterion) {
    let live = Arc::new(config(100, false));
    let shadow = Shadow::standalone(config(100, true).snapshot);
    let headers = [("x-team", "a"), ("content-type", "application/json")];
    let same = RequestView {
        model: "m42",
        headers: &headers,
        prompt_tokens: 800,
        ..RequestView::default()
    };
    let changed = RequestView {
        model: "m7",
        ..same
    };
    let mut group = c.benchmark_group("shadow");
    group.bench_function("live decision only", |b| {
        b.iter(|| black_box(decide(&live.snapshot, black_box(&same), 0.5).map(|d| d.primary())))
    });
    for (name, request) in [
        ("live + shadow, same", same),
        ("live + shadow, changed", changed),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let d = decide(&live.snapshot, black_box(&request), 0.5);
                shadow.observe(&live, d.as_ref(), &request, 0.5);
                black_box(d.map(|d| d.primary()))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, shadow);
criterion_main!(benches);
