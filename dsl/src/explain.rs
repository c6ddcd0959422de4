//! Human explanation of a route decision, for `switchyard explain`.
//!
//! Walks the routes the way [`crate::decide()`] does — only those the model index lists for
//! the request's model, counting the others as skipped by the index — and records why each one
//! before the match was skipped (the failing part of its condition, printed back in policy
//! syntax, with the request's actual value), then everything the data plane will do with the
//! match. Allocation is fine here: this is a diagnostic tool, not the request path.

use std::fmt;

use crate::decide::{RequestFeatures, decide, eval};
use crate::ir::{
    Affinity, AffinityKey, Budget, BudgetScope, Condition, HedgeDelay, LatencyKind, LatencyMetric,
    LimitMetric, NumOp, OnExhausted, OnOverrun, Route, Selection, Snapshot, StringMatch, Triggers,
    WeightedTarget, Window,
};
use crate::units::{format_bp, format_duration_ms, format_hundredths, format_micro_usd};

/// One route considered before (and including) the match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteStep {
    /// Position in the policy (0-based index into [`Snapshot::routes`]).
    pub index: usize,
    pub name: String,
    pub origin: String,
    pub matched: bool,
    /// `matched`, or `skipped: ...` with the failing condition.
    pub reason: String,
}

/// Why a request goes where it goes. Fields are public so that tests and the CLI can assert on
/// them; [`fmt::Display`] prints the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub draw: f64,
    /// The routes evaluated, in policy order, up to and including the match (all the model
    /// index lists when none matches).
    pub steps: Vec<RouteStep>,
    /// Routes before the match (all routes when none matches) that the model index skipped
    /// without evaluating them: their condition cannot match the requested model.
    pub skipped_by_index: usize,
    /// The matched route's name; `None` means the proxy answers `404`.
    pub route: Option<String>,
    /// How the selection picked the primary target.
    pub selection: Option<String>,
    /// Candidates in the order tried, as `provider/model`.
    pub candidates: Vec<String>,
    /// The provider kind of each candidate (same order).
    pub candidate_kinds: Vec<String>,
    /// Timeouts, retry, failover triggers, hedge and cache of the matched route.
    pub settings: Vec<String>,
    /// Names of the budgets that count this request.
    pub budgets: Vec<String>,
    /// One line per applicable budget: scope, limits and actions.
    pub budget_details: Vec<String>,
}

/// Explains where `request` goes under `snapshot` with this split `draw`.
pub fn explain<R: RequestFeatures + ?Sized>(
    snapshot: &Snapshot,
    request: &R,
    draw: f64,
) -> Explanation {
    let mut ex = Explanation {
        draw,
        steps: Vec::new(),
        skipped_by_index: 0,
        route: None,
        selection: None,
        candidates: Vec::new(),
        candidate_kinds: Vec::new(),
        settings: Vec::new(),
        budgets: Vec::new(),
        budget_details: Vec::new(),
    };
    for (index, route) in snapshot
        .index()
        .candidates(request.model())
        .filter_map(|i| snapshot.routes.get(i).map(|r| (i, r)))
    {
        let matched = eval(&route.condition, request);
        let reason = if matched {
            "matched".to_string()
        } else {
            format!("skipped: {}", why_false(&route.condition, request))
        };
        ex.steps.push(RouteStep {
            index,
            name: route.name.clone(),
            origin: route.origin.clone(),
            matched,
            reason,
        });
        if matched {
            break;
        }
    }
    let scanned = match ex.steps.last() {
        Some(s) if s.matched => s.index + 1,
        _ => snapshot.routes.len(),
    };
    ex.skipped_by_index = scanned - ex.steps.len();
    let Some(decision) = decide(snapshot, request, draw) else {
        return ex;
    };
    let route = decision.route();
    ex.route = Some(route.name.clone());
    ex.selection = Some(match (&route.selection, decision.session()) {
        (Selection::Split(arms), Some(session)) => affinity_split_text(snapshot, arms, session),
        _ => selection_text(snapshot, route, decision.split_arm(), draw),
    });
    for t in decision.candidates() {
        ex.candidates.push(snapshot.target_name(t));
        ex.candidate_kinds.push(
            snapshot
                .provider(snapshot.target(t).provider)
                .kind
                .as_str()
                .to_string(),
        );
    }
    ex.settings = settings(route);
    if let Some(a) = &route.affinity {
        ex.settings.push(affinity_text(a, decision.session()));
    }
    for (_, b) in decision.budgets(request) {
        ex.budgets.push(b.name.clone());
        ex.budget_details.push(budget_text(snapshot, b));
    }
    ex
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "routes:")?;
        for s in &self.steps {
            writeln!(
                f,
                "  {}. {} ({}): {}",
                s.index + 1,
                s.name,
                s.origin,
                s.reason
            )?;
        }
        if self.skipped_by_index > 0 {
            let n = self.skipped_by_index;
            writeln!(
                f,
                "  skipped by the model index: {} route{} (they cannot match this model)",
                thousands(n as u64),
                if n == 1 { "" } else { "s" }
            )?;
        }
        let Some(route) = &self.route else {
            return writeln!(f, "no route matches → 404");
        };
        writeln!(f, "route: {route}")?;
        if let Some(sel) = &self.selection {
            writeln!(f, "selection: {sel}")?;
        }
        writeln!(f, "candidates:")?;
        for (i, (c, kind)) in self
            .candidates
            .iter()
            .zip(&self.candidate_kinds)
            .enumerate()
        {
            writeln!(f, "  {}. {c} ({kind})", i + 1)?;
        }
        for s in &self.settings {
            writeln!(f, "{s}")?;
        }
        if self.budgets.is_empty() {
            writeln!(f, "budgets: none apply")
        } else {
            writeln!(f, "budgets:")?;
            for (name, detail) in self.budgets.iter().zip(&self.budget_details) {
                writeln!(f, "  {name}: {detail}")?;
            }
            Ok(())
        }
    }
}

fn selection_text(snapshot: &Snapshot, route: &Route, arm: Option<usize>, draw: f64) -> String {
    let names = |ts: &[crate::ir::TargetId]| {
        ts.iter()
            .map(|&t| format!("`{}`", snapshot.target_name(t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &route.selection {
        Selection::Single(t) => format!("use `{}`", snapshot.target_name(*t)),
        Selection::Split(arms) => {
            let chosen = arm.and_then(|i| arms.get(i).map(|a| (i, a)));
            let all = arms
                .iter()
                .map(|a| format!("{}% `{}`", a.weight, snapshot.target_name(a.target)))
                .collect::<Vec<_>>()
                .join(", ");
            match chosen {
                Some((i, a)) => format!(
                    "split {{ {all} }}: draw {draw:.4} → arm {} (`{}`, {}%)",
                    i + 1,
                    snapshot.target_name(a.target),
                    a.weight
                ),
                None => format!("split {{ {all} }}: draw {draw:.4}"),
            }
        }
        Selection::Cheapest(ts) => format!("cheapest of {} (in price order)", names(ts)),
        Selection::Fastest {
            targets,
            by,
            explore_bp,
        } => format!(
            "fastest of {} by {}, explore {} (the first listed until the data plane has measurements)",
            names(targets),
            metric_text(by),
            format_bp(*explore_bp)
        ),
    }
}

/// A split under affinity: the session's ranking of the arms, best first.
fn affinity_split_text(snapshot: &Snapshot, arms: &[WeightedTarget], session: u64) -> String {
    let ranking = crate::affinity::ranking(snapshot, arms, session);
    let ranked: Vec<String> = ranking
        .iter()
        .map(|&(i, score)| {
            let a = &arms[i];
            format!(
                "`{}` ({}%, score {score:.3})",
                snapshot.target_name(a.target),
                a.weight
            )
        })
        .collect();
    let chosen = ranking
        .first()
        .map_or_else(String::new, |&(i, _)| snapshot.target_name(arms[i].target));
    format!(
        "split by session {session:016x}: rendezvous order {} → `{chosen}`",
        ranked.join(", ")
    )
}

/// The affinity line: the key, whether this request has one, and the idle time.
fn affinity_text(a: &Affinity, session: Option<u64>) -> String {
    let key = match &a.by {
        AffinityKey::Header(h) => format!("header(\"{h}\")"),
        AffinityKey::Body(p) => format!("body(\"{p}\")"),
        AffinityKey::Prefix { tokens } => format!("prefix({tokens})"),
        AffinityKey::Key => "key".into(),
        AffinityKey::User => "user".into(),
    };
    let idle = format_duration_ms(a.idle_ms);
    match session {
        Some(s) => format!(
            "affinity: by {key} for {idle}: session {s:016x} keeps its target; when that target is out it moves to its next choice and stays there until idle for {idle}"
        ),
        None => format!(
            "affinity: by {key} for {idle}: this request has no session key, so it is routed like one without affinity"
        ),
    }
}

fn settings(route: &Route) -> Vec<String> {
    let mut out = Vec::new();
    let t = &route.timeouts;
    let timeouts: Vec<String> = [
        ("total", t.total_ms),
        ("first_token", t.first_token_ms),
        ("connect", t.connect_ms),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.map(|ms| format!("{n} {}", format_duration_ms(ms))))
    .collect();
    out.push(if timeouts.is_empty() {
        "timeouts: provider defaults".to_string()
    } else {
        format!("timeouts: {}", timeouts.join(", "))
    });
    let r = &route.retry;
    out.push(format!(
        "retry: {} (backoff {}..{})",
        r.attempts,
        format_duration_ms(r.backoff_min_ms),
        format_duration_ms(r.backoff_max_ms)
    ));
    out.push(format!("fails over on: {}", triggers_text(&route.triggers)));
    out.push(match route.hedge {
        Some(h) => match h.after {
            HedgeDelay::Fixed { ms } => format!("hedge: after {}", format_duration_ms(ms)),
            HedgeDelay::Percentile(m) => format!("hedge: after {}", metric_text(&m)),
        },
        None => "hedge: off".to_string(),
    });
    out.push(match route.cache_ttl_ms {
        Some(ms) => format!("cache: for {}", format_duration_ms(ms)),
        None => "cache: off".to_string(),
    });
    out
}

fn triggers_text(t: &Triggers) -> String {
    let mut parts: Vec<String> = t
        .statuses
        .iter()
        .map(|s| {
            if s.lo == s.hi {
                format!("status {}", s.lo)
            } else {
                format!("status {}..{}", s.lo, s.hi)
            }
        })
        .collect();
    parts.extend(t.errors.iter().map(|e| e.as_str().to_string()));
    if let Some(e) = t.error_rate {
        parts.push(format!(
            "error_rate > {} over {}",
            format_bp(e.threshold_bp),
            format_duration_ms(e.window_ms)
        ));
    }
    for l in &t.latency {
        parts.push(format!(
            "{} > {} over {} min_samples {}",
            metric_text(&l.metric),
            format_duration_ms(l.threshold_ms),
            format_duration_ms(l.window_ms),
            l.min_samples
        ));
    }
    parts.join(" or ")
}

fn metric_text(m: &LatencyMetric) -> String {
    let kind = match m.kind {
        LatencyKind::Ttft => "ttft",
        LatencyKind::Total => "latency",
    };
    format!(
        "p{}({kind})",
        format_hundredths(u64::from(m.percentile_centi))
    )
}

fn budget_text(snapshot: &Snapshot, b: &Budget) -> String {
    let scope = match &b.scope {
        BudgetScope::Global => "for all".to_string(),
        BudgetScope::Key(k) => format!("for key {}", quote(k)),
        BudgetScope::EachKey => "for each key".to_string(),
        BudgetScope::Team(t) => format!("for team {}", quote(t)),
        BudgetScope::EachTeam => "for each team".to_string(),
        BudgetScope::User(u) => format!("for user {}", quote(u)),
        BudgetScope::EachUser => "for each user".to_string(),
        BudgetScope::EachHeaderValue(h) => format!("for each user in header {}", quote(h)),
        BudgetScope::Route(r) => format!("for route {r}"),
    };
    let limits: Vec<String> = b
        .limits
        .iter()
        .map(|l| {
            let window = match l.window {
                Window::Second => "second",
                Window::Minute => "minute",
                Window::Hour => "hour",
                Window::Day => "day",
                Window::Month => "month",
            };
            let amount = match l.metric {
                LimitMetric::MicroUsd => format_micro_usd(l.amount),
                LimitMetric::Requests => format!("{} requests", count_text(l.amount)),
                LimitMetric::TotalTokens => format!("{} tokens", count_text(l.amount)),
                LimitMetric::InputTokens => format!("{} input_tokens", count_text(l.amount)),
                LimitMetric::OutputTokens => format!("{} output_tokens", count_text(l.amount)),
            };
            format!("{amount} per {window}")
        })
        .collect();
    let exhausted = match b.on_exhausted {
        OnExhausted::Reject => "reject".to_string(),
        OnExhausted::Downgrade(t) => format!("downgrade to {}", snapshot.target_name(t)),
    };
    let overrun = match b.on_overrun {
        OnOverrun::Finish => "finish",
        OnOverrun::Cut => "cut",
    };
    let warn = if b.warn_at_bp.is_empty() {
        String::new()
    } else {
        let ps: Vec<String> = b.warn_at_bp.iter().map(|&bp| format_bp(bp)).collect();
        format!("; warn at {}", ps.join(", "))
    };
    format!(
        "{scope}; limit {}{warn}; on exhausted {exhausted}; on overrun {overrun}",
        limits.join(", ")
    )
}

/// `9997` → `9,997`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count in the largest unit that keeps it whole (`2000000` → `2M`).
fn count_text(n: u64) -> String {
    match n {
        0 => "0".to_string(),
        n if n.is_multiple_of(1_000_000) => format!("{}M", n / 1_000_000),
        n if n.is_multiple_of(1_000) => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// A string in policy syntax, with `"` and `\` escaped.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn match_text(subject: &str, m: &StringMatch, negated: bool) -> String {
    match (m, negated) {
        (StringMatch::Exact(v), false) => format!("{subject} == {}", quote(v)),
        (StringMatch::Exact(v), true) => format!("{subject} != {}", quote(v)),
        (StringMatch::Glob(g), _) => format!("{subject} matches {}", quote(g)),
        (StringMatch::OneOf(vs), _) => {
            format!(
                "{subject} in [{}]",
                vs.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// Prints an IR condition back in policy syntax.
pub fn condition_text(c: &Condition) -> String {
    fn operand(c: &Condition, parent_and: bool) -> String {
        let text = condition_text(c);
        match c {
            Condition::Any(_) if parent_and => format!("({text})"),
            _ => text,
        }
    }
    match c {
        Condition::Always => "true".to_string(),
        Condition::All(cs) => cs
            .iter()
            .map(|c| operand(c, true))
            .collect::<Vec<_>>()
            .join(" and "),
        Condition::Any(cs) => cs
            .iter()
            .map(|c| operand(c, false))
            .collect::<Vec<_>>()
            .join(" or "),
        Condition::Not(inner) => match &**inner {
            Condition::Model(m @ StringMatch::Exact(_)) => match_text("model", m, true),
            Condition::Header {
                name,
                matches: m @ StringMatch::Exact(_),
            } => match_text(&format!("header({})", quote(name)), m, true),
            Condition::Key(m @ StringMatch::Exact(_)) => match_text("key", m, true),
            Condition::Team(m @ StringMatch::Exact(_)) => match_text("team", m, true),
            Condition::User(m @ StringMatch::Exact(_)) => match_text("user", m, true),
            Condition::All(_) | Condition::Any(_) => format!("not ({})", condition_text(inner)),
            other => format!("not {}", condition_text(other)),
        },
        Condition::Model(m) => match_text("model", m, false),
        Condition::Header { name, matches } => {
            match_text(&format!("header({})", quote(name)), matches, false)
        }
        Condition::HasHeader(name) => format!("has header({})", quote(name)),
        Condition::Key(m) => match_text("key", m, false),
        Condition::Team(m) => match_text("team", m, false),
        Condition::User(m) => match_text("user", m, false),
        Condition::PromptTokens { op, value } => {
            let op = match op {
                NumOp::Eq => "==",
                NumOp::Ne => "!=",
                NumOp::Lt => "<",
                NumOp::Le => "<=",
                NumOp::Gt => ">",
                NumOp::Ge => ">=",
            };
            format!("prompt_tokens {op} {value}")
        }
        Condition::Stream(true) => "stream".to_string(),
        Condition::Stream(false) => "not stream".to_string(),
    }
}

fn actual(name: &str, v: Option<&str>, absent: &str) -> String {
    v.map_or_else(|| absent.to_string(), |v| format!("{name} is {}", quote(v)))
}

/// Why `c` is false for `request` (call only when it is).
fn why_false<R: RequestFeatures + ?Sized>(c: &Condition, request: &R) -> String {
    let value = match c {
        Condition::All(cs) => {
            return match cs.iter().find(|c| !eval(c, request)) {
                Some(c) => why_false(c, request),
                None => format!("`{}` is false", condition_text(c)),
            };
        }
        Condition::Any(cs) => {
            let parts: Vec<String> = cs.iter().map(|c| why_false(c, request)).collect();
            return format!("none holds: {}", parts.join("; "));
        }
        Condition::Not(_) => "the negated condition holds".to_string(),
        Condition::Always => String::new(),
        Condition::Model(_) => format!("model is {}", quote(request.model())),
        Condition::Header { name, .. } | Condition::HasHeader(name) => {
            actual("header", request.header(name), "header absent")
        }
        Condition::Key(_) => actual("key", request.key(), "no key"),
        Condition::Team(_) => actual("team", request.team(), "no team"),
        Condition::User(_) => actual("user", request.user(), "no user"),
        Condition::PromptTokens { .. } => format!("prompt_tokens is {}", request.prompt_tokens()),
        Condition::Stream(_) => format!("stream is {}", request.stream()),
    };
    format!("`{}` is false ({value})", condition_text(c))
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(9_997), "9,997");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
