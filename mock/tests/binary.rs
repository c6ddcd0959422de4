//! The built `switchyard-mock` binary: flags, the address line on stdout, serving.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Kills the child when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_prints_its_address_and_serves() {
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_switchyard-mock"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--name",
                "from-binary",
                "--seed",
                "7",
            ])
            .args(["--completion-tokens", "3", "--model", "only-model"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("`listening on ADDR`");
    let addr: std::net::SocketAddr = addr.parse().expect("a socket address");
    assert_ne!(addr.port(), 0);

    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let models = client
        .get(format!("http://{addr}/v1/models"))
        .send()
        .await
        .expect("served");
    assert_eq!(models.headers()["x-mock-server"], "from-binary");
    let body: serde_json::Value =
        serde_json::from_slice(&models.bytes().await.expect("body")).expect("json");
    assert_eq!(body["data"][0]["id"], "only-model");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));

    let chat = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let completion = client
        .post(format!("http://{addr}/v1/chat/completions"))
        .body(chat.to_string())
        .send()
        .await
        .expect("served");
    let body: serde_json::Value =
        serde_json::from_slice(&completion.bytes().await.expect("body")).expect("json");
    assert_eq!(body["usage"]["completion_tokens"], 3);
}

#[test]
fn bad_flags_fail_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard-mock"))
        .args(["--default-fault", "{\"kind\":\"explode\"}"])
        .output()
        .expect("binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid fault"), "{stderr}");
}
