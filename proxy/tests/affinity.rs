//! `affinity by ...` through real proxies: sessions stay on one target across turns and
//! replicas while the split's shares hold across sessions; a session whose target fails moves
//! once and stays; prompt-cache savings show in metrics, the access log's usage and budgets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchyard_dsl::ir::{MockBehaviour, Provider};
use switchyard_dsl::{RequestView, Snapshot, decide};
use switchyard_proxy::router::health::HealthRegistry;

/// Sessions per split; every one sends three turns.
const SESSIONS: usize = 10_000;
/// Clients sending at once.
const CLIENTS: usize = 16;

const SPLITS: &str = r#"
route fifty {
  when model == "fifty"
  split { 50% a/m, 50% b/m }
  affinity by header("x-session-id") for 10m
}

route ninety {
  when model == "ninety"
  split { 90% a/m, 10% b/m }
  affinity by header("x-session-id") for 10m
}
"#;

fn turn_body(model: &str, session: usize, turn: usize) -> Value {
    let mut messages =
        vec![json!({"role": "user", "content": format!("session {session} starts")})];
    for k in 1..turn {
        messages.push(json!({"role": "assistant", "content": format!("answer {k}")}));
        messages.push(json!({"role": "user", "content": format!("question {k}")}));
    }
    json!({"model": model, "messages": messages})
}

/// Sends one turn and returns the `provider` that served it.
async fn send_turn(
    client: &reqwest::Client,
    base: &str,
    model: &str,
    session: usize,
    turn: usize,
) -> String {
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .header("x-session-id", format!("s-{session}"))
        .json(&turn_body(model, session, turn))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let provider = r.headers()["x-switchyard-provider"]
        .to_str()
        .unwrap()
        .to_owned();
    r.bytes().await.unwrap();
    provider
}

/// 10,000 sessions × 3 turns on `model`, the turns alternating between two replicas.
/// Returns how many sessions landed on `a`, after checking that every turn of a session
/// went to the same target.
async fn run_sessions(replicas: [&str; 2], model: &'static str) -> usize {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for k in 0..CLIENTS {
        let client = client.clone();
        let replicas = replicas.map(str::to_owned);
        tasks.push(tokio::spawn(async move {
            let mut on_a = 0;
            for session in (k..SESSIONS).step_by(CLIENTS) {
                let mut served = Vec::with_capacity(3);
                for turn in 1..=3 {
                    let base = &replicas[turn % 2];
                    served.push(send_turn(&client, base, model, session, turn).await);
                }
                assert!(
                    served.iter().all(|p| *p == served[0]),
                    "{model}: session {session} moved: {served:?}"
                );
                on_a += usize::from(served[0] == "a");
            }
            on_a
        }));
    }
    let mut on_a = 0;
    for t in tasks {
        on_a += t.await.unwrap();
    }
    on_a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_stay_put_across_turns_and_replicas_and_follow_the_weights() {
    let catalogue = vec![
        builtin("a", &["m"], MockBehaviour::default()),
        builtin("b", &["m"], MockBehaviour::default()),
    ];
    let snap = snapshot(SPLITS, catalogue);
    let one = start_proxy(snap.clone(), |_| {});
    let two = start_proxy(snap, |_| {});
    for (model, weight_a) in [("fifty", 0.5), ("ninety", 0.9)] {
        let on_a = run_sessions([&one.url, &two.url], model).await;
        let share = on_a as f64 / SESSIONS as f64;
        // Four standard deviations of a binomial share at 10,000 sessions are at most 2%.
        assert!(
            (share - weight_a).abs() < 0.02,
            "{model}: {share} of sessions on `a`, want {weight_a}"
        );
        eprintln!("{model}: {on_a} of {SESSIONS} sessions on `a` ({share:.4})");
    }
}

// ---------------------------------------------------------------------------------------------
// A session's target fails mid-session

const FAILOVER: &str = r#"
route chat {
  split { 50% a/m, 50% b/m }
  failover to a/m, b/m
  affinity by header("x-session-id") for 10m
}
"#;

/// A session id whose first choice is `provider`.
fn session_homed_on(snap: &Snapshot, provider: &str, skip: usize) -> String {
    (0..)
        .map(|i| format!("s-{i}"))
        .filter(|id| {
            let headers = [("x-session-id", id.as_str())];
            let req = RequestView {
                model: "m",
                headers: &headers,
                ..RequestView::default()
            };
            let d = decide(snap, &req, 0.5).unwrap();
            snap.target_name(d.primary()) == format!("{provider}/m")
        })
        .nth(skip)
        .unwrap()
}

async fn chat_as(proxy: &Proxy, session: &str) -> Answer {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-session-id", session)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    Answer {
        status,
        headers,
        text: r.text().await.unwrap(),
    }
}

async fn served(proxy: &Proxy, session: &str) -> String {
    let r = chat_as(proxy, session).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.header("x-switchyard-provider").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_moves_once_when_its_target_fails_and_does_not_flap_back() {
    let (a, b) = (mock("a").await, mock("b").await);
    let catalogue: Vec<Provider> = vec![upstream("a", &a, &["m"]), upstream("b", &b, &["m"])];
    let snap = snapshot(FAILOVER, catalogue);
    let s = session_homed_on(&snap, "a", 0);
    let t = session_homed_on(&snap, "a", 1);
    let u = session_homed_on(&snap, "a", 2);
    let v = session_homed_on(&snap, "a", 3);
    // Two failures in a row eject a target for 300 ms.
    let proxy = start_proxy_with(
        snap,
        |_| {},
        |shared| {
            shared.health = Arc::new(HealthRegistry::new(2, Duration::from_millis(300)));
        },
    );

    assert_eq!(served(&proxy, &s).await, "a", "turn 1 at home");
    script(
        &a,
        json!([{"kind": "status", "status": 503}, {"kind": "status", "status": 503}]),
    );
    // Turn 2: `a` answers 503, the request fails over to `b`, and the session stays there.
    let r = chat_as(&proxy, &s).await;
    assert_eq!(r.header("x-switchyard-provider"), "b");
    assert!(
        r.header("x-switchyard-failover").starts_with("a/m"),
        "{:?}",
        r.headers
    );
    assert_eq!(
        served(&proxy, &s).await,
        "b",
        "turn 3 stays on the new target"
    );
    // Another session's first turn meets the second failure: `a` is now ejected.
    assert_eq!(served(&proxy, &t).await, "b");
    // A session whose first choice is ejected goes straight to its next choice.
    let r = chat_as(&proxy, &u).await;
    assert_eq!(r.header("x-switchyard-provider"), "b");
    assert!(
        r.header("x-switchyard-failover").contains("ejected"),
        "{:?}",
        r.headers
    );
    let a_calls = a.state().requests().len();
    // After the cooldown `a` probes back in and serves its sessions that never moved...
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(served(&proxy, &v).await, "a");
    assert_eq!(served(&proxy, &v).await, "a");
    // ...while the sessions that moved stay on `b`: no flapping.
    for session in [&s, &t, &u, &s, &t, &u] {
        assert_eq!(served(&proxy, session).await, "b", "{session}");
    }
    assert_eq!(
        a.state().requests().len(),
        a_calls + 2,
        "only `v` went to `a`"
    );
    // When the new target fails too, the session goes back to its first choice and stays.
    script(&b, json!([{"kind": "status", "status": 503}]));
    assert_eq!(served(&proxy, &s).await, "a");
    assert_eq!(served(&proxy, &s).await, "a");
}

/// With `--redis-url`, a session that moved on one replica is sent to the same place by
/// another that never saw its target fail.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_sharing_redis_agree_where_a_moved_session_went() {
    let dir = tempfile::tempdir().unwrap();
    let redis = common::redis::Redis::start(dir.path(), free_port());
    let (a, b) = (mock("a").await, mock("b").await);
    let snap = snapshot(
        FAILOVER,
        vec![upstream("a", &a, &["m"]), upstream("b", &b, &["m"])],
    );
    let (s, t) = (
        session_homed_on(&snap, "a", 0),
        session_homed_on(&snap, "a", 1),
    );
    let url = redis.url();
    let one = start_proxy(snap.clone(), |st| st.redis_url = Some(url.clone()));
    let two = start_proxy(snap, |st| st.redis_url = Some(url.clone()));
    assert_eq!(served(&one, &s).await, "a");
    assert_eq!(served(&two, &s).await, "a");
    script(&a, json!([{"kind": "status", "status": 503}]));
    assert_eq!(served(&one, &s).await, "b", "failed over on replica one");
    // Replica two has seen no failure of `a`, yet follows the session to `b`...
    assert_eq!(served(&two, &s).await, "b");
    assert_eq!(served(&one, &s).await, "b");
    // ...while sessions that never moved stay home there.
    assert_eq!(served(&two, &t).await, "a");
    // Back home on one replica is back home on both.
    script(&b, json!([{"kind": "status", "status": 503}]));
    assert_eq!(served(&two, &s).await, "a");
    assert_eq!(served(&one, &s).await, "a");
}

/// One session sending many requests at once: past its target's load cap the rest spill to
/// its next choice, for those requests only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_session_spills_past_the_load_cap_and_comes_back() {
    let slow = MockBehaviour {
        latency_ms: 1_500,
        ..MockBehaviour::default()
    };
    let catalogue = vec![
        builtin("a", &["m"], slow.clone()),
        builtin("b", &["m"], slow),
    ];
    let snap = snapshot(FAILOVER, catalogue);
    let hot = session_homed_on(&snap, "a", 0);
    let proxy = Arc::new(start_proxy(snap, |_| {}));
    let mut tasks = Vec::new();
    for _ in 0..48 {
        let (proxy, hot) = (Arc::clone(&proxy), hot.clone());
        tasks.push(tokio::spawn(async move { served(&proxy, &hot).await }));
    }
    let mut on = std::collections::BTreeMap::new();
    for t in tasks {
        *on.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    // `a` takes 32 at once (the floor of the cap; a few more when requests check the cap at
    // the same moment); the rest spill to `b`.
    let (on_a, on_b) = (
        on.get("a").copied().unwrap_or(0),
        on.get("b").copied().unwrap_or(0),
    );
    assert!((32..=40).contains(&on_a), "{on:?}");
    assert_eq!(on_a + on_b, 48, "{on:?}");
    // The spill was not remembered: the session's next request is home again.
    assert_eq!(served(&proxy, &hot).await, "a");
}

// ---------------------------------------------------------------------------------------------
// Prompt-cache accounting

/// A mock that reports prompts it has seen as cached input.
async fn caching_mock(name: &str) -> switchyard_mock::MockServer {
    let config = switchyard_mock::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        name: name.into(),
        prompt_cache: true,
        ..switchyard_mock::Config::default()
    };
    switchyard_mock::MockServer::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_input_shows_in_metrics_and_budgets_at_the_cached_price() {
    let (a, b) = (caching_mock("a").await, caching_mock("b").await);
    // $10 per million input, $2 per million cached input, $30 per million output.
    let priced = |name: &str, mock: &switchyard_mock::MockServer| {
        let mut p = upstream(name, mock, &["m"]);
        p.models[0].input_micro_usd_per_mtok = 10_000_000;
        p.models[0].cached_input_micro_usd_per_mtok = Some(2_000_000);
        p.models[0].output_micro_usd_per_mtok = 30_000_000;
        p
    };
    let policy = format!(
        "{FAILOVER}\nbudget dollars {{\n  for all\n  limit $1000 per day\n}}\n\nbudget tokens {{\n  for all\n  limit 1M tokens per day\n}}\n"
    );
    let proxy = start_proxy(
        snapshot(&policy, vec![priced("a", &a), priced("b", &b)]),
        |_| {},
    );
    let client = reqwest::Client::new();
    let (mut input, mut cached, mut output) = (0u64, 0u64, 0u64);
    let mut target = String::new();
    for turn in 1..=3 {
        let r = client
            .post(format!("{}/v1/chat/completions", proxy.url))
            .header("x-session-id", "conversation-1")
            .json(&turn_body("m", 1, turn))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        target = r.headers()["x-switchyard-provider"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = r.json().await.unwrap();
        let u = &body["usage"];
        let c = u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap();
        if turn == 1 {
            assert_eq!(c, 0, "nothing cached yet: {u}");
        } else {
            assert!(c > 0, "turn {turn} finds the earlier turns cached: {u}");
        }
        input += u["prompt_tokens"].as_u64().unwrap();
        output += u["completion_tokens"].as_u64().unwrap();
        cached += c;
    }
    // Settlement runs after the response went out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = get(&proxy.admin_url, "/metrics").await.text;
    for (label, n) in [("cached", cached), ("uncached", input - cached)] {
        let line = format!(
            r#"switchyard_input_tokens_total{{cache="{label}",model="m",provider="{target}",route="chat"}} {n}"#
        );
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    let budgets = get(&proxy.admin_url, "/admin/budgets").await.json();
    let spent = |name: &str| {
        budgets["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["budget"] == name)
            .map(|b| b["limits"][0]["spent"].as_u64().unwrap())
            .unwrap_or_else(|| panic!("{name} in {budgets}"))
    };
    assert_eq!(spent("tokens"), input + output, "every token counts");
    // Each settlement rounds its micro-dollars up.
    let full = (input * 10 + output * 30) as f64;
    let dollars = spent("dollars");
    let expected = ((input - cached) * 10 + cached * 2 + output * 30) as f64;
    assert!(
        (dollars as f64 - expected).abs() <= 3.0 && (dollars as f64) < full,
        "spent {dollars} µ$, want {expected} (not the full {full})"
    );
}

/// The cached input tokens the `switchyard_input_tokens_total` family holds for `provider`.
fn cached_metric(metrics: &str, provider: &str) -> u64 {
    let prefix = format!(
        r#"switchyard_input_tokens_total{{cache="cached",model="m",provider="{provider}","#
    );
    metrics
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Anthropic's `cache_read_input_tokens` and Gemini's `cachedContentTokenCount` are counted
/// like OpenAI's cached tokens, for clients of either API.
#[tokio::test(flavor = "multi_thread")]
async fn anthropic_and_gemini_cache_reads_are_counted() {
    let (anth, gem) = (mock("anth").await, caching_mock("gem").await);
    let catalogue = vec![
        provider(
            "anth",
            switchyard_dsl::ir::ProviderKind::Anthropic,
            Some(format!("{}/v1", anth.url())),
            &["m"],
        ),
        provider(
            "gem",
            switchyard_dsl::ir::ProviderKind::Gemini,
            Some(gem.url()),
            &["m"],
        ),
    ];
    let policy = "route claude {\n  when model == \"claude\"\n  use anth/m\n}\n\nroute gemini {\n  when model == \"gemini\"\n  use gem/m\n}\n";
    let proxy = start_proxy(snapshot(policy, catalogue), |_| {});

    // An Anthropic client marks its system prompt for caching; the target reads it back.
    let system = "You are the yard master. ".repeat(40);
    let r = post(
        &proxy,
        "/v1/messages",
        &json!({
            "model": "claude", "max_tokens": 64,
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "Which track?"}],
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let read = r.json()["usage"]["cache_read_input_tokens"]
        .as_u64()
        .unwrap();
    assert!(read > 0, "{}", r.text);

    // An OpenAI client on a Gemini target: the second turn finds the first one cached.
    let mut gemini_cached = 0;
    for turn in 1..=2 {
        let r = post(
            &proxy,
            "/v1/chat/completions",
            &turn_body("gemini", 7, turn),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let u = &r.json()["usage"];
        let c = u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0);
        assert_eq!(c > 0, turn == 2, "turn {turn}: {u}");
        gemini_cached += c;
    }
    // Metrics are recorded after the response went out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = get(&proxy.admin_url, "/metrics").await.text;
    assert_eq!(cached_metric(&metrics, "anth"), read, "{metrics}");
    assert_eq!(cached_metric(&metrics, "gem"), gemini_cached, "{metrics}");
}
