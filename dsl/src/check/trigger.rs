//! Failover triggers, status patterns and latency percentiles.

use super::resolve::did_you_mean;
use super::{CheckedLatencyTrigger, CheckedTriggers, Cx, list};
use crate::ast::{LatencyRef, Quantity, StatusPattern, Trigger, TriggerKind};
use crate::ir::{ErrorClass, ErrorRateTrigger, LatencyKind, LatencyMetric, StatusRange};
use crate::units;

const METRICS: [&str; 2] = ["ttft", "latency"];

fn triggers_help(word: &str) -> String {
    format!(
        "{}triggers are `status ..`, `error_rate > N% over D`, `pNN(ttft|latency) > D over D` or an error class: {}",
        did_you_mean(word, ErrorClass::ALL.iter().map(|c| c.as_str())),
        list(ErrorClass::ALL.iter().map(|c| c.as_str()))
    )
}

impl Cx<'_> {
    /// `p95(ttft)` → a latency metric; reports a bad percentile or measure.
    pub(super) fn latency_ref(&mut self, r: &LatencyRef) -> Option<LatencyMetric> {
        let percentile = match units::percentile_centi(&r.percentile.name) {
            Ok(p) => Some(p),
            Err(err) => {
                self.unit_error(r.percentile.span, &err);
                None
            }
        };
        let kind = match r.metric.name.as_str() {
            "ttft" => Some(LatencyKind::Ttft),
            "latency" => Some(LatencyKind::Total),
            other => {
                let help = format!(
                    "{}use `ttft` (time to first token) or `latency` (whole request)",
                    did_you_mean(other, METRICS)
                );
                self.error(
                    r.metric.span,
                    format!("unknown latency measure `{other}`"),
                    "not a measure",
                    help,
                );
                None
            }
        };
        Some(LatencyMetric {
            kind: kind?,
            percentile_centi: percentile?,
        })
    }

    /// Checks the triggers of one `failover ... when`, reporting every bad one.
    pub(super) fn triggers(&mut self, ts: &[Trigger]) -> Option<CheckedTriggers> {
        let mut out = CheckedTriggers::default();
        let mut ok = true;
        for t in ts {
            ok &= self.trigger(t, &mut out);
        }
        ok.then_some(out)
    }

    fn trigger(&mut self, t: &Trigger, out: &mut CheckedTriggers) -> bool {
        match &t.kind {
            TriggerKind::Status(patterns) => {
                let mut ok = true;
                for p in patterns {
                    match self.status(p) {
                        Some(r) => out.statuses.push(r),
                        None => ok = false,
                    }
                }
                ok
            }
            TriggerKind::Error(word) => match ErrorClass::parse(&word.name) {
                Some(c) => {
                    if !out.errors.contains(&c) {
                        out.errors.push(c);
                    }
                    true
                }
                None => {
                    let help = triggers_help(&word.name);
                    self.error(
                        word.span,
                        format!("unknown trigger `{}`", word.name),
                        "not a failure class",
                        help,
                    );
                    false
                }
            },
            TriggerKind::ErrorRate { threshold, window } => {
                let threshold = self.unit(threshold, units::percent_bp);
                let window = self.unit(window, units::duration_ms);
                if out.error_rate.is_some() {
                    self.error(
                        t.span,
                        "duplicate `error_rate` trigger".into(),
                        "second one",
                        "a failover has one error-rate trigger; keep the one you mean",
                    );
                    return false;
                }
                match (threshold, window) {
                    (Some(threshold_bp), Some(window_ms)) => {
                        out.error_rate = Some(ErrorRateTrigger {
                            threshold_bp,
                            window_ms,
                        });
                        true
                    }
                    _ => false,
                }
            }
            TriggerKind::Latency {
                metric,
                threshold,
                window,
                min_samples,
            } => {
                let metric = self.latency_ref(metric);
                let threshold = self.unit(threshold, units::duration_ms);
                let window = self.unit(window, units::duration_ms);
                let min_samples = match min_samples {
                    Some(q) => match self.unit(q, units::count).map(u32::try_from) {
                        Some(Ok(n)) => Some(Some(n)),
                        Some(Err(_)) => {
                            self.error(
                                q.span,
                                format!("`min_samples {}` is too large", units::written(q)),
                                "too large",
                                "use a sample count below 4,294,967,296",
                            );
                            None
                        }
                        None => None,
                    },
                    None => Some(None),
                };
                match (metric, threshold, window, min_samples) {
                    (Some(metric), Some(threshold_ms), Some(window_ms), Some(min_samples)) => {
                        out.latency.push(CheckedLatencyTrigger {
                            metric,
                            threshold_ms,
                            window_ms,
                            min_samples,
                        });
                        true
                    }
                    _ => false,
                }
            }
        }
    }

    /// Converts a literal with `f`, reporting a unit error.
    pub(super) fn unit<T>(
        &mut self,
        q: &Quantity,
        f: impl Fn(&Quantity) -> units::Result<T>,
    ) -> Option<T> {
        match f(q) {
            Ok(v) => Some(v),
            Err(err) => {
                self.unit_error(q.span, &err);
                None
            }
        }
    }

    fn status_code(&mut self, q: &Quantity) -> Option<u16> {
        let n = self.unit(q, units::integer)?;
        if (100..=599).contains(&n) {
            return Some(n as u16);
        }
        self.error(
            q.span,
            format!("status code `{}` is out of range", units::written(q)),
            "not an HTTP status",
            "status codes are between 100 and 599; classes are written `4xx` or `5xx`, ranges `500..504`",
        );
        None
    }

    fn status(&mut self, p: &StatusPattern) -> Option<StatusRange> {
        match p {
            StatusPattern::Code(q) => self.status_code(q).map(|c| StatusRange { lo: c, hi: c }),
            StatusPattern::Class(word) => {
                let class = match word.name.as_bytes() {
                    [d @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => Some(u16::from(d - b'0') * 100),
                    _ => None,
                };
                match class {
                    Some(lo) => Some(StatusRange { lo, hi: lo + 99 }),
                    None => {
                        self.error(
                            word.span,
                            format!("unknown status class `{}`", word.name),
                            "not a status class",
                            "status classes are `1xx` to `5xx`; single codes are written `503`, ranges `500..504`",
                        );
                        None
                    }
                }
            }
            StatusPattern::Range(a, b) => {
                let (lo, hi) = (self.status_code(a)?, self.status_code(b)?);
                if lo > hi {
                    self.error(
                        a.span.to(b.span),
                        format!("status range `{lo}..{hi}` is empty"),
                        "start is after end",
                        format!("write the lower code first: `{hi}..{lo}`"),
                    );
                    return None;
                }
                Some(StatusRange { lo, hi })
            }
        }
    }
}
