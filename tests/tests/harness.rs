//! The harness itself, against `switchyard-mock` and the `switchyard` checker: mocks start on
//! ephemeral ports and obey scripts, config folders compile.

use std::process::Command;

use serde_json::json;
use switchyard_tests::{ConfigDir, MockProcess, binary, http};

#[test]
fn mock_process_serves_obeys_scripts_and_logs() {
    let mock = MockProcess::named("harness-a");
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});

    let ok = http::post_json(mock.addr(), "/v1/chat/completions", &chat).expect("answers");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.header("x-mock-server"), Some("harness-a"));
    let body = ok.json().expect("JSON");
    assert_eq!(body["usage"]["completion_tokens"], 16);

    mock.script(&json!({"faults": [{"kind": "status", "status": 503}]}));
    let failed = http::post_json(mock.addr(), "/v1/chat/completions", &chat).expect("answers");
    assert_eq!(failed.status, 503);

    assert_eq!(mock.requests().len(), 2);
    mock.reset();
    assert!(mock.requests().is_empty());
}

#[test]
fn mock_processes_stop_when_dropped() {
    let mock = MockProcess::named("harness-b");
    let addr = mock.addr();
    drop(mock);
    assert!(
        http::get(addr, "/_mock/health").is_err(),
        "the mock still answers after drop"
    );
}

#[test]
fn config_dir_compiles_with_the_checker() {
    let mock = MockProcess::named("harness-c");
    let mut config = ConfigDir::new();
    config
        .add_provider(
            "mock-a",
            &mock.base_url(),
            &["gpt-4o", "text-embedding-3-small"],
        )
        .add_provider("mock-b", &mock.base_url(), &["gpt-4o"]);
    config.write_policy(
        "# two routes\nroute chat {\n  when model == \"gpt-4o\"\n  use mock-a/gpt-4o\n  failover to mock-b/gpt-4o\n}\n\nroute embed {\n  when model == \"text-embedding-3-small\"\n  use mock-a/text-embedding-3-small\n}\n",
    );
    let output = Command::new(binary("switchyard"))
        .arg("check")
        .arg("--deny-warnings")
        .arg(config.path())
        .output()
        .expect("the checker runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
