//! One attempt against one target: open it within the first-token deadline, decide whether
//! it failed, and otherwise commit it to the client (the point of no return).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use switchyard_dsl::ir::{Provider, Route};

use super::classify::Failure;
use crate::api::respond;
use crate::cfg::{CredentialState, Metrics};
use crate::ctx::RequestCtx;
use crate::providers::{AttemptError, AttemptRequest, Providers, ResponseSource};
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

/// Everything an attempt needs.
#[derive(Debug)]
pub struct AttemptPlan<'a> {
    pub endpoint: Endpoint,
    pub route: &'a Route,
    pub provider: &'a Provider,
    pub credential: Option<&'a CredentialState>,
    pub model: &'a str,
    pub body: Bytes,
    pub stream: bool,
    pub total_deadline: Option<Instant>,
    /// The client's own body, for a provider that speaks the client's API.
    pub native: Option<Bytes>,
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

/// Makes one attempt; see [`Outcome`].
pub async fn run(
    providers: &Providers,
    metrics: &Metrics,
    session: &mut Session,
    ctx: &mut RequestCtx,
    plan: &AttemptPlan<'_>,
) -> Outcome {
    let failed = |e: AttemptError| Outcome::Failed(Failure::from_attempt(&e), None);
    let adapter = match providers.adapter(plan.provider.kind) {
        Ok(a) => a,
        Err(e) => return failed(e),
    };
    let (route_t, prov_t) = (&plan.route.timeouts, &plan.provider.timeouts);
    let connect = route_t
        .connect_ms
        .or(prov_t.connect_ms)
        .map(Duration::from_millis);
    let first_token = route_t
        .first_token_ms
        .or(prov_t.first_token_ms)
        .map(Duration::from_millis);
    let now = Instant::now();
    let total = plan
        .total_deadline
        .or_else(|| prov_t.total_ms.map(|ms| now + Duration::from_millis(ms)))
        .unwrap_or(now + DEFAULT_TOTAL);
    // The first-token deadline covers the header and first event of a stream; a non-streamed
    // answer's header comes only after the whole generation, so only `total` bounds it.
    let first_deadline = match (plan.stream, first_token) {
        (true, Some(ft)) => (now + ft).min(total),
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
        connect_timeout: connect.unwrap_or(DEFAULT_CONNECT),
        read_timeout: if plan.stream {
            idle
        } else {
            total.saturating_duration_since(now)
        },
    };
    let mut source = match within(
        Some(first_deadline),
        "before the first token",
        adapter.open(&req),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let status = source.status();
    // The body is already in the client's own API (an Anthropic client on Anthropic).
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
        return Outcome::Failed(failure, Some(response));
    }
    if plan.stream && content_type.starts_with("text/event-stream") {
        if let Some(q) = &ctx.quota {
            source = Box::new(crate::quota::meter::Metered::new(
                source,
                std::sync::Arc::clone(&q.quota),
                std::sync::Arc::clone(&q.reservation),
            ));
        }
        let first = within(
            Some(first_deadline),
            "before the first token",
            source.next_chunk(),
        )
        .await;
        let first = match first {
            Ok(Some(c)) => c,
            Ok(None) => {
                source.finish().await;
                return failed(AttemptError::Protocol("empty stream".into()));
            }
            Err(e) => {
                source.finish().await;
                return failed(e);
            }
        };
        source = crate::cache::tee(ctx, source, &first, native);
        let h = respond::header(200, &content_type, None, ctx);
        ctx.status = 200;
        if session.write_response_header(h, false).await.is_err() {
            source.finish().await;
            ctx.error = Some("client went away".into());
            return Outcome::Served { ok: true };
        }
        ctx.ttft = Some(ctx.started.elapsed());
        metrics.stream_started();
        let mode = match (native, crate::api::anthropic::is_client(ctx)) {
            (true, _) => stream::Relay::Anthropic,
            (false, true) => stream::Relay::ToAnthropic(plan.model),
            (false, false) => stream::Relay::OpenAi,
        };
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
        return Outcome::Served { ok };
    }
    let (body, complete) = match read_body(source.as_mut(), MAX_BUFFERED_BODY, total).await {
        Ok(b) => b,
        Err(e) => {
            source.finish().await;
            return failed(e);
        }
    };
    source.finish().await;
    if !complete {
        return failed(AttemptError::Protocol(
            "response larger than the proxy buffers".into(),
        ));
    }
    if native {
        ctx.usage = crate::api::anthropic::native_usage(&body);
    } else if content_type.starts_with("application/json") {
        match stream::probe_usage(&body) {
            Ok(usage) => {
                ctx.usage = usage;
                if let (None, Some(q)) = (usage, &ctx.quota) {
                    // No usage block: estimate the output for settlement.
                    let estimate = (body.len() / 4) as u64;
                    q.reservation
                        .output_seen
                        .store(estimate, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Err(_) => return failed(AttemptError::Protocol("malformed JSON response".into())),
        }
    }
    crate::cache::capture(ctx, &body, native);
    let body = if crate::api::anthropic::is_client(ctx) && !native {
        crate::api::anthropic::response_body(status, &body, plan.model)
    } else {
        body
    };
    let h = respond::header(status, &content_type, Some(body.len()), ctx);
    ctx.ttft = Some(ctx.started.elapsed());
    if !respond::send(session, ctx, h, body, None).await {
        ctx.error = Some("client went away".into());
    }
    Outcome::Served { ok: true }
}
