//! The Responses API's store in a real `redis-server`: a conversation started on one replica
//! continues on another (translated targets: the stored items expand; native targets: the
//! follow-up reaches the provider that keeps it), a delete on one replica is seen by the
//! others, and Redis going away leaves each replica its own memory. Needs `redis-server` on
//! the PATH; fails without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::redis::Redis;
use common::*;
use serde_json::{Value, json};

fn proxy_on(
    catalogue: Vec<switchyard_dsl::ir::Provider>,
    policy: &str,
    redis: Option<&str>,
) -> Proxy {
    let url = redis.map(str::to_owned);
    start_proxy(snapshot(policy, catalogue), move |s| {
        s.responses.responses_redis_url = url;
    })
}

fn turn(input: &str, previous: Option<&str>, stream: bool) -> Value {
    let mut body = json!({"model": "x", "input": input, "stream": stream});
    if let Some(p) = previous {
        body["previous_response_id"] = json!(p);
    }
    body
}

/// The id of a response, whole or streamed (from its `response.completed` event).
fn response_id(a: &Answer) -> String {
    assert_eq!(a.status, 200, "{}", a.text);
    if a.header("content-type").starts_with("text/event-stream") {
        let completed = a
            .events()
            .into_iter()
            .filter_map(|e| serde_json::from_str::<Value>(&e).ok())
            .find(|e| e["type"] == "response.completed")
            .unwrap_or_else(|| panic!("no response.completed in {}", a.text));
        return completed["response"]["id"].as_str().unwrap().to_owned();
    }
    a.json()["id"].as_str().unwrap().to_owned()
}

/// The user texts of the chat request a mock received last.
fn last_user_texts(mock: &switchyard_mock::MockServer) -> Vec<String> {
    let last = mock.state().requests().pop().expect("the mock was called");
    last.body["messages"]
        .as_array()
        .expect("chat messages")
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            parts => (parts.as_array().into_iter().flatten())
                .filter_map(|p| p["text"].as_str())
                .collect(),
        })
        .collect()
}

async fn delete(base: &str, path: &str) -> u16 {
    reqwest::Client::new()
        .delete(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_translated_conversation_continues_on_any_replica() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), free_port());
    let chat = mock("chat").await;
    let policy = "route r {\n  use chat/m\n}\n";
    let catalogue = || vec![upstream("chat", &chat, &["m"])];
    let one = proxy_on(catalogue(), policy, Some(&redis.url()));
    let two = proxy_on(catalogue(), policy, Some(&redis.url()));
    let alone = proxy_on(catalogue(), policy, None);

    let id1 = response_id(&post(&one, "/v1/responses", &turn("first", None, false)).await);
    // Streamed on the other replica: the store is written before the last event is sent.
    let id2 = response_id(&post(&two, "/v1/responses", &turn("second", Some(&id1), true)).await);
    assert_eq!(last_user_texts(&chat), ["first", "second"]);
    let id3 = response_id(&post(&one, "/v1/responses", &turn("third", Some(&id2), false)).await);
    assert_eq!(last_user_texts(&chat), ["first", "second", "third"]);

    // A replica without the shared store does not know the conversation: OpenAI's 404.
    let unknown = post(&alone, "/v1/responses", &turn("fourth", Some(&id3), false)).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);

    // Read back where it was not made; deleted on one replica, gone on the one that made it.
    let got = get(&two.url, &format!("/v1/responses/{id1}")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json()["id"], id1.as_str());
    assert_eq!(delete(&two.url, &format!("/v1/responses/{id1}")).await, 200);
    let gone = get(&one.url, &format!("/v1/responses/{id1}")).await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    let cont = post(&one, "/v1/responses", &turn("again", Some(&id1), false)).await;
    assert_eq!(cont.status, 404, "{}", cont.text);
    // The rest of the conversation is still there.
    let got = get(&one.url, &format!("/v1/responses/{id2}")).await;
    assert_eq!(got.status, 200, "{}", got.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_native_follow_up_reaches_the_keeping_provider_from_any_replica() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), free_port());
    let (a, b) = (mock("a").await, mock("b").await);
    let policy = "route r {\n  split { 50% a/m, 50% b/m }\n}\n";
    let catalogue = || {
        let mut providers = vec![upstream("a", &a, &["m"]), upstream("b", &b, &["m"])];
        for p in &mut providers {
            p.responses_api = true;
        }
        providers
    };
    let one = proxy_on(catalogue(), policy, Some(&redis.url()));
    let two = proxy_on(catalogue(), policy, Some(&redis.url()));
    // Ten conversations: a follow-up drawn by the split alone would match all ten times with
    // probability 2^-10.
    for n in 0..10 {
        let first = post(&one, "/v1/responses", &turn(&format!("q{n}"), None, false)).await;
        let id = response_id(&first);
        let keeper = first.header("x-switchyard-provider").to_owned();
        let next = post(&two, "/v1/responses", &turn("more", Some(&id), n % 2 == 0)).await;
        assert_eq!(next.status, 200, "{}", next.text);
        assert_eq!(
            next.header("x-switchyard-provider"),
            keeper,
            "conversation {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_each_replica_keeps_its_own_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path(), free_port());
    let chat = mock("chat").await;
    let policy = "route r {\n  use chat/m\n}\n";
    let one = proxy_on(
        vec![upstream("chat", &chat, &["m"])],
        policy,
        Some(&redis.url()),
    );
    redis.kill();
    let id1 = response_id(&post(&one, "/v1/responses", &turn("first", None, false)).await);
    let id2 = response_id(&post(&one, "/v1/responses", &turn("second", Some(&id1), true)).await);
    assert!(!id2.is_empty());
    assert_eq!(last_user_texts(&chat), ["first", "second"]);
    let metrics = get(&one.admin_url, "/metrics").await.text;
    let errors: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_responses_store_redis_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(errors > 0, "no Redis error counted:\n{metrics}");
}
