//! Usage per budget and scope for the admin API: spent (settled usage plus reservations in
//! flight), remaining, window reset and state (`ok`, `warning`, `exhausted`).

use std::collections::BTreeSet;

use serde::Serialize;
use switchyard_dsl::ir::{Budget, BudgetScope, Snapshot};

use super::{Quota, counter_key, metric_name, window};

#[derive(Debug, Serialize)]
pub struct LimitStatus {
    pub metric: &'static str,
    pub window: &'static str,
    pub limit: u64,
    pub spent: i64,
    pub remaining: u64,
    pub resets_at: String,
    /// `resets_at` in unix seconds (for the operator's usage report).
    #[serde(skip)]
    pub resets_at_unix: u64,
    pub state: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ScopeStatus {
    pub budget: String,
    pub origin: String,
    pub scope: String,
    pub state: &'static str,
    pub limits: Vec<LimitStatus>,
}

#[derive(Debug, Serialize)]
pub struct BudgetsStatus {
    /// `redis` or `memory`: where the numbers came from.
    pub store: &'static str,
    pub now: String,
    pub budgets: Vec<ScopeStatus>,
}

/// `ok`, `warning` or `exhausted` for `spent` of `limit` with warnings at `warn_bp`.
pub fn state(spent: i64, limit: u64, warn_bp: &[u32]) -> &'static str {
    let spent = u128::try_from(spent.max(0)).unwrap_or(0);
    if spent >= u128::from(limit) {
        "exhausted"
    } else if warn_bp
        .iter()
        .any(|&bp| spent * 10_000 >= u128::from(bp) * u128::from(limit))
    {
        "warning"
    } else {
        "ok"
    }
}

/// The scope of counter key `key` (`budget|scope|metric|window|start`) if it is one of
/// `budget`'s counters for the window that contains `now`.
pub fn current_scope(budget: &Budget, key: &str, now: u64) -> Option<String> {
    let mut parts = key.rsplitn(4, '|');
    let (start, win, metric) = (parts.next()?, parts.next()?, parts.next()?);
    let scope = parts
        .next()?
        .strip_prefix(&budget.name)?
        .strip_prefix('|')?;
    let start: u64 = start.parse().ok()?;
    let current = budget.limits.iter().any(|l| {
        window::name(l.window) == win
            && metric_name(l.metric) == metric
            && window::start(l.window, now) == start
    });
    current.then(|| scope.to_string())
}

impl BudgetsStatus {
    /// The same numbers as the operator's usage report wants them: one entry per budget,
    /// scope and limit (`switchyard_dsl::channel::UsageEntry`).
    pub fn usage_entries(&self) -> Vec<switchyard_dsl::channel::UsageEntry> {
        self.budgets
            .iter()
            .flat_map(|b| {
                b.limits
                    .iter()
                    .map(move |l| switchyard_dsl::channel::UsageEntry {
                        name: b.budget.clone(),
                        origin: b.origin.clone(),
                        scope: b.scope.clone(),
                        metric: l.metric.to_string(),
                        window: l.window.to_string(),
                        spent: l.spent,
                        limit: l.limit,
                        remaining: l.remaining,
                        reset_at: l.resets_at_unix,
                        state: l.state.to_string(),
                        source: self.store.to_string(),
                    })
            })
            .collect()
    }
}

fn rank(s: &str) -> u8 {
    match s {
        "exhausted" => 2,
        "warning" => 1,
        _ => 0,
    }
}

impl Quota {
    /// Every budget of `snapshot` with each scope this process knows of (per-key, team,
    /// user and header budgets: the values it has served).
    pub async fn status(&self, snapshot: &Snapshot) -> BudgetsStatus {
        let now = crate::clock::unix_secs();
        let seen: Vec<(String, String)> = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let mut rows: Vec<(usize, String)> = Vec::new();
        let mut store_down = false;
        for (i, b) in snapshot.budgets.iter().enumerate() {
            let fixed = match &b.scope {
                BudgetScope::Global => Some("global".to_string()),
                BudgetScope::Key(k) => Some(format!("key={k}")),
                BudgetScope::Team(t) => Some(format!("team={t}")),
                BudgetScope::User(u) => Some(format!("user={u}")),
                BudgetScope::Route(r) => Some(format!("route={r}")),
                _ => None,
            };
            match fixed {
                Some(s) => rows.push((i, s)),
                None => {
                    let mut scopes: BTreeSet<String> = seen
                        .iter()
                        .filter(|(n, _)| *n == b.name)
                        .map(|(_, s)| s.clone())
                        .collect();
                    // With Redis, the scopes every replica has counted in the current windows.
                    if let Some(shared) = &self.shared
                        && !store_down
                    {
                        match shared.keys_of(&b.name).await {
                            Ok(keys) => {
                                scopes.extend(keys.iter().filter_map(|k| current_scope(b, k, now)))
                            }
                            Err(_) => store_down = true,
                        }
                    }
                    rows.extend(scopes.into_iter().map(|s| (i, s)));
                }
            }
        }
        let mut keys = Vec::new();
        for (i, scope) in &rows {
            let b = &snapshot.budgets[*i];
            for l in &b.limits {
                let start = window::start(l.window, now);
                keys.push(counter_key(
                    &b.name,
                    scope,
                    l.metric,
                    start,
                    window::name(l.window),
                ));
            }
        }
        let (values, store) = self.read(&keys).await;
        let mut values = values.into_iter();
        let budgets = rows
            .into_iter()
            .map(|(i, scope)| {
                let b = &snapshot.budgets[i];
                let limits: Vec<LimitStatus> = b
                    .limits
                    .iter()
                    .map(|l| {
                        let spent = values.next().unwrap_or(0);
                        LimitStatus {
                            metric: metric_name(l.metric),
                            window: window::name(l.window),
                            limit: l.amount,
                            spent,
                            remaining: l.amount.saturating_sub(u64::try_from(spent).unwrap_or(0)),
                            resets_at: window::rfc3339(window::end(l.window, now)),
                            resets_at_unix: window::end(l.window, now),
                            state: state(spent, l.amount, &b.warn_at_bp),
                        }
                    })
                    .collect();
                let state = limits
                    .iter()
                    .map(|l| l.state)
                    .max_by_key(|s| rank(s))
                    .unwrap_or("ok");
                ScopeStatus {
                    budget: b.name.clone(),
                    origin: b.origin.clone(),
                    scope,
                    state,
                    limits,
                }
            })
            .collect();
        BudgetsStatus {
            store,
            now: window::rfc3339(now),
            budgets,
        }
    }
}

#[cfg(test)]
mod tests {
    use switchyard_dsl::ir::{Limit, LimitMetric, OnExhausted, OnOverrun, Window};

    use super::*;

    #[test]
    fn states_and_scopes_of_current_counters() {
        assert_eq!(state(79, 100, &[8000, 9500]), "ok");
        assert_eq!(state(80, 100, &[8000, 9500]), "warning");
        assert_eq!(state(100, 100, &[]), "exhausted");
        assert_eq!(state(-5, 100, &[8000]), "ok");
        let b = Budget {
            name: "per-key".into(),
            origin: "o".into(),
            scope: BudgetScope::EachKey,
            limits: vec![Limit {
                metric: LimitMetric::Requests,
                amount: 5,
                window: Window::Minute,
            }],
            warn_at_bp: vec![],
            on_exhausted: OnExhausted::Reject,
            on_overrun: OnOverrun::Finish,
        };
        let now = 1_795_314_610;
        let key = counter_key(
            "per-key",
            "key=a|b",
            LimitMetric::Requests,
            now - 10,
            "minute",
        );
        assert_eq!(current_scope(&b, &key, now).as_deref(), Some("key=a|b"));
        // Last minute's counter, another metric, another budget: not current.
        let old = counter_key(
            "per-key",
            "key=a",
            LimitMetric::Requests,
            now - 70,
            "minute",
        );
        assert_eq!(current_scope(&b, &old, now), None);
        let other = counter_key(
            "per-key",
            "key=a",
            LimitMetric::MicroUsd,
            now - 10,
            "minute",
        );
        assert_eq!(current_scope(&b, &other, now), None);
        let prefix = counter_key(
            "per-key-2",
            "key=a",
            LimitMetric::Requests,
            now - 10,
            "minute",
        );
        assert_eq!(current_scope(&b, &prefix, now), None);
    }
}
