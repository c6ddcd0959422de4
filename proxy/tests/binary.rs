//! The real `switchyard-proxy` binary: documented flags, the `listening on` lines, serving
//! the quickstart folder, and a prompt exit on SIGINT and SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard-proxy");

fn start(signal_name: &str) -> (Child, String, Vec<String>) {
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    let (listen, admin) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut child = Command::new(BIN)
        .args([
            "--config",
            quickstart.to_str().unwrap(),
            "--listen",
            &listen,
        ])
        .args(["--admin-listen", &admin, "--grace-period-seconds", "1"])
        .arg("--allow-anonymous")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while lines.len() < 2 {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "{signal_name}: stdout closed: {lines:?}"
        );
        lines.push(line.trim().to_owned());
    }
    (child, listen, lines)
}

fn stop(mut child: Child, signal: &str) -> Duration {
    let start = Instant::now();
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still running after {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config",
        "--listen",
        "--admin-listen",
        "--max-body-bytes",
        "--threads",
        "--grace-period-seconds",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let missing = Command::new(BIN).output().unwrap();
    assert!(!missing.status.success(), "--config is required");
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_the_quickstart_and_stops_on_signals() {
    for signal in ["-INT", "-TERM"] {
        let (child, listen, lines) = start(signal);
        assert!(
            lines.contains(&format!("listening on {listen}")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("admin listening on ")),
            "{lines:?}"
        );
        let r = reqwest::Client::new()
            .post(format!("http://{listen}/v1/chat/completions"))
            .body(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("x-switchyard-route"));
        let took = stop(child, signal);
        assert!(took < Duration::from_secs(10), "{signal} took {took:?}");
    }
}

#[test]
fn a_broken_config_folder_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.yaml"), "apiVersion: switchyard.dev/v1alpha1\nkind: RoutePolicy\nmetadata: {name: x}\nspec: {policy: 'route r { use nope/m }'}\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "--config",
            dir.path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
