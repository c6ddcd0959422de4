//! The built-in `mock` provider kind: answers in process from the provider's
//! `MockBehaviour` (latency, time to first token, token pace, error and 429 rates), with text,
//! embeddings and usage from the `switchyard-mock` library. Deterministic for a seed and a
//! request order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use switchyard_dsl::ir::MockBehaviour;
use switchyard_mock::openai::{self, Ctx};
use switchyard_mock::reply::{ApiError as MockError, Reply};
use switchyard_mock::text::{Rng, derive_seed};

use super::{AttemptError, AttemptRequest, ProviderAdapter, ResponseSource};
use crate::api::Endpoint;

/// Tokens in a mock completion before the request's `max_tokens`.
const COMPLETION_TOKENS: u32 = 24;
/// Vector length when the request names no `dimensions`.
const EMBEDDING_DIMENSIONS: usize = 256;

/// The adapter; counts requests so each gets its own deterministic draw.
#[derive(Debug, Default)]
pub struct Mock {
    counter: AtomicU64,
}

/// An in-process answer: status, content type and timed body pieces.
#[derive(Debug)]
struct MockResponse {
    status: u16,
    content_type: &'static str,
    retry_after: Option<String>,
    pieces: VecDeque<(Duration, Bytes)>,
}

fn error_response(e: &MockError) -> MockResponse {
    MockResponse {
        status: e.status,
        content_type: "application/json",
        retry_after: e.retry_after.map(|s| s.to_string()),
        pieces: VecDeque::from([(
            Duration::ZERO,
            Bytes::from(openai::error_body(e).to_string()),
        )]),
    }
}

fn injected_fault(b: &MockBehaviour, roll: u64) -> Option<MockError> {
    let (errors, limits) = (
        u64::from(b.error_rate_ppm),
        u64::from(b.rate_limit_rate_ppm),
    );
    if roll < errors {
        Some(MockError {
            status: 500,
            message: "The mock provider failed this request (error rate).".into(),
            error_type: "server_error".into(),
            param: None,
            code: None,
            retry_after: None,
        })
    } else if roll < errors + limits {
        Some(MockError {
            status: 429,
            message: "Rate limit reached (mock rate-limit rate).".into(),
            error_type: "requests".into(),
            param: None,
            code: Some("rate_limit_exceeded".into()),
            retry_after: Some(b.retry_after_ms.div_ceil(1000).max(1)),
        })
    } else {
        None
    }
}

fn token_gap(b: &MockBehaviour) -> Duration {
    if b.tokens_per_second == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(1.0 / b.tokens_per_second as f64)
    }
}

fn answer(b: &MockBehaviour, reply: Reply) -> (Duration, MockResponse) {
    match reply {
        Reply::Json { body, tokens } => {
            let generation =
                b.ttft_ms + u64::from(tokens.saturating_sub(1)) * 1000 / b.tokens_per_second.max(1);
            let delay = if b.latency_ms > 0 {
                b.latency_ms
            } else if b.tokens_per_second > 0 {
                generation
            } else {
                b.ttft_ms
            };
            let body = Bytes::from(body.to_string());
            let r = MockResponse {
                status: 200,
                content_type: "application/json",
                retry_after: None,
                pieces: VecDeque::from([(Duration::ZERO, body)]),
            };
            (Duration::from_millis(delay), r)
        }
        Reply::Stream(events) => {
            let gap = token_gap(b);
            let mut first = true;
            let pieces = events
                .iter()
                .map(|e| {
                    let delay = if first {
                        first = false;
                        Duration::from_millis(b.ttft_ms)
                    } else if e.token {
                        gap
                    } else {
                        Duration::ZERO
                    };
                    (delay, e.encode())
                })
                .collect();
            let r = MockResponse {
                status: 200,
                content_type: "text/event-stream",
                retry_after: None,
                pieces,
            };
            (Duration::ZERO, r)
        }
        Reply::Error(e) => (Duration::ZERO, error_response(&e)),
    }
}

#[async_trait]
impl ProviderAdapter for Mock {
    async fn open(
        &self,
        req: &AttemptRequest<'_>,
    ) -> Result<Box<dyn ResponseSource>, AttemptError> {
        let b = req.provider.mock.clone().unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut rng = Rng::new(derive_seed(b.seed, &[&req.provider.name, &n.to_string()]));
        let (delay, response) = match injected_fault(&b, rng.next_u64() % 1_000_000) {
            Some(e) => (
                Duration::from_millis(b.latency_ms.min(b.ttft_ms)),
                error_response(&e),
            ),
            None => {
                let created = crate::clock::unix_secs();
                let ctx = Ctx {
                    seed: b.seed,
                    request_id: n,
                    created,
                    completion_tokens: COMPLETION_TOKENS,
                    embedding_dimensions: EMBEDDING_DIMENSIONS,
                    models: &[],
                    owner: &req.provider.name,
                    forced_tool: None,
                    prompt_cache: None,
                };
                let reply = match req.endpoint {
                    Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses => {
                        openai::chat_completions(&req.body, &ctx)
                    }
                    Endpoint::Embeddings => openai::embeddings(&req.body, &ctx),
                };
                answer(&b, reply)
            }
        };
        tokio::time::sleep(delay).await;
        Ok(Box::new(response))
    }
}

#[async_trait]
impl ResponseSource for MockResponse {
    fn status(&self) -> u16 {
        self.status
    }

    fn header(&self, name: &str) -> Option<&str> {
        match name {
            "content-type" => Some(self.content_type),
            "retry-after" => self.retry_after.as_deref(),
            _ => None,
        }
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, AttemptError> {
        let Some((delay, piece)) = self.pieces.pop_front() else {
            return Ok(None);
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(Some(piece))
    }

    async fn finish(self: Box<Self>) {}
}
