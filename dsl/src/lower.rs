//! Checked program → sealed [`Snapshot`]: documented defaults, target indexing, price order.
//!
//! Everything here is deterministic: the providers are sorted by name, targets are numbered in
//! first-use order (routes in order, then budgets), and nothing depends on hash-map order, so
//! the same input always gives the same [`Snapshot::hash`].

use std::collections::HashMap;

use crate::affinity::DEFAULT_IDLE_MS as DEFAULT_AFFINITY_IDLE_MS;
use crate::check::{
    Checked, CheckedBudget, CheckedRoute, CheckedSelection, CheckedTriggers, ResolvedTarget,
};
use crate::ir::{
    self, Affinity, Budget, Condition, ErrorClass, Hedge, LatencyKind, LatencyMetric,
    LatencyTrigger, OnExhausted, OnOverrun, ProviderId, Retry, Route, Selection, Snapshot,
    StatusRange, StringMatch, Target, TargetId, Triggers, WeightedTarget,
};

/// Retry backoff when `retry` has no `backoff`: 100 ms doubling up to 2 s.
pub const DEFAULT_BACKOFF_MS: (u64, u64) = (100, 2_000);
/// Samples a latency trigger needs in its window before it may fire.
pub const DEFAULT_MIN_SAMPLES: u32 = 20;
/// `fastest of` without `by` ranks by the median time to first token.
pub const DEFAULT_FASTEST_BY: LatencyMetric = LatencyMetric {
    kind: LatencyKind::Ttft,
    percentile_centi: 5_000,
};
/// `fastest of` without `explore` sends 5% of requests to the others.
pub const DEFAULT_EXPLORE_BP: u32 = 500;

/// The triggers of a `failover` without `when`: connect failures, timeouts, 429 and 5xx.
pub fn default_triggers() -> Triggers {
    Triggers {
        statuses: vec![
            StatusRange { lo: 429, hi: 429 },
            StatusRange { lo: 500, hi: 599 },
        ],
        errors: vec![ErrorClass::ConnectFailure, ErrorClass::Timeout],
        error_rate: None,
        latency: Vec::new(),
    }
}

/// Builds the snapshot. Meant for a [`Checked`] without errors; items left incomplete by
/// errors (a route without a selection, a budget without a scope) are skipped, never a panic.
pub fn lower(checked: &Checked) -> Snapshot {
    let mut lw = Lowerer::new(&checked.catalogue);
    let routes = checked.routes.iter().filter_map(|r| lw.route(r)).collect();
    let budgets = checked
        .budgets
        .iter()
        .filter_map(|b| lw.budget(b))
        .collect();
    Snapshot::new(lw.providers, lw.targets, routes, budgets).seal()
}

struct Lowerer<'a> {
    catalogue: &'a [ir::Provider],
    /// Catalogue index → index in the sorted provider list.
    provider_ids: Vec<u32>,
    providers: Vec<ir::Provider>,
    targets: Vec<Target>,
    target_ids: HashMap<ResolvedTarget, TargetId>,
}

impl<'a> Lowerer<'a> {
    fn new(catalogue: &'a [ir::Provider]) -> Self {
        let mut order: Vec<usize> = (0..catalogue.len()).collect();
        order.sort_by(|&a, &b| catalogue[a].name.cmp(&catalogue[b].name));
        let mut provider_ids = vec![0; catalogue.len()];
        for (sorted, &original) in order.iter().enumerate() {
            provider_ids[original] = sorted as u32;
        }
        let providers = order.iter().map(|&i| catalogue[i].clone()).collect();
        Self {
            catalogue,
            provider_ids,
            providers,
            targets: Vec::new(),
            target_ids: HashMap::new(),
        }
    }

    fn target(&mut self, t: ResolvedTarget) -> TargetId {
        if let Some(&id) = self.target_ids.get(&t) {
            return id;
        }
        let id = TargetId(self.targets.len() as u32);
        let model = self
            .catalogue
            .get(t.provider)
            .and_then(|p| p.models.get(t.model));
        self.targets.push(Target {
            provider: ProviderId(self.provider_ids.get(t.provider).copied().unwrap_or(0)),
            model_index: t.model as u32,
            model: model.map_or_else(String::new, |m| m.name.clone()),
        });
        self.target_ids.insert(t, id);
        id
    }

    /// Blended price (input + output per million tokens) for `cheapest of`.
    fn price(&self, t: ResolvedTarget) -> u64 {
        self.catalogue
            .get(t.provider)
            .and_then(|p| p.models.get(t.model))
            .map_or(u64::MAX, |m| {
                m.input_micro_usd_per_mtok
                    .saturating_add(m.output_micro_usd_per_mtok)
            })
    }

    fn selection(&mut self, s: &CheckedSelection) -> Option<Selection> {
        Some(match s {
            CheckedSelection::Single(t) => Selection::Single(self.target(*t)),
            CheckedSelection::Split(arms) => Selection::Split(
                arms.iter()
                    .map(|&(t, weight)| WeightedTarget {
                        target: self.target(t),
                        weight,
                    })
                    .collect(),
            ),
            CheckedSelection::Cheapest(ts) => {
                let mut ts = ts.clone();
                ts.sort_by_key(|&t| self.price(t)); // stable: ties keep the written order
                Selection::Cheapest(ts.into_iter().map(|t| self.target(t)).collect())
            }
            CheckedSelection::Fastest {
                targets,
                by,
                explore_bp,
            } => Selection::Fastest {
                targets: targets.iter().map(|&t| self.target(t)).collect(),
                by: by.unwrap_or(DEFAULT_FASTEST_BY),
                explore_bp: explore_bp.unwrap_or(DEFAULT_EXPLORE_BP),
            },
        })
        .filter(|s| match s {
            Selection::Split(a) => !a.is_empty(),
            Selection::Cheapest(ts) | Selection::Fastest { targets: ts, .. } => !ts.is_empty(),
            Selection::Single(_) => true,
        })
    }

    fn route(&mut self, r: &CheckedRoute) -> Option<Route> {
        let selection = self.selection(r.selection.as_ref()?)?;
        let failover = r.failover.iter().map(|&t| self.target(t)).collect();
        let condition = r.condition.clone().unwrap_or(Condition::Always);
        let (backoff_min_ms, backoff_max_ms) = r
            .retry
            .and_then(|r| r.backoff_ms)
            .unwrap_or(DEFAULT_BACKOFF_MS);
        Some(Route {
            name: r.name.clone(),
            origin: r.origin.clone(),
            exposed_models: exposed_models(&condition),
            condition,
            selection,
            failover,
            triggers: r.triggers.as_ref().map_or_else(default_triggers, triggers),
            retry: Retry {
                attempts: r.retry.map_or(0, |r| r.attempts),
                backoff_min_ms,
                backoff_max_ms,
            },
            timeouts: r.timeouts,
            hedge: r.hedge.map(|after| Hedge { after }),
            cache_ttl_ms: r.cache_ttl_ms,
            affinity: r.affinity.as_ref().map(|a| Affinity {
                by: a.by.clone(),
                idle_ms: a.idle_ms.unwrap_or(DEFAULT_AFFINITY_IDLE_MS),
            }),
        })
    }

    fn budget(&mut self, b: &CheckedBudget) -> Option<Budget> {
        Some(Budget {
            name: b.name.clone(),
            origin: b.origin.clone(),
            scope: b.scope.clone()?,
            limits: b.limits.clone(),
            warn_at_bp: b.warn_at_bp.clone(),
            on_exhausted: b.downgrade.map_or(OnExhausted::Reject, |t| {
                OnExhausted::Downgrade(self.target(t))
            }),
            on_overrun: b.on_overrun.unwrap_or(OnOverrun::Finish),
        })
    }
}

fn triggers(t: &CheckedTriggers) -> Triggers {
    Triggers {
        statuses: t.statuses.clone(),
        errors: t.errors.clone(),
        error_rate: t.error_rate,
        latency: t
            .latency
            .iter()
            .map(|l| LatencyTrigger {
                metric: l.metric,
                threshold_ms: l.threshold_ms,
                window_ms: l.window_ms,
                min_samples: l.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES),
            })
            .collect(),
    }
}

/// Exact model names tested with `model ==` / `model in` outside any `not`, first-seen order.
pub fn exposed_models(c: &Condition) -> Vec<String> {
    fn walk(c: &Condition, out: &mut Vec<String>) {
        match c {
            Condition::All(cs) | Condition::Any(cs) => cs.iter().for_each(|c| walk(c, out)),
            Condition::Model(StringMatch::Exact(m)) => push(out, m),
            Condition::Model(StringMatch::OneOf(ms)) => ms.iter().for_each(|m| push(out, m)),
            _ => {}
        }
    }
    fn push(out: &mut Vec<String>, m: &str) {
        if !out.iter().any(|x| x == m) {
            out.push(m.to_string());
        }
    }
    let mut out = Vec::new();
    walk(c, &mut out);
    out
}
