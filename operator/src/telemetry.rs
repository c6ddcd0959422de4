//! OpenTelemetry traces of the operator: a `reconcile` span per reconciliation with `compile`
//! and `publish` children, off unless an OTLP endpoint is configured. The publish span's
//! context travels in the snapshot envelope (`traceparent`), so each proxy's snapshot-apply
//! span joins the trace of the edit that produced the version.
//!
//! The operator uses the SDK's tracer and batch processor on its tokio runtime, through the
//! global tracer provider (as kube-rs controllers do): spans are opened deep in the
//! reconciler, and a no-op tracer serves when tracing is off.

use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The operator's tracer name.
pub const TRACER: &str = "switchyard-operator";

/// OTLP export of the operator's traces; each flag also reads its standard variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OtelArgs {
    /// OTLP collector (`http://collector:4318` for HTTP, `:4317` for gRPC); off without it.
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_endpoint: Option<String>,
    /// `http/protobuf` or `grpc`.
    #[arg(
        long,
        value_name = "PROTOCOL",
        default_value = "http/protobuf",
        env = "OTEL_EXPORTER_OTLP_PROTOCOL"
    )]
    pub otel_protocol: String,
    /// `service.name` of the spans.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "switchyard-operator",
        env = "OTEL_SERVICE_NAME"
    )]
    pub otel_service_name: String,
}

/// Starts exporting when an endpoint is configured and installs the global tracer provider;
/// `None` when tracing is off. Call inside the tokio runtime; shut the provider down at exit
/// to flush.
pub fn init(args: &OtelArgs) -> Result<Option<SdkTracerProvider>, String> {
    let Some(base) = args
        .otel_endpoint
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    else {
        return Ok(None);
    };
    let exporter = match args.otel_protocol.as_str() {
        "grpc" => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_protocol(Protocol::Grpc)
            .with_endpoint(base)
            .build(),
        "http/protobuf" => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')))
            .build(),
        other => {
            return Err(format!(
                "--otel-protocol `{other}`: use `grpc` or `http/protobuf`"
            ));
        }
    }
    .map_err(|e| e.to_string())?;
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(args.otel_service_name.clone())
                .build(),
        )
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(Some(provider))
}

struct Traceparent(Option<String>);

impl Injector for Traceparent {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.0 = Some(value);
        }
    }
}

/// The W3C `traceparent` of the span in `cx`; `None` when it is not recording (tracing off).
pub fn traceparent(cx: &opentelemetry::Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut out = Traceparent(None);
    TraceContextPropagator::new().inject_context(cx, &mut out);
    out.0
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn the_envelope_carries_the_publish_span_as_parent() {
        assert_eq!(traceparent(&opentelemetry::Context::new()), None, "off");
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(sc);
        assert_eq!(
            traceparent(&cx).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
    }
}
