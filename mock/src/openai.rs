//! The OpenAI wire format: chat completions (whole and streamed), embeddings, models, and
//! the `{"error": {...}}` shape. Pure functions from request bytes to a [`Reply`].

use serde::Deserialize;
use serde_json::{Value, json};

use crate::fault::Fault;
use crate::reply::{ApiError, Reply, SseEvent};
use crate::text;
use crate::tool::{self, Call, Choice, Tool};

/// What the OpenAI handlers need to know about the server and this request.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    /// The server's seed.
    pub seed: u64,
    /// A number unique to this request, for its id.
    pub request_id: u64,
    /// Unix seconds for `created`.
    pub created: u64,
    /// Completion length before the request's cap.
    pub completion_tokens: u32,
    /// Embedding length when the request names none.
    pub embedding_dimensions: usize,
    /// Models for `GET /v1/models`.
    pub models: &'a [String],
    /// The server's name, reported as the models' owner.
    pub owner: &'a str,
    /// A tool call demanded by a `tool_call` fault.
    pub forced_tool: Option<tool::Forced>,
    /// The server's prompt cache, when it reports cached input.
    pub prompt_cache: Option<&'a crate::prompt_cache::PromptCache>,
}

/// The OpenAI rendering of an error.
pub fn error_body(e: &ApiError) -> Value {
    json!({
        "error": {
            "message": e.message,
            "type": e.error_type,
            "param": e.param,
            "code": e.code,
        }
    })
}

/// The error a `status`, `rate_limit` or `stream_error` fault answers with, in OpenAI's
/// words (a `stream_error` without a status is 500 `server_error`).
pub fn fault_error(fault: &Fault) -> Option<ApiError> {
    let parts = fault.error_parts(500)?;
    let retry_after = parts.retry_after;
    let (stock_message, stock_type, stock_code) = if parts.rate_limit {
        (
            format!(
                "Rate limit reached (mock). Please try again in {}s.",
                retry_after.unwrap_or(1)
            ),
            "requests",
            Some("rate_limit_exceeded"),
        )
    } else {
        let (m, t, c) = stock_error(parts.status);
        (m.to_owned(), t, c)
    };
    Some(ApiError {
        status: parts.status,
        message: parts.message.unwrap_or(stock_message),
        error_type: parts.error_type.unwrap_or_else(|| stock_type.to_owned()),
        param: None,
        code: parts.code.or(stock_code.map(str::to_owned)),
        retry_after,
    })
}

/// The in-stream error for a `stream_error` fault: a `data:` line with the error body.
pub fn stream_error_event(e: &ApiError) -> SseEvent {
    SseEvent::data(error_body(e).to_string(), false)
}

/// Message, type and code OpenAI uses for a status.
fn stock_error(status: u16) -> (&'static str, &'static str, Option<&'static str>) {
    match status {
        400 => ("Bad request (mock).", "invalid_request_error", None),
        401 => (
            "Incorrect API key provided (mock).",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => ("Permission denied (mock).", "permission_error", None),
        404 => ("Not found (mock).", "invalid_request_error", None),
        429 => (
            "Rate limit reached (mock).",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        503 => (
            "The server is overloaded or not ready yet (mock).",
            "server_error",
            None,
        ),
        s if s >= 500 => (
            "The server had an error while processing your request (mock).",
            "server_error",
            None,
        ),
        _ => ("Request failed (mock).", "invalid_request_error", None),
    }
}

/// The 404 OpenAI gives for an unknown route.
pub fn unknown_route(method: &str, path: &str) -> ApiError {
    ApiError {
        status: 404,
        ..ApiError::invalid_request(format!("Invalid URL ({method} {path})"))
    }
}

/// Parse a JSON body, with OpenAI's messages for bad JSON and bad fields.
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::invalid_request(format!("Invalid request body: {e}"))
        } else {
            ApiError::invalid_request(
                "We could not parse the JSON body of your request. (HINT: This likely means \
                 you aren't using your HTTP library correctly. The OpenAI API expects a JSON \
                 payload, but what was sent was not valid JSON.)",
            )
        }
    })
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    tools: Vec<ToolDef>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    stop: Option<Stop>,
}

/// `stop`: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    fn list(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ToolDef {
    function: FunctionDef,
}

#[derive(Debug, Deserialize)]
struct FunctionDef {
    name: String,
    #[serde(default)]
    parameters: Value,
}

fn choice(value: Option<&Value>) -> Choice {
    match value {
        Some(Value::String(s)) if s == "none" => Choice::None,
        Some(Value::String(s)) if s == "required" => Choice::Any,
        Some(v @ Value::Object(_)) => Choice::Named(
            v.pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
        _ => Choice::Auto,
    }
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Characters of text in a message's `content`: a string, or the `text` of its parts.
fn content_chars(content: &Value) -> usize {
    match content {
        Value::String(s) => s.chars().count(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(|s| s.chars().count())
            .sum(),
        _ => 0,
    }
}

/// `POST /v1/chat/completions`.
pub fn chat_completions(body: &[u8], ctx: &Ctx<'_>) -> Reply {
    let req: ChatRequest = match parse(body) {
        Ok(r) => r,
        Err(e) => return Reply::Error(e),
    };
    if req.messages.is_empty() {
        return Reply::Error(ApiError {
            param: Some("messages".to_owned()),
            ..ApiError::invalid_request("[] is too short - 'messages'")
        });
    }
    let prompt_tokens =
        text::estimate_tokens(req.messages.iter().map(|m| content_chars(&m.content)).sum());
    let cap = req.max_completion_tokens.or(req.max_tokens);
    let (n, finish) = match cap {
        Some(cap) if cap < ctx.completion_tokens => (cap, "length"),
        _ => (ctx.completion_tokens, "stop"),
    };
    let messages = serde_json::to_string(&req.messages).unwrap_or_default();
    let seed = text::derive_seed(ctx.seed, &["chat", &req.model, &messages]);
    let tools: Vec<Tool> = req
        .tools
        .iter()
        .map(|t| Tool {
            name: t.function.name.clone(),
            schema: t.function.parameters.clone(),
        })
        .collect();
    let answering = req.messages.last().is_some_and(|m| m.role == "tool");
    let call = tool::decide(
        &tools,
        &choice(req.tool_choice.as_ref()),
        answering,
        ctx.forced_tool.as_ref(),
        seed,
    );
    let calls = call.map_or_else(Vec::new, |c| {
        tool::parallel(c, &tools, ctx.forced_tool.as_ref(), seed)
    });
    let stops = req.stop.map(Stop::list).unwrap_or_default();
    let (tokens, n, finish) = match calls.first() {
        Some(first) => (
            first.text_tokens(),
            calls.iter().map(Call::tokens).sum(),
            "tool_calls",
        ),
        None => {
            let tokens = text::completion(seed, n, finish == "stop");
            match text::cut_at_stop(&tokens, &stops) {
                Some((kept, _)) => {
                    let n = u32::try_from(kept.len()).unwrap_or(u32::MAX);
                    (kept, n, "stop")
                }
                None => (tokens, n, finish),
            }
        }
    };
    let calls: Vec<(String, Call)> = calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| {
            let mut parts = vec!["call-id".to_owned(), ctx.request_id.to_string()];
            if i > 0 {
                parts.push(i.to_string());
            }
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            let id = format!(
                "call_{}",
                text::alphanumeric(text::derive_seed(ctx.seed, &parts), 24)
            );
            (id, call)
        })
        .collect();
    let id = format!(
        "chatcmpl-{}",
        text::alphanumeric(
            text::derive_seed(ctx.seed, &["id", &ctx.request_id.to_string()]),
            29
        )
    );
    let mut usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": n,
        "total_tokens": prompt_tokens + n,
    });
    if let Some(cache) = ctx.prompt_cache {
        let each: Vec<(String, u32)> = req
            .messages
            .iter()
            .map(|m| {
                let text = format!("{}\u{1f}{}", m.role, m.content);
                (text, text::estimate_tokens(content_chars(&m.content)))
            })
            .collect();
        let cached = cache.lookup_and_store(&each).min(prompt_tokens);
        usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    let head = Head {
        id: &id,
        created: ctx.created,
        model: &req.model,
    };
    if req.stream.unwrap_or(false) {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        Reply::Stream(stream_events(
            &head,
            &tokens,
            &calls,
            finish,
            include_usage.then_some(usage),
        ))
    } else {
        let message = match calls.first() {
            Some((_, first)) => json!({
                "role": "assistant",
                "content": first.text,
                "tool_calls": calls.iter().map(|(id, call)| json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                })).collect::<Vec<_>>(),
                "refusal": null,
            }),
            None => json!({"role": "assistant", "content": tokens.concat(), "refusal": null}),
        };
        Reply::Json {
            body: json!({
                "id": id,
                "object": "chat.completion",
                "created": ctx.created,
                "model": req.model,
                "system_fingerprint": "fp_mock",
                "choices": [{
                    "index": 0,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": finish,
                }],
                "usage": usage,
            }),
            tokens: n,
        }
    }
}

/// `POST /v1/chat/completions` under a `refusal` fault: no content, `finish_reason:
/// "content_filter"` (streamed: the role chunk, the finish chunk, `[DONE]`).
pub fn refusal(body: &[u8], ctx: &Ctx<'_>) -> Reply {
    let req: ChatRequest = match parse(body) {
        Ok(r) => r,
        Err(e) => return Reply::Error(e),
    };
    let id = format!(
        "chatcmpl-{}",
        text::alphanumeric(
            text::derive_seed(ctx.seed, &["id", &ctx.request_id.to_string()]),
            29
        )
    );
    let prompt_tokens =
        text::estimate_tokens(req.messages.iter().map(|m| content_chars(&m.content)).sum());
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens});
    let head = Head {
        id: &id,
        created: ctx.created,
        model: &req.model,
    };
    if req.stream.unwrap_or(false) {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        return Reply::Stream(stream_events(
            &head,
            &[],
            &[],
            "content_filter",
            include_usage.then_some(usage),
        ));
    }
    Reply::Json {
        body: json!({
            "id": id,
            "object": "chat.completion",
            "created": ctx.created,
            "model": req.model,
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": null, "refusal": null},
                "logprobs": null,
                "finish_reason": "content_filter",
            }],
            "usage": usage,
        }),
        tokens: 0,
    }
}

/// The fields every chunk of one stream repeats.
struct Head<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
}

impl Head<'_> {
    fn chunk(&self, choices: Value, usage: Option<Value>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_mock",
            "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        chunk
    }
}

/// The SSE events of a streamed completion: role, one chunk per token, finish, optional
/// usage (with `"usage": null` on every other chunk, as OpenAI does), `[DONE]`.
fn stream_events(
    head: &Head<'_>,
    tokens: &[String],
    calls: &[(String, Call)],
    finish: &str,
    usage: Option<Value>,
) -> Vec<SseEvent> {
    let null_usage = usage.as_ref().map(|_| Value::Null);
    let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    let mut events = Vec::with_capacity(tokens.len() + 4);
    let call_start = |index: usize, id: &str, call: &Call| {
        json!([{
            "index": index,
            "id": id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }])
    };
    let role = match calls.first() {
        // Text first: the call starts after it.
        Some(_) if !tokens.is_empty() => {
            json!({"role": "assistant", "content": "", "refusal": null})
        }
        Some((id, call)) => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": call_start(0, id, call),
            "refusal": null,
        }),
        None => json!({"role": "assistant", "content": "", "refusal": null}),
    };
    events.push(SseEvent::data(
        head.chunk(choice(role, Value::Null), null_usage.clone())
            .to_string(),
        false,
    ));
    for token in tokens {
        let delta = choice(json!({"content": token}), Value::Null);
        events.push(SseEvent::data(
            head.chunk(delta, null_usage.clone()).to_string(),
            true,
        ));
    }
    for (index, (id, call)) in calls.iter().enumerate() {
        if index > 0 || !tokens.is_empty() {
            let delta = json!({ "tool_calls": call_start(index, id, call) });
            events.push(SseEvent::data(
                head.chunk(choice(delta, Value::Null), null_usage.clone())
                    .to_string(),
                false,
            ));
        }
        for piece in tool::pieces(&call.arguments_json(), 3) {
            let delta = json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
            events.push(SseEvent::data(
                head.chunk(choice(delta, Value::Null), null_usage.clone())
                    .to_string(),
                true,
            ));
        }
    }
    let last = choice(json!({}), json!(finish));
    events.push(SseEvent::data(
        head.chunk(last, null_usage).to_string(),
        false,
    ));
    if let Some(usage) = usage {
        events.push(SseEvent::data(
            head.chunk(json!([]), Some(usage)).to_string(),
            false,
        ));
    }
    events.push(SseEvent::data("[DONE]", false));
    events
}

/// A `data:` line that is not JSON, for the `malformed_chunk` fault.
pub fn malformed_event() -> SseEvent {
    SseEvent::data(
        r#"{"object":"chat.completion.chunk","choices":[{"delta":{"content":"#,
        false,
    )
}

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    model: String,
    input: EmbeddingInput,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    encoding_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// Each input as text (token arrays as their numbers) with its token count.
    fn items(&self) -> Vec<(String, u32)> {
        let tokens = |t: &[u32]| {
            let text = t.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
            (text, u32::try_from(t.len()).unwrap_or(u32::MAX))
        };
        let words = |s: &str| (s.to_owned(), text::estimate_tokens(s.chars().count()));
        match self {
            Self::One(s) => vec![words(s)],
            Self::Many(v) => v.iter().map(|s| words(s)).collect(),
            Self::Tokens(t) => vec![tokens(t)],
            Self::ManyTokens(v) => v.iter().map(|t| tokens(t)).collect(),
        }
    }
}

/// The largest `dimensions` OpenAI serves (text-embedding-3-large); it also bounds what
/// one request can make the mock allocate.
const MAX_EMBEDDING_DIMENSIONS: usize = 3072;
/// OpenAI's limit on inputs per embeddings request.
const MAX_EMBEDDING_INPUTS: usize = 2048;

/// `POST /v1/embeddings`.
pub fn embeddings(body: &[u8], ctx: &Ctx<'_>) -> Reply {
    let req: EmbeddingsRequest = match parse(body) {
        Ok(r) => r,
        Err(e) => return Reply::Error(e),
    };
    let dims = req.dimensions.unwrap_or(ctx.embedding_dimensions);
    if !(1..=MAX_EMBEDDING_DIMENSIONS).contains(&dims) {
        return Reply::Error(ApiError {
            param: Some("dimensions".to_owned()),
            ..ApiError::invalid_request(format!(
                "{dims} is not between 1 and {MAX_EMBEDDING_DIMENSIONS} - 'dimensions'"
            ))
        });
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Reply::Error(ApiError {
                param: Some("encoding_format".to_owned()),
                ..ApiError::invalid_request(format!(
                    "'{other}' is not one of ['float', 'base64'] - 'encoding_format'"
                ))
            });
        }
    };
    let items = req.input.items();
    if items.len() > MAX_EMBEDDING_INPUTS {
        return Reply::Error(ApiError {
            param: Some("input".to_owned()),
            ..ApiError::invalid_request(format!(
                "at most {MAX_EMBEDDING_INPUTS} inputs are allowed - 'input'"
            ))
        });
    }
    let prompt_tokens: u32 = items.iter().map(|(_, t)| t).sum();
    let data: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(index, (input, _))| {
            let v = text::embedding(ctx.seed, input, dims);
            let embedding = if base64 {
                json!(text::base64_f32(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Reply::Json {
        body: json!({
            "object": "list",
            "data": data,
            "model": req.model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }),
        tokens: 0,
    }
}

fn model_object(id: &str, owner: &str) -> Value {
    json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": owner})
}

/// `GET /v1/models`.
pub fn models(ctx: &Ctx<'_>) -> Reply {
    let data: Vec<Value> = ctx
        .models
        .iter()
        .map(|m| model_object(m, ctx.owner))
        .collect();
    Reply::Json {
        body: json!({"object": "list", "data": data}),
        tokens: 0,
    }
}

/// `GET /v1/models/{id}`.
pub fn model(id: &str, ctx: &Ctx<'_>) -> Reply {
    if ctx.models.iter().any(|m| m == id) {
        return Reply::Json {
            body: model_object(id, ctx.owner),
            tokens: 0,
        };
    }
    Reply::Error(ApiError {
        status: 404,
        param: Some("model".to_owned()),
        code: Some("model_not_found".to_owned()),
        ..ApiError::invalid_request(format!("The model `{id}` does not exist"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            seed: 1,
            request_id: 0,
            created: 1,
            completion_tokens: 5,
            embedding_dimensions: 4,
            models: &[],
            owner: "mock",
            forced_tool: None,
            prompt_cache: None,
        }
    }

    #[test]
    fn max_tokens_caps_and_finishes_with_length() {
        let body =
            br#"{"model":"m","messages":[{"role":"user","content":"12345678"}],"max_tokens":2}"#;
        let Reply::Json { body, tokens } = chat_completions(body, &ctx()) else {
            panic!("expected json");
        };
        assert_eq!(tokens, 2);
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        assert_eq!(body["usage"]["prompt_tokens"], 2);
        assert_eq!(body["usage"]["completion_tokens"], 2);
        assert_eq!(body["usage"]["total_tokens"], 4);
    }

    #[test]
    fn content_parts_count_their_text() {
        let parts = json!([{"type": "text", "text": "abcd"}, {"type": "image_url"}]);
        assert_eq!(content_chars(&parts), 4);
        assert_eq!(content_chars(&Value::Null), 0);
    }

    #[test]
    fn bad_json_and_bad_fields_are_400() {
        for body in [
            &b"{nope"[..],
            br#"{"model":"m"}"#,
            br#"{"model":"m","messages":[]}"#,
        ] {
            let Reply::Error(e) = chat_completions(body, &ctx()) else {
                panic!("expected an error");
            };
            assert_eq!(e.status, 400);
            assert_eq!(e.error_type, "invalid_request_error");
        }
    }

    #[test]
    fn stream_has_role_tokens_finish_usage_done() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,
            "stream_options":{"include_usage":true}}"#;
        let Reply::Stream(events) = chat_completions(body, &ctx()) else {
            panic!("expected a stream");
        };
        assert_eq!(events.len(), 1 + 5 + 1 + 1 + 1);
        assert_eq!(events.iter().filter(|e| e.token).count(), 5);
        assert_eq!(events[8].data, "[DONE]");
        let usage: Value = serde_json::from_str(&events[7].data).expect("json");
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 5);
    }

    #[test]
    fn embeddings_accept_every_input_shape() {
        for input in [
            json!("a"),
            json!(["a", "b"]),
            json!([1, 2]),
            json!([[1], [2, 3]]),
        ] {
            let body = json!({"model": "e", "input": input}).to_string();
            let Reply::Json { body, .. } = embeddings(body.as_bytes(), &ctx()) else {
                panic!("expected json for {input}");
            };
            assert_eq!(
                body["data"][0]["embedding"].as_array().map(Vec::len),
                Some(4)
            );
        }
    }

    #[test]
    fn fault_errors_have_openai_words() {
        let e = fault_error(&Fault::RateLimit {
            retry_after: 2,
            message: None,
        })
        .expect("an error");
        assert_eq!((e.status, e.retry_after), (429, Some(2)));
        assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
        assert!(fault_error(&Fault::Reset).is_none());
    }
}
