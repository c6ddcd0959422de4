//! Where a target stands for a route right now: in rotation, degraded by one of the route's
//! latency or error-rate triggers (with why), rate limited by its provider, or ejected by
//! passive health. Both the candidate order (`select`) and the admin view (`observe`) read
//! it.

use switchyard_dsl::ir::{LatencyKind, LatencyMetric, Route};

use super::health::{Admission, HealthRegistry};
use super::stats::{ERROR_RATE_MIN_SAMPLES, TargetStats};

/// A target's standing for one route right now.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// In rotation; `probe` = out of rotation but this request measures it.
    Available { probe: bool },
    /// A latency or error-rate trigger of the route fires: why.
    Degraded(String),
    /// The provider asked for a pause this much longer (ms).
    RateLimited(u64),
    /// Passive health ejected it (consecutive failures).
    Ejected,
}

impl Standing {
    pub fn available(&self) -> bool {
        matches!(self, Self::Available { .. })
    }

    /// Why the target was passed over, for the `x-switchyard-failover` header and logs.
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::Available { .. } => None,
            Self::Degraded(why) => Some(format!("degraded, {why}")),
            Self::RateLimited(ms) => Some(format!("rate limited for {ms}ms")),
            Self::Ejected => Some("ejected after consecutive failures".into()),
        }
    }
}

/// `p95(ttft)` as policies write it.
pub fn metric_name(m: LatencyMetric) -> String {
    let kind = match m.kind {
        LatencyKind::Ttft => "ttft",
        LatencyKind::Total => "latency",
    };
    let (whole, frac) = (m.percentile_centi / 100, m.percentile_centi % 100);
    if frac == 0 {
        format!("p{whole}({kind})")
    } else {
        format!(
            "p{whole}.{}({kind})",
            format!("{frac:02}").trim_end_matches('0')
        )
    }
}

pub(crate) fn duration_name(ms: u64) -> String {
    match ms {
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// Probe requests per window while a target is degraded.
pub(crate) const PROBES_PER_WINDOW: u64 = 5;

/// Why `route`'s latency or error-rate triggers take `stats`' target out of rotation, if they
/// do, and how often a probe request may still measure it (so recovery is observed).
///
/// A trigger decides only on `min_samples` samples, except for a target already degraded
/// (`sticky`): it stays out while what little the window holds (its probes) is still over
/// the threshold, so it does not flap back in as old samples age out. An empty window lets
/// it back in.
pub fn degradation(
    route: &Route,
    stats: &TargetStats,
    now_ms: u64,
    sticky: bool,
) -> Option<(String, u64)> {
    let enough = |samples: u64, min: u64| samples >= min || (sticky && samples > 0);
    for t in &route.triggers.latency {
        let summary = stats.series(t.window_ms).summary_at(now_ms);
        let (value, samples) = summary.percentile(t.metric);
        if let Some(v) = value
            && enough(samples, u64::from(t.min_samples))
            && v > t.threshold_ms as f64
        {
            let why = format!(
                "{} {v:.0}ms > {}ms over {} ({samples} samples)",
                metric_name(t.metric),
                t.threshold_ms,
                duration_name(t.window_ms),
            );
            return Some((why, t.window_ms / PROBES_PER_WINDOW));
        }
    }
    if let Some(t) = &route.triggers.error_rate {
        let summary = stats.series(t.window_ms).summary_at(now_ms);
        if let Some(bp) = summary.error_rate_bp()
            && enough(summary.requests, ERROR_RATE_MIN_SAMPLES)
            && bp > u64::from(t.threshold_bp)
        {
            let why = format!(
                "error_rate {:.1}% > {:.1}% over {} ({} of {} failed)",
                bp as f64 / 100.0,
                f64::from(t.threshold_bp) / 100.0,
                duration_name(t.window_ms),
                summary.errors,
                summary.requests,
            );
            return Some((why, t.window_ms / PROBES_PER_WINDOW));
        }
    }
    None
}

/// The standing of one target for `route`; may claim a probe slot (health's half-open probe
/// or a degraded target's measurement request — unless `actively_checked`: its provider's
/// health checks measure it instead). `was_degraded`: the route found it degraded last time.
pub fn standing(
    route: &Route,
    name: &str,
    stats: &TargetStats,
    health: &HealthRegistry,
    now_ms: u64,
    was_degraded: bool,
    actively_checked: bool,
) -> Standing {
    match health.admit(name) {
        Admission::Ejected => return Standing::Ejected,
        Admission::Probe => return Standing::Available { probe: true },
        Admission::Healthy => {}
    }
    if let Some(ms) = stats.rate_limited_for(now_ms) {
        return Standing::RateLimited(ms);
    }
    match degradation(route, stats, now_ms, was_degraded) {
        None => {
            if was_degraded {
                stats.reset_probes();
            }
            Standing::Available { probe: false }
        }
        Some((_, every)) if !actively_checked && stats.claim_probe(now_ms, every.max(100)) => {
            Standing::Available { probe: true }
        }
        Some((why, _)) => Standing::Degraded(why),
    }
}
