//! Passive health per target, keyed by `provider/model` so it survives snapshot swaps:
//! consecutive failures eject a target for a cooldown that grows with each ejection; after
//! it one probe request is let through (half-open) and its outcome decides.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// Consecutive failures that eject a target.
pub const DEFAULT_THRESHOLD: u32 = 5;
/// First ejection's cooldown; doubles per repeated ejection.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(10);
/// Longest cooldown.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(300);
/// A probe that reported nothing for this long no longer blocks the next one.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct TargetState {
    consecutive_failures: u32,
    ejections: u32,
    ejected_until: Option<(Instant, SystemTime)>,
    probe_started: Option<Instant>,
}

/// Whether a target may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Healthy,
    /// Ejected, cooldown over: this request is the probe.
    Probe,
    Ejected,
}

/// What the admin API shows for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetHealthView {
    pub target: String,
    /// `healthy` or `ejected`.
    pub state: &'static str,
    pub consecutive_failures: u32,
    /// Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ejected_until: Option<u64>,
}

/// Health of every target that has failed at least once.
#[derive(Debug)]
pub struct HealthRegistry {
    targets: RwLock<HashMap<String, TargetState>>,
    threshold: u32,
    cooldown: Duration,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        Self::new(DEFAULT_THRESHOLD, DEFAULT_COOLDOWN)
    }
}

impl HealthRegistry {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            targets: RwLock::new(HashMap::new()),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// Whether `target` may be tried now; claims the probe slot when the cooldown is over.
    pub fn admit(&self, target: &str) -> Admission {
        let now = Instant::now();
        {
            let Ok(map) = self.targets.read() else {
                return Admission::Healthy;
            };
            match map
                .get(target)
                .and_then(|s| s.ejected_until.map(|e| (s, e)))
            {
                None => return Admission::Healthy,
                Some((_, (until, _))) if now < until => return Admission::Ejected,
                Some((s, _)) if s.probe_started.is_some_and(|p| now - p < PROBE_TIMEOUT) => {
                    return Admission::Ejected;
                }
                Some(_) => {}
            }
        }
        let Ok(mut map) = self.targets.write() else {
            return Admission::Healthy;
        };
        let Some(s) = map.get_mut(target) else {
            return Admission::Healthy;
        };
        match s.ejected_until {
            None => Admission::Healthy,
            Some((until, _)) if now < until => Admission::Ejected,
            Some(_) if s.probe_started.is_some_and(|p| now - p < PROBE_TIMEOUT) => {
                Admission::Ejected
            }
            Some(_) => {
                s.probe_started = Some(now);
                Admission::Probe
            }
        }
    }

    /// Records a success: the target is healthy again.
    pub fn success(&self, target: &str) {
        let dirty = self
            .targets
            .read()
            .map(|m| m.contains_key(target))
            .unwrap_or(false);
        if dirty && let Ok(mut m) = self.targets.write() {
            m.remove(target);
        }
    }

    /// Records a failure that counts against health; may eject the target.
    pub fn failure(&self, target: &str) {
        let Ok(mut map) = self.targets.write() else {
            return;
        };
        let s = map.entry(target.to_owned()).or_default();
        s.consecutive_failures += 1;
        let was_probe = s.probe_started.take().is_some();
        if was_probe || (s.ejected_until.is_none() && s.consecutive_failures >= self.threshold) {
            let factor = 1u32 << s.ejections.min(16);
            let cooldown = (self.cooldown * factor).min(MAX_COOLDOWN.max(self.cooldown));
            s.ejections += 1;
            s.ejected_until = Some((Instant::now() + cooldown, SystemTime::now() + cooldown));
            tracing::warn!(
                target,
                cooldown_ms = cooldown.as_millis() as u64,
                "target ejected"
            );
        }
    }

    /// Every tracked target, sorted by name.
    pub fn view(&self) -> Vec<TargetHealthView> {
        let Ok(map) = self.targets.read() else {
            return Vec::new();
        };
        let mut out: Vec<_> = map
            .iter()
            .map(|(name, s)| TargetHealthView {
                target: name.clone(),
                state: if s.ejected_until.is_some() {
                    "ejected"
                } else {
                    "healthy"
                },
                consecutive_failures: s.consecutive_failures,
                ejected_until: s.ejected_until.map(|(_, at)| crate::clock::unix_ms(at)),
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }
}

impl crate::admin::TargetHealth for HealthRegistry {
    fn targets_json(&self, _page: crate::admin::Page) -> serde_json::Value {
        serde_json::to_value(self.view()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejects_probes_and_recovers() {
        let h = HealthRegistry::new(2, Duration::from_millis(30));
        assert_eq!(h.admit("p/m"), Admission::Healthy);
        h.failure("p/m");
        assert_eq!(h.admit("p/m"), Admission::Healthy);
        h.failure("p/m");
        assert_eq!(h.admit("p/m"), Admission::Ejected);
        assert_eq!(h.view()[0].state, "ejected");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(h.admit("p/m"), Admission::Probe);
        assert_eq!(h.admit("p/m"), Admission::Ejected, "one probe at a time");
        h.failure("p/m");
        assert_eq!(
            h.admit("p/m"),
            Admission::Ejected,
            "failed probe: ejected again"
        );
        std::thread::sleep(Duration::from_millis(70));
        assert_eq!(h.admit("p/m"), Admission::Probe);
        h.success("p/m");
        assert_eq!(h.admit("p/m"), Admission::Healthy);
        assert!(h.view().is_empty());
    }
}
