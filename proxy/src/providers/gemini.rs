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
