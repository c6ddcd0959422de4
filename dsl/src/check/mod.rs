//! Name resolution and validation: AST → [`Checked`], collecting every problem at once.
//!
//! The checker resolves targets against the provider catalogue, converts every typed literal
//! (see [`crate::units`]) and builds conditions and triggers in their IR form, so that
//! [`crate::lower`] only applies defaults, orders and indexes. It never stops at the first
//! error: each statement is checked on its own and contributes what it can.

mod affinity;
mod budget;
mod expr;
mod resolve;
mod route;
mod shadow;
mod trigger;

use std::collections::HashMap;

use crate::ast::{Item, PolicyFile, RouteStmtKind, Span};
use crate::diagnostic::{Diagnostic, SourceId};
use crate::ir::{
    BudgetScope, Condition, ErrorRateTrigger, HedgeDelay, LatencyMetric, Limit, OnOverrun,
    Provider, StatusRange, Timeouts,
};
use crate::source::{Source, SourceKind};

/// The checked program: everything [`crate::lower`] needs, plus the diagnostics found.
///
/// Items that had errors are kept with what could be resolved (missing parts are `None`), so
/// that one mistake does not hide the checks of the rest; [`crate::lower`] is only meant to run
/// when `diagnostics` has no errors.
#[derive(Debug, Default)]
pub struct Checked {
    /// Errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// The provider catalogue the targets were resolved against.
    pub catalogue: Vec<Provider>,
    /// Routes in evaluation order (order of the files given, then top to bottom).
    pub routes: Vec<CheckedRoute>,
    pub budgets: Vec<CheckedBudget>,
}

/// A `provider/model` resolved against [`Checked::catalogue`]: index of the provider and of the
/// model within that provider's `models`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResolvedTarget {
    pub provider: usize,
    pub model: usize,
}

/// One route, validated. `None` means "not written" (lower applies the documented default) or,
/// when errors were reported, "could not be resolved".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedRoute {
    pub name: String,
    pub origin: String,
    /// `None` when the route has no `when` (it matches everything).
    pub condition: Option<Condition>,
    pub selection: Option<CheckedSelection>,
    pub failover: Vec<ResolvedTarget>,
    /// `None` when `failover` has no `when`: the default triggers apply.
    pub triggers: Option<CheckedTriggers>,
    pub retry: Option<CheckedRetry>,
    pub timeouts: Timeouts,
    pub hedge: Option<HedgeDelay>,
    pub cache_ttl_ms: Option<u64>,
    pub affinity: Option<CheckedAffinity>,
}

/// `affinity by KEY [for D]`; `idle_ms` is `None` when `for` was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedAffinity {
    pub by: crate::ir::AffinityKey,
    pub idle_ms: Option<u64>,
}

/// How a route picks its first candidate, with targets resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckedSelection {
    Single(ResolvedTarget),
    /// Weights are whole percentages summing to 100.
    Split(Vec<(ResolvedTarget, u32)>),
    /// In the order written; lower sorts them by price.
    Cheapest(Vec<ResolvedTarget>),
    Fastest {
        targets: Vec<ResolvedTarget>,
        by: Option<LatencyMetric>,
        explore_bp: Option<u32>,
    },
}

/// The triggers of a `failover ... when ...`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckedTriggers {
    pub statuses: Vec<StatusRange>,
    pub errors: Vec<crate::ir::ErrorClass>,
    pub error_rate: Option<ErrorRateTrigger>,
    pub latency: Vec<CheckedLatencyTrigger>,
}

/// A latency trigger whose `min_samples` may be left to the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedLatencyTrigger {
    pub metric: LatencyMetric,
    pub threshold_ms: u64,
    pub window_ms: u64,
    pub min_samples: Option<u32>,
}

/// `retry N [backoff MIN..MAX]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedRetry {
    pub attempts: u32,
    pub backoff_ms: Option<(u64, u64)>,
}

/// One budget, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedBudget {
    pub name: String,
    pub origin: String,
    pub scope: Option<BudgetScope>,
    pub limits: Vec<Limit>,
    pub warn_at_bp: Vec<u32>,
    /// `None`: reject (the default); `Some(t)`: downgrade to `t`.
    pub downgrade: Option<ResolvedTarget>,
    pub on_overrun: Option<OnOverrun>,
}

/// Checks every file against the catalogue. `files` are in route evaluation order.
pub fn check(
    sources: &[Source],
    files: &[(SourceId, PolicyFile)],
    catalogue: &[Provider],
) -> Checked {
    let mut cx = Cx {
        sources,
        catalogue,
        source: SourceId(0),
        diags: Vec::new(),
    };
    let mut out = Checked {
        catalogue: catalogue.to_vec(),
        ..Checked::default()
    };

    let route_names = collect_route_names(files);
    let mut seen_routes: HashMap<&str, (SourceId, Span)> = HashMap::new();
    let mut seen_budgets: HashMap<&str, (SourceId, Span)> = HashMap::new();
    let mut route_sites = Vec::new();

    for (id, file) in files {
        cx.source = *id;
        let kind = sources
            .get(id.0 as usize)
            .map_or(SourceKind::Any, |s| s.kind);
        let origin = sources
            .get(id.0 as usize)
            .map_or_else(String::new, |s| s.origin.clone());
        for item in &file.items {
            match item {
                Item::Route(decl) => {
                    if kind == SourceKind::Budgets {
                        cx.error(
                            decl.span.with_end(decl.name.span),
                            format!("route `{}` in a Budget object", decl.name.name),
                            "budgets only",
                            "move it into a RoutePolicy object; a Budget holds `budget` blocks",
                        );
                    }
                    cx.duplicate_name(&mut seen_routes, "route", &decl.name.name, decl.name.span);
                    out.routes.push(cx.route(decl, &origin));
                    let has_when = decl
                        .stmts
                        .iter()
                        .any(|s| matches!(s.kind, RouteStmtKind::When(_)));
                    route_sites.push(shadow::RouteSite {
                        source: *id,
                        span: decl.name.span,
                        has_when,
                    });
                }
                Item::Budget(decl) => {
                    if kind == SourceKind::Routes {
                        cx.error(
                            decl.span.with_end(decl.name.span),
                            format!("budget `{}` in a RoutePolicy object", decl.name.name),
                            "routes only",
                            "move it into a Budget object; a RoutePolicy holds `route` blocks",
                        );
                    }
                    cx.duplicate_name(&mut seen_budgets, "budget", &decl.name.name, decl.name.span);
                    out.budgets.push(cx.budget(decl, &origin, &route_names));
                }
            }
        }
    }
    shadow::report(&mut cx, &out.routes, &route_sites);

    cx.diags.sort_by_key(|d| (d.source, d.span.start));
    out.diagnostics = cx.diags;
    out
}

fn collect_route_names(files: &[(SourceId, PolicyFile)]) -> Vec<&str> {
    files
        .iter()
        .flat_map(|(_, f)| f.items.iter())
        .filter_map(|item| match item {
            Item::Route(r) => Some(r.name.name.as_str()),
            Item::Budget(_) => None,
        })
        .collect()
}

trait SpanExt {
    fn with_end(self, end: Span) -> Span;
}

impl SpanExt for Span {
    /// From this span's start to `end`'s end: a block's header line rather than the block.
    fn with_end(self, end: Span) -> Span {
        Span {
            start: self.start,
            end: end.end.max(self.start),
        }
    }
}

/// Checking context: where we are and what has been reported.
struct Cx<'a> {
    sources: &'a [Source],
    catalogue: &'a [Provider],
    source: SourceId,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn error(&mut self, span: Span, message: String, label: &str, help: impl Into<String>) {
        self.diags.push(
            Diagnostic::error(self.source, span, message)
                .with_label(label)
                .with_help(help),
        );
    }

    fn warning(&mut self, span: Span, message: String, label: &str, help: impl Into<String>) {
        self.diags.push(
            Diagnostic::warning(self.source, span, message)
                .with_label(label)
                .with_help(help),
        );
    }

    /// `file:line` of a position, for help lines that point elsewhere.
    fn location(&self, source: SourceId, span: Span) -> String {
        match self.sources.get(source.0 as usize) {
            Some(s) => format!("{}:{}", s.file, s.line_col(span.start).0),
            None => "an earlier source".to_string(),
        }
    }

    /// Reports the second and later uses of a route or budget name.
    fn duplicate_name<'n>(
        &mut self,
        seen: &mut HashMap<&'n str, (SourceId, Span)>,
        what: &str,
        name: &'n str,
        span: Span,
    ) {
        if let Some(&(first_src, first_span)) = seen.get(name) {
            let first = self.location(first_src, first_span);
            self.error(
                span,
                format!("duplicate {what} name `{name}`"),
                "already used",
                format!("the first {what} `{name}` is at {first}; {what} names are unique across all policies, rename one"),
            );
        } else {
            seen.insert(name, (self.source, span));
        }
    }

    /// Reports a statement kind that appears twice in one block.
    fn duplicate_stmt(&mut self, first: Option<Span>, span: Span, word: &str, block: &str) -> bool {
        let Some(first) = first else { return false };
        let line = self.location(self.source, first);
        self.error(
            span,
            format!("duplicate `{word}` in {block}"),
            "second one",
            format!(
                "a {} has at most one `{word}` (the first is at {line}); merge them into one",
                block_kind(block)
            ),
        );
        true
    }
}

fn block_kind(block: &str) -> &str {
    block.split(' ').next().unwrap_or(block)
}

/// Formats words as a list for help lines: `` `a`, `b`, `c` ``.
pub(crate) fn list<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words
        .into_iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
