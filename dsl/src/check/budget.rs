//! Budget blocks: scope, limits, warnings and what happens when a budget runs out.

use super::resolve::did_you_mean;
use super::{CheckedBudget, Cx, SpanExt, list};
use crate::ast::{BudgetDecl, BudgetStmtKind, Exhausted, Ident, Limit, Quantity, Scope, Span};
use crate::ir::{self, BudgetScope, LimitMetric, OnOverrun, Window};
use crate::units;

const SCOPES: [&str; 5] = ["all", "key", "team", "user", "route"];
const METRICS: [&str; 4] = ["requests", "tokens", "input_tokens", "output_tokens"];
const WINDOWS: [&str; 5] = ["second", "minute", "hour", "day", "month"];
const SCOPE_HELP: &str = "scopes are `all`, `key \"id\"`, `each key`, `team \"name\"`, `each team`, \
     `user \"name\"`, `each user`, `each user in header \"x-user-id\"` and `route NAME`";

#[derive(Default)]
struct Seen {
    scope: Option<Span>,
    limit: Option<Span>,
    warn: Option<Span>,
    exhausted: Option<Span>,
    overrun: Option<Span>,
}

impl Cx<'_> {
    pub(super) fn budget(
        &mut self,
        decl: &BudgetDecl,
        origin: &str,
        routes: &[&str],
    ) -> CheckedBudget {
        let block = format!("budget `{}`", decl.name.name);
        let mut seen = Seen::default();
        let mut b = CheckedBudget {
            name: decl.name.name.clone(),
            origin: origin.to_string(),
            scope: None,
            limits: Vec::new(),
            warn_at_bp: Vec::new(),
            downgrade: None,
            on_overrun: None,
        };
        for stmt in &decl.stmts {
            let span = stmt.span;
            match &stmt.kind {
                BudgetStmtKind::For(scope) => {
                    let dup = self.duplicate_stmt(seen.scope, span, "for", &block);
                    seen.scope.get_or_insert(span);
                    let s = self.scope(scope, routes);
                    if !dup {
                        b.scope = s;
                    }
                }
                BudgetStmtKind::Limit(limits) => {
                    let dup = self.duplicate_stmt(seen.limit, span, "limit", &block);
                    seen.limit.get_or_insert(span);
                    let ls: Vec<_> = limits.iter().filter_map(|l| self.limit(l)).collect();
                    if !dup {
                        b.limits = ls;
                    }
                }
                BudgetStmtKind::Warn(qs) => {
                    let dup = self.duplicate_stmt(seen.warn, span, "warn", &block);
                    seen.warn.get_or_insert(span);
                    let w = self.warn(qs);
                    if !dup {
                        b.warn_at_bp = w;
                    }
                }
                BudgetStmtKind::OnExhausted(e) => {
                    let dup = self.duplicate_stmt(seen.exhausted, span, "on exhausted", &block);
                    seen.exhausted.get_or_insert(span);
                    let d = match e {
                        Exhausted::Reject(_) => None,
                        Exhausted::Downgrade(t) => self.target(t),
                    };
                    if !dup {
                        b.downgrade = d;
                    }
                }
                BudgetStmtKind::OnOverrun(word) => {
                    let dup = self.duplicate_stmt(seen.overrun, span, "on overrun", &block);
                    seen.overrun.get_or_insert(span);
                    let o = self.overrun(word);
                    if !dup {
                        b.on_overrun = o;
                    }
                }
            }
        }
        let header = decl.span.with_end(decl.name.span);
        if seen.scope.is_none() {
            self.error(
                header,
                format!("{block} has no `for`"),
                "counts nobody",
                format!("say what it counts, e.g. `for team \"support\"`; {SCOPE_HELP}"),
            );
        }
        if seen.limit.is_none() {
            self.error(
                header,
                format!("{block} has no `limit`"),
                "limits nothing",
                "add limits, e.g. `limit 2M tokens per minute, $500 per month`",
            );
        }
        b
    }

    fn scope(&mut self, s: &Scope, routes: &[&str]) -> Option<BudgetScope> {
        let word = s.subject.name.as_str();
        let value = s.value.as_ref();
        if !SCOPES.contains(&word) {
            let help = format!("{}{SCOPE_HELP}", did_you_mean(word, SCOPES));
            self.error(
                s.subject.span,
                format!("unknown budget scope `{word}`"),
                "not a scope",
                help,
            );
            return None;
        }
        if let Some(h) = &s.header {
            if word == "user" && s.each && value.is_none() {
                return Some(BudgetScope::EachHeaderValue(h.value.to_ascii_lowercase()));
            }
            self.error(
                s.span,
                "`in header` only follows `for each user`".into(),
                "misplaced header",
                format!("write `for each user in header \"{}\"`", h.value),
            );
            return None;
        }
        let malformed = |cx: &mut Self, example: &str| {
            cx.error(
                s.span,
                format!(
                    "malformed scope `for {}{word}`",
                    if s.each { "each " } else { "" }
                ),
                "not a valid scope",
                format!("write {example}; {SCOPE_HELP}"),
            );
            None
        };
        match (word, s.each, value) {
            ("all", false, None) => Some(BudgetScope::Global),
            ("all", ..) => malformed(self, "`for all`"),
            ("route", false, Some(name)) => {
                if routes.contains(&name.value.as_str()) {
                    return Some(BudgetScope::Route(name.value.clone()));
                }
                let help = if routes.is_empty() {
                    "no routes are defined; a route budget names a route from a RoutePolicy"
                        .to_string()
                } else {
                    format!(
                        "{}known routes: {}",
                        did_you_mean(&name.value, routes.iter().copied()),
                        list(routes.iter().copied())
                    )
                };
                self.error(
                    name.span,
                    format!("unknown route `{}`", name.value),
                    "no route has this name",
                    help,
                );
                None
            }
            ("route", ..) => malformed(self, "`for route NAME`"),
            (_, true, None) => Some(match word {
                "key" => BudgetScope::EachKey,
                "team" => BudgetScope::EachTeam,
                _ => BudgetScope::EachUser,
            }),
            (_, false, Some(v)) => Some(match word {
                "key" => BudgetScope::Key(v.value.clone()),
                "team" => BudgetScope::Team(v.value.clone()),
                _ => BudgetScope::User(v.value.clone()),
            }),
            _ => malformed(self, &format!("`for {word} \"name\"` or `for each {word}`")),
        }
    }

    fn limit(&mut self, l: &Limit) -> Option<ir::Limit> {
        let window = match l.window.name.as_str() {
            "second" => Some(Window::Second),
            "minute" => Some(Window::Minute),
            "hour" => Some(Window::Hour),
            "day" => Some(Window::Day),
            "month" => Some(Window::Month),
            other => {
                let help = format!(
                    "{}windows are {}",
                    did_you_mean(other, WINDOWS),
                    list(WINDOWS)
                );
                self.error(
                    l.window.span,
                    format!("unknown window `{other}`"),
                    "not a window",
                    help,
                );
                None
            }
        };
        let metric_amount = match &l.metric {
            None => self.money_limit(&l.amount),
            Some(m) => self.metric_limit(&l.amount, m),
        };
        let (metric, amount) = metric_amount?;
        Some(ir::Limit {
            metric,
            amount,
            window: window?,
        })
    }

    fn money_limit(&mut self, q: &Quantity) -> Option<(LimitMetric, u64)> {
        if q.unit == "$" {
            return self
                .unit(q, units::money_micro_usd)
                .map(|v| (LimitMetric::MicroUsd, v));
        }
        let w = units::written(q);
        self.error(
            q.span,
            format!("limit `{w}` has no metric"),
            "a count of what?",
            format!("write `{w} requests per ..`, `{w} tokens per ..`, or a money amount like `$500 per month`"),
        );
        None
    }

    fn metric_limit(&mut self, q: &Quantity, m: &Ident) -> Option<(LimitMetric, u64)> {
        let metric = match m.name.as_str() {
            "requests" => LimitMetric::Requests,
            "tokens" => LimitMetric::TotalTokens,
            "input_tokens" => LimitMetric::InputTokens,
            "output_tokens" => LimitMetric::OutputTokens,
            other => {
                let help = format!(
                    "{}metrics are {}, or a money amount like `$500` with no metric",
                    did_you_mean(other, METRICS),
                    list(METRICS)
                );
                self.error(
                    m.span,
                    format!("unknown limit metric `{other}`"),
                    "not a metric",
                    help,
                );
                return None;
            }
        };
        if q.unit == "$" {
            let w = units::written(q);
            self.error(
                q.span.to(m.span),
                format!("money amount `{w}` given with metric `{}`", m.name),
                "money is its own metric",
                format!(
                    "write `{w} per ..` for a spending limit, or drop the `$` to count {}",
                    m.name
                ),
            );
            return None;
        }
        self.unit(q, units::count).map(|v| (metric, v))
    }

    fn warn(&mut self, qs: &[Quantity]) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for q in qs {
            let Some(bp) = self.unit(q, units::percent_bp) else {
                continue;
            };
            if bp == 0 {
                self.error(
                    q.span,
                    "warn threshold `0%` is out of range".into(),
                    "always reached",
                    "warn thresholds are above `0%` and at most `100%`",
                );
                continue;
            }
            if let Some(&prev) = out.last()
                && bp <= prev
            {
                self.error(
                    q.span,
                    format!("warn thresholds are not ascending: `{}` after `{}`", units::written(q), units::format_bp(prev)),
                    "not above the previous one",
                    "list warn thresholds from lowest to highest, each once, e.g. `warn at 80%, 95%`",
                );
                continue;
            }
            out.push(bp);
        }
        out
    }

    fn overrun(&mut self, word: &Ident) -> Option<OnOverrun> {
        match word.name.as_str() {
            "finish" => Some(OnOverrun::Finish),
            "cut" => Some(OnOverrun::Cut),
            other => {
                let help = format!(
                    "{}write `on overrun finish` (let the stream complete) or `on overrun cut` (end it with an error event)",
                    did_you_mean(other, ["finish", "cut"])
                );
                self.error(
                    word.span,
                    format!("unknown overrun action `{other}`"),
                    "not an action",
                    help,
                );
                None
            }
        }
    }
}
