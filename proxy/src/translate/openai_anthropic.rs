//! OpenAI chat completions → Anthropic Messages: the request, the answer, and the event
//! stream translated on the fly into `chat.completion.chunk` events.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::sse::{Event, Parser};
use super::{
    ClientOptions, Result, TokenUsage, bad, chunk, content_text, data_url, parse_arguments,
    push_data, push_done, stop_list, usage_chunk,
};

/// `max_tokens` when neither the client nor the catalogue sets one (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Anthropic content blocks for OpenAI user content (a string or parts).
fn user_blocks(content: &Value) -> Result<Vec<Value>> {
    match content {
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts.iter().map(user_part).collect(),
        Value::Null => Ok(vec![]),
        _ => Err(bad("message content must be a string or an array of parts")),
    }
}

fn user_part(part: &Value) -> Result<Value> {
    match part["type"].as_str() {
        Some("text") => Ok(json!({"type": "text", "text": part["text"]})),
        Some("image_url") => {
            let url = part["image_url"]["url"]
                .as_str()
                .or_else(|| part["image_url"].as_str())
                .ok_or_else(|| bad("an image_url part has no url"))?;
            let source = match data_url(url) {
                Some((media, data)) => {
                    json!({"type": "base64", "media_type": media, "data": data})
                }
                None => json!({"type": "url", "url": url}),
            };
            Ok(json!({"type": "image", "source": source}))
        }
        other => Err(bad(format!(
            "content part type `{}` is not supported by Anthropic",
            other.unwrap_or("?")
        ))),
    }
}

/// Appends a message, merging it into the previous one when the role repeats (Anthropic
/// wants user and assistant turns to alternate).
fn push_message(out: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = out.last_mut()
        && last["role"] == role
        && let Some(c) = last["content"].as_array_mut()
    {
        c.extend(blocks);
        return;
    }
    out.push(json!({"role": role, "content": blocks}));
}

fn tool_choice(choice: &Value, parallel: Option<bool>) -> Option<Value> {
    let mut tc = match choice {
        Value::String(s) if s == "auto" => json!({"type": "auto"}),
        Value::String(s) if s == "none" => json!({"type": "none"}),
        Value::String(s) if s == "required" => json!({"type": "any"}),
        Value::Object(_) => match choice["function"]["name"].as_str() {
            Some(name) => json!({"type": "tool", "name": name}),
            None => return None,
        },
        _ if parallel == Some(false) => json!({"type": "auto"}),
        _ => return None,
    };
    if parallel == Some(false) && tc["type"] != "none" {
        tc["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Some(tc)
}

/// The Anthropic Messages request for an OpenAI chat request, calling the model `model`;
/// `max_tokens` is `default_max_tokens` when the client sets none (Anthropic requires it).
pub fn request(req: &Value, model: &str, default_max_tokens: u64) -> Result<Value> {
    let messages = req["messages"]
        .as_array()
        .ok_or_else(|| bad("`messages` must be an array"))?;
    let mut system: Vec<Value> = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    for m in messages {
        match m["role"].as_str() {
            Some("system" | "developer") => {
                let text = content_text(&m["content"]);
                system.push(json!({"type": "text", "text": text}));
            }
            Some("user") => push_message(&mut out, "user", user_blocks(&m["content"])?),
            Some("assistant") => {
                let mut blocks = Vec::new();
                let text = content_text(&m["content"]);
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "input": parse_arguments(&call["function"]["arguments"]),
                    }));
                }
                push_message(&mut out, "assistant", blocks);
            }
            Some("tool" | "function") => {
                let id = m["tool_call_id"].clone();
                let content = match &m["content"] {
                    Value::String(s) => json!(s),
                    c => json!(content_text(c)),
                };
                let block = json!({"type": "tool_result", "tool_use_id": id, "content": content});
                push_message(&mut out, "user", vec![block]);
            }
            other => {
                return Err(bad(format!(
                    "message role `{}` is not supported",
                    other.unwrap_or("?")
                )));
            }
        }
    }
    let max_tokens = req["max_completion_tokens"]
        .as_u64()
        .or_else(|| req["max_tokens"].as_u64())
        .unwrap_or(default_max_tokens);
    let mut a = Map::new();
    a.insert("model".into(), json!(model));
    if !system.is_empty() {
        a.insert("system".into(), Value::Array(system));
    }
    a.insert("messages".into(), Value::Array(out));
    a.insert("max_tokens".into(), json!(max_tokens));
    for (from, to) in [("temperature", "temperature"), ("top_p", "top_p")] {
        if req[from].is_number() {
            a.insert(to.into(), req[from].clone());
        }
    }
    if let Some(stop) = stop_list(&req["stop"]) {
        a.insert("stop_sequences".into(), Value::Array(stop));
    }
    if req["stream"].as_bool() == Some(true) {
        a.insert("stream".into(), Value::Bool(true));
    }
    if let Some(tools) = req["tools"].as_array() {
        let tools: Vec<Value> = tools
            .iter()
            .filter(|t| t["type"] == "function")
            .map(|t| {
                let f = &t["function"];
                let mut tool = json!({
                    "name": f["name"],
                    "input_schema": if f["parameters"].is_object() {
                        f["parameters"].clone()
                    } else {
                        json!({"type": "object", "properties": {}})
                    },
                });
                if let Some(d) = f["description"].as_str() {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        if !tools.is_empty() {
            a.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(tc) = tool_choice(&req["tool_choice"], req["parallel_tool_calls"].as_bool()) {
        a.insert("tool_choice".into(), tc);
    }
    if let Some(user) = req["user"].as_str() {
        a.insert("metadata".into(), json!({"user_id": user}));
    }
    Ok(Value::Object(a))
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn usage(u: &Value) -> TokenUsage {
    TokenUsage {
        input: u["input_tokens"].as_u64().unwrap_or(0),
        output: u["output_tokens"].as_u64().unwrap_or(0),
        cache_read: u["cache_read_input_tokens"].as_u64().unwrap_or(0),
        cache_creation: u["cache_creation_input_tokens"].as_u64().unwrap_or(0),
    }
}

/// The OpenAI `chat.completion` for an Anthropic message.
pub fn response(msg: &Value, opts: &ClientOptions) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in msg["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("thinking") => reasoning.push_str(block["thinking"].as_str().unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": block["id"],
                "type": "function",
                "function": {
                    "name": block["name"],
                    "arguments": block["input"].to_string(),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    // Extended thinking, in the field DeepSeek and others use for reasoning.
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    let finish = finish_reason(msg["stop_reason"].as_str().unwrap_or("end_turn"));
    json!({
        "id": msg["id"],
        "object": "chat.completion",
        "created": opts.created,
        "model": opts.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage(&msg["usage"]).openai(),
    })
}

/// A `content_block_delta` with a `text_delta`, borrowed where it has no escapes.
#[derive(Debug, Deserialize)]
struct TextDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    delta: TextDeltaInner<'a>,
}

#[derive(Debug, Deserialize)]
struct TextDeltaInner<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// `],"created":..,"id":..,"model":..,"object":"chat.completion.chunk"}`: what follows
/// the choices of every chunk, in the key order `serde_json` writes.
fn chunk_suffix(id: &str, opts: &ClientOptions) -> Vec<u8> {
    let mut v = Vec::with_capacity(96 + id.len() + opts.model.len());
    v.extend_from_slice(format!("],\"created\":{},\"id\":", opts.created).as_bytes());
    let _ = serde_json::to_writer(&mut v, id);
    v.extend_from_slice(b",\"model\":");
    let _ = serde_json::to_writer(&mut v, &opts.model);
    v.extend_from_slice(b",\"object\":\"chat.completion.chunk\"}");
    v
}

/// Anthropic's event stream → OpenAI chunks, as the bytes arrive.
#[derive(Debug)]
pub struct Stream {
    opts: ClientOptions,
    parser: Parser,
    id: String,
    usage: TokenUsage,
    /// Tool-call index of each content block that is a `tool_use`.
    tool_index: Vec<(u64, usize)>,
    tools: usize,
    finish: Option<&'static str>,
    /// The role chunk waits for the first token, so that a stall after `message_start`
    /// still counts as "before the first token" (and can fail over).
    role_pending: bool,
    /// The end of every chunk after its choices (see [`Stream::text_delta`]).
    suffix: Vec<u8>,
    /// `[DONE]` written, or an error event.
    pub ended: bool,
    pub failed: bool,
}

impl Stream {
    pub fn new(opts: ClientOptions) -> Self {
        Self {
            opts,
            parser: Parser::default(),
            id: String::new(),
            usage: TokenUsage::default(),
            tool_index: Vec::new(),
            tools: 0,
            finish: None,
            role_pending: false,
            suffix: chunk_suffix("", &ClientOptions::default()),
            ended: false,
            failed: false,
        }
    }

    /// Usage seen so far.
    pub fn usage(&self) -> TokenUsage {
        self.usage
    }

    /// Translates `bytes`; returns the OpenAI SSE bytes they completed (maybe none).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for ev in self.parser.push(bytes) {
            let before = out.len();
            self.event(&ev, &mut out);
            if self.role_pending && out.len() > before && !self.failed {
                self.role_pending = false;
                let mut role = Vec::new();
                let delta = json!({"role": "assistant", "content": ""});
                push_data(&mut role, &chunk(&self.id, &self.opts, delta, None));
                out.splice(before..before, role);
            }
        }
        out
    }

    /// The hot path, most events of a stream: a `text_delta` written as its chunk without
    /// building JSON values (byte for byte what [`chunk`] writes; the goldens check it).
    fn text_delta(&mut self, ev: &Event, out: &mut Vec<u8>) -> bool {
        let Ok(d) = serde_json::from_str::<TextDelta<'_>>(&ev.data) else {
            return false;
        };
        if d.kind != "content_block_delta" || d.delta.kind != "text_delta" {
            return false;
        }
        out.extend_from_slice(b"data: {\"choices\":[{\"delta\":{\"content\":");
        let _ = serde_json::to_writer(&mut *out, d.delta.text.as_ref());
        out.extend_from_slice(b"},\"finish_reason\":null,\"index\":0,\"logprobs\":null}");
        out.extend_from_slice(&self.suffix);
        out.extend_from_slice(b"\n\n");
        true
    }

    fn event(&mut self, ev: &Event, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if self.text_delta(ev, out) {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            // Passed on as is: the relay's checker turns it into a stream error.
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(ev.data.as_bytes());
            out.extend_from_slice(b"\n\n");
            return;
        };
        let kind = v["type"].as_str().or(ev.event.as_deref()).unwrap_or("");
        match kind {
            "message_start" => {
                let m = &v["message"];
                self.id = m["id"].as_str().unwrap_or_default().to_owned();
                self.suffix = chunk_suffix(&self.id, &self.opts);
                let u = usage(&m["usage"]);
                self.usage = u;
                self.role_pending = true;
            }
            "content_block_start" => {
                let block = &v["content_block"];
                if block["type"] == "tool_use" {
                    let index = self.tools;
                    self.tools += 1;
                    self.tool_index
                        .push((v["index"].as_u64().unwrap_or(0), index));
                    let delta = json!({"tool_calls": [{
                        "index": index,
                        "id": block["id"],
                        "type": "function",
                        "function": {"name": block["name"], "arguments": ""},
                    }]});
                    push_data(out, &chunk(&self.id, &self.opts, delta, None));
                } else if block["type"] == "text"
                    && let Some(t) = block["text"].as_str().filter(|t| !t.is_empty())
                {
                    push_data(
                        out,
                        &chunk(&self.id, &self.opts, json!({"content": t}), None),
                    );
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        let delta = json!({"content": d["text"]});
                        push_data(out, &chunk(&self.id, &self.opts, delta, None));
                    }
                    Some("thinking_delta") => {
                        let delta = json!({"reasoning_content": d["thinking"]});
                        push_data(out, &chunk(&self.id, &self.opts, delta, None));
                    }
                    Some("input_json_delta") if d["partial_json"] != "" => {
                        let block = v["index"].as_u64().unwrap_or(0);
                        let index = self
                            .tool_index
                            .iter()
                            .find(|(b, _)| *b == block)
                            .map_or(0, |(_, i)| *i);
                        let delta = json!({"tool_calls": [{
                            "index": index,
                            "function": {"arguments": d["partial_json"]},
                        }]});
                        push_data(out, &chunk(&self.id, &self.opts, delta, None));
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.output = n;
                }
                let u = &v["usage"];
                if let Some(n) = u["input_tokens"].as_u64() {
                    self.usage.input = n;
                }
                if let Some(n) = u["cache_read_input_tokens"].as_u64() {
                    self.usage.cache_read = n;
                }
                if let Some(n) = u["cache_creation_input_tokens"].as_u64() {
                    self.usage.cache_creation = n;
                }
                if let Some(r) = v["delta"]["stop_reason"].as_str() {
                    let f = finish_reason(r);
                    self.finish = Some(f);
                    push_data(out, &chunk(&self.id, &self.opts, json!({}), Some(f)));
                }
            }
            "message_stop" => {
                if self.finish.is_none() {
                    push_data(out, &chunk(&self.id, &self.opts, json!({}), Some("stop")));
                }
                if self.opts.include_usage {
                    push_data(out, &usage_chunk(&self.id, &self.opts, &self.usage));
                }
                push_done(out);
                self.ended = true;
            }
            "error" => {
                let e = &v["error"];
                let class =
                    super::classify::anthropic_type(e["type"].as_str().unwrap_or(""), 0, "");
                let msg = e["message"]
                    .as_str()
                    .unwrap_or("the upstream stream failed");
                push_data(out, &super::openai_error(class, msg));
                self.ended = true;
                self.failed = true;
            }
            _ => {}
        }
    }
}
