//! Prometheus metrics of the data plane, in a registry of their own, rendered as text on the
//! admin port.
//!
//! Every family is prefixed `switchyard_`. Recording is cheap: label values are borrowed
//! `&str`s (prometheus hashes them and looks the child up; it allocates only the first time a
//! label combination is seen), and the status code is formatted on the stack.

use std::fmt;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets in seconds, 5 ms to 120 s: LLM calls range from a cached embedding to a
/// long generation.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// `gen_ai.client.token.usage` buckets, as the GenAI semantic conventions advise.
const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// `gen_ai.client.operation.duration` buckets (seconds), as the conventions advise.
const OPERATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// `gen_ai.server.time_to_first_token` buckets (seconds), as the conventions advise.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Labels of the GenAI families: the conventions' attributes with `.` written `_`.
const GEN_AI_LABELS: &[&str] = &[
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
];

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The proxy's metric families. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    ttft: HistogramVec,
    tokens: IntCounterVec,
    input_tokens: IntCounterVec,
    upstream_attempts: IntCounterVec,
    active_streams: IntGauge,
    snapshot_version: IntGauge,
    config_reloads: IntCounterVec,
    connections_open: IntGaugeVec,
    connections_refused: IntCounterVec,
    gen_ai: GenAi,
}

/// The OpenTelemetry GenAI metrics under their Prometheus names, so dashboards built for
/// other GenAI gateways read Switchyard too.
struct GenAi {
    token_usage: HistogramVec,
    operation_duration: HistogramVec,
    time_to_first_token: HistogramVec,
}

impl GenAi {
    fn new(registry: &Registry) -> Self {
        let histogram = |name: &str, help: &str, buckets: &[f64], extra: Option<&str>| {
            let mut labels = GEN_AI_LABELS.to_vec();
            labels.extend(extra);
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                &labels,
            )
            .expect("static metric definition is valid");
            register(registry, h.clone());
            h
        };
        Self {
            token_usage: histogram(
                "gen_ai_client_token_usage",
                "gen_ai.client.token.usage: tokens per upstream operation, by gen_ai_token_type \
                 (input or output).",
                TOKEN_BUCKETS,
                Some("gen_ai_token_type"),
            ),
            operation_duration: histogram(
                "gen_ai_client_operation_duration_seconds",
                "gen_ai.client.operation.duration: time of a GenAI operation through the \
                 gateway; error_type is the status of a failed one, empty on success.",
                OPERATION_BUCKETS,
                Some("error_type"),
            ),
            time_to_first_token: histogram(
                "gen_ai_server_time_to_first_token_seconds",
                "gen_ai.server.time_to_first_token: time from the request to the first token \
                 sent to the client.",
                TTFT_BUCKETS,
                None,
            ),
        }
    }
}

/// One finished GenAI operation, for [`Metrics::gen_ai`].
#[derive(Debug, Clone, Copy)]
pub struct GenAiOperation<'a> {
    /// `chat`, `embeddings`.
    pub operation: &'a str,
    /// The catalogue name of the provider that served (or was last tried).
    pub provider: &'a str,
    pub request_model: &'a str,
    pub response_model: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub ttft: Option<Duration>,
    pub usage: Option<crate::api::Usage>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The registry, for families other modules own (budgets, auth).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = counter_vec(
            &registry,
            "switchyard_requests_total",
            "Client requests finished, by route, provider, model and response status.",
            &["route", "provider", "model", "status"],
        );
        let request_duration = histogram_vec(
            &registry,
            "switchyard_request_duration_seconds",
            "Time from the client request to the end of the response.",
        );
        let ttft = histogram_vec(
            &registry,
            "switchyard_time_to_first_token_seconds",
            "Time from the client request to the first response body byte.",
        );
        let tokens = counter_vec(
            &registry,
            "switchyard_tokens_total",
            "Tokens billed by providers, by direction (input or output).",
            &["provider", "model", "direction"],
        );
        let input_tokens = counter_vec(
            &registry,
            "switchyard_input_tokens_total",
            "Input tokens by route and target, split by whether the provider read them from its prompt cache (cache=\"cached\") or not (\"uncached\").",
            &["route", "provider", "model", "cache"],
        );
        let upstream_attempts = counter_vec(
            &registry,
            "switchyard_upstream_attempts_total",
            "Upstream attempts by outcome: ok, retry, failover or error.",
            &["route", "provider", "outcome"],
        );
        let active_streams = gauge(
            &registry,
            "switchyard_active_streams",
            "Streamed responses in flight.",
        );
        let snapshot_version = gauge(
            &registry,
            "switchyard_snapshot_version",
            "Version of the routing snapshot being served.",
        );
        let config_reloads = counter_vec(
            &registry,
            "switchyard_config_reloads_total",
            "Configuration reloads that were applied (ok) or rejected (error).",
            &["result"],
        );
        let build_info = IntGaugeVec::new(
            Opts::new(
                "switchyard_build_info",
                "Version, source revision and snapshot IR version of this build; always 1.",
            ),
            &["component", "version", "revision", "ir_version"],
        )
        .expect("static metric definition is valid");
        register(&registry, build_info.clone());
        build_info
            .with_label_values(&[
                "proxy",
                switchyard_build_info::VERSION,
                switchyard_build_info::REVISION,
                &switchyard_dsl::ir::IR_VERSION.to_string(),
            ])
            .set(1);
        let connections_open = IntGaugeVec::new(
            Opts::new(
                "switchyard_connections_open",
                "Connections open, by listener (client or admin).",
            ),
            &["listener"],
        )
        .expect("static metric definition is valid");
        register(&registry, connections_open.clone());
        let connections_refused = counter_vec(
            &registry,
            "switchyard_connections_refused_total",
            "Connections refused because the listener's connection cap was reached.",
            &["listener"],
        );
        // Both results appear from the start, so `rate()` and alerts see zeros, not gaps.
        config_reloads.with_label_values(&["ok"]);
        config_reloads.with_label_values(&["error"]);
        let gen_ai = GenAi::new(&registry);
        Self {
            registry,
            requests,
            request_duration,
            ttft,
            tokens,
            input_tokens,
            upstream_attempts,
            active_streams,
            snapshot_version,
            config_reloads,
            connections_open,
            connections_refused,
            gen_ai,
        }
    }

    /// The GenAI families of one operation that reached a route.
    pub fn gen_ai(&self, op: &GenAiOperation<'_>) {
        let g = &self.gen_ai;
        let labels = [
            op.operation,
            op.provider,
            op.request_model,
            op.response_model,
        ];
        let mut buf = [0u8; 5];
        let error = if (200..400).contains(&op.status) {
            ""
        } else {
            status_label(op.status, &mut buf)
        };
        let [a, b, c, d] = labels;
        g.operation_duration
            .with_label_values(&[a, b, c, d, error])
            .observe(op.duration.as_secs_f64());
        if let Some(t) = op.ttft {
            g.time_to_first_token
                .with_label_values(&labels)
                .observe(t.as_secs_f64());
        }
        if let Some(u) = op.usage {
            g.token_usage
                .with_label_values(&[a, b, c, d, "input"])
                .observe(u.input as f64);
            g.token_usage
                .with_label_values(&[a, b, c, d, "output"])
                .observe(u.output as f64);
        }
    }

    /// The connection gauge and refusal counter of `listener` (`client` or `admin`).
    pub fn listener(&self, listener: &str) -> crate::listener::ListenerMetrics {
        crate::listener::ListenerMetrics {
            open: self.connections_open.with_label_values(&[listener]),
            refused: self.connections_refused.with_label_values(&[listener]),
        }
    }

    /// One client request is done. `ttft` is `None` when no body byte was sent.
    pub fn request_finished(
        &self,
        route: &str,
        provider: &str,
        model: &str,
        status: u16,
        duration: Duration,
        ttft: Option<Duration>,
    ) {
        let mut buf = [0u8; 5];
        let status = status_label(status, &mut buf);
        self.requests
            .with_label_values(&[route, provider, model, status])
            .inc();
        self.request_duration
            .with_label_values(&[route, provider])
            .observe(duration.as_secs_f64());
        if let Some(ttft) = ttft {
            self.ttft
                .with_label_values(&[route, provider])
                .observe(ttft.as_secs_f64());
        }
    }

    /// Tokens of one response, as the provider reported them (or as estimated).
    pub fn tokens(&self, provider: &str, model: &str, input: u64, output: u64) {
        if input > 0 {
            self.tokens
                .with_label_values(&[provider, model, "input"])
                .inc_by(input);
        }
        if output > 0 {
            self.tokens
                .with_label_values(&[provider, model, "output"])
                .inc_by(output);
        }
    }

    /// A route's input tokens at a target, `cached` of them from the provider's prompt cache:
    /// the share of cached input per route and target is `cached / (cached + uncached)`.
    pub fn input_tokens(&self, route: &str, provider: &str, model: &str, input: u64, cached: u64) {
        let cached = cached.min(input);
        for (label, n) in [("cached", cached), ("uncached", input - cached)] {
            if n > 0 {
                self.input_tokens
                    .with_label_values(&[route, provider, model, label])
                    .inc_by(n);
            }
        }
    }

    /// One upstream attempt ended; `outcome` is `ok`, `retry`, `failover` or `error`.
    pub fn upstream_attempt(&self, route: &str, provider: &str, outcome: &str) {
        self.upstream_attempts
            .with_label_values(&[route, provider, outcome])
            .inc();
    }

    pub fn stream_started(&self) {
        self.active_streams.inc();
    }

    pub fn stream_finished(&self) {
        self.active_streams.dec();
    }

    /// The snapshot version now being served.
    pub fn set_snapshot_version(&self, version: u64) {
        self.snapshot_version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
    }

    /// A configuration reload was applied (`true`) or rejected (`false`).
    pub fn config_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.config_reloads.with_label_values(&[result]).inc();
    }

    /// Every family in the Prometheus text exposition format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec fails only on invalid metric names, which are constants here.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Formats `status` into `buf` without allocating (HTTP status codes have three digits).
fn status_label(status: u16, buf: &mut [u8; 5]) -> &str {
    let mut n = status;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

fn register<C: prometheus::core::Collector + 'static>(registry: &Registry, c: C) {
    registry
        .register(Box::new(c))
        .expect("metric names are unique within the registry");
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("static metric definition is valid");
    register(registry, c.clone());
    c
}

fn histogram_vec(registry: &Registry, name: &str, help: &str) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        &["route", "provider"],
    )
    .expect("static metric definition is valid");
    register(registry, h.clone());
    h
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition is valid");
    register(registry, g.clone());
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_format_on_the_stack() {
        let mut buf = [0u8; 5];
        assert_eq!(status_label(200, &mut buf), "200");
        assert_eq!(status_label(0, &mut buf), "0");
        assert_eq!(status_label(65535, &mut buf), "65535");
        assert_eq!(status_label(7, &mut buf), "7");
    }

    #[test]
    fn gen_ai_families_follow_the_semantic_conventions() {
        let m = Metrics::new();
        let op = GenAiOperation {
            operation: "chat",
            provider: "openai",
            request_model: "gpt-4o",
            response_model: "gpt-4o-2024-08-06",
            status: 200,
            duration: Duration::from_millis(300),
            ttft: Some(Duration::from_millis(30)),
            usage: Some(crate::api::Usage {
                input: 100,
                output: 5000,
                ..Default::default()
            }),
        };
        m.gen_ai(&op);
        m.gen_ai(&GenAiOperation {
            status: 502,
            ttft: None,
            usage: None,
            ..op
        });
        let text = m.render();
        let labels = r#"gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",gen_ai_response_model="gpt-4o-2024-08-06""#;
        for line in [
            format!(
                r#"gen_ai_client_token_usage_bucket{{{labels},gen_ai_token_type="output",le="4096"}} 0"#
            ),
            format!(
                r#"gen_ai_client_token_usage_bucket{{{labels},gen_ai_token_type="output",le="16384"}} 1"#
            ),
            format!(r#"gen_ai_client_token_usage_sum{{{labels},gen_ai_token_type="input"}} 100"#),
            format!(
                r#"gen_ai_client_operation_duration_seconds_count{{error_type="",{labels}}} 1"#
            ),
            format!(
                r#"gen_ai_client_operation_duration_seconds_count{{error_type="502",{labels}}} 1"#
            ),
            format!(r#"gen_ai_server_time_to_first_token_seconds_bucket{{{labels},le="0.04"}} 1"#),
            format!(r#"gen_ai_server_time_to_first_token_seconds_count{{{labels}}} 1"#),
        ] {
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn render_has_every_family_after_recording() {
        let m = Metrics::new();
        m.request_finished(
            "chat",
            "openai",
            "gpt-4o",
            200,
            Duration::from_millis(120),
            Some(Duration::from_millis(40)),
        );
        m.tokens("openai", "gpt-4o", 12, 30);
        m.input_tokens("chat", "openai", "gpt-4o", 12, 8);
        m.upstream_attempt("chat", "openai", "failover");
        m.stream_started();
        m.stream_started();
        m.stream_finished();
        m.set_snapshot_version(3);
        m.config_reload(false);
        let text = m.render();
        for family in [
            "switchyard_requests_total",
            "switchyard_request_duration_seconds",
            "switchyard_time_to_first_token_seconds",
            "switchyard_tokens_total",
            "switchyard_input_tokens_total",
            "switchyard_upstream_attempts_total",
            "switchyard_active_streams",
            "switchyard_snapshot_version",
            "switchyard_config_reloads_total",
            "switchyard_build_info",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} missing:\n{text}"
            );
        }
        assert!(text.contains(
            r#"switchyard_requests_total{model="gpt-4o",provider="openai",route="chat",status="200"} 1"#
        ));
        assert!(text.contains(
            r#"switchyard_tokens_total{direction="output",model="gpt-4o",provider="openai"} 30"#
        ));
        assert!(text.contains("switchyard_active_streams 1"));
        assert!(text.contains("switchyard_snapshot_version 3"));
        assert!(text.contains(r#"switchyard_config_reloads_total{result="error"} 1"#));
        assert!(text.contains(r#"switchyard_config_reloads_total{result="ok"} 0"#));
        assert!(text.contains(r#"le="120"#));
        let build_info = format!(
            r#"switchyard_build_info{{component="proxy",ir_version="{}",revision="{}",version="{}"}} 1"#,
            switchyard_dsl::ir::IR_VERSION,
            switchyard_build_info::REVISION,
            switchyard_build_info::VERSION
        );
        assert!(text.contains(&build_info), "{build_info} missing:\n{text}");
        assert!(text.contains(r#"le="0.005"#));
    }

    #[test]
    fn registries_are_independent() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.stream_started();
        assert!(b.render().contains("switchyard_active_streams 0"));
    }
}
