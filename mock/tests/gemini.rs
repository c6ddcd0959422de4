//! The Gemini wire format over real HTTP: generateContent, streamGenerateContent (SSE and
//! JSON array), function calls, usage, errors, faults in Google's shapes, `--require-auth`.

mod common;

use common::{json, post_with, read_until_error, sse_events, weather_schema};
use serde_json::{Value, json};
use switchyard_mock::{Config, MockServer};

const GENERATE: &str = "/v1beta/models/gemini-2.0-flash:generateContent";
const STREAM: &str = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse";

fn request(text: &str, extra: Value) -> Value {
    let mut body = json!({"contents": [{"role": "user", "parts": [{"text": text}]}]});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

fn weather_tools() -> Value {
    json!([{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather", "parameters": weather_schema()}
    ]}])
}

async fn send(server: &MockServer, path: &str, body: &Value) -> reqwest::Response {
    post_with(server, path, body, &[("x-goog-api-key", "g-test")]).await
}

async fn send_with_fault(
    server: &MockServer,
    path: &str,
    body: &Value,
    fault: &str,
) -> reqwest::Response {
    post_with(
        server,
        path,
        body,
        &[("x-goog-api-key", "g-test"), ("x-mock-fault", fault)],
    )
    .await
}

/// The JSON chunks of an SSE answer (every Gemini event is a bare `data:` line).
async fn stream(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/event-stream"))
    );
    let body = response.text().await.expect("body");
    assert!(
        body.ends_with("\r\n\r\n"),
        "Google ends SSE lines with CRLF"
    );
    sse_events(&body)
        .into_iter()
        .map(|(name, data)| {
            assert_eq!(name, None);
            serde_json::from_str(&data).expect("data is JSON")
        })
        .collect()
}

fn text_of(chunk: &Value) -> String {
    chunk["candidates"][0]["content"]["parts"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<String>()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn generate_content_has_gemini_shape_and_usage() {
    let server = common::start("gemini").await;
    let body = request(
        "abcdefghijkl",
        json!({"systemInstruction": {"parts": [{"text": "abcd"}]}}),
    );
    let response = send(&server, GENERATE, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-mock-server"], "gemini");
    let body = json(response).await;
    let candidate = &body["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(candidate["index"], 0);
    assert_eq!(text_of(&body).split(' ').count(), 16);
    assert_eq!(
        body["usageMetadata"],
        json!({"promptTokenCount": 4, "candidatesTokenCount": 16, "totalTokenCount": 20})
    );
    assert_eq!(body["modelVersion"], "gemini-2.0-flash");
    assert!(body["responseId"].is_string());
    let logged = &server.state().requests()[0];
    assert_eq!(logged.headers["x-goog-api-key"], "[redacted]");
}

#[tokio::test]
async fn max_output_tokens_finishes_with_max_tokens() {
    let server = common::start("gemini").await;
    let body = request("hi", json!({"generationConfig": {"maxOutputTokens": 3}}));
    let body = json(send(&server, GENERATE, &body).await).await;
    assert_eq!(body["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(body["usageMetadata"]["candidatesTokenCount"], 3);
}

#[tokio::test]
async fn stream_sends_one_chunk_per_token_and_usage_last() {
    let server = common::start("gemini").await;
    let chunks = stream(send(&server, STREAM, &request("hi", json!({}))).await).await;
    assert_eq!(chunks.len(), 16);
    for chunk in &chunks[..15] {
        assert!(chunk["candidates"][0].get("finishReason").is_none());
        assert_eq!(chunk["candidates"][0]["content"]["role"], "model");
    }
    let last = &chunks[15];
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 16);
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 17);
    let text: String = chunks.iter().map(text_of).collect();
    let whole = json(send(&server, GENERATE, &request("hi", json!({}))).await).await;
    assert_eq!(text, text_of(&whole));

    // Without alt=sse: one JSON array of the same chunks.
    let path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent";
    let array = json(send(&server, path, &request("hi", json!({}))).await).await;
    assert_eq!(array.as_array().map(Vec::len), Some(16));
}

#[tokio::test]
async fn tools_get_a_function_call() {
    let server = common::start("gemini").await;
    let body = request("Weather in Paris?", json!({"tools": weather_tools()}));
    let first = json(send(&server, GENERATE, &body).await).await;
    let call = &first["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["args"]["unit"], "celsius");
    assert!(call["args"]["city"].is_string());
    assert_eq!(first["candidates"][0]["finishReason"], "STOP");
    let again = json(send(&server, GENERATE, &body).await).await;
    assert_eq!(again["candidates"], first["candidates"], "deterministic");

    // Streamed: one chunk holding the whole call.
    let chunks = stream(send(&server, STREAM, &body).await).await;
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );

    // The function response gets text.
    let answer = json!({
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {"role": "model", "parts": [{"functionCall": call}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 18}}}]}
        ],
        "tools": weather_tools()
    });
    let answer = json(send(&server, GENERATE, &answer).await).await;
    assert!(!text_of(&answer).is_empty());

    // Mode NONE: text.
    let none = request(
        "hi",
        json!({"tools": weather_tools(), "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}),
    );
    assert!(!text_of(&json(send(&server, GENERATE, &none).await).await).is_empty());
}

#[tokio::test]
async fn errors_have_googles_shape() {
    let server = common::start("gemini").await;
    let response = send(&server, GENERATE, &json!({"contents": []})).await;
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert!(body["error"]["message"].is_string());
    let response = send(
        &server,
        "/v1beta/models/x:explode",
        &request("hi", json!({})),
    )
    .await;
    assert_eq!(response.status(), 404);
    assert_eq!(json(response).await["error"]["status"], "NOT_FOUND");

    for (status, rpc) in [
        (400, "INVALID_ARGUMENT"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ] {
        let fault = format!(r#"{{"kind":"status","status":{status}}}"#);
        let response = send_with_fault(&server, GENERATE, &request("hi", json!({})), &fault).await;
        assert_eq!(response.status().as_u16(), status);
        let body = json(response).await;
        assert_eq!(body["error"]["code"], status);
        assert_eq!(body["error"]["status"], rpc);
    }
    let response = send_with_fault(
        &server,
        STREAM,
        &request("hi", json!({})),
        r#"{"kind":"rate_limit","retry_after":2}"#,
    )
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    let body = json(response).await;
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(body["error"]["details"][0]["retryDelay"], "2s");
}

#[tokio::test]
async fn stream_faults_in_gemini_framing() {
    let server = common::start("gemini").await;
    let response = send_with_fault(
        &server,
        STREAM,
        &request("hi", json!({})),
        r#"{"kind":"stream_error","after_chunks":2}"#,
    )
    .await;
    let chunks = stream(response).await;
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[2]["error"]["code"], 503);
    assert_eq!(chunks[2]["error"]["status"], "UNAVAILABLE");

    let response = send_with_fault(
        &server,
        STREAM,
        &request("hi", json!({})),
        r#"{"kind":"cut_stream","after_chunks":2}"#,
    )
    .await;
    let (text, failed) = read_until_error(response).await;
    assert!(failed);
    assert_eq!(sse_events(&text).len(), 2);

    let response = send_with_fault(
        &server,
        STREAM,
        &request("hi", json!({})),
        r#"{"kind":"malformed_chunk","after_chunks":1}"#,
    )
    .await;
    let text = response.text().await.expect("a clean end");
    let events = sse_events(&text);
    assert_eq!(events.len(), 17);
    assert!(serde_json::from_str::<Value>(&events[1].1).is_err());
}

#[tokio::test]
async fn models_and_count_tokens() {
    let server = common::start("gemini").await;
    let body = json(
        common::client()
            .get(format!("{}/v1beta/models", server.url()))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(body["models"][0]["name"], "models/gpt-4o");
    let count = json(
        send(
            &server,
            "/v1beta/models/gemini-2.0-flash:countTokens",
            &request("abcdefgh", json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(count["totalTokens"], 2);
}

#[tokio::test]
async fn require_auth_takes_header_or_query_key() {
    let server = common::start_with(Config {
        require_auth: true,
        ..Config::default()
    })
    .await;
    let response = post_with(&server, GENERATE, &request("hi", json!({})), &[]).await;
    assert_eq!(response.status(), 403);
    assert_eq!(json(response).await["error"]["status"], "PERMISSION_DENIED");
    let with_query = format!("{GENERATE}?key=abc");
    let response = post_with(&server, &with_query, &request("hi", json!({})), &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        send(&server, GENERATE, &request("hi", json!({})))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn stop_sequences_end_the_text_early() {
    let server = common::start("gemini").await;
    let text = text_of(&json(send(&server, GENERATE, &request("hi", json!({}))).await).await);
    let stop = format!(" {}", text.split(' ').nth(2).expect("16 words"));
    let cut = &text[..text.find(&stop).expect("present")];
    let body = request("hi", json!({"generationConfig": {"stopSequences": [stop]}}));
    let stopped = json(send(&server, GENERATE, &body).await).await;
    assert_eq!(text_of(&stopped), cut);
    assert_eq!(stopped["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn tool_call_with_text_has_a_text_part_first() {
    let server = common::start("gemini").await;
    let fault = r#"{"kind":"tool_call","text":"Let me check."}"#;
    let body = request("Weather?", json!({"tools": weather_tools()}));
    let whole = json(send_with_fault(&server, GENERATE, &body, fault).await).await;
    let parts = &whole["candidates"][0]["content"]["parts"];
    assert_eq!(parts[0], json!({"text": "Let me check."}));
    assert_eq!(parts[1]["functionCall"]["name"], "get_weather");
    let chunks = stream(send_with_fault(&server, STREAM, &body, fault).await).await;
    assert_eq!(chunks.len(), 4);
    let text: String = chunks.iter().map(text_of).collect();
    assert_eq!(text, "Let me check.");
    let last = &chunks[3]["candidates"][0];
    assert_eq!(
        last["content"]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );
    assert_eq!(last["finishReason"], "STOP");
}

#[tokio::test]
async fn refusal_fault_finishes_with_safety() {
    let server = common::start("gemini").await;
    let fault = r#"{"kind":"refusal"}"#;
    let whole =
        json(send_with_fault(&server, GENERATE, &request("hi", json!({})), fault).await).await;
    assert_eq!(whole["candidates"][0]["finishReason"], "SAFETY");
    assert!(whole["candidates"][0].get("content").is_none());
    assert_eq!(whole["candidates"][0]["safetyRatings"][0]["blocked"], true);
    let chunks =
        stream(send_with_fault(&server, STREAM, &request("hi", json!({})), fault).await).await;
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0]["candidates"][0]["finishReason"], "SAFETY");
}

#[tokio::test]
async fn parallel_function_calls_share_one_content() {
    let server = common::start("gemini").await;
    let fault = r#"{"kind":"tool_call","calls":2}"#;
    let tools = json!([{"functionDeclarations": [
        {"name": "get_weather", "parameters": weather_schema()},
        {"name": "get_time", "parameters": {"type": "OBJECT", "properties": {"zone": {"type": "STRING"}}}}
    ]}]);
    let body = request("Weather and time?", json!({"tools": tools}));
    let whole = json(send_with_fault(&server, GENERATE, &body, fault).await).await;
    let parts = &whole["candidates"][0]["content"]["parts"];
    assert_eq!(parts[0]["functionCall"]["name"], "get_weather");
    assert_eq!(parts[1]["functionCall"]["name"], "get_time");
    assert!(parts[1]["functionCall"]["args"]["zone"].is_string());
    let chunks = stream(send_with_fault(&server, STREAM, &body, fault).await).await;
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        chunks[0]["candidates"][0]["content"]["parts"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}
