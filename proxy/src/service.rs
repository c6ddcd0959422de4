//! The one `ProxyHttp` implementation. Every request is answered in `request_filter`
//! (pingora's own upstream phases are never reached), and `logging` writes the access log
//! line and the request metrics.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use http::Method;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::{Error, ErrorType};
use switchyard_dsl::ir::AffinityKey;
use switchyard_dsl::{RequestFeatures, decide};

use crate::api::request::RequestBody;
use crate::api::{ApiError, Endpoint, models, respond};
use crate::auth::Identity;
use crate::config::ConfigHandle;
use crate::ctx::RequestCtx;
use crate::metrics::Metrics;
use crate::router::Router;

/// How long a provider may take to answer about a response it keeps (retrieve, delete,
/// cancel): connect and each read.
const HELD_RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where split draws come from.
#[derive(Debug)]
pub enum Draw {
    /// Thread-local randomness.
    Random,
    /// A seeded sequence, for reproducible tests.
    Seeded(Mutex<fastrand::Rng>),
}

impl Draw {
    pub fn seeded(seed: u64) -> Self {
        Self::Seeded(Mutex::new(fastrand::Rng::with_seed(seed)))
    }

    fn next(&self) -> f64 {
        match self {
            Self::Random => fastrand::f64(),
            Self::Seeded(rng) => rng.lock().map_or(0.0, |mut r| r.f64()),
        }
    }
}

/// The gateway service.
#[derive(Debug)]
pub struct Gateway {
    pub config: Arc<ConfigHandle>,
    pub router: Router,
    /// Bounds on request bodies: size, arrival time, bytes held across requests.
    pub body: crate::body::BodyLimits,
    pub draw: Draw,
    /// Unix seconds reported as `created` in `/v1/models`.
    pub created: u64,
    /// Budgets: reservation at admission, settlement after the response.
    pub quota: Arc<crate::quota::Quota>,
    /// Whether requests without a known client key are served (as anonymous).
    pub allow_anonymous: bool,
    /// Answers of routes with `cache for`.
    pub cache: Arc<crate::cache::ResponseCache>,
    /// `/v1/models` bodies of the configuration in force.
    pub models_cache: models::ModelsCache,
    /// Responses API answers kept for `previous_response_id`.
    pub responses: Arc<crate::responses_store::ResponsesStore>,
    /// OpenTelemetry traces, when configured.
    pub telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// Counts of the shadow snapshot decided beside the live one (`/admin/shadow`).
    pub shadow: Option<Arc<crate::shadow::Shadow>>,
}

/// The request as the policy sees it; borrows the header and body, copies nothing.
struct Features<'a> {
    header: &'a RequestHeader,
    body: &'a RequestBody<'a>,
    identity: Option<&'a Identity>,
    /// The body as the client wrote it when that is not the chat body (Anthropic Messages,
    /// Responses): `affinity by body(..)` reads the client's own fields.
    native: Option<&'a [u8]>,
    /// The chat body's bytes.
    bytes: &'a [u8],
}

impl RequestFeatures for Features<'_> {
    fn model(&self) -> &str {
        &self.body.model
    }
    fn header(&self, lower_case_name: &str) -> Option<&str> {
        self.header.headers.get(lower_case_name)?.to_str().ok()
    }
    fn key(&self) -> Option<&str> {
        self.identity.map(|i| i.key.as_str())
    }
    fn team(&self) -> Option<&str> {
        self.identity?.team.as_deref()
    }
    /// The key's user, else the `x-switchyard-user` header.
    fn user(&self) -> Option<&str> {
        self.identity
            .and_then(|i| i.user.as_deref())
            .or_else(|| self.header("x-switchyard-user"))
    }
    fn prompt_tokens(&self) -> u64 {
        self.body.prompt_tokens
    }
    fn stream(&self) -> bool {
        self.body.stream
    }
    fn session(&self, route: &str, key: &AffinityKey) -> Option<u64> {
        match key {
            AffinityKey::Body(path) => {
                let value =
                    crate::router::session::body_field(self.native.unwrap_or(self.bytes), path)?;
                (!value.is_empty())
                    .then(|| switchyard_dsl::affinity::session_hash(route, value.as_bytes()))
            }
            // The chat form of every API: an Anthropic system prompt or Responses
            // instructions lead its messages.
            AffinityKey::Prefix { tokens } => {
                crate::router::session::prefix(route, *tokens, self.body.member("messages")?)
            }
            AffinityKey::Header(_) | AffinityKey::Key | AffinityKey::User => {
                switchyard_dsl::affinity::identity_session(self, route, key)
            }
        }
    }
}

impl Gateway {
    pub fn new(
        config: Arc<ConfigHandle>,
        router: Router,
        body: crate::body::BodyLimits,
        draw: Draw,
    ) -> Self {
        let created = crate::clock::unix_secs();
        Self {
            config,
            router,
            body,
            draw,
            created,
            quota: Arc::new(crate::quota::Quota::default()),
            allow_anonymous: true,
            cache: Arc::new(crate::cache::ResponseCache::default()),
            models_cache: models::ModelsCache::default(),
            responses: Arc::new(crate::responses_store::ResponsesStore::default()),
            telemetry: None,
            shadow: None,
        }
    }

    /// Checks the client key of a `/v1/*` request; with `allow_anonymous`, a missing or
    /// unknown key is served as anonymous (a known key that is expired or used from a
    /// refused address is still refused).
    fn authenticate(&self, session: &Session, ctx: &mut RequestCtx) -> Result<(), ApiError> {
        let h = &session.req_header().headers;
        let text = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        let key = crate::auth::presented_key(text("authorization"), text("x-api-key"));
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let cfg = self.config.current();
        let now = crate::clock::unix_secs();
        match crate::auth::authenticate(&cfg.keys, key, peer, now) {
            Ok(identity) => {
                ctx.identity = Some(identity);
                Ok(())
            }
            Err(crate::auth::AuthError::Missing | crate::auth::AuthError::Invalid)
                if self.allow_anonymous =>
            {
                Ok(())
            }
            Err(e) => {
                self.quota.auth_failed(e.reason());
                Err(ApiError {
                    status: 401,
                    message: e.message().to_string(),
                    kind: "invalid_request_error",
                    code: Some("invalid_api_key"),
                    retry_after: None,
                })
            }
        }
    }

    async fn handle(&self, session: &mut Session, ctx: &mut RequestCtx) {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();
        if let Some(t) = &self.telemetry {
            ctx.trace = t.begin(session.req_header());
        }
        // Anthropic clients get every error, auth included, in Anthropic's shape.
        ctx.client = crate::api::client::ClientApi::from_path(&path);
        if ctx.client == crate::api::client::ClientApi::AnthropicMessages {
            ctx.endpoint = crate::api::anthropic::LABEL;
        }
        if path.starts_with("/v1/")
            && let Err(e) = self.authenticate(session, ctx)
        {
            respond::send_error(session, ctx, &e).await;
            return;
        }
        let result = match path.as_str() {
            "/v1/chat/completions" | "/v1/embeddings" if method != Method::POST => {
                Err(ApiError::method_not_allowed(method.as_str(), &path))
            }
            "/v1/chat/completions" => self.proxy(session, ctx, Endpoint::ChatCompletions).await,
            "/v1/responses" => {
                ctx.endpoint = crate::api::responses::LABEL;
                if method != Method::POST {
                    Err(ApiError::method_not_allowed(method.as_str(), &path))
                } else {
                    self.proxy(session, ctx, Endpoint::Responses).await
                }
            }
            p if p.starts_with("/v1/responses/") => {
                self.held_response(session, ctx, &method, p).await
            }
            "/v1/embeddings" => self.proxy(session, ctx, Endpoint::Embeddings).await,
            "/v1/messages" => {
                ctx.endpoint = crate::api::anthropic::LABEL;
                if method != Method::POST {
                    Err(ApiError::method_not_allowed(method.as_str(), &path))
                } else {
                    self.proxy(session, ctx, Endpoint::Messages).await
                }
            }
            p if p == "/v1/models" || p.starts_with("/v1/models/") => {
                if method != Method::GET {
                    Err(ApiError::method_not_allowed(method.as_str(), &path))
                } else {
                    self.models(session, ctx, &path).await
                }
            }
            _ => Err(ApiError::unknown_path(method.as_str(), &path)),
        };
        if let Err(e) = result {
            respond::send_error(session, ctx, &e).await;
        }
    }

    /// `GET` or `DELETE` of a Responses API answer, or `POST .../cancel`: answered from the
    /// gateway's store when it keeps the response, else relayed to the target that does.
    async fn held_response(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        method: &Method,
        path: &str,
    ) -> Result<(), ApiError> {
        use crate::providers::openai::HeldRequest;
        ctx.endpoint = crate::api::responses::LABEL;
        let rest = path.trim_start_matches("/v1/responses/");
        let (id, request) = match (rest.split_once('/'), method) {
            (None, &Method::GET) => (rest, HeldRequest::Get),
            (None, &Method::DELETE) => (rest, HeldRequest::Delete),
            (Some((id, "cancel")), &Method::POST) => (id, HeldRequest::Cancel),
            (None, _) | (Some((_, "cancel")), _) => {
                return Err(ApiError::method_not_allowed(method.as_str(), path));
            }
            // `/input_items` is not served.
            _ => return Err(ApiError::unknown_path(method.as_str(), path)),
        };
        // Ids are opaque tokens: nothing else goes into an upstream path.
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ApiError::unknown_path(method.as_str(), path));
        }
        let owner = ctx.identity.as_ref().map(|i| i.key.as_str());
        if let Some(crate::responses_store::Held::Native { target }) =
            self.responses.lookup(id, owner).await
        {
            return self.relay_held(session, ctx, &target, request, id).await;
        }
        let body = match request {
            HeldRequest::Get | HeldRequest::Delete => {
                crate::api::responses::held(&self.responses, method, id, owner).await?
            }
            HeldRequest::Cancel => {
                // Known (else OpenAI's 404), but finished: nothing runs in the background here.
                crate::api::responses::held(&self.responses, &Method::GET, id, owner).await?;
                return Err(ApiError::invalid_field(format!(
                    "Response '{}' is complete: only responses created with background=true \
                     can be cancelled",
                    crate::api::bounded(id)
                )));
            }
        };
        respond::send_json(session, ctx, body).await;
        Ok(())
    }

    /// Relays a request about response `id` to `target` (`provider/model`), which keeps it.
    async fn relay_held(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        target: &str,
        request: crate::providers::openai::HeldRequest,
        id: &str,
    ) -> Result<(), ApiError> {
        let cfg = self.config.current();
        let snapshot = &cfg.snapshot;
        let t = (0..snapshot.targets.len() as u32)
            .map(switchyard_dsl::ir::TargetId)
            .find(|t| snapshot.target_name(*t) == target)
            .ok_or_else(|| crate::api::responses::target_gone(target))?;
        let t = snapshot.target(t);
        let provider = snapshot.provider(t.provider);
        ctx.provider = Some(provider.name.clone());
        ctx.model = Some(t.model.clone());
        let (status, body) = self
            .router
            .providers
            .openai()
            .held_response(
                provider,
                cfg.credentials.get(t.provider.0 as usize),
                request,
                id,
                HELD_RESPONSE_TIMEOUT,
            )
            .await
            .map_err(|e| {
                ApiError::upstream(
                    502,
                    "upstream_error",
                    format!("target `{}`: {e}", crate::api::bounded(target)),
                )
            })?;
        let h = respond::header(status, "application/json", Some(body.len()), ctx);
        respond::send(session, ctx, h, body, None).await;
        Ok(())
    }

    async fn models(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        path: &str,
    ) -> Result<(), ApiError> {
        ctx.endpoint = "models";
        let cfg = self.config.current();
        let body = match path.strip_prefix("/v1/models/") {
            None => self
                .models_cache
                .list(cfg.version, &cfg.snapshot, self.created),
            Some(id) => (self.models_cache)
                .one(cfg.version, &cfg.snapshot, id, self.created)
                .ok_or_else(|| ApiError::unknown_model(id))?,
        };
        // Anthropic SDKs list models too; they always send `anthropic-version`.
        let anthropic_version = session.req_header().headers.get("anthropic-version");
        let body = if crate::api::anthropic::wants_anthropic_shape(
            anthropic_version.and_then(|v| v.to_str().ok()),
        ) {
            crate::api::anthropic::models_body(&body)
        } else {
            body
        };
        respond::send_json(session, ctx, body).await;
        Ok(())
    }

    async fn proxy(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        endpoint: Endpoint,
    ) -> Result<(), ApiError> {
        ctx.endpoint = match endpoint {
            Endpoint::ChatCompletions => "chat",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => crate::api::anthropic::LABEL,
            Endpoint::Responses => crate::api::responses::LABEL,
        };
        // The hold keeps the body's bytes counted until the request is done with them.
        let (mut bytes, _held) = crate::body::read(session, &self.body).await?;
        // A Messages body is routed as its OpenAI translation; the original (with its
        // `anthropic-beta` header) goes to Anthropic targets as is.
        let mut native = (endpoint == Endpoint::Messages).then(|| {
            crate::api::anthropic::Native::new(bytes.clone(), &session.req_header().headers)
        });
        if endpoint == Endpoint::Messages {
            bytes = crate::api::anthropic::to_openai(&bytes)?;
        }
        // A Responses body is routed as its chat translation (the stored conversation
        // expanded); targets that speak the Responses API get it as the client wrote it.
        let (mut pinned, mut cacheable) = (None, true);
        if endpoint == Endpoint::Responses {
            let owner = ctx.identity.as_ref().map(|i| i.key.clone());
            let p =
                crate::api::responses::prepare(&bytes, &self.responses, owner.as_deref()).await?;
            ctx.client = crate::api::client::ClientApi::Responses(p.turn);
            let responses_body = crate::api::anthropic::Native {
                body: p.native,
                anthropic_beta: None,
            };
            (bytes, native, pinned, cacheable) =
                (p.chat, Some(responses_body), p.pinned, p.cacheable);
        }
        let mut body = RequestBody::parse(&bytes)?;
        if endpoint == Endpoint::Embeddings {
            body.stream = false;
        }
        ctx.requested_model = Some(crate::api::bounded(&body.model).into_owned());
        ctx.prompt_tokens = Some(body.prompt_tokens);
        ctx.stream = body.stream;
        if let Some(t) = &ctx.trace {
            t.note_request(&bytes, body.max_tokens);
        }
        let cfg = self.config.current();
        let identity = ctx.identity.clone();
        let features = Features {
            header: session.req_header(),
            body: &body,
            identity: identity.as_ref(),
            native: native.as_ref().map(|n| &n.body[..]),
            bytes: &bytes,
        };
        let draw = self.draw.next();
        let decision = decide(&cfg.snapshot, &features, draw);
        if let Some(shadow) = &self.shadow {
            shadow.observe(&cfg, decision.as_ref(), &features, draw);
        }
        let decision = decision.ok_or_else(|| ApiError::unknown_model(&body.model))?;
        // A conversation a provider keeps continues there, and only there.
        let pinned = match pinned {
            Some(name) => Some(
                (0..cfg.snapshot.targets.len() as u32)
                    .map(switchyard_dsl::ir::TargetId)
                    .find(|t| cfg.snapshot.target_name(*t) == name)
                    .ok_or_else(|| crate::api::responses::target_gone(&name))?,
            ),
            None => None,
        };
        let cache_plan = cacheable
            .then(|| {
                self.cache.plan(
                    decision.route(),
                    endpoint,
                    &session.req_header().headers,
                    &bytes,
                    &body,
                )
            })
            .flatten();
        let admitted = self
            .quota
            .admit(&cfg.snapshot, &decision, &features, body.max_tokens)
            .await
            .inspect_err(|_| {
                ctx.route = Some(decision.route().name.clone());
                ctx.budget = Some("refused");
            })?;
        ctx.budget = admitted.as_ref().map(|_| "admitted");
        if let Some((t, budget)) = admitted.as_ref().and_then(|a| a.downgrade.as_ref()) {
            ctx.budget = Some("downgraded");
            ctx.downgrade = Some(*t);
            let name = cfg.snapshot.target_name(*t);
            ctx.downgraded = Some(format!("{name} (budget {budget})"));
        }
        // The pin outranks a budget's downgrade: the conversation exists nowhere else.
        if pinned.is_some() {
            ctx.downgrade = pinned;
            ctx.downgraded = None;
        }
        let quota_hold = admitted.as_ref().map(|a| crate::quota::Hold {
            quota: Arc::clone(&self.quota),
            reservation: Arc::clone(&a.reservation),
        });
        // A hit calls no upstream and is settled as one that no upstream answered: only
        // request counts stay charged.
        let lookup = (self.cache)
            .answer(session, ctx, cache_plan.as_ref(), &cfg.snapshot)
            .await;
        let hit = matches!(lookup, crate::cache::Lookup::Answered);
        let cache_fill = match lookup {
            crate::cache::Lookup::Miss(fill) => Some(fill),
            _ => None,
        };
        if !hit {
            let job = crate::router::Job {
                snapshot: &cfg.snapshot,
                credentials: &cfg.credentials,
                decision,
                body: &body,
                endpoint,
                native: native.as_ref(),
                holds: crate::router::attempt::Holds {
                    quota: quota_hold.as_ref(),
                    cache_fill: cache_fill.as_ref(),
                },
                trace: ctx.trace.clone(),
            };
            self.router.serve(session, ctx, job).await;
        }
        // Stored before anything else is awaited: the client already has the answer and may
        // ask again at once.
        self.cache
            .finish(ctx, cache_plan.as_ref(), cache_fill)
            .await;
        if let Some(q) = quota_hold {
            let served = (!hit && (200..300).contains(&ctx.status)).then(|| {
                crate::quota::Price::by_name(
                    &cfg.snapshot,
                    ctx.provider.as_deref().unwrap_or(""),
                    ctx.model.as_deref().unwrap_or(""),
                )
            });
            q.quota
                .settle(&q.reservation, ctx.usage, served, ctx.endpoint)
                .await;
        }
        Ok(())
    }

    fn access_log(&self, session: &Session, ctx: &RequestCtx) {
        let req = session.req_header();
        let status = match ctx.status {
            0 => session.response_written().map_or(0, |h| h.status.as_u16()),
            s => s,
        };
        let duration = ctx.started.elapsed();
        let (route, provider, model) = (
            ctx.route.as_deref().unwrap_or("-"),
            ctx.provider.as_deref().unwrap_or("-"),
            ctx.model.as_deref().unwrap_or("-"),
        );
        let identity = ctx.identity.as_ref();
        let routed = ctx.requested_model.is_some();
        // As the decision saw it: the key's user, else the `x-switchyard-user` header.
        let user = identity
            .and_then(|i| i.user.as_deref())
            .map(Cow::Borrowed)
            .or_else(|| {
                let value = req.headers.get("x-switchyard-user")?.to_str().ok()?;
                routed.then(|| crate::api::bounded(value))
            });
        crate::access_log::Line {
            record: crate::access_log::RECORD_VERSION,
            method: req.method.as_str(),
            path: &crate::api::bounded(req.uri.path()),
            endpoint: ctx.endpoint,
            requested_model: ctx.requested_model.as_deref(),
            key: identity.map(|i| i.key.as_str()),
            team: identity.and_then(|i| i.team.as_deref()),
            user: user.as_deref(),
            prompt_tokens: ctx.prompt_tokens,
            headers: if routed {
                crate::access_log::recorded_headers(&self.config.current().snapshot, &req.headers)
            } else {
                crate::access_log::RecordedHeaders::default()
            },
            route,
            provider,
            model,
            status,
            attempts: ctx.attempts,
            stream: ctx.stream,
            stream_error: ctx.stream_error,
            cache: ctx.cache,
            duration_ms: duration.as_secs_f64() * 1e3,
            ttft_ms: ctx.ttft.map(|t| t.as_secs_f64() * 1e3),
            input_tokens: ctx.usage.map(|u| u.input),
            output_tokens: ctx.usage.map(|u| u.output),
            cached_tokens: ctx.usage.map(|u| u.cached).filter(|&n| n > 0),
            error: ctx.error.as_deref(),
        }
        .write();
        let metrics: &Metrics = &self.router.metrics;
        metrics.request_finished(route, provider, model, status, duration, ctx.ttft);
        if let Some(u) = ctx.usage {
            metrics.tokens(provider, model, u.input, u.output);
            metrics.input_tokens(route, provider, model, u.input, u.cached);
        }
        if let (Some(requested), true) = (&ctx.requested_model, ctx.route.is_some()) {
            metrics.gen_ai(&crate::metrics::GenAiOperation {
                operation: crate::telemetry::attrs::operation(ctx.endpoint),
                provider,
                request_model: requested,
                response_model: model,
                status,
                duration,
                ttft: ctx.ttft,
                usage: ctx.usage,
            });
        }
        if let (Some(t), Some(trace)) = (&self.telemetry, &ctx.trace) {
            t.finish(trace, server_span(req, ctx, status));
        }
    }
}

/// What the request's server span says, from its context.
fn server_span<'a>(
    req: &'a RequestHeader,
    ctx: &'a RequestCtx,
    status: u16,
) -> crate::telemetry::spans::ServerSpan<'a> {
    let identity = ctx.identity.as_ref();
    crate::telemetry::spans::ServerSpan {
        method: req.method.as_str(),
        path: req.uri.path(),
        endpoint: ctx.endpoint,
        status,
        requested_model: ctx.requested_model.as_deref(),
        route: ctx.route.as_deref(),
        provider: ctx.provider.as_deref(),
        model: ctx.model.as_deref(),
        attempts: ctx.attempts,
        stream: ctx.stream,
        usage: ctx.usage,
        ttft: ctx.ttft,
        rerouted: &ctx.rerouted,
        hedged: ctx.hedged.as_deref(),
        cache: ctx.cache,
        budget: ctx.budget,
        downgraded: ctx.downgraded.as_deref(),
        key_id: identity.map(|i| i.key.as_str()),
        team: identity.and_then(|i| i.team.as_deref()),
        error: ctx.error.as_deref(),
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        Error::e_explain(
            ErrorType::InternalError,
            "requests are answered in request_filter",
        )
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        self.handle(session, ctx).await;
        Ok(true)
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        self.access_log(session, ctx);
    }
}
