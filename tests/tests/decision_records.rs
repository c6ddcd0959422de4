//! Decision records: the real proxy's access-log line carries what a replay needs (model,
//! key, prompt-token estimate, referenced headers hashed or cut, no others), and `switchyard
//! simulate` replays that very log to the same route.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess, http};

const POLICY: &str = r#"
route tagged {
  when model == "gpt-4o" and header("x-team") == "support"
  use up/gpt-4o
}
route patterned {
  when model == "gpt-4o" and header("x-task") matches "sum*"
  use up/gpt-4o
}
"#;

fn access_lines(proxy: &ProxyProcess, want: usize) -> Vec<Value> {
    // The access-log line is written after the answer: give it a moment.
    let start = Instant::now();
    loop {
        let lines: Vec<Value> = proxy
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "switchyard::access")
            .collect();
        if lines.len() >= want || start.elapsed() > Duration::from_secs(10) {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_access_log_records_the_routing_features_and_replays_to_the_same_route() {
    let mock = MockProcess::named("echo");
    let mut dir = ConfigDir::new();
    dir.add_provider("up", &mock.base_url(), &["gpt-4o"]);
    dir.write_policy(POLICY);
    let proxy = ProxyProcess::spawn(dir.path());
    let body =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "a secret prompt"}]});
    let answer = http::request(
        proxy.listen_addr(),
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("x-team", "support"),
            ("x-task", "summarize this"),
            ("x-private", "never logged"),
        ],
        body.to_string().as_bytes(),
    )
    .expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let lines = access_lines(&proxy, 1);
    let line = lines.last().expect("an access-log line");
    let f = &line["fields"];
    assert_eq!(f["record"], 1, "{f}");
    assert_eq!(f["requested_model"], "gpt-4o");
    assert_eq!(f["route"], "tagged");
    assert!(f["prompt_tokens"].as_u64().is_some_and(|n| n > 0), "{f}");
    assert_eq!(
        f["headers"],
        json!({
            "x-team": switchyard_dsl::headers::hashed("support"),
            "x-task": "summarize this",
        })
    );
    let log = proxy.log();
    assert!(!log.contains("never logged") && !log.contains("a secret prompt"));

    let file = dir.path().join("access.log.txt");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).expect("log written");
    let out = std::process::Command::new(switchyard_tests::bins::binary("switchyard"))
        .arg("simulate")
        .arg(dir.path())
        .arg("--traffic")
        .arg(&file)
        .args(["--output", "json"])
        .output()
        .expect("switchyard runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["records"], 1, "{report}");
    assert_eq!(report["routes"][0]["route"], "tagged", "{report}");
    assert_eq!(report["routes"][0]["target"], "up/gpt-4o", "{report}");
}
