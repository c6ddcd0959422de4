//! OpenAI Responses clients (`POST /v1/responses`) served through the chat-shaped router: the
//! request's input items become an OpenAI chat request, and the chat answer (whole or as
//! chunks) becomes a Responses `response` object or the Responses event stream.
//!
//! What has no chat equivalent is not dropped in silence: built-in tools (web search, file
//! search, code interpreter, ...) and input items only the Responses API knows are reported
//! in [`ChatRequest::untranslatable`], and a target that speaks only chat refuses them.

use serde_json::{Map, Value, json};

use super::{Result, bad};

/// The chat request for a Responses request, and what could not be expressed in it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub body: Value,
    /// Why a chat-only target cannot serve it (a built-in tool, an item type), if it cannot.
    pub untranslatable: Option<String>,
}

/// `text` for an error message: at most 64 bytes of it (client input is echoed bounded).
fn cut(text: &str) -> String {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < text.len() { "..." } else { "" };
    format!("{}{more}", &text[..end])
}

/// `input` as a list of items: a string is one user message.
pub fn input_items(input: &Value) -> Result<Vec<Value>> {
    match input {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": s}],
        })]),
        Value::Array(items) => Ok(items.clone()),
        _ => Err(bad("`input` must be a string or an array of input items")),
    }
}

/// Chat text of Responses content: a string or parts with `text` (or `refusal`).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().or_else(|| p["refusal"].as_str()))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Why a content part has no chat equivalent, if it has none.
fn foreign_part(p: &Value) -> Option<String> {
    match p["type"].as_str() {
        Some("input_text" | "output_text" | "text" | "refusal") => None,
        Some("input_image") if p["image_url"].is_string() => None,
        Some("input_image") => Some("images given by `file_id`".into()),
        Some(t) => Some(format!("content parts of type `{}`", cut(t))),
        None => Some("content parts without `type`".into()),
    }
}

/// Chat content parts of a user or system message's Responses content. Parts without a chat
/// equivalent are left out here: [`untranslatable`] names them, and chat-only targets refuse
/// the request.
fn user_content(content: &Value, at: &str) -> Result<Value> {
    let parts = match content {
        Value::String(s) => return Ok(Value::String(s.clone())),
        Value::Array(parts) => parts,
        _ => return Err(bad(format!("`{at}.content` must be a string or an array"))),
    };
    let mut out = Vec::with_capacity(parts.len());
    for p in parts.iter().filter(|p| foreign_part(p).is_none()) {
        match (p["type"].as_str(), p["image_url"].as_str()) {
            (Some("input_image"), Some(url)) => {
                let mut image = json!({"url": url});
                if let Some(d) = p["detail"].as_str() {
                    image["detail"] = json!(d);
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            _ => {
                let text = p["text"].as_str().or_else(|| p["refusal"].as_str());
                out.push(json!({"type": "text", "text": text.unwrap_or("")}));
            }
        }
    }
    Ok(Value::Array(out))
}

/// Appends the chat messages of one input item.
fn push_item(out: &mut Vec<Value>, item: &Value, i: usize) -> Result<()> {
    let at = format!("input.{i}");
    let kind = item["type"]
        .as_str()
        .unwrap_or(if item["role"].is_string() {
            "message"
        } else {
            ""
        });
    match kind {
        "message" => {
            let role = match item["role"].as_str() {
                Some("user") => "user",
                Some("assistant") => "assistant",
                Some("system" | "developer") => "system",
                Some(r) => {
                    return Err(bad(format!(
                        "`{at}.role` `{}` is not a message role",
                        cut(r)
                    )));
                }
                None => return Err(bad(format!("`{at}.role` is required"))),
            };
            if role == "assistant" {
                out.push(json!({"role": "assistant", "content": text_of(&item["content"])}));
            } else {
                out.push(json!({"role": role, "content": user_content(&item["content"], &at)?}));
            }
        }
        "function_call" => {
            let (Some(call_id), Some(name)) = (item["call_id"].as_str(), item["name"].as_str())
            else {
                return Err(bad(format!("`{at}` needs `call_id` and `name`")));
            };
            let call = json!({
                "id": call_id, "type": "function",
                "function": {"name": name, "arguments": item["arguments"].as_str().unwrap_or("{}")},
            });
            // Calls made in one turn go back as one assistant message.
            match out.last_mut() {
                Some(m) if m["role"] == "assistant" && m["tool_calls"].is_array() => {
                    if let Some(calls) = m["tool_calls"].as_array_mut() {
                        calls.push(call);
                    }
                }
                Some(m) if m["role"] == "assistant" && m.get("tool_calls").is_none() => {
                    m["tool_calls"] = json!([call]);
                }
                _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let Some(call_id) = item["call_id"].as_str() else {
                return Err(bad(format!("`{at}.call_id` is required")));
            };
            out.push(json!({
                "role": "tool", "tool_call_id": call_id, "content": text_of(&item["output"]),
            }));
        }
        // Reasoning is the model's own; a chat target neither takes nor needs it back.
        "reasoning" => {}
        "" => return Err(bad(format!("`{at}.type` is required"))),
        other => {
            return Err(bad(format!(
                "input item type `{}` cannot be translated to chat completions",
                cut(other)
            )));
        }
    }
    Ok(())
}

/// Input item types a translation can carry.
const ITEM_TYPES: &[&str] = &[
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
];

/// The function tools of `tools`, namespaces opened: each with its namespace, if any.
fn function_tools(tools: &Value) -> Vec<(Option<&str>, &Value)> {
    let mut out = Vec::new();
    for t in tools.as_array().into_iter().flatten() {
        match t["type"].as_str() {
            Some("function") => out.push((None, t)),
            Some("namespace") => {
                let inner = t["tools"].as_array().into_iter().flatten();
                out.extend(
                    inner
                        .filter(|f| f["type"] == "function")
                        .map(|f| (t["name"].as_str(), f)),
                );
            }
            _ => {}
        }
    }
    out
}

/// The first tool of `tools` that has no chat equivalent (built-in tools, custom tools), by
/// name.
pub fn foreign_tool(tools: &Value) -> Option<String> {
    for t in tools.as_array().into_iter().flatten() {
        match t["type"].as_str() {
            Some("function") => {}
            Some("namespace") => {
                let inner = t["tools"].as_array().into_iter().flatten();
                if let Some(f) = inner.into_iter().find(|f| f["type"] != "function") {
                    return Some(format!(
                        "the tool `{}` (type `{}`) of namespace `{}`",
                        cut(f["name"].as_str().unwrap_or("")),
                        cut(f["type"].as_str().unwrap_or("")),
                        cut(t["name"].as_str().unwrap_or(""))
                    ));
                }
            }
            Some(other) => {
                return Some(format!("the built-in tool `{}`", cut(other)));
            }
            None => return Some("a tool without `type`".into()),
        }
    }
    None
}

/// Why `items` and `tools` cannot go to a chat-only target, if they cannot.
pub fn untranslatable(tools: &Value, items: &[Value]) -> Option<String> {
    if let Some(tool) = foreign_tool(tools) {
        return Some(tool);
    }
    untranslatable_items(items)
}

/// Why `items` cannot go to a chat-only target (an item type or content part only the
/// Responses API knows), if they cannot.
pub fn untranslatable_items(items: &[Value]) -> Option<String> {
    items.iter().find_map(|item| match item["type"].as_str() {
        Some(t) if !ITEM_TYPES.contains(&t) => Some(format!("input items of type `{}`", cut(t))),
        _ => item["content"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(foreign_part),
    })
}

/// The chat request for a Responses request `req` whose input is `items` (the stored
/// conversation already prepended when `previous_response_id` was given).
pub fn request(req: &Value, items: &[Value]) -> Result<ChatRequest> {
    let model = req["model"]
        .as_str()
        .ok_or_else(|| bad("you must provide a model parameter"))?;
    let untranslatable = untranslatable(&req["tools"], items);
    let mut messages = Vec::with_capacity(items.len() + 1);
    match &req["instructions"] {
        Value::Null => {}
        Value::String(s) => messages.push(json!({"role": "system", "content": s})),
        _ => return Err(bad("`instructions` must be a string")),
    }
    for (i, item) in items.iter().enumerate() {
        let t = item["type"].as_str().unwrap_or("message");
        if ITEM_TYPES.contains(&t) {
            push_item(&mut messages, item, i)?;
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    let tools: Vec<Value> = function_tools(&req["tools"])
        .into_iter()
        .map(|(_, t)| {
            let mut f = json!({"name": t["name"], "parameters": t["parameters"]});
            if let Some(d) = t["description"].as_str() {
                f["description"] = json!(d);
            }
            if let Some(s) = t["strict"].as_bool() {
                f["strict"] = json!(s);
            }
            json!({"type": "function", "function": f})
        })
        .collect();
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        match &req["tool_choice"] {
            Value::Null => {}
            Value::String(s) => {
                out.insert("tool_choice".into(), json!(s));
            }
            c if c["type"] == "function" => {
                out.insert(
                    "tool_choice".into(),
                    json!({"type": "function", "function": {"name": c["name"]}}),
                );
            }
            _ => {}
        }
        if let Some(p) = req["parallel_tool_calls"].as_bool() {
            out.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    // `metadata` is only echoed in the answer: OpenAI's chat API refuses it without
    // `store`, which means something else there.
    for (from, to) in [
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("user", "user"),
    ] {
        if !req[from].is_null() {
            out.insert(to.into(), req[from].clone());
        }
    }
    if let Some(effort) = req["reasoning"]["effort"]
        .as_str()
        .filter(|e| ["minimal", "low", "medium", "high"].contains(e))
    {
        out.insert("reasoning_effort".into(), json!(effort));
    }
    let format = &req["text"]["format"];
    match format["type"].as_str() {
        Some("json_schema") => {
            let mut schema = json!({
                "name": format["name"].as_str().unwrap_or("response"),
                "schema": format["schema"],
            });
            if let Some(s) = format["strict"].as_bool() {
                schema["strict"] = json!(s);
            }
            if let Some(d) = format["description"].as_str() {
                schema["description"] = json!(d);
            }
            out.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": schema}),
            );
        }
        Some("json_object") => {
            out.insert("response_format".into(), json!({"type": "json_object"}));
        }
        _ => {}
    }
    if req["stream"].as_bool() == Some(true) {
        out.insert("stream".into(), json!(true));
        // The Responses stream always ends with usage.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(ChatRequest {
        body: Value::Object(out),
        untranslatable,
    })
}

/// What the answer echoes of the request, and its id and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Echo {
    pub id: String,
    pub created_at: u64,
    /// The request's members the response object repeats.
    pub request: Map<String, Value>,
}

/// A member's value when the request leaves it out.
type DefaultValue = fn() -> Value;

/// Request members a response object repeats, with OpenAI's defaults.
const ECHOED: &[(&str, DefaultValue)] = &[
    ("instructions", || Value::Null),
    ("max_output_tokens", || Value::Null),
    ("metadata", || json!({})),
    ("parallel_tool_calls", || json!(true)),
    ("previous_response_id", || Value::Null),
    ("reasoning", || json!({"effort": null, "summary": null})),
    ("store", || json!(true)),
    ("temperature", || json!(1.0)),
    ("text", || json!({"format": {"type": "text"}})),
    ("tool_choice", || json!("auto")),
    ("tools", || json!([])),
    ("top_p", || json!(1.0)),
    ("truncation", || json!("disabled")),
    ("user", || Value::Null),
];

impl Echo {
    /// The echo of `req` for a response `id` created at `created_at`.
    pub fn new(id: String, created_at: u64, req: &Value) -> Self {
        let request = ECHOED
            .iter()
            .map(|(k, default)| {
                let v = match &req[*k] {
                    Value::Null => default(),
                    v => v.clone(),
                };
                ((*k).to_owned(), v)
            })
            .collect();
        let mut echo = Self {
            id,
            created_at,
            request,
        };
        // A translated answer only ever offered the function tools.
        if let Some(tools) = echo.request.get_mut("tools").and_then(Value::as_array_mut) {
            tools.retain(|t| t["type"] == "function" || t["type"] == "namespace");
            for ns in tools.iter_mut() {
                if let Some(inner) = ns.get_mut("tools").and_then(Value::as_array_mut) {
                    inner.retain(|f| f["type"] == "function");
                }
            }
        }
        echo
    }

    /// A `function_call` item (with the namespace of the function, if it has one).
    fn call_item(
        &self,
        id: String,
        call_id: &Value,
        name: &Value,
        arguments: &str,
        status: &str,
    ) -> Value {
        let mut item = json!({
            "type": "function_call", "id": id, "call_id": call_id, "name": name,
            "arguments": arguments, "status": status,
        });
        let tools = self.request.get("tools").unwrap_or(&Value::Null);
        if let Some((Some(ns), _)) = function_tools(tools)
            .into_iter()
            .find(|(_, f)| f["name"] == *name)
        {
            item["namespace"] = json!(ns);
        }
        item
    }

    /// A response object with `status` and no output yet.
    pub fn response(&self, model: &str, status: &str) -> Value {
        let mut v = Map::new();
        v.insert("id".into(), json!(self.id));
        v.insert("object".into(), json!("response"));
        v.insert("created_at".into(), json!(self.created_at));
        v.insert("status".into(), json!(status));
        v.insert("error".into(), Value::Null);
        v.insert("incomplete_details".into(), Value::Null);
        v.insert("model".into(), json!(model));
        v.insert("output".into(), json!([]));
        v.insert("usage".into(), Value::Null);
        for (k, val) in &self.request {
            v.insert(k.clone(), val.clone());
        }
        Value::Object(v)
    }

    fn item_id(&self, prefix: &str, n: usize) -> String {
        let tail = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{tail}_{n}")
    }
}

/// Responses usage for chat usage.
pub fn usage(u: &Value) -> Value {
    let input = u["prompt_tokens"].as_u64().unwrap_or(0);
    let output = u["completion_tokens"].as_u64().unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0),
        },
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens":
                u["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap_or(0),
        },
        "total_tokens": u["total_tokens"].as_u64().unwrap_or(input + output),
    })
}

/// `status` and `incomplete_details` for a chat `finish_reason`.
fn status_of(finish: Option<&str>) -> (&'static str, Value) {
    match finish {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

fn message_item(id: String, text: &str, status: &str) -> Value {
    json!({
        "type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    })
}

fn reasoning_item(id: String, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [{"type": "summary_text", "text": text}]})
}

/// The reasoning text some chat servers return beside the answer (DeepSeek, vLLM).
fn reasoning_text(m: &Value) -> Option<&str> {
    m["reasoning_content"]
        .as_str()
        .or_else(|| m["reasoning"].as_str())
        .filter(|t| !t.is_empty())
}

/// The response object for a chat completion.
pub fn response(chat: &Value, echo: &Echo, model: &str) -> Value {
    let choice = &chat["choices"][0];
    let msg = &choice["message"];
    let mut output = Vec::new();
    if let Some(r) = reasoning_text(msg) {
        output.push(reasoning_item(echo.item_id("rs", output.len()), r));
    }
    let text = msg["content"].as_str().unwrap_or("");
    let calls = msg["tool_calls"].as_array().map_or(&[][..], Vec::as_slice);
    if let Some(refusal) = msg["refusal"].as_str() {
        output.push(json!({
            "type": "message", "id": echo.item_id("msg", output.len()), "status": "completed",
            "role": "assistant", "content": [{"type": "refusal", "refusal": refusal}],
        }));
    } else if !text.is_empty() || calls.is_empty() {
        output.push(message_item(
            echo.item_id("msg", output.len()),
            text,
            "completed",
        ));
    }
    for c in calls {
        output.push(echo.call_item(
            echo.item_id("fc", output.len()),
            &c["id"],
            &c["function"]["name"],
            c["function"]["arguments"].as_str().unwrap_or("{}"),
            "completed",
        ));
    }
    let (status, incomplete) = status_of(choice["finish_reason"].as_str());
    let mut v = echo.response(model, status);
    v["incomplete_details"] = incomplete;
    v["output"] = Value::Array(output);
    if chat["usage"].is_object() {
        v["usage"] = usage(&chat["usage"]);
    }
    v
}

mod stream;

pub use stream::Stream;

#[cfg(test)]
mod tests;
