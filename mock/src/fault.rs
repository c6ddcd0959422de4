//! Faults: the misbehaviours a test can ask of the mock, as plain serde data.
//!
//! A fault is JSON tagged by `kind`, e.g. `{"kind":"rate_limit","retry_after":2}`. Scripts
//! queue [`FaultSpec`]s (a fault plus an optional path filter and repeat count); the
//! `x-mock-fault` request header carries a bare [`Fault`].

use serde::{Deserialize, Serialize};

/// One misbehaviour, applied to one API request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Behave normally. Useful as a placeholder in a queue ("first ok, then 500").
    #[serde(alias = "ok")]
    None,
    /// Answer with `status` and an error body in the provider's shape.
    Status {
        /// The HTTP status code, e.g. 500 or 503.
        status: u16,
        /// The error message; a stock one for the status when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// The error `type`; derived from the status when absent.
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
        /// The error `code`; `null` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// A `Retry-After` header value in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    /// Answer 429 with `Retry-After: retry_after` and a rate-limit error body.
    RateLimit {
        /// Seconds for the `Retry-After` header (default 1).
        #[serde(default = "one")]
        retry_after: u64,
        /// The error message; a stock one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Close the TCP connection without a response, with SO_LINGER 0 so the peer sees RST.
    Reset,
    /// Send nothing for `ms` milliseconds (or ever, if `forever`), then answer normally.
    Stall {
        /// The delay before the first byte of the response.
        #[serde(default)]
        ms: u64,
        /// Never answer; the connection stays open until the client gives up.
        #[serde(default)]
        forever: bool,
    },
    /// Send the headers and `after_chunks` body chunks, then close the connection mid-body
    /// (no terminating chunk, no `[DONE]`).
    CutStream {
        /// Chunks (SSE events) sent before the cut.
        after_chunks: u32,
    },
    /// Send a non-JSON `data:` line after `after_chunks` chunks, then carry on normally.
    MalformedChunk {
        /// Chunks (SSE events) sent before the malformed one.
        after_chunks: u32,
    },
    /// Send the headers at once, then wait `ms` more before the first body chunk.
    SlowTtft {
        /// The extra time to first token.
        ms: u64,
    },
    /// Stream `after_chunks` events, then the provider's in-stream error event (Anthropic
    /// `event: error`, an OpenAI or Gemini `data: {"error": ...}`) and end the body cleanly.
    /// On a non-streamed answer: the error status with the provider's error body.
    StreamError {
        /// Events sent before the error.
        #[serde(default)]
        after_chunks: u32,
        /// The error's status; the provider's "overloaded" one when absent (OpenAI 500,
        /// Anthropic 529, Gemini 503).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// The error `type` (Gemini: `status`); derived from the status when absent.
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
        /// The error message; a stock one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Answer a generation request with the provider's content-policy refusal: OpenAI
    /// `finish_reason: "content_filter"` and no content, Anthropic `stop_reason: "refusal"`
    /// and no content, Gemini a candidate with `finishReason: "SAFETY"` and no content.
    Refusal,
    /// Answer with a tool call even where the request would get text (see `tool`).
    ToolCall {
        /// The tool to call; the first one offered when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The call's arguments; made from the tool's schema when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arguments: Option<serde_json::Value>,
        /// Text said before the call: an Anthropic text block before the `tool_use` block,
        /// OpenAI `content` beside `tool_calls`, a Gemini text part before the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// Tool calls in the answer (parallel calls: the named or first tool, then the next
        /// ones offered); 1 when absent; 0 answers with text even where a call would come.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        calls: Option<u32>,
    },
}

fn one() -> u64 {
    1
}

impl Fault {
    /// Parse a fault from JSON, with a message fit for an error body.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid fault `{text}`: {e}"))
    }

    /// Whether this fault does nothing.
    pub fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }

    /// The tool call a `tool_call` fault demands.
    pub fn forced_tool(&self) -> Option<crate::tool::Forced> {
        match self {
            Self::ToolCall {
                name,
                arguments,
                text,
                calls,
            } => Some(crate::tool::Forced {
                name: name.clone(),
                arguments: arguments.clone(),
                text: text.clone(),
                calls: *calls,
            }),
            _ => None,
        }
    }

    /// A `status`, `rate_limit` or `stream_error` fault as an error in neutral terms: status,
    /// message, type, code and `Retry-After`. `default_status` is the provider's status for
    /// a `stream_error` without one.
    pub fn error_parts(&self, default_status: u16) -> Option<ErrorParts> {
        match self {
            Self::Status {
                status,
                message,
                error_type,
                code,
                retry_after,
            } => Some(ErrorParts {
                status: *status,
                message: message.clone(),
                error_type: error_type.clone(),
                code: code.clone(),
                retry_after: *retry_after,
                rate_limit: false,
            }),
            Self::RateLimit {
                retry_after,
                message,
            } => Some(ErrorParts {
                status: 429,
                message: message.clone(),
                error_type: None,
                code: None,
                retry_after: Some(*retry_after),
                rate_limit: true,
            }),
            Self::StreamError {
                status,
                error_type,
                message,
                ..
            } => Some(ErrorParts {
                status: status.unwrap_or(default_status),
                message: message.clone(),
                error_type: error_type.clone(),
                code: None,
                retry_after: None,
                rate_limit: false,
            }),
            _ => None,
        }
    }
}

/// The parts of an error fault, before a wire format fills in its stock words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorParts {
    /// HTTP status.
    pub status: u16,
    /// The fault's message, if it names one.
    pub message: Option<String>,
    /// The fault's type, if it names one.
    pub error_type: Option<String>,
    /// The fault's code, if it names one.
    pub code: Option<String>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
    /// A `rate_limit` fault (its stock words differ from a plain 429's).
    pub rate_limit: bool,
}

/// A queued fault: the fault, which requests it applies to, and how many times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// The fault itself (its fields sit beside `path` and `times` in JSON).
    #[serde(flatten)]
    pub fault: Fault,
    /// Only requests to this exact path consume the entry (any API path when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How many requests the entry applies to before it leaves the queue (default 1).
    #[serde(default = "one_u32")]
    pub times: u32,
}

fn one_u32() -> u32 {
    1
}

impl From<Fault> for FaultSpec {
    fn from(fault: Fault) -> Self {
        Self {
            fault,
            path: None,
            times: 1,
        }
    }
}

impl FaultSpec {
    /// Whether a request to `path` consumes this entry.
    pub fn matches(&self, path: &str) -> bool {
        self.path.as_deref().is_none_or(|p| p == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let cases = [
            (r#"{"kind":"none"}"#, Fault::None),
            (r#"{"kind":"ok"}"#, Fault::None),
            (r#"{"kind":"reset"}"#, Fault::Reset),
            (
                r#"{"kind":"rate_limit"}"#,
                Fault::RateLimit {
                    retry_after: 1,
                    message: None,
                },
            ),
            (
                r#"{"kind":"status","status":503,"type":"overloaded"}"#,
                Fault::Status {
                    status: 503,
                    message: None,
                    error_type: Some("overloaded".into()),
                    code: None,
                    retry_after: None,
                },
            ),
            (
                r#"{"kind":"stall","forever":true}"#,
                Fault::Stall {
                    ms: 0,
                    forever: true,
                },
            ),
            (
                r#"{"kind":"cut_stream","after_chunks":3}"#,
                Fault::CutStream { after_chunks: 3 },
            ),
            (
                r#"{"kind":"malformed_chunk","after_chunks":0}"#,
                Fault::MalformedChunk { after_chunks: 0 },
            ),
            (r#"{"kind":"slow_ttft","ms":5}"#, Fault::SlowTtft { ms: 5 }),
            (r#"{"kind":"refusal"}"#, Fault::Refusal),
        ];
        for (json, want) in cases {
            assert_eq!(Fault::from_json(json), Ok(want), "{json}");
        }
    }

    #[test]
    fn rejects_unknown_kinds_and_fields() {
        assert!(Fault::from_json(r#"{"kind":"explode"}"#).is_err());
        assert!(Fault::from_json(r#"{"kind":"stall","msec":3}"#).is_err());
        assert!(Fault::from_json(r#"{"kind":"cut_stream"}"#).is_err());
    }

    #[test]
    fn spec_carries_path_and_times() {
        let spec: FaultSpec = serde_json::from_str(
            r#"{"kind":"status","status":500,"path":"/v1/embeddings","times":2}"#,
        )
        .expect("valid spec");
        assert_eq!(spec.times, 2);
        assert!(spec.matches("/v1/embeddings"));
        assert!(!spec.matches("/v1/chat/completions"));
        let any: FaultSpec = serde_json::from_str(r#"{"kind":"reset"}"#).expect("valid spec");
        assert_eq!(any, FaultSpec::from(Fault::Reset));
        assert!(any.matches("/v1/models"));
        let typo = serde_json::from_str::<FaultSpec>(r#"{"kind":"stall","msec":3}"#);
        assert!(
            typo.is_err(),
            "unknown fields are rejected in queue entries too"
        );
    }
}
