//! The response cache's own cost on a hit: the key of a typical chat request (parse,
//! canonicalize, SHA-256), a lookup in the in-memory store, and replaying the stored answer
//! as SSE for a streaming client.
//!
//! `cargo bench -p switchyard-proxy --bench cache`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use switchyard_proxy::cache::{entry, key, memory::MemoryStore};

fn request() -> Vec<u8> {
    let body = json!({
        "model": "gpt-4o",
        "temperature": 0,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for a railway operator. ".repeat(8)},
            {"role": "user", "content": "Which yard handles the most freight cars per day, and why?"},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup_yard", "parameters": {
            "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}],
        "user": "u-123",
        "stream": true,
    });
    body.to_string().into_bytes()
}

fn completion() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
            "content": "Bailey Yard in North Platte, Nebraska. ".repeat(20)}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 160, "total_tokens": 280},
    })
}

fn hit(c: &mut Criterion) {
    let body = request();
    c.bench_function("cache key (0.8 KB chat request)", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&body)).unwrap_or(Value::Null);
            let cacheable = key::cacheable(&v, false).is_ok();
            let k = match &v {
                Value::Object(m) => key::key("chat", "route", m),
                _ => String::new(),
            };
            black_box((cacheable, k))
        })
    });
    let store = MemoryStore::new(64 * 1024 * 1024);
    let c1 = completion();
    for i in 0..10_000 {
        let e = Arc::new(entry::Entry::new("openai", "gpt-4o", None, &c1));
        store.put(format!("{i:064}"), e, Duration::from_secs(600));
    }
    let k = format!("{:064}", 4242);
    c.bench_function("memory store lookup (10k entries)", |b| {
        b.iter(|| black_box(store.get(black_box(&k))))
    });
    c.bench_function("replay a 1 KB answer as SSE", |b| {
        b.iter(|| black_box(entry::replay(black_box(&c1), true)))
    });
}

criterion_group!(benches, hit);
criterion_main!(benches);
