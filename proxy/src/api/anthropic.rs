//! The Anthropic Messages surface (`POST /v1/messages`): the request is translated to an
//! OpenAI chat request and routed like any other; answers, streams and errors go back in
//! Anthropic's shapes.

use bytes::Bytes;
use serde_json::Value;

use super::ApiError;
use super::Usage;
use crate::translate::anthropic_openai;

/// `RequestCtx::endpoint` of a Messages request.
pub const LABEL: &str = "messages";

/// A Messages client's own request, which Anthropic targets get as is (model replaced):
/// the body and its `anthropic-beta` header. The beta fields in the body need the header
/// upstream: Claude Code sends `context_management`, effort and deferred tools, and without
/// the header Anthropic answers 400 "Extra inputs are not permitted".
#[derive(Debug, Clone)]
pub struct Native {
    /// The body as the client sent it.
    pub body: Bytes,
    /// The client's `anthropic-beta` values, comma-joined (the header may repeat).
    pub anthropic_beta: Option<String>,
}

impl Native {
    /// The client's body and `anthropic-beta` header(s); values that are not visible ASCII
    /// are left out.
    pub fn new(body: Bytes, headers: &http::HeaderMap) -> Self {
        let betas: Vec<&str> = headers
            .get_all("anthropic-beta")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        Self {
            body,
            anthropic_beta: (!betas.is_empty()).then(|| betas.join(",")),
        }
    }
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
        cached: n("cache_read_input_tokens"),
    })
}

/// Whether a request comes from an Anthropic SDK (it always sends `anthropic-version`).
pub fn wants_anthropic_shape(anthropic_version: Option<&str>) -> bool {
    anthropic_version.is_some()
}

/// `2026-11-22T02:54:41Z` for Unix seconds.
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

fn model_entry(m: &Value) -> Value {
    serde_json::json!({
        "type": "model",
        "id": m["id"],
        "display_name": m["id"],
        "created_at": rfc3339(m["created"].as_u64().unwrap_or(0)),
    })
}

/// The `/v1/models` answer (a list, or one model) in Anthropic's shape.
pub fn models_body(openai: &[u8]) -> Bytes {
    let Ok(v) = serde_json::from_slice::<Value>(openai) else {
        return Bytes::copy_from_slice(openai);
    };
    let out = match v["data"].as_array() {
        Some(list) => {
            let data: Vec<Value> = list.iter().map(model_entry).collect();
            serde_json::json!({
                "data": data,
                "has_more": false,
                "first_id": data.first().map(|m| m["id"].clone()),
                "last_id": data.last().map(|m| m["id"].clone()),
            })
        }
        None => model_entry(&v),
    };
    Bytes::from(out.to_string())
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
                output: 4,
                cached: 10
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

    #[test]
    fn native_requests_keep_their_betas() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(Native::new(Bytes::new(), &headers).anthropic_beta, None);
        headers.append(
            "anthropic-beta",
            http::HeaderValue::from_static("claude-code-20250219,context-management-2025-06-27"),
        );
        headers.append(
            "anthropic-beta",
            http::HeaderValue::from_static(" effort-2025-11-24 "),
        );
        headers.append("anthropic-beta", http::HeaderValue::from_static(""));
        let native = Native::new(Bytes::from_static(b"{}"), &headers);
        assert_eq!(
            native.anthropic_beta.as_deref(),
            Some("claude-code-20250219,context-management-2025-06-27,effort-2025-11-24")
        );
        assert_eq!(native.body, Bytes::from_static(b"{}"));
    }

    #[test]
    fn models_in_anthropic_shape() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_763_780_081), "2025-11-22T02:54:41Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        let list = br#"{"object":"list","data":[{"id":"a","object":"model","created":0,"owned_by":"p"},{"id":"b","object":"model","created":0,"owned_by":"q"}]}"#;
        let v: Value = serde_json::from_slice(&models_body(list)).expect("json");
        assert_eq!(
            (v["first_id"].as_str(), v["last_id"].as_str()),
            (Some("a"), Some("b"))
        );
        assert_eq!(v["data"][1]["type"], "model");
        assert_eq!(v["has_more"], false);
        let one: Value =
            serde_json::from_slice(&models_body(br#"{"id":"a","created":0}"#)).expect("json");
        assert_eq!(one["created_at"], "1970-01-01T00:00:00Z");
    }
}
