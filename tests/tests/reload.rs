//! Hot reload while requests flow: the RoutePolicy is rewritten five times between two mocks
//! (plus one broken edit) under continuous client traffic; no request may fail, every valid
//! edit must take effect, and the broken one must change nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess};

/// Client tasks sending non-streaming requests back to back.
const PLAIN_CLIENTS: usize = 3;
/// Client tasks sending streaming requests back to back.
const STREAM_CLIENTS: usize = 1;
/// How long a valid edit may take to show up in responses (generous on purpose).
const APPLY_DEADLINE: Duration = Duration::from_secs(15);
/// Traffic kept flowing after each edit is observed, to catch a flip-flop back.
const DWELL: Duration = Duration::from_millis(500);

fn policy(target: &str) -> String {
    format!("route chat {{\n  when model == \"gpt-4o\"\n  use {target}/gpt-4o\n}}\n")
}

/// Switches to `blue` but names an unknown provider too: the whole edit must be rejected.
fn broken_policy() -> String {
    format!(
        "{}\nroute extra {{\n  use nowhere/gpt-4o\n}}\n",
        policy("blue")
    )
}

#[derive(Debug, Clone)]
struct Outcome {
    started: Instant,
    finished: Instant,
    /// Which upstream answered, or why the request failed.
    result: Result<String, String>,
}

type Log = Arc<Mutex<Vec<Outcome>>>;

async fn one_request(client: &reqwest::Client, url: &str, stream: bool) -> Result<String, String> {
    let body = serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "reload me"}],
        "stream": stream,
    });
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let provider = header("x-switchyard-provider").or_else(|| header("x-mock-server"));
    let bytes = response.bytes().await.map_err(|e| format!("body: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        return Err(format!("status {status}: {text}"));
    }
    if stream && !text.trim_end().ends_with("data: [DONE]") {
        return Err(format!("stream did not end with [DONE]: {text}"));
    }
    if !stream && !text.contains("\"chat.completion\"") {
        return Err(format!("not a completion: {text}"));
    }
    provider.ok_or_else(|| "no x-switchyard-provider or x-mock-server header".into())
}

async fn client_loop(url: String, stream: bool, stop: Arc<AtomicBool>, log: Log) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client builds");
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let result = one_request(&client, &url, stream).await;
        let failed = result.is_err();
        log.lock().expect("log lock").push(Outcome {
            started,
            finished: Instant::now(),
            result,
        });
        if failed {
            // Do not spin on a dead proxy; the failure is recorded.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether an outcome was answered by provider `target` (a namespaced name counts too).
fn served_by(outcome: &Outcome, target: &str) -> bool {
    outcome
        .result
        .as_deref()
        .is_ok_and(|p| p == target || p.ends_with(&format!("/{target}")))
}

/// Waits until a request started after `since` was answered by `target`; returns when that
/// answer finished.
async fn wait_for_target(log: &Log, since: Instant, target: &str) -> Instant {
    let deadline = Instant::now() + APPLY_DEADLINE;
    loop {
        let seen = log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|o| o.started > since && served_by(o, target))
            .map(|o| o.finished)
            .min();
        if let Some(at) = seen {
            return at;
        }
        assert!(
            Instant::now() < deadline,
            "the edit to `{target}` did not take effect within {APPLY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One applied edit: from when its first answer finished to when the next edit was written.
struct Window {
    target: &'static str,
    from: Instant,
    to: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_edits_apply_under_load_without_failures() {
    let blue = MockProcess::spawn(&["--name", "blue", "--latency-ms", "10"]);
    let green = MockProcess::spawn(&["--name", "green", "--latency-ms", "10"]);
    let mut config = ConfigDir::new();
    config
        .add_provider("blue", &blue.base_url(), &["gpt-4o"])
        .add_provider("green", &green.base_url(), &["gpt-4o"]);
    config.write_policy(&policy("blue"));
    let proxy = ProxyProcess::spawn(config.path());
    let url = format!("{}/v1/chat/completions", proxy.url());

    let stop = Arc::new(AtomicBool::new(false));
    let log: Log = Arc::default();
    let clients: Vec<_> = (0..PLAIN_CLIENTS + STREAM_CLIENTS)
        .map(|i| {
            tokio::spawn(client_loop(
                url.clone(),
                i >= PLAIN_CLIENTS,
                stop.clone(),
                log.clone(),
            ))
        })
        .collect();

    let mut windows = Vec::new();
    let mut current = "blue";
    let mut from = wait_for_target(&log, Instant::now(), current).await;
    let mut broken_window = None;
    for (step, next) in ["green", "blue", "green", "broken", "blue", "green"]
        .into_iter()
        .enumerate()
    {
        tokio::time::sleep(DWELL).await;
        let written = Instant::now();
        windows.push(Window {
            target: current,
            from,
            to: written,
        });
        if next == "broken" {
            config.write_policy(&broken_policy());
            // Evidence the proxy read the edit: it logs the diagnostic naming `nowhere`.
            let deadline = Instant::now() + APPLY_DEADLINE;
            while !proxy.log().contains("nowhere") {
                assert!(
                    Instant::now() < deadline,
                    "step {step}: the proxy never logged the broken edit's diagnostic; log:\n{}",
                    proxy.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(DWELL).await;
            broken_window = Some((written, Instant::now()));
            from = written;
            continue;
        }
        config.write_policy(&policy(next));
        from = wait_for_target(&log, written, next).await;
        current = next;
    }
    tokio::time::sleep(DWELL).await;
    windows.push(Window {
        target: current,
        from,
        to: Instant::now(),
    });

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client task");
    }
    let log = log.lock().expect("log lock").clone();
    let log_text = || proxy.log();

    let failures: Vec<_> = log.iter().filter(|o| o.result.is_err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during reloads, e.g. {:?}\nproxy log:\n{}",
        failures.len(),
        log.len(),
        failures.iter().take(5).collect::<Vec<_>>(),
        log_text()
    );
    assert!(
        log.len() > 100,
        "too little traffic: {} requests",
        log.len()
    );

    // Once a response came from the new target, every request started later uses it too.
    for window in &windows {
        let stray: Vec<_> = log
            .iter()
            .filter(|o| o.started > window.from && o.started < window.to)
            .filter(|o| !served_by(o, window.target))
            .collect();
        assert!(
            stray.is_empty(),
            "while `{}` was live, {} requests went elsewhere: {:?}",
            window.target,
            stray.len(),
            stray.iter().take(5).collect::<Vec<_>>()
        );
    }

    // The broken edit (which would have switched to `blue`) changed nothing.
    let (broken_from, broken_to) = broken_window.expect("the broken edit ran");
    let during: Vec<_> = log
        .iter()
        .filter(|o| o.started > broken_from && o.started < broken_to)
        .collect();
    assert!(!during.is_empty(), "no traffic after the broken edit");
    assert!(
        during.iter().all(|o| served_by(o, "green")),
        "the broken edit changed routing"
    );
    eprintln!(
        "{} requests, {} edits, none failed",
        log.len(),
        windows.len() - 1
    );
    drop((blue, green));
}
