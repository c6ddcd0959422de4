//! Standalone shadow mode: `--shadow DIR` decides a second folder's policies beside the live
//! ones, `/admin/shadow` counts agreements and differences, and the shadow's upstream (a mock
//! of its own) never receives a request.

use serde_json::{Value, json};
use switchyard_tests::process::ProxyOptions;
use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess, http};

const LIVE: &str = r#"
route chat {
  when model == "gpt-4o"
  use up/gpt-4o
}
route legacy {
  when model == "legacy"
  use up/small
}
"#;

const SHADOW: &str = r#"
route team-a {
  when model == "gpt-4o" and header("x-team") == "a"
  use up/small
}
route chat {
  when model == "gpt-4o"
  use up/gpt-4o
}
"#;

fn ask(proxy: &ProxyProcess, model: &str, team: Option<&str>) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let mut headers = vec![("content-type", "application/json")];
    if let Some(team) = team {
        headers.push(("x-team", team));
    }
    let answer = http::request(
        proxy.listen_addr(),
        "POST",
        "/v1/chat/completions",
        &headers,
        body.to_string().as_bytes(),
    )
    .expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("x-switchyard-route"),
        Some(if model == "legacy" { "legacy" } else { "chat" }),
        "the live policy serves"
    );
}

#[test]
fn the_shadow_policy_is_counted_but_never_called() {
    let live_mock = MockProcess::named("live");
    let shadow_mock = MockProcess::named("shadow");
    let mut live = ConfigDir::new();
    live.add_provider("up", &live_mock.base_url(), &["gpt-4o", "small"]);
    live.write_policy(LIVE);
    let mut shadow = ConfigDir::new();
    shadow.add_provider("up", &shadow_mock.base_url(), &["gpt-4o", "small"]);
    shadow.write_policy(SHADOW);
    let options = ProxyOptions {
        args: vec!["--shadow".into(), shadow.path().display().to_string()],
        env: Vec::new(),
    };
    let proxy = ProxyProcess::spawn_with(live.path(), &options);

    for _ in 0..3 {
        ask(&proxy, "gpt-4o", None);
    }
    ask(&proxy, "gpt-4o", Some("a"));
    ask(&proxy, "gpt-4o", Some("a"));
    ask(&proxy, "legacy", None);

    let report = http::get(proxy.admin_addr(), "/admin/shadow").expect("admin answers");
    assert_eq!(report.status, 200, "{}", report.text());
    let report: Value = report.json().expect("json");
    assert_eq!(report["requests"], 6, "{report:#}");
    assert_eq!(report["sameTarget"], 3, "{report:#}");
    assert_eq!(report["wouldReject"], 1, "{report:#}");
    assert_eq!(
        report["changed"],
        json!([
            {"from": "chat → up/gpt-4o", "to": "team-a → up/small", "count": 2},
            {"from": "legacy → up/small", "to": "404", "count": 1},
        ]),
        "{report:#}"
    );
    assert_eq!(
        live_mock.requests().len(),
        6,
        "the live policy served every request"
    );
    assert_eq!(
        shadow_mock.requests(),
        Vec::<Value>::new(),
        "the shadow policy's upstream was called"
    );
}

#[test]
fn without_shadow_the_endpoint_says_how_to_start_one() {
    let mock = MockProcess::named("live");
    let mut dir = ConfigDir::new();
    dir.add_provider("up", &mock.base_url(), &["gpt-4o"]);
    dir.write_policy("route chat {\n  when model == \"gpt-4o\"\n  use up/gpt-4o\n}\n");
    let proxy = ProxyProcess::spawn(dir.path());
    let r = http::get(proxy.admin_addr(), "/admin/shadow").expect("admin answers");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("--shadow DIR"), "{}", r.text());
}

#[test]
fn a_shadow_mode_route_policy_in_the_config_folder_is_counted_not_served() {
    let mock = MockProcess::named("live");
    let mut dir = ConfigDir::new();
    dir.add_provider("up", &mock.base_url(), &["gpt-4o", "small"]);
    dir.write_policy(LIVE);
    let candidate = switchyard_tests::config::route_policy_yaml(
        "candidate",
        "route team-a {\n  when model == \"gpt-4o\" and header(\"x-team\") == \"a\"\n  use up/small\n}\n",
    )
    .replace("spec:\n", "spec:\n  mode: Shadow\n");
    dir.write_file("candidate.yaml", &candidate);
    let proxy = ProxyProcess::spawn(dir.path());
    ask(&proxy, "gpt-4o", Some("a"));
    ask(&proxy, "gpt-4o", None);
    let report: Value = http::get(proxy.admin_addr(), "/admin/shadow")
        .expect("admin answers")
        .json()
        .expect("json");
    assert_eq!(report["requests"], 2, "{report:#}");
    assert_eq!(report["sameTarget"], 1, "{report:#}");
    assert_eq!(
        report["changed"],
        json!([{"from": "chat → up/gpt-4o", "to": "team-a → up/small", "count": 1}])
    );
    let models: Vec<Value> = mock
        .requests()
        .iter()
        .map(|r| r["body"]["model"].clone())
        .collect();
    assert_eq!(models, [json!("gpt-4o"), json!("gpt-4o")]);
}
