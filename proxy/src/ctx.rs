//! The per-request context: what happened to one request, filled in as it goes and written
//! to the access log and metrics at the end.

use std::time::{Duration, Instant};

/// One request's story.
#[derive(Debug)]
pub struct RequestCtx {
    pub started: Instant,
    /// `chat`, `embeddings`, `messages`, `models`, or `-` for errors before routing.
    pub endpoint: &'static str,
    /// The API the client spoke: the shape of everything it gets back.
    pub client: crate::api::client::ClientApi,
    pub route: Option<String>,
    pub provider: Option<String>,
    /// The upstream model that served (or was last tried).
    pub model: Option<String>,
    /// What the client asked for.
    pub requested_model: Option<String>,
    /// The prompt-token estimate the route decision read (for the decision record).
    pub prompt_tokens: Option<u64>,
    pub stream: bool,
    /// Status sent to the client (0 until a response header went out).
    pub status: u16,
    /// Upstream attempts made, retries included.
    pub attempts: u32,
    /// Time to the first body byte relayed to the client.
    pub ttft: Option<Duration>,
    pub usage: Option<crate::api::Usage>,
    /// Why the request failed, without secrets or content.
    pub error: Option<String>,
    /// Whether a stream ended with an error event instead of `[DONE]`.
    pub stream_error: bool,
    /// The client key id, team and user, once authenticated.
    pub identity: Option<crate::auth::Identity>,
    /// A budget's downgrade target, served instead of the route's candidates.
    pub downgrade: Option<switchyard_dsl::ir::TargetId>,
    /// `provider/model (budget NAME)` for the `x-switchyard-downgraded` header.
    pub downgraded: Option<String>,
    /// Targets passed over or failed before the one that answered, each with why, for the
    /// `x-switchyard-failover` header.
    pub rerouted: Vec<String>,
    /// Who won a hedge, for the `x-switchyard-hedged` header.
    pub hedged: Option<String>,
    /// `hit`, `miss` or `bypass` on a route with `cache for`, for `x-switchyard-cache`.
    pub cache: Option<&'static str>,
    /// What the budgets decided: `admitted`, `downgraded` or `refused` (none applied: `None`).
    pub budget: Option<&'static str>,
    /// The request's trace, when it is traced or carries a client's trace context.
    pub trace: Option<std::sync::Arc<crate::telemetry::RequestTrace>>,
}

impl RequestCtx {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            endpoint: "-",
            client: crate::api::client::ClientApi::OpenAi,
            route: None,
            provider: None,
            model: None,
            requested_model: None,
            prompt_tokens: None,
            stream: false,
            status: 0,
            attempts: 0,
            ttft: None,
            usage: None,
            error: None,
            stream_error: false,
            identity: None,
            downgrade: None,
            downgraded: None,
            rerouted: Vec::new(),
            hedged: None,
            cache: None,
            budget: None,
            trace: None,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
