//! Golden tests of the protocol translators: recorded requests, answers and event streams
//! under `fixtures/translate/`, translated and compared with insta snapshots. Streams are
//! fed whole, byte by byte and in odd-sized chunks, and must translate the same way.

use serde_json::Value;
use switchyard_proxy::translate::{
    ClientOptions, anthropic_openai, openai_anthropic, openai_gemini,
};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/translate/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).expect("fixture is JSON")
}

fn opts(stream: bool, include_usage: bool) -> ClientOptions {
    ClientOptions {
        model: "target-model".into(),
        stream,
        include_usage,
        created: 1_700_000_000,
    }
}

/// Feeds `input` to a fresh translator in chunks of `size` bytes (0 = whole) and returns
/// everything it wrote, `finish` included.
fn feed<T>(
    input: &[u8],
    size: usize,
    new: impl Fn() -> T,
    push: impl Fn(&mut T, &[u8]) -> Vec<u8>,
    finish: impl Fn(&mut T) -> Vec<u8>,
) -> String {
    let mut t = new();
    let mut out = Vec::new();
    if size == 0 {
        out.extend(push(&mut t, input));
    } else {
        for c in input.chunks(size) {
            out.extend(push(&mut t, c));
        }
    }
    out.extend(finish(&mut t));
    String::from_utf8(out).expect("utf8")
}

/// The same output for every way of splitting the input; each data payload JSON.
fn stream_golden<T>(
    input: &str,
    new: impl Fn() -> T,
    push: impl Fn(&mut T, &[u8]) -> Vec<u8>,
    finish: impl Fn(&mut T) -> Vec<u8>,
) -> String {
    let whole = feed(input.as_bytes(), 0, &new, &push, &finish);
    for size in [1, 2, 7, 64, 333] {
        assert_eq!(
            feed(input.as_bytes(), size, &new, &push, &finish),
            whole,
            "chunks of {size} bytes"
        );
    }
    for line in whole.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line != "[DONE]" {
            serde_json::from_str::<Value>(line).expect("each event is JSON");
        }
    }
    whole
}

#[test]
fn openai_to_anthropic_request() {
    let req = openai_anthropic::request(
        &json("openai_request_tools.json"),
        "claude-sonnet-4-20250514",
        4096,
    )
    .expect("translates");
    insta::assert_json_snapshot!(req);
    let min =
        openai_anthropic::request(&json("openai_request_minimal.json"), "m", 4096).expect("ok");
    insta::assert_json_snapshot!("openai_to_anthropic_request_minimal", min);
    let bad = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]});
    assert!(openai_anthropic::request(&bad, "m", 4096).is_err());
}

#[test]
fn anthropic_to_openai_response() {
    let out =
        openai_anthropic::response(&json("anthropic_response_tools.json"), &opts(false, false));
    insta::assert_json_snapshot!(out);
    let text =
        openai_anthropic::response(&json("anthropic_response_text.json"), &opts(false, false));
    assert_eq!(text["choices"][0]["message"]["content"], "Hello world");
    assert_eq!(text["choices"][0]["finish_reason"], "length");
    assert_eq!(text["usage"]["total_tokens"], 12);
}

#[test]
fn anthropic_stream_to_openai_chunks() {
    let out = stream_golden(
        &fixture("anthropic_stream_tools.sse"),
        || openai_anthropic::Stream::new(opts(true, true)),
        |s, b| s.push(b),
        |_| Vec::new(),
    );
    assert!(out.ends_with("data: [DONE]\n\n"));
    insta::assert_snapshot!(out);
    let err = stream_golden(
        &fixture("anthropic_stream_error.sse"),
        || openai_anthropic::Stream::new(opts(true, false)),
        |s, b| s.push(b),
        |_| Vec::new(),
    );
    assert!(!err.contains("[DONE]"));
    insta::assert_snapshot!("anthropic_stream_error_to_openai", err);
}

#[test]
fn openai_to_gemini_request() {
    let req = openai_gemini::request(&json("openai_request_tools.json")).expect("translates");
    insta::assert_json_snapshot!(req);
    let min = openai_gemini::request(&json("openai_request_minimal.json")).expect("ok");
    insta::assert_json_snapshot!("openai_to_gemini_request_minimal", min);
}

#[test]
fn gemini_to_openai_response() {
    let out = openai_gemini::response(&json("gemini_response_tools.json"), &opts(false, false));
    insta::assert_json_snapshot!(out);
    let blocked =
        openai_gemini::response(&json("gemini_response_blocked.json"), &opts(false, false));
    assert_eq!(blocked["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn gemini_stream_to_openai_chunks() {
    let out = stream_golden(
        &fixture("gemini_stream_tools.sse"),
        || openai_gemini::Stream::new(opts(true, true)),
        |s, b| s.push(b),
        openai_gemini::Stream::finish,
    );
    assert!(out.ends_with("data: [DONE]\n\n"));
    insta::assert_snapshot!(out);
    // Cut before the finish reason: no [DONE], so the relay reports a broken stream.
    let text = fixture("gemini_stream_tools.sse");
    let cut = &text[..text.find("functionCall").expect("has a call") - 60];
    let partial = feed(
        cut.as_bytes(),
        5,
        || openai_gemini::Stream::new(opts(true, false)),
        |s, b| s.push(b),
        openai_gemini::Stream::finish,
    );
    assert!(!partial.contains("[DONE]"));
}

#[test]
fn anthropic_client_request_to_openai() {
    let req = anthropic_openai::request(&json("anthropic_request_tools.json")).expect("translates");
    insta::assert_json_snapshot!(req);
}

#[test]
fn openai_response_to_anthropic_client() {
    let out = anthropic_openai::response(&json("openai_response_tools.json"), "claude-sonnet-4");
    insta::assert_json_snapshot!(out);
}

#[test]
fn openai_chunks_to_anthropic_events() {
    let out = stream_golden(
        &fixture("openai_stream_tools.sse"),
        || anthropic_openai::Stream::new("claude-sonnet-4"),
        |s, b| s.push(b),
        |_| Vec::new(),
    );
    assert!(out.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    insta::assert_snapshot!(out);
}

#[test]
fn round_trip_through_openai_keeps_tools() {
    // Anthropic client → OpenAI shape → Anthropic upstream request.
    let a = json("anthropic_request_tools.json");
    let o = anthropic_openai::request(&a).expect("to openai");
    let back = openai_anthropic::request(&o, "claude-sonnet-4", 4096).expect("to anthropic");
    assert_eq!(back["messages"][0], a["messages"][0]);
    assert_eq!(back["messages"][1], a["messages"][1]);
    let result = &back["messages"][2]["content"][0];
    assert_eq!(
        (result["tool_use_id"].as_str(), result["content"].as_str()),
        (Some("toolu_1"), Some("-3C"))
    );
    assert_eq!(back["tools"], a["tools"]);
    assert_eq!(back["tool_choice"], a["tool_choice"]);
    assert_eq!(back["stop_sequences"], a["stop_sequences"]);
}

#[test]
fn anthropic_role_chunk_waits_for_the_first_token() {
    let text = fixture("anthropic_stream_tools.sse");
    let first_delta = text.find("event: content_block_delta").expect("a delta");
    let mut s = openai_anthropic::Stream::new(opts(true, false));
    // message_start, content_block_start and ping: nothing yet, so a stall here is still
    // "before the first token".
    assert!(s.push(&text.as_bytes()[..first_delta]).is_empty());
    let out = String::from_utf8(s.push(&text.as_bytes()[first_delta..])).expect("utf8");
    assert!(
        out.starts_with("data: {\"choices\":[{\"delta\":{\"content\":\"\",\"role\":\"assistant\"}")
    );
}

#[test]
fn anthropic_client_requests_are_validated_with_clear_errors() {
    let base =
        |messages: Value| serde_json::json!({"model": "m", "max_tokens": 5, "messages": messages});
    let cases = [
        (
            base(
                serde_json::json!([{"role": "user", "content": [{"type": "hologram", "text": "x"}]}]),
            ),
            "`messages.0.content.0.type` `hologram` is not a content block type",
        ),
        (
            base(serde_json::json!([{"role": "user", "content": [{"text": "x"}]}])),
            "`messages.0.content.0.type` is required",
        ),
        (
            base(serde_json::json!([{"role": "wizard", "content": "x"}])),
            "`messages.0.role` must be `user`, `assistant` or `system`, not `wizard`",
        ),
        (
            {
                let mut r = base(serde_json::json!([{"role": "user", "content": "x"}]));
                r["system"] = serde_json::json!({"text": "be brief"});
                r
            },
            "`system` must be a string or an array of `text` blocks",
        ),
    ];
    for (req, want) in cases {
        let err = anthropic_openai::request(&req)
            .expect_err("refused")
            .to_string();
        assert!(err.contains(want), "{err}");
    }
    let long_role = base(serde_json::json!([{"role": "x".repeat(10_000), "content": "x"}]));
    let err = anthropic_openai::request(&long_role)
        .expect_err("refused")
        .to_string();
    assert!(
        err.len() < 200,
        "the client's value is echoed unbounded: {} bytes",
        err.len()
    );
    // Known blocks without an OpenAI equivalent are left out, not refused.
    let thinking = base(serde_json::json!([
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "...", "signature": "s"}, {"type": "text", "text": "y"}]},
        {"role": "user", "content": "z"},
    ]));
    let out = anthropic_openai::request(&thinking).expect("translates");
    assert_eq!(out["messages"][1]["content"], "y");
}
