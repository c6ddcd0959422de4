//! Shadow evaluation: a candidate policy decided beside the live one for every request, with
//! the same features and the same split draw, counting where it agrees and where it would
//! differ. Decision only: the shadow never admits against budgets and never calls upstream.
//!
//! The shadow snapshot comes from the operator with the live one (the `mode: Shadow`
//! RoutePolicies promoted, [`ActiveConfig::shadow`]) or, standalone, from `--shadow DIR`.
//! Counts are for one (live, shadow) pair of snapshots: when either is swapped they start
//! again, since differences between older policies say nothing about the ones in force.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchyard_dsl::channel::{ShadowChange, ShadowReport};
use switchyard_dsl::ir::{Snapshot, TargetId};
use switchyard_dsl::{Decision, RequestFeatures, decide};

use crate::config::ActiveConfig;

/// Most distinct (live → shadow) pairs kept; further pairs are counted under `other`.
pub const MAX_PAIRS: usize = 1_000;

/// The shadow policy's counts (one per process, shared by the workers).
#[derive(Debug, Default)]
pub struct Shadow {
    /// `--shadow DIR`: used when the live configuration carries no shadow snapshot.
    standalone: Option<Arc<Snapshot>>,
    counts: Mutex<Counts>,
}

/// One side of a comparison: no route, or a route and its first target.
type Outcome = Option<(u32, TargetId)>;

#[derive(Debug, Default)]
struct Counts {
    /// The snapshots these counts are about (pointer identity).
    live: Option<Arc<ActiveConfig>>,
    shadow: Option<Arc<Snapshot>>,
    requests: u64,
    same: u64,
    would_reject: u64,
    changed: HashMap<(Outcome, Outcome), u64>,
    /// Changes past [`MAX_PAIRS`] distinct pairs.
    other: u64,
}

impl Counts {
    fn about(&self, live: &Arc<ActiveConfig>, shadow: &Arc<Snapshot>) -> bool {
        self.live.as_ref().is_some_and(|c| Arc::ptr_eq(c, live))
            && self.shadow.as_ref().is_some_and(|c| Arc::ptr_eq(c, shadow))
    }
}

impl Shadow {
    /// Counts for the shadow snapshots the operator sends (none until it sends one).
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts for a fixed shadow snapshot (`--shadow DIR`).
    pub fn standalone(snapshot: Snapshot) -> Self {
        Self {
            standalone: Some(Arc::new(snapshot)),
            ..Self::default()
        }
    }

    /// The shadow snapshot to decide beside `live`, if any.
    fn snapshot_for<'a>(&'a self, live: &'a ActiveConfig) -> Option<&'a Arc<Snapshot>> {
        live.shadow.as_ref().or(self.standalone.as_ref())
    }

    /// Decides `request` under the shadow snapshot with the live `draw` and counts how it
    /// compares with the `live` decision made under `live_config`. Does nothing without a
    /// shadow snapshot.
    pub fn observe<R: RequestFeatures + ?Sized>(
        &self,
        live_config: &Arc<ActiveConfig>,
        live: Option<&Decision<'_>>,
        request: &R,
        draw: f64,
    ) {
        let Some(shadow_snapshot) = self.snapshot_for(live_config) else {
            return;
        };
        let shadow =
            decide(shadow_snapshot, request, draw).map(|d| (d.route_index() as u32, d.primary()));
        let live = live.map(|d| (d.route_index() as u32, d.primary()));
        let same = match (live, shadow) {
            (None, None) => true,
            (Some(l), Some(s)) => same_names(&live_config.snapshot, l, shadow_snapshot, s),
            _ => false,
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if !counts.about(live_config, shadow_snapshot) {
            *counts = Counts {
                live: Some(Arc::clone(live_config)),
                shadow: Some(Arc::clone(shadow_snapshot)),
                ..Counts::default()
            };
        }
        counts.requests += 1;
        if same {
            counts.same += 1;
            return;
        }
        if live.is_some() && shadow.is_none() {
            counts.would_reject += 1;
        }
        let len = counts.changed.len();
        match counts.changed.get_mut(&(live, shadow)) {
            Some(n) => *n += 1,
            None if len < MAX_PAIRS => {
                counts.changed.insert((live, shadow), 1);
            }
            None => counts.other += 1,
        }
    }

    /// The counts about `live` and its shadow snapshot, with names; `None` without a shadow
    /// snapshot.
    pub fn report(&self, live: &Arc<ActiveConfig>) -> Option<ShadowReport> {
        let shadow = self.snapshot_for(live)?;
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = ShadowReport {
            live_snapshot: live.snapshot.hash.clone(),
            shadow_snapshot: shadow.hash.clone(),
            ..ShadowReport::default()
        };
        if !counts.about(live, shadow) {
            return Some(report);
        }
        report.changed = counts
            .changed
            .iter()
            .map(|(&(from, to), &count)| ShadowChange {
                from: name(&live.snapshot, from),
                to: name(shadow, to),
                count,
            })
            .collect();
        if counts.other > 0 {
            report.changed.push(ShadowChange {
                from: "other".into(),
                to: "other".into(),
                count: counts.other,
            });
        }
        report.changed.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
        });
        report.requests = counts.requests;
        report.same_target = counts.same;
        report.would_reject = counts.would_reject;
        Some(report)
    }
}

/// Whether two outcomes name the same route and the same `provider/model`, without
/// allocating.
fn same_names(
    a: &Snapshot,
    (ar, at): (u32, TargetId),
    b: &Snapshot,
    (br, bt): (u32, TargetId),
) -> bool {
    let (ta, tb) = (a.target(at), b.target(bt));
    a.routes[ar as usize].name == b.routes[br as usize].name
        && ta.model == tb.model
        && a.provider(ta.provider).name == b.provider(tb.provider).name
}

/// `route → provider/model`, or `404`.
fn name(snapshot: &Snapshot, outcome: Outcome) -> String {
    match outcome {
        None => "404".into(),
        Some((route, target)) => format!(
            "{} → {}",
            snapshot.routes[route as usize].name,
            snapshot.target_name(target)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_dsl::RequestView;
    use switchyard_dsl::ir::{Provider, ProviderKind};

    fn config(policy: &str) -> ActiveConfig {
        let catalogue = [Provider::new("p", ProviderKind::Mock, &["big", "small"])];
        let snapshot =
            switchyard_dsl::compile(&[switchyard_dsl::Source::new("t", policy)], &catalogue)
                .snapshot
                .expect("compiles")
                .seal();
        ActiveConfig {
            version: 1,
            snapshot,
            ..ActiveConfig::empty()
        }
    }

    #[test]
    fn counts_agreements_changes_and_would_be_404s() {
        let live = Arc::new(config(
            r#"route chat { when model == "chat" use p/big }
               route old { when model == "old" use p/small }"#,
        ));
        let shadow = Shadow::standalone(
            config(
                r#"route team-a { when model == "chat" and header("x-team") == "a" use p/small }
               route chat { when model == "chat" use p/big }"#,
            )
            .snapshot,
        );
        let ask = |model: &'static str, headers: &'static [(&'static str, &'static str)]| {
            let view = RequestView {
                model,
                headers,
                ..RequestView::default()
            };
            let live_decision = decide(&live.snapshot, &view, 0.5);
            shadow.observe(&live, live_decision.as_ref(), &view, 0.5);
        };
        ask("chat", &[]);
        ask("chat", &[("x-team", "b")]);
        ask("chat", &[("x-team", "a")]);
        ask("chat", &[("x-team", "a")]);
        ask("old", &[]);
        ask("none", &[]);
        let report = shadow.report(&live).expect("a shadow");
        assert_eq!(report.requests, 6);
        assert_eq!(report.same_target, 3, "{report:?}");
        assert_eq!(report.would_reject, 1);
        assert_eq!(
            report.changed,
            [
                ShadowChange {
                    from: "chat → p/big".into(),
                    to: "team-a → p/small".into(),
                    count: 2
                },
                ShadowChange {
                    from: "old → p/small".into(),
                    to: "404".into(),
                    count: 1
                },
            ]
        );
        assert_eq!(report.live_snapshot, live.snapshot.hash);

        // A new live configuration starts the counts again.
        let live = Arc::new(config(r#"route chat { when model == "chat" use p/big }"#));
        let view = RequestView {
            model: "chat",
            ..RequestView::default()
        };
        shadow.observe(
            &live,
            decide(&live.snapshot, &view, 0.5).as_ref(),
            &view,
            0.5,
        );
        assert_eq!(shadow.report(&live).expect("a shadow").requests, 1);
        // Without a shadow snapshot there is nothing to report.
        assert_eq!(Shadow::new().report(&live), None);
    }
}
