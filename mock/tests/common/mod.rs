//! Helpers shared by the mock's HTTP tests: start a server, talk to it with reqwest.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use serde_json::Value;
use switchyard_mock::{Config, MockServer};

/// A server on an ephemeral port with `name` and a fixed seed.
pub async fn start(name: &str) -> MockServer {
    start_with(Config {
        name: name.to_owned(),
        seed: 42,
        embedding_dimensions: 8,
        ..Config::default()
    })
    .await
}

/// A server with this config (listening on 127.0.0.1:0 whatever it says).
pub async fn start_with(config: Config) -> MockServer {
    MockServer::start(Config {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        ..config
    })
    .await
    .expect("server starts")
}

/// A client that never goes through a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client builds")
}

/// A chat request body.
pub fn chat(content: &str, extra: Value) -> Value {
    let mut body = serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": content}],
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

/// POST JSON to `path`.
pub async fn post(server: &MockServer, path: &str, body: &Value) -> reqwest::Response {
    post_with(server, path, body, &[]).await
}

/// POST JSON to `path` with extra headers.
pub async fn post_with(
    server: &MockServer,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}{path}", server.url()))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("request sent")
}

/// A response body as JSON.
pub async fn json(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("body read");
    serde_json::from_slice(&bytes).expect("body is JSON")
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// Read a body chunk by chunk until it ends or fails; the text so far and whether it failed.
pub async fn read_until_error(mut response: reqwest::Response) -> (String, bool) {
    let mut text = String::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(None) => return (text, false),
            Err(_) => return (text, true),
        }
    }
}

/// The events of an SSE body as (`event:` name, `data:` payload), in order; LF or CRLF.
pub fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            let mut name = None;
            let mut data = String::new();
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, data)
        })
        .collect::<Vec<_>>()
}

/// A tool definition's parameters: a weather lookup with a required city and unit.
pub fn weather_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
        },
        "required": ["city", "unit"]
    })
}
