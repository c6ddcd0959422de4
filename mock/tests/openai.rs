//! The OpenAI wire format over real HTTP: shapes of completions, streams, embeddings, models
//! and errors.

mod common;

use common::{chat, json, post, sse_data};
use serde_json::{Value, json};

#[tokio::test]
async fn chat_completion_has_openai_shape_and_usage() {
    let server = common::start("alpha").await;
    // 16 characters of content: 4 prompt tokens.
    let response = post(
        &server,
        "/v1/chat/completions",
        &chat("abcdefghijklmnop", json!({})),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-mock-server"], "alpha");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/json"))
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body = json(response).await;
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().is_some_and(|t| t > 1_700_000_000));
    assert_eq!(body["model"], "gpt-4o");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"]
        .as_str()
        .expect("content is a string");
    assert_eq!(content.split(' ').count(), 16, "{content}");
    assert!(content.ends_with('.'));
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 16, "total_tokens": 20})
    );
}

#[tokio::test]
async fn max_tokens_caps_completion_with_finish_length() {
    let server = common::start("alpha").await;
    let body = json(
        post(
            &server,
            "/v1/chat/completions",
            &chat("hi", json!({"max_tokens": 3})),
        )
        .await,
    )
    .await;
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 3);
    let body = json(
        post(
            &server,
            "/v1/chat/completions",
            &chat("hi", json!({"max_completion_tokens": 2})),
        )
        .await,
    )
    .await;
    assert_eq!(body["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn output_is_deterministic_for_a_seed() {
    let a = common::start("a").await;
    let b = common::start("b").await;
    let request = chat("same prompt", json!({}));
    let first = json(post(&a, "/v1/chat/completions", &request).await).await;
    let second = json(post(&b, "/v1/chat/completions", &request).await).await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["choices"], second["choices"]);
    let other =
        json(post(&a, "/v1/chat/completions", &chat("other prompt", json!({}))).await).await;
    assert_ne!(first["choices"], other["choices"]);
}

#[tokio::test]
async fn stream_sends_role_tokens_finish_and_done() {
    let server = common::start("alpha").await;
    let response = post(
        &server,
        "/v1/chat/completions",
        &chat("hi", json!({"stream": true})),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/event-stream"))
    );
    let text = response.text().await.expect("body");
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect();
    assert_eq!(chunks.len(), 1 + 16 + 1);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "gpt-4o")
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["id"] == chunks[0]["id"] && c.get("usage").is_none())
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks[1..17]
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .expect("token")
                .to_owned()
        })
        .collect();
    assert_eq!(chunks[17]["choices"][0]["finish_reason"], "stop");
    // The stream carries the same words as the whole answer.
    let whole = json(post(&server, "/v1/chat/completions", &chat("hi", json!({}))).await).await;
    assert_eq!(whole["choices"][0]["message"]["content"], streamed.as_str());
}

#[tokio::test]
async fn stream_usage_chunk_comes_before_done() {
    let server = common::start("alpha").await;
    let request = chat(
        "abcdefgh",
        json!({"stream": true, "stream_options": {"include_usage": true}, "max_tokens": 4}),
    );
    let text = post(&server, "/v1/chat/completions", &request)
        .await
        .text()
        .await
        .expect("body");
    let data = sse_data(&text);
    assert_eq!(data.len(), 1 + 4 + 1 + 1 + 1);
    assert_eq!(data[7], "[DONE]");
    let finish: Value = serde_json::from_str(&data[5]).expect("json");
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    assert_eq!(finish["usage"], Value::Null);
    let usage: Value = serde_json::from_str(&data[6]).expect("json");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6})
    );
}

#[tokio::test]
async fn embeddings_are_deterministic_with_usage() {
    let server = common::start("alpha").await;
    let request = json!({"model": "text-embedding-3-small", "input": ["hello", "world!!!"]});
    let body = json(post(&server, "/v1/embeddings", &request).await).await;
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-3-small");
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(
        body["data"][0]["embedding"].as_array().map(Vec::len),
        Some(8)
    );
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 4, "total_tokens": 4})
    );
    let again = json(post(&server, "/v1/embeddings", &request).await).await;
    assert_eq!(body["data"], again["data"]);
    let sized = json!({"model": "e", "input": "x", "dimensions": 3, "encoding_format": "base64"});
    let body = json(post(&server, "/v1/embeddings", &sized).await).await;
    // 3 floats = 12 bytes = 16 base64 characters.
    assert_eq!(
        body["data"][0]["embedding"].as_str().map(str::len),
        Some(16)
    );
}

#[tokio::test]
async fn embedding_sizes_are_bounded() {
    let server = common::start("alpha").await;
    for dimensions in [0, 3073, 1_000_000_000] {
        let request = json!({"model": "e", "input": "x", "dimensions": dimensions});
        let response = post(&server, "/v1/embeddings", &request).await;
        assert_eq!(response.status(), 400, "dimensions {dimensions}");
        assert_eq!(json(response).await["error"]["param"], "dimensions");
    }
    let many = json!({"model": "e", "input": vec!["x"; 2049]});
    let response = post(&server, "/v1/embeddings", &many).await;
    assert_eq!(response.status(), 400);
    assert_eq!(json(response).await["error"]["param"], "input");
}

#[tokio::test]
async fn models_are_listed() {
    let server = common::start("alpha").await;
    let response = common::client()
        .get(format!("{}/v1/models", server.url()))
        .send()
        .await
        .expect("sent");
    let body = json(response).await;
    assert_eq!(body["object"], "list");
    assert_eq!(
        body["data"][0],
        json!({"id": "gpt-4o", "object": "model", "created": 1_700_000_000, "owned_by": "alpha"})
    );
    let one = common::client()
        .get(format!("{}/v1/models/gpt-4o-mini", server.url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(json(one).await["id"], "gpt-4o-mini");
    let missing = common::client()
        .get(format!("{}/v1/models/nope", server.url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(missing.status(), 404);
    assert_eq!(json(missing).await["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn malformed_json_is_400_with_openai_error_shape() {
    let server = common::start("alpha").await;
    let response = common::client()
        .post(format!("{}/v1/chat/completions", server.url()))
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-mock-server"], "alpha");
    let body = json(response).await;
    let error = body["error"].as_object().expect("error object");
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "param", "type"]);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let missing = post(&server, "/v1/chat/completions", &json!({"model": "m"})).await;
    assert_eq!(missing.status(), 400);
    let unknown = post(&server, "/v1/completions/legacy", &json!({})).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        json(unknown).await["error"]["message"],
        "Invalid URL (POST /v1/completions/legacy)"
    );
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let server = common::start("alpha").await;
    let client = common::client();
    for _ in 0..5 {
        let response = client
            .post(format!("{}/v1/chat/completions", server.url()))
            .body(chat("hi", json!({"stream": true})).to_string())
            .send()
            .await
            .expect("sent");
        assert!(
            response
                .text()
                .await
                .expect("body")
                .ends_with("data: [DONE]\n\n")
        );
    }
    let requests = server.state().requests();
    assert_eq!(requests.len(), 5);
    assert!(
        requests
            .iter()
            .all(|r| r.connection == requests[0].connection)
    );
}

#[tokio::test]
async fn configured_ttft_and_pace_delay_the_stream() {
    let server = common::start_with(switchyard_mock::Config {
        behaviour: switchyard_mock::Behaviour {
            ttft_ms: 200,
            tokens_per_second: 20.0,
            completion_tokens: 5,
            ..switchyard_mock::Behaviour::default()
        },
        ..switchyard_mock::Config::default()
    })
    .await;
    let started = std::time::Instant::now();
    let mut response = post(
        &server,
        "/v1/chat/completions",
        &chat("hi", json!({"stream": true})),
    )
    .await;
    response.chunk().await.expect("chunk").expect("first chunk");
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    let text = response.text().await.expect("rest of the body");
    // Four gaps of 50 ms between five tokens.
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Weather", "parameters": common::weather_schema()
    }}])
}

#[tokio::test]
async fn tools_get_a_deterministic_tool_call_and_results_get_text() {
    let server = common::start("alpha").await;
    let request = chat("Weather in Paris?", json!({"tools": weather_tools()}));
    let body = json(post(&server, "/v1/chat/completions", &request).await).await;
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(
        call["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_"))
    );
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value = serde_json::from_str(
        call["function"]["arguments"]
            .as_str()
            .expect("arguments are a string"),
    )
    .expect("arguments are JSON");
    assert_eq!(arguments["unit"], "celsius");

    let answer = json!({
        "model": "gpt-4o",
        "tools": weather_tools(),
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "18C"}
        ]
    });
    let answer = json(post(&server, "/v1/chat/completions", &answer).await).await;
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(answer["choices"][0]["message"]["content"].is_string());

    let none = chat(
        "hi",
        json!({"tools": weather_tools(), "tool_choice": "none"}),
    );
    let none = json(post(&server, "/v1/chat/completions", &none).await).await;
    assert_eq!(none["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn streamed_tool_call_sends_argument_pieces() {
    let server = common::start("alpha").await;
    let request = chat(
        "Weather?",
        json!({"tools": weather_tools(), "tool_choice": "required", "stream": true}),
    );
    let response = post(&server, "/v1/chat/completions", &request).await;
    let text = response.text().await.expect("body");
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("json chunk"))
        .collect();
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert_eq!(first["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(first["tool_calls"][0]["index"], 0);
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    let arguments: Value = serde_json::from_str(&arguments).expect("pieces join into JSON");
    assert_eq!(arguments["unit"], "celsius");
    assert_eq!(
        chunks
            .last()
            .map(|c| c["choices"][0]["finish_reason"].clone()),
        Some(json!("tool_calls"))
    );
}

#[tokio::test]
async fn stream_error_fault_sends_an_error_data_line() {
    let server = common::start("alpha").await;
    let response = common::post_with(
        &server,
        "/v1/chat/completions",
        &chat("hi", json!({"stream": true})),
        &[(
            "x-mock-fault",
            r#"{"kind":"stream_error","after_chunks":2,"message":"boom"}"#,
        )],
    )
    .await;
    assert_eq!(response.status(), 200);
    let data = sse_data(&response.text().await.expect("body"));
    assert_eq!(data.len(), 3);
    let error: Value = serde_json::from_str(&data[2]).expect("json");
    assert_eq!(error["error"]["message"], "boom");
    assert_eq!(error["error"]["type"], "server_error");
}

#[tokio::test]
async fn stop_cuts_the_text_with_finish_stop() {
    let server = common::start("alpha").await;
    let whole = json(post(&server, "/v1/chat/completions", &chat("hi", json!({}))).await).await;
    let text = whole["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .to_owned();
    let stop = format!(" {}", text.split(' ').nth(2).expect("16 words"));
    let cut = &text[..text.find(&stop).expect("present")];
    for stops in [json!(stop), json!(["zzz", stop])] {
        let body = chat("hi", json!({"stop": stops}));
        let stopped = json(post(&server, "/v1/chat/completions", &body).await).await;
        assert_eq!(stopped["choices"][0]["message"]["content"], cut);
        assert_eq!(stopped["choices"][0]["finish_reason"], "stop");
    }
}

#[tokio::test]
async fn tool_call_with_text_has_content_and_tool_calls() {
    let server = common::start("alpha").await;
    let fault = [(
        "x-mock-fault",
        r#"{"kind":"tool_call","text":"Let me check."}"#,
    )];
    let request = chat("Weather?", json!({"tools": weather_tools()}));
    let body =
        json(common::post_with(&server, "/v1/chat/completions", &request, &fault).await).await;
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], "Let me check.");
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let response = common::post_with(&server, "/v1/chat/completions", &streamed, &fault).await;
    let data = sse_data(&response.text().await.expect("body"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("json"))
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Let me check.");
    let first_call = chunks
        .iter()
        .position(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
        .expect("a tool call chunk");
    let last_text = chunks
        .iter()
        .rposition(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .expect("text chunks");
    assert!(last_text < first_call, "text first, then the call");
    assert_eq!(
        chunks[first_call]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
}

#[tokio::test]
async fn refusal_fault_finishes_with_content_filter() {
    let server = common::start("alpha").await;
    let fault = [("x-mock-fault", r#"{"kind":"refusal"}"#)];
    let body = json(
        common::post_with(
            &server,
            "/v1/chat/completions",
            &chat("hi", json!({})),
            &fault,
        )
        .await,
    )
    .await;
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
    let response = common::post_with(
        &server,
        "/v1/chat/completions",
        &chat("hi", json!({"stream": true})),
        &fault,
    )
    .await;
    let data = sse_data(&response.text().await.expect("body"));
    assert_eq!(data.len(), 3, "role, finish, [DONE]");
    let finish: Value = serde_json::from_str(&data[1]).expect("json");
    assert_eq!(finish["choices"][0]["finish_reason"], "content_filter");
}

#[tokio::test]
async fn parallel_tool_calls_have_their_own_index_and_id() {
    let server = common::start("alpha").await;
    let fault = [("x-mock-fault", r#"{"kind":"tool_call","calls":2}"#)];
    let mut tools = weather_tools();
    tools.as_array_mut().expect("array").push(json!({"type": "function", "function": {
        "name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}
    }}));
    let request = chat("Weather and time?", json!({"tools": tools}));
    let body =
        json(common::post_with(&server, "/v1/chat/completions", &request, &fault).await).await;
    let calls = body["choices"][0]["message"]["tool_calls"]
        .as_array()
        .expect("calls")
        .clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[1]["function"]["name"], "get_time");
    assert_ne!(calls[0]["id"], calls[1]["id"]);

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let response = common::post_with(&server, "/v1/chat/completions", &streamed, &fault).await;
    let data = sse_data(&response.text().await.expect("body"));
    let mut arguments = [String::new(), String::new()];
    let mut names = [String::new(), String::new()];
    for d in &data[..data.len() - 1] {
        let chunk: Value = serde_json::from_str(d).expect("json");
        for call in chunk["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = usize::try_from(call["index"].as_u64().expect("index")).expect("small");
            if let Some(name) = call["function"]["name"].as_str() {
                names[i].push_str(name);
            }
            if let Some(piece) = call["function"]["arguments"].as_str() {
                arguments[i].push_str(piece);
            }
        }
    }
    assert_eq!(names, ["get_weather", "get_time"]);
    for a in &arguments {
        serde_json::from_str::<Value>(a).expect("each call's pieces join into JSON");
    }
}
