//! The admin port's guards in the real binary: `--admin-token-file` protects `/admin/*` (the
//! probes and `/metrics` stay open), and a port bound to loopback refuses foreign `Host`
//! names (DNS rebinding from a browser on the same machine).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard-proxy");
const TOKEN: &str = "admin-t0ken-for-tests";

struct Proxy {
    child: Child,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The quickstart folder served with an admin token file holding `TOKEN` (plus a newline).
fn start() -> Proxy {
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .args(["--config", quickstart.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin-listen", &admin, "--grace-period-seconds", "1"])
        .args(["--admin-token-file", token_file.to_str().unwrap()])
        .arg("--allow-anonymous")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("admin listening on"))
    {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "stdout closed: {seen:?}"
        );
        seen.push(line.trim().to_owned());
    }
    Proxy {
        child,
        admin,
        _dir: dir,
    }
}

/// `(status, body)` of `GET path` with these extra header lines.
fn get(proxy: &Proxy, path: &str, host: &str, headers: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(&proxy.admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("a JSON error");
    v["error"]["code"].as_str().unwrap_or("").to_string()
}

#[test]
fn admin_paths_need_the_token_and_probes_stay_open() {
    let proxy = start();
    let host = proxy.admin.clone();
    for path in [
        "/admin/snapshot",
        "/admin/targets",
        "/admin/budgets",
        "/admin/nope",
    ] {
        let (status, body) = get(&proxy, path, &host, "");
        assert_eq!(status, 401, "{path} without a token: {body}");
        assert_eq!(error_code(&body), "invalid_admin_token");
        let (status, _) = get(&proxy, path, &host, "Authorization: Bearer wrong\r\n");
        assert_eq!(status, 401, "{path} with a wrong token");
        let wrong = format!("Authorization: Bearer {TOKEN}x\r\n");
        assert_eq!(get(&proxy, path, &host, &wrong).0, 401);
    }
    let right = format!("Authorization: Bearer {TOKEN}\r\n");
    let (status, body) = get(&proxy, "/admin/snapshot", &host, &right);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"routes\""), "{body}");
    assert_eq!(get(&proxy, "/admin/nope", &host, &right).0, 404);
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(&proxy, open, &host, "").0, 200, "{open}");
    }
}

#[test]
fn a_loopback_admin_port_refuses_foreign_host_names() {
    let proxy = start();
    let port = proxy.admin.rsplit_once(':').unwrap().1.to_string();
    let right = format!("Authorization: Bearer {TOKEN}\r\n");
    for host in [
        "evil.example",
        &format!("evil.example:{port}"),
        "127.0.0.1.nip.io",
    ] {
        for path in ["/admin/snapshot", "/metrics", "/healthz"] {
            let (status, body) = get(&proxy, path, host, &right);
            assert_eq!(status, 421, "{path} with Host {host}: {body}");
            assert_eq!(error_code(&body), "host_not_allowed");
        }
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            get(&proxy, "/admin/snapshot", &host, &right).0,
            200,
            "{host}"
        );
    }
}
