//! Providers end to end over real HTTP: the gateway in process, `switchyard-mock` upstreams
//! speaking OpenAI, Anthropic and Gemini. An OpenAI client reaches Anthropic and Gemini
//! targets (streamed or not, tools included), an Anthropic client reaches OpenAI and
//! Anthropic targets, failover crosses providers, and classified errors drive the triggers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use switchyard_dsl::ir::ProviderKind;
use switchyard_mock::MockServer;

fn anthropic(name: &str, mock: &MockServer, models: &[&str]) -> switchyard_dsl::ir::Provider {
    provider(
        name,
        ProviderKind::Anthropic,
        Some(format!("{}/v1", mock.url())),
        models,
    )
}

fn gemini(name: &str, mock: &MockServer, models: &[&str]) -> switchyard_dsl::ir::Provider {
    provider(name, ProviderKind::Gemini, Some(mock.url()), models)
}

/// One route `use P/m` for a single provider of `kind` on a fresh mock.
async fn single(kind: ProviderKind) -> (MockServer, Proxy) {
    let m = mock("up").await;
    let p = match kind {
        ProviderKind::Anthropic => anthropic("p", &m, &["m"]),
        ProviderKind::Gemini => gemini("p", &m, &["m"]),
        _ => upstream("p", &m, &["m"]),
    };
    let proxy = start_proxy(snapshot("route chat {\n  use p/m\n}\n", vec![p]), |_| {});
    (m, proxy)
}

fn with_tools(mut body: Value) -> Value {
    body["tools"] = json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }}]);
    body["tool_choice"] = json!("required");
    body
}

/// Checks a whole OpenAI chat completion; returns its first choice.
fn completion(a: &Answer) -> Value {
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert_eq!(v["model"], "m");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{v}");
    v["choices"][0].clone()
}

/// Checks an OpenAI stream; returns (text, tool call arguments by index, finish, usage).
fn chunks(a: &Answer) -> (String, Vec<String>, String, Value) {
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.header("content-type").starts_with("text/event-stream"));
    let events = a.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        a.text
    );
    let (mut text, mut args, mut finish, mut usage) =
        (String::new(), Vec::new(), String::new(), Value::Null);
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk", "{v}");
        if v["usage"].is_object() {
            usage = v["usage"].clone();
        }
        let c = &v["choices"][0];
        if let Some(t) = c["delta"]["content"].as_str() {
            text.push_str(t);
        }
        for call in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let i = call["index"].as_u64().unwrap() as usize;
            if args.len() <= i {
                args.resize(i + 1, String::new());
            }
            args[i].push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(f) = c["finish_reason"].as_str() {
            finish = f.to_owned();
        }
    }
    (text, args, finish, usage)
}

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_client_to_anthropic_target() {
    let (m, proxy) = single(ProviderKind::Anthropic).await;
    let mut body = chat("m", false);
    body["messages"] =
        json!([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hello"}]);
    body["stop"] = json!(["STOP"]);
    let r = post(&proxy, "/v1/chat/completions", &body).await;
    let choice = completion(&r);
    assert!(!choice["message"]["content"].as_str().unwrap().is_empty());
    assert_eq!(choice["finish_reason"], "stop");
    let seen = &m.state().requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(
        seen.headers.get("anthropic-version").map(String::as_str),
        Some("2023-06-01")
    );
    assert_eq!(seen.body["system"][0]["text"], "Be terse.");
    assert_eq!(seen.body["stop_sequences"], json!(["STOP"]));
    assert_eq!(seen.body["max_tokens"], 4096);

    let s = post(&proxy, "/v1/chat/completions", &streamed(chat("m", true))).await;
    let (text, _, finish, usage) = chunks(&s);
    assert!(!text.is_empty());
    assert_eq!(finish, "stop");
    assert!(usage["total_tokens"].as_u64().unwrap() > 0, "{usage}");
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_client_tools_through_anthropic() {
    let (_m, proxy) = single(ProviderKind::Anthropic).await;
    let r = post(
        &proxy,
        "/v1/chat/completions",
        &with_tools(chat("m", false)),
    )
    .await;
    let choice = completion(&r);
    assert_eq!(choice["finish_reason"], "tool_calls", "{choice}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args.is_object());

    let s = post(
        &proxy,
        "/v1/chat/completions",
        &streamed(with_tools(chat("m", true))),
    )
    .await;
    let (_, args, finish, _) = chunks(&s);
    assert_eq!(finish, "tool_calls");
    let parsed: Value =
        serde_json::from_str(&args[0]).unwrap_or_else(|e| panic!("{e}: {}", s.text));
    assert!(parsed.is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_client_to_gemini_target() {
    let (m, proxy) = single(ProviderKind::Gemini).await;
    let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
    let choice = completion(&r);
    assert!(!choice["message"]["content"].as_str().unwrap().is_empty());
    assert_eq!(
        m.state().requests()[0].path,
        "/v1beta/models/m:generateContent"
    );

    let s = post(&proxy, "/v1/chat/completions", &streamed(chat("m", true))).await;
    let (text, _, finish, usage) = chunks(&s);
    assert!(!text.is_empty());
    assert_eq!(finish, "stop");
    assert!(usage["total_tokens"].as_u64().unwrap() > 0);
    let seen = &m.state().requests()[1];
    assert_eq!(seen.path, "/v1beta/models/m:streamGenerateContent");
    assert_eq!(seen.query.as_deref(), Some("alt=sse"));
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_client_tools_through_gemini() {
    let (_m, proxy) = single(ProviderKind::Gemini).await;
    let r = post(
        &proxy,
        "/v1/chat/completions",
        &with_tools(chat("m", false)),
    )
    .await;
    let choice = completion(&r);
    assert_eq!(choice["finish_reason"], "tool_calls", "{choice}");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );

    let s = post(
        &proxy,
        "/v1/chat/completions",
        &streamed(with_tools(chat("m", true))),
    )
    .await;
    let (_, args, finish, _) = chunks(&s);
    assert_eq!(finish, "tool_calls");
    assert!(serde_json::from_str::<Value>(&args[0]).unwrap().is_object());
}

fn messages_body(stream: bool) -> Value {
    json!({
        "model": "m",
        "max_tokens": 200,
        "system": "Be terse.",
        "messages": [{"role": "user", "content": "Hello there"}],
        "stream": stream,
    })
}

fn anthropic_message(a: &Answer) -> Value {
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["content"][0]["type"], "text");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0, "{v}");
    v
}

/// Event names of an Anthropic stream, checked for shape.
fn anthropic_events(a: &Answer) -> Vec<String> {
    assert_eq!(a.status, 200, "{}", a.text);
    let names: Vec<String> = a
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_owned)
        .collect();
    for d in a.events() {
        serde_json::from_str::<Value>(&d).unwrap();
    }
    assert_eq!(
        names.first().map(String::as_str),
        Some("message_start"),
        "{}",
        a.text
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("message_stop"),
        "{}",
        a.text
    );
    assert!(names.iter().any(|n| n == "content_block_delta"));
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_client_to_openai_target() {
    let (m, proxy) = single(ProviderKind::OpenaiCompatible).await;
    let r = post(&proxy, "/v1/messages", &messages_body(false)).await;
    anthropic_message(&r);
    let seen = &m.state().requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body["messages"][0]["role"], "system");
    let s = post(&proxy, "/v1/messages", &messages_body(true)).await;
    let names = anthropic_events(&s);
    assert!(names.iter().any(|n| n == "message_delta"));
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_client_to_anthropic_target() {
    let (m, proxy) = single(ProviderKind::Anthropic).await;
    let mut body = messages_body(false);
    // Passed through as the client wrote it: Anthropic-only fields survive.
    body["system"] =
        json!([{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}]);
    body["top_k"] = json!(5);
    let r = post(&proxy, "/v1/messages", &body).await;
    anthropic_message(&r);
    let seen = &m.state().requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.body["system"], body["system"]);
    assert_eq!(seen.body["top_k"], 5);
    assert_eq!(seen.body["max_tokens"], 200);
    // The answer is Anthropic's own, untranslated (stop_sequence survives).
    let mut stop = messages_body(false);
    stop["stop_sequences"] = json!(["zzz-never"]);
    let r = post(&proxy, "/v1/messages", &stop).await;
    assert!(
        anthropic_message(&r).get("stop_sequence").is_some(),
        "{}",
        r.text
    );
    assert!(
        r.json()["id"].as_str().unwrap().starts_with("msg_01"),
        "{}",
        r.text
    );
    let s = post(&proxy, "/v1/messages", &messages_body(true)).await;
    let names = anthropic_events(&s);
    assert!(
        names
            .iter()
            .any(|n| n == "ping" || n == "content_block_stop")
    );
    // A stream cut mid-way ends with an error event after the raw events.
    script(&m, json!([{"kind": "cut_stream", "after_chunks": 3}]));
    let cut = post(&proxy, "/v1/messages", &messages_body(true)).await;
    let last = cut
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .next_back();
    assert_eq!(last, Some("error"), "{}", cut.text);
    // The provider's errors come back in Anthropic's shape.
    let bad = post(
        &proxy,
        "/v1/messages",
        &json!({"model": "m", "max_tokens": 1, "messages": []}),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["type"], "error", "{}", bad.text);
    assert_eq!(bad.json()["error"]["type"], "invalid_request_error");
    // So are the gateway's own.
    let bad = post_raw(&proxy, "/v1/messages", b"{not json".to_vec()).await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json()["error"]["type"],
        "invalid_request_error",
        "{}",
        bad.text
    );
    let nowhere = post(&proxy, "/v1/messages/batches", &json!({})).await;
    assert_eq!(nowhere.status, 404);
    assert_eq!(
        nowhere.json()["error"]["type"],
        "not_found_error",
        "{}",
        nowhere.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_crosses_providers() {
    let (a, b) = (mock("a").await, mock("b").await);
    let catalogue = vec![upstream("a", &a, &["m"]), anthropic("b", &b, &["m"])];
    let policy = "route chat {\n  use a/m\n  failover to b/m\n}\n";
    let proxy = start_proxy(snapshot(policy, catalogue), |_| {});
    script(
        &a,
        json!([{"kind": "status", "status": 503}, {"kind": "status", "status": 503}]),
    );
    let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(r.header("x-switchyard-provider"), "b");
    assert_eq!(r.header("x-switchyard-attempts"), "2");
    completion(&r);
    let s = post(&proxy, "/v1/chat/completions", &streamed(chat("m", true))).await;
    assert_eq!(s.header("x-switchyard-provider"), "b");
    chunks(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn classified_anthropic_errors_drive_triggers() {
    let (a, b) = (mock("a").await, mock("b").await);
    let catalogue = vec![anthropic("a", &a, &["m"]), upstream("b", &b, &["m"])];
    let policy = "route chat {\n  use a/m\n  failover to b/m when overloaded or rate_limited\n}\n";
    let proxy = start_proxy(snapshot(policy, catalogue), |_| {});
    // 529 overloaded_error: fails over.
    script(&a, json!([{"kind": "status", "status": 529}]));
    let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(r.header("x-switchyard-provider"), "b", "{}", r.text);
    completion(&r);
    // 400 invalid_request_error: never fails over; the client gets an OpenAI-shaped 400.
    script(
        &a,
        json!([{"kind": "status", "status": 400, "message": "messages: bad"}]),
    );
    let before = b.state().requests().len();
    let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "invalid_request", "{}", r.text);
    assert_eq!(r.json()["error"]["message"], "messages: bad");
    assert_eq!(b.state().requests().len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_stream_error_after_first_token() {
    let (m, proxy) = single(ProviderKind::Anthropic).await;
    script(&m, json!([{"kind": "stream_error", "after_chunks": 3}]));
    let s = post(&proxy, "/v1/chat/completions", &streamed(chat("m", true))).await;
    assert_eq!(s.status, 200);
    let events = s.events();
    assert!(!events.iter().any(|e| e == "[DONE]"), "{}", s.text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "server_overloaded", "{}", s.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn classified_gemini_errors_drive_triggers() {
    let (a, b) = (mock("a").await, mock("b").await);
    let catalogue = vec![gemini("a", &a, &["m"]), upstream("b", &b, &["m"])];
    let policy = "route chat {\n  use a/m\n  failover to b/m when rate_limited or overloaded\n}\n";
    let proxy = start_proxy(snapshot(policy, catalogue), |_| {});
    // 503 UNAVAILABLE ("the model is overloaded") fails over, streamed too.
    script(&a, json!([{"kind": "status", "status": 503}]));
    let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(r.header("x-switchyard-provider"), "b", "{}", r.text);
    completion(&r);
    // 400 INVALID_ARGUMENT is the caller's: passed back, OpenAI-shaped, no failover.
    let before = b.state().requests().len();
    script(
        &a,
        json!([{"kind": "status", "status": 400, "message": "Invalid JSON payload"}]),
    );
    let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(b.state().requests().len(), before);
    script(&a, json!([{"kind": "rate_limit"}]));
    let s = post(&proxy, "/v1/chat/completions", &streamed(chat("m", true))).await;
    assert_eq!(s.header("x-switchyard-provider"), "b", "{}", s.text);
    chunks(&s);
    // RESOURCE_EXHAUSTED came with a retry delay: `a` is left alone until it passes.
    let seen_by_a = a.state().requests().len();
    let r = post(&proxy, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(r.header("x-switchyard-provider"), "b", "{}", r.text);
    assert!(
        r.header("x-switchyard-failover")
            .contains("a/m: rate limited for"),
        "{:?}",
        r.headers
    );
    assert_eq!(a.state().requests().len(), seen_by_a);
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_stream_error_after_first_token() {
    let (m, proxy) = single(ProviderKind::Gemini).await;
    script(&m, json!([{"kind": "stream_error", "after_chunks": 2}]));
    let s = post(&proxy, "/v1/chat/completions", &streamed(chat("m", true))).await;
    assert_eq!(s.status, 200);
    let events = s.events();
    assert!(!events.iter().any(|e| e == "[DONE]"), "{}", s.text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "server_overloaded", "{}", s.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_client_sees_a_cut_stream_as_an_error_event() {
    let (m, proxy) = single(ProviderKind::OpenaiCompatible).await;
    script(&m, json!([{"kind": "cut_stream", "after_chunks": 2}]));
    let s = post(&proxy, "/v1/messages", &messages_body(true)).await;
    assert_eq!(s.status, 200);
    let names: Vec<&str> = s
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{}", s.text);
    assert_eq!(names.last(), Some(&"error"), "{}", s.text);
    assert!(!names.contains(&"message_stop"));
}

#[tokio::test(flavor = "multi_thread")]
async fn models_list_in_anthropic_shape_for_anthropic_sdks() {
    let m = mock("up").await;
    let policy = "route chat {\n  when model == \"claude-x\"\n  use p/m\n}\n";
    let proxy = start_proxy(snapshot(policy, vec![anthropic("p", &m, &["m"])]), |_| {});
    let r = reqwest::Client::new()
        .get(format!("{}/v1/models", proxy.url))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["has_more"], false, "{v}");
    assert_eq!(v["data"][0]["id"], "claude-x", "{v}");
    assert_eq!(v["first_id"], "claude-x");
    for m in v["data"].as_array().unwrap() {
        assert_eq!(m["type"], "model");
        assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
    }
    let plain = get(&proxy.url, "/v1/models").await.json();
    assert_eq!(plain["object"], "list");
}

/// Claude Code's request shape: beta fields enabled by `anthropic-beta` (an Anthropic target
/// gets the header with the body) and a mid-conversation system message (kept in place for
/// an OpenAI target, passed through to an Anthropic one).
#[tokio::test(flavor = "multi_thread")]
async fn anthropic_betas_and_mid_conversation_system_messages() {
    let mut body = messages_body(false);
    body["messages"] = json!([
        {"role": "user", "content": "Hello there"},
        {"role": "system", "content": [{"type": "text", "text": "cwd: /tmp", "cache_control": {"type": "ephemeral"}}]},
    ]);
    body["context_management"] =
        json!({"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]});
    let betas = "claude-code-20250219,context-management-2025-06-27";
    let send = |url: String| {
        reqwest::Client::new()
            .post(format!("{url}/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", betas)
            .json(&body)
            .send()
    };

    let (m, proxy) = single(ProviderKind::Anthropic).await;
    let r = send(proxy.url.clone()).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let seen = &m.state().requests()[0];
    assert_eq!(
        seen.headers.get("anthropic-beta").map(String::as_str),
        Some(betas)
    );
    assert_eq!(seen.body["messages"], body["messages"]);
    assert_eq!(seen.body["context_management"], body["context_management"]);

    let (m, proxy) = single(ProviderKind::OpenaiCompatible).await;
    let r = send(proxy.url.clone()).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let seen = &m.state().requests()[0];
    assert!(!seen.headers.contains_key("anthropic-beta"));
    let roles: Vec<&str> = seen.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["system", "user", "system"], "{}", seen.body);
    assert_eq!(seen.body["messages"][2]["content"], "cwd: /tmp");
}
