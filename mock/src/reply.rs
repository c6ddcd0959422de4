//! What an endpoint answers, before timing and faults are laid on: the wire-neutral
//! vocabulary shared by the OpenAI module and the server (and later Anthropic and Gemini).

use hyper::body::Bytes;

/// An error answer; each wire format renders it in its own shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Human-readable message.
    pub message: String,
    /// The error's `type`, e.g. `invalid_request_error`.
    pub error_type: String,
    /// The request field at fault, if any.
    pub param: Option<String>,
    /// A machine-readable code, if any.
    pub code: Option<String>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 `invalid_request_error` with `message`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
            error_type: "invalid_request_error".to_owned(),
            param: None,
            code: None,
            retry_after: None,
        }
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, if the format uses them.
    pub event: Option<String>,
    /// The `data:` payload, one line.
    pub data: String,
    /// Whether the event carries a generated token (token events are paced).
    pub token: bool,
    /// End lines with CRLF, as Google's servers do, instead of LF.
    pub crlf: bool,
}

impl SseEvent {
    /// A `data:`-only event.
    pub fn data(data: impl Into<String>, token: bool) -> Self {
        Self {
            event: None,
            data: data.into(),
            token,
            crlf: false,
        }
    }

    /// A `data:`-only event with CRLF line ends.
    pub fn data_crlf(data: impl Into<String>, token: bool) -> Self {
        Self {
            crlf: true,
            ..Self::data(data, token)
        }
    }

    /// An event with an `event:` name.
    pub fn named(event: impl Into<String>, data: impl Into<String>, token: bool) -> Self {
        Self {
            event: Some(event.into()),
            ..Self::data(data, token)
        }
    }

    /// The event's bytes on the wire, blank line included.
    pub fn encode(&self) -> Bytes {
        let eol = if self.crlf { "\r\n" } else { "\n" };
        let mut out = String::with_capacity(self.data.len() + 20);
        if let Some(event) = &self.event {
            out.push_str("event: ");
            out.push_str(event);
            out.push_str(eol);
        }
        out.push_str("data: ");
        out.push_str(&self.data);
        out.push_str(eol);
        out.push_str(eol);
        Bytes::from(out)
    }
}

/// An endpoint's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A JSON document; `tokens` generated tokens set its pace.
    Json {
        /// The document.
        body: serde_json::Value,
        /// Generated tokens in it (0 for non-generative endpoints).
        tokens: u32,
    },
    /// An SSE stream.
    Stream(Vec<SseEvent>),
    /// An error.
    Error(ApiError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_events() {
        assert_eq!(SseEvent::data("[DONE]", false).encode(), "data: [DONE]\n\n");
        let named = SseEvent::named("ping", "{}", false);
        assert_eq!(named.encode(), "event: ping\ndata: {}\n\n");
        assert_eq!(
            SseEvent::data_crlf("{}", false).encode(),
            "data: {}\r\n\r\n"
        );
    }
}
