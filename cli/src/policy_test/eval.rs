//! One test case against a compiled snapshot: what the policies decide, and which
//! expectations that breaks.

use std::collections::BTreeSet;

use switchyard_crds::{Expectation, TestCase, TestRequest};
use switchyard_dsl::ir::{OnExhausted, Selection, Snapshot, TargetId};
use switchyard_dsl::{RequestView, decide};

/// A broken expectation: the field it is about (a path in the test document) and why.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// Dotted path below the case, e.g. `expect.route`.
    pub field: String,
    pub message: String,
    pub help: Option<String>,
}

impl Failure {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// What the policies do with a request, in the words of [`Expectation`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub status: u16,
    pub route: Option<String>,
    /// The first target, when the request alone determines it (no split, or a draw given).
    pub target: Option<String>,
    /// Every target the selection may try first.
    pub targets: BTreeSet<String>,
    pub failover: Vec<String>,
    pub budgets: BTreeSet<String>,
    /// Why `target` is undetermined, when it is.
    pub split: Option<String>,
    /// The routes evaluated and why each did or did not match, for the report.
    pub trace: String,
}

/// Decides `request` under `snapshot` the way the proxy does, exhausted budgets included.
pub(crate) fn outcome(snapshot: &Snapshot, request: &TestRequest) -> Outcome {
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let view = RequestView {
        model: &request.model,
        headers: &headers,
        key: request.key.as_deref(),
        team: request.team.as_deref(),
        user: request.user.as_deref(),
        prompt_tokens: request.prompt_tokens,
        stream: request.stream,
    };
    let draw = request.draw.unwrap_or(0.0);
    let steps: Vec<String> = switchyard_dsl::explain::explain(snapshot, &view, draw)
        .steps
        .iter()
        .map(|s| format!("`{}` {}", s.name, s.reason))
        .collect();
    let trace = if steps.is_empty() {
        format!("no route can match model `{}`", request.model)
    } else {
        format!("routes evaluated: {}", steps.join("; "))
    };
    let Some(decision) = decide(snapshot, &view, draw) else {
        return Outcome {
            status: 404,
            trace,
            ..Outcome::default()
        };
    };
    let name = |t: TargetId| snapshot.target_name(t);
    let route = decision.route();
    let firsts: Vec<TargetId> = match &route.selection {
        Selection::Single(t) => vec![*t],
        Selection::Cheapest(ts) => ts.first().copied().into_iter().collect(),
        // The data plane ranks members by measured latency: any may come first.
        Selection::Fastest { targets, .. } => targets.clone(),
        Selection::Split(arms) => arms
            .iter()
            .filter(|a| a.weight > 0)
            .map(|a| a.target)
            .collect(),
    };
    let mut out = Outcome {
        status: 200,
        route: Some(route.name.clone()),
        target: None,
        targets: firsts.iter().map(|&t| name(t)).collect(),
        failover: decision.candidates().skip(1).map(name).collect(),
        budgets: BTreeSet::new(),
        split: None,
        trace,
    };
    if request.draw.is_some() || out.targets.len() == 1 {
        out.target = Some(name(decision.primary()));
    } else {
        let kind = match route.selection {
            Selection::Fastest { .. } => "ranks by measured latency",
            _ => "splits",
        };
        let between: Vec<String> = out.targets.iter().map(|t| format!("`{t}`")).collect();
        out.split = Some(format!(
            "route `{}` {kind} between {}",
            route.name,
            between.join(", ")
        ));
    }
    let mut downgrade = None;
    for (_, budget) in decision.budgets(&view) {
        out.budgets.insert(budget.name.clone());
        if !request.exhausted.contains(&budget.name) {
            continue;
        }
        match budget.on_exhausted {
            OnExhausted::Reject => out.status = 429,
            OnExhausted::Downgrade(t) => {
                downgrade.get_or_insert(t);
            }
        }
    }
    if out.status == 429 {
        out.target = None;
        out.targets.clear();
        out.failover.clear();
        out.split = None;
    } else if let Some(t) = downgrade {
        // The proxy replaces the route's candidates with the downgrade target.
        out.target = Some(name(t));
        out.targets = BTreeSet::from([name(t)]);
        out.failover.clear();
        out.split = None;
    }
    out
}

/// Every expectation of `case` that `outcome` breaks, plus mistakes in the case itself.
pub(crate) fn check(snapshot: &Snapshot, case: &TestCase, outcome: &Outcome) -> Vec<Failure> {
    let mut failures = Vec::new();
    let expect: &Expectation = &case.expect;
    if expect.is_empty() {
        failures.push(Failure::new("expect", "the case expects nothing").help(
            "give at least one of `status`, `route`, `target`, `targets`, `failover`, \
                 `budgets`",
        ));
    }
    for (i, name) in case.request.exhausted.iter().enumerate() {
        if !snapshot.budgets.iter().any(|b| &b.name == name) {
            failures.push(Failure::new(
                format!("request.exhausted[{i}]"),
                format!("no budget `{name}` in the policies"),
            ));
        }
    }
    if let Some(draw) = case.request.draw
        && !(0.0..1.0).contains(&draw)
    {
        failures.push(Failure::new(
            "request.draw",
            format!("`draw` must be in [0, 1), found {draw}"),
        ));
    }
    let unrouted = |field: &str, what: &str| {
        let why = match outcome.status {
            404 => "no route matches (404)".to_string(),
            429 => "an exhausted budget rejects the request (429)".to_string(),
            s => format!("the outcome is {s}"),
        };
        Failure::new(field, format!("expected {what}, but {why}"))
    };
    if let Some(status) = expect.status
        && status != outcome.status
    {
        failures.push(Failure::new(
            "expect.status",
            format!("expected status {status}, found {}", outcome.status),
        ));
    }
    if let Some(route) = &expect.route {
        match &outcome.route {
            None => failures
                .push(unrouted("expect.route", &format!("route `{route}`")).help(&outcome.trace)),
            Some(found) if found != route => failures.push(
                Failure::new(
                    "expect.route",
                    format!("expected route `{route}`, found `{found}`"),
                )
                .help(&outcome.trace),
            ),
            Some(_) => {}
        }
        if !snapshot.routes.iter().any(|r| &r.name == route) {
            failures.push(Failure::new(
                "expect.route",
                format!("no route `{route}` in the policies"),
            ));
        }
    }
    let routed = outcome.status == 200;
    if let Some(target) = &expect.target {
        match (&outcome.target, &outcome.split) {
            _ if !routed => failures.push(unrouted("expect.target", &format!("`{target}`"))),
            (Some(found), _) if found != target => failures.push(Failure::new(
                "expect.target",
                format!("expected target `{target}`, found `{found}`"),
            )),
            (None, Some(split)) => failures.push(
                Failure::new(
                    "expect.target",
                    format!("{split}: the first target depends on the draw"),
                )
                .help("expect `targets` (the set), or set `request.draw`"),
            ),
            _ => {}
        }
    }
    if let Some(targets) = &expect.targets {
        let want: BTreeSet<String> = targets.iter().cloned().collect();
        if !routed {
            failures.push(unrouted("expect.targets", "targets"));
        } else if want != outcome.targets {
            failures.push(Failure::new(
                "expect.targets",
                format!(
                    "expected targets {}, found {}",
                    list(&want),
                    list(&outcome.targets)
                ),
            ));
        }
    }
    if let Some(failover) = &expect.failover {
        if !routed {
            failures.push(unrouted("expect.failover", "a failover order"));
        } else if failover != &outcome.failover {
            failures.push(Failure::new(
                "expect.failover",
                format!(
                    "expected failover {}, found {}",
                    list(failover),
                    list(&outcome.failover)
                ),
            ));
        }
    }
    if let Some(budgets) = &expect.budgets {
        let want: BTreeSet<String> = budgets.iter().cloned().collect();
        if want != outcome.budgets {
            failures.push(Failure::new(
                "expect.budgets",
                format!(
                    "expected budgets {}, found {}",
                    list(&want),
                    list(&outcome.budgets)
                ),
            ));
        }
    }
    failures
}

/// `[`a`, `b`]`, or `none`.
fn list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| format!("`{s}`")).collect();
    if items.is_empty() {
        "none".into()
    } else {
        format!("[{}]", items.join(", "))
    }
}
