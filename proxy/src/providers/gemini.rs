//! Google Gemini (`generateContent`, `streamGenerateContent?alt=sse`): OpenAI chat requests
//! are translated, answers and streams come back in OpenAI's shapes, and errors are
//! classified from Google's `{"error":{"code","message","status"}}` bodies.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use switchyard_dsl::ir::ErrorClass;

use super::translated::{self, Protocol, Translated};
use super::{AttemptError, AttemptRequest, ProviderAdapter, ResponseSource};
use crate::translate::{ClientOptions, openai_gemini};
use crate::upstream::Upstream;

/// Gemini's public API.
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// The adapter for `gemini`.
#[derive(Debug)]
pub struct Gemini {
    upstream: Arc<Upstream>,
}

impl Gemini {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self { upstream }
    }
}

/// The method path for `model` under a base URL's path (`/v1beta` added when it names no
/// version).
pub fn method_path(prefix: &str, model: &str, stream: bool) -> String {
    let versioned = ["/v1", "/v1beta", "/v1alpha"]
        .iter()
        .any(|v| prefix.ends_with(v));
    let prefix = if versioned {
        prefix.to_owned()
    } else {
        format!("{prefix}/v1beta")
    };
    let model = model.strip_prefix("models/").unwrap_or(model);
    if stream {
        format!("{prefix}/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{prefix}/models/{model}:generateContent")
    }
}

/// Classifies a parsed Gemini error body (`status` 0 inside a stream).
pub fn classify_body(status: u16, v: &Value) -> ErrorClass {
    let e = &v["error"];
    let status = match status {
        0 => e["code"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(500),
        s => s,
    };
    let grpc = e["status"].as_str().unwrap_or("");
    let m = e["message"].as_str().unwrap_or("").to_ascii_lowercase();
    let reason = e["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["reason"].as_str())
        .next()
        .unwrap_or("");
    if reason == "API_KEY_INVALID" || m.contains("api key not valid") {
        return ErrorClass::Auth;
    }
    match (status, grpc) {
        (429, _) | (_, "RESOURCE_EXHAUSTED") => {
            if m.contains("per day") || m.contains("billing") || m.contains("check your plan") {
                ErrorClass::QuotaExhausted
            } else {
                ErrorClass::RateLimited
            }
        }
        (401, _) | (403, _) | (_, "UNAUTHENTICATED" | "PERMISSION_DENIED") => ErrorClass::Auth,
        (400, _) | (_, "INVALID_ARGUMENT" | "FAILED_PRECONDITION")
            if m.contains("token count")
                || m.contains("exceeds the maximum number of tokens")
                || m.contains("context length") =>
        {
            ErrorClass::ContextTooLong
        }
        (400, _) if m.contains("safety") || m.contains("blocked") => ErrorClass::ContentPolicy,
        (503, _) | (_, "UNAVAILABLE") => ErrorClass::Overloaded,
        (504, _) | (_, "DEADLINE_EXCEEDED") => ErrorClass::Timeout,
        (500..=599, _) => ErrorClass::ServerError,
        _ => ErrorClass::BadRequest,
    }
}

/// Classifies a Gemini error response.
pub fn classify(status: u16, body: &[u8]) -> ErrorClass {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    classify_body(status, &v)
}

#[async_trait]
impl ProviderAdapter for Gemini {
    async fn open(
        &self,
        req: &AttemptRequest<'_>,
    ) -> Result<Box<dyn ResponseSource>, AttemptError> {
        let canned = |msg: String| -> Result<Box<dyn ResponseSource>, AttemptError> {
            Ok(Box::new(Translated::canned(
                Protocol::Gemini,
                400,
                ErrorClass::BadRequest,
                &msg,
            )))
        };
        if !req.endpoint.is_chat() {
            return canned(format!(
                "provider `{}` (gemini) serves chat completions only",
                req.provider.name
            ));
        }
        let openai: Value = serde_json::from_slice(&req.body)
            .map_err(|_| AttemptError::Unavailable("the request body is not JSON".into()))?;
        let body = match openai_gemini::request(&openai) {
            Ok(b) => Bytes::from(b.to_string()),
            Err(e) => return canned(e.to_string()),
        };
        let mut opts = ClientOptions::from_request(&openai, translated::unix_now());
        opts.model = req.model.to_owned();
        let (dest, prefix) = translated::base(req.provider, GEMINI_BASE_URL)?;
        let path = method_path(&prefix, req.model, req.stream);
        let header = translated::request_header(
            req,
            &dest,
            &path,
            body.len(),
            |key| vec![("x-goog-api-key", key.to_owned())],
            &[],
        )?;
        translated::send(
            &self.upstream,
            req,
            &dest,
            header,
            body,
            Protocol::Gemini,
            opts,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: u16, status: &str, msg: &str) -> Vec<u8> {
        serde_json::json!({"error": {"code": code, "message": msg, "status": status}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn classes() {
        let c = |code, s, m| classify(code, &err(code, s, m));
        assert_eq!(
            c(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota)."
            ),
            ErrorClass::RateLimited
        );
        assert_eq!(
            c(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for metric: generate_content_free_tier_requests, limit: 50 per day"
            ),
            ErrorClass::QuotaExhausted
        );
        assert_eq!(
            c(
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later."
            ),
            ErrorClass::Overloaded
        );
        assert_eq!(
            c(500, "INTERNAL", "An internal error has occurred."),
            ErrorClass::ServerError
        );
        assert_eq!(c(403, "PERMISSION_DENIED", "denied"), ErrorClass::Auth);
        assert_eq!(
            c(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key."
            ),
            ErrorClass::Auth
        );
        assert_eq!(
            c(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
            ),
            ErrorClass::ContextTooLong
        );
        assert_eq!(
            c(400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
            ErrorClass::BadRequest
        );
        assert_eq!(
            c(504, "DEADLINE_EXCEEDED", "Deadline expired"),
            ErrorClass::Timeout
        );
    }

    #[test]
    fn paths() {
        assert_eq!(
            method_path("/v1beta", "gemini-2.0-flash", false),
            "/v1beta/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            method_path("", "models/g", true),
            "/v1beta/models/g:streamGenerateContent?alt=sse"
        );
    }
}
