//! The Anthropic Messages wire format: `POST /v1/messages` (whole and streamed, text and
//! `tool_use`), `POST /v1/messages/count_tokens`, the models list, and the
//! `{"type": "error", "error": {...}}` shape. Pure functions from request bytes to a [`Reply`].

use serde::Deserialize;
use serde_json::{Value, json};

use crate::fault::Fault;
use crate::openai::Ctx;
use crate::reply::{ApiError, Reply, SseEvent};
use crate::text;
use crate::tool::{self, Call, Choice, Tool};

/// The `anthropic-version` header value the real API documents.
pub const VERSION: &str = "2023-06-01";

/// The Anthropic rendering of an error.
pub fn error_body(e: &ApiError) -> Value {
    json!({
        "type": "error",
        "error": {"type": e.error_type, "message": e.message},
    })
}

/// The error a `status`, `rate_limit` or `stream_error` fault answers with, in Anthropic's
/// words (a `stream_error` without a status is 529 `overloaded_error`).
pub fn fault_error(fault: &Fault) -> Option<ApiError> {
    let parts = fault.error_parts(529)?;
    let (stock_message, stock_type) = if parts.rate_limit {
        (
            "Number of requests has exceeded your per-minute rate limit (mock).",
            "rate_limit_error",
        )
    } else {
        stock_error(parts.status)
    };
    Some(ApiError {
        status: parts.status,
        message: parts.message.unwrap_or_else(|| stock_message.to_owned()),
        error_type: parts.error_type.unwrap_or_else(|| stock_type.to_owned()),
        param: None,
        code: parts.code,
        retry_after: parts.retry_after,
    })
}

/// Message and type Anthropic uses for a status.
pub fn stock_error(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("Bad request (mock).", "invalid_request_error"),
        401 => ("invalid x-api-key (mock)", "authentication_error"),
        402 => ("Your credit balance is too low (mock).", "billing_error"),
        403 => (
            "Your API key does not have permission to use the specified resource (mock).",
            "permission_error",
        ),
        404 => ("Not found (mock).", "not_found_error"),
        409 => ("Conflict (mock).", "conflict_error"),
        413 => (
            "Request exceeds the maximum allowed size (mock).",
            "request_too_large",
        ),
        429 => ("Rate limited (mock).", "rate_limit_error"),
        504 => ("Request timed out (mock).", "timeout_error"),
        529 => ("Overloaded", "overloaded_error"),
        s if s >= 500 => ("Internal server error (mock).", "api_error"),
        _ => ("Request failed (mock).", "invalid_request_error"),
    }
}

/// The error when `x-api-key` (or `authorization`) or `anthropic-version` is missing.
pub fn auth_error(has_key: bool, has_version: bool) -> Option<ApiError> {
    if !has_key {
        return Some(ApiError {
            status: 401,
            error_type: "authentication_error".to_owned(),
            ..ApiError::invalid_request("x-api-key header is required")
        });
    }
    (!has_version).then(|| ApiError::invalid_request("anthropic-version: header is required"))
}

/// The 404 for an unknown route.
pub fn unknown_route(method: &str, path: &str) -> ApiError {
    ApiError {
        status: 404,
        error_type: "not_found_error".to_owned(),
        ..ApiError::invalid_request(format!("Not Found ({method} {path})"))
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::invalid_request(format!("invalid request body: {e}"))
        } else {
            ApiError::invalid_request(format!("There was an issue with your request body: {e}"))
        }
    })
}

#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    max_tokens: u32,
    messages: Vec<Message>,
    #[serde(default)]
    system: Value,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    tools: Vec<ToolDef>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    #[serde(default)]
    thinking: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct CountRequest {
    #[allow(dead_code, reason = "required like the real API, but unused")]
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    system: Value,
    #[serde(default)]
    tools: Vec<ToolDef>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct Message {
    role: String,
    content: Value,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct ToolDef {
    name: String,
    #[serde(default)]
    input_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_control: Option<Value>,
}

/// Characters of one content block: text, tool input, tool result content.
fn block_chars(block: &Value) -> usize {
    match block {
        Value::String(s) => s.chars().count(),
        Value::Object(_) => match block.get("type").and_then(Value::as_str) {
            Some("text") => block
                .get("text")
                .and_then(Value::as_str)
                .map_or(0, |s| s.chars().count()),
            Some("tool_use") => block
                .get("input")
                .map_or(0, |i| i.to_string().chars().count()),
            Some("tool_result") => match block.get("content") {
                Some(Value::Array(parts)) => parts.iter().map(block_chars).sum(),
                Some(content) => block_chars(content),
                None => 0,
            },
            _ => 0,
        },
        _ => 0,
    }
}

/// Every block in prompt order (tools, system, messages) as (characters, cache breakpoint).
fn prompt_blocks(system: &Value, tools: &[ToolDef], messages: &[Message]) -> Vec<(usize, bool)> {
    let marked = |b: &Value| b.get("cache_control").is_some_and(|c| !c.is_null());
    let mut out = Vec::new();
    for t in tools {
        let chars = t.name.chars().count() + t.input_schema.to_string().chars().count();
        out.push((chars, t.cache_control.is_some()));
    }
    let mut content = |c: &Value| match c {
        Value::Array(blocks) => out.extend(blocks.iter().map(|b| (block_chars(b), marked(b)))),
        other => out.push((block_chars(other), false)),
    };
    if !system.is_null() {
        content(system);
    }
    for m in messages {
        content(&m.content);
    }
    out
}

/// Input token counts: (uncached input, cache creation, cache read). Blocks up to the first
/// `cache_control` breakpoint count as read from the cache; blocks after it up to the last
/// breakpoint as written to it; the rest as plain input. Without breakpoints all is input.
fn input_usage(blocks: &[(usize, bool)]) -> (u32, u32, u32) {
    let first = blocks.iter().position(|(_, m)| *m);
    let last = blocks.iter().rposition(|(_, m)| *m);
    let sum = |range: &[(usize, bool)]| text::estimate_tokens(range.iter().map(|(c, _)| c).sum());
    match (first, last) {
        (Some(first), Some(last)) => (
            sum(&blocks[last + 1..]),
            sum(&blocks[first + 1..=last]),
            sum(&blocks[..=first]),
        ),
        _ => (sum(blocks), 0, 0),
    }
}

fn choice(value: Option<&Value>) -> Choice {
    let Some(value) = value else {
        return Choice::Auto;
    };
    match value.get("type").and_then(Value::as_str) {
        Some("none") => Choice::None,
        Some("any") => Choice::Any,
        Some("tool") => Choice::Named(
            value
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
        _ => Choice::Auto,
    }
}

/// The first message whose role the API refuses: roles are `user` and `assistant`, and
/// `system` (mid-conversation instructions, as Claude Code sends them) right after a user
/// turn.
fn misplaced_role(messages: &[Message]) -> Option<&Message> {
    messages.iter().enumerate().find_map(|(i, m)| {
        let after_user = i > 0 && messages[i - 1].role == "user";
        match m.role.as_str() {
            "user" | "assistant" => None,
            "system" if after_user => None,
            _ => Some(m),
        }
    })
}

/// Whether the last turn (mid-conversation system messages aside) is the user handing back
/// tool results.
fn answering_tool_result(messages: &[Message]) -> bool {
    messages
        .iter()
        .rev()
        .find(|m| m.role != "system")
        .is_some_and(|m| {
            m.role == "user"
                && m.content.as_array().is_some_and(|blocks| {
                    blocks
                        .iter()
                        .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                })
        })
}

/// `POST /v1/messages/count_tokens`.
pub fn count_tokens(body: &[u8]) -> Reply {
    let req: CountRequest = match parse(body) {
        Ok(r) => r,
        Err(e) => return Reply::Error(e),
    };
    let (input, creation, read) =
        input_usage(&prompt_blocks(&req.system, &req.tools, &req.messages));
    Reply::Json {
        body: json!({"input_tokens": input + creation + read}),
        tokens: 0,
    }
}

/// `POST /v1/messages`.
pub fn messages(body: &[u8], ctx: &Ctx<'_>) -> Reply {
    let req: MessagesRequest = match parse(body) {
        Ok(r) => r,
        Err(e) => return Reply::Error(e),
    };
    if req.messages.is_empty() {
        return Reply::Error(ApiError::invalid_request(
            "messages: at least one message is required",
        ));
    }
    if let Some(bad) = misplaced_role(&req.messages) {
        return Reply::Error(ApiError::invalid_request(format!(
            "messages: Unexpected role \"{}\". Allowed roles are \"user\" or \"assistant\", \
             and \"system\" right after a user turn.",
            bad.role
        )));
    }
    let (input, creation, read) =
        input_usage(&prompt_blocks(&req.system, &req.tools, &req.messages));
    let transcript = serde_json::to_string(&(&req.system, &req.messages)).unwrap_or_default();
    let seed = text::derive_seed(ctx.seed, &["messages", &req.model, &transcript]);
    let tools: Vec<Tool> = req
        .tools
        .iter()
        .map(|t| Tool {
            name: t.name.clone(),
            schema: t.input_schema.clone(),
        })
        .collect();
    let call = tool::decide(
        &tools,
        &choice(req.tool_choice.as_ref()),
        answering_tool_result(&req.messages),
        ctx.forced_tool.as_ref(),
        seed,
    );
    let id_seed = |what: &str| text::derive_seed(ctx.seed, &[what, &ctx.request_id.to_string()]);
    let id = format!("msg_01{}", text::alphanumeric(id_seed("msg-id"), 22));
    let answer = match call {
        Some(call) => Answer::Tool {
            calls: tool::parallel(call, &tools, ctx.forced_tool.as_ref(), seed)
                .into_iter()
                .enumerate()
                .map(|(i, call)| {
                    let what = if i == 0 {
                        "toolu-id".to_owned()
                    } else {
                        format!("toolu-id-{i}")
                    };
                    let id = format!("toolu_01{}", text::alphanumeric(id_seed(&what), 22));
                    (id, call)
                })
                .collect(),
        },
        None => {
            let (n, stop) = if req.max_tokens < ctx.completion_tokens {
                (req.max_tokens, "max_tokens")
            } else {
                (ctx.completion_tokens, "end_turn")
            };
            let tokens = text::completion(seed, n, stop == "end_turn");
            match text::cut_at_stop(&tokens, &req.stop_sequences) {
                Some((tokens, hit)) => Answer::Text {
                    tokens,
                    stop: "stop_sequence",
                    stop_sequence: Some(hit),
                },
                None => Answer::Text {
                    tokens,
                    stop,
                    stop_sequence: None,
                },
            }
        }
    };
    let thinking = req
        .thinking
        .as_ref()
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "enabled" || t == "adaptive")
        .then(|| Thinking {
            tokens: text::completion(text::derive_seed(seed, &["thinking"]), THINKING_WORDS, true),
            signature: text::alphanumeric(text::derive_seed(seed, &["signature"]), 64),
        });
    let answer = Full { thinking, answer };
    let usage = Usage {
        input,
        creation,
        read,
        output: answer.output_tokens(),
    };
    if req.stream {
        Reply::Stream(stream_events(&id, &req.model, &answer, &usage))
    } else {
        Reply::Json {
            body: json!({
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": req.model,
                "content": answer.blocks(true).into_iter().map(|(b, _)| b).collect::<Vec<_>>(),
                "stop_reason": answer.stop_reason(),
                "stop_sequence": answer.stop_sequence(),
                "usage": usage.json(usage.output),
            }),
            tokens: usage.output,
        }
    }
}

/// `POST /v1/messages` under a `refusal` fault: `stop_reason: "refusal"` and no content
/// (streamed: `message_start`, `ping`, `message_delta`, `message_stop`).
pub fn refusal(body: &[u8], ctx: &Ctx<'_>) -> Reply {
    let req: MessagesRequest = match parse(body) {
        Ok(r) => r,
        Err(e) => return Reply::Error(e),
    };
    let (input, creation, read) =
        input_usage(&prompt_blocks(&req.system, &req.tools, &req.messages));
    let usage = Usage {
        input,
        creation,
        read,
        output: 0,
    };
    let id = format!(
        "msg_01{}",
        text::alphanumeric(
            text::derive_seed(ctx.seed, &["msg-id", &ctx.request_id.to_string()]),
            22
        )
    );
    if !req.stream {
        return Reply::Json {
            body: json!({
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": req.model,
                "content": [],
                "stop_reason": "refusal",
                "stop_sequence": null,
                "usage": usage.json(0),
            }),
            tokens: 0,
        };
    }
    Reply::Stream(vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": req.model,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage.json(0),
            }}),
            false,
        ),
        event("ping", &json!({"type": "ping"}), false),
        event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": "refusal", "stop_sequence": null},
                "usage": {"output_tokens": 0},
            }),
            false,
        ),
        event("message_stop", &json!({"type": "message_stop"}), false),
    ])
}

/// Words of a thinking block.
const THINKING_WORDS: u32 = 8;

/// A thinking block: its words and signature.
struct Thinking {
    tokens: Vec<String>,
    signature: String,
}

/// An answer with its optional thinking block first.
struct Full {
    thinking: Option<Thinking>,
    answer: Answer,
}

impl Full {
    fn output_tokens(&self) -> u32 {
        self.answer.output_tokens() + self.thinking.as_ref().map_or(0, |_| THINKING_WORDS)
    }

    fn stop_reason(&self) -> &'static str {
        self.answer.stop_reason()
    }

    fn stop_sequence(&self) -> Value {
        self.answer.stop_sequence()
    }

    /// The thinking block (whole, or empty with `thinking_delta`s and a `signature_delta`),
    /// then the answer's blocks.
    fn blocks(&self, whole: bool) -> Vec<(Value, Vec<Value>)> {
        let mut blocks = Vec::with_capacity(3);
        if let Some(t) = &self.thinking {
            let block = if whole {
                json!({"type": "thinking", "thinking": t.tokens.concat(), "signature": t.signature})
            } else {
                json!({"type": "thinking", "thinking": "", "signature": ""})
            };
            let deltas = t
                .tokens
                .iter()
                .map(|w| json!({"type": "thinking_delta", "thinking": w}))
                .chain(std::iter::once(
                    json!({"type": "signature_delta", "signature": t.signature}),
                ))
                .collect();
            blocks.push((block, deltas));
        }
        blocks.extend(self.answer.blocks(whole));
        blocks
    }
}

/// The content of an answer after any thinking: text, or a tool call (with optional text).
enum Answer {
    Text {
        tokens: Vec<String>,
        stop: &'static str,
        stop_sequence: Option<String>,
    },
    Tool {
        /// Each call's `toolu_` id and the call; the first may carry text.
        calls: Vec<(String, Call)>,
    },
}

impl Answer {
    fn output_tokens(&self) -> u32 {
        match self {
            Self::Text { tokens, .. } => u32::try_from(tokens.len()).unwrap_or(u32::MAX),
            Self::Tool { calls } => calls.iter().map(|(_, c)| c.tokens()).sum(),
        }
    }

    fn stop_reason(&self) -> &'static str {
        match self {
            Self::Text { stop, .. } => stop,
            Self::Tool { .. } => "tool_use",
        }
    }

    /// The stop sequence hit, or `null`.
    fn stop_sequence(&self) -> Value {
        match self {
            Self::Text {
                stop_sequence: Some(s),
                ..
            } => json!(s),
            _ => Value::Null,
        }
    }

    /// The content blocks, whole, or as `content_block_start` shows them (empty text, empty
    /// input), each with the `delta`s of its `content_block_delta` events. A tool call with
    /// text has a text block before its `tool_use` block.
    fn blocks(&self, whole: bool) -> Vec<(Value, Vec<Value>)> {
        let text = |tokens: &[String]| {
            let block = json!({"type": "text", "text": if whole { tokens.concat() } else { String::new() }});
            let deltas = tokens
                .iter()
                .map(|t| json!({"type": "text_delta", "text": t}))
                .collect();
            (block, deltas)
        };
        match self {
            Self::Text { tokens, .. } => vec![text(tokens)],
            Self::Tool { calls } => {
                let said = calls
                    .first()
                    .map(|(_, c)| c.text_tokens())
                    .unwrap_or_default();
                let mut blocks = Vec::with_capacity(calls.len() + 1);
                if !said.is_empty() {
                    blocks.push(text(&said));
                }
                for (id, call) in calls {
                    let block = json!({
                        "type": "tool_use",
                        "id": id,
                        "name": call.name,
                        "input": if whole { call.arguments.clone() } else { json!({}) },
                    });
                    let deltas = std::iter::once(String::new())
                        .chain(tool::pieces(&call.arguments_json(), 3))
                        .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                        .collect();
                    blocks.push((block, deltas));
                }
                blocks
            }
        }
    }
}

struct Usage {
    input: u32,
    creation: u32,
    read: u32,
    output: u32,
}

impl Usage {
    fn json(&self, output: u32) -> Value {
        json!({
            "input_tokens": self.input,
            "cache_creation_input_tokens": self.creation,
            "cache_read_input_tokens": self.read,
            "output_tokens": output,
            "service_tier": "standard",
        })
    }
}

fn event(name: &str, data: &Value, token: bool) -> SseEvent {
    SseEvent::named(name, data.to_string(), token)
}

/// The real event sequence: `message_start`, `content_block_start`, `ping`, one
/// `content_block_delta` per token (or per piece of tool input JSON), `content_block_stop`,
/// `message_delta` (stop reason and usage), `message_stop`.
fn stream_events(id: &str, model: &str, answer: &Full, usage: &Usage) -> Vec<SseEvent> {
    let mut events = vec![event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage.json(1),
        }}),
        false,
    )];
    for (index, (block, deltas)) in answer.blocks(false).into_iter().enumerate() {
        events.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
            false,
        ));
        if index == 0 {
            events.push(event("ping", &json!({"type": "ping"}), false));
        }
        for delta in deltas {
            events.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                true,
            ));
        }
        events.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
            false,
        ));
    }
    events.push(event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": answer.stop_reason(), "stop_sequence": answer.stop_sequence()},
            "usage": {
                "input_tokens": usage.input,
                "cache_creation_input_tokens": usage.creation,
                "cache_read_input_tokens": usage.read,
                "output_tokens": usage.output,
            },
        }),
        false,
    ));
    events.push(event(
        "message_stop",
        &json!({"type": "message_stop"}),
        false,
    ));
    events
}

/// An event whose `data:` is not JSON, for the `malformed_chunk` fault.
pub fn malformed_event() -> SseEvent {
    SseEvent::named(
        "content_block_delta",
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"#,
        false,
    )
}

/// The in-stream `event: error` for a `stream_error` fault.
pub fn stream_error_event(e: &ApiError) -> SseEvent {
    event("error", &error_body(e), false)
}

fn model_object(id: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"})
}

/// `GET /v1/models` asked with `anthropic-version`.
pub fn models(ctx: &Ctx<'_>) -> Reply {
    let data: Vec<Value> = ctx.models.iter().map(|m| model_object(m)).collect();
    Reply::Json {
        body: json!({
            "data": data,
            "has_more": false,
            "first_id": ctx.models.first(),
            "last_id": ctx.models.last(),
        }),
        tokens: 0,
    }
}

/// `GET /v1/models/{id}` asked with `anthropic-version`.
pub fn model(id: &str, ctx: &Ctx<'_>) -> Reply {
    if ctx.models.iter().any(|m| m == id) {
        return Reply::Json {
            body: model_object(id),
            tokens: 0,
        };
    }
    Reply::Error(ApiError {
        status: 404,
        error_type: "not_found_error".to_owned(),
        ..ApiError::invalid_request(format!("model: {id}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_breakpoints_split_the_input() {
        let blocks = [(40, false), (40, true), (40, false), (40, true), (8, false)];
        assert_eq!(input_usage(&blocks), (2, 20, 20));
        assert_eq!(input_usage(&[(9, false)]), (3, 0, 0));
    }

    #[test]
    fn system_messages_only_after_a_user_turn() {
        let m = |role: &str, content: Value| Message {
            role: role.into(),
            content,
        };
        let result = json!([{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]);
        let ok = [
            m("user", json!("hi")),
            m("assistant", json!("calling")),
            m("user", result),
            m("system", json!("new instructions")),
        ];
        assert!(misplaced_role(&ok).is_none());
        assert!(
            answering_tool_result(&ok),
            "a trailing system message hides the result"
        );
        let first = [m("system", json!("x")), m("user", json!("hi"))];
        assert_eq!(
            misplaced_role(&first).map(|m| m.role.as_str()),
            Some("system")
        );
        let after_assistant = [
            m("user", json!("a")),
            m("assistant", json!("b")),
            m("system", json!("c")),
        ];
        assert!(misplaced_role(&after_assistant).is_some());
        assert!(misplaced_role(&[m("tool", json!("x"))]).is_some());
    }

    #[test]
    fn fault_errors_use_anthropic_types() {
        let status = |s| Fault::Status {
            status: s,
            message: None,
            error_type: None,
            code: None,
            retry_after: None,
        };
        for (s, t) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (529, "overloaded_error"),
        ] {
            assert_eq!(
                fault_error(&status(s)).map(|e| e.error_type),
                Some(t.into())
            );
        }
        let e = fault_error(&Fault::StreamError {
            after_chunks: 0,
            status: None,
            error_type: None,
            message: None,
        })
        .expect("an error");
        assert_eq!((e.status, e.error_type.as_str()), (529, "overloaded_error"));
    }
}
