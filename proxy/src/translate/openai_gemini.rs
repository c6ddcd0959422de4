//! OpenAI chat completions → Google Gemini `generateContent` / `streamGenerateContent`
//! (`alt=sse`): the request, the answer, and the stream translated on the fly.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::sse::Parser;
use super::{
    ClientOptions, Result, TokenUsage, bad, chunk, content_text, data_url, parse_arguments,
    push_data, push_done, stop_list, usage_chunk,
};

/// JSON-schema keywords Gemini's `parameters` (an OpenAPI subset) rejects.
const UNSUPPORTED_SCHEMA_KEYS: &[&str] = &["$schema", "additionalProperties", "strict", "$id"];

fn clean_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !UNSUPPORTED_SCHEMA_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), clean_schema(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

fn mime_from_url(url: &str) -> &'static str {
    let lower = url.to_ascii_lowercase();
    match lower.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

fn user_parts(content: &Value) -> Result<Vec<Value>> {
    match content {
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p["type"].as_str() {
                Some("text") => Ok(json!({"text": p["text"]})),
                Some("image_url") => {
                    let url = p["image_url"]["url"]
                        .as_str()
                        .or_else(|| p["image_url"].as_str())
                        .ok_or_else(|| bad("an image_url part has no url"))?;
                    Ok(match data_url(url) {
                        Some((mime, data)) => {
                            json!({"inlineData": {"mimeType": mime, "data": data}})
                        }
                        None => {
                            json!({"fileData": {"mimeType": mime_from_url(url), "fileUri": url}})
                        }
                    })
                }
                other => Err(bad(format!(
                    "content part type `{}` is not supported by Gemini",
                    other.unwrap_or("?")
                ))),
            })
            .collect(),
        Value::Null => Ok(vec![]),
        _ => Err(bad("message content must be a string or an array of parts")),
    }
}

fn push_content(out: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = out.last_mut()
        && last["role"] == role
        && let Some(p) = last["parts"].as_array_mut()
    {
        p.extend(parts);
        return;
    }
    out.push(json!({"role": role, "parts": parts}));
}

fn tool_config(choice: &Value) -> Option<Value> {
    let config = match choice {
        Value::String(s) if s == "auto" => json!({"mode": "AUTO"}),
        Value::String(s) if s == "none" => json!({"mode": "NONE"}),
        Value::String(s) if s == "required" => json!({"mode": "ANY"}),
        Value::Object(_) => {
            let name = choice["function"]["name"].as_str()?;
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
        _ => return None,
    };
    Some(json!({"functionCallingConfig": config}))
}

/// The Gemini `generateContent` body for an OpenAI chat request (the model goes in the URL).
pub fn request(req: &Value) -> Result<Value> {
    let messages = req["messages"]
        .as_array()
        .ok_or_else(|| bad("`messages` must be an array"))?;
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // Gemini answers a function by name; OpenAI by call id.
    let mut call_names: HashMap<String, String> = HashMap::new();
    for m in messages {
        match m["role"].as_str() {
            Some("system" | "developer") => {
                system.push(json!({"text": content_text(&m["content"])}));
            }
            Some("user") => push_content(&mut contents, "user", user_parts(&m["content"])?),
            Some("assistant") => {
                let mut parts = Vec::new();
                let text = content_text(&m["content"]);
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let name = call["function"]["name"].as_str().unwrap_or_default();
                    if let Some(id) = call["id"].as_str() {
                        call_names.insert(id.to_owned(), name.to_owned());
                    }
                    parts.push(json!({"functionCall": {
                        "name": name,
                        "args": parse_arguments(&call["function"]["arguments"]),
                    }}));
                }
                push_content(&mut contents, "model", parts);
            }
            Some("tool" | "function") => {
                let id = m["tool_call_id"].as_str().unwrap_or_default();
                let name = call_names
                    .get(id)
                    .cloned()
                    .or_else(|| m["name"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| id.to_owned());
                let text = content_text(&m["content"]);
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    Ok(other) => json!({"content": other}),
                    Err(_) => json!({"content": text}),
                };
                let part = json!({"functionResponse": {"name": name, "response": response}});
                push_content(&mut contents, "user", vec![part]);
            }
            other => {
                return Err(bad(format!(
                    "message role `{}` is not supported",
                    other.unwrap_or("?")
                )));
            }
        }
    }
    let mut g = Map::new();
    g.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        g.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut config = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if req[from].is_number() {
            config.insert(to.into(), req[from].clone());
        }
    }
    if let Some(n) = req["max_completion_tokens"]
        .as_u64()
        .or_else(|| req["max_tokens"].as_u64())
    {
        config.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(stop) = stop_list(&req["stop"]) {
        config.insert("stopSequences".into(), Value::Array(stop));
    }
    match req["response_format"]["type"].as_str() {
        Some("json_object") => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), json!("application/json"));
            let schema = &req["response_format"]["json_schema"]["schema"];
            if schema.is_object() {
                config.insert("responseSchema".into(), clean_schema(schema));
            }
        }
        _ => {}
    }
    if !config.is_empty() {
        g.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = req["tools"].as_array() {
        let decls: Vec<Value> = tools
            .iter()
            .filter(|t| t["type"] == "function")
            .map(|t| {
                let f = &t["function"];
                let mut d = json!({"name": f["name"]});
                if let Some(desc) = f["description"].as_str() {
                    d["description"] = json!(desc);
                }
                if f["parameters"].is_object() {
                    d["parameters"] = clean_schema(&f["parameters"]);
                }
                d
            })
            .collect();
        if !decls.is_empty() {
            g.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        }
    }
    if let Some(tc) = tool_config(&req["tool_choice"]) {
        g.insert("toolConfig".into(), tc);
    }
    Ok(Value::Object(g))
}

/// OpenAI's `finish_reason` for Gemini's `finishReason`.
pub fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

fn usage(u: &Value) -> TokenUsage {
    let prompt = u["promptTokenCount"].as_u64().unwrap_or(0);
    let cached = u["cachedContentTokenCount"].as_u64().unwrap_or(0);
    TokenUsage {
        input: prompt.saturating_sub(cached),
        output: u["candidatesTokenCount"].as_u64().unwrap_or(0)
            + u["thoughtsTokenCount"].as_u64().unwrap_or(0),
        cache_read: cached,
        cache_creation: 0,
    }
}

/// An OpenAI tool call for a Gemini `functionCall` (ids are made up when Gemini gives none).
fn tool_call(call: &Value, n: usize) -> Value {
    let id = call["id"]
        .as_str()
        .map_or_else(|| format!("call_{n}"), str::to_owned);
    json!({
        "id": id,
        "type": "function",
        "function": {"name": call["name"], "arguments": call["args"].to_string()},
    })
}

/// The OpenAI `chat.completion` for a Gemini answer.
pub fn response(resp: &Value, opts: &ClientOptions) -> Value {
    let mut choices = Vec::new();
    let candidates = resp["candidates"].as_array().cloned().unwrap_or_default();
    for (i, cand) in candidates.iter().enumerate() {
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut calls = Vec::new();
        for part in cand["content"]["parts"].as_array().into_iter().flatten() {
            if part["thought"].as_bool() == Some(true) {
                reasoning.push_str(part["text"].as_str().unwrap_or_default());
                continue;
            }
            if let Some(t) = part["text"].as_str() {
                text.push_str(t);
            }
            if part["functionCall"].is_object() {
                calls.push(tool_call(&part["functionCall"], calls.len()));
            }
        }
        let finish = finish_reason(
            cand["finishReason"].as_str().unwrap_or("STOP"),
            !calls.is_empty(),
        );
        let mut message = json!({
            "role": "assistant",
            "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
        });
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        if !reasoning.is_empty() {
            message["reasoning_content"] = json!(reasoning);
        }
        let index = cand["index"].as_u64().unwrap_or(i as u64);
        choices.push(
            json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish}),
        );
    }
    if choices.is_empty() {
        // A blocked prompt: no candidates, a `promptFeedback.blockReason`.
        choices.push(json!({
            "index": 0,
            "message": {"role": "assistant", "content": ""},
            "logprobs": null,
            "finish_reason": "content_filter",
        }));
    }
    let id = resp["responseId"]
        .as_str()
        .map_or_else(|| "chatcmpl-gemini".to_owned(), |r| format!("chatcmpl-{r}"));
    json!({
        "id": id,
        "object": "chat.completion",
        "created": opts.created,
        "model": opts.model,
        "choices": choices,
        "usage": usage(&resp["usageMetadata"]).openai(),
    })
}

/// Gemini's `alt=sse` stream → OpenAI chunks, as the bytes arrive. Gemini has no end
/// marker: the stream is complete when a candidate carried a `finishReason` and the
/// connection ended ([`Stream::finish`]).
#[derive(Debug)]
pub struct Stream {
    opts: ClientOptions,
    parser: Parser,
    id: String,
    started: bool,
    tools: usize,
    usage: TokenUsage,
    finish: Option<&'static str>,
    pub ended: bool,
    pub failed: bool,
}

impl Stream {
    pub fn new(opts: ClientOptions) -> Self {
        Self {
            opts,
            parser: Parser::default(),
            id: String::new(),
            started: false,
            tools: 0,
            usage: TokenUsage::default(),
            finish: None,
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
            if self.ended {
                break;
            }
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(ev.data.as_bytes());
                out.extend_from_slice(b"\n\n");
                continue;
            };
            self.event(&v, &mut out);
        }
        out
    }

    fn event(&mut self, v: &Value, out: &mut Vec<u8>) {
        if v["error"].is_object() {
            let class = super::classify::gemini_body(0, v);
            let msg = v["error"]["message"]
                .as_str()
                .unwrap_or("the upstream stream failed");
            push_data(out, &super::openai_error(class, msg));
            self.ended = true;
            self.failed = true;
            return;
        }
        if !self.started {
            self.started = true;
            self.id = v["responseId"]
                .as_str()
                .map_or_else(|| "chatcmpl-gemini".to_owned(), |r| format!("chatcmpl-{r}"));
            let c = chunk(
                &self.id,
                &self.opts,
                json!({"role": "assistant", "content": ""}),
                None,
            );
            push_data(out, &c);
        }
        if v["usageMetadata"].is_object() {
            self.usage = usage(&v["usageMetadata"]);
        }
        let cand = &v["candidates"][0];
        for part in cand["content"]["parts"].as_array().into_iter().flatten() {
            if part["thought"].as_bool() == Some(true) {
                if let Some(t) = part["text"].as_str().filter(|t| !t.is_empty()) {
                    let delta = json!({"reasoning_content": t});
                    push_data(out, &chunk(&self.id, &self.opts, delta, None));
                }
                continue;
            }
            if let Some(t) = part["text"].as_str().filter(|t| !t.is_empty()) {
                push_data(
                    out,
                    &chunk(&self.id, &self.opts, json!({"content": t}), None),
                );
            }
            if part["functionCall"].is_object() {
                let mut call = tool_call(&part["functionCall"], self.tools);
                call["index"] = json!(self.tools);
                self.tools += 1;
                let c = chunk(&self.id, &self.opts, json!({"tool_calls": [call]}), None);
                push_data(out, &c);
            }
        }
        let blocked = v["promptFeedback"]["blockReason"].is_string();
        if let Some(r) = cand["finishReason"].as_str() {
            self.finish = Some(finish_reason(r, self.tools > 0));
        } else if blocked {
            self.finish = Some("content_filter");
        }
    }

    /// The upstream ended: the closing chunks and `[DONE]`, or nothing when the stream broke
    /// off before a finish reason (the relay reports that as an interrupted stream).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let Some(f) = self.finish else {
            return out;
        };
        push_data(&mut out, &chunk(&self.id, &self.opts, json!({}), Some(f)));
        if self.opts.include_usage {
            push_data(&mut out, &usage_chunk(&self.id, &self.opts, &self.usage));
        }
        push_done(&mut out);
        self.ended = true;
        out
    }
}
