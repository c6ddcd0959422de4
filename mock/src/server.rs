//! The HTTP/1.1 server: an accept loop with per-connection control (so a fault can reset a
//! connection), the API routes, and the `/_mock/` scripting routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::body::{self, MockBody};
use crate::fault::Fault;
use crate::reply::{ApiError, Reply, SseEvent};
use crate::script::{self, RecordedRequest, Script, State};
use crate::text;
use crate::{anthropic, gemini, openai, responses};

/// The header that names the server on every response.
pub const SERVER_HEADER: &str = "x-mock-server";
/// The request header that carries a one-off fault as JSON.
pub const FAULT_HEADER: &str = "x-mock-fault";

/// What a handler returns to make the connection close with no response.
#[derive(Debug, thiserror::Error)]
#[error("connection reset by the mock (reset fault)")]
pub struct ResetConnection;

/// Accept connections on `listener` and serve each on its own task, until dropped. Dropping
/// (aborting) this future ends every connection it started.
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    let mut count: u64 = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    count += 1;
                    connections.spawn(serve_connection(stream, count, Arc::clone(&state)));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serve one connection; when a handler asked for a reset, close it with SO_LINGER 0 so the
/// peer gets an RST rather than a FIN.
async fn serve_connection(mut stream: TcpStream, connection: u64, state: Arc<State>) {
    // Chunks must leave one by one for streaming to be observable; failure is harmless.
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(AtomicBool::new(false));
    let service = {
        let reset = Arc::clone(&reset);
        service_fn(move |req| handle(req, connection, Arc::clone(&state), Arc::clone(&reset)))
    };
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(&mut stream), service)
        .await;
    if reset.load(Ordering::SeqCst) {
        if let Err(e) = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)) {
            tracing::warn!(error = %e, "cannot set SO_LINGER 0; the reset will be a plain close");
        }
    } else if let Err(e) = served {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn handle(
    req: Request<Incoming>,
    connection: u64,
    state: Arc<State>,
    reset: Arc<AtomicBool>,
) -> Result<Response<MockBody>, ResetConnection> {
    let name = state.config().name.clone();
    let mut response = if req.uri().path().starts_with("/_mock/") {
        admin(req, &state).await
    } else {
        match api(req, connection, &state).await {
            Ok(response) => response,
            Err(ResetConnection) => {
                reset.store(true, Ordering::SeqCst);
                return Err(ResetConnection);
            }
        }
    };
    if let Ok(value) = HeaderValue::from_str(&name) {
        response.headers_mut().insert(SERVER_HEADER, value);
    }
    Ok(response)
}

/// Read a whole request body; a client that breaks off mid-body gets its connection closed.
async fn read_body(body: Incoming) -> Result<Bytes, ResetConnection> {
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(ResetConnection),
    }
}

/// An API request: log it, pick its fault, apply the fault, answer. A client that goes away
/// before the answer is complete marks its log entry `cancelled`.
async fn api(
    req: Request<Incoming>,
    connection: u64,
    state: &Arc<State>,
) -> Result<Response<MockBody>, ResetConnection> {
    // Dropped while still `Some` (this future dropped mid-answer) = cancelled; a stream's
    // body takes it over and settles it when it ends.
    let mut unfinished = None;
    let result = answer(req, connection, state, &mut unfinished).await;
    if let Some(u) = unfinished.take() {
        u.done();
    }
    result
}

async fn answer(
    req: Request<Incoming>,
    connection: u64,
    state: &Arc<State>,
    unfinished: &mut Option<body::Unfinished>,
) -> Result<Response<MockBody>, ResetConnection> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body).await?;
    let path = parts.uri.path().to_owned();
    let header = parts
        .headers
        .get(FAULT_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let fault = state.next_fault(&path, header.as_deref());
    let seq = state.record(RecordedRequest {
        seq: 0,
        connection,
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: script::redact_headers(&parts.headers),
        body: script::body_value(&bytes),
        fault: fault.as_ref().ok().filter(|f| !f.is_none()).cloned(),
        cancelled: false,
    });
    *unfinished = Some(body::Unfinished::new(Arc::clone(state), seq));
    tracing::debug!(seq, method = %parts.method, path, ?fault, "api request");
    let format = Format::of(&parts.method, &path, &parts.headers);
    let config = state.config();
    let id = state.next_id();
    let request_id = format!(
        "req_{}",
        text::alphanumeric(
            text::derive_seed(config.seed, &["req", &id.to_string()]),
            24
        )
    );
    let fault = match fault {
        Ok(fault) => fault,
        Err(message) => {
            let e = ApiError::invalid_request(message);
            return Ok(api_error(format, &e, &request_id));
        }
    };
    match &fault {
        Fault::Reset => return Err(ResetConnection),
        Fault::Stall { forever: true, .. } => std::future::pending::<()>().await,
        Fault::Stall { ms, .. } => body::pause(Duration::from_millis(*ms)).await,
        _ => {}
    }
    if config.require_auth
        && let Some(e) = format.auth_error(&parts.headers, parts.uri.query())
    {
        return Ok(api_error(format, &e, &request_id));
    }
    let stream_error = matches!(fault, Fault::StreamError { .. });
    if !stream_error && let Some(e) = format.fault_error(&fault) {
        return Ok(api_error(format, &e, &request_id));
    }
    let behaviour = state.behaviour();
    let ctx = openai::Ctx {
        seed: config.seed,
        request_id: id,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        completion_tokens: behaviour.completion_tokens,
        embedding_dimensions: config.embedding_dimensions,
        models: &config.models,
        owner: &config.name,
        forced_tool: fault.forced_tool(),
        prompt_cache: config.prompt_cache.then_some(&state.prompt_cache),
    };
    let method = parts.method.as_str();
    let refusal = matches!(fault, Fault::Refusal);
    let reply = match (format, &parts.method, path.as_str()) {
        (Format::OpenAi, &Method::POST, "/v1/chat/completions") if refusal => {
            openai::refusal(&bytes, &ctx)
        }
        (Format::Anthropic, &Method::POST, "/v1/messages") if refusal => {
            anthropic::refusal(&bytes, &ctx)
        }
        (Format::Gemini, _, p) if refusal => {
            gemini::refusal(method, p, parts.uri.query(), &bytes, &ctx)
        }
        (Format::OpenAi, &Method::POST, "/v1/chat/completions") => {
            openai::chat_completions(&bytes, &ctx)
        }
        (Format::OpenAi, &Method::POST, "/v1/embeddings") => openai::embeddings(&bytes, &ctx),
        (Format::OpenAi, &Method::GET, "/v1/models") => openai::models(&ctx),
        (Format::OpenAi, &Method::GET, p) if p.starts_with("/v1/models/") => {
            openai::model(&p["/v1/models/".len()..], &ctx)
        }
        (Format::OpenAi, _, p) => Reply::Error(openai::unknown_route(method, p)),
        (Format::Responses, &Method::POST, "/v1/responses") => {
            responses::create(&bytes, &ctx, &state.responses)
        }
        (Format::Responses, m, p) if p.starts_with("/v1/responses/") => {
            responses::held(m, &p["/v1/responses/".len()..], &state.responses)
        }
        (Format::Responses, _, p) => Reply::Error(openai::unknown_route(method, p)),
        (Format::Anthropic, &Method::POST, "/v1/messages") => anthropic::messages(&bytes, &ctx),
        (Format::Anthropic, &Method::POST, "/v1/messages/count_tokens") => {
            anthropic::count_tokens(&bytes)
        }
        (Format::Anthropic, &Method::GET, "/v1/models") => anthropic::models(&ctx),
        (Format::Anthropic, &Method::GET, p) if p.starts_with("/v1/models/") => {
            anthropic::model(&p["/v1/models/".len()..], &ctx)
        }
        (Format::Anthropic, _, p) => Reply::Error(anthropic::unknown_route(method, p)),
        (Format::Gemini, _, p) => gemini::route(method, p, parts.uri.query(), &bytes, &ctx),
    };
    let reply = match reply {
        // A `stream_error` fault: the error status on a whole answer, the error event
        // after `after_chunks` events on a stream.
        Reply::Json { .. } if stream_error => {
            Reply::Error(format.fault_error(&fault).unwrap_or_else(|| {
                ApiError::invalid_request("stream_error fault without an error")
            }))
        }
        Reply::Stream(mut events) => {
            if let (Fault::StreamError { after_chunks, .. }, Some(e)) =
                (&fault, format.fault_error(&fault))
            {
                events.truncate(*after_chunks as usize);
                events.push(match format {
                    Format::Responses => {
                        responses::stream_error_event(&e, u64::from(*after_chunks))
                    }
                    _ => format.stream_error_event(&e),
                });
            }
            Reply::Stream(events)
        }
        other => other,
    };
    let response = match reply {
        Reply::Error(e) => return Ok(api_error(format, &e, &request_id)),
        Reply::Json { body, tokens } => {
            body::pause(body::whole_delay(&behaviour, &fault, tokens)).await;
            let bytes = Bytes::from(body.to_string());
            let body =
                body::whole_body_fault(&bytes, &fault).unwrap_or_else(|| MockBody::full(bytes));
            with_type(Response::new(body), "application/json")
        }
        Reply::Stream(events) => {
            body::pause(Duration::from_millis(behaviour.latency_ms)).await;
            let steps = body::stream_steps(&events, &behaviour, &fault, &format.malformed_event());
            let mut response = with_type(
                Response::new(MockBody::play(steps, unfinished.take())),
                "text/event-stream; charset=utf-8",
            );
            response
                .headers_mut()
                .insert("cache-control", HeaderValue::from_static("no-cache"));
            response
        }
    };
    Ok(with_request_id(response, format, &request_id))
}

/// An API error answer: the format's body (Anthropic's with `request_id`, as Anthropic
/// sends), `Retry-After` when it has one, and the request id headers.
fn api_error(format: Format, e: &ApiError, request_id: &str) -> Response<MockBody> {
    let mut response = error_response(format, e);
    if format == Format::Anthropic {
        let mut body = format.error_body(e);
        body["request_id"] = Value::from(request_id);
        *response.body_mut() = MockBody::full(body.to_string());
    }
    with_request_id(response, format, request_id)
}

/// `x-request-id` on every API answer, and Anthropic's `request-id`.
fn with_request_id(
    mut response: Response<MockBody>,
    format: Format,
    request_id: &str,
) -> Response<MockBody> {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        if format == Format::Anthropic {
            response.headers_mut().insert("request-id", value.clone());
        }
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The wire format of an API request, from its path (and, for the models list, headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenAI: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`, and anything else.
    OpenAi,
    /// Anthropic: `/v1/messages*`, and `/v1/models*` asked with `anthropic-version`.
    Anthropic,
    /// Gemini: `/v1beta/*`, and `/v1/models/{model}:{action}`.
    Gemini,
    /// OpenAI Responses: `/v1/responses*` (errors in OpenAI's shape).
    Responses,
}

impl Format {
    /// The format of a request.
    pub fn of(method: &Method, path: &str, headers: &hyper::HeaderMap) -> Self {
        if path.starts_with("/v1beta/") || (path.starts_with("/v1/models/") && path.contains(':')) {
            Self::Gemini
        } else if path == "/v1/responses" || path.starts_with("/v1/responses/") {
            Self::Responses
        } else if path == "/v1/messages"
            || path.starts_with("/v1/messages/")
            || (method == Method::GET
                && path.starts_with("/v1/models")
                && headers.contains_key("anthropic-version"))
        {
            Self::Anthropic
        } else {
            Self::OpenAi
        }
    }

    /// The error a fault answers with, in this format's words.
    pub fn fault_error(self, fault: &Fault) -> Option<ApiError> {
        match self {
            Self::OpenAi | Self::Responses => openai::fault_error(fault),
            Self::Anthropic => anthropic::fault_error(fault),
            Self::Gemini => gemini::fault_error(fault),
        }
    }

    /// An error body in this format's shape.
    pub fn error_body(self, e: &ApiError) -> Value {
        match self {
            Self::OpenAi | Self::Responses => openai::error_body(e),
            Self::Anthropic => anthropic::error_body(e),
            Self::Gemini => gemini::error_body(e),
        }
    }

    /// The `malformed_chunk` event in this format's framing.
    pub fn malformed_event(self) -> SseEvent {
        match self {
            Self::OpenAi | Self::Responses => openai::malformed_event(),
            Self::Anthropic => anthropic::malformed_event(),
            Self::Gemini => gemini::malformed_event(),
        }
    }

    /// The in-stream error event of a `stream_error` fault.
    pub fn stream_error_event(self, e: &ApiError) -> SseEvent {
        match self {
            Self::OpenAi | Self::Responses => openai::stream_error_event(e),
            Self::Anthropic => anthropic::stream_error_event(e),
            Self::Gemini => gemini::stream_error_event(e),
        }
    }

    /// With `require_auth`: the error for a request without this format's credentials.
    pub fn auth_error(self, headers: &hyper::HeaderMap, query: Option<&str>) -> Option<ApiError> {
        let has = |name: &str| headers.get(name).is_some_and(|v| !v.is_empty());
        match self {
            Self::OpenAi | Self::Responses => (!has("authorization")).then(|| ApiError {
                status: 401,
                code: Some("invalid_api_key".to_owned()),
                ..ApiError::invalid_request(
                    "You didn't provide an API key. You need to provide your API key in an \
                     Authorization header using Bearer auth (mock).",
                )
            }),
            Self::Anthropic => anthropic::auth_error(
                has("x-api-key") || has("authorization"),
                has("anthropic-version"),
            ),
            Self::Gemini => gemini::auth_error(
                has("x-goog-api-key")
                    || query.is_some_and(|q| {
                        q.split('&')
                            .any(|kv| kv.starts_with("key=") && kv.len() > 4)
                    }),
            ),
        }
    }
}

fn with_type(mut response: Response<MockBody>, content_type: &'static str) -> Response<MockBody> {
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response<MockBody> {
    let mut response = with_type(
        Response::new(MockBody::full(body.to_string())),
        "application/json",
    );
    *response.status_mut() = status;
    response
}

/// An error in the shape of `format`, with `Retry-After` when it has one.
fn error_response(format: Format, e: &ApiError) -> Response<MockBody> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &format.error_body(e));
    if let Some(secs) = e.retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    response
}

/// The `/_mock/` routes: script, reset, requests, state, health.
async fn admin(req: Request<Incoming>, state: &State) -> Response<MockBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let bytes = match read_body(req.into_body()).await {
        Ok(bytes) => bytes,
        Err(ResetConnection) => return json_response(StatusCode::BAD_REQUEST, &json!({})),
    };
    match (&method, path.as_str()) {
        (&Method::POST, "/_mock/script") => match serde_json::from_slice::<Script>(&bytes) {
            Ok(script) => {
                state.apply(script);
                json_response(StatusCode::OK, &json!({"queued": state.queued().len()}))
            }
            Err(e) => error_response(
                Format::OpenAi,
                &ApiError::invalid_request(format!("invalid script: {e}")),
            ),
        },
        (&Method::GET, "/_mock/script") => json_response(StatusCode::OK, &state.describe()),
        (&Method::POST, "/_mock/reset") => {
            state.reset();
            json_response(StatusCode::OK, &json!({"reset": true}))
        }
        (&Method::GET, "/_mock/requests") => {
            let requests = serde_json::to_value(state.requests()).unwrap_or(Value::Null);
            json_response(StatusCode::OK, &requests)
        }
        (&Method::GET, "/_mock/health") => json_response(
            StatusCode::OK,
            &json!({"status": "ok", "name": state.config().name}),
        ),
        (m, p) => error_response(Format::OpenAi, &openai::unknown_route(m.as_str(), p)),
    }
}
