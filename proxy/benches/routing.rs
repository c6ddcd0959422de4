//! Cost of latency-aware routing per request: recording an attempt's sample, reading a
//! window's percentiles, and ordering a decision's candidates (latency triggers checked,
//! `fastest of` ranked) — the work every request now does before its first upstream byte.
//!
//! `cargo bench -p switchyard-proxy --bench routing`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_dsl::ir::{Provider, ProviderKind, Snapshot};
use switchyard_dsl::{RequestFeatures, Source, decide};
use switchyard_proxy::router::affinity::AffinityState;
use switchyard_proxy::router::health::HealthRegistry;
use switchyard_proxy::router::observe::RoutingObserver;
use switchyard_proxy::router::select;
use switchyard_proxy::router::stats::{self, Sample, Series, StatsRegistry, clock_ms};

struct Chat;

impl RequestFeatures for Chat {
    fn model(&self) -> &str {
        "chat"
    }
    fn header(&self, _: &str) -> Option<&str> {
        None
    }
    fn key(&self) -> Option<&str> {
        None
    }
    fn team(&self) -> Option<&str> {
        None
    }
    fn user(&self) -> Option<&str> {
        None
    }
    fn prompt_tokens(&self) -> u64 {
        100
    }
    fn stream(&self) -> bool {
        false
    }
}

fn snapshot(policy: &str) -> Snapshot {
    let catalogue = [Provider::new("p", ProviderKind::Mock, &["a", "b", "c"])];
    let sources = [Source::new("bench.policy", policy)];
    switchyard_dsl::compile(&sources, &catalogue)
        .snapshot
        .expect("the bench policy compiles")
}

fn sample(ms: f64) -> Sample {
    Sample {
        ttft_ms: Some(ms),
        total_ms: Some(ms * 3.0),
        error: false,
    }
}

fn stats(c: &mut Criterion) {
    let series = Series::new(60_000);
    let mut i = 0u64;
    c.bench_function("stats: record one sample (ttft + total)", |b| {
        b.iter(|| {
            i += 1;
            series.record_at(black_box(sample((i % 2_000) as f64)), 1_000);
        })
    });
    c.bench_function("stats: cached window summary", |b| {
        b.iter(|| black_box(series.summary_at(1_000)))
    });
    let busy = Series::new(60_000);
    let mut t = 1_000u64;
    c.bench_function(
        "stats: refresh a 1m window (merge 10 slots + percentiles)",
        |b| {
            b.iter(|| {
                // Time moves one refresh interval per call: every call merges afresh, over
                // a window kept full of samples spread from 1 ms to 4 s.
                t += stats::REFRESH_MS;
                for k in 0..20u64 {
                    busy.record_at(sample(((t * 7 + k * 131) % 4_000 + 1) as f64), t);
                }
                black_box(busy.summary_at(t))
            })
        },
    );
}

fn ordering(c: &mut Criterion) {
    let registry = prometheus::Registry::new();
    let observer = RoutingObserver::new(&registry);
    let health = HealthRegistry::default();
    let affinity = AffinityState::default();
    let stats = Arc::new(StatsRegistry::default());
    for name in ["p/a", "p/b", "p/c"] {
        let t = stats.target(name);
        for s in [2_000, 60_000].map(|w| t.series(w)) {
            for k in 0..500 {
                s.record_at(sample(100.0 + f64::from(k)), clock_ms());
            }
        }
    }
    let plain = snapshot("route chat {\n  use p/a\n  failover to p/b, p/c\n}\n");
    let latency = snapshot(
        "route chat {\n  use p/a\n  failover to p/b, p/c when status 5xx or \
         p95(ttft) > 2s over 2s or error_rate > 5% over 2s\n}\n",
    );
    let fastest = snapshot("route chat {\n  fastest of p/a, p/b, p/c by p90(ttft)\n}\n");
    let mut rng = fastrand::Rng::with_seed(3);
    for (label, snap) in [
        ("order: use + failover, no triggers", &plain),
        ("order: latency + error-rate triggers", &latency),
        ("order: fastest of 3", &fastest),
    ] {
        c.bench_function(label, |b| {
            b.iter(|| {
                let d = decide(snap, &Chat, 0.5).expect("routes");
                let reg = select::Registries {
                    stats: &stats,
                    health: &health,
                    observer: &observer,
                    affinity: &affinity,
                };
                black_box(select::order(snap, &d, reg, &mut rng))
            })
        });
    }
}

criterion_group!(benches, stats, ordering);
criterion_main!(benches);
