//! Shared by the budget tests: the real proxy binary on a config folder, mock upstreams,
//! a client-key Secret, and small HTTP helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_mock::{Config, MockServer};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard-proxy");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A proxy process, killed on drop.
pub struct Proxy {
    pub child: Child,
    pub url: String,
    pub admin: String,
    pub log: std::path::PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    pub fn start(dir: &Path, extra: &[&str]) -> Proxy {
        let (listen, admin) = (free_port(), free_port());
        let log = dir.join(format!("proxy-{listen}.log"));
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--threads", "2", "--grace-period-seconds", "1"])
            .args(extra)
            .env_remove("SWITCHYARD_ALLOW_ANONYMOUS")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = 0;
        let mut line = String::new();
        while seen < 2 {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                panic!(
                    "the proxy exited: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if line.contains("listening on") {
                seen += 1;
            }
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Proxy {
            child,
            url: format!("http://127.0.0.1:{listen}"),
            admin: format!("http://127.0.0.1:{admin}"),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub async fn mock(completion_tokens: u32) -> MockServer {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        name: "up".into(),
        ..Config::default()
    };
    config.behaviour.completion_tokens = completion_tokens;
    MockServer::start(config).await.unwrap()
}

/// A config folder: one provider on `mock`, one route, `budgets`, and three client keys.
pub fn folder(mock: &MockServer, budgets: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let providers = format!(
        r#"apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata: {{name: up}}
spec:
  type: openai-compatible
  baseUrl: {}/v1
  models:
    - name: big
      pricing: {{inputPerMillion: 10, outputPerMillion: 30}}
    - name: small
      pricing: {{inputPerMillion: 1, outputPerMillion: 2}}
"#,
        mock.url()
    );
    let routes = r#"apiVersion: switchyard.dev/v1alpha1
kind: RoutePolicy
metadata: {name: routes}
spec:
  policy: |
    route chat {
      when model == "gpt"
      use up/big
    }
"#;
    let budgets = format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: Budget\nmetadata: {{name: budgets}}\nspec:\n  policy: |\n{}",
        budgets
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let keys = r#"apiVersion: v1
kind: Secret
metadata:
  name: client-keys
  labels: {switchyard.dev/client-keys: "true"}
stringData:
  alpha: '{"key": "sk-alpha-0123456789", "team": "eng"}'
  bravo: '{"key": "sk-bravo-0123456789", "team": "support"}'
  charlie: |
    key: sk-charlie-0123456789
    team: eng
    user: carol
  dora: '{"key": "sk-dora-0123456789", "expiresAt": "2020-01-01T00:00:00Z"}'
  eve: '{"key": "sk-eve-0123456789", "allowIps": ["10.9.9.0/24"]}'
"#;
    std::fs::write(dir.path().join("providers.yaml"), providers).unwrap();
    std::fs::write(dir.path().join("routes.yaml"), routes).unwrap();
    std::fs::write(dir.path().join("budgets.yaml"), budgets).unwrap();
    std::fs::write(dir.path().join("keys.yaml"), keys).unwrap();
    dir
}

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
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

pub async fn chat(proxy: &Proxy, key: Option<&str>, body: Value) -> Answer {
    let mut r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .timeout(Duration::from_secs(30))
        .json(&body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let r = r.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        text,
    }
}

pub fn body(stream: bool) -> Value {
    json!({
        "model": "gpt",
        "messages": [{"role": "user", "content": "Tell me about rail yards."}],
        "stream": stream,
    })
}

pub async fn budgets(proxy: &Proxy) -> Value {
    reqwest::get(format!("{}/admin/budgets", proxy.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
