//! OpenTelemetry traces of the data plane, off unless an OTLP endpoint is configured.
//!
//! Spans are not threaded through pingora's phases: a sampled request carries a
//! [`RequestTrace`] in its context, each upstream attempt records a client span with its own
//! start and end ([`AttemptSpan`], dropped = cancelled, as a hedge's loser is), and the server
//! span is built from the request's context when the request is logged. Finished spans go
//! to a bounded queue that a background thread exports in batches ([`export`]); a full queue
//! or a dead collector drops spans and counts them, never slows a request.
//!
//! ```text
//!  traceparent ─▶ start ─▶ RequestTrace ─▶ attempt spans (traceparent to the provider)
//!                                 └──────▶ finish: server span ─▶ queue ─▶ exporter thread
//! ```

pub mod attrs;
pub mod export;
pub mod propagate;
pub mod settings;
pub mod spans;

use std::sync::Arc;

use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample,
};
use pingora::http::RequestHeader;

pub use self::settings::TelemetrySettings;
pub use self::spans::{AttemptSpan, RequestTrace};

/// The tracer of one process: sampling, content capture, and the export queue.
#[derive(Debug)]
pub struct Telemetry {
    sampler: Sampler,
    ids: RandomIdGenerator,
    /// Prompt and completion content on spans (`--otel-capture-content`).
    pub capture_content: bool,
    exporter: export::Queue,
}

impl Telemetry {
    /// Starts the exporter thread when `settings` name an endpoint; `None` when tracing is
    /// off. Counts its spans in `registry`.
    pub fn start(
        settings: &TelemetrySettings,
        service: &str,
        registry: &prometheus::Registry,
    ) -> crate::Result<Option<Arc<Self>>> {
        let Some(config) = settings.exporter(service)? else {
            return Ok(None);
        };
        let exporter = export::Queue::start(config, registry)?;
        let ratio = settings.otel_sample_ratio;
        Ok(Some(Arc::new(Self {
            sampler: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))),
            ids: RandomIdGenerator::default(),
            capture_content: settings.otel_capture_content,
            exporter,
        })))
    }

    /// The trace of a request with header `req`: the client's `traceparent` continued, else a
    /// new trace. `None` when neither sampled nor carrying a client context to propagate.
    pub fn begin(&self, req: &RequestHeader) -> Option<Arc<RequestTrace>> {
        let parent = propagate::extract(&req.headers);
        let remote = parent.span().span_context().clone();
        let trace_id = if remote.is_valid() {
            remote.trace_id()
        } else {
            self.ids.new_trace_id()
        };
        let sampled = self
            .sampler
            .should_sample(Some(&parent), trace_id, "", &SpanKind::Server, &[], &[])
            .decision
            == SamplingDecision::RecordAndSample;
        if !sampled && !remote.is_valid() {
            return None;
        }
        Some(Arc::new(RequestTrace::new(
            trace_id,
            self.ids.new_span_id(),
            remote,
            sampled,
            self.capture_content,
        )))
    }

    /// Builds the request's server span and hands it, with its attempt spans, to the
    /// exporter.
    pub fn finish(&self, trace: &RequestTrace, server: spans::ServerSpan<'_>) {
        if !trace.sampled {
            return;
        }
        let mut batch = trace.take_attempts();
        batch.push(trace.server_span(server));
        self.exporter.send(batch);
    }

    /// Exports one span built elsewhere (the snapshot apply span).
    pub fn export(&self, span: opentelemetry_sdk::trace::SpanData) {
        self.exporter.send(vec![span]);
    }

    /// A new span id, for spans built outside a request.
    pub fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        self.ids.new_span_id()
    }

    /// A new trace id, for spans built outside a request.
    pub fn new_trace_id(&self) -> opentelemetry::trace::TraceId {
        self.ids.new_trace_id()
    }
}
