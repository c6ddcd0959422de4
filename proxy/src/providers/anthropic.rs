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
use crate::api::Endpoint;
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
        let body = match req
            .native
            .as_ref()
            .filter(|_| req.endpoint == Endpoint::Messages)
        {
            Some(native) => match serde_json::from_slice::<Value>(&native.body) {
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
        let mut opts = ClientOptions::from_request(&openai, crate::clock::unix_secs());
        opts.model = req.model.to_owned();
        let (dest, prefix) = translated::base(req.provider, ANTHROPIC_BASE_URL)?;
        let path = messages_path(&prefix);
        let mut header = translated::request_header(
            req,
            &dest,
            &path,
            body.len(),
            |key| vec![("x-api-key", key.to_owned())],
            &[("anthropic-version", ANTHROPIC_VERSION)],
        )?;
        if let Some(betas) = req.native.as_ref().and_then(|n| n.anthropic_beta.clone()) {
            header.insert_header("anthropic-beta", betas).map_err(|_| {
                AttemptError::Unavailable("cannot build the upstream request".into())
            })?;
        }
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

    #[test]
    fn paths() {
        assert_eq!(messages_path("/v1"), "/v1/messages");
        assert_eq!(messages_path(""), "/v1/messages");
        assert_eq!(messages_path("/anthropic"), "/anthropic/v1/messages");
    }
}
