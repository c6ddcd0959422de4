//! Budget usage reported by the proxy pods (`POST /v1/usage`), aggregated over pods and turned
//! into each `Budget`'s `status.budgets` / `status.state`.
//!
//! Aggregation per counter (budget, scope, metric, window, reset time): counters a pod read from
//! **Redis** are shared by every replica, so all pods report the same number (give or take the
//! moment they read it) and the **largest** report counts; counters kept in **memory** are each
//! pod's own, so they are **summed**. When both kinds are reported for one counter (a pod fell
//! back to memory while Redis was unreachable), the larger of the two totals counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchyard_crds::{BudgetState, BudgetUsage, ShadowChange, ShadowStatus};
use switchyard_dsl::channel::UsageReport;
use tokio::sync::watch;

/// A pod's report is forgotten this long after it arrived (the pod stopped or lost its way).
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// The latest report of each pod.
#[derive(Debug)]
pub struct Usage {
    reports: Mutex<HashMap<String, (Instant, UsageReport)>>,
    changed: watch::Sender<u64>,
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            reports: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
        }
    }
}

impl Usage {
    /// Bumped whenever a report changes what a pod said.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn record(&self, report: UsageReport) {
        let changed = {
            let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
            let changed = reports
                .get(&report.pod)
                .is_none_or(|(_, r)| r.budgets != report.budgets || r.shadow != report.shadow);
            reports.insert(report.pod.clone(), (Instant::now(), report));
            changed
        };
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// The reports of the pods heard from within [`STALE_AFTER`].
    pub fn fresh(&self) -> Vec<UsageReport> {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports.retain(|_, (at, _)| at.elapsed() < STALE_AFTER);
        reports.values().map(|(_, r)| r.clone()).collect()
    }
}

/// The shadow counts of the pods that report on the `live` and `shadow` snapshot hashes,
/// summed (each pod counts only the requests it served); `None` when no pod does.
pub fn aggregate_shadow(reports: &[UsageReport], live: &str, shadow: &str) -> Option<ShadowStatus> {
    let mut status = ShadowStatus::default();
    let mut changed: BTreeMap<(String, String), i64> = BTreeMap::new();
    for report in reports {
        let Some(s) = &report.shadow else { continue };
        if s.live_snapshot != live || s.shadow_snapshot != shadow {
            continue;
        }
        status.pods += 1;
        status.requests += count(s.requests);
        status.same_target += count(s.same_target);
        status.would_reject += count(s.would_reject);
        for c in &s.changed {
            *changed.entry((c.from.clone(), c.to.clone())).or_insert(0) += count(c.count);
        }
    }
    if status.pods == 0 {
        return None;
    }
    status.changed = changed
        .into_iter()
        .map(|((from, to), count)| ShadowChange { from, to, count })
        .collect();
    status.changed.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
    });
    let moved = status.requests - status.same_target;
    status.summary = format!("{moved}/{} changed", status.requests);
    Some(status)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One counter over every pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub origin: String,
    pub name: String,
    pub scope: String,
    pub metric: String,
    pub window: String,
    pub reset_at: u64,
    pub spent: i64,
    pub limit: u64,
    /// The worst state a pod reported (used when the operator does not know the thresholds).
    pub reported_state: String,
}

type CounterKey = (String, String, String, String, String, u64);

/// Aggregates the pods' reports: max of `redis` counters, sum of `memory` counters (see the
/// module doc). Counters whose window ended by `now` (unix seconds) are left out.
pub fn aggregate(reports: &[UsageReport], now: u64) -> Vec<Counter> {
    #[derive(Default)]
    struct Acc {
        redis_max: Option<i64>,
        memory_sum: i64,
        limit: u64,
        state: String,
    }
    let mut acc: BTreeMap<CounterKey, Acc> = BTreeMap::new();
    for report in reports {
        for e in &report.budgets {
            if e.reset_at <= now {
                continue;
            }
            let key = (
                e.origin.clone(),
                e.name.clone(),
                e.scope.clone(),
                e.metric.clone(),
                e.window.clone(),
                e.reset_at,
            );
            let a = acc.entry(key).or_default();
            if e.source == "redis" {
                a.redis_max = Some(a.redis_max.map_or(e.spent, |m| m.max(e.spent)));
            } else {
                a.memory_sum = a.memory_sum.saturating_add(e.spent);
            }
            a.limit = a.limit.max(e.limit);
            if rank(&e.state) > rank(&a.state) {
                a.state = e.state.clone();
            }
        }
    }
    acc.into_iter()
        .map(
            |((origin, name, scope, metric, window, reset_at), a)| Counter {
                origin,
                name,
                scope,
                metric,
                window,
                reset_at,
                spent: a.redis_max.unwrap_or(0).max(a.memory_sum),
                limit: a.limit,
                reported_state: if a.state.is_empty() {
                    "ok".into()
                } else {
                    a.state
                },
            },
        )
        .collect()
}

fn rank(state: &str) -> u8 {
    match state {
        "exhausted" => 2,
        "warning" => 1,
        _ => 0,
    }
}

/// `ok` / `warning` / `exhausted` of `spent` against `limit` with thresholds in basis points
/// (the proxy's rule).
pub fn state(spent: i64, limit: u64, warn_bp: &[u32]) -> BudgetState {
    let spent = u128::try_from(spent.max(0)).unwrap_or(0);
    if spent >= u128::from(limit) {
        BudgetState::Exhausted
    } else if warn_bp
        .iter()
        .any(|&bp| spent * 10_000 >= u128::from(bp) * u128::from(limit))
    {
        BudgetState::Warning
    } else {
        BudgetState::Ok
    }
}

fn parse_state(s: &str) -> BudgetState {
    match s {
        "exhausted" => BudgetState::Exhausted,
        "warning" => BudgetState::Warning,
        _ => BudgetState::Ok,
    }
}

/// An amount in a metric's unit, for people: `$312.40`, `1200 tokens`, `15 requests`.
pub fn amount(metric: &str, value: i64) -> String {
    match metric {
        "micro_usd" => format!("${:.2}", value as f64 / 1_000_000.0),
        "requests" => format!("{value} requests"),
        _ => format!("{value} tokens"),
    }
}

/// RFC 3339 (UTC, seconds) of unix seconds.
pub fn rfc3339(t: u64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(i64::try_from(t).unwrap_or(i64::MAX))
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

/// The `status.budgets` and `status.state` of the `Budget` object `origin` (`namespace/name`):
/// per `budget` block the most used counter (by share of its limit, over scopes and limits),
/// with its state from `warn_bp(block name)` (falling back to what the pods reported). `None`
/// when no pod reported a counter of this object.
pub fn budget_status(
    counters: &[Counter],
    origin: &str,
    warn_bp: impl Fn(&str) -> Option<Vec<u32>>,
) -> Option<(BudgetState, Vec<BudgetUsage>)> {
    let mut best: BTreeMap<&str, (&Counter, BudgetState)> = BTreeMap::new();
    for c in counters.iter().filter(|c| c.origin == origin) {
        let st = match warn_bp(&c.name) {
            Some(bp) => state(c.spent, c.limit, &bp),
            None => parse_state(&c.reported_state),
        };
        let share = |c: &Counter| c.spent.max(0) as f64 / (c.limit.max(1) as f64);
        let better = best
            .get(c.name.as_str())
            .is_none_or(|(b, bst)| (st, share(c)) > (*bst, share(b)));
        if better {
            best.insert(&c.name, (c, st));
        }
    }
    if best.is_empty() {
        return None;
    }
    let usages: Vec<BudgetUsage> = best
        .into_values()
        .map(|(c, st)| BudgetUsage {
            name: c.name.clone(),
            spent: amount(&c.metric, c.spent),
            remaining: amount(
                &c.metric,
                i64::try_from(
                    c.limit
                        .saturating_sub(u64::try_from(c.spent.max(0)).unwrap_or(0)),
                )
                .unwrap_or(i64::MAX),
            ),
            reset_at: Some(rfc3339(c.reset_at)),
            state: st,
        })
        .collect();
    let worst = usages
        .iter()
        .map(|u| u.state)
        .max()
        .unwrap_or(BudgetState::Ok);
    Some((worst, usages))
}

#[cfg(test)]
mod tests {
    use switchyard_dsl::channel::UsageEntry;

    use super::*;

    fn entry(name: &str, scope: &str, spent: i64, source: &str) -> UsageEntry {
        UsageEntry {
            name: name.into(),
            origin: "ns/spend".into(),
            scope: scope.into(),
            metric: "requests".into(),
            window: "hour".into(),
            spent,
            limit: 10,
            remaining: 10u64.saturating_sub(spent as u64),
            reset_at: 2_000,
            state: "ok".into(),
            source: source.into(),
        }
    }

    fn report(pod: &str, budgets: Vec<UsageEntry>) -> UsageReport {
        UsageReport {
            pod: pod.into(),
            version: 1,
            budgets,
            shadow: None,
        }
    }

    #[test]
    fn shadow_counts_of_the_pods_on_the_current_hashes_are_summed() {
        use switchyard_dsl::channel::{ShadowChange as Moved, ShadowReport};
        let shadow = |live: &str, requests, moved| ShadowReport {
            live_snapshot: live.into(),
            shadow_snapshot: "s".into(),
            requests,
            same_target: requests - moved - 1,
            changed: vec![Moved {
                from: "chat → p/a".into(),
                to: "team → p/b".into(),
                count: moved,
            }],
            would_reject: 1,
        };
        let mut a = report("a", Vec::new());
        a.shadow = Some(shadow("l", 10, 3));
        let mut b = report("b", Vec::new());
        b.shadow = Some(shadow("l", 20, 5));
        let mut stale = report("c", Vec::new());
        stale.shadow = Some(shadow("old", 1000, 500));
        let status = aggregate_shadow(&[a, b, stale], "l", "s").expect("two pods");
        assert_eq!(status.pods, 2);
        assert_eq!(status.requests, 30);
        assert_eq!(status.same_target, 20);
        assert_eq!(status.would_reject, 2);
        assert_eq!(
            status.changed,
            [ShadowChange {
                from: "chat → p/a".into(),
                to: "team → p/b".into(),
                count: 8
            }]
        );
        assert_eq!(status.summary, "10/30 changed");
        assert_eq!(aggregate_shadow(&[report("d", Vec::new())], "l", "s"), None);
    }

    #[test]
    fn redis_counters_take_the_max_and_memory_counters_the_sum() {
        let reports = vec![
            report(
                "a",
                vec![
                    entry("shared", "global", 6, "redis"),
                    entry("local", "team=x", 3, "memory"),
                ],
            ),
            report(
                "b",
                vec![
                    entry("shared", "global", 7, "redis"),
                    entry("local", "team=x", 5, "memory"),
                    entry("local", "team=y", 1, "memory"),
                ],
            ),
        ];
        let counters = aggregate(&reports, 1_000);
        let spent = |name: &str, scope: &str| {
            counters
                .iter()
                .find(|c| c.name == name && c.scope == scope)
                .map(|c| c.spent)
        };
        assert_eq!(spent("shared", "global"), Some(7), "redis: max");
        assert_eq!(spent("local", "team=x"), Some(8), "memory: sum");
        assert_eq!(spent("local", "team=y"), Some(1));
        // Windows that ended are left out.
        assert!(aggregate(&reports, 2_000).is_empty());

        let (worst, usages) =
            budget_status(&counters, "ns/spend", |_| Some(vec![8000])).expect("reported");
        assert_eq!(worst, BudgetState::Warning);
        let local = usages.iter().find(|u| u.name == "local").expect("local");
        assert_eq!(
            (local.spent.as_str(), local.remaining.as_str()),
            ("8 requests", "2 requests"),
            "the most used scope"
        );
        assert_eq!(local.state, BudgetState::Warning);
        assert_eq!(local.reset_at.as_deref(), Some("1970-01-01T00:33:20Z"));
        let shared = usages.iter().find(|u| u.name == "shared").expect("shared");
        assert_eq!(shared.state, BudgetState::Ok);
        assert!(budget_status(&counters, "ns/other", |_| None).is_none());

        let exhausted = aggregate(
            &[
                report("a", vec![entry("local", "global", 6, "memory")]),
                report("b", vec![entry("local", "global", 4, "memory")]),
            ],
            1_000,
        );
        let (worst, _) = budget_status(&exhausted, "ns/spend", |_| None).expect("reported");
        assert_eq!(
            worst,
            BudgetState::Ok,
            "without thresholds, the pods' states"
        );
        let (worst, _) = budget_status(&exhausted, "ns/spend", |_| Some(vec![])).expect("r");
        assert_eq!(worst, BudgetState::Exhausted);
        assert_eq!(amount("micro_usd", 312_400_000), "$312.40");
    }

    #[test]
    fn reports_are_kept_per_pod_and_changes_are_signalled() {
        let usage = Usage::default();
        let rx = usage.subscribe();
        usage.record(report("a", vec![entry("x", "global", 1, "memory")]));
        usage.record(report("a", vec![entry("x", "global", 2, "memory")]));
        usage.record(report("b", vec![entry("x", "global", 2, "memory")]));
        usage.record(report("b", vec![entry("x", "global", 2, "memory")]));
        assert_eq!(*rx.borrow(), 3, "an unchanged report is no change");
        assert_eq!(usage.fresh().len(), 2);
    }
}
