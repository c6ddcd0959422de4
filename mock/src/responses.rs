//! The OpenAI Responses API (`POST /v1/responses`), spoken natively: input items and
//! `instructions` become a chat conversation that the chat completions generator answers,
//! and the answer comes back as a `response` object or the Responses event stream. The server
//! keeps each conversation it answered so that `previous_response_id` continues it, and
//! answers OpenAI's 404 for an id it never issued.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::openai::{self, Ctx};
use crate::reply::{ApiError, Reply, SseEvent};
use crate::text;

/// Conversations by response id: the chat messages up to and including the answer.
#[derive(Debug, Default)]
pub struct Conversations(Mutex<HashMap<String, Vec<Value>>>);

/// Most conversations a mock keeps; it forgets them all past it (a test server's bound).
const MAX_CONVERSATIONS: usize = 10_000;

impl Conversations {
    fn get(&self, id: &str) -> Option<Vec<Value>> {
        self.0.lock().ok()?.get(id).cloned()
    }

    fn put(&self, id: String, messages: Vec<Value>) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= MAX_CONVERSATIONS {
                map.clear();
            }
            map.insert(id, messages);
        }
    }

    fn remove(&self, id: &str) -> bool {
        self.0.lock().is_ok_and(|mut map| map.remove(id).is_some())
    }

    /// Forgets every conversation.
    pub fn clear(&self) {
        if let Ok(mut map) = self.0.lock() {
            map.clear();
        }
    }
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Chat messages for Responses input items.
fn messages(items: &[Value]) -> Result<Vec<Value>, ApiError> {
    let mut out: Vec<Value> = Vec::new();
    for item in items {
        match item["type"].as_str().unwrap_or("message") {
            "message" => {
                let role = match item["role"].as_str() {
                    Some("developer") => "system",
                    Some(r) => r,
                    None => return Err(ApiError::invalid_request("Missing required parameter: 'input[].role'.")),
                };
                out.push(json!({"role": role, "content": text_of(&item["content"])}));
            }
            "function_call" => {
                let call = json!({"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}});
                match out.last_mut() {
                    Some(m) if m["role"] == "assistant" && m["tool_calls"].is_array() => {
                        if let Some(a) = m["tool_calls"].as_array_mut() {
                            a.push(call);
                        }
                    }
                    _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            "function_call_output" => out.push(json!({
                "role": "tool", "tool_call_id": item["call_id"], "content": text_of(&item["output"]),
            })),
            _ => {}
        }
    }
    Ok(out)
}

/// OpenAI's 404 for a `previous_response_id` it does not know.
fn not_found(id: &str) -> ApiError {
    ApiError {
        status: 404,
        param: Some("previous_response_id".to_owned()),
        code: Some("previous_response_not_found".to_owned()),
        ..ApiError::invalid_request(format!("Previous response with id '{id}' not found."))
    }
}

/// OpenAI's 404 for a response id in the path that it does not know.
fn unknown_response(id: &str) -> ApiError {
    ApiError {
        status: 404,
        code: Some("not_found".to_owned()),
        ..ApiError::invalid_request(format!("Response with id '{id}' not found."))
    }
}

/// `GET`, `DELETE /v1/responses/{id}` and `POST /v1/responses/{id}/cancel` of a response this
/// server made. It keeps conversations, not whole response objects: `GET` answers a
/// completed response object holding the conversation's last answer. Nothing here runs in
/// the background, so a cancel gets the 400 OpenAI gives for a response not created with
/// `background: true`.
pub fn held(method: &hyper::Method, rest: &str, conversations: &Conversations) -> Reply {
    let (id, cancel) = match rest.split_once('/') {
        None => (rest, false),
        Some((id, "cancel")) => (id, true),
        Some(_) => return Reply::Error(unknown_response(rest)),
    };
    let Some(history) = conversations.get(id) else {
        return Reply::Error(unknown_response(id));
    };
    let body = match (method, cancel) {
        (&hyper::Method::POST, true) => {
            return Reply::Error(ApiError::invalid_request(
                "Only responses created with background=true can be cancelled.",
            ));
        }
        (&hyper::Method::GET, false) => {
            let answer = history
                .last()
                .map(|m| text_of(&m["content"]))
                .unwrap_or_default();
            json!({
                "id": id,
                "object": "response",
                "status": "completed",
                "output": [{
                    "type": "message",
                    "id": format!("msg_{id}"),
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": answer, "annotations": []}],
                }],
            })
        }
        (&hyper::Method::DELETE, false) => {
            conversations.remove(id);
            json!({"id": id, "object": "response", "deleted": true})
        }
        _ => {
            return Reply::Error(ApiError {
                status: 405,
                ..ApiError::invalid_request(format!("Method {method} not allowed here."))
            });
        }
    };
    Reply::Json { body, tokens: 0 }
}

/// `POST /v1/responses`.
pub fn create(body: &[u8], ctx: &Ctx<'_>, conversations: &Conversations) -> Reply {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return Reply::Error(ApiError::invalid_request(
                "We could not parse the JSON body of your request.",
            ));
        }
    };
    let Some(model) = req["model"].as_str() else {
        return Reply::Error(ApiError {
            param: Some("model".to_owned()),
            ..ApiError::invalid_request("Missing required parameter: 'model'.")
        });
    };
    let mut history = match req["previous_response_id"].as_str() {
        Some(prev) => match conversations.get(prev) {
            Some(h) => h,
            None => return Reply::Error(not_found(prev)),
        },
        None => Vec::new(),
    };
    let items = match &req["input"] {
        Value::String(s) => vec![json!({"role": "user", "content": s})],
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    };
    let new = match messages(&items) {
        Ok(m) => m,
        Err(e) => return Reply::Error(e),
    };
    history.extend(new);
    let mut chat_messages = history.clone();
    if let Some(i) = req["instructions"].as_str() {
        chat_messages.insert(0, json!({"role": "system", "content": i}));
    }
    let tools: Vec<Value> = req["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["type"] == "function")
        .map(|t| json!({"type": "function", "function": {"name": t["name"], "parameters": t["parameters"]}}))
        .collect();
    let stream = req["stream"].as_bool().unwrap_or(false);
    let mut chat = json!({"model": model, "messages": chat_messages, "stream": stream,
                          "stream_options": {"include_usage": true}});
    if !tools.is_empty() {
        chat["tools"] = Value::Array(tools);
        match &req["tool_choice"] {
            Value::String(s) => chat["tool_choice"] = json!(s),
            c if c["type"] == "function" => {
                chat["tool_choice"] = json!({"type": "function", "function": {"name": c["name"]}});
            }
            _ => {}
        }
    }
    if let Some(n) = req["max_output_tokens"].as_u64() {
        chat["max_tokens"] = json!(n);
    }
    let id = format!(
        "resp_mock{}",
        text::alphanumeric(
            // The server's name too: two mocks never issue the same id.
            text::derive_seed(ctx.seed, &["resp", ctx.owner, &ctx.request_id.to_string()]),
            32
        )
    );
    let answer = Answer {
        id: &id,
        created: ctx.created,
        model,
        req: &req,
    };
    let keep = req["store"].as_bool() != Some(false);
    match openai::chat_completions(chat.to_string().as_bytes(), ctx) {
        Reply::Json { body, tokens } => {
            let message = &body["choices"][0]["message"];
            let output = answer.output(
                message["content"].as_str().unwrap_or(""),
                message["tool_calls"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice),
            );
            if keep {
                history.push(message.clone());
                conversations.put(id.clone(), history);
            }
            let finish = body["choices"][0]["finish_reason"].as_str();
            Reply::Json {
                body: answer.object(output, finish, &body["usage"]),
                tokens,
            }
        }
        Reply::Stream(events) => {
            let (events, message) = answer.events(&events);
            if keep {
                history.push(message);
                conversations.put(id.clone(), history);
            }
            Reply::Stream(events)
        }
        Reply::Error(e) => Reply::Error(e),
    }
}

/// The in-stream `error` event of a `stream_error` fault, numbered `seq`.
pub fn stream_error_event(e: &ApiError, seq: u64) -> SseEvent {
    let data = json!({"type": "error", "code": e.code, "message": e.message, "param": null,
                      "sequence_number": seq});
    SseEvent::named("error", data.to_string(), false)
}

struct Answer<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
    req: &'a Value,
}

impl Answer<'_> {
    fn item_id(&self, prefix: &str, n: usize) -> String {
        format!("{prefix}_{}_{n}", &self.id["resp_".len()..])
    }

    fn object(&self, output: Vec<Value>, finish: Option<&str>, usage: &Value) -> Value {
        let (status, incomplete) = match finish {
            Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
            _ => ("completed", Value::Null),
        };
        let r = self.req;
        let or = |k: &str, d: Value| if r[k].is_null() { d } else { r[k].clone() };
        json!({
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "error": null, "incomplete_details": incomplete, "model": self.model,
            "instructions": r["instructions"], "max_output_tokens": r["max_output_tokens"],
            "metadata": or("metadata", json!({})), "output": output,
            "parallel_tool_calls": or("parallel_tool_calls", json!(true)),
            "previous_response_id": r["previous_response_id"],
            "reasoning": or("reasoning", json!({"effort": null, "summary": null})),
            "store": or("store", json!(true)), "temperature": or("temperature", json!(1.0)),
            "text": or("text", json!({"format": {"type": "text"}})),
            "tool_choice": or("tool_choice", json!("auto")), "tools": or("tools", json!([])),
            "top_p": or("top_p", json!(1.0)), "truncation": "disabled", "user": null,
            "usage": if usage.is_object() {
                let (i, o) = (usage["prompt_tokens"].as_u64().unwrap_or(0),
                              usage["completion_tokens"].as_u64().unwrap_or(0));
                json!({"input_tokens": i, "input_tokens_details": {"cached_tokens": 0},
                       "output_tokens": o, "output_tokens_details": {"reasoning_tokens": 0},
                       "total_tokens": i + o})
            } else { Value::Null },
        })
    }

    fn output(&self, text: &str, calls: &[Value]) -> Vec<Value> {
        let mut out = Vec::new();
        if !text.is_empty() || calls.is_empty() {
            out.push(json!({"type": "message", "id": self.item_id("msg", 0), "status": "completed",
                "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]}));
        }
        for c in calls {
            out.push(
                json!({"type": "function_call", "id": self.item_id("fc", out.len()),
                "call_id": c["id"], "name": c["function"]["name"],
                "arguments": c["function"]["arguments"], "status": "completed"}),
            );
        }
        out
    }

    /// Responses events for the chat stream `chunks`, and the assistant message it makes.
    fn events(&self, chunks: &[SseEvent]) -> (Vec<SseEvent>, Value) {
        let mut text = String::new();
        let mut deltas = Vec::new();
        let mut calls: Vec<Value> = Vec::new();
        let (mut finish, mut usage) = (None, Value::Null);
        for c in chunks {
            let Ok(v) = serde_json::from_str::<Value>(&c.data) else {
                continue;
            };
            if v["usage"].is_object() {
                usage = v["usage"].clone();
            }
            let d = &v["choices"][0]["delta"];
            if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
                text.push_str(t);
                deltas.push(t.to_owned());
            }
            for tc in d["tool_calls"].as_array().into_iter().flatten() {
                let i = tc["index"].as_u64().unwrap_or(0) as usize;
                if calls.len() <= i {
                    calls.push(json!({"id": tc["id"], "type": "function",
                        "function": {"name": tc["function"]["name"], "arguments": ""}}));
                }
                if let Some(a) = tc["function"]["arguments"].as_str() {
                    let joined = format!(
                        "{}{a}",
                        calls[i]["function"]["arguments"].as_str().unwrap_or("")
                    );
                    calls[i]["function"]["arguments"] = json!(joined);
                }
            }
            if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
                finish = Some(f.to_owned());
            }
        }
        let output = self.output(&text, &calls);
        let mut seq = 0u64;
        let mut out = Vec::new();
        let mut emit = |name: &str, mut v: Value, token: bool| {
            v["type"] = json!(name);
            v["sequence_number"] = json!(seq);
            seq += 1;
            out.push(SseEvent::named(name, v.to_string(), token));
        };
        let mut start = self.object(Vec::new(), None, &Value::Null);
        start["status"] = json!("in_progress");
        emit("response.created", json!({"response": start}), false);
        emit("response.in_progress", json!({"response": start}), false);
        for (oi, item) in output.iter().enumerate() {
            let id = item["id"].clone();
            if item["type"] == "message" {
                let mut added = item.clone();
                added["status"] = json!("in_progress");
                added["content"] = json!([]);
                emit(
                    "response.output_item.added",
                    json!({"output_index": oi, "item": added}),
                    false,
                );
                let part = json!({"type": "output_text", "text": "", "annotations": []});
                emit(
                    "response.content_part.added",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "part": part}),
                    false,
                );
                for d in &deltas {
                    emit(
                        "response.output_text.delta",
                        json!({"item_id": id, "output_index": oi,
                        "content_index": 0, "delta": d, "logprobs": []}),
                        true,
                    );
                }
                emit(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": oi,
                    "content_index": 0, "text": text, "logprobs": []}),
                    false,
                );
                emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": oi,
                    "content_index": 0, "part": item["content"][0]}),
                    false,
                );
            } else {
                let mut added = item.clone();
                added["status"] = json!("in_progress");
                added["arguments"] = json!("");
                emit(
                    "response.output_item.added",
                    json!({"output_index": oi, "item": added}),
                    false,
                );
                let args = item["arguments"].as_str().unwrap_or("");
                emit(
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": oi, "delta": args}),
                    true,
                );
                emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": oi, "arguments": args}),
                    false,
                );
            }
            emit(
                "response.output_item.done",
                json!({"output_index": oi, "item": item}),
                false,
            );
        }
        let done = self.object(output, finish.as_deref(), &usage);
        let name = if done["status"] == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        emit(name, json!({"response": done}), false);
        let message = if calls.is_empty() {
            json!({"role": "assistant", "content": text})
        } else {
            json!({"role": "assistant", "content": null, "tool_calls": calls})
        };
        (out, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(request_id: u64) -> Ctx<'static> {
        Ctx {
            seed: 7,
            request_id,
            created: 1,
            completion_tokens: 5,
            embedding_dimensions: 8,
            models: &[],
            owner: "m",
            forced_tool: None,
            prompt_cache: None,
        }
    }

    #[test]
    fn answers_continues_and_streams() {
        let conv = Conversations::default();
        let Reply::Json { body, .. } = create(br#"{"model":"m","input":"hi"}"#, &ctx(1), &conv)
        else {
            panic!("json");
        };
        assert_eq!(body["object"], "response");
        assert_eq!(body["output"][0]["content"][0]["type"], "output_text");
        assert!(body["usage"]["output_tokens"].as_u64() > Some(0));
        let id = body["id"].as_str().expect("id");
        let next = format!(
            r#"{{"model":"m","input":"more","previous_response_id":"{id}","stream":true}}"#
        );
        let Reply::Stream(events) = create(next.as_bytes(), &ctx(2), &conv) else {
            panic!("stream");
        };
        let names: Vec<_> = events.iter().filter_map(|e| e.event.clone()).collect();
        assert_eq!(names.first().map(String::as_str), Some("response.created"));
        assert_eq!(names.last().map(String::as_str), Some("response.completed"));
        assert!(names.iter().any(|n| n == "response.output_text.delta"));
        let Reply::Error(e) = create(
            br#"{"model":"m","previous_response_id":"resp_x"}"#,
            &ctx(3),
            &conv,
        ) else {
            panic!("error");
        };
        assert_eq!(
            (e.status, e.code.as_deref()),
            (404, Some("previous_response_not_found"))
        );
    }

    #[test]
    fn function_tools_are_called() {
        let conv = Conversations::default();
        let body = br#"{"model":"m","input":"weather?","tool_choice":"required","tools":[
            {"type":"function","name":"get_weather","parameters":{"type":"object",
             "properties":{"city":{"type":"string"}},"required":["city"]}}]}"#;
        let Reply::Json { body, .. } = create(body, &ctx(1), &conv) else {
            panic!("json");
        };
        let call = body["output"]
            .as_array()
            .expect("output")
            .iter()
            .find(|i| i["type"] == "function_call")
            .expect("a call")
            .clone();
        assert_eq!(call["name"], "get_weather");
        assert!(call["arguments"].as_str().expect("args").contains("city"));
    }
}
