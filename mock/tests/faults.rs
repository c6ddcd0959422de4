//! Every fault observed from the client side, the script queue, and the request log.
//! Timing assertions only use lower bounds, so a slow machine cannot make them fail.

mod common;

use std::time::{Duration, Instant};

use common::{chat, json, post, post_with, read_until_error, sse_data};
use serde_json::{Value, json};
use switchyard_mock::MockServer;

const CHAT: &str = "/v1/chat/completions";

async fn script(server: &MockServer, body: Value) {
    let response = post(server, "/_mock/script", &body).await;
    assert_eq!(response.status(), 200, "script accepted");
}

#[tokio::test]
async fn status_fault_answers_with_openai_error() {
    let server = common::start("s").await;
    script(
        &server,
        json!({"faults": [{"kind": "status", "status": 503, "message": "down"}]}),
    )
    .await;
    let response = post(&server, CHAT, &chat("hi", json!({}))).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-mock-server"], "s");
    let body = json(response).await;
    assert_eq!(
        body,
        json!({"error": {"message": "down", "type": "server_error", "param": null, "code": null}})
    );
    // The queue is spent: back to normal.
    assert_eq!(
        post(&server, CHAT, &chat("hi", json!({}))).await.status(),
        200
    );
}

#[tokio::test]
async fn rate_limit_fault_sends_retry_after() {
    let server = common::start("s").await;
    script(
        &server,
        json!({"faults": [{"kind": "rate_limit", "retry_after": 7}]}),
    )
    .await;
    let response = post(&server, CHAT, &chat("hi", json!({}))).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn reset_fault_is_a_connection_error() {
    let server = common::start("s").await;
    script(&server, json!({"faults": [{"kind": "reset"}]})).await;
    let result = common::client()
        .post(format!("{}{CHAT}", server.url()))
        .body(chat("hi", json!({})).to_string())
        .send()
        .await;
    let error = result.expect_err("the connection is reset");
    assert!(!error.is_timeout() && !error.is_status(), "{error:?}");
    // The next request, on a new connection, is served.
    assert_eq!(
        post(&server, CHAT, &chat("hi", json!({}))).await.status(),
        200
    );
}

#[tokio::test]
async fn reset_is_an_rst_on_the_raw_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = common::start("s").await;
    server.state().apply(switchyard_mock::Script {
        faults: vec![switchyard_mock::Fault::Reset.into()],
        ..Default::default()
    });
    let mut stream = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let body = chat("hi", json!({})).to_string();
    let request = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let read = stream.read_to_end(&mut buf).await;
    assert!(buf.is_empty(), "no response bytes");
    let error = read.expect_err("RST, not a clean close");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn stall_delays_the_first_byte() {
    let server = common::start("s").await;
    script(&server, json!({"faults": [{"kind": "stall", "ms": 300}]})).await;
    let started = Instant::now();
    let response = post(&server, CHAT, &chat("hi", json!({}))).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["object"], "chat.completion");
}

#[tokio::test]
async fn stall_forever_never_answers() {
    let server = common::start("s").await;
    let result = common::client()
        .post(format!("{}{CHAT}", server.url()))
        .header("x-mock-fault", r#"{"kind":"stall","forever":true}"#)
        .body(chat("hi", json!({})).to_string())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(result.expect_err("no answer").is_timeout());
}

#[tokio::test]
async fn slow_ttft_delays_the_first_chunk_not_the_headers() {
    let server = common::start("s").await;
    script(
        &server,
        json!({"faults": [{"kind": "slow_ttft", "ms": 300}]}),
    )
    .await;
    let started = Instant::now();
    let mut response = post(&server, CHAT, &chat("hi", json!({"stream": true}))).await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.expect("chunk").expect("some chunk");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(first.starts_with(b"data: {"));
    let (rest, failed) = read_until_error(response).await;
    assert!(!failed && rest.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn cut_stream_ends_without_done() {
    let server = common::start("s").await;
    script(
        &server,
        json!({"faults": [{"kind": "cut_stream", "after_chunks": 3}]}),
    )
    .await;
    let response = post(&server, CHAT, &chat("hi", json!({"stream": true}))).await;
    assert_eq!(response.status(), 200);
    let (text, failed) = read_until_error(response).await;
    assert!(failed, "the body ends in an error, not a clean end");
    let data = sse_data(&text);
    assert_eq!(data.len(), 3, "{text}");
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn cut_whole_body_is_an_incomplete_response() {
    let server = common::start("s").await;
    let response = post_with(
        &server,
        CHAT,
        &chat("hi", json!({})),
        &[("x-mock-fault", r#"{"kind":"cut_stream","after_chunks":0}"#)],
    )
    .await;
    assert_eq!(response.status(), 200);
    let (text, failed) = read_until_error(response).await;
    assert!(failed);
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[tokio::test]
async fn malformed_chunk_appears_and_the_stream_goes_on() {
    let server = common::start("s").await;
    script(
        &server,
        json!({"faults": [{"kind": "malformed_chunk", "after_chunks": 2}]}),
    )
    .await;
    let response = post(&server, CHAT, &chat("hi", json!({"stream": true}))).await;
    let text = response.text().await.expect("body");
    let data = sse_data(&text);
    let bad: Vec<usize> = data
        .iter()
        .enumerate()
        .filter(|(_, d)| *d != "[DONE]" && serde_json::from_str::<Value>(d).is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bad, [2]);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn queue_is_consumed_in_order_then_back_to_normal() {
    let server = common::start("s").await;
    script(
        &server,
        json!({"faults": [
            {"kind": "status", "status": 500},
            {"kind": "rate_limit", "retry_after": 1},
            {"kind": "none"},
            {"kind": "status", "status": 502, "times": 2},
        ]}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            post(&server, CHAT, &chat("hi", json!({})))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [500, 429, 200, 502, 502, 200]);
}

#[tokio::test]
async fn path_filters_default_fault_and_reset() {
    let server = common::start("s").await;
    script(
        &server,
        json!({
            "faults": [{"kind": "status", "status": 500, "path": "/v1/embeddings"}],
            "default": {"kind": "status", "status": 503},
        }),
    )
    .await;
    assert_eq!(
        post(&server, CHAT, &chat("hi", json!({}))).await.status(),
        503
    );
    let embed = json!({"model": "e", "input": "x"});
    assert_eq!(post(&server, "/v1/embeddings", &embed).await.status(), 500);
    assert_eq!(post(&server, "/v1/embeddings", &embed).await.status(), 503);
    assert_eq!(
        post(&server, "/_mock/reset", &json!({})).await.status(),
        200
    );
    assert_eq!(
        post(&server, CHAT, &chat("hi", json!({}))).await.status(),
        200
    );
    assert_eq!(server.state().requests().len(), 1, "reset clears the log");
}

#[tokio::test]
async fn fault_header_overrides_without_consuming_the_queue() {
    let server = common::start("s").await;
    script(
        &server,
        json!({"faults": [{"kind": "status", "status": 500}]}),
    )
    .await;
    let header = [("x-mock-fault", r#"{"kind":"status","status":418}"#)];
    assert_eq!(
        post_with(&server, CHAT, &chat("hi", json!({})), &header)
            .await
            .status(),
        418
    );
    assert_eq!(
        post(&server, CHAT, &chat("hi", json!({}))).await.status(),
        500
    );
    let bad = [("x-mock-fault", "{not json")];
    let response = post_with(&server, CHAT, &chat("hi", json!({})), &bad).await;
    assert_eq!(response.status(), 400);
    assert!(
        json(response).await["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid fault"))
    );
}

#[tokio::test]
async fn bad_script_is_rejected() {
    let server = common::start("s").await;
    let response = post(
        &server,
        "/_mock/script",
        &json!({"faults": [{"kind": "explode"}]}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let state = common::client()
        .get(format!("{}/_mock/script", server.url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(json(state).await["faults"], json!([]));
}

#[tokio::test]
async fn behaviour_can_be_scripted() {
    let server = common::start("s").await;
    script(&server, json!({"behaviour": {"completion_tokens": 3}})).await;
    let body = json(post(&server, CHAT, &chat("hi", json!({}))).await).await;
    assert_eq!(body["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn request_log_records_what_was_sent_with_credentials_redacted() {
    let server = common::start("s").await;
    let headers = [
        ("authorization", "Bearer sk-very-secret"),
        ("api-key", "azure-secret"),
        ("x-team", "support"),
        ("x-mock-fault", r#"{"kind":"rate_limit"}"#),
    ];
    post_with(
        &server,
        CHAT,
        &chat("hello", json!({"temperature": 0.5})),
        &headers,
    )
    .await;
    common::client()
        .post(format!("{}/v1/embeddings?trace=1", server.url()))
        .body("not json")
        .send()
        .await
        .expect("sent");
    let response = common::client()
        .get(format!("{}/_mock/requests", server.url()))
        .send()
        .await
        .expect("sent");
    let log = json(response).await;
    let log = log.as_array().expect("an array");
    assert_eq!(log.len(), 2, "the scripting calls are not logged");
    let first = &log[0];
    assert_eq!(first["seq"], 1);
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], CHAT);
    assert_eq!(first["headers"]["authorization"], "[redacted]");
    assert_eq!(first["headers"]["api-key"], "[redacted]");
    assert_eq!(first["headers"]["x-team"], "support");
    assert_eq!(first["body"]["messages"][0]["content"], "hello");
    assert_eq!(first["body"]["temperature"], 0.5);
    assert_eq!(first["fault"]["kind"], "rate_limit");
    assert!(!log.iter().any(|r| r.to_string().contains("secret")));
    assert_eq!(log[1]["query"], "trace=1");
    assert_eq!(log[1]["body"], "not json");
    assert_eq!(log[1]["fault"], Value::Null);
}

/// Reset and stall apply to the Anthropic and Gemini routes as to OpenAI's; whole-body faults
/// cut or break their JSON.
#[tokio::test]
async fn connection_and_body_faults_apply_to_every_format() {
    let server = common::start("s").await;
    let anthropic =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let gemini = json!({"contents": [{"parts": [{"text": "hi"}]}]});
    let routes = [
        ("/v1/messages", anthropic),
        ("/v1beta/models/g:generateContent", gemini),
    ];
    for (path, body) in &routes {
        let result = common::client()
            .post(format!("{}{path}", server.url()))
            .header("x-mock-fault", r#"{"kind":"reset"}"#)
            .body(body.to_string())
            .send()
            .await;
        assert!(result.is_err(), "{path}: reset");

        let started = Instant::now();
        let response = post_with(
            &server,
            path,
            body,
            &[("x-mock-fault", r#"{"kind":"stall","ms":200}"#)],
        )
        .await;
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{path}: stall"
        );
        assert_eq!(response.status(), 200);

        let response = post_with(
            &server,
            path,
            body,
            &[(
                "x-mock-fault",
                r#"{"kind":"malformed_chunk","after_chunks":0}"#,
            )],
        )
        .await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.expect("a clean end");
        assert!(
            serde_json::from_str::<Value>(&text).is_err(),
            "{path}: half the JSON"
        );

        let response = post_with(
            &server,
            path,
            body,
            &[("x-mock-fault", r#"{"kind":"cut_stream","after_chunks":0}"#)],
        )
        .await;
        let (_, failed) = read_until_error(response).await;
        assert!(failed, "{path}: cut");
    }
}
