//! The Anthropic Messages surface (`POST /v1/messages`): the request is translated to an
//! OpenAI chat request and routed like any other; answers, streams and errors go back in
//! Anthropic's shapes.

use bytes::Bytes;
use serde_json::Value;

use super::ApiError;
use crate::ctx::{RequestCtx, Usage};
use crate::translate::anthropic_openai;

/// `RequestCtx::endpoint` of a Messages request.
pub const LABEL: &str = "messages";

/// Whether the client called the Messages API.
pub fn is_client(ctx: &RequestCtx) -> bool {
    ctx.endpoint == LABEL
}

/// The OpenAI chat body for a Messages body.
pub fn to_openai(body: &[u8]) -> Result<Bytes, ApiError> {
    if body.is_empty() {
        return Err(ApiError::malformed_json("the body is empty"));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::malformed_json(&e.to_string()))?;
    if !v.is_object() {
        return Err(ApiError::malformed_json("the body is not a JSON object"));
    }
    let openai =
        anthropic_openai::request(&v).map_err(|e| ApiError::invalid_field(e.to_string()))?;
    Ok(Bytes::from(openai.to_string()))
}

/// An error in Anthropic's shape.
pub fn error_body(e: &ApiError) -> Bytes {
    let kind = match e.status {
        401 | 403 => "authentication_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    let v = serde_json::json!({"type": "error", "error": {"type": kind, "message": e.message}});
    Bytes::from(v.to_string())
}

/// A whole upstream answer (OpenAI-shaped, success or error) in Anthropic's shape.
pub fn response_body(status: u16, body: &[u8], model: &str) -> Bytes {
    if !(200..300).contains(&status) {
        return Bytes::from(anthropic_openai::error_from_openai(status, body).to_string());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Bytes::from(anthropic_openai::response(&v, model).to_string()),
        Err(_) => Bytes::copy_from_slice(body),
    }
}

/// Token usage of an Anthropic message (cached input counted as input, as OpenAI does).
pub fn native_usage(body: &[u8]) -> Option<Usage> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let u = &v["usage"];
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    u.is_object().then(|| Usage {
        input: n("input_tokens") + n("cache_read_input_tokens") + n("cache_creation_input_tokens"),
        output: n("output_tokens"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_usage() {
        let v = |b: Bytes| serde_json::from_slice::<Value>(&b).expect("json");
        let e = v(error_body(&ApiError::unknown_model("x")));
        assert_eq!(
            (e["type"].as_str(), e["error"]["type"].as_str()),
            (Some("error"), Some("not_found_error"))
        );
        let e = v(error_body(&ApiError::upstream(
            503,
            "upstream_unavailable",
            "m".into(),
        )));
        assert_eq!(e["error"]["type"], "overloaded_error");
        let upstream = br#"{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#;
        let e = v(response_body(429, upstream, "m"));
        assert_eq!(
            (e["error"]["type"].as_str(), e["error"]["message"].as_str()),
            (Some("rate_limit_error"), Some("slow down"))
        );
        let msg = br#"{"type":"message","usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":10,"cache_creation_input_tokens":5}}"#;
        assert_eq!(
            native_usage(msg),
            Some(Usage {
                input: 18,
                output: 4
            })
        );
        assert_eq!(native_usage(b"{}"), None);
        assert!(to_openai(b"[1]").is_err());
        let o = v(to_openai(
            br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .expect("ok"));
        assert_eq!(o["messages"][0]["content"], "hi");
    }
}
