//! The Anthropic Messages wire format over real HTTP: messages whole and streamed, tool use,
//! cache usage, errors, faults in Anthropic's shapes, and `--require-auth`.

mod common;

use common::{json, post, post_with, read_until_error, sse_events, weather_schema};
use serde_json::{Value, json};
use switchyard_mock::{Config, MockServer};

const MESSAGES: &str = "/v1/messages";
const HEADERS: &[(&str, &str)] = &[
    ("x-api-key", "sk-ant-test"),
    ("anthropic-version", "2023-06-01"),
];

fn request(content: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": content}],
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

fn weather_tools() -> Value {
    json!([{"name": "get_weather", "description": "Weather", "input_schema": weather_schema()}])
}

async fn send(server: &MockServer, body: &Value) -> reqwest::Response {
    post_with(server, MESSAGES, body, HEADERS).await
}

async fn send_with_fault(server: &MockServer, body: &Value, fault: &str) -> reqwest::Response {
    let mut headers = HEADERS.to_vec();
    headers.push(("x-mock-fault", fault));
    post_with(server, MESSAGES, body, &headers).await
}

/// The parsed events of a streamed answer: (name, data as JSON).
async fn stream(response: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/event-stream"))
    );
    let body = response.text().await.expect("body");
    sse_events(&body)
        .into_iter()
        .map(|(name, data)| {
            let data: Value = serde_json::from_str(&data).expect("data is JSON");
            let name = name.expect("every Anthropic event is named");
            assert_eq!(data["type"], name.as_str(), "event name matches data.type");
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn message_has_anthropic_shape_and_usage() {
    let server = common::start("claude").await;
    // 16 characters of system and content: 4 input tokens.
    let response = send(&server, &request("abcdefghijkl", json!({"system": "abcd"}))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-mock-server"], "claude");
    assert!(response.headers().contains_key("request-id"));
    let body = json(response).await;
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_01"))
    );
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["stop_sequence"], Value::Null);
    assert_eq!(body["content"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["content"][0]["type"], "text");
    let text = body["content"][0]["text"].as_str().expect("text");
    assert_eq!(text.split(' ').count(), 16, "{text}");
    assert_eq!(body["usage"]["input_tokens"], 4);
    assert_eq!(body["usage"]["output_tokens"], 16);
    assert_eq!(body["usage"]["cache_creation_input_tokens"], 0);
    assert_eq!(body["usage"]["cache_read_input_tokens"], 0);
    // The credentials reached the log redacted.
    let logged = &server.state().requests()[0];
    assert_eq!(logged.headers["x-api-key"], "[redacted]");
    assert_eq!(logged.headers["anthropic-version"], "2023-06-01");
}

#[tokio::test]
async fn max_tokens_stops_with_max_tokens() {
    let server = common::start("claude").await;
    let body = json(send(&server, &request("hi", json!({"max_tokens": 3}))).await).await;
    assert_eq!(body["stop_reason"], "max_tokens");
    assert_eq!(body["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn cache_control_blocks_count_as_cache_tokens() {
    let server = common::start("claude").await;
    let cached = "x".repeat(400);
    let written = "y".repeat(200);
    let body = request(
        "",
        json!({
            "system": [
                {"type": "text", "text": cached, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": written, "cache_control": {"type": "ephemeral"}}
            ],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}]
        }),
    );
    let body = json(send(&server, &body).await).await;
    assert_eq!(body["usage"]["cache_read_input_tokens"], 100);
    assert_eq!(body["usage"]["cache_creation_input_tokens"], 50);
    assert_eq!(body["usage"]["input_tokens"], 2);
}

#[tokio::test]
async fn stream_has_the_real_event_sequence() {
    let server = common::start("claude").await;
    let events = stream(send(&server, &request("hi", json!({"stream": true}))).await).await;
    let mut want = vec!["message_start", "content_block_start", "ping"];
    want.extend(std::iter::repeat_n("content_block_delta", 16));
    want.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names(&events), want);
    let start = &events[0].1["message"];
    assert!(
        start["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_01"))
    );
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["input_tokens"], 1);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events[3..19]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().expect("text").to_owned()
        })
        .collect();
    // The same words as the whole answer to the same request.
    let whole = json(send(&server, &request("hi", json!({}))).await).await;
    assert_eq!(whole["content"][0]["text"], text.as_str());
    let delta = &events[20].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 16);
}

#[tokio::test]
async fn tools_get_a_deterministic_tool_use() {
    let server = common::start("claude").await;
    let body = request("Weather in Paris?", json!({"tools": weather_tools()}));
    let first = json(send(&server, &body).await).await;
    assert_eq!(first["stop_reason"], "tool_use");
    let block = &first["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    assert!(
        block["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("toolu_01"))
    );
    assert!(
        block["input"]["city"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(block["input"]["unit"], "celsius");
    let again = json(send(&server, &body).await).await;
    assert_eq!(again["content"][0]["input"], block["input"]);

    // Handing back the result gets text.
    let answer = request(
        "",
        json!({
            "tools": weather_tools(),
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [block]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": block["id"], "content": "18C"}
                ]}
            ]
        }),
    );
    let answer = json(send(&server, &answer).await).await;
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(answer["content"][0]["type"], "text");

    // tool_choice none: text; a named tool: that tool.
    let none = json(
        send(
            &server,
            &request(
                "hi",
                json!({"tools": weather_tools(), "tool_choice": {"type": "none"}}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(none["stop_reason"], "end_turn");
}

#[tokio::test]
async fn streamed_tool_use_sends_input_json_deltas() {
    let server = common::start("claude").await;
    let body = request(
        "Weather?",
        json!({"tools": weather_tools(), "tool_choice": {"type": "any"}, "stream": true}),
    );
    let events = stream(send(&server, &body).await).await;
    assert_eq!(
        &names(&events)[..3],
        ["message_start", "content_block_start", "ping"]
    );
    let block = &events[1].1["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({}));
    let partial: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"]
                .as_str()
                .expect("partial_json")
                .to_owned()
        })
        .collect();
    let input: Value = serde_json::from_str(&partial).expect("the pieces join into JSON");
    assert_eq!(input["unit"], "celsius");
    let delta = events
        .iter()
        .find(|(n, _)| n == "message_delta")
        .expect("message_delta");
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(names(&events).last(), Some(&"message_stop"));
}

#[tokio::test]
async fn tool_call_fault_forces_a_call() {
    let server = common::start("claude").await;
    let response = send_with_fault(
        &server,
        &request("hi", json!({})),
        r#"{"kind":"tool_call","name":"lookup","arguments":{"q":"x"}}"#,
    )
    .await;
    let body = json(response).await;
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(body["content"][0]["name"], "lookup");
    assert_eq!(body["content"][0]["input"], json!({"q": "x"}));
}

#[tokio::test]
async fn bad_requests_are_anthropic_400s() {
    let server = common::start("claude").await;
    for body in [
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "m", "max_tokens": 5, "messages": []}),
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
    ] {
        let response = send(&server, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error = json(response).await;
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert!(error["error"]["message"].is_string());
    }
    let response = post_with(&server, "/v1/messages/nope", &json!({}), HEADERS).await;
    assert_eq!(response.status(), 404);
    assert_eq!(json(response).await["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn status_faults_answer_with_anthropic_error_bodies() {
    let server = common::start("claude").await;
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ] {
        let fault = format!(r#"{{"kind":"status","status":{status}}}"#);
        let response = send_with_fault(&server, &request("hi", json!({})), &fault).await;
        assert_eq!(response.status().as_u16(), status);
        let request_id = response.headers()["request-id"].clone();
        let body = json(response).await;
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], kind, "{status}");
        assert_eq!(body["request_id"], request_id.to_str().expect("ascii"));
    }
    let response = send_with_fault(
        &server,
        &request("hi", json!({})),
        r#"{"kind":"rate_limit","retry_after":4}"#,
    )
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "4");
    assert_eq!(json(response).await["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn stream_error_fault_sends_an_error_event() {
    let server = common::start("claude").await;
    let response = send_with_fault(
        &server,
        &request("hi", json!({"stream": true})),
        r#"{"kind":"stream_error","after_chunks":4}"#,
    )
    .await;
    let events = stream(response).await;
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(
        events[4].1,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    // Not streamed: the status and body.
    let response = send_with_fault(
        &server,
        &request("hi", json!({})),
        r#"{"kind":"stream_error"}"#,
    )
    .await;
    assert_eq!(response.status(), 529);
}

#[tokio::test]
async fn cut_and_malformed_streams_in_anthropic_framing() {
    let server = common::start("claude").await;
    let response = send_with_fault(
        &server,
        &request("hi", json!({"stream": true})),
        r#"{"kind":"cut_stream","after_chunks":3}"#,
    )
    .await;
    assert_eq!(response.status(), 200);
    let (text, failed) = read_until_error(response).await;
    assert!(failed, "the body ends in an error");
    let got: Vec<_> = sse_events(&text).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        got,
        [
            Some("message_start".into()),
            Some("content_block_start".into()),
            Some("ping".into())
        ]
    );

    let response = send_with_fault(
        &server,
        &request("hi", json!({"stream": true})),
        r#"{"kind":"malformed_chunk","after_chunks":3}"#,
    )
    .await;
    let text = response.text().await.expect("a clean end");
    let events = sse_events(&text);
    assert_eq!(events[3].0.as_deref(), Some("content_block_delta"));
    assert!(
        serde_json::from_str::<Value>(&events[3].1).is_err(),
        "malformed"
    );
    assert_eq!(
        events.last().map(|e| e.0.as_deref()),
        Some(Some("message_stop"))
    );
}

#[tokio::test]
async fn slow_ttft_delays_the_first_event() {
    let server = common::start("claude").await;
    let started = std::time::Instant::now();
    let response = send_with_fault(
        &server,
        &request("hi", json!({"stream": true})),
        r#"{"kind":"slow_ttft","ms":300}"#,
    )
    .await;
    let events = stream(response).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(names(&events).last(), Some(&"message_stop"));
}

#[tokio::test]
async fn models_and_count_tokens() {
    let server = common::start("claude").await;
    let response = common::client()
        .get(format!("{}/v1/models", server.url()))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .expect("sent");
    let body = json(response).await;
    assert_eq!(body["data"][0]["type"], "model");
    assert_eq!(body["has_more"], false);
    let count = json(
        post_with(
            &server,
            "/v1/messages/count_tokens",
            &json!({"model": "m", "messages": [{"role": "user", "content": "abcdefgh"}]}),
            HEADERS,
        )
        .await,
    )
    .await;
    assert_eq!(count, json!({"input_tokens": 2}));
}

#[tokio::test]
async fn require_auth_checks_key_and_version() {
    let server = common::start_with(Config {
        require_auth: true,
        ..Config::default()
    })
    .await;
    let response = post(&server, MESSAGES, &request("hi", json!({}))).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        json(response).await["error"]["type"],
        "authentication_error"
    );
    let response = post_with(
        &server,
        MESSAGES,
        &request("hi", json!({})),
        &[("x-api-key", "k")],
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(send(&server, &request("hi", json!({}))).await.status(), 200);
}

#[tokio::test]
async fn stop_sequences_stop_with_stop_sequence() {
    let server = common::start("claude").await;
    let whole = json(send(&server, &request("hi", json!({}))).await).await;
    let text = whole["content"][0]["text"]
        .as_str()
        .expect("text")
        .to_owned();
    let third = text.split(' ').nth(2).expect("16 words");
    let stop = format!(" {third}");
    let cut = &text[..text.find(&stop).expect("present")];
    let body = request("hi", json!({"stop_sequences": ["never-there", stop]}));
    let stopped = json(send(&server, &body).await).await;
    assert_eq!(stopped["stop_reason"], "stop_sequence");
    assert_eq!(stopped["stop_sequence"], stop.as_str());
    assert_eq!(stopped["content"][0]["text"], cut);
    let events = stream(send(&server, &json!({"stream": true, "stop_sequences": [stop], "model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]})).await).await;
    let delta = events
        .iter()
        .find(|(n, _)| n == "message_delta")
        .expect("message_delta");
    assert_eq!(delta.1["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(delta.1["delta"]["stop_sequence"], stop.as_str());
}

#[tokio::test]
async fn tool_call_with_text_has_two_blocks() {
    let server = common::start("claude").await;
    let fault = r#"{"kind":"tool_call","text":"Let me check."}"#;
    let body = request("Weather?", json!({"tools": weather_tools()}));
    let whole = json(send_with_fault(&server, &body, fault).await).await;
    assert_eq!(
        whole["content"][0],
        json!({"type": "text", "text": "Let me check."})
    );
    assert_eq!(whole["content"][1]["type"], "tool_use");
    assert_eq!(whole["content"][1]["name"], "get_weather");
    assert_eq!(whole["stop_reason"], "tool_use");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = stream(send_with_fault(&server, &streamed, fault).await).await;
    let shape: Vec<(String, Value)> = events
        .iter()
        .filter(|(n, _)| n.starts_with("content_block"))
        .map(|(n, d)| (n.clone(), d["index"].clone()))
        .collect();
    let starts: Vec<&Value> = shape
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, i)| i)
        .collect();
    assert_eq!(starts, [&json!(0), &json!(1)]);
    assert_eq!(events[2].0, "ping", "ping after the first block starts");
    let text: String = events
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["index"] == 0)
        .map(|(_, d)| d["delta"]["text"].as_str().expect("text_delta").to_owned())
        .collect();
    assert_eq!(text, "Let me check.");
    let partial: String = events
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["index"] == 1)
        .map(|(_, d)| {
            d["delta"]["partial_json"]
                .as_str()
                .expect("json delta")
                .to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&partial).expect("json"),
        whole["content"][1]["input"]
    );
}

#[tokio::test]
async fn thinking_comes_first_with_a_signature() {
    let server = common::start("claude").await;
    let body = request(
        "hi",
        json!({"thinking": {"type": "enabled", "budget_tokens": 2048}}),
    );
    let whole = json(send(&server, &body).await).await;
    let thinking = &whole["content"][0];
    assert_eq!(thinking["type"], "thinking");
    assert_eq!(
        thinking["thinking"].as_str().map(|t| t.split(' ').count()),
        Some(8)
    );
    assert!(
        thinking["signature"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    );
    assert_eq!(whole["content"][1]["type"], "text");
    assert_eq!(whole["usage"]["output_tokens"], 16 + 8);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = stream(send(&server, &streamed).await).await;
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    let kinds: Vec<&str> = events
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["index"] == 0)
        .map(|(_, d)| d["delta"]["type"].as_str().expect("delta type"))
        .collect();
    assert_eq!(kinds.len(), 9);
    assert!(kinds[..8].iter().all(|k| *k == "thinking_delta"));
    assert_eq!(kinds[8], "signature_delta");
    let text_start = events
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["index"] == 1)
        .expect("the text block");
    assert_eq!(text_start.1["content_block"]["type"], "text");
}

#[tokio::test]
async fn refusal_fault_stops_with_refusal() {
    let server = common::start("claude").await;
    let fault = r#"{"kind":"refusal"}"#;
    let whole = json(send_with_fault(&server, &request("hi", json!({})), fault).await).await;
    assert_eq!(whole["stop_reason"], "refusal");
    assert_eq!(whole["content"], json!([]));
    assert_eq!(whole["usage"]["output_tokens"], 0);
    let events =
        stream(send_with_fault(&server, &request("hi", json!({"stream": true})), fault).await)
            .await;
    assert_eq!(
        names(&events),
        ["message_start", "ping", "message_delta", "message_stop"]
    );
    assert_eq!(events[2].1["delta"]["stop_reason"], "refusal");
}

#[tokio::test]
async fn parallel_tool_calls_are_separate_blocks() {
    let server = common::start("claude").await;
    let fault = r#"{"kind":"tool_call","calls":2}"#;
    let tools = json!([
        {"name": "get_weather", "input_schema": weather_schema()},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}}}
    ]);
    let body = request("Weather and time?", json!({"tools": tools}));
    let whole = json(send_with_fault(&server, &body, fault).await).await;
    let names: Vec<&Value> = whole["content"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|b| &b["name"])
        .collect();
    assert_eq!(names, [&json!("get_weather"), &json!("get_time")]);
    assert_ne!(whole["content"][0]["id"], whole["content"][1]["id"]);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = stream(send_with_fault(&server, &streamed, fault).await).await;
    let starts: Vec<(Value, Value)> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| (d["index"].clone(), d["content_block"]["name"].clone()))
        .collect();
    assert_eq!(
        starts,
        [
            (json!(0), json!("get_weather")),
            (json!(1), json!("get_time"))
        ]
    );
}
