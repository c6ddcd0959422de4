//! Hostile configuration input, end to end: deeply nested policies and YAML through the CLI and
//! the proxy (at start and on reload), client-key edits in `--config` mode, an emptied routes
//! file, and special files and symlink loops in the config folder. Each gets a bounded,
//! located answer; the proxy never crashes and keeps serving its last good configuration.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_tests::process::ProxyOptions;
use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess, binary, free_port, http};

/// How long a reload (or a refusal) may take to show (generous for a loaded 2-core box).
const DEADLINE: Duration = Duration::from_secs(20);
/// Far past every nesting limit (32 for conditions, 64 for YAML).
const DEEP: usize = 100_000;

/// A valid policy routing `gpt-4o` to `target`.
fn policy(target: &str) -> String {
    format!("route chat {{\n  when model == \"gpt-4o\"\n  use {target}/gpt-4o\n}}\n")
}

/// Each recursive construct of the policy language, nested [`DEEP`] levels around a valid
/// comparison, as the condition of a route to `target`.
fn deep_policies(target: &str) -> Vec<(&'static str, String)> {
    let leaf = "model == \"gpt-4o\"";
    let mut groups = String::new();
    for i in 0..DEEP {
        groups.push_str(if i % 2 == 0 {
            "(stream and "
        } else {
            "(stream or "
        });
    }
    groups.push_str(leaf);
    groups.push_str(&")".repeat(DEEP));
    let conditions = [
        ("not", format!("{}{leaf}", "not ".repeat(DEEP))),
        (
            "parentheses",
            format!("{}{leaf}{}", "(".repeat(DEEP), ")".repeat(DEEP)),
        ),
        (
            "not and parentheses",
            format!("{}{leaf}{}", "not (".repeat(DEEP), ")".repeat(DEEP)),
        ),
        ("and/or groups", groups),
        ("unclosed parentheses", "(".repeat(DEEP)),
    ];
    conditions
        .into_iter()
        .map(|(name, cond)| {
            (
                name,
                format!("route chat {{\n  when {cond}\n  use {target}/gpt-4o\n}}\n"),
            )
        })
        .collect()
}

/// An `LLMProvider` document whose `spec.models` is a flow list nested [`DEEP`] levels.
fn deep_yaml() -> String {
    format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: LLMProvider\nmetadata:\n  name: deep\nspec:\n  type: mock\n  models: {}{}\n",
        "[".repeat(DEEP),
        "]".repeat(DEEP)
    )
}

/// Polls `cond` until it holds or [`DEADLINE`] passes; `what` names it in the failure.
fn eventually(what: &str, mut cond: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}; proxy log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Status of a chat completion for `gpt-4o` with an optional client key, and which provider
/// answered.
fn chat(proxy: &ProxyProcess, key: Option<&str>) -> (u16, Option<String>) {
    let body = serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hello"}],
    });
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    match http::request(
        proxy.listen_addr(),
        "POST",
        "/v1/chat/completions",
        &headers,
        body.to_string().as_bytes(),
    ) {
        Ok(r) => (
            r.status,
            r.header("x-switchyard-provider").map(str::to_owned),
        ),
        Err(e) => panic!("request failed: {e}; proxy log:\n{}", proxy.log()),
    }
}

/// `switchyard_config_reloads_total{result="..."}` from the admin port.
fn reloads(proxy: &ProxyProcess, result: &str) -> u64 {
    let metrics = http::get(proxy.admin_addr(), "/metrics")
        .expect("metrics are served")
        .text();
    let prefix = format!("switchyard_config_reloads_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A config folder with two mock providers, `blue` and `green`, and a policy routing to blue.
fn two_mocks() -> (MockProcess, MockProcess, ConfigDir) {
    let blue = MockProcess::named("blue");
    let green = MockProcess::named("green");
    let mut config = ConfigDir::new();
    config
        .add_provider("blue", &blue.base_url(), &["gpt-4o"])
        .add_provider("green", &green.base_url(), &["gpt-4o"]);
    config.write_policy(&policy("blue"));
    (blue, green, config)
}

/// Waits until requests are answered by `target` with 200.
fn wait_served_by(proxy: &ProxyProcess, target: &str) {
    eventually(
        &format!("requests served by `{target}`"),
        || chat(proxy, None) == (200, Some(target.to_string())),
        || proxy.log(),
    );
}

/// Writes `contents` as `file`, then waits until the proxy refused it (one more reload error)
/// and checks that it is running and still serving `serving` with its log naming `why`.
fn refused(
    proxy: &mut ProxyProcess,
    config: &ConfigDir,
    file: &str,
    contents: &str,
    why: &str,
    serving: &str,
) {
    let before = reloads(proxy, "error");
    config.write_file(file, contents);
    eventually(
        &format!("{file} refused ({why})"),
        || reloads(proxy, "error") > before,
        || proxy.log(),
    );
    assert!(proxy.is_running(), "the proxy died; log:\n{}", proxy.log());
    assert!(
        proxy.log().contains(why),
        "log does not say `{why}`:\n{}",
        proxy.log()
    );
    assert_eq!(chat(proxy, None), (200, Some(serving.to_string())));
}

#[test]
fn check_refuses_deep_nesting_of_every_construct_with_a_located_error() {
    let config = ConfigDir::new();
    let mut cases = deep_policies("mock-a");
    cases.push(("YAML flow list", String::new()));
    for (name, policy) in cases {
        if policy.is_empty() {
            config.write_file("routes.yaml", &deep_yaml());
        } else {
            config.write_policy(&policy);
        }
        let started = Instant::now();
        let out = Command::new(binary("switchyard"))
            .arg("check")
            .arg(config.path())
            .output()
            .expect("switchyard runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        // The YAML list is on line 7 (`models:`), a condition on line 8 (`when`).
        let expected = if policy.is_empty() {
            "routes.yaml:7:"
        } else {
            "routes.yaml:8:"
        };
        assert!(stderr.contains("nested too deeply"), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: no location in {stderr}");
        assert!(stderr.contains("help: "), "{name}: no help in {stderr}");
        assert!(
            stderr.len() < 4096,
            "{name}: the excerpt is not cut: {} bytes",
            stderr.len()
        );
        eprintln!("{name}: refused in {:?}", started.elapsed());
    }
}

#[test]
fn a_deep_policy_or_yaml_stops_the_proxy_at_start_with_a_located_error() {
    let mock = MockProcess::named("blue");
    let mut cases = deep_policies("blue");
    cases.push(("YAML flow list", String::new()));
    for (name, policy) in cases {
        let mut config = ConfigDir::new();
        config.add_provider("blue", &mock.base_url(), &["gpt-4o"]);
        if policy.is_empty() {
            config.write_policy(&self::policy("blue"));
            config.write_file("deep.yaml", &deep_yaml());
        } else {
            config.write_policy(&policy);
        }
        let mut child = Command::new(binary("switchyard-proxy"))
            .arg("--config")
            .arg(config.path())
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("switchyard-proxy runs");
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the proxy") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name}: the proxy started on a refused config");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read as _;
            let _ = pipe.read_to_string(&mut stderr);
        }
        // An exit code, not a signal (a stack overflow aborts with SIGABRT).
        assert_eq!(status.code(), Some(1), "{name}: {status:?}\n{stderr}");
        assert!(stderr.contains("nested too deeply"), "{name}: {stderr}");
    }
}

#[test]
fn deep_reloads_are_refused_and_the_last_good_config_keeps_serving() {
    let (_blue, _green, config) = two_mocks();
    let mut proxy = ProxyProcess::spawn(config.path());
    wait_served_by(&proxy, "blue");
    for (name, deep) in deep_policies("green") {
        let started = Instant::now();
        refused(
            &mut proxy,
            &config,
            "routes.yaml",
            &switchyard_tests::config::route_policy_yaml("test", &deep),
            "nested too deeply",
            "blue",
        );
        eprintln!("{name}: refused in {:?}", started.elapsed());
    }
    let started = Instant::now();
    refused(
        &mut proxy,
        &config,
        "deep.yaml",
        &deep_yaml(),
        "YAML nested too deeply",
        "blue",
    );
    eprintln!("YAML flow list: refused in {:?}", started.elapsed());
    // Hot reload still works afterwards.
    std::fs::remove_file(config.path().join("deep.yaml")).expect("remove deep.yaml");
    config.write_policy(&policy("green"));
    wait_served_by(&proxy, "green");
}

/// A client-keys Secret with these `(id, key)` entries.
fn client_keys(entries: &[(&str, &str)]) -> String {
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: client-keys\n  labels:\n    switchyard.dev/client-keys: \"true\"\nstringData:\n",
    );
    for (id, key) in entries {
        yaml.push_str(&format!("  {id}: |\n    key: {key}\n    team: t\n"));
    }
    yaml
}

#[test]
fn client_key_edits_alone_take_effect_in_config_mode() {
    let (_blue, _green, config) = two_mocks();
    config.write_file(
        "client-keys.yaml",
        &client_keys(&[("a", "sk-alpha"), ("b", "sk-bravo")]),
    );
    let proxy = ProxyProcess::spawn_with(
        config.path(),
        &ProxyOptions {
            env: vec![("SWITCHYARD_ALLOW_ANONYMOUS".into(), "false".into())],
            ..ProxyOptions::default()
        },
    );
    let status = |key: &str| chat(&proxy, Some(key)).0;
    assert_eq!(status("sk-alpha"), 200);
    assert_eq!(status("sk-bravo"), 200);
    assert_eq!(status("sk-charlie"), 401);

    // Revoke `a`, add `c`: nothing else changes.
    config.write_file(
        "client-keys.yaml",
        &client_keys(&[("b", "sk-bravo"), ("c", "sk-charlie")]),
    );
    eventually(
        "the new key is accepted",
        || status("sk-charlie") == 200,
        || proxy.log(),
    );
    assert_eq!(status("sk-alpha"), 401, "a revoked key still works");
    assert_eq!(status("sk-bravo"), 200);

    // Delete the file: every key is gone.
    std::fs::remove_file(config.path().join("client-keys.yaml")).expect("remove the keys");
    eventually(
        "keys of a deleted file are refused",
        || status("sk-bravo") == 401,
        || proxy.log(),
    );
    assert_eq!(status("sk-charlie"), 401);
}

#[test]
fn a_reload_to_no_routes_is_refused() {
    let (_blue, _green, config) = two_mocks();
    let mut proxy = ProxyProcess::spawn(config.path());
    wait_served_by(&proxy, "blue");
    // An editor that truncated the file and has not written it yet.
    refused(&mut proxy, &config, "routes.yaml", "", "no routes", "blue");
    // A deleted routes file.
    let before = reloads(&proxy, "error");
    std::fs::remove_file(config.path().join("routes.yaml")).expect("remove routes.yaml");
    eventually(
        "the deleted routes file is refused",
        || reloads(&proxy, "error") > before,
        || proxy.log(),
    );
    assert!(proxy.is_running());
    assert_eq!(chat(&proxy, None), (200, Some("blue".to_string())));
    // The editor finishes: the new routes apply.
    config.write_policy(&policy("green"));
    wait_served_by(&proxy, "green");
}

#[cfg(unix)]
#[test]
fn special_files_in_the_config_folder_are_skipped() {
    use std::os::unix::fs::symlink;
    let (_blue, _green, config) = two_mocks();
    let dir = config.path();
    let status = Command::new("mkfifo")
        .arg(dir.join("fifo.yaml"))
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    symlink("/dev/zero", dir.join("zero.yaml")).expect("symlink to /dev/zero");
    // Two symlink loops: walked naively, the folder has 2^40 paths.
    symlink(".", dir.join("loop1")).expect("symlink loop");
    symlink(".", dir.join("loop2")).expect("symlink loop");
    // ConfigMap volumes: files are symlinks (through `..data`) to regular files; they load.
    std::fs::create_dir(dir.join("..2026_12_02")).expect("create the data folder");
    std::fs::write(
        dir.join("..2026_12_02/extra.yaml"),
        switchyard_tests::config::route_policy_yaml(
            "extra",
            "route mini {\n  when model == \"mini\"\n  use green/gpt-4o\n}\n",
        ),
    )
    .expect("write the linked file");
    symlink("..2026_12_02", dir.join("..data")).expect("link ..data");
    symlink(Path::new("..data/extra.yaml"), dir.join("extra.yaml")).expect("link the file");

    let proxy = ProxyProcess::spawn(dir);
    wait_served_by(&proxy, "blue");
    let mini = serde_json::json!({"model": "mini", "messages": [{"role": "user", "content": "x"}]});
    let r = http::post_json(proxy.listen_addr(), "/v1/chat/completions", &mini)
        .expect("mini is served");
    assert_eq!(r.status, 200, "the symlinked file's route: {}", r.text());
    assert!(
        proxy.log().contains("not a regular file"),
        "{}",
        proxy.log()
    );
    // Hot reload is not blocked by the FIFO.
    config.write_policy(&policy("green"));
    wait_served_by(&proxy, "green");
}

#[test]
fn check_skips_special_files_with_a_warning() {
    let config = ConfigDir::new();
    config.write_policy(&policy("mock-a"));
    config.write_file(
        "providers.yaml",
        &switchyard_tests::config::provider_yaml(&switchyard_tests::config::Provider {
            name: "mock-a".into(),
            kind: "openai-compatible".into(),
            base_url: "http://127.0.0.1:9".into(),
            models: vec!["gpt-4o".into()],
            key_env: None,
        }),
    );
    #[cfg(unix)]
    std::os::unix::fs::symlink("/dev/zero", config.path().join("zero.yaml")).expect("symlink");
    let out = Command::new(binary("switchyard"))
        .arg("check")
        .arg(config.path())
        .output()
        .expect("switchyard runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    #[cfg(unix)]
    assert!(
        stderr.contains("warning: ") && stderr.contains("zero.yaml"),
        "{stderr}"
    );
}
