//! Protocol translators, pure functions over JSON with no I/O: one file per protocol pair,
//! named client-side first (`openai_anthropic` turns an OpenAI chat request into an Anthropic
//! Messages request and Anthropic's answers, streamed or not, back into OpenAI's shapes).
//!
//! ```text
//!  OpenAI client ──▶ openai_anthropic::request ──▶ Anthropic ──▶ openai_anthropic::{response, Stream}
//!  OpenAI client ──▶ openai_gemini::request    ──▶ Gemini    ──▶ openai_gemini::{response, Stream}
//!  Anthropic client ──▶ anthropic_openai::request ──▶ (any route) ──▶ anthropic_openai::{response, Stream}
//!  Responses client ──▶ responses_openai::request ──▶ (any route) ──▶ responses_openai::{response, Stream}
//! ```

pub mod anthropic_openai;
pub mod classify;
pub mod openai_anthropic;
pub mod openai_gemini;
pub mod responses_openai;
pub mod sse;

use serde_json::{Map, Value, json};
use switchyard_dsl::ir::ErrorClass;

/// A request that cannot be expressed in the target protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TranslateError(pub String);

/// This module's result.
pub type Result<T, E = TranslateError> = std::result::Result<T, E>;

fn bad(msg: impl Into<String>) -> TranslateError {
    TranslateError(msg.into())
}

/// What the OpenAI client asked for that shapes the translated answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// The model name reported back to the client.
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// `created` in the answer (Unix seconds).
    pub created: u64,
}

impl ClientOptions {
    /// Reads the options from an OpenAI chat request.
    pub fn from_request(req: &Value, created: u64) -> Self {
        Self {
            model: req["model"].as_str().unwrap_or_default().to_owned(),
            stream: req["stream"].as_bool().unwrap_or(false),
            include_usage: req["stream_options"]["include_usage"]
                .as_bool()
                .unwrap_or(false),
            created,
        }
    }
}

/// Token counts in provider-neutral form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Input tokens not read from or written to a cache.
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
}

impl TokenUsage {
    /// OpenAI's `usage` object: `prompt_tokens` counts every input token, cached ones
    /// included, as OpenAI does.
    pub fn openai(&self) -> Value {
        let prompt = self.input + self.cache_read + self.cache_creation;
        let mut u = json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output,
            "total_tokens": prompt + self.output,
        });
        if self.cache_read > 0 || self.cache_creation > 0 {
            u["prompt_tokens_details"] = json!({"cached_tokens": self.cache_read});
        }
        if self.cache_creation > 0 {
            u["cache_creation_input_tokens"] = json!(self.cache_creation);
        }
        u
    }
}

/// An OpenAI `chat.completion.chunk` with one choice (or none, for the usage chunk).
fn chunk(id: &str, opts: &ClientOptions, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": opts.created,
        "model": opts.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    })
}

fn usage_chunk(id: &str, opts: &ClientOptions, usage: &TokenUsage) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": opts.created,
        "model": opts.model,
        "choices": [],
        "usage": usage.openai(),
    })
}

/// Appends `data: <json>\n\n`.
fn push_data(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"data: ");
    // Writing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
    out.extend_from_slice(b"\n\n");
}

fn push_done(out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: [DONE]\n\n");
}

/// The OpenAI `error` object for a classified provider error, so that the router's
/// classifier and the client's SDK both read it.
pub fn openai_error(class: ErrorClass, message: &str) -> Value {
    let (kind, code) = openai_error_kind(class);
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// OpenAI's `type` and `code` for a class.
pub fn openai_error_kind(class: ErrorClass) -> (&'static str, &'static str) {
    match class {
        ErrorClass::RateLimited => ("rate_limit_error", "rate_limit_exceeded"),
        ErrorClass::QuotaExhausted => ("insufficient_quota", "insufficient_quota"),
        ErrorClass::Overloaded => ("server_error", "server_overloaded"),
        ErrorClass::ContextTooLong => ("invalid_request_error", "context_length_exceeded"),
        ErrorClass::ContentPolicy => ("invalid_request_error", "content_policy_violation"),
        ErrorClass::BadRequest => ("invalid_request_error", "invalid_request"),
        ErrorClass::Auth => ("authentication_error", "invalid_api_key"),
        ErrorClass::Timeout => ("server_error", "timeout"),
        ErrorClass::ConnectFailure | ErrorClass::ServerError => ("server_error", "server_error"),
    }
}

/// Anthropic's error `type` for a class.
pub fn anthropic_error_kind(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::RateLimited | ErrorClass::QuotaExhausted => "rate_limit_error",
        ErrorClass::Overloaded => "overloaded_error",
        ErrorClass::ContextTooLong | ErrorClass::ContentPolicy | ErrorClass::BadRequest => {
            "invalid_request_error"
        }
        ErrorClass::Auth => "authentication_error",
        ErrorClass::Timeout | ErrorClass::ConnectFailure | ErrorClass::ServerError => "api_error",
    }
}

/// The message of an error body in any of the three shapes, if there is one.
pub fn error_message(body: &Value) -> Option<&str> {
    body["error"]["message"]
        .as_str()
        .or_else(|| body["message"].as_str())
}

/// Parses a JSON string argument, keeping it as a string when it is not JSON.
fn parse_arguments(args: &Value) -> Value {
    match args {
        Value::String(s) if s.trim().is_empty() => Value::Object(Map::new()),
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        Value::Null => Value::Object(Map::new()),
        other => other.clone(),
    }
}

/// The text of OpenAI message content (a string or an array of parts).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `data:` URL parts: (media type, base64 data).
fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

/// OpenAI `stop` (string or array) as a list.
fn stop_list(stop: &Value) -> Option<Vec<Value>> {
    match stop {
        Value::String(s) => Some(vec![Value::String(s.clone())]),
        Value::Array(a) if !a.is_empty() => Some(a.clone()),
        _ => None,
    }
}
