//! Active health checks (`spec.healthCheck` of an LLMProvider): on its schedule, each model of
//! the provider that a route uses gets a one-token streamed completion. The result counts
//! like a request — a time-to-first-token and total sample, or an error — so an ejected
//! target is readmitted by a passing check and a degraded one is seen to recover without
//! client requests as probes (a target with checks gets no probe requests).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_dsl::ir::{HealthCheck, TargetId, Timeouts};

use super::attempt::{self, AttemptPlan, Holds, OpenFailure};
use super::classify::Failure;
use super::health::HealthRegistry;
use super::note_failure;
use super::stats::{Sample, StatsRegistry, clock_ms};
use crate::api::Endpoint;
use crate::config::ConfigHandle;
use crate::providers::Providers;

/// How often the schedule is looked at (and configuration changes picked up).
const TICK: Duration = Duration::from_millis(50);

/// The body of a check: as small as a completion gets.
fn check_body(model: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
            "stream": true,
        })
        .to_string(),
    )
}

/// The route-level deadlines of a check: its whole timeout for the first token.
fn check_timeouts(hc: HealthCheck) -> Timeouts {
    Timeouts {
        first_token_ms: Some(hc.timeout_ms),
        ..Timeouts::default()
    }
}

/// Runs one check — an ordinary attempt, read to its end — and tells the registries what it
/// found, as a client request's attempt would.
async fn check(providers: &Providers, plan: &AttemptPlan<'_>, name: &str, health: &HealthRegistry) {
    let failed = |f: OpenFailure| {
        tracing::warn!(target = %name, detail = %f.failure.detail, "health check failed");
        note_failure(health, name, &plan.stats, &f);
    };
    let opened = match attempt::open(providers, plan).await {
        Ok(o) => o,
        Err(f) => return failed(f),
    };
    let (started, ttft) = (opened.started, opened.ttft);
    if let Some(d) = opened.rate_limited_for {
        plan.stats
            .rate_limit_until(clock_ms() + d.as_millis() as u64);
    }
    match opened.drain().await {
        Ok(()) => {
            plan.stats.record(Sample::ok(ttft, started.elapsed()));
            health.success(name);
        }
        Err(e) => failed(OpenFailure {
            failure: Failure::from_attempt(&e),
            response: None,
            waited: started.elapsed(),
        }),
    }
}

/// Runs every provider's checks on their schedules, for as long as the process lives.
pub fn spawn(
    config: Arc<ConfigHandle>,
    providers: Arc<Providers>,
    health: Arc<HealthRegistry>,
    stats: Arc<StatsRegistry>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("health-checks".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "health checks cannot start");
                    return;
                }
            };
            runtime.block_on(schedule(config, providers, health, stats));
        })
        .map(drop)
}

async fn schedule(
    config: Arc<ConfigHandle>,
    providers: Arc<Providers>,
    health: Arc<HealthRegistry>,
    stats: Arc<StatsRegistry>,
) {
    // Next check per target name; a target is checked only once its previous check ended.
    let mut due: HashMap<String, Instant> = HashMap::new();
    let running: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
    let mut version = None;
    loop {
        tokio::time::sleep(TICK).await;
        let cfg = config.current();
        let snapshot = &cfg.snapshot;
        if version != Some(cfg.version) {
            // Targets gone from the configuration stop being scheduled.
            version = Some(cfg.version);
            let names: std::collections::HashSet<String> = (0..snapshot.targets.len())
                .map(|i| snapshot.target_name(TargetId(i as u32)))
                .collect();
            due.retain(|name, _| names.contains(name));
        }
        if snapshot.providers.iter().all(|p| p.health_check.is_none()) {
            continue;
        }
        let now = Instant::now();
        for i in 0..snapshot.targets.len() {
            let target = snapshot.target(TargetId(i as u32));
            let provider = snapshot.provider(target.provider);
            let Some(hc) = provider.health_check else {
                continue;
            };
            let name = snapshot.target_name(TargetId(i as u32));
            let next = due.entry(name.clone()).or_insert(now);
            let busy = running.lock().map_or(true, |r| r.contains(&name));
            if *next > now || busy {
                continue;
            }
            *next = now + Duration::from_millis(hc.interval_ms);
            if let Ok(mut r) = running.lock() {
                r.insert(name.clone());
            }
            let (providers, health, stats, running) = (
                Arc::clone(&providers),
                Arc::clone(&health),
                Arc::clone(&stats),
                Arc::clone(&running),
            );
            let provider = provider.clone();
            let credential = cfg.credentials.get(target.provider.0 as usize).cloned();
            let model = target.model.clone();
            tokio::spawn(async move {
                let timeouts = check_timeouts(hc);
                let plan = AttemptPlan {
                    endpoint: Endpoint::ChatCompletions,
                    timeouts: &timeouts,
                    provider: &provider,
                    credential: credential.as_ref(),
                    model: &model,
                    body: check_body(&model),
                    stream: true,
                    total_deadline: Some(Instant::now() + Duration::from_millis(hc.timeout_ms)),
                    native: None,
                    stats: stats.target(&name),
                    holds: Holds::default(),
                    trace: None,
                    hedge: false,
                };
                check(&providers, &plan, &name, &health).await;
                if let Ok(mut r) = running.lock() {
                    r.remove(&name);
                }
            });
        }
    }
}
