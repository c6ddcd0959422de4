//! OpenTelemetry traces against a real OTLP/HTTP receiver (`tests/python/otlp_receiver.py`,
//! the official `opentelemetry-proto` package decoding what the proxy exports):
//!
//! - `a_failover_reads_in_the_trace`: one server span continuing the client's `traceparent`,
//!   two attempt spans under it (the refused one and the one that answered) with GenAI
//!   attributes, and each provider request carrying its own attempt as parent; the GenAI
//!   metrics on `/metrics` count the same operation.
//! - `hedges_cache_hits_and_budget_refusals_are_explained`: the hedge's two sibling attempts
//!   (the loser cancelled), a cache hit with no attempt, a budget refusal.
//! - `content_only_with_the_opt_in`: no prompt or completion on spans by default; both with
//!   `--otel-capture-content`.
//! - `a_dead_collector_only_drops_spans`: requests succeed and the drops are counted.
//!
//! Needs `python3 -m pip install -r tests/python/requirements.txt`; fails (never skips) without.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::process::ProxyOptions;
use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess, http, pytest};

const POLICY: &str = r#"
route chat {
  when model == "gpt-4o"
  use mock-a/gpt-4o
  failover to mock-b/gpt-4o
}

route hedged {
  when model == "hedged"
  use mock-a/hedged
  failover to mock-b/hedged
  hedge after 100ms
}

route cached {
  when model == "cached"
  use mock-b/cached
  cache for 10m
}

route capped {
  when model == "capped"
  use mock-b/capped
}
"#;

const BUDGET: &str = r#"apiVersion: switchyard.dev/v1alpha1
kind: Budget
metadata:
  name: tiny
spec:
  policy: |
    budget tiny {
      for route capped
      limit 1 requests per day
      on exhausted reject
    }
"#;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The Python OTLP receiver, killed when dropped.
struct Receiver {
    child: Child,
    addr: SocketAddr,
}

impl Receiver {
    fn start(args: &[&str]) -> Receiver {
        let check = Command::new(pytest::python())
            .args([
                "-c",
                "import opentelemetry.proto.collector.trace.v1.trace_service_pb2",
            ])
            .output()
            .expect("python3 runs");
        assert!(
            check.status.success(),
            "the OTLP receiver needs the `opentelemetry-proto` package in {}: run scripts/venv, \
             or `{} -m pip install -r tests/python/requirements.txt`\n{}",
            pytest::python(),
            pytest::python(),
            String::from_utf8_lossy(&check.stderr)
        );
        let script = pytest::python_dir().join("otlp_receiver.py");
        let mut child = Command::new(pytest::python())
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("a first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("the receiver said {line:?}"));
        Receiver { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn get(&self, path: &str) -> Vec<Value> {
        let r = http::get(self.addr, path).expect("the receiver answers");
        match r.json().expect("JSON") {
            Value::Array(items) => items,
            other => panic!("not a list: {other}"),
        }
    }

    /// Waits until the spans of trace `trace_id` include a server span and `attempts` client
    /// spans; returns them.
    fn trace(&self, trace_id: &str, attempts: usize) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let spans: Vec<Value> = self
                .get("/spans")
                .into_iter()
                .filter(|s| s["trace_id"] == trace_id)
                .collect();
            let servers = spans
                .iter()
                .filter(|s| s["kind"] == "SPAN_KIND_SERVER")
                .count();
            let clients = spans
                .iter()
                .filter(|s| s["kind"] == "SPAN_KIND_CLIENT")
                .count();
            if servers == 1 && clients >= attempts {
                return spans;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "trace {trace_id}: {servers} server and {clients} client spans so far: {spans:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test at a time: each binds ephemeral ports (receiver, mocks) while the proxy's ports
/// are picked free-then-bound, and parallel tests made those collide.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn setup(
    receiver_url: &str,
    extra: &[&str],
) -> (MockProcess, MockProcess, ConfigDir, ProxyProcess) {
    let (a, b) = (MockProcess::named("mock-a"), MockProcess::named("mock-b"));
    let mut config = ConfigDir::new();
    config
        .add_provider("mock-a", &a.base_url(), &["gpt-4o", "hedged"])
        .add_provider(
            "mock-b",
            &b.base_url(),
            &["gpt-4o", "hedged", "cached", "capped"],
        );
    config.write_policy(POLICY);
    config.write_file("budget.yaml", BUDGET);
    let mut args: Vec<String> = [
        "--otel-endpoint",
        receiver_url,
        "--otel-schedule-delay-ms",
        "50",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let proxy = ProxyProcess::spawn_with(
        config.path(),
        &ProxyOptions {
            args,
            env: Vec::new(),
        },
    );
    // `/readyz` answers once the admin port is up; wait for the client port too.
    let start = Instant::now();
    while std::net::TcpStream::connect(proxy.listen_addr()).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the client port never opened; log:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (a, b, config, proxy)
}

fn chat(proxy: &ProxyProcess, model: &str, traceparent: Option<&str>) -> http::Response {
    let body = json!({
        "model": model,
        "max_tokens": 64,
        "temperature": 0.25,
        "messages": [{"role": "user", "content": "Tell me about the marshalling yard."}],
    });
    let mut headers = vec![("content-type", "application/json")];
    if model == "cached" {
        // A temperature above 0 is cached only on request.
        headers.push(("x-switchyard-cache", "allow"));
    }
    if let Some(tp) = traceparent {
        headers.push(("traceparent", tp));
    }
    http::request(
        proxy.listen_addr(),
        "POST",
        "/v1/chat/completions",
        &headers,
        body.to_string().as_bytes(),
    )
    .unwrap_or_else(|e| panic!("the proxy did not answer: {e}; its log:\n{}", proxy.log()))
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

fn by_kind<'a>(spans: &'a [Value], kind: &str) -> Vec<&'a Value> {
    let mut v: Vec<&Value> = spans.iter().filter(|s| s["kind"] == kind).collect();
    v.sort_by_key(|s| s["start_ns"].as_u64());
    v
}

/// The trace id of a response's trace, from the server span the receiver got for `model`
/// after `since` spans.
fn new_trace(receiver: &Receiver, model: &str, seen: usize) -> String {
    let start = Instant::now();
    loop {
        let spans = receiver.get("/spans");
        if let Some(s) = spans
            .iter()
            .skip(seen)
            .find(|s| s["kind"] == "SPAN_KIND_SERVER" && attr(s, "gen_ai.request.model") == model)
        {
            return s["trace_id"].as_str().expect("id").to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no server span for {model}: {spans:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failover_reads_in_the_trace() {
    let _serial = serial();
    let receiver = Receiver::start(&[]);
    let (a, b, _config, proxy) = setup(&receiver.url(), &[]);
    a.script(&json!({"faults": [{"kind": "status", "status": 503}]}));
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let r = chat(&proxy, "gpt-4o", Some(&traceparent));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-provider"), Some("mock-b"));

    let spans = receiver.trace(TRACE_ID, 2);
    let server = by_kind(&spans, "SPAN_KIND_SERVER")[0];
    let attempts = by_kind(&spans, "SPAN_KIND_CLIENT");
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    assert_eq!(server["service"], "switchyard-proxy");
    assert_eq!(
        server["parent_span_id"], CLIENT_SPAN,
        "continues the client's trace"
    );
    assert_eq!(server["name"], "chat gpt-4o");
    assert_eq!(attr(server, "gen_ai.operation.name"), "chat");
    assert_eq!(attr(server, "gen_ai.request.model"), "gpt-4o");
    assert_eq!(attr(server, "gen_ai.request.max_tokens"), 64);
    assert_eq!(attr(server, "gen_ai.request.temperature"), 0.25);
    assert_eq!(attr(server, "gen_ai.provider.name"), "mock-b");
    assert_eq!(attr(server, "gen_ai.response.model"), "gpt-4o");
    assert_eq!(
        attr(server, "gen_ai.response.finish_reasons"),
        &json!(["stop"])
    );
    assert_eq!(attr(server, "switchyard.route"), "chat");
    assert_eq!(attr(server, "switchyard.attempts"), 2);
    assert_eq!(attr(server, "http.response.status_code"), 200);
    let reasons = attr(server, "switchyard.failover.reasons").to_string();
    assert!(
        reasons.contains("mock-a/gpt-4o") && reasons.contains("503"),
        "{reasons}"
    );
    let answer = r.json().expect("JSON");
    assert_eq!(attr(server, "gen_ai.response.id"), &answer["id"]);
    assert_eq!(
        attr(server, "gen_ai.usage.output_tokens"),
        &answer["usage"]["completion_tokens"]
    );
    assert!(
        attr(server, "gen_ai.input.messages").is_null(),
        "content is off by default"
    );
    assert!(attr(server, "gen_ai.output.messages").is_null());

    let (first, second) = (attempts[0], attempts[1]);
    for (attempt, provider) in [(first, "mock-a"), (second, "mock-b")] {
        assert_eq!(
            attempt["parent_span_id"], server["span_id"],
            "siblings under the server span"
        );
        assert_eq!(attempt["name"], "chat gpt-4o");
        assert_eq!(attr(attempt, "gen_ai.provider.name"), provider);
        assert_eq!(attr(attempt, "gen_ai.request.model"), "gpt-4o");
        assert_eq!(attr(attempt, "switchyard.attempt.hedge"), false);
        // The provider saw this attempt as the parent of its work.
        let mock = if provider == "mock-a" { &a } else { &b };
        let seen = mock.requests();
        let tp = seen.last().expect("a request")["headers"]["traceparent"].clone();
        assert_eq!(
            tp,
            format!(
                "00-{TRACE_ID}-{}-01",
                attempt["span_id"].as_str().expect("id")
            ),
            "{provider}"
        );
        assert!(attempt["start_ns"].as_u64() <= attempt["end_ns"].as_u64());
    }
    assert_eq!(attr(first, "http.response.status_code"), 503);
    assert_eq!(attr(first, "switchyard.attempt.outcome"), "error");
    assert_eq!(first["status_code"], 2, "STATUS_CODE_ERROR");
    assert!(!attr(first, "error.type").is_null());
    assert_eq!(attr(second, "http.response.status_code"), 200);
    assert_eq!(attr(second, "switchyard.attempt.outcome"), "ok");
    assert_eq!(attr(second, "gen_ai.response.id"), &answer["id"]);
    assert_eq!(
        attr(second, "gen_ai.usage.input_tokens"),
        &answer["usage"]["prompt_tokens"]
    );
    assert!(
        first["end_ns"].as_u64() <= second["start_ns"].as_u64(),
        "one after the other"
    );
    // The GenAI metrics count the same operation.
    let labels = r#"gen_ai_operation_name="chat",gen_ai_provider_name="mock-b",gen_ai_request_model="gpt-4o",gen_ai_response_model="gpt-4o""#;
    assert_eq!(
        proxy.metric(&format!(
            r#"gen_ai_client_token_usage_sum{{{labels},gen_ai_token_type="output"}}"#
        )),
        answer["usage"]["completion_tokens"].as_f64()
    );
    assert_eq!(
        proxy.metric(&format!(
            r#"gen_ai_client_operation_duration_seconds_count{{error_type="",{labels}}}"#
        )),
        Some(1.0)
    );
    assert_eq!(
        proxy.metric(&format!(
            r#"gen_ai_server_time_to_first_token_seconds_count{{{labels}}}"#
        )),
        Some(1.0)
    );
    // Spans are exported, and counted.
    proxy.wait_for_metric(
        "switchyard_otel_spans_exported_total",
        Duration::from_secs(10),
        |v| v >= 3.0,
    );
}

#[test]
fn hedges_cache_hits_and_budget_refusals_are_explained() {
    let _serial = serial();
    let receiver = Receiver::start(&[]);
    let (a, _b, _config, proxy) = setup(&receiver.url(), &[]);

    // A hedge: `mock-a` stalls, the hedge to `mock-b` answers, the first attempt is cancelled.
    a.script(&json!({"faults": [{"kind": "stall", "forever": true}]}));
    let r = chat(&proxy, "hedged", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let trace = new_trace(&receiver, "hedged", 0);
    let spans = receiver.trace(&trace, 2);
    let server = by_kind(&spans, "SPAN_KIND_SERVER")[0];
    let attempts = by_kind(&spans, "SPAN_KIND_CLIENT");
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    assert!(
        attr(server, "switchyard.hedge")
            .as_str()
            .is_some_and(|h| h.contains("mock-b/hedged answered first")),
        "{server:#?}"
    );
    assert_eq!(attr(attempts[0], "switchyard.attempt.hedge"), false);
    assert_eq!(attr(attempts[0], "switchyard.attempt.outcome"), "cancelled");
    assert_eq!(attr(attempts[1], "switchyard.attempt.hedge"), true);
    assert_eq!(attr(attempts[1], "switchyard.attempt.outcome"), "ok");
    for s in &attempts {
        assert_eq!(s["parent_span_id"], server["span_id"]);
    }

    // A cache hit: the second identical request is answered without an attempt.
    let seen = receiver.get("/spans").len();
    assert_eq!(chat(&proxy, "cached", None).status, 200);
    let first = new_trace(&receiver, "cached", seen);
    let seen = receiver.get("/spans").len();
    assert_eq!(chat(&proxy, "cached", None).status, 200);
    let hit = new_trace(&receiver, "cached", seen);
    assert_ne!(first, hit);
    let spans = receiver.trace(&hit, 0);
    assert_eq!(spans.len(), 1, "no attempt on a hit: {spans:#?}");
    assert_eq!(attr(&spans[0], "switchyard.cache"), "hit");
    let miss = receiver.trace(&first, 1);
    let miss = by_kind(&miss, "SPAN_KIND_SERVER")[0];
    assert_eq!(attr(miss, "switchyard.cache"), "miss");

    // A budget refusal: the second request of the day gets 429, and the span says why.
    let seen = receiver.get("/spans").len();
    assert_eq!(chat(&proxy, "capped", None).status, 200);
    let admitted = new_trace(&receiver, "capped", seen);
    let seen = receiver.get("/spans").len();
    let refused = chat(&proxy, "capped", None);
    assert_eq!(refused.status, 429, "{}", refused.text());
    let trace = new_trace(&receiver, "capped", seen);
    let spans = receiver.trace(&trace, 0);
    assert_eq!(spans.len(), 1, "no attempt when refused: {spans:#?}");
    let span = &spans[0];
    assert_eq!(attr(span, "switchyard.budget"), "refused");
    assert_eq!(attr(span, "http.response.status_code"), 429);
    assert_eq!(attr(span, "error.type"), "429");
    assert!(
        attr(span, "switchyard.error")
            .as_str()
            .is_some_and(|e| e.contains("tiny")),
        "{span:#?}"
    );
    let admitted = receiver.trace(&admitted, 1);
    let admitted = by_kind(&admitted, "SPAN_KIND_SERVER")[0];
    assert_eq!(attr(admitted, "switchyard.budget"), "admitted");
}

#[test]
fn content_only_with_the_opt_in() {
    let _serial = serial();
    let receiver = Receiver::start(&[]);
    let (_a, _b, _config, proxy) = setup(&receiver.url(), &["--otel-capture-content"]);
    let r = chat(&proxy, "gpt-4o", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let trace = new_trace(&receiver, "gpt-4o", 0);
    let spans = receiver.trace(&trace, 1);
    let server = by_kind(&spans, "SPAN_KIND_SERVER")[0];
    let input = attr(server, "gen_ai.input.messages")
        .as_str()
        .expect("the prompt");
    assert!(input.contains("marshalling yard"), "{input}");
    let answer = r.json().expect("JSON");
    let said = answer["choices"][0]["message"]["content"]
        .as_str()
        .expect("text");
    let output = attr(server, "gen_ai.output.messages")
        .as_str()
        .expect("the completion");
    let output: Value = serde_json::from_str(output).expect("JSON");
    assert_eq!(output[0]["message"]["content"], said);
}

#[test]
fn a_dead_collector_only_drops_spans() {
    // Up but refusing everything, then gone altogether.
    let _serial = serial();
    let receiver = Receiver::start(&["--refuse"]);
    let (_a, _b, _config, proxy) = setup(&receiver.url(), &[]);
    for _ in 0..5 {
        assert_eq!(chat(&proxy, "gpt-4o", None).status, 200);
    }
    let series = r#"switchyard_otel_spans_dropped_total{reason="export_failed"}"#;
    proxy.wait_for_metric(series, Duration::from_secs(10), |v| v >= 10.0);
    assert!(!receiver.get("/exports").is_empty(), "the proxy did try");
    drop(receiver);
    for _ in 0..5 {
        assert_eq!(chat(&proxy, "gpt-4o", None).status, 200);
    }
    proxy.wait_for_metric(series, Duration::from_secs(10), |v| v >= 20.0);
    assert_eq!(
        proxy.metric("switchyard_otel_spans_exported_total"),
        Some(0.0)
    );
}
