//! Active health checks (`spec.healthCheck` of an LLMProvider): on its schedule, each model of
//! the provider that a route uses gets a one-token streamed completion. The result counts
//! like a request — a time-to-first-token and total sample, or an error — so an ejected
//! target is readmitted by a passing check and a degraded one is seen to recover without
//! client requests as probes (a target with checks gets no probe requests).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_dsl::ir::{HealthCheck, Provider, TargetId};

use super::classify::{Failure, MAX_RATE_LIMIT_WAIT};
use super::health::HealthRegistry;
use super::stats::{InFlight, Sample, StatsRegistry, clock_ms};
use crate::api::Endpoint;
use crate::config::{ConfigHandle, CredentialState};
use crate::providers::{AttemptError, AttemptRequest, Providers, ResponseSource};

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

/// What the registries need to hear about one check.
#[derive(Debug)]
pub struct CheckResult {
    pub sample: Option<Sample>,
    /// `Some(true)` success, `Some(false)` a failure that counts against health.
    pub healthy: Option<bool>,
    pub rate_limited_for: Option<Duration>,
    pub detail: String,
}

async fn read_to_end(source: &mut dyn ResponseSource) -> Result<(), AttemptError> {
    while source.next_chunk().await?.is_some() {}
    Ok(())
}

/// Runs one check of `model` on `provider`.
pub async fn check(
    providers: &Providers,
    provider: &Provider,
    credential: Option<&CredentialState>,
    model: &str,
    hc: HealthCheck,
) -> CheckResult {
    let started = Instant::now();
    let timeout = Duration::from_millis(hc.timeout_ms);
    let failed = |e: AttemptError| {
        let f = Failure::from_attempt(&e);
        let waited = started.elapsed().as_secs_f64() * 1e3;
        let timed_out = matches!(e, AttemptError::Timeout(_));
        CheckResult {
            sample: Some(Sample {
                ttft_ms: timed_out.then_some(waited),
                total_ms: timed_out.then_some(waited),
                error: true,
            }),
            healthy: Some(false),
            rate_limited_for: None,
            detail: f.detail,
        }
    };
    let adapter = match providers.adapter(provider.kind) {
        Ok(a) => a,
        Err(e) => return failed(e),
    };
    let req = AttemptRequest {
        endpoint: Endpoint::ChatCompletions,
        provider,
        credential,
        model,
        body: check_body(model),
        native: None,
        stream: true,
        connect_timeout: timeout,
        read_timeout: timeout,
    };
    let first = tokio::time::timeout(timeout, async {
        let mut source = adapter.open(&req).await?;
        if !(200..300).contains(&source.status()) {
            return Ok(Err(source));
        }
        let first = source.next_chunk().await?;
        Ok(Ok((source, first)))
    })
    .await
    .unwrap_or(Err(AttemptError::Timeout("health check")));
    let (mut source, ttft) = match first {
        Err(e) => return failed(e),
        Ok(Err(mut source)) => {
            let status = source.status();
            let retry_after = source.header("retry-after").map(str::to_owned);
            let mut body = Vec::new();
            let _ = tokio::time::timeout(timeout, async {
                while let Ok(Some(c)) = source.next_chunk().await {
                    body.extend_from_slice(&c);
                    if body.len() > 64 * 1024 {
                        break;
                    }
                }
            })
            .await;
            source.finish().await;
            let f = Failure::from_response(status, &body, retry_after.as_deref());
            let counts = f.counts_against_health();
            return CheckResult {
                sample: counts.then_some(Sample {
                    error: true,
                    ..Sample::default()
                }),
                healthy: counts.then_some(false),
                rate_limited_for: f.retry_after.map(|d| d.min(MAX_RATE_LIMIT_WAIT)),
                detail: f.detail,
            };
        }
        Ok(Ok((source, Some(_)))) => (source, started.elapsed()),
        Ok(Ok((source, None))) => {
            source.finish().await;
            return failed(AttemptError::Protocol("empty stream".into()));
        }
    };
    let rest = tokio::time::timeout(timeout, read_to_end(source.as_mut())).await;
    source.finish().await;
    match rest {
        Ok(Ok(())) => CheckResult {
            sample: Some(Sample::ok(ttft, started.elapsed())),
            healthy: Some(true),
            rate_limited_for: None,
            detail: "ok".into(),
        },
        Ok(Err(e)) => failed(e),
        Err(_) => failed(AttemptError::Timeout("health check")),
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
                let target_stats = stats.target(&name);
                let result = {
                    let _in_flight = InFlight::new(&target_stats);
                    check(&providers, &provider, credential.as_ref(), &model, hc).await
                };
                if let Some(s) = result.sample {
                    target_stats.record(s);
                }
                match result.healthy {
                    Some(true) => health.success(&name),
                    Some(false) => {
                        tracing::warn!(target = %name, detail = %result.detail, "health check failed");
                        health.failure(&name);
                    }
                    None => {}
                }
                if let Some(d) = result.rate_limited_for {
                    target_stats.rate_limit_until(clock_ms() + d.as_millis() as u64);
                }
                if let Ok(mut r) = running.lock() {
                    r.remove(&name);
                }
            });
        }
    }
}
