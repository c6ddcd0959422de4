//! Wire types of the client API: OpenAI-shaped errors, the borrowed request view, and the
//! `/v1/models` listing.

pub mod anthropic;
pub mod client;
pub mod models;
pub mod request;
pub mod respond;
pub mod responses;

use bytes::Bytes;
use serde_json::json;

/// Token counts from the upstream's `usage` block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every input token, cached ones included (OpenAI's `prompt_tokens`).
    pub input: u64,
    pub output: u64,
    /// Of `input`, tokens read from the provider's prompt cache (OpenAI's
    /// `prompt_tokens_details.cached_tokens`, Anthropic's `cache_read_input_tokens`, Gemini's
    /// `cachedContentTokenCount`), priced at the model's cached-input price.
    pub cached: u64,
}

/// Which client endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Embeddings,
    /// Anthropic's `/v1/messages`, routed as a chat completion.
    Messages,
    /// OpenAI's `/v1/responses`, routed as a chat completion (sent as is to targets that
    /// speak the Responses API).
    Responses,
}

impl Endpoint {
    /// The path suffix after the provider's `/v1`.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::ChatCompletions | Self::Messages | Self::Responses => "/chat/completions",
            Self::Embeddings => "/embeddings",
        }
    }

    /// Whether the upstream call is a chat completion.
    pub fn is_chat(self) -> bool {
        self != Self::Embeddings
    }
}

/// Longest piece of client input echoed in an error message or the access log.
pub const MAX_ECHO_BYTES: usize = 256;

/// `text` cut to [`MAX_ECHO_BYTES`] (on a character boundary, `...` marking the cut): a
/// client controls what it sends, not how much of it comes back or reaches the logs.
pub fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_ECHO_BYTES {
        return text.into();
    }
    let mut end = MAX_ECHO_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len()).into()
}

/// An error answered to the client as `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, code: &'static str, message: String) -> Self {
        Self {
            status,
            message,
            kind,
            code: Some(code),
            retry_after: None,
        }
    }

    /// 400 for a body that is not a JSON object.
    pub fn malformed_json(detail: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            "invalid_json",
            format!(
                "We could not parse the JSON body of your request: {}",
                bounded(detail)
            ),
        )
    }

    /// 400 for a missing or invalid field.
    pub fn invalid_field(message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            400,
            "invalid_request_error",
            "invalid_request",
            bounded(&message).into_owned(),
        )
    }

    /// 404 when no route matches the requested model.
    pub fn unknown_model(model: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            "model_not_found",
            format!(
                "The model `{}` does not exist or no route serves it.",
                bounded(model)
            ),
        )
    }

    /// 404 for a path the gateway does not serve.
    pub fn unknown_path(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            "unknown_url",
            format!("Invalid URL ({} {})", bounded(method), bounded(path)),
        )
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            405,
            "invalid_request_error",
            "method_not_allowed",
            format!("Method {method} is not allowed on {path}"),
        )
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("Request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 502/503/504 after every candidate failed.
    pub fn upstream(status: u16, code: &'static str, message: String) -> Self {
        Self::new(status, "upstream_error", code, message)
    }

    /// The OpenAI JSON rendering.
    pub fn body(&self) -> Bytes {
        let v = json!({"error": {
            "message": self.message, "type": self.kind, "param": null, "code": self.code,
        }});
        Bytes::from(v.to_string())
    }

    /// As a terminal SSE event for a stream that already started.
    pub fn sse_event(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.message.len() + 96);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&self.body());
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_input_in_messages_is_bounded() {
        let huge = "é".repeat(100_000);
        for e in [
            ApiError::unknown_model(&huge),
            ApiError::invalid_field(format!("Invalid value for `stream`: {huge}")),
            ApiError::malformed_json(&huge),
            ApiError::unknown_path("GET", &huge),
        ] {
            assert!(e.message.len() < 2 * MAX_ECHO_BYTES, "{}", e.message.len());
        }
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn error_shape() {
        let e = ApiError::unknown_model("gpt-9");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).expect("json");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["param"].is_null());
        assert!(e.sse_event().starts_with(b"data: {\"error\""));
        assert!(e.sse_event().ends_with(b"\n\n"));
    }
}
