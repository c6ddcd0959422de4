//! The tracing flags, each also read from the standard `OTEL_*` variable, so a chart or an
//! OpenTelemetry operator that injects those configures the proxy unchanged.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};

/// OTLP export of traces.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetrySettings {
    /// OTLP collector, e.g. `http://otel-collector:4318` (HTTP) or `http://otel-collector:4317`
    /// (gRPC). Tracing is off without it (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). For
    /// HTTP, `/v1/traces` is appended as the OTLP specification says.
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

    /// Headers sent to the collector, `key=value,key2=value2` (an auth token, say).
    #[arg(long, value_name = "LIST", env = "OTEL_EXPORTER_OTLP_HEADERS")]
    pub otel_headers: Option<String>,

    /// `service.name` of the spans.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "switchyard-proxy",
        env = "OTEL_SERVICE_NAME"
    )]
    pub otel_service_name: String,

    /// Share of new traces recorded, 0 to 1. A client's sampled `traceparent` is always
    /// followed (parent-based sampling).
    #[arg(
        long,
        value_name = "RATIO",
        default_value_t = 1.0,
        env = "OTEL_TRACES_SAMPLER_ARG"
    )]
    pub otel_sample_ratio: f64,

    /// Put prompts and completions on spans (`gen_ai.input.messages`,
    /// `gen_ai.output.messages`). Off by default: content often holds personal data.
    #[arg(long, env = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")]
    pub otel_capture_content: bool,

    /// Requests whose spans may wait for export; the spans of more are dropped (and counted).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 8192,
        env = "OTEL_BSP_MAX_QUEUE_SIZE"
    )]
    pub otel_queue_size: usize,

    /// Milliseconds between exports of a partial batch.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 1000,
        env = "OTEL_BSP_SCHEDULE_DELAY"
    )]
    pub otel_schedule_delay_ms: u64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otel_endpoint: None,
            otel_protocol: "http/protobuf".into(),
            otel_headers: None,
            otel_service_name: "switchyard-proxy".into(),
            otel_sample_ratio: 1.0,
            otel_capture_content: false,
            otel_queue_size: 8192,
            otel_schedule_delay_ms: 1000,
        }
    }
}

/// What the exporter thread needs to build its exporter and batches.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    pub grpc: bool,
    /// The full URL (`/v1/traces` included for HTTP); `None` leaves it to
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub endpoint: Option<String>,
    pub headers: HashMap<String, String>,
    pub service: String,
    pub queue_size: usize,
    pub schedule_delay: Duration,
}

impl ExporterConfig {
    /// The SDK's OTLP exporter; inside a tokio runtime (tonic needs one).
    pub fn build(&self) -> Result<opentelemetry_otlp::SpanExporter, String> {
        let timeout = Duration::from_secs(10);
        let built = if self.grpc {
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_protocol(Protocol::Grpc)
                .with_timeout(timeout);
            if let Some(e) = &self.endpoint {
                b = b.with_endpoint(e);
            }
            if !self.headers.is_empty() {
                b = b.with_metadata(tonic_metadata(&self.headers)?);
            }
            b.build()
        } else {
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_timeout(timeout);
            if let Some(e) = &self.endpoint {
                b = b.with_endpoint(e);
            }
            if !self.headers.is_empty() {
                b = b.with_headers(self.headers.clone());
            }
            b.build()
        };
        built.map_err(|e| e.to_string())
    }
}

fn tonic_metadata(
    headers: &HashMap<String, String>,
) -> Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap, String> {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        let key = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("`{k}` is not a valid header name"))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| format!("the value of `{k}` is not a valid header value"))?;
        map.insert(key, value);
    }
    Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map))
}

impl TelemetrySettings {
    /// The exporter's configuration; `None` when tracing is off (no endpoint, or
    /// `OTEL_SDK_DISABLED=true`).
    pub fn exporter(&self, default_service: &str) -> crate::Result<Option<ExporterConfig>> {
        let bad = |m: String| Err(crate::Error::Settings(m));
        if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let traces_env = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .ok()
            .filter(|v| !v.trim().is_empty());
        let base = self
            .otel_endpoint
            .as_deref()
            .filter(|v| !v.trim().is_empty());
        if base.is_none() && traces_env.is_none() {
            return Ok(None);
        }
        let grpc = match self.otel_protocol.as_str() {
            "grpc" => true,
            "http/protobuf" => false,
            other => {
                return bad(format!(
                    "--otel-protocol `{other}`: use `grpc` or `http/protobuf`"
                ));
            }
        };
        if !(0.0..=1.0).contains(&self.otel_sample_ratio) {
            return bad("--otel-sample-ratio must be between 0 and 1".into());
        }
        if self.otel_queue_size == 0 {
            return bad("--otel-queue-size must be at least 1".into());
        }
        let endpoint = match (traces_env, base) {
            (Some(_), _) => None,
            (None, Some(b)) if grpc => Some(b.to_owned()),
            (None, Some(b)) => Some(format!("{}/v1/traces", b.trim_end_matches('/'))),
            (None, None) => None,
        };
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return bad(format!(
                "--otel-endpoint `{e}`: an http:// or https:// URL is expected"
            ));
        }
        let headers = parse_headers(self.otel_headers.as_deref().unwrap_or(""))
            .map_err(|e| crate::Error::Settings(format!("--otel-headers: {e}")))?;
        let service = if self.otel_service_name.is_empty() {
            default_service.to_owned()
        } else {
            self.otel_service_name.clone()
        };
        Ok(Some(ExporterConfig {
            grpc,
            endpoint,
            headers,
            service,
            queue_size: self.otel_queue_size,
            schedule_delay: Duration::from_millis(self.otel_schedule_delay_ms.max(1)),
        }))
    }
}

/// `k=v,k2=v2` as the OTLP exporter specification writes headers (values percent-decoded
/// only for `%20`, the one escape collectors' tokens need in practice).
fn parse_headers(list: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err("expected `key=value` pairs separated by commas".into());
        };
        out.insert(k.trim().to_owned(), v.trim().replace("%20", " "));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_nonsense_is_refused() {
        let h = parse_headers("authorization=Bearer%20t, x-tenant = a").expect("parses");
        assert_eq!(h["authorization"], "Bearer t");
        assert_eq!(h["x-tenant"], "a");
        assert!(parse_headers("novalue").is_err());
        assert!(parse_headers("").expect("empty").is_empty());
    }

    #[test]
    fn http_endpoints_get_the_traces_path_and_bad_settings_are_refused() {
        let s = TelemetrySettings {
            otel_endpoint: Some("http://collector:4318/".into()),
            ..TelemetrySettings::default()
        };
        let c = s.exporter("p").expect("valid").expect("on");
        assert_eq!(
            c.endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert!(!c.grpc);
        let grpc = TelemetrySettings {
            otel_protocol: "grpc".into(),
            ..s.clone()
        };
        let c = grpc.exporter("p").expect("valid").expect("on");
        assert_eq!(c.endpoint.as_deref(), Some("http://collector:4318/"));
        for bad in [
            TelemetrySettings {
                otel_protocol: "thrift".into(),
                ..s.clone()
            },
            TelemetrySettings {
                otel_sample_ratio: 1.5,
                ..s.clone()
            },
            TelemetrySettings {
                otel_endpoint: Some("collector:4318".into()),
                ..s.clone()
            },
        ] {
            assert!(bad.exporter("p").is_err(), "{bad:?}");
        }
        assert!(
            TelemetrySettings::default()
                .exporter("p")
                .expect("valid")
                .is_none(),
            "off without an endpoint"
        );
    }
}
