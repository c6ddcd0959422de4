//! The spans of one request: a server span for the client's request and a client span per
//! upstream attempt (retries and hedges are siblings under the server span), with the GenAI
//! semantic conventions' attributes and `switchyard.*` ones for the routing story.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::attrs::{self, Answer};
use crate::api::Usage;

/// The instrumentation scope of every span the proxy makes.
fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("switchyard-proxy")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// A span built from known parts.
#[derive(Debug)]
pub struct Parts {
    pub context: SpanContext,
    pub parent: SpanId,
    pub parent_is_remote: bool,
    pub kind: SpanKind,
    pub name: Cow<'static, str>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    pub status: Status,
}

impl Parts {
    pub fn into_span(self) -> SpanData {
        SpanData {
            span_context: self.context,
            parent_span_id: self.parent,
            parent_span_is_remote: self.parent_is_remote,
            span_kind: self.kind,
            name: self.name,
            start_time: self.start,
            end_time: self.end,
            attributes: self.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: self.status,
            instrumentation_scope: scope(),
        }
    }
}

fn strings(items: &[String]) -> Value {
    Value::Array(Array::String(
        items.iter().map(|s| StringValue::from(s.clone())).collect(),
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What the answering attempt said, for the server span.
#[derive(Debug, Default)]
struct Served {
    provider: Option<String>,
    answer: Answer,
}

/// One request's trace: its ids, the client's parent, and the attempt spans finished so far.
#[derive(Debug)]
pub struct RequestTrace {
    pub trace_id: TraceId,
    /// The server span's id: the parent of every attempt.
    pub span_id: SpanId,
    /// The client's span, when it sent a `traceparent`.
    pub remote: SpanContext,
    /// Recorded and exported; an unsampled trace only propagates the client's context.
    pub sampled: bool,
    pub capture_content: bool,
    pub start: SystemTime,
    attempts: Mutex<Vec<SpanData>>,
    served: Mutex<Served>,
    request: Mutex<Asked>,
}

/// What the client asked for beyond the model: sampling parameters, and the prompt with the
/// content opt-in.
#[derive(Debug, Default)]
struct Asked {
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    prompt: Option<String>,
}

impl RequestTrace {
    pub fn new(
        trace_id: TraceId,
        span_id: SpanId,
        remote: SpanContext,
        sampled: bool,
        capture_content: bool,
    ) -> Self {
        Self {
            trace_id,
            span_id,
            remote,
            sampled,
            capture_content,
            start: SystemTime::now(),
            attempts: Mutex::new(Vec::new()),
            served: Mutex::new(Served::default()),
            request: Mutex::new(Asked::default()),
        }
    }

    /// Notes the request's parameters from its (OpenAI chat or embeddings) `body`.
    pub fn note_request(&self, body: &[u8], max_tokens: Option<u64>) {
        if !self.sampled {
            return;
        }
        let asked = Asked {
            max_tokens,
            temperature: attrs::temperature(body),
            prompt: self.capture_content.then(|| attrs::prompt(body)).flatten(),
        };
        if let Ok(mut r) = self.request.lock() {
            *r = asked;
        }
    }

    fn flags(&self) -> TraceFlags {
        if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        }
    }

    /// The finished attempt spans, taken.
    pub fn take_attempts(&self) -> Vec<SpanData> {
        self.attempts
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default()
    }

    /// The server span from what the request's context says.
    pub fn server_span(&self, s: ServerSpan<'_>) -> SpanData {
        let op = attrs::operation(s.endpoint);
        let mut a = vec![
            KeyValue::new("http.request.method", s.method.to_owned()),
            KeyValue::new("url.path", s.path.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(s.status)),
            KeyValue::new("gen_ai.operation.name", op),
            KeyValue::new("switchyard.attempts", i64::from(s.attempts)),
            KeyValue::new("switchyard.stream", s.stream),
        ];
        let mut push = |k: &'static str, v: Option<Value>| {
            if let Some(v) = v {
                a.push(KeyValue::new(k, v));
            }
        };
        let text = |v: Option<&str>| v.map(|v| Value::from(v.to_owned()));
        push("gen_ai.request.model", text(s.requested_model));
        if let Ok(r) = self.request.lock() {
            push(
                "gen_ai.request.max_tokens",
                r.max_tokens.map(|n| Value::I64(n as i64)),
            );
            push("gen_ai.request.temperature", r.temperature.map(Value::F64));
            if self.capture_content {
                push("gen_ai.input.messages", r.prompt.clone().map(Value::from));
            }
        }
        push("switchyard.route", text(s.route));
        push("switchyard.provider", text(s.provider));
        push("switchyard.target.model", text(s.model));
        push(
            "gen_ai.usage.input_tokens",
            s.usage.map(|u| Value::I64(u.input as i64)),
        );
        push(
            "gen_ai.usage.output_tokens",
            s.usage.map(|u| Value::I64(u.output as i64)),
        );
        push(
            "switchyard.time_to_first_token_ms",
            s.ttft.map(|t| Value::F64(ms(t))),
        );
        push(
            "switchyard.failover.reasons",
            (!s.rerouted.is_empty()).then(|| strings(s.rerouted)),
        );
        push("switchyard.hedge", text(s.hedged));
        push("switchyard.cache", text(s.cache));
        push("switchyard.budget", text(s.budget));
        push("switchyard.budget.downgraded", text(s.downgraded));
        push("switchyard.client.key_id", text(s.key_id));
        push("switchyard.client.team", text(s.team));
        push(
            "error.type",
            s.error.map(|_| Value::from(error_type(s.status))),
        );
        push("switchyard.error", text(s.error));
        if let Ok(served) = self.served.lock() {
            push(
                "gen_ai.provider.name",
                served.provider.clone().map(Value::from),
            );
            let ans = &served.answer;
            push("gen_ai.response.id", ans.id.clone().map(Value::from));
            push(
                "gen_ai.response.model",
                ans.model
                    .clone()
                    .or_else(|| s.model.map(str::to_owned))
                    .map(Value::from),
            );
            push(
                "gen_ai.response.finish_reasons",
                (!ans.finish_reasons.is_empty()).then(|| strings(&ans.finish_reasons)),
            );
            if self.capture_content {
                push(
                    "gen_ai.output.messages",
                    ans.content.clone().map(Value::from),
                );
            }
        }
        let status = if s.status >= 500 || s.status == 0 {
            Status::error(s.error.unwrap_or("").to_owned())
        } else {
            Status::Unset
        };
        let name = match s.requested_model {
            Some(m) => Cow::Owned(format!("{op} {m}")),
            None => Cow::Owned(format!("{} {}", s.method, s.path)),
        };
        Parts {
            context: SpanContext::new(
                self.trace_id,
                self.span_id,
                self.flags(),
                false,
                self.remote.trace_state().clone(),
            ),
            parent: if self.remote.is_valid() {
                self.remote.span_id()
            } else {
                SpanId::INVALID
            },
            parent_is_remote: self.remote.is_valid(),
            kind: SpanKind::Server,
            name,
            start: self.start,
            end: SystemTime::now(),
            attributes: a,
            status,
        }
        .into_span()
    }
}

/// `error.type` of a response status.
fn error_type(status: u16) -> String {
    match status {
        0 => "client_closed".into(),
        s => s.to_string(),
    }
}

/// What the server span is built from (borrowed from the request's context).
#[derive(Debug)]
pub struct ServerSpan<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub endpoint: &'a str,
    pub status: u16,
    pub requested_model: Option<&'a str>,
    pub route: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub attempts: u32,
    pub stream: bool,
    pub usage: Option<Usage>,
    pub ttft: Option<Duration>,
    pub rerouted: &'a [String],
    pub hedged: Option<&'a str>,
    pub cache: Option<&'a str>,
    pub budget: Option<&'a str>,
    pub downgraded: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub team: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// One upstream attempt's client span. Recorded when dropped: an attempt dropped before it
/// was finished (a hedge's loser, whose future was cancelled) is recorded as cancelled.
#[derive(Debug)]
pub struct AttemptSpan {
    trace: Arc<RequestTrace>,
    context: SpanContext,
    start: SystemTime,
    started: std::time::Instant,
    attributes: Vec<KeyValue>,
    provider: String,
    model: String,
    outcome: Option<Result<(), String>>,
    answer: Answer,
    usage: Option<Usage>,
    ttft: Option<Duration>,
}

/// Which attempt this is.
#[derive(Debug, Clone, Copy)]
pub struct AttemptOf<'a> {
    pub provider: &'a switchyard_dsl::ir::Provider,
    pub model: &'a str,
    pub endpoint: crate::api::Endpoint,
    pub stream: bool,
    /// Sent beside a slow first attempt.
    pub hedge: bool,
}

impl AttemptSpan {
    pub fn begin(trace: &Arc<RequestTrace>, span_id: SpanId, of: AttemptOf<'_>) -> Self {
        let op = match of.endpoint {
            crate::api::Endpoint::Embeddings => "embeddings",
            _ => "chat",
        };
        let provider = attrs::provider_name(of.provider);
        let attributes = vec![
            KeyValue::new("gen_ai.operation.name", op),
            KeyValue::new("gen_ai.provider.name", provider.clone()),
            KeyValue::new("gen_ai.request.model", of.model.to_owned()),
            KeyValue::new("switchyard.provider", of.provider.name.clone()),
            KeyValue::new(
                "switchyard.target",
                format!("{}/{}", of.provider.name, of.model),
            ),
            KeyValue::new("switchyard.attempt.hedge", of.hedge),
            KeyValue::new("switchyard.stream", of.stream),
        ];
        Self {
            context: SpanContext::new(
                trace.trace_id,
                span_id,
                trace.flags(),
                false,
                trace.remote.trace_state().clone(),
            ),
            trace: Arc::clone(trace),
            start: SystemTime::now(),
            started: std::time::Instant::now(),
            attributes,
            provider,
            model: of.model.to_owned(),
            outcome: None,
            answer: Answer::default(),
            usage: None,
            ttft: None,
        }
    }

    /// The context the provider request carries (`traceparent`).
    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    /// The provider answered with `status`.
    pub fn status(&mut self, status: u16) {
        self.attributes.push(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }

    /// The attempt produced its first token (a stream's first event or a whole answer).
    pub fn first_token(&mut self, body: &[u8], stream: bool) {
        if !self.trace.sampled {
            return;
        }
        self.ttft = Some(self.started.elapsed());
        let keep = self.trace.capture_content && !stream;
        self.answer = if stream {
            Answer::probe_sse(body, false)
        } else {
            Answer::probe(body, keep)
        };
    }

    /// The attempt failed before the client saw anything; `class` is `error.type`.
    pub fn failed(&mut self, class: &str, detail: &str) {
        self.attributes
            .push(KeyValue::new("error.type", class.to_owned()));
        self.outcome = Some(Err(attrs::bounded(detail, 512)));
    }

    /// The attempt's answer went to the client; `ok` = complete and well-formed.
    pub fn served(&mut self, ok: bool, usage: Option<Usage>) {
        self.usage = usage;
        self.outcome = Some(if ok {
            Ok(())
        } else {
            Err("the stream ended with an error".into())
        });
        if let Ok(mut s) = self.trace.served.lock() {
            s.provider = Some(self.provider.clone());
            s.answer = self.answer.clone();
        }
    }
}

impl Drop for AttemptSpan {
    fn drop(&mut self) {
        if !self.trace.sampled {
            return;
        }
        let mut a = std::mem::take(&mut self.attributes);
        let (outcome, status) = match &self.outcome {
            None => ("cancelled", Status::Unset),
            Some(Ok(())) => ("ok", Status::Unset),
            Some(Err(e)) => ("error", Status::error(e.clone())),
        };
        a.push(KeyValue::new("switchyard.attempt.outcome", outcome));
        if let Some(t) = self.ttft {
            a.push(KeyValue::new("switchyard.time_to_first_token_ms", ms(t)));
        }
        let ans = std::mem::take(&mut self.answer);
        a.push(KeyValue::new(
            "gen_ai.response.model",
            ans.model.unwrap_or_else(|| self.model.clone()),
        ));
        if let Some(id) = ans.id {
            a.push(KeyValue::new("gen_ai.response.id", id));
        }
        if !ans.finish_reasons.is_empty() {
            a.push(KeyValue::new(
                "gen_ai.response.finish_reasons",
                strings(&ans.finish_reasons),
            ));
        }
        if let Some(u) = self.usage {
            a.push(KeyValue::new("gen_ai.usage.input_tokens", u.input as i64));
            a.push(KeyValue::new("gen_ai.usage.output_tokens", u.output as i64));
        }
        let op = a
            .first()
            .map(|kv| kv.value.as_str().into_owned())
            .unwrap_or_default();
        let span = Parts {
            context: self.context.clone(),
            parent: self.trace.span_id,
            parent_is_remote: false,
            kind: SpanKind::Client,
            name: Cow::Owned(format!("{op} {}", self.model)),
            start: self.start,
            end: SystemTime::now(),
            attributes: a,
            status,
        }
        .into_span();
        if let Ok(mut spans) = self.trace.attempts.lock() {
            spans.push(span);
        }
    }
}

/// The span of a snapshot pushed by the operator, applied or refused: a child of the
/// operator's publish span when the envelope names it (`traceparent`), else a trace of its own.
/// `ids` are the span's id and the trace id used when there is no parent.
pub fn apply_span(
    ids: (TraceId, SpanId),
    traceparent: Option<&str>,
    ack: &switchyard_dsl::channel::Ack,
    start: SystemTime,
) -> SpanData {
    let remote = traceparent
        .and_then(|tp| http::HeaderValue::from_str(tp).ok())
        .map(|v| {
            let mut h = http::HeaderMap::new();
            h.insert("traceparent", v);
            use opentelemetry::trace::TraceContextExt;
            super::propagate::extract(&h).span().span_context().clone()
        })
        .filter(SpanContext::is_valid);
    let trace_id = remote.as_ref().map_or(ids.0, SpanContext::trace_id);
    let mut attributes = vec![
        KeyValue::new("switchyard.snapshot.version", ack.version as i64),
        KeyValue::new("switchyard.snapshot.hash", ack.hash.clone()),
        KeyValue::new("switchyard.snapshot.applied", ack.applied),
        KeyValue::new("k8s.pod.name", ack.pod.clone()),
    ];
    let status = match &ack.error {
        Some(e) => {
            attributes.push(KeyValue::new("error.type", "refused"));
            Status::error(e.clone())
        }
        None => Status::Unset,
    };
    Parts {
        context: SpanContext::new(
            trace_id,
            ids.1,
            TraceFlags::SAMPLED,
            false,
            opentelemetry::trace::TraceState::default(),
        ),
        parent: remote
            .as_ref()
            .map_or(SpanId::INVALID, SpanContext::span_id),
        parent_is_remote: remote.is_some(),
        kind: SpanKind::Consumer,
        name: Cow::Borrowed("apply snapshot"),
        start,
        end: SystemTime::now(),
        attributes,
        status,
    }
    .into_span()
}

#[cfg(test)]
mod tests {
    use switchyard_dsl::channel::Ack;

    use super::*;

    fn ack(error: Option<&str>) -> Ack {
        Ack {
            pod: "proxy-0".into(),
            version: 7,
            hash: "abc".into(),
            applied: error.is_none(),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn an_apply_span_joins_the_operators_trace_when_the_envelope_names_it() {
        let own = (
            TraceId::from_hex("11111111111111111111111111111111").expect("hex"),
            SpanId::from_hex("2222222222222222").expect("hex"),
        );
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let s = apply_span(own, Some(tp), &ack(None), SystemTime::now());
        assert_eq!(
            s.span_context.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex")
        );
        assert_eq!(
            s.parent_span_id,
            SpanId::from_hex("00f067aa0ba902b7").expect("hex")
        );
        assert!(s.parent_span_is_remote);
        assert_eq!(s.span_context.span_id(), own.1);
        assert!(
            s.attributes
                .contains(&KeyValue::new("switchyard.snapshot.version", 7))
        );
        assert_eq!(s.status, Status::Unset);

        // No (or a broken) context: a trace of its own; a refusal is an error.
        for tp in [None, Some("00-garbage")] {
            let s = apply_span(own, tp, &ack(Some("unknown IR version")), SystemTime::now());
            assert_eq!(s.span_context.trace_id(), own.0);
            assert_eq!(s.parent_span_id, SpanId::INVALID);
            assert!(matches!(s.status, Status::Error { .. }));
        }
    }
}
