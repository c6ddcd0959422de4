//! Anthropic's Messages API: OpenAI chat requests are translated to `POST /v1/messages`,
//! answers and event streams back to OpenAI's shapes, and errors classified from
//! Anthropic's status codes and `{"type":"error","error":{"type",...}}` bodies.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use switchyard_dsl::ir::ErrorClass;

use super::translated::{self, Protocol, Translated};
use super::{AttemptError, AttemptRequest, ProviderAdapter, ResponseSource};
use crate::translate::{ClientOptions, openai_anthropic};
use crate::upstream::Upstream;

/// Anthropic's public API.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com/v1";
/// The `anthropic-version` header sent.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The adapter for `anthropic`.
#[derive(Debug)]
pub struct Anthropic {
    upstream: Arc<Upstream>,
}

impl Anthropic {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self { upstream }
    }
}

/// The Messages path under a base URL's path (`/v1` is added when the base has none).
pub fn messages_path(prefix: &str) -> String {
    if prefix.ends_with("/v1") {
        format!("{prefix}/messages")
    } else {
        format!("{prefix}/v1/messages")
    }
}

/// The class of an Anthropic error `type`, helped by the status and message.
pub fn classify_type(kind: &str, status: u16, message: &str) -> ErrorClass {
    let m = message.to_ascii_lowercase();
    match kind {
        "rate_limit_error" => ErrorClass::RateLimited,
        "overloaded_error" => ErrorClass::Overloaded,
        "authentication_error" | "permission_error" => ErrorClass::Auth,
        "billing_error" => ErrorClass::QuotaExhausted,
        "timeout_error" => ErrorClass::Timeout,
        "api_error" => ErrorClass::ServerError,
        "request_too_large" => ErrorClass::BadRequest,
        "invalid_request_error" | "not_found_error" | "" => {
            if m.contains("credit balance") || m.contains("billing") {
                ErrorClass::QuotaExhausted
            } else if m.contains("prompt is too long")
                || m.contains("context window")
                || m.contains("too many tokens")
            {
                ErrorClass::ContextTooLong
            } else if m.contains("content filtering") || m.contains("usage policy") {
                ErrorClass::ContentPolicy
            } else if kind.is_empty() {
                by_status(status)
            } else {
                ErrorClass::BadRequest
            }
        }
        _ => by_status(status),
    }
}

fn by_status(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::RateLimited,
        401 | 403 => ErrorClass::Auth,
        402 => ErrorClass::QuotaExhausted,
        408 | 504 => ErrorClass::Timeout,
        503 | 529 => ErrorClass::Overloaded,
        500..=599 => ErrorClass::ServerError,
        0 => ErrorClass::ServerError,
        _ => ErrorClass::BadRequest,
    }
}

/// Classifies an Anthropic error response.
pub fn classify(status: u16, body: &[u8]) -> ErrorClass {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let kind = e["type"].as_str().unwrap_or("");
    let class = classify_type(kind, status, e["message"].as_str().unwrap_or(""));
    // The status wins where Anthropic's type is generic.
    match (status, class) {
        (529, _) => ErrorClass::Overloaded,
        (429, ErrorClass::BadRequest) => ErrorClass::RateLimited,
        _ => class,
    }
}

/// The catalogue's output limit for the model, else [`openai_anthropic::DEFAULT_MAX_TOKENS`].
fn default_max_tokens(req: &AttemptRequest<'_>) -> u64 {
    req.provider
        .models
        .iter()
        .find(|m| m.name == req.model)
        .and_then(|m| m.max_output_tokens)
        .unwrap_or(openai_anthropic::DEFAULT_MAX_TOKENS)
}

#[async_trait]
impl ProviderAdapter for Anthropic {
    async fn open(
        &self,
        req: &AttemptRequest<'_>,
    ) -> Result<Box<dyn ResponseSource>, AttemptError> {
        let canned = |class, msg: String| -> Result<Box<dyn ResponseSource>, AttemptError> {
            Ok(Box::new(Translated::canned(
                Protocol::Anthropic,
                400,
                class,
                &msg,
            )))
        };
        if !req.endpoint.is_chat() {
            return canned(
                ErrorClass::BadRequest,
                format!(
                    "provider `{}` (anthropic) has no embeddings API",
                    req.provider.name
                ),
            );
        }
        let openai: Value = serde_json::from_slice(&req.body)
            .map_err(|_| AttemptError::Unavailable("the request body is not JSON".into()))?;
        // An Anthropic client's own body goes as is (cache_control, thinking and the
        // rest survive); anything else is translated.
        let body = match &req.native {
            Some(native) => match serde_json::from_slice::<Value>(native) {
                Ok(mut v) => {
                    v["model"] = Value::String(req.model.to_owned());
                    Bytes::from(v.to_string())
                }
                Err(_) => {
                    return canned(ErrorClass::BadRequest, "the body is not JSON".into());
                }
            },
            None => match openai_anthropic::request(&openai, req.model, default_max_tokens(req)) {
                Ok(b) => Bytes::from(b.to_string()),
                Err(e) => return canned(ErrorClass::BadRequest, e.to_string()),
            },
        };
        let mut opts = ClientOptions::from_request(&openai, translated::unix_now());
        opts.model = req.model.to_owned();
        let (dest, prefix) = translated::base(req.provider, ANTHROPIC_BASE_URL)?;
        let path = messages_path(&prefix);
        let header = translated::request_header(
            req,
            &dest,
            &path,
            body.len(),
            |key| vec![("x-api-key", key.to_owned())],
            &[("anthropic-version", ANTHROPIC_VERSION)],
        )?;
        translated::send(
            &self.upstream,
            req,
            &dest,
            header,
            body,
            Protocol::Anthropic,
            opts,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: &str, msg: &str) -> Vec<u8> {
        serde_json::json!({"type": "error", "error": {"type": kind, "message": msg}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn classes() {
        let c = |s, k, m| classify(s, &err(k, m));
        assert_eq!(
            c(429, "rate_limit_error", "slow down"),
            ErrorClass::RateLimited
        );
        assert_eq!(
            c(529, "overloaded_error", "Overloaded"),
            ErrorClass::Overloaded
        );
        assert_eq!(c(500, "api_error", "boom"), ErrorClass::ServerError);
        assert_eq!(c(401, "authentication_error", "bad key"), ErrorClass::Auth);
        assert_eq!(c(403, "permission_error", "no"), ErrorClass::Auth);
        assert_eq!(
            c(
                400,
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum"
            ),
            ErrorClass::ContextTooLong
        );
        assert_eq!(
            c(
                400,
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API."
            ),
            ErrorClass::QuotaExhausted
        );
        assert_eq!(
            c(
                400,
                "invalid_request_error",
                "Output blocked by content filtering policy"
            ),
            ErrorClass::ContentPolicy
        );
        assert_eq!(
            c(400, "invalid_request_error", "messages: field required"),
            ErrorClass::BadRequest
        );
        assert_eq!(
            c(413, "request_too_large", "too big"),
            ErrorClass::BadRequest
        );
        assert_eq!(classify(529, b"not json"), ErrorClass::Overloaded);
        assert_eq!(classify(502, b""), ErrorClass::ServerError);
    }

    #[test]
    fn paths() {
        assert_eq!(messages_path("/v1"), "/v1/messages");
        assert_eq!(messages_path(""), "/v1/messages");
        assert_eq!(messages_path("/anthropic"), "/anthropic/v1/messages");
    }
}
