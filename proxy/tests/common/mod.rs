//! Test harness: compiles a policy against a hand-made catalogue, starts the gateway
//! in process (pingora on free loopback ports), and starts `switchyard-mock` upstreams.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod redis;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use switchyard_dsl::ir::{MockBehaviour, Provider, ProviderKind, Snapshot};
use switchyard_dsl::{Source, compile};
use switchyard_mock::{Config, MockServer, Script};
use switchyard_proxy::config::{ActiveConfig, CredentialState};
use switchyard_proxy::server::{Shared, build};
use switchyard_proxy::settings::Settings;

/// A free loopback port (bound and released; good enough on a test machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A catalogue entry.
pub fn provider(
    name: &str,
    kind: ProviderKind,
    base_url: Option<String>,
    models: &[&str],
) -> Provider {
    let mut p = Provider::new(name, kind, models);
    p.base_url = base_url;
    p
}

/// An OpenAI-compatible provider pointing at a mock server.
pub fn upstream(name: &str, mock: &MockServer, models: &[&str]) -> Provider {
    provider(
        name,
        ProviderKind::OpenaiCompatible,
        Some(format!("{}/v1", mock.url())),
        models,
    )
}

/// A built-in mock provider.
pub fn builtin(name: &str, models: &[&str], behaviour: MockBehaviour) -> Provider {
    let mut p = provider(name, ProviderKind::Mock, None, models);
    p.mock = Some(behaviour);
    p
}

/// Compiles `policy`; panics with the diagnostics when it does not compile.
pub fn snapshot(policy: &str, catalogue: Vec<Provider>) -> Snapshot {
    let sources = [Source::new("test.policy", policy)];
    let compiled = compile(&sources, &catalogue);
    match compiled.snapshot {
        Some(s) => s.seal(),
        None => panic!(
            "{}",
            switchyard_dsl::render_all(&compiled.diagnostics, &sources)
        ),
    }
}

/// A mock upstream on a free port.
pub async fn mock(name: &str) -> MockServer {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        name: name.into(),
        ..Config::default()
    };
    MockServer::start(config).await.unwrap()
}

/// Two mock upstreams `a` and `b`, each serving model `m`, behind a gateway on `policy`.
pub async fn pair(policy: &str) -> (MockServer, MockServer, Proxy) {
    let (a, b) = (mock("a").await, mock("b").await);
    let catalogue = vec![upstream("a", &a, &["m"]), upstream("b", &b, &["m"])];
    let proxy = start_proxy(snapshot(policy, catalogue), |_| {});
    (a, b, proxy)
}

/// Changes how a mock answers healthy requests from now on (latency, TTFT, pace).
pub fn behave(mock: &MockServer, behaviour: serde_json::Value) {
    let s: Script = serde_json::from_value(serde_json::json!({ "behaviour": behaviour })).unwrap();
    mock.state().apply(s);
}

/// Queues faults (JSON fault specs) on a mock.
pub fn script(mock: &MockServer, faults: serde_json::Value) {
    let s: Script = serde_json::from_value(serde_json::json!({ "faults": faults })).unwrap();
    mock.state().apply(s);
}

struct Never;

#[async_trait]
impl ShutdownSignalWatch for Never {
    async fn recv(&self) -> ShutdownSignal {
        std::future::pending().await
    }
}

/// A gateway running in this process.
pub struct Proxy {
    pub url: String,
    pub admin_url: String,
    pub shared: Shared,
}

fn wait_for(addr: SocketAddr) {
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{addr} never came up"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts the gateway on `snapshot`; `tweak` adjusts the settings.
pub fn start_proxy(snapshot: Snapshot, tweak: impl FnOnce(&mut Settings)) -> Proxy {
    start_proxy_with(snapshot, tweak, |_| {})
}

/// [`start_proxy`], with `shared` adjusting the state the gateway is built on (health
/// thresholds, registries).
pub fn start_proxy_with(
    snapshot: Snapshot,
    tweak: impl FnOnce(&mut Settings),
    shared_tweak: impl FnOnce(&mut Shared),
) -> Proxy {
    let mut settings = Settings::with_config(PathBuf::from("unused"));
    settings.listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    settings.admin_listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    tweak(&mut settings);
    let credentials = snapshot
        .providers
        .iter()
        .map(|_| CredentialState::NotConfigured)
        .collect();
    let active = ActiveConfig {
        version: 1,
        snapshot,
        credentials,
        keys: Default::default(),
        shadow: None,
    };
    let mut shared = Shared::new(active);
    shared_tweak(&mut shared);
    let server = build(&settings, &shared).unwrap();
    std::thread::spawn(move || {
        server.run(RunArgs {
            shutdown_signal: Box::new(Never),
        })
    });
    wait_for(settings.listen);
    Proxy {
        url: format!("http://{}", settings.listen),
        admin_url: format!("http://{}", settings.admin_listen),
        shared,
    }
}

/// A chat request body with an extra unknown field.
pub fn chat(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say something about rail yards, please."}],
        "stream": stream,
        "x_unknown": {"kept": [1, 2.50, "three"], "nested": {"a": null}},
    })
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
    /// The `data:` payloads of an SSE body.
    pub fn events(&self) -> Vec<String> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }
}

/// POSTs `body` (JSON) to `path`.
pub async fn post(proxy: &Proxy, path: &str, body: &serde_json::Value) -> Answer {
    post_raw(proxy, path, serde_json::to_vec(body).unwrap()).await
}

/// POSTs raw bytes to `path`.
pub async fn post_raw(proxy: &Proxy, path: &str, body: Vec<u8>) -> Answer {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", proxy.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r
        .text()
        .await
        .unwrap_or_else(|e| format!("<body error: {e}>"));
    Answer {
        status,
        headers,
        text,
    }
}

/// GETs `path`.
pub async fn get(base: &str, path: &str) -> Answer {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap();
    Answer {
        status,
        headers,
        text,
    }
}
