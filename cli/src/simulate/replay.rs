//! Replaying decision records through one compiled policy: where each request goes, what it
//! costs, and when budgets run out.
//!
//! Records are replayed in file order, which is time order for one proxy's log. Budget
//! counters follow the proxy's calendar-aligned UTC windows; a request is refused (or
//! downgraded) once a counter it would add to has reached its limit, and a refused request
//! adds nothing.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use switchyard_dsl::decide;
use switchyard_dsl::headers::hashed;
use switchyard_dsl::ir::{
    Budget, BudgetScope, Condition, LimitMetric, OnExhausted, Selection, Snapshot, StringMatch,
    TargetId,
};
use switchyard_dsl::window;

use super::record::Record;

/// Lets a policy compare hashed header values: every equality literal also matches its hash
/// (`sha256:...`), the form the proxy records headers in that policies only compare for
/// equality.
pub(crate) fn accept_hashed_headers(mut snapshot: Snapshot) -> Snapshot {
    fn rewrite(c: &mut Condition) {
        match c {
            Condition::All(cs) | Condition::Any(cs) => cs.iter_mut().for_each(rewrite),
            Condition::Not(c) => rewrite(c),
            Condition::Header { matches, .. } => {
                let literals = match matches {
                    StringMatch::Exact(s) => vec![s.clone()],
                    StringMatch::OneOf(ss) => ss.clone(),
                    StringMatch::Glob(_) => return,
                };
                let hashes = literals.iter().map(|s| hashed(s)).collect::<Vec<_>>();
                *matches = StringMatch::OneOf(literals.into_iter().chain(hashes).collect());
            }
            _ => {}
        }
    }
    for route in &mut snapshot.routes {
        rewrite(&mut route.condition);
    }
    snapshot.reindex();
    snapshot
}

/// What a policy does with one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Fate {
    /// No route matches: 404.
    NotFound,
    /// An exhausted `reject` budget refuses it: 429.
    Rejected { route: usize, budget: usize },
    /// Served by `target` (a budget's downgrade target when `downgraded`).
    Served {
        route: usize,
        target: TargetId,
        downgraded: bool,
    },
}

/// Requests, tokens and cost added up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub requests: u64,
    pub input: u64,
    pub output: u64,
    pub micro_usd: u64,
}

impl Tally {
    fn add(&mut self, input: u64, output: u64, micro_usd: u64) {
        self.requests += 1;
        self.input += input;
        self.output += output;
        self.micro_usd += micro_usd;
    }
}

/// When one budget counter (a budget, a scope value, a limit) ran out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Exhaustion {
    /// Unix seconds of the first request that reached the limit.
    pub first_at: u64,
    /// How many windows reached it.
    pub windows: u64,
    pub rejected: u64,
    pub downgraded: u64,
}

/// Counter identity: budget, hash of the scope value, limit, window start.
type CounterKey = (usize, u64, usize, u64);

/// The running replay of one policy.
#[derive(Debug)]
pub(crate) struct Replay<'s> {
    pub snapshot: &'s Snapshot,
    /// Target ids by `provider/model`, to follow the logged choice of a `fastest` route.
    by_name: HashMap<String, TargetId>,
    counters: HashMap<CounterKey, u64>,
    /// Scope labels by their hash, for the report.
    pub scopes: HashMap<(usize, u64), String>,
    pub served: BTreeMap<(usize, TargetId), Tally>,
    pub not_found: Tally,
    pub rejected: BTreeMap<usize, Tally>,
    /// By (budget, scope hash, limit).
    pub exhausted: BTreeMap<(usize, u64, usize), Exhaustion>,
}

impl<'s> Replay<'s> {
    pub fn new(snapshot: &'s Snapshot) -> Self {
        let by_name = (0..snapshot.targets.len() as u32)
            .map(|i| (snapshot.target_name(TargetId(i)), TargetId(i)))
            .collect();
        Self {
            snapshot,
            by_name,
            counters: HashMap::new(),
            scopes: HashMap::new(),
            served: BTreeMap::new(),
            not_found: Tally::default(),
            rejected: BTreeMap::new(),
            exhausted: BTreeMap::new(),
        }
    }

    /// Decides `record` with the split `draw`, counts it, and says what happened.
    pub fn step(&mut self, record: &Record<'_>, draw: f64) -> Fate {
        let snapshot = self.snapshot;
        let (input, output) = (record.input(), record.output());
        let Some(decision) = decide(snapshot, record, draw) else {
            self.not_found.add(input, output, 0);
            return Fate::NotFound;
        };
        let route = decision.route_index();
        let mut target = decision.primary();
        if let Selection::Fastest { targets, .. } = &decision.route().selection
            && let (Some(p), Some(m)) = (&record.provider, &record.model)
            && let Some(&logged) = self.by_name.get(&format!("{p}/{m}"))
            && targets.contains(&logged)
        {
            // The proxy ranked by live latency; the log says what it chose.
            target = logged;
        }
        let applying: Vec<(usize, &'s Budget, u64)> = decision
            .budgets(record)
            .filter_map(|(i, b)| {
                let label = scope_label(&b.scope, &decision.route().name, record)?;
                let h = hash(&label);
                self.scopes.entry((i, h)).or_insert(label);
                Some((i, b, h))
            })
            .collect();
        let mut downgrade = None;
        for &(i, budget, scope) in &applying {
            for (li, limit) in budget.limits.iter().enumerate() {
                let key = (i, scope, li, window::start(limit.window, record.time));
                if self.counters.get(&key).copied().unwrap_or(0) < limit.amount {
                    continue;
                }
                let entry = self.exhausted.entry((i, scope, li)).or_default();
                match budget.on_exhausted {
                    OnExhausted::Reject => {
                        entry.rejected += 1;
                        self.rejected.entry(i).or_default().add(input, output, 0);
                        return Fate::Rejected { route, budget: i };
                    }
                    OnExhausted::Downgrade(t) => {
                        if downgrade.is_none() {
                            entry.downgraded += 1;
                            downgrade = Some(t);
                        }
                    }
                }
            }
        }
        if let Some(t) = downgrade {
            target = t;
        }
        let cost = price(snapshot, target, input, output);
        self.served
            .entry((route, target))
            .or_default()
            .add(input, output, cost);
        for &(i, budget, scope) in &applying {
            for (li, limit) in budget.limits.iter().enumerate() {
                let amount = match limit.metric {
                    LimitMetric::Requests => 1,
                    LimitMetric::InputTokens => input,
                    LimitMetric::OutputTokens => output,
                    LimitMetric::TotalTokens => input + output,
                    LimitMetric::MicroUsd => cost,
                };
                let key = (i, scope, li, window::start(limit.window, record.time));
                let counter = self.counters.entry(key).or_insert(0);
                let before = *counter;
                *counter += amount;
                if before < limit.amount && *counter >= limit.amount {
                    let entry = self.exhausted.entry((i, scope, li)).or_default();
                    if entry.windows == 0 {
                        entry.first_at = record.time;
                    }
                    entry.windows += 1;
                }
            }
        }
        Fate::Served {
            route,
            target,
            downgraded: downgrade.is_some(),
        }
    }
}

impl Replay<'_> {
    /// Forgets the counters of windows that ended by `now`: records come in time order, so
    /// memory follows the scopes of the current windows, not the length of the log.
    pub fn prune(&mut self, now: u64) {
        let budgets = &self.snapshot.budgets;
        self.counters.retain(|&(b, _, l, start), _| {
            budgets
                .get(b)
                .and_then(|b| b.limits.get(l))
                .is_some_and(|limit| window::end(limit.window, start) > now)
        });
    }
}

/// Micro-dollars for the tokens at `target`'s catalogue prices, rounded up as budgets do.
pub(crate) fn price(snapshot: &Snapshot, target: TargetId, input: u64, output: u64) -> u64 {
    let t = snapshot.target(target);
    let Some(model) = snapshot
        .provider(t.provider)
        .models
        .get(t.model_index as usize)
    else {
        return 0;
    };
    let n = u128::from(input) * u128::from(model.input_micro_usd_per_mtok)
        + u128::from(output) * u128::from(model.output_micro_usd_per_mtok);
    u64::try_from(n.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Who a budget counts this request as, the proxy's way; `None` when it counts nobody.
fn scope_label(scope: &BudgetScope, route: &str, record: &Record<'_>) -> Option<String> {
    use switchyard_dsl::RequestFeatures as _;
    Some(match scope {
        BudgetScope::Global => "all".into(),
        BudgetScope::Key(k) | BudgetScope::Team(k) | BudgetScope::User(k) => k.clone(),
        BudgetScope::EachKey => format!("key={}", record.key()?),
        BudgetScope::EachTeam => format!("team={}", record.team()?),
        BudgetScope::EachUser => format!("user={}", record.user()?),
        BudgetScope::EachHeaderValue(h) => format!("{h}={}", record.header(h)?),
        BudgetScope::Route(_) => format!("route={route}"),
    })
}

fn hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}
