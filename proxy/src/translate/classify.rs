//! Error classification, one function per wire protocol: a provider's status and error body
//! become a provider-independent [`ErrorClass`] (rate limited, overloaded, context too long,
//! ...) that failover triggers can name. Beside the translators because it is knowledge of
//! each protocol, used by the adapters, the translators and the router alike.

use serde::Deserialize;
use serde_json::Value;
use switchyard_dsl::ir::ErrorClass;

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorFields>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorFields {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

/// Classifies an OpenAI-style error response.
pub fn openai(status: u16, body: &[u8]) -> ErrorClass {
    let fields = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default();
    let code = fields.code.as_ref().and_then(|c| c.as_str()).unwrap_or("");
    let kind = fields.kind.as_deref().unwrap_or("");
    let said = |w: &str| code == w || kind == w;
    // Codes that name the class outright (OpenAI's, and those the translating adapters
    // write for Anthropic and Gemini errors) win over the status.
    if status >= 400 {
        if said("insufficient_quota") {
            return ErrorClass::QuotaExhausted;
        }
        if said("context_length_exceeded") {
            return ErrorClass::ContextTooLong;
        }
        if said("content_policy_violation") {
            return ErrorClass::ContentPolicy;
        }
        if said("server_overloaded") {
            return ErrorClass::Overloaded;
        }
    }
    match status {
        429 if said("insufficient_quota") => ErrorClass::QuotaExhausted,
        429 => ErrorClass::RateLimited,
        401 | 403 => ErrorClass::Auth,
        400 | 413 | 422 if said("context_length_exceeded") || said("string_above_max_length") => {
            ErrorClass::ContextTooLong
        }
        400 if said("content_filter") || said("content_policy_violation") => {
            ErrorClass::ContentPolicy
        }
        408 | 504 => ErrorClass::Timeout,
        503 | 529 => ErrorClass::Overloaded,
        500..=599 if said("overloaded_error") || said("server_overloaded") => {
            ErrorClass::Overloaded
        }
        500..=599 => ErrorClass::ServerError,
        _ => ErrorClass::BadRequest,
    }
}

/// The class of an Anthropic error `type`, helped by the status and message.
pub fn anthropic_type(kind: &str, status: u16, message: &str) -> ErrorClass {
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
pub fn anthropic(status: u16, body: &[u8]) -> ErrorClass {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let kind = e["type"].as_str().unwrap_or("");
    let class = anthropic_type(kind, status, e["message"].as_str().unwrap_or(""));
    // The status wins where Anthropic's type is generic.
    match (status, class) {
        (529, _) => ErrorClass::Overloaded,
        (429, ErrorClass::BadRequest) => ErrorClass::RateLimited,
        _ => class,
    }
}

/// Classifies a parsed Gemini error body (`status` 0 inside a stream).
pub fn gemini_body(status: u16, v: &Value) -> ErrorClass {
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
pub fn gemini(status: u16, body: &[u8]) -> ErrorClass {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    gemini_body(status, &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anthropic_err(kind: &str, msg: &str) -> Vec<u8> {
        serde_json::json!({"type": "error", "error": {"type": kind, "message": msg}})
            .to_string()
            .into_bytes()
    }

    fn gemini_err(code: u16, status: &str, msg: &str) -> Vec<u8> {
        serde_json::json!({"error": {"code": code, "message": msg, "status": status}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn openai_classes() {
        assert_eq!(openai(429, b"{}"), ErrorClass::RateLimited);
        let quota = br#"{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert_eq!(openai(429, quota), ErrorClass::QuotaExhausted);
        assert_eq!(openai(503, b"nope"), ErrorClass::Overloaded);
        assert_eq!(openai(500, b""), ErrorClass::ServerError);
        assert_eq!(openai(401, b""), ErrorClass::Auth);
        let ctx = br#"{"error":{"code":"context_length_exceeded"}}"#;
        assert_eq!(openai(400, ctx), ErrorClass::ContextTooLong);
        assert_eq!(openai(400, b"{}"), ErrorClass::BadRequest);
    }

    #[test]
    fn anthropic_classes() {
        let c = |s, k, m| anthropic(s, &anthropic_err(k, m));
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
        assert_eq!(anthropic(529, b"not json"), ErrorClass::Overloaded);
        assert_eq!(anthropic(502, b""), ErrorClass::ServerError);
    }

    #[test]
    fn gemini_classes() {
        let c = |code, s, m| gemini(code, &gemini_err(code, s, m));
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
}
