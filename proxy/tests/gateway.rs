//! The client API through the gateway: chat (whole and streamed), the model rewrite with
//! unknown fields passed through, embeddings, models, response headers, weighted splits,
//! the built-in mock kind, and every client-side error status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use switchyard_dsl::ir::MockBehaviour;

const ONE_ROUTE: &str = r#"
route chat {
  when model == "gpt-4o"
  use up/upstream-4o
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn non_streamed_chat_rewrites_the_model_and_keeps_unknown_fields() {
    let up = mock("up").await;
    let proxy = start_proxy(
        snapshot(ONE_ROUTE, vec![upstream("up", &up, &["upstream-4o"])]),
        |_| {},
    );
    let a = post(&proxy, "/v1/chat/completions", &chat("gpt-4o", false)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-switchyard-route"), "chat");
    assert_eq!(a.header("x-switchyard-provider"), "up");
    assert_eq!(a.header("x-switchyard-model"), "upstream-4o");
    assert_eq!(a.header("x-switchyard-attempts"), "1");
    let v = a.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let sent = up.state().requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(sent[0].body["model"], "upstream-4o");
    assert_eq!(
        sent[0].body["x_unknown"],
        chat("gpt-4o", false)["x_unknown"]
    );
    assert_eq!(sent[0].body["messages"], chat("gpt-4o", false)["messages"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_chat_relays_events_and_usage() {
    let up = mock("up").await;
    let proxy = start_proxy(
        snapshot(ONE_ROUTE, vec![upstream("up", &up, &["upstream-4o"])]),
        |_| {},
    );
    let mut body = chat("gpt-4o", true);
    body["stream_options"] = json!({"include_usage": true});
    let a = post(&proxy, "/v1/chat/completions", &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.header("content-type").starts_with("text/event-stream"));
    assert_eq!(a.header("x-switchyard-provider"), "up");
    let events = a.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        up.state().requests()[0].body["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn embeddings_and_models() {
    let up = mock("up").await;
    let policy = r#"
route chat { when model in ["gpt-4o", "gpt-4o-latest"]  use up/upstream-4o }
route embed { when model == "text-embedding-3-small"  use up/emb }
"#;
    let proxy = start_proxy(
        snapshot(policy, vec![upstream("up", &up, &["upstream-4o", "emb"])]),
        |_| {},
    );
    let a = post(
        &proxy,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": "hi"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-switchyard-model"), "emb");
    assert_eq!(a.json()["data"][0]["object"], "embedding");
    assert_eq!(up.state().requests()[0].path, "/v1/embeddings");

    let m = get(&proxy.url, "/v1/models").await;
    assert_eq!(m.status, 200);
    let v = m.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-4o", "gpt-4o-latest", "text-embedding-3-small"]);
    assert_eq!(v["data"][0]["owned_by"], "up");
    assert_eq!(
        get(&proxy.url, "/v1/models/gpt-4o").await.json()["id"],
        "gpt-4o"
    );
    assert_eq!(get(&proxy.url, "/v1/models/nope").await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_split_follows_the_weights() {
    let policy = r#"
route chat {
  split { 70% a/m, 30% b/m }
}
"#;
    let fast = MockBehaviour::default();
    let catalogue = vec![
        builtin("a", &["m"], fast.clone()),
        builtin("b", &["m"], fast),
    ];
    let proxy = start_proxy(snapshot(policy, catalogue), |s| s.draw_seed = Some(7));
    let mut a = 0;
    for _ in 0..200 {
        let r = post(&proxy, "/v1/chat/completions", &chat("anything", false)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if r.header("x-switchyard-provider") == "a" {
            a += 1;
        }
    }
    assert!((110..=170).contains(&a), "a served {a} of 200");
}

#[tokio::test(flavor = "multi_thread")]
async fn builtin_mock_answers_whole_and_streamed_and_fails_by_rate() {
    let policy = r#"
route ok { when model == "ok"  use good/m }
route bad { when model == "bad"  use broken/m }
"#;
    let good = MockBehaviour {
        ttft_ms: 5,
        tokens_per_second: 1000,
        seed: 3,
        ..MockBehaviour::default()
    };
    let broken = MockBehaviour {
        error_rate_ppm: 1_000_000,
        ..MockBehaviour::default()
    };
    let catalogue = vec![
        builtin("good", &["m"], good),
        builtin("broken", &["m"], broken),
    ];
    let proxy = start_proxy(snapshot(policy, catalogue), |_| {});
    let a = post(&proxy, "/v1/chat/completions", &chat("ok", false)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["model"], "m");
    let s = post(&proxy, "/v1/chat/completions", &chat("ok", true)).await;
    assert_eq!(s.events().last().map(String::as_str), Some("[DONE]"));
    let e = post(&proxy, "/v1/chat/completions", &chat("bad", false)).await;
    assert_eq!(e.status, 502, "{}", e.text);
    assert!(
        e.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broken/m: status 500")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_errors_are_openai_shaped() {
    let up = mock("up").await;
    let proxy = start_proxy(
        snapshot(ONE_ROUTE, vec![upstream("up", &up, &["upstream-4o"])]),
        |s| {
            s.max_body_bytes = 4096;
        },
    );
    let check = |a: &Answer, status: u16, code: &str| {
        assert_eq!(a.status, status, "{}", a.text);
        let v = a.json();
        assert_eq!(v["error"]["code"], code, "{}", a.text);
        assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string());
        assert!(v["error"].as_object().unwrap().contains_key("param"));
    };
    let bad_json = post_raw(&proxy, "/v1/chat/completions", b"{\"model\": ".to_vec()).await;
    check(&bad_json, 400, "invalid_json");
    let no_model = post(&proxy, "/v1/chat/completions", &json!({"messages": []})).await;
    check(&no_model, 400, "invalid_request");
    let unknown = post(&proxy, "/v1/chat/completions", &chat("gpt-9", false)).await;
    check(&unknown, 404, "model_not_found");
    let path = post(&proxy, "/v1/nothing", &chat("gpt-4o", false)).await;
    check(&path, 404, "unknown_url");
    let method = get(&proxy.url, "/v1/chat/completions").await;
    check(&method, 405, "method_not_allowed");
    let big =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let too_large = post(&proxy, "/v1/chat/completions", &big).await;
    check(&too_large, 413, "request_too_large");
    assert!(
        up.state().requests().is_empty(),
        "nothing reached the upstream"
    );
}
