//! Translation cost: per request (OpenAI → Anthropic / Gemini request, whole answers back)
//! and per streamed chunk (one provider event in, OpenAI chunk bytes out), bytes to bytes
//! as the adapters do it.
//!
//! `cargo bench -p switchyard-proxy --bench translate`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use switchyard_proxy::translate::{
    ClientOptions, anthropic_openai, openai_anthropic, openai_gemini,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/translate/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn opts() -> ClientOptions {
    ClientOptions {
        model: "m".into(),
        stream: true,
        include_usage: true,
        created: 1_700_000_000,
    }
}

fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

fn requests(c: &mut Criterion) {
    let req = fixture("openai_request_tools.json");
    c.bench_function(
        "request openai→anthropic (tools, image, 6 messages)",
        |b| {
            b.iter(|| {
                let v = parse(black_box(&req));
                let out = openai_anthropic::request(&v, "claude", 4096).map(|o| o.to_string());
                black_box(out)
            })
        },
    );
    c.bench_function("request openai→gemini (tools, image, 6 messages)", |b| {
        b.iter(|| {
            let v = parse(black_box(&req));
            black_box(openai_gemini::request(&v).map(|o| o.to_string()))
        })
    });
    let msg = fixture("anthropic_response_tools.json");
    c.bench_function("response anthropic→openai (text + tool_use)", |b| {
        b.iter(|| {
            let v = parse(black_box(&msg));
            black_box(openai_anthropic::response(&v, &opts()).to_string())
        })
    });
    let gem = fixture("gemini_response_tools.json");
    c.bench_function("response gemini→openai (text + 2 calls)", |b| {
        b.iter(|| {
            let v = parse(black_box(&gem));
            black_box(openai_gemini::response(&v, &opts()).to_string())
        })
    });
}

fn chunks(c: &mut Criterion) {
    let delta = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello, world \"}}\n\n";
    let mut s = openai_anthropic::Stream::new(opts());
    s.push(&fixture("anthropic_stream_tools.sse")[..600]);
    c.bench_function("stream chunk anthropic→openai (text_delta)", |b| {
        b.iter(|| black_box(s.push(black_box(delta))))
    });
    let chunk = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello, world \"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 20,\"candidatesTokenCount\": 2,\"totalTokenCount\": 22},\"responseId\": \"r1\"}\n\n";
    let mut g = openai_gemini::Stream::new(opts());
    c.bench_function("stream chunk gemini→openai (text)", |b| {
        b.iter(|| black_box(g.push(black_box(chunk))))
    });
    let oa = b"data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello, world \"},\"finish_reason\":null}]}\n\n";
    let mut a = anthropic_openai::Stream::new("m");
    c.bench_function("stream chunk openai→anthropic client (text)", |b| {
        b.iter(|| black_box(a.push(black_box(oa))))
    });
}

criterion_group!(benches, requests, chunks);
criterion_main!(benches);
