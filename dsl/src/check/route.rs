//! Route blocks: one selection, at most one of every other statement, typed values.

use super::{CheckedRetry, CheckedRoute, CheckedSelection, Cx, ResolvedTarget, SpanExt, list};
use crate::ast::{
    HedgeAfter, Ident, Quantity, RouteDecl, RouteStmtKind, Span, SplitArm, TargetRef,
};
use crate::ir::{HedgeDelay, Timeouts};
use crate::units;

const SELECTION_HELP: &str = "pick targets with one of `use P/M`, `split { W% P/M, .. }`, `cheapest of P/M, ..` or `fastest of P/M, ..`";
const TIMEOUTS: [&str; 3] = ["total", "first_token", "connect"];

/// First span of each statement kind seen so far in a route, for duplicate reports.
#[derive(Default)]
struct Seen {
    when: Option<Span>,
    selection: Option<Span>,
    failover: Option<Span>,
    retry: Option<Span>,
    timeout: Option<Span>,
    hedge: Option<Span>,
    cache: Option<Span>,
    affinity: Option<Span>,
}

impl Cx<'_> {
    pub(super) fn route(&mut self, decl: &RouteDecl, origin: &str) -> CheckedRoute {
        let block = format!("route `{}`", decl.name.name);
        let mut seen = Seen::default();
        let mut r = CheckedRoute {
            name: decl.name.name.clone(),
            origin: origin.to_string(),
            condition: None,
            selection: None,
            failover: Vec::new(),
            triggers: None,
            retry: None,
            timeouts: Timeouts::default(),
            hedge: None,
            cache_ttl_ms: None,
            affinity: None,
        };
        let mut selection_targets: Vec<ResolvedTarget> = Vec::new();
        let mut failover_refs: Vec<(ResolvedTarget, &TargetRef)> = Vec::new();
        for stmt in &decl.stmts {
            let span = stmt.span;
            match &stmt.kind {
                RouteStmtKind::When(e) => {
                    let dup = self.duplicate_stmt(seen.when, span, "when", &block);
                    seen.when.get_or_insert(span);
                    let c = self.condition(e);
                    if !dup {
                        r.condition = c;
                    }
                }
                RouteStmtKind::Use(_)
                | RouteStmtKind::Split(_)
                | RouteStmtKind::Cheapest(_)
                | RouteStmtKind::Fastest { .. } => {
                    let sel = self.selection(&stmt.kind, span);
                    if let Some(first) = seen.selection {
                        let at = self.location(self.source, first);
                        self.error(
                            span,
                            format!("{block} has two selections"),
                            "second selection",
                            format!("a route picks its target one way (the first selection is at {at}); keep one, or list fallbacks with `failover to`"),
                        );
                        continue;
                    }
                    seen.selection = Some(span);
                    if let Some(sel) = sel {
                        selection_targets = selection_list(&sel);
                        r.selection = Some(sel);
                    }
                }
                RouteStmtKind::Failover { targets, triggers } => {
                    let dup = self.duplicate_stmt(seen.failover, span, "failover", &block);
                    seen.failover.get_or_insert(span);
                    let resolved: Vec<_> = targets
                        .iter()
                        .filter_map(|t| self.target(t).map(|r| (r, t)))
                        .collect();
                    let trig = if triggers.is_empty() {
                        None
                    } else {
                        self.triggers(triggers)
                    };
                    if !dup {
                        r.failover = resolved.iter().map(|(t, _)| *t).collect();
                        failover_refs = resolved;
                        r.triggers = trig;
                    }
                }
                RouteStmtKind::Retry { count, backoff } => {
                    let dup = self.duplicate_stmt(seen.retry, span, "retry", &block);
                    seen.retry.get_or_insert(span);
                    let retry = self.retry(count, backoff.as_ref());
                    if !dup {
                        r.retry = retry;
                    }
                }
                RouteStmtKind::Timeout(fields) => {
                    let dup = self.duplicate_stmt(seen.timeout, span, "timeout", &block);
                    seen.timeout.get_or_insert(span);
                    let t = self.timeouts(fields);
                    if !dup {
                        r.timeouts = t;
                    }
                }
                RouteStmtKind::Hedge(after) => {
                    let dup = self.duplicate_stmt(seen.hedge, span, "hedge", &block);
                    seen.hedge.get_or_insert(span);
                    let h = match after {
                        HedgeAfter::Fixed(q) => self
                            .unit(q, units::duration_ms)
                            .map(|ms| HedgeDelay::Fixed { ms }),
                        HedgeAfter::Percentile(l) => {
                            self.latency_ref(l).map(HedgeDelay::Percentile)
                        }
                    };
                    if !dup {
                        r.hedge = h;
                    }
                }
                RouteStmtKind::Cache(q) => {
                    let dup = self.duplicate_stmt(seen.cache, span, "cache", &block);
                    seen.cache.get_or_insert(span);
                    let ttl = self.unit(q, units::duration_ms);
                    if !dup {
                        r.cache_ttl_ms = ttl;
                    }
                }
                RouteStmtKind::Affinity { by, idle } => {
                    let dup = self.duplicate_stmt(seen.affinity, span, "affinity", &block);
                    seen.affinity.get_or_insert(span);
                    let a = self.affinity(by, idle.as_ref());
                    if !dup {
                        r.affinity = a;
                    }
                }
            }
        }
        if seen.selection.is_none() {
            self.error(
                decl.span.with_end(decl.name.span),
                format!("{block} has no selection"),
                "no target to send requests to",
                SELECTION_HELP,
            );
        }
        if let (Some(span), Some(CheckedSelection::Single(_)), true) =
            (seen.affinity, &r.selection, r.failover.is_empty())
        {
            self.warning(
                span,
                format!("`affinity` in {block} has no effect"),
                "one target only",
                "the route sends every request to its one target; affinity matters with `split`, `cheapest of`, `fastest of` or `failover to`",
            );
        }
        for (t, tref) in failover_refs {
            if selection_targets.contains(&t) {
                self.warning(
                    tref.span,
                    format!("`{}/{}` is already a candidate of this route's selection", tref.provider.name, tref.model),
                    "listed twice",
                    "remove it from `failover to`: the selection already tries it, so it would not be tried again",
                );
            }
        }
        r
    }

    fn selection(&mut self, kind: &RouteStmtKind, span: Span) -> Option<CheckedSelection> {
        match kind {
            RouteStmtKind::Use(t) => self.target(t).map(CheckedSelection::Single),
            RouteStmtKind::Split(arms) => self.split(arms, span),
            RouteStmtKind::Cheapest(ts) => {
                let n = ts.len();
                let resolved = self.targets(ts);
                (resolved.len() == n).then_some(CheckedSelection::Cheapest(resolved))
            }
            RouteStmtKind::Fastest {
                targets,
                by,
                explore,
            } => {
                let n = targets.len();
                let resolved = self.targets(targets);
                let by = by.as_ref().map(|l| self.latency_ref(l));
                let explore = explore.as_ref().map(|q| self.unit(q, units::percent_bp));
                let by = match by {
                    Some(None) => return None,
                    Some(Some(m)) => Some(m),
                    None => None,
                };
                let explore_bp = match explore {
                    Some(None) => return None,
                    Some(Some(bp)) => Some(bp),
                    None => None,
                };
                (resolved.len() == n).then_some(CheckedSelection::Fastest {
                    targets: resolved,
                    by,
                    explore_bp,
                })
            }
            _ => None,
        }
    }

    fn split(&mut self, arms: &[SplitArm], span: Span) -> Option<CheckedSelection> {
        let mut out = Vec::new();
        let mut sum_bp: u64 = 0;
        let mut weights_ok = true;
        for arm in arms {
            let target = self.target(&arm.target);
            match self.unit(&arm.weight, units::percent_bp) {
                Some(bp) if bp % 100 == 0 => {
                    sum_bp += u64::from(bp);
                    if let Some(t) = target {
                        out.push((t, bp / 100));
                    }
                }
                Some(_) => {
                    weights_ok = false;
                    self.error(
                        arm.weight.span,
                        format!(
                            "split weight `{}` is not a whole percentage",
                            units::written(&arm.weight)
                        ),
                        "fraction of a percent",
                        "split weights are whole percentages like `90%` and `10%`",
                    );
                }
                None => weights_ok = false,
            }
        }
        if weights_ok && sum_bp != 10_000 {
            self.error(
                span,
                format!(
                    "split weights add up to {}, not 100%",
                    units::format_bp(sum_bp.min(u64::from(u32::MAX)) as u32)
                ),
                "weights must sum to 100%",
                "adjust the weights so that they add up to exactly `100%`",
            );
            return None;
        }
        (weights_ok && out.len() == arms.len()).then_some(CheckedSelection::Split(out))
    }

    fn retry(
        &mut self,
        count: &Quantity,
        backoff: Option<&(Quantity, Quantity)>,
    ) -> Option<CheckedRetry> {
        let attempts = self.unit(count, units::count);
        let attempts = match attempts.map(u32::try_from) {
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                self.error(
                    count.span,
                    format!("`retry {}` is too many attempts", units::written(count)),
                    "too large",
                    "retry a handful of times, e.g. `retry 2`",
                );
                None
            }
            None => None,
        };
        let backoff_ms = match backoff {
            None => Some(None),
            Some((lo, hi)) => {
                let (min, max) = (
                    self.unit(lo, units::duration_ms),
                    self.unit(hi, units::duration_ms),
                );
                match (min, max) {
                    (Some(min), Some(max)) if min > max => {
                        self.error(
                            lo.span.to(hi.span),
                            format!(
                                "backoff minimum `{}` is larger than its maximum `{}`",
                                units::written(lo),
                                units::written(hi)
                            ),
                            "minimum after maximum",
                            format!(
                                "write the smaller duration first: `{}..{}`",
                                units::written(hi),
                                units::written(lo)
                            ),
                        );
                        None
                    }
                    (Some(min), Some(max)) => Some(Some((min, max))),
                    _ => None,
                }
            }
        };
        Some(CheckedRetry {
            attempts: attempts?,
            backoff_ms: backoff_ms?,
        })
    }

    fn timeouts(&mut self, fields: &[(Ident, Quantity)]) -> Timeouts {
        let mut t = Timeouts::default();
        for (name, q) in fields {
            let ms = self.unit(q, units::duration_ms);
            let slot = match name.name.as_str() {
                "total" => &mut t.total_ms,
                "first_token" => &mut t.first_token_ms,
                "connect" => &mut t.connect_ms,
                other => {
                    let help = format!(
                        "{}timeouts are {}",
                        super::resolve::did_you_mean(other, TIMEOUTS),
                        list(TIMEOUTS)
                    );
                    self.error(
                        name.span,
                        format!("unknown timeout `{other}`"),
                        "not a timeout",
                        help,
                    );
                    continue;
                }
            };
            if slot.is_some() {
                self.error(
                    name.span,
                    format!("timeout `{}` is given twice", name.name),
                    "second one",
                    "give each timeout once",
                );
            } else {
                *slot = ms;
            }
        }
        t
    }
}

/// Every target a selection can try, for the failover-overlap warning.
/// Targets the selection always tries before `failover to`. A split tries only the arm it
/// picked, so naming another arm in `failover to` is meaningful (it backs up the other arms).
fn selection_list(sel: &CheckedSelection) -> Vec<ResolvedTarget> {
    match sel {
        CheckedSelection::Single(t) => vec![*t],
        CheckedSelection::Split(_) => Vec::new(),
        CheckedSelection::Cheapest(ts) | CheckedSelection::Fastest { targets: ts, .. } => {
            ts.clone()
        }
    }
}
