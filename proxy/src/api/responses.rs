//! The OpenAI Responses surface (`/v1/responses`): a request is routed as its chat
//! completions translation, and answered in the Responses shapes; targets that speak the
//! Responses API themselves get the client's body as is (model replaced). The gateway keeps
//! what `previous_response_id` needs in a [`ResponsesStore`].

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use switchyard_dsl::ir::{Provider, ProviderKind};

use super::{ApiError, Usage, bounded};
use crate::responses_store::{Held, ResponsesStore, UnsupportedTools};
use crate::translate::responses_openai::{self, Echo};

/// `RequestCtx::endpoint` of a Responses request.
pub const LABEL: &str = "responses";

/// Whether `provider` speaks the Responses API itself (its body then passes through).
pub fn native_target(provider: &Provider) -> bool {
    match provider.kind {
        ProviderKind::Openai | ProviderKind::AzureOpenai => true,
        ProviderKind::OpenaiCompatible => provider.responses_api,
        ProviderKind::Anthropic | ProviderKind::Gemini | ProviderKind::Mock => false,
    }
}

/// One Responses request as its answer needs it: the id and echo, the whole conversation's
/// input, and where to keep the result.
#[derive(Debug)]
pub struct Turn {
    pub echo: Echo,
    /// The conversation's input items, stored ones first.
    pub input: Vec<Value>,
    /// `None` when the client said `store: false`.
    store: Option<Arc<ResponsesStore>>,
    /// The client key id (stored responses are only seen by the key that made them).
    owner: Option<String>,
    /// Answers kept in memory and still to be written to Redis (see [`Turn::share`]).
    unshared: std::sync::Mutex<Vec<(String, Held)>>,
}

impl Turn {
    /// Keeps `held` under `id` in this process, and queues it for Redis when the store is
    /// shared.
    fn put(&self, store: &ResponsesStore, id: &str, held: Held) -> bool {
        let kept = store.put(id, self.owner.as_deref(), held.clone());
        if kept && store.is_shared() {
            (self.unshared.lock())
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((id.to_owned(), held));
        }
        kept
    }

    /// Writes the answers kept so far to Redis. Awaited before the bytes that end an answer
    /// reach the client, so that a follow-up on another replica finds it.
    pub async fn share(&self) {
        let Some(store) = &self.store else {
            return;
        };
        if !store.is_shared() {
            return;
        }
        let unshared = std::mem::take(
            &mut *(self.unshared.lock()).unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (id, held) in unshared {
            store.share(&id, self.owner.as_deref(), &held).await;
        }
    }

    /// Keeps a translated answer: the conversation so far and the response object.
    fn keep(&self, response: &Value) {
        let Some(store) = &self.store else {
            return;
        };
        let mut items = self.input.clone();
        items.extend(response["output"].as_array().into_iter().flatten().cloned());
        let held = Held::Translated {
            items: Arc::new(items),
            response: Arc::new(response.clone()),
        };
        if !self.put(store, &self.echo.id, held) {
            tracing::warn!(id = %self.echo.id, "response too large for the responses store");
        }
    }

    /// Remembers that the provider of `target` keeps the response `id`.
    fn keep_native(&self, id: &str, target: &str) {
        if let Some(store) = &self.store {
            let held = Held::Native {
                target: target.to_owned(),
            };
            self.put(store, id, held);
        }
    }
}

/// A Responses request made ready for routing.
#[derive(Debug)]
pub struct Prepared {
    /// The chat completions translation, which is routed (and sent to chat-only targets).
    pub chat: Bytes,
    /// The body for targets that speak the Responses API.
    pub native: Bytes,
    pub turn: Arc<Turn>,
    /// `provider/model` that keeps the previous response, when only it can continue.
    pub pinned: Option<String>,
    /// Whether the chat translation stands for the whole request (false when the
    /// conversation is kept by a provider, known or not): only then may the cache answer it.
    pub cacheable: bool,
}

/// OpenAI's 404 for an unknown `previous_response_id`.
pub fn not_found(id: &str) -> ApiError {
    ApiError {
        status: 404,
        message: format!("Response with id '{}' not found.", bounded(id)),
        kind: "invalid_request_error",
        code: Some("previous_response_not_found"),
        retry_after: None,
    }
}

/// The error for a `previous_response_id` kept by a target the policies no longer name.
pub fn target_gone(target: &str) -> ApiError {
    ApiError {
        status: 400,
        message: format!(
            "The previous response is kept by target `{}`, which is no longer configured; \
             start a new conversation (without `previous_response_id`)",
            bounded(target)
        ),
        kind: "invalid_request_error",
        code: Some("previous_response_target_unavailable"),
        retry_after: None,
    }
}

fn new_id() -> String {
    let mut b = [0u8; 24];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: still unique within this process.
        b[..16].copy_from_slice(&fastrand::u128(..).to_le_bytes());
    }
    format!("resp_{}", hex::encode(b))
}

/// Reads a Responses body, expands `previous_response_id` from `store`, and translates it.
pub async fn prepare(
    body: &[u8],
    store: &Arc<ResponsesStore>,
    owner: Option<&str>,
) -> Result<Prepared, ApiError> {
    if body.is_empty() {
        return Err(ApiError::malformed_json("the body is empty"));
    }
    let mut req: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::malformed_json(&e.to_string()))?;
    if !req.is_object() {
        return Err(ApiError::malformed_json("the body is not a JSON object"));
    }
    if !matches!(req["stream"], Value::Null | Value::Bool(_)) {
        return Err(ApiError::invalid_field("Invalid value for `stream`"));
    }
    let mut history = Vec::new();
    let mut pinned = None;
    let mut cacheable = true;
    let mut native = Bytes::copy_from_slice(body);
    match &req["previous_response_id"] {
        Value::Null => {}
        Value::String(prev) => match store.lookup(prev, owner).await {
            // An id the gateway does not hold (another replica's, expired, or made without
            // the gateway) goes as sent: a target that speaks the Responses API may hold
            // it, and a chat-only target answers OpenAI's 404 (see [`refusal`]).
            None => cacheable = false,
            Some(Held::Native { target }) => {
                pinned = Some(target);
                cacheable = false;
            }
            Some(Held::Translated { items, .. }) => history = items.as_ref().clone(),
        },
        _ => {
            return Err(ApiError::invalid_field(
                "Invalid value for `previous_response_id`",
            ));
        }
    }
    let new = responses_openai::input_items(&req["input"])
        .map_err(|e| ApiError::invalid_field(e.to_string()))?;
    let expanded = !history.is_empty();
    history.extend(new);
    let chat = responses_openai::request(&req, &history)
        .map_err(|e| ApiError::invalid_field(e.to_string()))?;
    let echo = Echo::new(new_id(), crate::clock::unix_secs(), &req);
    if expanded {
        // A native target gets the whole conversation: it never saw the stored part.
        if let Some(o) = req.as_object_mut() {
            o.remove("previous_response_id");
            o.insert("input".into(), Value::Array(history.clone()));
        }
        native = Bytes::from(req.to_string());
    }
    let keep = req["store"].as_bool() != Some(false);
    let turn = Turn {
        echo,
        input: history,
        store: keep.then(|| Arc::clone(store)),
        owner: owner.map(str::to_owned),
        unshared: std::sync::Mutex::default(),
    };
    Ok(Prepared {
        chat: Bytes::from(chat.body.to_string()),
        native,
        turn: Arc::new(turn),
        pinned,
        cacheable,
    })
}

/// The parts of a Responses body a chat-only target may be unable to take.
#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    tools: Option<Vec<TypeOnly>>,
    #[serde(default)]
    input: Option<InputProbe>,
}

#[derive(Debug, Deserialize)]
struct TypeOnly {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// A namespace's tools.
    #[serde(default)]
    tools: Option<Vec<TypeOnly>>,
}

/// An input item: its type and, for messages, its parts' types (and whether an image has a
/// URL).
#[derive(Debug, Deserialize)]
struct ItemProbe {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    content: Option<ContentProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ContentProbe {
    Parts(Vec<PartProbe>),
    Other(IgnoredAny),
}

#[derive(Debug, Deserialize)]
struct PartProbe {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    image_url: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum InputProbe {
    Items(Vec<ItemProbe>),
    Other(IgnoredAny),
}

/// The error a chat-only target gives a Responses request it cannot serve: 400 for a
/// built-in tool or an input item without a chat equivalent, OpenAI's 404 for a
/// `previous_response_id` the gateway does not hold (the ones it holds are expanded and gone
/// from the body); `None` when it can serve it, or when `provider` speaks the Responses API.
/// `native` is the request's Responses body; with [`UnsupportedTools::Omit`] only input items
/// are checked.
pub fn refusal(
    provider: &Provider,
    model: &str,
    native: &[u8],
    tools_mode: UnsupportedTools,
) -> Option<(u16, Bytes)> {
    if native_target(provider) {
        return None;
    }
    let probe: Probe = serde_json::from_slice(native).ok()?;
    if let Some(id) = &probe.previous_response_id {
        return Some((404, not_found(id).body()));
    }
    let tools = Value::Array(
        probe
            .tools
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                let inner: Vec<Value> = (t.tools.unwrap_or_default().into_iter())
                    .map(|f| json!({"type": f.kind, "name": f.name}))
                    .collect();
                json!({"type": t.kind, "name": t.name, "tools": inner})
            })
            .collect(),
    );
    let items: Vec<Value> = match probe.input {
        Some(InputProbe::Items(items)) => items
            .into_iter()
            .map(|item| {
                let parts: Vec<Value> = match item.content {
                    Some(ContentProbe::Parts(parts)) => parts
                        .into_iter()
                        .map(|p| {
                            let url = p.image_url.map(|_| json!(""));
                            json!({"type": p.kind, "image_url": url})
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let kind = item.kind.unwrap_or_else(|| "message".into());
                json!({"type": kind, "content": parts})
            })
            .collect(),
        _ => Vec::new(),
    };
    let what = match tools_mode {
        UnsupportedTools::Refuse => responses_openai::untranslatable(&tools, &items)?,
        UnsupportedTools::Omit => responses_openai::untranslatable_items(&items)?,
    };
    let message = format!(
        "{what} is not available on target `{}/{}`: it speaks chat completions, not the \
         Responses API; route this request to an `openai` or `azure-openai` provider (or an \
         `openai-compatible` one with `responsesApi: true`)",
        provider.name, model
    );
    let v = json!({"error": {
        "message": message, "type": "invalid_request_error", "param": "tools",
        "code": "unsupported_tool",
    }});
    Some((400, Bytes::from(v.to_string())))
}

/// A whole answer for a Responses client. A chat completion (`native` false) becomes a
/// response object and is kept; a native answer is relayed as is and its id remembered
/// with `target`. Errors are OpenAI-shaped either way and go as they are.
pub fn whole_answer(turn: &Turn, status: u16, body: Bytes, native: bool, target: &str) -> Bytes {
    if !(200..300).contains(&status) {
        return body;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    if native {
        if let Some(id) = v["id"].as_str() {
            turn.keep_native(id, target);
        }
        return body;
    }
    let model = v["model"].as_str().unwrap_or_default().to_owned();
    let model = target.split_once('/').map_or(model.as_str(), |(_, m)| m);
    let r = responses_openai::response(&v, &turn.echo, model);
    turn.keep(&r);
    Bytes::from(r.to_string())
}

/// Chat chunks → Responses events, keeping the response once it completed.
#[derive(Debug)]
pub struct Events {
    stream: responses_openai::Stream,
    turn: Arc<Turn>,
}

impl Events {
    pub fn new(turn: &Arc<Turn>, model: &str) -> Self {
        Self {
            stream: responses_openai::Stream::new(turn.echo.clone(), model),
            turn: Arc::clone(turn),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let out = self.stream.push(bytes);
        if let Some(r) = self.stream.completed.take() {
            self.turn.keep(&r);
        }
        out
    }

    /// The `response.failed` event of a stream broken off.
    pub fn failed(&mut self, message: &str) -> Vec<u8> {
        self.stream.failed(message)
    }
}

/// A native Responses event stream, checked as it passes: its end events become the OpenAI
/// chunks the relay's checker reads (usage and `[DONE]`, or an error), its id is remembered
/// with the target, and a break gets a `response.failed` in sequence.
#[derive(Debug)]
pub struct NativeEvents {
    parser: crate::translate::sse::Parser,
    turn: Arc<Turn>,
    target: String,
    last_seq: Option<u64>,
    response: Value,
    ended: bool,
}

impl NativeEvents {
    pub fn new(turn: &Arc<Turn>, target: String) -> Self {
        Self {
            parser: crate::translate::sse::Parser::default(),
            turn: Arc::clone(turn),
            target,
            last_seq: None,
            response: Value::Null,
            ended: false,
        }
    }

    /// OpenAI chunks standing for the events `bytes` complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for ev in self.parser.push(bytes) {
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                // Not JSON: let the relay's checker see it and stop the stream.
                out.extend_from_slice(b"data: {\n\n");
                continue;
            };
            if let Some(n) = v["sequence_number"].as_u64() {
                self.last_seq = Some(n);
            }
            let kind = v["type"].as_str().or(ev.event.as_deref()).unwrap_or("");
            if v["response"].is_object() {
                self.response = v["response"].clone();
            }
            match kind {
                "response.created" => {
                    if let Some(id) = v["response"]["id"].as_str() {
                        self.turn.keep_native(id, &self.target);
                    }
                }
                "response.completed" | "response.incomplete" => {
                    let u = &v["response"]["usage"];
                    let chunk = json!({"choices": [], "usage": {
                        "prompt_tokens": u["input_tokens"].as_u64().unwrap_or(0),
                        "completion_tokens": u["output_tokens"].as_u64().unwrap_or(0),
                    }});
                    out.extend_from_slice(format!("data: {chunk}\n\ndata: [DONE]\n\n").as_bytes());
                    self.ended = true;
                }
                "response.failed" | "error" => {
                    let msg = v["response"]["error"]["message"]
                        .as_str()
                        .or_else(|| v["message"].as_str())
                        .unwrap_or("upstream error");
                    let chunk = json!({"error": {"message": msg}});
                    out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
                    self.ended = true;
                }
                _ => {}
            }
        }
        out
    }

    /// The `response.failed` event that ends a native stream broken off (after a blank line
    /// that ends any event cut in the middle).
    pub fn failed(&mut self, message: &str) -> Vec<u8> {
        let mut r = match &self.response {
            Value::Object(_) => self.response.clone(),
            _ => self.turn.echo.response("", "failed"),
        };
        r["status"] = json!("failed");
        r["error"] = json!({"code": "server_error", "message": message});
        let seq = self.last_seq.map_or(0, |n| n + 1);
        let v = json!({"type": "response.failed", "sequence_number": seq, "response": r});
        format!("\n\nevent: response.failed\ndata: {v}\n\n").into_bytes()
    }
}

/// Token usage of a native response object.
pub fn native_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct U {
        #[serde(default)]
        input_tokens: u64,
        #[serde(default)]
        output_tokens: u64,
    }
    #[derive(Deserialize)]
    struct R {
        usage: Option<U>,
    }
    let r: R = serde_json::from_slice(body).ok()?;
    r.usage.map(|u| Usage {
        input: u.input_tokens,
        output: u.output_tokens,
        ..Usage::default()
    })
}

fn kept_by_provider(id: &str, target: &str) -> ApiError {
    ApiError::invalid_field(format!(
        "Response '{}' is kept by target `{}`, not by the gateway; ask that provider",
        bounded(id),
        bounded(target)
    ))
}

/// `GET` (the stored response object) or `DELETE` of `/v1/responses/{id}` for a response the
/// gateway holds.
pub async fn held(
    store: &ResponsesStore,
    method: &http::Method,
    id: &str,
    owner: Option<&str>,
) -> Result<Bytes, ApiError> {
    let missing = || ApiError {
        code: Some("not_found"),
        ..not_found(id)
    };
    if *method == http::Method::DELETE {
        if let Some(Held::Native { target }) = store.lookup(id, owner).await {
            return Err(kept_by_provider(id, &target));
        }
        return if store.forget(id, owner).await {
            Ok(Bytes::from(
                json!({"id": id, "object": "response", "deleted": true}).to_string(),
            ))
        } else {
            Err(missing())
        };
    }
    match store.lookup(id, owner).await {
        Some(Held::Translated { response, .. }) => Ok(Bytes::from(response.to_string())),
        Some(Held::Native { target }) => Err(kept_by_provider(id, &target)),
        None => Err(missing()),
    }
}

#[cfg(test)]
mod tests;
