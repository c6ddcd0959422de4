//! The scriptable state of one server: queued faults, the default fault, the current
//! behaviour, and the log of API requests received.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::config::{Behaviour, BehaviourPatch, Config};
use crate::fault::{Fault, FaultSpec};

/// Headers whose values never reach the log, only their presence.
pub const REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
];

/// What a redacted header's value is logged as.
pub const REDACTED: &str = "[redacted]";

/// The log keeps at most this many requests, dropping the oldest.
pub const MAX_LOGGED_REQUESTS: usize = 10_000;

/// A body for `POST /_mock/script`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Script {
    /// Faults appended to the queue; each API request consumes the first entry that matches.
    pub faults: Vec<FaultSpec>,
    /// When present, replaces the fault applied to requests the queue does not cover
    /// (`{"kind":"none"}` clears it).
    pub default: Option<Fault>,
    /// When present, changes timing and length fields of healthy answers.
    pub behaviour: Option<BehaviourPatch>,
}

/// One API request as received, for `GET /_mock/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// 1 for the first API request since start or reset, then 2, 3, ...
    pub seq: u64,
    /// Which connection it came on (1 for the server's first), to observe keep-alive.
    pub connection: u64,
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Header names (lower case) to values; repeated headers joined with `, `;
    /// credentials replaced by [`REDACTED`].
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON; a string if it is not JSON; `null` if empty.
    pub body: serde_json::Value,
    /// The fault applied to the request, if any.
    pub fault: Option<Fault>,
    /// The client went away before the response was complete (a hedge's loser, a client
    /// timeout): observable proof that a gateway closed the connection.
    #[serde(default)]
    pub cancelled: bool,
}

/// Shared by every connection of one server.
#[derive(Debug)]
pub struct State {
    config: Config,
    ids: AtomicU64,
    inner: Mutex<Inner>,
    /// Responses API conversations, for `previous_response_id`.
    pub responses: crate::responses::Conversations,
    /// Chat prompts seen, when the server reports cached input.
    pub prompt_cache: crate::prompt_cache::PromptCache,
}

#[derive(Debug)]
struct Inner {
    queue: VecDeque<FaultSpec>,
    default: Option<Fault>,
    behaviour: Behaviour,
    log: VecDeque<RecordedRequest>,
    seq: u64,
}

impl Inner {
    fn from_config(config: &Config) -> Self {
        Self {
            queue: config.faults.iter().cloned().collect(),
            default: config.default_fault.clone(),
            behaviour: config.behaviour.clone(),
            log: VecDeque::new(),
            seq: 0,
        }
    }
}

impl State {
    /// Fresh state for a server started with `config`.
    pub fn new(config: Config) -> Self {
        let inner = Mutex::new(Inner::from_config(&config));
        Self {
            config,
            ids: AtomicU64::new(0),
            inner,
            responses: crate::responses::Conversations::default(),
            prompt_cache: crate::prompt_cache::PromptCache::default(),
        }
    }

    /// The configuration the server started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave this plain data half-written in a harmful way.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Apply a script: queue its faults, set its default and behaviour.
    pub fn apply(&self, script: Script) {
        let mut inner = self.lock();
        inner
            .queue
            .extend(script.faults.into_iter().filter(|f| f.times > 0));
        if let Some(default) = script.default {
            inner.default = (!default.is_none()).then_some(default);
        }
        if let Some(patch) = script.behaviour {
            inner.behaviour = inner.behaviour.patched(&patch);
        }
    }

    /// Back to the state at start: config faults and behaviour, empty log.
    pub fn reset(&self) {
        *self.lock() = Inner::from_config(&self.config);
        self.responses.clear();
    }

    /// The behaviour for the next healthy answer.
    pub fn behaviour(&self) -> Behaviour {
        self.lock().behaviour.clone()
    }

    /// The faults still queued.
    pub fn queued(&self) -> Vec<FaultSpec> {
        self.lock().queue.iter().cloned().collect()
    }

    /// The queue, default fault and behaviour, for `GET /_mock/script`.
    pub fn describe(&self) -> serde_json::Value {
        let inner = self.lock();
        serde_json::json!({
            "faults": inner.queue,
            "default": inner.default,
            "behaviour": inner.behaviour,
            "requests": inner.log.len(),
        })
    }

    /// The fault for a request to `path`: the `x-mock-fault` header if given (the queue is
    /// left alone), else the first queue entry matching the path (consumed), else the default.
    pub fn next_fault(&self, path: &str, header: Option<&str>) -> Result<Fault, String> {
        if let Some(text) = header {
            return Fault::from_json(text);
        }
        let mut inner = self.lock();
        if let Some(i) = inner.queue.iter().position(|f| f.matches(path)) {
            let entry = &mut inner.queue[i];
            let fault = entry.fault.clone();
            entry.times -= 1;
            if entry.times == 0 {
                inner.queue.remove(i);
            }
            return Ok(fault);
        }
        Ok(inner.default.clone().unwrap_or(Fault::None))
    }

    /// Add a request to the log, numbering it; returns its `seq`.
    pub fn record(&self, mut request: RecordedRequest) -> u64 {
        let mut inner = self.lock();
        inner.seq += 1;
        request.seq = inner.seq;
        if inner.log.len() == MAX_LOGGED_REQUESTS {
            inner.log.pop_front();
        }
        inner.log.push_back(request);
        inner.seq
    }

    /// Marks request `seq` as cancelled by its client (when it is still in the log).
    pub fn mark_cancelled(&self, seq: u64) {
        if let Some(r) = self.lock().log.iter_mut().find(|r| r.seq == seq) {
            r.cancelled = true;
        }
    }

    /// The logged requests, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().log.iter().cloned().collect()
    }

    /// A number unique within this server's life, for ids.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// Headers as the log shows them: lower-case names, credentials redacted.
pub fn redact_headers(headers: &hyper::HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        let value = if REDACTED_HEADERS.contains(&name) {
            REDACTED.to_owned()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        out.entry(name.to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

/// A body as the log shows it.
pub fn body_value(bytes: &[u8]) -> serde_json::Value {
    if bytes.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).expect("valid spec")
    }

    #[test]
    fn queue_is_consumed_in_order_with_paths_and_times() {
        let state = State::new(Config::default());
        state.apply(Script {
            faults: vec![
                spec(r#"{"kind":"status","status":500,"path":"/v1/embeddings"}"#),
                spec(r#"{"kind":"reset","times":2}"#),
            ],
            ..Script::default()
        });
        let chat = "/v1/chat/completions";
        assert_eq!(state.next_fault(chat, None), Ok(Fault::Reset));
        assert!(matches!(
            state.next_fault("/v1/embeddings", None),
            Ok(Fault::Status { status: 500, .. })
        ));
        assert_eq!(state.next_fault(chat, None), Ok(Fault::Reset));
        assert_eq!(state.next_fault(chat, None), Ok(Fault::None));
    }

    #[test]
    fn header_wins_without_consuming_and_default_applies_until_reset() {
        let state = State::new(Config::default());
        state.apply(Script {
            faults: vec![FaultSpec::from(Fault::Reset)],
            default: Some(Fault::RateLimit {
                retry_after: 1,
                message: None,
            }),
            behaviour: None,
        });
        let header = Some(r#"{"kind":"none"}"#);
        assert_eq!(state.next_fault("/v1/models", header), Ok(Fault::None));
        assert_eq!(state.next_fault("/v1/models", None), Ok(Fault::Reset));
        assert!(matches!(
            state.next_fault("/v1/models", None),
            Ok(Fault::RateLimit { .. })
        ));
        state.reset();
        assert_eq!(state.next_fault("/v1/models", None), Ok(Fault::None));
        assert!(state.next_fault("/v1/models", Some("{")).is_err());
    }

    #[test]
    fn headers_are_redacted() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("authorization", "Bearer sk-secret".parse().expect("value"));
        headers.insert("x-api-key", "secret".parse().expect("value"));
        headers.append("x-team", "a".parse().expect("value"));
        headers.append("x-team", "b".parse().expect("value"));
        let logged = redact_headers(&headers);
        assert_eq!(logged["authorization"], REDACTED);
        assert_eq!(logged["x-api-key"], REDACTED);
        assert_eq!(logged["x-team"], "a, b");
    }
}
