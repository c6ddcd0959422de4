//! A cache entry and its two faces: one complete OpenAI chat completion is stored, whether
//! the answer came streamed or not. A finished stream is assembled into that completion
//! before it is stored ([`assemble`]); a hit for a streaming client is replayed from it as an
//! SSE stream ([`replay`]).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::api::Usage;

/// What a hit answers with.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The provider and model that produced the answer (reported in the hit's headers and
    /// used to price the dollars saved).
    pub provider: String,
    pub model: String,
    /// Provider-reported tokens of the original answer, when it reported any.
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// The complete `chat.completion` object.
    pub completion: Box<RawValue>,
}

impl Entry {
    pub fn new(provider: &str, model: &str, usage: Option<Usage>, completion: &Value) -> Self {
        // A `Value` always serializes to valid JSON.
        let text = completion.to_string();
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            input_tokens: usage.map(|u| u.input),
            output_tokens: usage.map(|u| u.output),
            completion: RawValue::from_string(text).unwrap_or_else(|_| RawValue::NULL.to_owned()),
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        Some(Usage {
            input: self.input_tokens?,
            output: self.output_tokens?,
            cached: 0,
        })
    }

    /// Bytes this entry holds, for the memory store's size bound.
    pub fn weight(&self) -> usize {
        self.completion.get().len() + self.provider.len() + self.model.len() + 96
    }
}

/// Why an answer is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Incomplete {
    #[error("the stream did not end with [DONE]")]
    NoDone,
    #[error("the answer carries an error")]
    Error,
    #[error("the answer is not a well-formed chat completion")]
    Malformed,
    #[error("a choice has no finish_reason")]
    Unfinished,
}

/// A non-streamed answer body, checked: a JSON object with a non-empty `choices` list, every
/// choice finished, and no `error`.
pub fn completion(body: &[u8]) -> Result<Value, Incomplete> {
    let v: Value = serde_json::from_slice(body).map_err(|_| Incomplete::Malformed)?;
    if v.get("error").is_some_and(|e| !e.is_null()) {
        return Err(Incomplete::Error);
    }
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or(Incomplete::Malformed)?;
    if choices.iter().any(|c| c["finish_reason"].is_null()) {
        return Err(Incomplete::Unfinished);
    }
    Ok(v)
}

/// One choice being put together from deltas.
#[derive(Debug, Default)]
struct Choice {
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    /// Tool calls by their `index`: id, type, function name, arguments.
    tool_calls: Vec<Map<String, Value>>,
    finish_reason: Option<Value>,
}

impl Choice {
    fn push(&mut self, delta: &Value) {
        if let Some(r) = delta.get("role").filter(|r| !r.is_null()) {
            self.role = Some(r.clone());
        }
        for (field, slot) in [
            ("content", &mut self.content),
            ("refusal", &mut self.refusal),
        ] {
            if let Some(s) = delta.get(field).and_then(Value::as_str) {
                slot.get_or_insert_with(String::new).push_str(s);
            }
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let i = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if self.tool_calls.len() <= i {
                self.tool_calls.resize_with(i + 1, Map::new);
            }
            let slot = &mut self.tool_calls[i];
            for k in ["id", "type"] {
                if let Some(v) = call.get(k).filter(|v| !v.is_null()) {
                    slot.insert(k.into(), v.clone());
                }
            }
            let f = slot
                .entry("function")
                .or_insert_with(|| json!({"name": "", "arguments": ""}));
            for k in ["name", "arguments"] {
                if let Some(s) = call
                    .pointer(&format!("/function/{k}"))
                    .and_then(Value::as_str)
                    && let Some(Value::String(acc)) = f.get_mut(k)
                {
                    acc.push_str(s);
                }
            }
        }
    }

    fn into_value(self, index: usize) -> Value {
        let mut message = Map::new();
        message.insert("role".into(), self.role.unwrap_or(json!("assistant")));
        message.insert(
            "content".into(),
            self.content.map_or(Value::Null, Value::String),
        );
        if let Some(r) = self.refusal {
            message.insert("refusal".into(), Value::String(r));
        }
        if !self.tool_calls.is_empty() {
            let calls = self.tool_calls.into_iter().map(Value::Object).collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        json!({
            "index": index,
            "message": message,
            "finish_reason": self.finish_reason.unwrap_or(Value::Null),
            "logprobs": null,
        })
    }
}

/// The `data:` payloads of a whole SSE body, `None` when it does not end on an event
/// boundary.
fn events(raw: &[u8]) -> Option<Vec<String>> {
    let mut parser = crate::translate::sse::Parser::default();
    let events = parser.push(raw);
    (!parser.has_partial()).then(|| {
        events
            .into_iter()
            .filter(|e| !e.data.is_empty())
            .map(|e| e.data)
            .collect()
    })
}

/// Assembles a finished OpenAI SSE stream into a `chat.completion`: only a stream that ended
/// with `data: [DONE]`, had no error event and whose every choice finished.
pub fn assemble(raw: &[u8]) -> Result<Value, Incomplete> {
    let events = events(raw).ok_or(Incomplete::NoDone)?;
    let mut meta: Option<Value> = None;
    let mut choices: Vec<Choice> = Vec::new();
    let mut usage = None;
    let mut done = false;
    for data in events {
        if done {
            break;
        }
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(&data).map_err(|_| Incomplete::Malformed)?;
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Err(Incomplete::Error);
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        meta.get_or_insert_with(|| chunk.clone());
        for c in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let i = c.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if choices.len() <= i {
                choices.resize_with(i + 1, Choice::default);
            }
            if let Some(d) = c.get("delta") {
                choices[i].push(d);
            }
            if let Some(f) = c.get("finish_reason").filter(|f| !f.is_null()) {
                choices[i].finish_reason = Some(f.clone());
            }
        }
    }
    if !done {
        return Err(Incomplete::NoDone);
    }
    let meta = meta.ok_or(Incomplete::Malformed)?;
    if choices.is_empty() {
        return Err(Incomplete::Malformed);
    }
    if choices.iter().any(|c| c.finish_reason.is_none()) {
        return Err(Incomplete::Unfinished);
    }
    let mut out = Map::new();
    for k in ["id", "created", "model", "system_fingerprint"] {
        if let Some(v) = meta.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    out.insert("object".into(), json!("chat.completion"));
    let choices = choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| c.into_value(i))
        .collect();
    out.insert("choices".into(), Value::Array(choices));
    if let Some(u) = usage {
        out.insert("usage".into(), u);
    }
    Ok(Value::Object(out))
}

fn event(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// A stored completion as the SSE stream a streaming client expects: per choice a role
/// chunk, one content chunk (text, refusal and tool calls whole), a finish chunk; then a
/// usage chunk when `include_usage` (and the entry has usage), then `data: [DONE]`.
pub fn replay(completion: &Value, include_usage: bool) -> Bytes {
    let mut base = Map::new();
    for k in ["id", "created", "model", "system_fingerprint"] {
        if let Some(v) = completion.get(k) {
            base.insert(k.into(), v.clone());
        }
    }
    base.insert("object".into(), json!("chat.completion.chunk"));
    let chunk = |choices: Value| {
        let mut c = base.clone();
        c.insert("choices".into(), choices);
        Value::Object(c)
    };
    let mut out = Vec::with_capacity(completion.to_string().len() + 512);
    let empty = Vec::new();
    let choices = completion
        .get("choices")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, c) in choices.iter().enumerate() {
        let index = c.get("index").cloned().unwrap_or(json!(i));
        let m = &c["message"];
        let role = m.get("role").cloned().unwrap_or(json!("assistant"));
        let one = |delta: Value, finish: &Value| {
            chunk(
                json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}]),
            )
        };
        // OpenAI opens text with `content: ""` and a tool-call-only answer with `null`.
        let opening = if m.get("content").is_some_and(Value::is_string) {
            json!("")
        } else {
            Value::Null
        };
        event(
            &mut out,
            &one(json!({"role": role, "content": opening}), &Value::Null),
        );
        let mut delta = Map::new();
        if let Some(s) = m.get("content").filter(|s| s.is_string()) {
            delta.insert("content".into(), s.clone());
        }
        if let Some(r) = m.get("refusal").filter(|r| r.is_string()) {
            delta.insert("refusal".into(), r.clone());
        }
        if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
            let calls = calls
                .iter()
                .enumerate()
                .map(|(k, call)| {
                    let mut call = call.clone();
                    call["index"] = json!(k);
                    call
                })
                .collect();
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        if !delta.is_empty() {
            event(&mut out, &one(Value::Object(delta), &Value::Null));
        }
        let finish = c.get("finish_reason").cloned().unwrap_or(json!("stop"));
        event(&mut out, &one(json!({}), &finish));
    }
    if include_usage && let Some(u) = completion.get("usage").filter(|u| !u.is_null()) {
        let mut c = chunk(json!([]));
        c["usage"] = u.clone();
        event(&mut out, &c);
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn a_finished_stream_assembles_into_a_completion() {
        let c = assemble(STREAM.as_bytes()).expect("complete");
        assert_eq!(c["object"], "chat.completion");
        assert_eq!(c["id"], "c1");
        assert_eq!(c["choices"][0]["message"]["content"], "Hello");
        assert_eq!(c["choices"][0]["message"]["role"], "assistant");
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(c["usage"]["completion_tokens"], 2);
        completion(c.to_string().as_bytes()).expect("valid completion");
    }

    #[test]
    fn partial_or_failed_streams_are_refused() {
        let cut = STREAM.replace("data: [DONE]\n\n", "");
        assert_eq!(assemble(cut.as_bytes()), Err(Incomplete::NoDone));
        let half = &STREAM[..STREAM.len() - 5];
        assert_eq!(assemble(half.as_bytes()), Err(Incomplete::NoDone));
        let err = STREAM.replace(
            ": keep-alive",
            "data: {\"error\":{\"message\":\"overloaded\"}}",
        );
        assert_eq!(assemble(err.as_bytes()), Err(Incomplete::Error));
        let unfinished = STREAM.replace("\"finish_reason\":\"stop\"", "\"finish_reason\":null");
        assert_eq!(assemble(unfinished.as_bytes()), Err(Incomplete::Unfinished));
        let bad = STREAM.replace(": keep-alive", "data: {not json");
        assert_eq!(assemble(bad.as_bytes()), Err(Incomplete::Malformed));
        assert_eq!(
            completion(br#"{"error":{"message":"x"}}"#),
            Err(Incomplete::Error)
        );
        assert_eq!(completion(br#"{"choices":[]}"#), Err(Incomplete::Malformed));
    }

    #[test]
    fn replay_round_trips_through_assembly() {
        let c = assemble(STREAM.as_bytes()).expect("complete");
        let sse = replay(&c, true);
        let text = std::str::from_utf8(&sse).expect("utf8");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.contains("\"usage\":{"), "{text}");
        assert_eq!(assemble(&sse).expect("replay is complete"), c);
        assert!(
            !std::str::from_utf8(&replay(&c, false))
                .expect("utf8")
                .contains("usage")
        );
    }

    #[test]
    fn tool_calls_assemble_and_replay() {
        let s = concat!(
            "data: {\"id\":\"t\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"t\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"t\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let c = assemble(s.as_bytes()).expect("complete");
        let call = &c["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["id"], "call_1");
        assert_eq!(call["function"]["name"], "get");
        assert_eq!(call["function"]["arguments"], "{\"a\":1}");
        assert_eq!(assemble(&replay(&c, false)).expect("complete"), c);
    }

    #[test]
    fn entries_serialize_for_redis() {
        let c = json!({"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]});
        let e = Entry::new(
            "p",
            "m",
            Some(Usage {
                input: 1,
                output: 2,
                cached: 0,
            }),
            &c,
        );
        let bytes = serde_json::to_vec(&e).expect("serializes");
        let back: Entry = serde_json::from_slice(&bytes).expect("parses");
        assert_eq!(
            back.usage(),
            Some(Usage {
                input: 1,
                output: 2,
                cached: 0
            })
        );
        assert_eq!(back.completion.get(), c.to_string());
        assert!(e.weight() > c.to_string().len());
    }
}
