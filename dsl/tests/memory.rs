//! What a compiled route costs in memory: the heap bytes of a 10,000-route snapshot, counted
//! with an instrumented global allocator (its own test binary, a single test, so nothing else
//! allocates concurrently). Run with `--nocapture` to see the numbers BENCHMARKS.md reports.

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use switchyard_dsl::Snapshot;
use switchyard_dsl::ir::{Provider, ProviderKind};
use switchyard_dsl::{Source, compile};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ROUTES: usize = 10_000;

fn catalogue() -> Vec<Provider> {
    (0..20)
        .map(|p| {
            let models: Vec<String> = (0..10).map(|m| format!("model-{m}")).collect();
            let models: Vec<&str> = models.iter().map(String::as_str).collect();
            Provider::new(
                format!("provider-{p}"),
                ProviderKind::OpenaiCompatible,
                &models,
            )
        })
        .collect()
}

fn target(i: usize) -> String {
    format!("provider-{}/model-{}", i % 20, (i / 20) % 10)
}

/// Issue #19's one-target routes.
fn plain(i: usize) -> String {
    format!(
        "route r{i} {{ when model == \"m{i}\" and header(\"x-team\") == \"t{}\" use {} }}\n",
        i % 50,
        target(i)
    )
}

/// Routes with a split, failover and triggers, retry and timeouts.
fn rich(i: usize) -> String {
    format!(
        "route r{i} {{\n  when model == \"m{i}\" and header(\"x-team\") == \"t{}\"\n  \
         split {{ 70% {} 30% {} }}\n  \
         failover to {} when status in [429, 5xx] or overloaded or p95(ttft) > 2s over 1m\n  \
         retry 2 backoff 100ms..2s\n  timeout total 60s, first_token 5s\n}}\n",
        i % 50,
        target(i),
        target(i + 1),
        target(i + 5)
    )
}

/// Net heap bytes that `f` leaves allocated (what its result holds).
fn retained<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let region = Region::new(GLOBAL);
    let value = f();
    let stats = region.change();
    (
        value,
        stats
            .bytes_allocated
            .saturating_sub(stats.bytes_deallocated),
    )
}

struct Measured {
    compiled: usize,
    cloned: usize,
    from_json: usize,
    json: usize,
    index: usize,
}

fn measure(route: fn(usize) -> String) -> Measured {
    let text: String = (0..ROUTES).map(route).collect();
    let sources = [Source::new("scale.sy", text)];
    let catalogue = catalogue();
    let (compiled, compiled_bytes) = retained(|| compile(&sources, &catalogue));
    let Some(snapshot) = compiled.snapshot else {
        panic!("does not compile: {:?}", compiled.diagnostics.first())
    };
    assert_eq!(snapshot.routes.len(), ROUTES);
    let (copy, cloned) = retained(|| snapshot.clone());
    let json = serde_json::to_string(&snapshot).expect("serializes");
    let (back, from_json) =
        retained(|| serde_json::from_str::<Snapshot>(&json).expect("deserializes"));
    assert_eq!(back, snapshot);
    let (index, index_bytes) = retained(|| snapshot.index().clone());
    drop((copy, back, index));
    Measured {
        compiled: compiled_bytes,
        cloned,
        from_json,
        json: json.len(),
        index: index_bytes,
    }
}

#[test]
fn snapshot_bytes_per_route() {
    for (name, route) in [("one-target", plain as fn(usize) -> String), ("rich", rich)] {
        let m = measure(route);
        println!(
            "{name}: {ROUTES} routes: compiled snapshot {} B/route (clone {} B/route, \
             from JSON {} B/route), JSON {} B/route, route index {} B/route",
            m.compiled / ROUTES,
            m.cloned / ROUTES,
            m.from_json / ROUTES,
            m.json / ROUTES,
            m.index / ROUTES,
        );
        // Generous bounds: a regression to kilobytes per route fails, noise does not.
        assert!(
            m.cloned / ROUTES < 4_096,
            "{name}: {} B/route",
            m.cloned / ROUTES
        );
        assert!(
            m.compiled / ROUTES < 8_192,
            "{name}: {} B/route",
            m.compiled / ROUTES
        );
        assert!(
            m.index / ROUTES < 128,
            "{name}: index {} B/route",
            m.index / ROUTES
        );
        assert!(m.cloned > 0 && m.index > 0);
    }
}
