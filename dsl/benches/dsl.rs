//! Compile time for a large policy and per-request decision time.
//!
//! Goals: compiling 10,000 routes under 1 s; `decide` on a 100-route policy under 2 µs for a
//! request that matches the last route. The `scale` group compares the linear first-match scan
//! with the model index at 100 / 1,000 / 10,000 routes (issue #19).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_dsl::decide::eval;
use switchyard_dsl::index::RouteIndex;
use switchyard_dsl::ir::{Provider, ProviderKind};
use switchyard_dsl::{RequestView, Snapshot, Source, compile, decide};

const PROVIDERS: usize = 20;
const MODELS: usize = 10;

fn catalogue() -> Vec<Provider> {
    (0..PROVIDERS)
        .map(|p| {
            let models: Vec<(String, u64, u64)> = (0..MODELS)
                .map(|m| {
                    let (input, output) = ((p * 7 + m * 3) as u64, (p * 5 + m * 11) as u64);
                    (format!("model-{m}"), input * 10_000, output * 10_000)
                })
                .collect();
            let models: Vec<(&str, u64, u64)> = models
                .iter()
                .map(|(n, i, o)| (n.as_str(), *i, *o))
                .collect();
            Provider::priced(
                format!("provider-{p}"),
                ProviderKind::OpenaiCompatible,
                &models,
            )
        })
        .collect()
}

fn target(i: usize) -> String {
    format!(
        "provider-{}/model-{}",
        i % PROVIDERS,
        (i / PROVIDERS) % MODELS
    )
}

/// `n` routes of varied shape; route `i` matches model `m-i` with header `x-team: t-(i % 50)`.
fn policy(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let selection = match i % 4 {
            0 => format!("use {}", target(i)),
            1 => format!("split {{ 70% {} 30% {} }}", target(i), target(i + 1)),
            2 => format!(
                "cheapest of {}, {}, {}",
                target(i),
                target(i + 3),
                target(i + 7)
            ),
            _ => format!("fastest of {}, {} by p95(ttft)", target(i), target(i + 2)),
        };
        out.push_str(&format!(
            "route r-{i} {{\n  when model == \"m-{i}\" and header(\"x-team\") == \"t-{}\" and prompt_tokens < 100k\n  \
             {selection}\n  failover to {} when status in [429, 5xx] or overloaded or p95(ttft) > 2s over 1m\n  \
             retry 2 backoff 100ms..2s\n  timeout total 60s, first_token 5s\n}}\n",
            i % 50,
            target(i + 5),
        ));
    }
    for i in 0..n / 100 {
        out.push_str(&format!("budget b-{i} {{\n  for team \"t-{i}\"\n  limit 2M tokens per minute, $500 per month\n}}\n"));
    }
    out
}

fn compiled(n: usize) -> Snapshot {
    let compiled = compile(&[Source::new("bench.sy", policy(n))], &catalogue());
    match compiled.snapshot {
        Some(s) => s,
        None => panic!(
            "bench policy does not compile: {:?}",
            compiled.diagnostics.first()
        ),
    }
}

fn bench_compile(c: &mut Criterion) {
    let sources = [Source::new("bench.sy", policy(10_000))];
    let catalogue = catalogue();
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("10k_routes", |b| {
        b.iter(|| compile(black_box(&sources), black_box(&catalogue)))
    });
    group.finish();
}

fn bench_decide(c: &mut Criterion) {
    let snapshot = compiled(100);
    let headers_last = [("x-team", "t-49")];
    let last = RequestView {
        model: "m-99",
        headers: &headers_last,
        prompt_tokens: 500,
        ..Default::default()
    };
    let headers_mid = [("x-team", "t-0")];
    let middle = RequestView {
        model: "m-50",
        headers: &headers_mid,
        prompt_tokens: 500,
        ..Default::default()
    };
    assert_eq!(
        decide(&snapshot, &last, 0.5).map(|d| d.route_index()),
        Some(99)
    );
    assert_eq!(
        decide(&snapshot, &middle, 0.5).map(|d| d.route_index()),
        Some(50)
    );
    let mut group = c.benchmark_group("decide_100_routes");
    for (name, req) in [("last_route", last), ("middle_route", middle)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let d = decide(black_box(&snapshot), black_box(&req), black_box(0.42));
                d.map(|d| d.candidates().count() + d.budgets(&req).count())
            })
        });
    }
    group.finish();
}

/// `n` routes `route rN { when model == "mN" and header("x-team") == "tK" use P/M }`, the
/// shape of issue #19's measurements (K = N mod 50).
fn scale_policy(n: usize) -> String {
    let mut out = String::with_capacity(n * 100);
    for i in 0..n {
        out.push_str(&format!(
            "route r{i} {{\n  when model == \"m{i}\" and header(\"x-team\") == \"t{}\"\n  use {}\n}}\n",
            i % 50,
            target(i)
        ));
    }
    out
}

/// The decision before the model index: the first route in policy order whose condition
/// holds (the selection step after it is the same either way and costs a few ns).
fn linear_route(snapshot: &Snapshot, request: &RequestView<'_>) -> Option<usize> {
    snapshot
        .routes
        .iter()
        .position(|r| eval(&r.condition, request))
}

fn bench_scale(c: &mut Criterion) {
    let catalogue = catalogue();
    let mut group = c.benchmark_group("scale");
    group.sample_size(30);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for n in [100usize, 1_000, 10_000] {
        let compiled = compile(&[Source::new("scale.sy", scale_policy(n))], &catalogue);
        let Some(snapshot) = compiled.snapshot else {
            panic!(
                "scale policy does not compile: {:?}",
                compiled.diagnostics.first()
            )
        };
        let requests: Vec<(&str, String, String, Option<usize>)> =
            [("first", 0), ("middle", n / 2), ("last", n - 1)]
                .into_iter()
                .map(|(name, i)| (name, format!("m{i}"), format!("t{}", i % 50), Some(i)))
                .chain([("no_match", "unknown".to_string(), "t0".to_string(), None)])
                .collect();
        for (name, model, team, expected) in &requests {
            let headers = [("x-team", team.as_str())];
            let req = RequestView {
                model,
                headers: &headers,
                ..Default::default()
            };
            assert_eq!(linear_route(&snapshot, &req), *expected);
            assert_eq!(
                decide(&snapshot, &req, 0.5).map(|d| d.route_index()),
                *expected
            );
            group.bench_function(format!("{n}/{name}/linear"), |b| {
                b.iter(|| linear_route(black_box(&snapshot), black_box(&req)))
            });
            group.bench_function(format!("{n}/{name}/indexed"), |b| {
                b.iter(|| {
                    decide(black_box(&snapshot), black_box(&req), black_box(0.42))
                        .map(|d| d.route_index())
                })
            });
        }
    }
    group.finish();

    let sources = [Source::new("scale.sy", scale_policy(10_000))];
    let mut group = c.benchmark_group("scale_compile");
    group.sample_size(10);
    group.bench_function("10k_routes", |b| {
        b.iter(|| compile(black_box(&sources), black_box(&catalogue)))
    });
    group.finish();

    // What a proxy does with a pushed 10,000-route snapshot: parse the JSON (which rebuilds
    // the route index), and the index build on its own; what a publisher does: JSON and hash.
    let Some(snapshot) = compile(&sources, &catalogue).snapshot else {
        panic!("scale policy does not compile")
    };
    let json = serde_json::to_string(&snapshot).expect("serializes");
    let mut group = c.benchmark_group("scale_load");
    group.sample_size(10);
    group.bench_function("10k_routes_from_json", |b| {
        b.iter(|| serde_json::from_str::<Snapshot>(black_box(&json)).map(|s| s.routes.len()))
    });
    group.bench_function("10k_routes_index_build", |b| {
        b.iter(|| RouteIndex::build(black_box(&snapshot.routes)))
    });
    group.bench_function("10k_routes_to_json", |b| {
        b.iter(|| serde_json::to_vec(black_box(&snapshot)).map(|v| v.len()))
    });
    group.bench_function("10k_routes_hash", |b| {
        b.iter(|| black_box(&snapshot).compute_hash())
    });
    group.finish();
}

criterion_group!(benches, bench_compile, bench_decide, bench_scale);
criterion_main!(benches);
