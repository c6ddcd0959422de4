//! The compiled snapshot: the one contract between control plane and data plane.
//!
//! Plain serde data with no Kubernetes or pingora types, no spans and no secrets (credentials
//! are references). Everything is integers and strings so that equal input gives byte-equal
//! JSON and therefore an equal [`Snapshot::hash`]. Units are in the field names: `_ms`
//! milliseconds, `_bp` basis points (1% = 100), `_ppm` parts per million, `micro_usd` dollars
//! times 10^6.

use serde::{Deserialize, Serialize};

use crate::index::RouteIndex;

/// Bumped whenever the meaning or shape of the IR changes; a data plane refuses snapshots whose
/// version it does not know and keeps serving the last good one. The route index is derived
/// on load and not part of the serialized IR, so it did not change the version.
pub const IR_VERSION: u32 = 1;

/// Build one with [`Snapshot::new`] (or deserialize one): both build the route index that
/// [`crate::decide()`] walks. Code that edits `routes` in place calls [`Snapshot::reindex`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "SnapshotData")]
pub struct Snapshot {
    pub ir_version: u32,
    /// Hex SHA-256 of the snapshot's canonical JSON with this field empty. Content identity:
    /// publishers issue a new version only when it changes.
    pub hash: String,
    pub providers: Vec<Provider>,
    /// Every distinct `provider/model` any route or budget names; routes refer to them by index.
    pub targets: Vec<Target>,
    /// In evaluation order: the first route whose condition matches wins.
    pub routes: Vec<Route>,
    pub budgets: Vec<Budget>,
    /// Which routes can match which requested model; derived from `routes`, never serialized.
    #[serde(skip)]
    index: RouteIndex,
}

/// The serialized form of a [`Snapshot`]: everything but the derived index, which is rebuilt
/// on load. Keep the fields in step with [`Snapshot`] (a round-trip test checks).
#[derive(Deserialize)]
struct SnapshotData {
    ir_version: u32,
    hash: String,
    providers: Vec<Provider>,
    targets: Vec<Target>,
    routes: Vec<Route>,
    budgets: Vec<Budget>,
}

impl From<SnapshotData> for Snapshot {
    fn from(d: SnapshotData) -> Self {
        // Field by field, so that a field added to `Snapshot` but not here fails to compile.
        let SnapshotData {
            ir_version,
            hash,
            providers,
            targets,
            routes,
            budgets,
        } = d;
        Snapshot {
            ir_version,
            hash,
            providers,
            targets,
            routes,
            budgets,
            index: RouteIndex::default(),
        }
        .settled()
    }
}

/// [`Snapshot`]'s serialized fields, borrowed, in the same order: the same JSON.
#[derive(Serialize)]
struct UnhashedSnapshot<'a> {
    ir_version: u32,
    hash: &'a str,
    providers: &'a [Provider],
    targets: &'a [Target],
    routes: &'a [Route],
    budgets: &'a [Budget],
}

/// Index into [`Snapshot::targets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TargetId(pub u32);

/// Index into [`Snapshot::providers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProviderId(pub u32);

// ---------------------------------------------------------------------------------------------
// Providers (the catalogue the checker validates against, carried into the snapshot)

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    /// `None` means the kind's public default (e.g. `https://api.openai.com/v1`).
    pub base_url: Option<String>,
    pub credential: Option<Credential>,
    pub models: Vec<Model>,
    pub rate_limits: RateLimits,
    pub timeouts: ProviderTimeouts,
    /// Azure OpenAI `api-version` query parameter.
    pub api_version: Option<String>,
    /// Behaviour of the built-in mock; set only for [`ProviderKind::Mock`].
    pub mock: Option<MockBehaviour>,
    /// Active health checks; absent = off (and absent from the JSON, so snapshots without
    /// them keep their hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// An `openai-compatible` server that also speaks OpenAI's Responses API (`/responses`):
    /// Responses requests then pass through instead of being translated to chat. `openai` and
    /// `azure-openai` always do. False = absent from the JSON (snapshot hashes unchanged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub responses_api: bool,
}

impl Provider {
    /// A provider of `kind` serving `models` at a price of one micro-dollar per million tokens
    /// each way, with nothing else set: the starting point of catalogues in tests, benches
    /// and tools, whose other fields are set as needed.
    pub fn new(name: impl Into<String>, kind: ProviderKind, models: &[&str]) -> Self {
        let priced: Vec<(&str, u64, u64)> = models.iter().map(|m| (*m, 1, 1)).collect();
        Self::priced(name, kind, &priced)
    }

    /// [`Provider::new`] with each model's input and output price (micro-dollars per million
    /// tokens): `(name, input, output)`.
    pub fn priced(
        name: impl Into<String>,
        kind: ProviderKind,
        models: &[(&str, u64, u64)],
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            base_url: None,
            credential: None,
            models: models
                .iter()
                .map(|&(m, input, output)| Model {
                    name: m.into(),
                    input_micro_usd_per_mtok: input,
                    output_micro_usd_per_mtok: output,
                    cached_input_micro_usd_per_mtok: None,
                    context_window: None,
                    max_output_tokens: None,
                })
                .collect(),
            rate_limits: RateLimits::default(),
            timeouts: ProviderTimeouts::default(),
            api_version: None,
            mock: None,
            health_check: None,
            responses_api: false,
        }
    }
}

/// Active health checks of a provider: a one-token streamed completion to each of its models
/// that a route uses, every `interval_ms`, so ejected or slow targets are seen to recover
/// without sending them client requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HealthCheck {
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Openai,
    OpenaiCompatible,
    AzureOpenai,
    Anthropic,
    Gemini,
    Mock,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::OpenaiCompatible => "openai-compatible",
            Self::AzureOpenai => "azure-openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Mock => "mock",
        }
    }
}

/// Where a provider's API key comes from. Never the key itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// A key in a Kubernetes Secret (or a Secret document in a standalone config folder).
    Secret {
        namespace: Option<String>,
        name: String,
        key: String,
    },
    /// An environment variable of the proxy process.
    Env { var: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Model {
    /// The provider's model name (for Azure, the deployment name).
    pub name: String,
    /// Dollars per million input tokens, times 10^6.
    pub input_micro_usd_per_mtok: u64,
    /// Dollars per million output tokens, times 10^6.
    pub output_micro_usd_per_mtok: u64,
    /// Dollars per million input tokens read from the provider's prompt cache, times 10^6;
    /// `None` = the input price (no discount assumed). Absent from the JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_micro_usd_per_mtok: Option<u64>,
    pub context_window: Option<u64>,
    pub max_output_tokens: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimits {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProviderTimeouts {
    pub connect_ms: Option<u64>,
    pub first_token_ms: Option<u64>,
    pub total_ms: Option<u64>,
}

/// How the built-in `mock` provider behaves; deterministic for a given seed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MockBehaviour {
    /// Total time of a non-streamed response.
    pub latency_ms: u64,
    pub ttft_ms: u64,
    pub tokens_per_second: u64,
    pub error_rate_ppm: u32,
    pub rate_limit_rate_ppm: u32,
    /// `Retry-After` sent with a mock 429.
    pub retry_after_ms: u64,
    pub seed: u64,
}

// ---------------------------------------------------------------------------------------------
// Targets and routes

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    pub provider: ProviderId,
    /// Index into that provider's `models`.
    pub model_index: u32,
    /// The upstream model name (copied for convenience).
    pub model: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    pub name: String,
    /// The object the route came from (`namespace/name`).
    pub origin: String,
    pub condition: Condition,
    pub selection: Selection,
    /// Tried in order after the selection's candidates.
    pub failover: Vec<TargetId>,
    /// When an attempt counts as failed (moving to a retry or the next candidate).
    pub triggers: Triggers,
    pub retry: Retry,
    pub timeouts: Timeouts,
    pub hedge: Option<Hedge>,
    pub cache_ttl_ms: Option<u64>,
    /// `affinity by ...`: every request of one session goes to the same target. Absent = off
    /// (and absent from the JSON, so snapshots without it keep their hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Model names a client can ask for to reach this route (exact `model ==` / `model in`
    /// literals not under `not`); what `/v1/models` lists.
    pub exposed_models: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Always,
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Model(StringMatch),
    /// Header names are lower-case.
    Header {
        name: String,
        matches: StringMatch,
    },
    HasHeader(String),
    Key(StringMatch),
    Team(StringMatch),
    User(StringMatch),
    PromptTokens {
        op: NumOp,
        value: u64,
    },
    Stream(bool),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatch {
    Exact(String),
    /// `*` matches any run of characters (including `/`), `?` one character.
    Glob(String),
    OneOf(Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    Single(TargetId),
    /// Weights sum to 100.
    Split(Vec<WeightedTarget>),
    /// Sorted by blended price (input + output per million tokens), cheapest first, at compile
    /// time; the rest follow as fallbacks.
    Cheapest(Vec<TargetId>),
    /// Ranked at request time by the data plane's measured `by` percentile; `explore_bp` of
    /// requests go to another healthy member so all stay measured.
    Fastest {
        targets: Vec<TargetId>,
        by: LatencyMetric,
        explore_bp: u32,
    },
}

/// Session affinity: what identifies a session, and how long a session that stopped sending is
/// remembered where memory is needed (the target it moved to after its own went out). See
/// [`crate::affinity`] for how a session maps to a target.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Affinity {
    pub by: AffinityKey,
    /// A remembered session is forgotten after this long without a request.
    pub idle_ms: u64,
}

/// Where a request's session key comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AffinityKey {
    /// A request header (lower-case name).
    Header(String),
    /// A string or number member of the client's JSON body; `.` separates the names of
    /// nested objects (`metadata.user_id`).
    Body(String),
    /// The start of the conversation: the leading system messages and the first other
    /// message, up to this many tokens' worth ([`crate::affinity::BYTES_PER_TOKEN`] bytes each).
    Prefix { tokens: u32 },
    /// The client key id.
    Key,
    /// The client key's user.
    User,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WeightedTarget {
    pub target: TargetId,
    pub weight: u32,
}

/// A percentile of a latency measure, e.g. p95 of time-to-first-token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LatencyMetric {
    pub kind: LatencyKind,
    /// Hundredths of a percent: p95 = 9500, p99.9 = 9990.
    pub percentile_centi: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyKind {
    /// Time to first token (first byte of the response body for non-streamed calls).
    Ttft,
    /// Whole-request latency.
    Total,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Triggers {
    /// Inclusive ranges of upstream status codes.
    pub statuses: Vec<StatusRange>,
    pub errors: Vec<ErrorClass>,
    pub error_rate: Option<ErrorRateTrigger>,
    pub latency: Vec<LatencyTrigger>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatusRange {
    pub lo: u16,
    pub hi: u16,
}

/// Provider-independent failure classes; the data plane classifies each provider's status
/// codes and error bodies into these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    ConnectFailure,
    Timeout,
    RateLimited,
    QuotaExhausted,
    Overloaded,
    ContextTooLong,
    ContentPolicy,
    BadRequest,
    Auth,
    ServerError,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 10] = [
        Self::ConnectFailure,
        Self::Timeout,
        Self::RateLimited,
        Self::QuotaExhausted,
        Self::Overloaded,
        Self::ContextTooLong,
        Self::ContentPolicy,
        Self::BadRequest,
        Self::Auth,
        Self::ServerError,
    ];

    /// The word used in the policy language.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectFailure => "connect_failure",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::QuotaExhausted => "quota_exhausted",
            Self::Overloaded => "overloaded",
            Self::ContextTooLong => "context_too_long",
            Self::ContentPolicy => "content_policy",
            Self::BadRequest => "bad_request",
            Self::Auth => "auth",
            Self::ServerError => "server_error",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == word)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ErrorRateTrigger {
    pub threshold_bp: u32,
    pub window_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LatencyTrigger {
    pub metric: LatencyMetric,
    pub threshold_ms: u64,
    pub window_ms: u64,
    /// Below this many samples in the window the trigger never fires (no flapping on little data).
    pub min_samples: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Retry {
    /// Extra attempts on the same target before moving on; 0 = none.
    pub attempts: u32,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timeouts {
    pub connect_ms: Option<u64>,
    pub first_token_ms: Option<u64>,
    pub total_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hedge {
    pub after: HedgeDelay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HedgeDelay {
    Fixed {
        ms: u64,
    },
    /// The current measured percentile of the first candidate.
    Percentile(LatencyMetric),
}

// ---------------------------------------------------------------------------------------------
// Budgets

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Budget {
    pub name: String,
    pub origin: String,
    pub scope: BudgetScope,
    pub limits: Vec<Limit>,
    /// Ascending, e.g. `[8000, 9500]` for 80% and 95%.
    pub warn_at_bp: Vec<u32>,
    pub on_exhausted: OnExhausted,
    pub on_overrun: OnOverrun,
}

/// Who a budget counts. `Each*` scopes keep one counter per distinct value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    Global,
    Key(String),
    EachKey,
    Team(String),
    EachTeam,
    User(String),
    EachUser,
    /// One counter per distinct value of this (lower-case) request header.
    EachHeaderValue(String),
    Route(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limit {
    pub metric: LimitMetric,
    pub amount: u64,
    pub window: Window,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitMetric {
    Requests,
    InputTokens,
    OutputTokens,
    TotalTokens,
    /// Dollars times 10^6, priced from the provider catalogue.
    MicroUsd,
}

/// Calendar-aligned windows (UTC), so replicas agree on when a window starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    Second,
    Minute,
    Hour,
    Day,
    Month,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    Reject,
    Downgrade(TargetId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOverrun {
    /// Let a stream that started within budget finish (bounded overspend).
    Finish,
    /// End the stream with an error event once it exceeds what was left.
    Cut,
}

impl Snapshot {
    /// A snapshot of the current [`IR_VERSION`] with its route index built and `hash` empty
    /// (call [`Snapshot::seal`] to set it).
    pub fn new(
        providers: Vec<Provider>,
        targets: Vec<Target>,
        routes: Vec<Route>,
        budgets: Vec<Budget>,
    ) -> Self {
        Self {
            ir_version: IR_VERSION,
            hash: String::new(),
            providers,
            targets,
            routes,
            budgets,
            index: RouteIndex::default(),
        }
        .settled()
    }

    /// Builds the index and trims the lists: compiled and deserialized lists grow by doubling,
    /// and a 10,000-route snapshot lives for as long as it is served, so the slack goes back
    /// once.
    fn settled(mut self) -> Self {
        self.providers.shrink_to_fit();
        self.targets.shrink_to_fit();
        self.routes.shrink_to_fit();
        self.budgets.shrink_to_fit();
        self.reindex();
        self
    }

    /// Rebuilds the route index after `routes` was changed in place.
    pub fn reindex(&mut self) {
        self.index = RouteIndex::build(&self.routes);
    }

    /// The route index [`crate::decide()`] walks.
    pub fn index(&self) -> &RouteIndex {
        &self.index
    }

    /// Computes the content hash over the canonical JSON form (with `hash` empty).
    pub fn compute_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        serde_json::to_writer(&mut hasher, &self.unhashed())
            .expect("IR serializes: plain data only");
        hex::encode(hasher.finalize())
    }

    /// The snapshot as serialized, with `hash` empty, borrowed (no copy of 10,000 routes to
    /// hash them).
    fn unhashed(&self) -> UnhashedSnapshot<'_> {
        UnhashedSnapshot {
            ir_version: self.ir_version,
            hash: "",
            providers: &self.providers,
            targets: &self.targets,
            routes: &self.routes,
            budgets: &self.budgets,
        }
    }

    /// Sets `hash` from the content; call after building.
    pub fn seal(mut self) -> Self {
        self.hash = self.compute_hash();
        self
    }

    pub fn target(&self, id: TargetId) -> &Target {
        &self.targets[id.0 as usize]
    }

    pub fn provider(&self, id: ProviderId) -> &Provider {
        &self.providers[id.0 as usize]
    }

    /// `provider/model` for display.
    pub fn target_name(&self, id: TargetId) -> String {
        let t = self.target(id);
        format!("{}/{}", self.provider(t.provider).name, t.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_the_json_with_an_empty_hash() {
        use sha2::{Digest, Sha256};
        let route = Route {
            name: "r".into(),
            origin: "o".into(),
            condition: Condition::Model(StringMatch::Exact("m".into())),
            selection: Selection::Single(TargetId(0)),
            failover: Vec::new(),
            triggers: Triggers::default(),
            retry: Retry::default(),
            timeouts: Timeouts::default(),
            hedge: None,
            cache_ttl_ms: None,
            affinity: None,
            exposed_models: vec!["m".into()],
        };
        let provider = Provider::new("p", ProviderKind::Mock, &["m"]);
        let target = Target {
            provider: ProviderId(0),
            model_index: 0,
            model: "m".into(),
        };
        let sealed = Snapshot::new(vec![provider], vec![target], vec![route], Vec::new()).seal();
        let mut cleared = sealed.clone();
        cleared.hash.clear();
        let json = serde_json::to_vec(&cleared).expect("serializes");
        assert_eq!(sealed.hash, hex::encode(Sha256::digest(&json)));
        assert_eq!(sealed.hash.len(), 64);
    }
}
