//! Anthropic Messages clients (`POST /v1/messages`) served through the OpenAI-shaped
//! router: the request becomes an OpenAI chat request, and the OpenAI answer (whole or as
//! chunks) becomes an Anthropic message or Anthropic's event stream.

use serde_json::{Map, Value, json};
use switchyard_dsl::ir::ErrorClass;

use super::sse::Parser;
use super::{Result, anthropic_error_kind, bad};

fn text_of(block: &Value) -> String {
    match block {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn image_part(block: &Value) -> Value {
    let src = &block["source"];
    let url = match src["type"].as_str() {
        Some("base64") => format!(
            "data:{};base64,{}",
            src["media_type"].as_str().unwrap_or("image/png"),
            src["data"].as_str().unwrap_or_default()
        ),
        _ => src["url"].as_str().unwrap_or_default().to_owned(),
    };
    json!({"type": "image_url", "image_url": {"url": url}})
}

/// Content block types of the Messages API. Those without an OpenAI equivalent (documents,
/// thinking, server tools) are left out of the translation, which only routes the request
/// and feeds OpenAI-shaped targets; Anthropic targets get the original body.
const BLOCK_TYPES: &[&str] = &[
    "text",
    "image",
    "tool_use",
    "tool_result",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
];

/// `text` for an error message: at most 64 bytes of it.
fn quoted(text: &str) -> String {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < text.len() { "..." } else { "" };
    format!("`{}{more}`", &text[..end])
}

/// Checks what the translation relies on: known roles, a text `system`, typed blocks.
fn validate(req: &Value, messages: &[Value]) -> Result<()> {
    match &req["system"] {
        Value::Null | Value::String(_) => {}
        Value::Array(blocks) if blocks.iter().all(|b| b["type"] == "text") => {}
        _ => {
            return Err(bad(
                "`system` must be a string or an array of `text` blocks",
            ));
        }
    }
    for (i, m) in messages.iter().enumerate() {
        match m["role"].as_str() {
            Some("user" | "assistant") => {}
            // Mid-conversation instructions (Claude Code sends its environment this way):
            // text only, as the top-level `system`.
            Some("system") => {
                let text_only = match &m["content"] {
                    Value::String(_) => true,
                    Value::Array(blocks) => blocks.iter().all(|b| b["type"] == "text"),
                    _ => false,
                };
                if !text_only {
                    return Err(bad(format!(
                        "`messages.{i}.content` of a `system` message must be a string or \
                         an array of `text` blocks"
                    )));
                }
                continue;
            }
            Some(other) => {
                return Err(bad(format!(
                    "`messages.{i}.role` must be `user`, `assistant` or `system`, not {}",
                    quoted(other)
                )));
            }
            None => return Err(bad(format!("`messages.{i}.role` is required"))),
        }
        let Some(blocks) = m["content"].as_array() else {
            continue;
        };
        for (j, b) in blocks.iter().enumerate() {
            match b["type"].as_str() {
                Some(t) if BLOCK_TYPES.contains(&t) => {}
                Some(t) => {
                    return Err(bad(format!(
                        "`messages.{i}.content.{j}.type` {} is not a content block type \
                         of the Messages API",
                        quoted(t)
                    )));
                }
                None => {
                    return Err(bad(format!("`messages.{i}.content.{j}.type` is required")));
                }
            }
        }
    }
    Ok(())
}

/// The OpenAI chat request for an Anthropic Messages request.
pub fn request(req: &Value) -> Result<Value> {
    let model = req["model"]
        .as_str()
        .ok_or_else(|| bad("you must provide a model parameter"))?;
    let messages = req["messages"]
        .as_array()
        .ok_or_else(|| bad("`messages` must be an array"))?;
    validate(req, messages)?;
    let mut out = Vec::new();
    let system = text_of(&req["system"]);
    if !system.is_empty() {
        out.push(json!({"role": "system", "content": system}));
    }
    for m in messages {
        let role = m["role"].as_str().unwrap_or("user");
        if role == "system" {
            // Stays where it is: OpenAI takes system messages anywhere in the list.
            let text = text_of(&m["content"]);
            if !text.is_empty() {
                out.push(json!({"role": "system", "content": text}));
            }
            continue;
        }
        let blocks = match &m["content"] {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(a) => a.clone(),
            _ => {
                return Err(bad(
                    "message content must be a string or an array of blocks",
                ));
            }
        };
        let mut parts = Vec::new();
        let mut calls = Vec::new();
        for b in &blocks {
            match b["type"].as_str() {
                Some("text") => parts.push(json!({"type": "text", "text": b["text"]})),
                Some("image") => parts.push(image_part(b)),
                Some("tool_use") => calls.push(json!({
                    "id": b["id"],
                    "type": "function",
                    "function": {"name": b["name"], "arguments": b["input"].to_string()},
                })),
                Some("tool_result") => out.push(json!({
                    "role": "tool",
                    "tool_call_id": b["tool_use_id"],
                    "content": text_of(&b["content"]),
                })),
                _ => {}
            }
        }
        if role == "assistant" {
            let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
            let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                msg["tool_calls"] = Value::Array(calls);
            }
            out.push(msg);
        } else if !parts.is_empty() {
            let only_text = parts.iter().all(|p| p["type"] == "text");
            let content = if only_text {
                json!(
                    parts
                        .iter()
                        .filter_map(|p| p["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            } else {
                Value::Array(parts)
            };
            out.push(json!({"role": "user", "content": content}));
        }
    }
    let mut o = Map::new();
    o.insert("model".into(), json!(model));
    o.insert("messages".into(), Value::Array(out));
    if let Some(n) = req["max_tokens"].as_u64() {
        o.insert("max_tokens".into(), json!(n));
    }
    for k in ["temperature", "top_p"] {
        if req[k].is_number() {
            o.insert(k.into(), req[k].clone());
        }
    }
    if let Some(stop) = req["stop_sequences"].as_array().filter(|a| !a.is_empty()) {
        o.insert("stop".into(), Value::Array(stop.clone()));
    }
    if req["stream"].as_bool() == Some(true) {
        o.insert("stream".into(), Value::Bool(true));
        o.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = req["tools"].as_array() {
        let tools: Vec<Value> = tools
            .iter()
            .filter(|t| t["name"].is_string())
            .map(|t| {
                let mut f = json!({"name": t["name"], "parameters": t["input_schema"]});
                if t["description"].is_string() {
                    f["description"] = t["description"].clone();
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        if !tools.is_empty() {
            o.insert("tools".into(), Value::Array(tools));
        }
    }
    let tc = &req["tool_choice"];
    match tc["type"].as_str() {
        Some("auto") => {
            o.insert("tool_choice".into(), json!("auto"));
        }
        Some("any") => {
            o.insert("tool_choice".into(), json!("required"));
        }
        Some("none") => {
            o.insert("tool_choice".into(), json!("none"));
        }
        Some("tool") => {
            o.insert(
                "tool_choice".into(),
                json!({"type": "function", "function": {"name": tc["name"]}}),
            );
        }
        _ => {}
    }
    if tc["disable_parallel_tool_use"].as_bool() == Some(true) {
        o.insert("parallel_tool_calls".into(), Value::Bool(false));
    }
    if let Some(u) = req["metadata"]["user_id"].as_str() {
        o.insert("user".into(), json!(u));
    }
    Ok(Value::Object(o))
}

/// Anthropic's `stop_reason` for OpenAI's `finish_reason`.
pub fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic usage for OpenAI usage; `cache_creation_input_tokens` is the extension the
/// Anthropic adapter writes (see `TokenUsage::openai`).
fn usage(u: &Value) -> Value {
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    let created = u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
    let prompt = u["prompt_tokens"].as_u64().unwrap_or(0);
    json!({
        "input_tokens": prompt.saturating_sub(cached + created),
        "output_tokens": u["completion_tokens"].as_u64().unwrap_or(0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": created,
    })
}

fn message_id(id: &Value) -> String {
    let id = id.as_str().unwrap_or("gateway");
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// The Anthropic message for an OpenAI `chat.completion`.
pub fn response(resp: &Value, model: &str) -> Value {
    let choice = &resp["choices"][0];
    let msg = &choice["message"];
    let mut content = Vec::new();
    if let Some(t) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        content.push(json!({
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": super::parse_arguments(&call["function"]["arguments"]),
        }));
    }
    json!({
        "id": message_id(&resp["id"]),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": usage(&resp["usage"]),
    })
}

/// The Anthropic error body for a class.
pub fn error_body(class: ErrorClass, message: &str) -> Value {
    json!({"type": "error", "error": {"type": anthropic_error_kind(class), "message": message}})
}

/// An OpenAI error body (`{"error":{...}}`) rewritten in Anthropic's shape.
pub fn error_from_openai(status: u16, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let class = super::classify::openai(status, body);
    let msg = super::error_message(&v).unwrap_or("upstream error");
    error_body(class, msg)
}

fn push_event(out: &mut Vec<u8>, name: &str, v: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut *out, v);
    out.extend_from_slice(b"\n\n");
}

/// What content block is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text,
    Tool(u64),
}

/// OpenAI chunks → Anthropic events, as they arrive.
#[derive(Debug)]
pub struct Stream {
    model: String,
    parser: Parser,
    started: bool,
    open: Open,
    block: u64,
    finish: Option<String>,
    usage: Value,
    pub ended: bool,
}

impl Stream {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            parser: Parser::default(),
            started: false,
            open: Open::None,
            block: 0,
            finish: None,
            usage: json!({"input_tokens": 0, "output_tokens": 0}),
            ended: false,
        }
    }

    fn start(&mut self, id: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        push_event(
            out,
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": message_id(id), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        );
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open != Open::None {
            push_event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": self.block}),
            );
            self.block += 1;
            self.open = Open::None;
        }
    }

    /// Translates OpenAI SSE bytes; returns the Anthropic events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for ev in self.parser.push(bytes) {
            if self.ended {
                break;
            }
            if ev.data == "[DONE]" {
                self.end(&mut out);
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            if v["error"].is_object() {
                let msg = super::error_message(&v).unwrap_or("upstream error");
                let class = super::classify::openai(500, ev.data.as_bytes());
                push_event(&mut out, "error", &error_body(class, msg));
                self.ended = true;
                continue;
            }
            self.start(&v["id"], &mut out);
            if v["usage"].is_object() {
                self.usage = usage(&v["usage"]);
            }
            let choice = &v["choices"][0];
            let d = &choice["delta"];
            if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
                if self.open != Open::Text {
                    self.close(&mut out);
                    self.open = Open::Text;
                    push_event(
                        &mut out,
                        "content_block_start",
                        &json!({"type": "content_block_start", "index": self.block, "content_block": {"type": "text", "text": ""}}),
                    );
                }
                push_event(
                    &mut out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": self.block, "delta": {"type": "text_delta", "text": t}}),
                );
            }
            for call in d["tool_calls"].as_array().into_iter().flatten() {
                let idx = call["index"].as_u64().unwrap_or(0);
                if self.open != Open::Tool(idx) {
                    self.close(&mut out);
                    self.open = Open::Tool(idx);
                    push_event(
                        &mut out,
                        "content_block_start",
                        &json!({"type": "content_block_start", "index": self.block, "content_block": {
                            "type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {},
                        }}),
                    );
                }
                if let Some(a) = call["function"]["arguments"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                {
                    push_event(
                        &mut out,
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": self.block, "delta": {"type": "input_json_delta", "partial_json": a}}),
                    );
                }
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                self.finish = Some(f.to_owned());
            }
        }
        out
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.start(&Value::Null, out);
        self.close(out);
        let reason = stop_reason(self.finish.as_deref().unwrap_or("stop"));
        push_event(
            out,
            "message_delta",
            &json!({"type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": null}, "usage": self.usage}),
        );
        push_event(out, "message_stop", &json!({"type": "message_stop"}));
        self.ended = true;
    }

    /// The terminal `error` event for a stream that broke off.
    pub fn error_event(message: &str) -> Vec<u8> {
        let mut out = Vec::new();
        push_event(
            &mut out,
            "error",
            &error_body(ErrorClass::ServerError, message),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claude Code sends its environment as a `system` message after the first user turn,
    /// with `cache_control` on the block.
    #[test]
    fn mid_conversation_system_messages_keep_their_place() {
        let req = json!({
            "model": "m",
            "max_tokens": 5,
            "system": [{"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
                {"role": "system", "content": [
                    {"type": "text", "text": "# Environment", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "cwd: /tmp"}
                ]},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Again"},
                {"role": "system", "content": "Be brief."}
            ]
        });
        let out = request(&req).expect("translates");
        let roles: Vec<&str> = out["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["role"].as_str())
            .collect();
        assert_eq!(
            roles,
            ["system", "user", "system", "assistant", "user", "system"]
        );
        assert_eq!(out["messages"][0]["content"], "You are an agent.");
        assert_eq!(out["messages"][2]["content"], "# Environment\ncwd: /tmp");
        assert_eq!(out["messages"][5]["content"], "Be brief.");
    }

    #[test]
    fn system_messages_carry_text_only() {
        let req = json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}
            ]
        });
        let err = request(&req).expect_err("refused").to_string();
        assert!(
            err.contains("`messages.1.content` of a `system` message"),
            "{err}"
        );
    }
}
