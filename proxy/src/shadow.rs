//! Shadow evaluation: a candidate policy decided beside the live one for every request, with
//! the same features and the same split draw, counting where it agrees and where it would
//! differ. Decision only: the shadow never admits against budgets and never calls upstream.
//!
//! Counts are for one (live, shadow) pair of configurations: when either is swapped they start
//! again, since differences between older policies say nothing about the ones in force.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use switchyard_dsl::ir::{Snapshot, TargetId};
use switchyard_dsl::{Decision, RequestFeatures, decide};

use crate::config::{ActiveConfig, ConfigHandle};

/// Most distinct (live → shadow) pairs kept; further pairs are counted under `other`.
pub const MAX_PAIRS: usize = 1_000;

/// A shadow policy and what it would have done.
#[derive(Debug)]
pub struct Shadow {
    /// The shadow configuration (only its snapshot is read).
    pub config: Arc<ConfigHandle>,
    counts: Mutex<Counts>,
}

/// One side of a comparison: no route, or a route and its first target.
type Outcome = Option<(u32, TargetId)>;

#[derive(Debug, Default)]
struct Counts {
    /// The configurations these counts are about (pointer identity).
    live: Option<Arc<ActiveConfig>>,
    shadow: Option<Arc<ActiveConfig>>,
    requests: u64,
    same: u64,
    would_reject: u64,
    changed: HashMap<(Outcome, Outcome), u64>,
    /// Changes past [`MAX_PAIRS`] distinct pairs.
    other: u64,
}

/// What `/admin/shadow` shows (and, in a cluster, the RoutePolicy status aggregates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowReport {
    /// Hashes of the live and the shadow snapshot the counts are about.
    pub live_snapshot: String,
    pub shadow_snapshot: String,
    pub requests: u64,
    /// Requests the shadow sends to the same route and first target.
    pub same_target: u64,
    /// Requests the shadow sends elsewhere, by `route → provider/model` (or `404`).
    pub changed: Vec<Change>,
    /// Requests the live policy routes and the shadow would answer with 404.
    pub would_reject: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub from: String,
    pub to: String,
    pub count: u64,
}

impl Shadow {
    pub fn new(config: ActiveConfig) -> Self {
        Self {
            config: Arc::new(ConfigHandle::new(config)),
            counts: Mutex::new(Counts::default()),
        }
    }

    /// Decides `request` under the shadow policy with the live `draw` and counts how it
    /// compares with the `live` decision made under `live_config`.
    pub fn observe<R: RequestFeatures + ?Sized>(
        &self,
        live_config: &Arc<ActiveConfig>,
        live: Option<&Decision<'_>>,
        request: &R,
        draw: f64,
    ) {
        let shadow_config = self.config.current();
        let shadow = decide(&shadow_config.snapshot, request, draw)
            .map(|d| (d.route_index() as u32, d.primary()));
        let live = live.map(|d| (d.route_index() as u32, d.primary()));
        let same = match (live, shadow) {
            (None, None) => true,
            (Some(l), Some(s)) => same_names(&live_config.snapshot, l, &shadow_config.snapshot, s),
            _ => false,
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let current = counts
            .live
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, live_config))
            && counts
                .shadow
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &shadow_config));
        if !current {
            *counts = Counts {
                live: Some(Arc::clone(live_config)),
                shadow: Some(shadow_config),
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

    /// The counts so far, with names.
    pub fn report(&self) -> ShadowReport {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(live), Some(shadow)) = (&counts.live, &counts.shadow) else {
            return ShadowReport {
                live_snapshot: String::new(),
                shadow_snapshot: self.config.current().snapshot.hash.clone(),
                requests: 0,
                same_target: 0,
                changed: Vec::new(),
                would_reject: 0,
            };
        };
        let mut changed: Vec<Change> = counts
            .changed
            .iter()
            .map(|(&(from, to), &count)| Change {
                from: name(&live.snapshot, from),
                to: name(&shadow.snapshot, to),
                count,
            })
            .collect();
        if counts.other > 0 {
            changed.push(Change {
                from: "other".into(),
                to: "other".into(),
                count: counts.other,
            });
        }
        changed.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
        });
        ShadowReport {
            live_snapshot: live.snapshot.hash.clone(),
            shadow_snapshot: shadow.snapshot.hash.clone(),
            requests: counts.requests,
            same_target: counts.same,
            changed,
            would_reject: counts.would_reject,
        }
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
        let shadow = Shadow::new(config(
            r#"route team-a { when model == "chat" and header("x-team") == "a" use p/small }
               route chat { when model == "chat" use p/big }"#,
        ));
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
        let report = shadow.report();
        assert_eq!(report.requests, 6);
        assert_eq!(report.same_target, 3, "{report:?}");
        assert_eq!(report.would_reject, 1);
        assert_eq!(
            report.changed,
            [
                Change {
                    from: "chat → p/big".into(),
                    to: "team-a → p/small".into(),
                    count: 2
                },
                Change {
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
        assert_eq!(shadow.report().requests, 1);
    }
}
