//! `decide` and iterating its candidates and budgets must not touch the heap: they run on
//! every proxied request. Counted with an instrumented global allocator (its own test binary,
//! a single test, so nothing else allocates concurrently).

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use switchyard_dsl::ir::{Provider, ProviderKind};
use switchyard_dsl::{RequestView, Source, compile, decide};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn provider(name: &str, models: &[&str]) -> Provider {
    Provider::new(name, ProviderKind::Openai, models)
}

const POLICY: &str = r#"
route pinned { when model in ["o1", "o3"] and header("x-pin") == "yes" use openai/gpt-4o }
route a { when model matches "gpt-4*" and not header("x-team") in ["a", "b"] use openai/gpt-4o }
route b { when prompt_tokens > 10k or stream == false and key == "k" use openai/gpt-4o }
route c {
  when team matches "*sup?ort*" and has header("x-user-id") and user != "blocked"
  split { 70% openai/gpt-4o 30% deepseek/deepseek-chat }
  failover to anthropic/claude-sonnet-4, openai/gpt-4o
  affinity by header("x-user-id")
}
route d { cheapest of openai/gpt-4o, deepseek/deepseek-chat failover to anthropic/claude-sonnet-4 }
budget g { for all limit 5 requests per second }
budget t { for team "support-eu" limit 5 requests per second }
budget h { for each user in header "x-user-id" limit 5 requests per second }
budget r { for route c limit $1 per day }
"#;

#[test]
fn decide_does_not_allocate() {
    let catalogue = vec![
        provider("openai", &["gpt-4o"]),
        provider("deepseek", &["deepseek-chat"]),
        provider("anthropic", &["claude-sonnet-4"]),
    ];
    let compiled = compile(&[Source::new("alloc.sy", POLICY)], &catalogue);
    let Some(snapshot) = compiled.snapshot else {
        panic!("does not compile: {:#?}", compiled.diagnostics)
    };
    let headers = [("X-Team", "c"), ("X-User-Id", "42")];
    let requests = [
        RequestView {
            model: "gpt-4o-mini",
            headers: &headers,
            ..Default::default()
        },
        RequestView {
            model: "o1",
            team: Some("support-eu"),
            user: Some("u"),
            headers: &headers,
            stream: true,
            ..Default::default()
        },
        RequestView {
            model: "o1",
            stream: true,
            ..Default::default()
        },
    ];

    let region = Region::new(GLOBAL);
    let mut seen = 0usize;
    for (i, req) in requests.iter().enumerate() {
        for k in 0..100 {
            let draw = f64::from(k) / 100.0;
            let decision = decide(&snapshot, req, draw).expect("every request matches");
            seen += decision.route_index() + i;
            seen += decision.candidates().map(|t| t.0 as usize).sum::<usize>();
            seen += decision
                .budgets(req)
                .map(|(i, b)| i + b.limits.len())
                .sum::<usize>();
            seen += decision.route().retry.attempts as usize;
            seen += usize::from(decision.session().is_some());
        }
    }
    let stats = region.change();
    assert!(seen > 0);
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
}
