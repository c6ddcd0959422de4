//! The admin service over real HTTP: a pingora `Server` on a background thread, plain
//! HTTP/1.1 requests from a `TcpStream`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use switchyard_proxy::admin::{AdminAccess, Page, TargetHealth, admin_service};
use switchyard_proxy::config::{ConfigHandle, load_dir};
use switchyard_proxy::metrics::Metrics;

struct FakeHealth;

impl TargetHealth for FakeHealth {
    fn targets_json(&self, _page: Page) -> serde_json::Value {
        serde_json::json!([{ "target": "mock-primary/mock-large", "healthy": true }])
    }
}

/// Starts one admin server for the whole test binary and returns its address.
fn admin() -> &'static str {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| {
        let addr = free_port();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
        let config = Arc::new(ConfigHandle::new(load_dir(&dir, 1).expect("quickstart")));
        let metrics = Arc::new(Metrics::new());
        metrics.request_finished(
            "chat",
            "mock-primary",
            "mock-large",
            200,
            Duration::from_millis(5),
            None,
        );
        let access = AdminAccess::new(addr.parse().expect("addr"), None);
        let service = admin_service(
            &addr,
            access,
            config,
            metrics,
            Arc::new(FakeHealth),
            None,
            None,
        );
        std::thread::spawn(move || {
            let mut server = pingora::server::Server::new(None).expect("pingora server");
            server.bootstrap();
            server.add_service(service);
            server.run_forever();
        });
        addr
    })
}

fn free_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// `(status, headers, body)` of one `GET`, retrying the connection until the server listens.
fn request(method: &str, path: &str) -> (u16, String, String) {
    let addr = admin();
    let start = Instant::now();
    let mut stream = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("admin server did not start on {addr}: {e}"),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("http response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn healthz_and_readyz() {
    assert_eq!(
        request("GET", "/healthz"),
        (200, request("GET", "/healthz").1, "ok\n".into())
    );
    let (status, _, body) = request("GET", "/readyz");
    assert_eq!((status, body.as_str()), (200, "ready\n"));
}

#[test]
fn metrics_in_prometheus_text() {
    let (status, head, body) = request("GET", "/metrics");
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(body.contains("switchyard_snapshot_version 1"), "{body}");
    assert!(body.contains(r#"switchyard_requests_total{model="mock-large",provider="mock-primary",route="chat",status="200"} 1"#), "{body}");
}

#[test]
fn snapshot_and_targets_json() {
    let (status, head, body) = request("GET", "/admin/snapshot");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["version"], 1);
    assert_eq!(v["routes"][0]["name"], "summaries");
    let providers: Vec<&str> = v["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(providers.contains(&"mock-backup") && providers.contains(&"mock-primary"));
    assert!(!body.contains("sk-"), "no keys in the admin view");

    let (status, _, body) = request("GET", "/admin/targets");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v[0]["healthy"], true);

    // Paged over the query string.
    let (status, _, body) = request("GET", "/admin/snapshot?offset=1&limit=1");
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(page["routes"].as_array().map(Vec::len), Some(1));
    assert_ne!(page["routes"][0]["name"], "summaries");
    assert_eq!(page["next_offset"], 2);
    let (status, _, _) = request("GET", "/admin/targets?limit=0");
    assert_eq!(status, 400);
}

#[test]
fn unknown_paths_are_json_404s() {
    let (status, _, body) = request("GET", "/v1/chat/completions");
    assert_eq!(status, 404);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["code"], "not_found");
    let (status, _, _) = request("POST", "/metrics");
    assert_eq!(status, 405);
}
