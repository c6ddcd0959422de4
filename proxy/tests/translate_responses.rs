//! Golden tests of the Responses API translators (`translate::responses_openai`): a recorded
//! agent-style Responses request translated to chat completions, and chat answers — whole
//! and streamed — translated to a `response` object and Responses events. Streams are fed
//! whole, byte by byte and in odd-sized chunks, and must translate the same way.

use serde_json::{Value, json};
use switchyard_proxy::translate::responses_openai::{self, Echo, Stream};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/translate/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).expect("fixture is JSON")
}

fn echo() -> Echo {
    Echo::new(
        "resp_golden".into(),
        1_700_000_000,
        &json_fixture("responses_request_agent.json"),
    )
}

#[test]
fn agent_request_to_chat() {
    let req = json_fixture("responses_request_agent.json");
    let items = responses_openai::input_items(&req["input"]).expect("items");
    let chat = responses_openai::request(&req, &items).expect("translates");
    assert_eq!(
        chat.untranslatable.as_deref(),
        Some("the built-in tool `web_search`")
    );
    insta::assert_json_snapshot!(chat.body);
}

#[test]
fn chat_response_to_response_object() {
    let out = responses_openai::response(
        &json_fixture("openai_response_tools.json"),
        &echo(),
        "target-model",
    );
    insta::assert_json_snapshot!(out);
}

fn feed(input: &[u8], size: usize) -> String {
    let mut s = Stream::new(echo(), "target-model");
    let mut out = Vec::new();
    if size == 0 {
        out.extend(s.push(input));
    } else {
        for c in input.chunks(size) {
            out.extend(s.push(c));
        }
    }
    String::from_utf8(out).expect("utf8")
}

#[test]
fn chat_chunks_to_responses_events() {
    let input = fixture("openai_stream_tools.sse");
    let whole = feed(input.as_bytes(), 0);
    for size in [1, 2, 7, 64, 333] {
        assert_eq!(
            feed(input.as_bytes(), size),
            whole,
            "chunks of {size} bytes"
        );
    }
    let mut seq = Vec::new();
    for line in whole.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let v: Value = serde_json::from_str(line).expect("each event is JSON");
        seq.push(v["sequence_number"].as_u64().expect("numbered"));
    }
    assert_eq!(seq, (0..seq.len() as u64).collect::<Vec<_>>());
    insta::assert_snapshot!(whole);
}

#[test]
fn cut_stream_ends_failed() {
    let input = fixture("openai_stream_tools.sse");
    let half = &input.as_bytes()[..input.len() / 2];
    let mut s = Stream::new(echo(), "target-model");
    let mut out = s.push(half);
    out.extend(s.failed("The upstream stream was interrupted"));
    let text = String::from_utf8(out).expect("utf8");
    let last = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .expect("events");
    let v: Value = serde_json::from_str(last).expect("json");
    assert_eq!(v["type"], "response.failed");
    assert_eq!(v["response"]["status"], "failed");
    assert!(!text.contains("response.completed"));
    assert_eq!(
        v["response"]["error"],
        json!({"code": "server_error", "message": "The upstream stream was interrupted"})
    );
}
