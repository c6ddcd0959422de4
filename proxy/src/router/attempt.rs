//! One attempt against one target, in two phases. [`open`] runs the attempt up to its first
//! token (a stream's first event, a whole non-streamed answer) without touching the client,
//! so two attempts can race when a route hedges; [`commit`] sends the winner to the client,
//! the point of no return.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use switchyard_dsl::ir::{Provider, Timeouts};

use super::classify::Failure;
use super::stats::{InFlight, TargetStats};
use crate::api::Usage;
use crate::api::respond;
use crate::config::CredentialState;
use crate::ctx::RequestCtx;
use crate::metrics::Metrics;
use crate::providers::{AttemptError, AttemptRequest, Providers, ResponseSource};
use crate::telemetry::AttemptSpan;
use crate::{api::Endpoint, stream};

/// Connect deadline when neither route nor provider sets one.
const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
/// Longest silence between stream chunks when no first-token deadline is set.
const DEFAULT_IDLE: Duration = Duration::from_secs(120);
/// Wait for a non-streamed response when no total deadline is set.
const DEFAULT_TOTAL: Duration = Duration::from_secs(600);
/// Error bodies read for classification and pass-through.
const MAX_ERROR_BODY: usize = 256 * 1024;
/// Non-streamed bodies are buffered (and checked) up to this size before relaying.
const MAX_BUFFERED_BODY: usize = 32 * 1024 * 1024;

/// An error response kept for passing through when the triggers do not apply.
#[derive(Debug)]
pub struct ErrorResponse {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: Bytes,
}

/// What an attempt came to.
#[derive(Debug)]
pub enum Outcome {
    /// Something went to the client; `ok` = complete and well-formed.
    Served { ok: bool },
    /// Nothing went to the client.
    Failed(Failure, Option<ErrorResponse>),
}

/// An attempt that produced its first token and has not been sent to the client yet.
pub struct Opened {
    source: Box<dyn ResponseSource>,
    status: u16,
    content_type: String,
    /// The body is already in the client's own API (an Anthropic client on Anthropic).
    native: bool,
    body: OpenedBody,
    total_deadline: Instant,
    /// When the attempt started and how long its first token took.
    pub started: Instant,
    pub ttft: Duration,
    /// The provider said its rate limit is used up for this long (`x-ratelimit-remaining-*`).
    pub rate_limited_for: Option<Duration>,
    in_flight: InFlight,
    /// The attempt's client span, when the request is traced; ends with the attempt.
    span: Option<AttemptSpan>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("status", &self.status)
            .field("ttft", &self.ttft)
            .finish_non_exhaustive()
    }
}

enum OpenedBody {
    /// A stream and its first chunk.
    Stream(Bytes),
    /// A whole, checked answer and its usage.
    Whole { body: Bytes, usage: Option<Usage> },
}

impl Opened {
    /// Reads the rest of the answer and sends it nowhere (an active health check's); the
    /// connection goes back to the pool when the body ended properly.
    pub async fn drain(self) -> Result<(), AttemptError> {
        let Opened {
            mut source,
            body,
            total_deadline,
            ..
        } = self;
        if let OpenedBody::Stream(_) = body {
            let (_, complete) = read_body(source.as_mut(), MAX_ERROR_BODY, total_deadline).await?;
            if !complete {
                source.finish().await;
                return Err(AttemptError::Protocol("answer too long".into()));
            }
        }
        source.finish().await;
        Ok(())
    }
}

/// A failed opening: what happened, the error response to pass through if any, and how
/// long the attempt waited (a lower bound on its latency when it timed out).
#[derive(Debug)]
pub struct OpenFailure {
    pub failure: Failure,
    pub response: Option<ErrorResponse>,
    pub waited: Duration,
}

/// Yields a chunk already read, then the rest of the source: lets the budget meter see a
/// stream from its first event although the first event was read before the race was won.
struct Prepend {
    first: Option<Bytes>,
    inner: Box<dyn ResponseSource>,
}

#[async_trait::async_trait]
impl ResponseSource for Prepend {
    fn status(&self) -> u16 {
        self.inner.status()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.inner.header(name)
    }
    fn passthrough(&self) -> bool {
        self.inner.passthrough()
    }
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, AttemptError> {
        match self.first.take() {
            Some(c) => Ok(Some(c)),
            None => self.inner.next_chunk().await,
        }
    }
    async fn finish(self: Box<Self>) {
        self.inner.finish().await;
    }
}

/// How long a provider's rate-limit headers say it will refuse further requests: OpenAI's
/// `x-ratelimit-remaining-{requests,tokens}: 0` with `x-ratelimit-reset-*: 6m0s`, and
/// Anthropic's `anthropic-ratelimit-*-remaining: 0` with an RFC 3339 `-reset` time.
pub fn rate_limit_exhausted(header: impl Fn(&str) -> Option<String>) -> Option<Duration> {
    const OPENAI: [(&str, &str); 2] = [
        (
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ),
        ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ];
    const ANTHROPIC: [(&str, &str); 4] = [
        (
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ),
        (
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ),
        (
            "anthropic-ratelimit-input-tokens-remaining",
            "anthropic-ratelimit-input-tokens-reset",
        ),
        (
            "anthropic-ratelimit-output-tokens-remaining",
            "anthropic-ratelimit-output-tokens-reset",
        ),
    ];
    let exhausted = |name: &str| header(name).is_some_and(|v| v.trim() == "0");
    let mut longest: Option<Duration> = None;
    let mut note = |d: Duration| longest = Some(longest.map_or(d, |l| l.max(d)));
    for (remaining, reset) in OPENAI {
        if exhausted(remaining) {
            // Unparseable reset: a second is the smallest step OpenAI reports.
            let d = header(reset)
                .and_then(|v| humantime::parse_duration(v.trim()).ok())
                .unwrap_or(Duration::from_secs(1));
            note(d);
        }
    }
    for (remaining, reset) in ANTHROPIC {
        if exhausted(remaining) {
            let d = header(reset)
                .and_then(|v| humantime::parse_rfc3339(v.trim()).ok())
                .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
                .unwrap_or(Duration::from_secs(1));
            note(d);
        }
    }
    longest.map(|d| d.min(super::classify::MAX_RATE_LIMIT_WAIT))
}

/// Everything an attempt needs.
#[derive(Debug)]
pub struct AttemptPlan<'a> {
    pub endpoint: Endpoint,
    /// The route's deadlines (they override the provider's).
    pub timeouts: &'a Timeouts,
    pub provider: &'a Provider,
    pub credential: Option<&'a CredentialState>,
    pub model: &'a str,
    pub body: Bytes,
    pub stream: bool,
    pub total_deadline: Option<Instant>,
    /// The client's own request, for a provider that speaks the client's API.
    pub native: Option<crate::api::anthropic::Native>,
    /// The target's statistics: the attempt counts as in flight there while it runs.
    pub stats: std::sync::Arc<TargetStats>,
    /// What the request holds while it is answered.
    pub holds: Holds<'a>,
    /// The request's trace, when traced: the attempt records a client span in it.
    pub trace: Option<std::sync::Arc<crate::telemetry::RequestTrace>>,
    /// Sent as a hedge beside a slow first attempt (an attribute of its span).
    pub hedge: bool,
}

/// What a request holds of the gateway's services while it is answered: the budget
/// reservation a stream is metered against, and a cache miss's capture buffer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Holds<'a> {
    pub quota: Option<&'a crate::quota::Hold>,
    pub cache_fill: Option<&'a crate::cache::Fill>,
}

async fn within<T>(
    deadline: Option<Instant>,
    what: &'static str,
    f: impl Future<Output = Result<T, AttemptError>>,
) -> Result<T, AttemptError> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d.into(), f)
            .await
            .unwrap_or(Err(AttemptError::Timeout(what))),
        None => f.await,
    }
}

async fn read_body(
    source: &mut dyn ResponseSource,
    limit: usize,
    deadline: Instant,
) -> Result<(Bytes, bool), AttemptError> {
    let mut buf = BytesMut::new();
    loop {
        let chunk = within(Some(deadline), "reading the response", source.next_chunk()).await?;
        match chunk {
            Some(c) => {
                buf.extend_from_slice(&c);
                if buf.len() > limit {
                    return Ok((buf.freeze(), false));
                }
            }
            None => return Ok((buf.freeze(), true)),
        }
    }
}

/// Runs an attempt up to its first token without touching the client; see [`Opened`].
/// A traced attempt records a client span, and the provider request names it as parent.
pub async fn open(providers: &Providers, plan: &AttemptPlan<'_>) -> Result<Opened, OpenFailure> {
    let Some(trace) = &plan.trace else {
        return open_untraced(providers, plan, None).await;
    };
    let id = opentelemetry_sdk::trace::IdGenerator::new_span_id(
        &opentelemetry_sdk::trace::RandomIdGenerator::default(),
    );
    let mut span = AttemptSpan::begin(
        trace,
        id,
        crate::telemetry::spans::AttemptOf {
            provider: plan.provider,
            model: plan.model,
            endpoint: plan.endpoint,
            stream: plan.stream,
            hedge: plan.hedge,
        },
    );
    let headers = crate::telemetry::propagate::inject(span.context());
    // Dropped here when a hedge race cancels this attempt: the span says `cancelled`.
    let result = open_untraced(providers, plan, Some(headers)).await;
    match result {
        Ok(mut opened) => {
            span.status(opened.status);
            match &opened.body {
                OpenedBody::Stream(first) => span.first_token(first, true),
                OpenedBody::Whole { body, .. } => span.first_token(body, false),
            }
            opened.span = Some(span);
            Ok(opened)
        }
        Err(f) => {
            if let Some(r) = &f.response {
                span.status(r.status);
            }
            span.failed(f.failure.class.as_str(), &f.failure.detail);
            Err(f)
        }
    }
}

async fn open_untraced(
    providers: &Providers,
    plan: &AttemptPlan<'_>,
    trace_headers: Option<crate::telemetry::propagate::Outgoing>,
) -> Result<Opened, OpenFailure> {
    let started = Instant::now();
    let in_flight = InFlight::new(&plan.stats);
    let failed = |e: AttemptError| OpenFailure {
        failure: Failure::from_attempt(&e),
        response: None,
        waited: started.elapsed(),
    };
    let adapter = providers.adapter(plan.provider.kind).map_err(failed)?;
    // A Responses request with built-in tools cannot go to a chat-only target.
    let tools_mode = providers.responses_unsupported_tools;
    if plan.endpoint == Endpoint::Responses
        && let Some((status, body)) = plan.native.as_ref().and_then(|n| {
            crate::api::responses::refusal(plan.provider, plan.model, &n.body, tools_mode)
        })
    {
        return Err(OpenFailure {
            failure: Failure::from_response(status, &body, None),
            response: Some(ErrorResponse {
                status,
                content_type: "application/json".into(),
                retry_after: None,
                body,
            }),
            waited: started.elapsed(),
        });
    }
    let (route_t, prov_t) = (plan.timeouts, &plan.provider.timeouts);
    let connect = route_t
        .connect_ms
        .or(prov_t.connect_ms)
        .map(Duration::from_millis);
    let first_token = route_t
        .first_token_ms
        .or(prov_t.first_token_ms)
        .map(Duration::from_millis);
    let total = plan
        .total_deadline
        .or_else(|| {
            prov_t
                .total_ms
                .map(|ms| started + Duration::from_millis(ms))
        })
        .unwrap_or(started + DEFAULT_TOTAL);
    // The first-token deadline covers the header and first event of a stream; a non-streamed
    // answer's header comes only after the whole generation, so only `total` bounds it.
    let first_deadline = match (plan.stream, first_token) {
        (true, Some(ft)) => (started + ft).min(total),
        _ => total,
    };
    let idle = first_token.map_or(DEFAULT_IDLE, |f| f.max(Duration::from_secs(30)));
    let req = AttemptRequest {
        endpoint: plan.endpoint,
        provider: plan.provider,
        credential: plan.credential,
        model: plan.model,
        body: plan.body.clone(),
        native: plan.native.clone(),
        stream: plan.stream,
        trace_headers,
        connect_timeout: connect.unwrap_or(DEFAULT_CONNECT),
        read_timeout: if plan.stream {
            idle
        } else {
            total.saturating_duration_since(started)
        },
    };
    let mut source = within(
        Some(first_deadline),
        "before the first token",
        adapter.open(&req),
    )
    .await
    .map_err(failed)?;
    let status = source.status();
    let native = source.passthrough();
    let content_type = source
        .header("content-type")
        .unwrap_or("application/json")
        .to_owned();
    if !(200..300).contains(&status) {
        let retry_after = source.header("retry-after").map(str::to_owned);
        let body = read_body(source.as_mut(), MAX_ERROR_BODY, total)
            .await
            .map_or_else(|_| Bytes::new(), |(b, _)| b);
        source.finish().await;
        let failure = Failure::from_response(status, &body, retry_after.as_deref());
        let response = ErrorResponse {
            status,
            content_type,
            retry_after,
            body,
        };
        return Err(OpenFailure {
            failure,
            response: Some(response),
            waited: started.elapsed(),
        });
    }
    let rate_limited_for = rate_limit_exhausted(|n| source.header(n).map(str::to_owned));
    let body = if plan.stream && content_type.starts_with("text/event-stream") {
        let first = within(
            Some(first_deadline),
            "before the first token",
            source.next_chunk(),
        )
        .await;
        match first {
            Ok(Some(c)) => OpenedBody::Stream(c),
            Ok(None) => {
                source.finish().await;
                return Err(failed(AttemptError::Protocol("empty stream".into())));
            }
            Err(e) => {
                source.finish().await;
                return Err(failed(e));
            }
        }
    } else {
        let (body, complete) = match read_body(source.as_mut(), MAX_BUFFERED_BODY, total).await {
            Ok(b) => b,
            Err(e) => {
                source.finish().await;
                return Err(failed(e));
            }
        };
        if !complete {
            source.finish().await;
            return Err(failed(AttemptError::Protocol(
                "response larger than the proxy buffers".into(),
            )));
        }
        let usage = if native && plan.endpoint == Endpoint::Responses {
            crate::api::responses::native_usage(&body)
        } else if native {
            crate::api::anthropic::native_usage(&body)
        } else if content_type.starts_with("application/json") {
            match stream::probe_usage(&body) {
                Ok(usage) => usage,
                Err(_) => {
                    source.finish().await;
                    return Err(failed(AttemptError::Protocol(
                        "malformed JSON response".into(),
                    )));
                }
            }
        } else {
            None
        };
        OpenedBody::Whole { body, usage }
    };
    Ok(Opened {
        source,
        status,
        content_type,
        native,
        body,
        total_deadline: total,
        started,
        ttft: started.elapsed(),
        rate_limited_for,
        in_flight,
        span: None,
    })
}

/// Sends an opened attempt to the client. A stream whose first event the budget meter
/// refuses still fails over: nothing has been written yet.
pub async fn commit(
    metrics: &Metrics,
    session: &mut Session,
    ctx: &mut RequestCtx,
    plan: &AttemptPlan<'_>,
    mut opened: Opened,
) -> Outcome {
    let span = opened.span.take();
    let outcome = deliver(metrics, session, ctx, plan, opened).await;
    if let Some(mut span) = span {
        match &outcome {
            Outcome::Served { ok } => span.served(*ok, ctx.usage),
            Outcome::Failed(f, _) => span.failed(f.class.as_str(), &f.detail),
        }
    }
    outcome
}

async fn deliver(
    metrics: &Metrics,
    session: &mut Session,
    ctx: &mut RequestCtx,
    plan: &AttemptPlan<'_>,
    opened: Opened,
) -> Outcome {
    let Opened {
        source,
        status,
        content_type,
        native,
        body,
        total_deadline: total,
        in_flight: _in_flight,
        ..
    } = opened;
    let failed = |e: AttemptError| Outcome::Failed(Failure::from_attempt(&e), None);
    let first = match body {
        OpenedBody::Stream(first) => first,
        OpenedBody::Whole { body, usage } => {
            source.finish().await;
            ctx.usage = usage;
            if let (None, Some(q), false) = (usage, plan.holds.quota, native) {
                // No usage block: estimate the output for settlement.
                let estimate = (body.len() / 4) as u64;
                q.reservation
                    .output_seen
                    .store(estimate, std::sync::atomic::Ordering::Relaxed);
            }
            crate::cache::capture(plan.holds.cache_fill, &body, native);
            let body =
                ctx.client
                    .whole_answer(status, body, native, (&plan.provider.name, plan.model));
            ctx.client.share().await;
            let h = respond::header(status, &content_type, Some(body.len()), ctx);
            ctx.ttft = Some(ctx.started.elapsed());
            if !respond::send(session, ctx, h, body, None).await {
                ctx.error = Some("client went away".into());
            }
            return Outcome::Served { ok: true };
        }
    };
    if let Some(crate::quota::Hold { quota, reservation }) = plan.holds.quota {
        let prepended = Box::new(Prepend {
            first: Some(first),
            inner: source,
        });
        let mut metered: Box<dyn ResponseSource> = Box::new(crate::quota::meter::Metered::new(
            prepended,
            std::sync::Arc::clone(quota),
            std::sync::Arc::clone(reservation),
        ));
        return match metered.next_chunk().await {
            Ok(Some(first)) => {
                relay(
                    metrics,
                    session,
                    ctx,
                    plan,
                    (metered, first),
                    native,
                    total,
                    &content_type,
                )
                .await
            }
            Ok(None) => {
                metered.finish().await;
                failed(AttemptError::Protocol("empty stream".into()))
            }
            Err(e) => {
                metered.finish().await;
                failed(e)
            }
        };
    }
    relay(
        metrics,
        session,
        ctx,
        plan,
        (source, first),
        native,
        total,
        &content_type,
    )
    .await
}

/// Relays a committed stream to the client.
#[allow(clippy::too_many_arguments)]
async fn relay(
    metrics: &Metrics,
    session: &mut Session,
    ctx: &mut RequestCtx,
    plan: &AttemptPlan<'_>,
    (source, first): (Box<dyn ResponseSource>, Bytes),
    native: bool,
    total: Instant,
    content_type: &str,
) -> Outcome {
    let source = crate::cache::tee(plan.holds.cache_fill, source, &first, native);
    let h = respond::header(200, content_type, None, ctx);
    ctx.status = 200;
    if session.write_response_header(h, false).await.is_err() {
        source.finish().await;
        ctx.error = Some("client went away".into());
        return Outcome::Served { ok: true };
    }
    ctx.ttft = Some(ctx.started.elapsed());
    metrics.stream_started();
    let mode = stream::Relay::to(&ctx.client, native, (&plan.provider.name, plan.model));
    let end = stream::relay(session, source, first, Some(total), mode).await;
    metrics.stream_finished();
    ctx.usage = end.usage;
    let ok = end.error.is_none();
    if let Some(e) = end.error {
        ctx.stream_error = true;
        ctx.error = Some(format!("stream ended with an error event: {e}"));
    } else if end.client_gone {
        ctx.error = Some("client went away".into());
    }
    Outcome::Served { ok }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
    }

    #[test]
    fn rate_limit_headers_say_when_to_stay_away() {
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-remaining-tokens", "1200"),
            ("x-ratelimit-reset-tokens", "20ms"),
        ]);
        assert_eq!(
            rate_limit_exhausted(h),
            Some(Duration::from_secs(60)),
            "capped"
        );
        let h = headers(&[
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "1.5s"),
        ]);
        assert_eq!(rate_limit_exhausted(h), Some(Duration::from_millis(1500)));
        let h = headers(&[("x-ratelimit-remaining-requests", "3")]);
        assert_eq!(rate_limit_exhausted(h), None);
        let soon =
            humantime::format_rfc3339(std::time::SystemTime::now() + Duration::from_secs(20))
                .to_string();
        let h = headers(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", &soon),
        ]);
        let d = rate_limit_exhausted(h).expect("limited");
        assert!(
            d > Duration::from_secs(18) && d <= Duration::from_secs(20),
            "{d:?}"
        );
        let h = headers(&[("anthropic-ratelimit-tokens-remaining", "0")]);
        assert_eq!(rate_limit_exhausted(h), Some(Duration::from_secs(1)));
    }
}
