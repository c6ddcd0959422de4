//! Budget enforcement: reservation at admission, settlement after the response, stream
//! top-ups, in one process (memory) or shared by replicas (Redis).
//!
//! ```text
//!  admit ── counters of every applicable budget limit (window-aligned keys)
//!    │        reserve prompt estimate + max_tokens (or --default-max-tokens), priced at the
//!    │        dearest candidate; all counters or none (Lua script in Redis)
//!    ├─ exhausted & reject    → 429 insufficient_quota, Retry-After = window reset
//!    ├─ exhausted & downgrade → serve the named target, `x-switchyard-downgraded`
//!    ▼
//!  stream ── past its reservation, reserve 64 more tokens at a time; refused: `cut` ends the
//!    │        stream with an error event, `finish` lets it run
//!    ▼
//!  settle ── add (actual − reserved) from the provider's usage block (estimated when absent)
//! ```
//!
//! See `README.md` in this folder for the overspend bound.

pub mod meter;
pub mod redis;
pub mod status;
pub mod store;
pub use switchyard_dsl::window;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use sha2::{Digest, Sha256};
use switchyard_dsl::ir::{
    Budget, BudgetScope, LimitMetric, OnExhausted, OnOverrun, Snapshot, TargetId,
};
use switchyard_dsl::{Decision, RequestFeatures};

use self::redis::RedisStore;
use self::store::{CounterOp, MemoryStore, Reserved};
use crate::api::ApiError;
use crate::api::Usage;

/// Counters outlive their window by this long, so late settlements still find them.
const KEY_SLACK_SECS: u64 = 600;
/// Tokens reserved at a time when a stream runs past its reservation.
pub const TOP_UP_TOKENS: u64 = 64;

/// What to do when Redis cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailureMode {
    /// Keep serving and count in this process until Redis is back.
    FailOpen,
    /// Refuse requests that a budget applies to with 503 until Redis is back.
    FailClosed,
}

/// Dollar prices of a target, micro-USD per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    /// Input read from the provider's prompt cache (the input price when the catalogue
    /// names none).
    pub cached_input: u64,
}

impl Price {
    pub fn of(snapshot: &Snapshot, t: TargetId) -> Self {
        let target = snapshot.target(t);
        snapshot
            .provider(target.provider)
            .models
            .get(target.model_index as usize)
            .map_or_else(Self::default, Self::of_model)
    }

    fn of_model(m: &switchyard_dsl::ir::Model) -> Self {
        Self {
            input: m.input_micro_usd_per_mtok,
            output: m.output_micro_usd_per_mtok,
            cached_input: m
                .cached_input_micro_usd_per_mtok
                .unwrap_or(m.input_micro_usd_per_mtok),
        }
    }

    /// The price of `provider/model`; zero when the snapshot has no such model.
    pub fn by_name(snapshot: &Snapshot, provider: &str, model: &str) -> Self {
        snapshot
            .providers
            .iter()
            .find(|p| p.name == provider)
            .and_then(|p| p.models.iter().find(|m| m.name == model))
            .map_or_else(Self::default, Self::of_model)
    }

    /// Each price the higher of the two (what a reservation assumes).
    pub fn dearest(self, other: Self) -> Self {
        Self {
            input: self.input.max(other.input),
            output: self.output.max(other.output),
            cached_input: self.cached_input.max(other.cached_input),
        }
    }

    /// Micro-USD of `input` and `output` tokens, rounded up.
    pub fn cost(self, input: u64, output: u64) -> u64 {
        self.cost_cached(input, 0, output)
    }

    /// Micro-USD of `input` tokens of which `cached` came from the provider's prompt cache,
    /// and `output` tokens, rounded up.
    pub fn cost_cached(self, input: u64, cached: u64, output: u64) -> u64 {
        let cached = cached.min(input);
        let n = u128::from(input - cached) * u128::from(self.input)
            + u128::from(cached) * u128::from(self.cached_input)
            + u128::from(output) * u128::from(self.output);
        u64::try_from(n.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// One counter a request is charged to.
#[derive(Clone, Debug)]
pub struct Charge {
    pub budget: String,
    pub scope: String,
    pub metric: LimitMetric,
    pub limit: i64,
    pub window_end: u64,
    pub cut: bool,
    pub op: CounterOp,
}

/// Where a reservation was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Local,
    Shared,
}

/// A request's reservation, settled once when it is done.
#[derive(Debug)]
pub struct Reservation {
    pub charges: Vec<Charge>,
    pub backend: Backend,
    pub prompt_tokens: u64,
    /// Output tokens reserved at admission (`max_tokens` or the default).
    pub output_tokens: u64,
    /// The dearest candidate's price, used for top-ups.
    pub price: Price,
    /// Output tokens reserved by stream top-ups.
    pub extra_tokens: AtomicU64,
    /// Output tokens a stream relayed, estimated from its events.
    pub output_seen: AtomicU64,
}

impl Reservation {
    fn amount_for(metric: LimitMetric, input: u64, output: u64, price: Price) -> i64 {
        Self::amount_cached(metric, input, 0, output, price)
    }

    /// [`Self::amount_for`] with `cached` of the input read from the provider's prompt
    /// cache: dollars charge it at the cached price; token limits count every token.
    fn amount_cached(
        metric: LimitMetric,
        input: u64,
        cached: u64,
        output: u64,
        price: Price,
    ) -> i64 {
        let v = match metric {
            LimitMetric::Requests => 1,
            LimitMetric::InputTokens => input,
            LimitMetric::OutputTokens => output,
            LimitMetric::TotalTokens => input + output,
            LimitMetric::MicroUsd => price.cost_cached(input, cached, output),
        };
        i64::try_from(v).unwrap_or(i64::MAX)
    }

    /// What `charge` holds now: the admission amount plus top-ups.
    fn reserved(&self, charge: &Charge) -> i64 {
        let extra = self.extra_tokens.load(Ordering::Relaxed);
        charge.op.amount + Self::amount_for_extra(charge.metric, extra, self.price)
    }

    fn amount_for_extra(metric: LimitMetric, extra: u64, price: Price) -> i64 {
        match metric {
            LimitMetric::Requests | LimitMetric::InputTokens => 0,
            m => Self::amount_for(m, 0, extra, price),
        }
    }

    /// Settlement deltas for the actual usage (`cached` of `input` from the prompt cache).
    pub fn deltas(
        &self,
        input: u64,
        cached: u64,
        output: u64,
        price: Price,
    ) -> Vec<(String, i64, u64)> {
        self.charges
            .iter()
            .filter_map(|c| {
                let actual = Self::amount_cached(c.metric, input, cached, output, price);
                let d = actual - self.reserved(c);
                (d != 0).then(|| (c.op.key.clone(), d, c.op.expire_at))
            })
            .collect()
    }
}

/// An admitted request's quota state.
#[derive(Debug)]
pub struct Admitted {
    pub reservation: std::sync::Arc<Reservation>,
    /// The target to serve instead, and the budget that asked for it.
    pub downgrade: Option<(TargetId, String)>,
}

struct QuotaMetrics {
    warnings: IntCounterVec,
    rejections: IntCounterVec,
    downgrades: IntCounterVec,
    cutoffs: IntCounterVec,
    estimated: IntCounterVec,
    store_errors: IntCounterVec,
    store_seconds: HistogramVec,
    auth_failures: IntCounterVec,
    /// Counter value and limit of the scope an admission last charged, per budget and metric.
    used: prometheus::IntGaugeVec,
    limit: prometheus::IntGaugeVec,
}

impl QuotaMetrics {
    fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .expect("static metric definition is valid");
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let store_seconds = HistogramVec::new(
            HistogramOpts::new(
                "switchyard_quota_store_seconds",
                "Time spent in the quota store per operation.",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25,
            ]),
            &["store", "op"],
        )
        .expect("static metric definition is valid");
        let _ = registry.register(Box::new(store_seconds.clone()));
        let gauge = |name: &str, help: &str| {
            let g = prometheus::IntGaugeVec::new(Opts::new(name, help), &["budget", "metric"])
                .expect("static metric definition is valid");
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        Self {
            used: gauge(
                "switchyard_budget_used",
                "What the budget scope charged last has used in its window (reservations \
                 included), in the unit of `metric`; compare with switchyard_budget_limit.",
            ),
            limit: gauge(
                "switchyard_budget_limit",
                "The limit of a budget per window, in the unit of `metric`.",
            ),
            warnings: counter(
                "switchyard_budget_warnings_total",
                "Admissions that took a budget counter past a warning threshold (basis points).",
                &["budget", "metric", "threshold_bp"],
            ),
            rejections: counter(
                "switchyard_budget_rejections_total",
                "Requests refused with 429 because a budget was exhausted.",
                &["budget"],
            ),
            downgrades: counter(
                "switchyard_budget_downgrades_total",
                "Requests sent to a budget's downgrade target because it was exhausted.",
                &["budget"],
            ),
            cutoffs: counter(
                "switchyard_budget_stream_cutoffs_total",
                "Streams ended with an error event because a budget ran out mid-stream.",
                &["budget"],
            ),
            estimated: counter(
                "switchyard_usage_estimated_total",
                "Settlements that estimated usage because the provider reported none.",
                &["endpoint"],
            ),
            store_errors: counter(
                "switchyard_quota_store_errors_total",
                "Quota store operations that failed (Redis unreachable or slow).",
                &["op"],
            ),
            store_seconds,
            auth_failures: counter(
                "switchyard_auth_failures_total",
                "Requests refused with 401, by reason.",
                &["reason"],
            ),
        }
    }
}

/// The quota service and one request's reservation: what the request path carries beside
/// its context to meter a stream and settle at the end.
#[derive(Debug, Clone)]
pub struct Hold {
    pub quota: std::sync::Arc<Quota>,
    pub reservation: std::sync::Arc<Reservation>,
}

/// The quota service, shared by every request.
pub struct Quota {
    local: MemoryStore,
    shared: Option<RedisStore>,
    failure: FailureMode,
    pub default_max_tokens: u64,
    metrics: QuotaMetrics,
    /// `(budget, scope)` pairs of per-key/team/user/header budgets this process has seen,
    /// for the admin view.
    seen: Mutex<BTreeSet<(String, String)>>,
}

impl std::fmt::Debug for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quota")
            .field("shared", &self.shared.is_some())
            .field("failure", &self.failure)
            .field("default_max_tokens", &self.default_max_tokens)
            .finish_non_exhaustive()
    }
}

/// The scope label of `scope` for `request`: `global`, `key=ID`, `team=T`, `user=U`,
/// `route=R`, or `header NAME=sha256:…` (header values are hashed, never stored).
pub fn scope_label<R: RequestFeatures + ?Sized>(
    scope: &BudgetScope,
    route: &str,
    request: &R,
) -> Option<String> {
    Some(match scope {
        BudgetScope::Global => "global".to_string(),
        BudgetScope::Key(_) | BudgetScope::EachKey => format!("key={}", request.key()?),
        BudgetScope::Team(_) | BudgetScope::EachTeam => format!("team={}", request.team()?),
        BudgetScope::User(_) | BudgetScope::EachUser => format!("user={}", request.user()?),
        BudgetScope::EachHeaderValue(h) => {
            let v = request.header(h)?;
            format!(
                "header {h}=sha256:{}",
                &hex::encode(Sha256::digest(v))[..16]
            )
        }
        BudgetScope::Route(_) => format!("route={route}"),
    })
}

/// The store key of one counter.
pub fn counter_key(
    budget: &str,
    scope: &str,
    metric: LimitMetric,
    window_start: u64,
    w: &str,
) -> String {
    format!(
        "{budget}|{scope}|{}|{w}|{window_start}",
        metric_name(metric)
    )
}

pub fn metric_name(m: LimitMetric) -> &'static str {
    match m {
        LimitMetric::Requests => "requests",
        LimitMetric::InputTokens => "input_tokens",
        LimitMetric::OutputTokens => "output_tokens",
        LimitMetric::TotalTokens => "total_tokens",
        LimitMetric::MicroUsd => "micro_usd",
    }
}

fn budget_charges(
    budget: &Budget,
    scope: &str,
    input: u64,
    output: u64,
    price: Price,
    now: u64,
) -> Vec<Charge> {
    budget
        .limits
        .iter()
        .map(|l| {
            let start = window::start(l.window, now);
            let end = window::end(l.window, now);
            let limit = i64::try_from(l.amount).unwrap_or(i64::MAX);
            Charge {
                budget: budget.name.clone(),
                scope: scope.to_string(),
                metric: l.metric,
                limit,
                window_end: end,
                cut: budget.on_overrun == OnOverrun::Cut,
                op: CounterOp {
                    key: counter_key(&budget.name, scope, l.metric, start, window::name(l.window)),
                    amount: Reservation::amount_for(l.metric, input, output, price),
                    limit: match budget.on_exhausted {
                        OnExhausted::Reject => Some(limit),
                        OnExhausted::Downgrade(_) => None,
                    },
                    expire_at: end + KEY_SLACK_SECS,
                },
            }
        })
        .collect()
}

/// The 429 for an exhausted budget.
pub fn exhausted_error(charge: &Charge, now: u64) -> ApiError {
    let retry = charge.window_end.saturating_sub(now).max(1);
    ApiError {
        status: 429,
        message: format!(
            "You exceeded your budget `{}` ({} {} for {}); it resets at {}.",
            charge.budget,
            charge.limit,
            metric_name(charge.metric).replace('_', " "),
            charge.scope,
            window::rfc3339(charge.window_end)
        ),
        kind: "insufficient_quota",
        code: Some("insufficient_quota"),
        retry_after: Some(retry),
    }
}

fn store_unavailable() -> ApiError {
    ApiError {
        status: 503,
        message: "The quota store is unavailable; try again shortly.".into(),
        kind: "server_error",
        code: Some("quota_store_unavailable"),
        retry_after: Some(1),
    }
}

impl Default for Quota {
    /// In memory, fail-open, 4096 default output tokens, metrics in a registry of its own.
    fn default() -> Self {
        Self {
            local: MemoryStore::default(),
            shared: None,
            failure: FailureMode::FailOpen,
            default_max_tokens: 4096,
            metrics: QuotaMetrics::new(&Registry::new()),
            seen: Mutex::new(BTreeSet::new()),
        }
    }
}

impl Quota {
    /// An in-memory quota, or a Redis-backed one when `redis_url` is given (connected lazily).
    pub fn new(
        redis_url: Option<&str>,
        failure: FailureMode,
        default_max_tokens: u64,
        registry: &Registry,
    ) -> Result<Self, String> {
        let shared = match redis_url {
            Some(url) => Some(RedisStore::new(url).map_err(|e| format!("--redis-url: {e}"))?),
            None => None,
        };
        Ok(Self {
            local: MemoryStore::default(),
            shared,
            failure,
            default_max_tokens,
            metrics: QuotaMetrics::new(registry),
            seen: Mutex::new(BTreeSet::new()),
        })
    }

    /// Counts a refused authentication.
    pub fn auth_failed(&self, reason: &str) {
        self.metrics
            .auth_failures
            .with_label_values(&[reason])
            .inc();
    }

    fn observe(&self, backend: Backend, op: &str, started: Instant) {
        let store = match backend {
            Backend::Local => "memory",
            Backend::Shared => "redis",
        };
        self.metrics
            .store_seconds
            .with_label_values(&[store, op])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Reserves `ops` in the configured store (local when Redis fails and the mode is
    /// fail-open); `None` when fail-closed and Redis is down.
    async fn reserve_ops(&self, ops: &[CounterOp], now: u64) -> Option<(Reserved, Backend)> {
        let started = Instant::now();
        if let Some(shared) = &self.shared {
            match shared.reserve(ops).await {
                Ok(r) => {
                    self.observe(Backend::Shared, "reserve", started);
                    return Some((r, Backend::Shared));
                }
                Err(_) => {
                    self.metrics
                        .store_errors
                        .with_label_values(&["reserve"])
                        .inc();
                    if self.failure == FailureMode::FailClosed {
                        return None;
                    }
                }
            }
        }
        let r = self.local.reserve(ops, now);
        self.observe(Backend::Local, "reserve", started);
        Some((r, Backend::Local))
    }

    async fn adjust(&self, backend: Backend, deltas: &[(String, i64, u64)], now: u64) {
        if deltas.is_empty() {
            return;
        }
        let started = Instant::now();
        match (backend, &self.shared) {
            (Backend::Shared, Some(shared)) => {
                if shared.adjust(deltas).await.is_err() {
                    // The reservation stays counted in Redis: an over-count, never an
                    // under-count.
                    self.metrics
                        .store_errors
                        .with_label_values(&["settle"])
                        .inc();
                } else {
                    self.observe(Backend::Shared, "settle", started);
                }
            }
            _ => {
                self.local.adjust(deltas, now);
                self.observe(Backend::Local, "settle", started);
            }
        }
    }

    /// Admission: `Ok(None)` when no budget applies; 429 or 503 as an `ApiError`.
    pub async fn admit<R: RequestFeatures + ?Sized>(
        &self,
        snapshot: &Snapshot,
        decision: &Decision<'_>,
        request: &R,
        max_tokens: Option<u64>,
    ) -> Result<Option<Admitted>, ApiError> {
        let route = &decision.route().name;
        let mut budgets = decision.budgets(request).peekable();
        if budgets.peek().is_none() {
            return Ok(None);
        }
        let now = crate::clock::unix_secs();
        let mut price = decision
            .candidates()
            .map(|t| Price::of(snapshot, t))
            .fold(Price::default(), Price::dearest);
        let input = request.prompt_tokens();
        let output = max_tokens.unwrap_or(self.default_max_tokens);
        let mut charges = Vec::new();
        let mut applied: Vec<&Budget> = Vec::new();
        for (_, b) in budgets {
            let Some(scope) = scope_label(&b.scope, route, request) else {
                continue;
            };
            if let OnExhausted::Downgrade(t) = b.on_exhausted {
                price = price.dearest(Price::of(snapshot, t));
            }
            if matches!(
                b.scope,
                BudgetScope::EachKey
                    | BudgetScope::EachTeam
                    | BudgetScope::EachUser
                    | BudgetScope::EachHeaderValue(_)
            ) {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.len() < 10_000 && !seen.contains(&(b.name.clone(), scope.clone())) {
                    seen.insert((b.name.clone(), scope.clone()));
                }
            }
            applied.push(b);
            charges.extend(budget_charges(
                b,
                &scope,
                input,
                output,
                Price::default(),
                now,
            ));
        }
        // Dollar amounts need the final (dearest) price.
        for c in &mut charges {
            if c.metric == LimitMetric::MicroUsd {
                c.op.amount = Reservation::amount_for(c.metric, input, output, price);
            }
        }
        if charges.is_empty() {
            return Ok(None);
        }
        let ops: Vec<CounterOp> = charges.iter().map(|c| c.op.clone()).collect();
        let Some((reserved, backend)) = self.reserve_ops(&ops, now).await else {
            return Err(store_unavailable());
        };
        let before = match reserved {
            Reserved::Exhausted { index, .. } => {
                let c = &charges[index.min(charges.len() - 1)];
                self.metrics
                    .rejections
                    .with_label_values(&[&c.budget])
                    .inc();
                return Err(exhausted_error(c, now));
            }
            Reserved::Admitted(before) => before,
        };
        let mut downgrade = None;
        for (c, &b) in charges.iter().zip(&before) {
            let labels = [c.budget.as_str(), metric_name(c.metric)];
            self.metrics
                .used
                .with_label_values(&labels)
                .set(b.saturating_add(c.op.amount));
            self.metrics.limit.with_label_values(&labels).set(c.limit);
            let budget = applied.iter().find(|x| x.name == c.budget);
            if let Some(budget) = budget {
                for &bp in &budget.warn_at_bp {
                    let t = i64::try_from(u128::from(bp) * c.limit as u128 / 10_000)
                        .unwrap_or(i64::MAX);
                    if b < t && b + c.op.amount >= t {
                        self.metrics
                            .warnings
                            .with_label_values(&[&c.budget, metric_name(c.metric), &bp.to_string()])
                            .inc();
                    }
                }
                if let OnExhausted::Downgrade(t) = budget.on_exhausted
                    && b >= c.limit
                    && downgrade.is_none()
                {
                    self.metrics
                        .downgrades
                        .with_label_values(&[&c.budget])
                        .inc();
                    downgrade = Some((t, c.budget.clone()));
                }
            }
        }
        Ok(Some(Admitted {
            reservation: std::sync::Arc::new(Reservation {
                charges,
                backend,
                prompt_tokens: input,
                output_tokens: output,
                price,
                extra_tokens: AtomicU64::new(0),
                output_seen: AtomicU64::new(0),
            }),
            downgrade,
        }))
    }

    /// Reserves `tokens` more output tokens for a running stream. `Err(budget)` names the
    /// budget that ran out and whether it cuts.
    pub async fn top_up(&self, r: &Reservation, tokens: u64) -> Result<(), (String, bool)> {
        let now = crate::clock::unix_secs();
        let mut idx = Vec::new();
        let ops: Vec<CounterOp> = r
            .charges
            .iter()
            .filter_map(|c| {
                let amount = Reservation::amount_for_extra(c.metric, tokens, r.price);
                (amount > 0).then(|| {
                    idx.push(c);
                    CounterOp {
                        amount,
                        limit: Some(c.limit),
                        ..c.op.clone()
                    }
                })
            })
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let outcome = match (r.backend, &self.shared) {
            (Backend::Shared, Some(shared)) => match shared.reserve(&ops).await {
                Ok(x) => x,
                Err(_) => {
                    self.metrics
                        .store_errors
                        .with_label_values(&["top_up"])
                        .inc();
                    // Cannot check: let the stream run; settlement records what it used.
                    return Ok(());
                }
            },
            _ => self.local.reserve(&ops, now),
        };
        self.observe(r.backend, "top_up", started);
        match outcome {
            Reserved::Admitted(_) => {
                r.extra_tokens.fetch_add(tokens, Ordering::Relaxed);
                Ok(())
            }
            Reserved::Exhausted { index, .. } => {
                let c = idx[index.min(idx.len() - 1)];
                if c.cut {
                    self.metrics.cutoffs.with_label_values(&[&c.budget]).inc();
                }
                Err((c.budget.clone(), c.cut))
            }
        }
    }

    /// Settles `r` to what the request used. `served` is the price of the target that
    /// answered, `None` when no upstream answered (nothing but the request is counted).
    pub async fn settle(
        &self,
        r: &Reservation,
        usage: Option<Usage>,
        served: Option<Price>,
        endpoint: &str,
    ) {
        let (input, cached, output, price) = match (served, usage) {
            (None, _) => (0, 0, 0, Price::default()),
            (Some(p), Some(u)) => (u.input, u.cached, u.output, p),
            (Some(p), None) => {
                self.metrics.estimated.with_label_values(&[endpoint]).inc();
                (r.prompt_tokens, 0, r.output_seen.load(Ordering::Relaxed), p)
            }
        };
        let deltas = r.deltas(input, cached, output, price);
        self.adjust(r.backend, &deltas, crate::clock::unix_secs())
            .await;
    }

    /// Current counter values for `keys`, from Redis when configured and reachable.
    async fn read(&self, keys: &[String]) -> (Vec<i64>, &'static str) {
        if let Some(shared) = &self.shared
            && let Ok(v) = shared.get(keys).await
        {
            return (v, "redis");
        }
        (self.local.get(keys, crate::clock::unix_secs()), "memory")
    }
}

#[cfg(test)]
mod tests;
