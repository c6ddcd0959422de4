//! The Google Gemini wire format: `POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent` (`?alt=sse` for server-sent events, else one JSON array),
//! `:countTokens`, the models list, and the `{"error": {"code", "message", "status"}}` shape.
//! Pure functions from request bytes to a [`Reply`]. Stream events end their lines with CRLF,
//! as Google's servers do.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::fault::Fault;
use crate::openai::Ctx;
use crate::reply::{ApiError, Reply, SseEvent};
use crate::text;
use crate::tool::{self, Call, Choice, Tool};

/// Tokens a named `cachedContent` adds to the prompt (reported as `cachedContentTokenCount`).
pub const CACHED_CONTENT_TOKENS: u32 = 100;

/// The Gemini rendering of an error (`error_type` is the RPC status, e.g.
/// `RESOURCE_EXHAUSTED`); with `Retry-After`, a `RetryInfo` detail as Google sends.
pub fn error_body(e: &ApiError) -> Value {
    let mut error = json!({"code": e.status, "message": e.message, "status": e.error_type});
    if let Some(secs) = e.retry_after {
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{secs}s"),
        }]);
    }
    json!({ "error": error })
}

/// An error with Gemini's RPC status for `status`.
fn error(status: u16, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        error_type: stock_error(status).1.to_owned(),
        ..ApiError::invalid_request(message)
    }
}

/// The error a `status`, `rate_limit` or `stream_error` fault answers with, in Google's
/// words (a `stream_error` without a status is 503 `UNAVAILABLE`).
pub fn fault_error(fault: &Fault) -> Option<ApiError> {
    let parts = fault.error_parts(503)?;
    let (stock_message, stock_status) = stock_error(parts.status);
    Some(ApiError {
        status: parts.status,
        message: parts.message.unwrap_or_else(|| stock_message.to_owned()),
        error_type: parts.error_type.unwrap_or_else(|| stock_status.to_owned()),
        param: None,
        code: parts.code,
        retry_after: parts.retry_after,
    })
}

/// Message and RPC status Google uses for an HTTP status.
pub fn stock_error(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => (
            "Request contains an invalid argument. (mock)",
            "INVALID_ARGUMENT",
        ),
        401 => (
            "Request had invalid authentication credentials. (mock)",
            "UNAUTHENTICATED",
        ),
        403 => (
            "The caller does not have permission (mock).",
            "PERMISSION_DENIED",
        ),
        404 => ("Requested entity was not found. (mock)", "NOT_FOUND"),
        409 => ("The operation was aborted. (mock)", "ABORTED"),
        413 => (
            "Request payload size exceeds the limit. (mock)",
            "INVALID_ARGUMENT",
        ),
        429 => (
            "Resource has been exhausted (e.g. check quota). (mock)",
            "RESOURCE_EXHAUSTED",
        ),
        499 => ("The operation was cancelled. (mock)", "CANCELLED"),
        501 => ("Operation is not implemented. (mock)", "UNIMPLEMENTED"),
        503 | 529 => (
            "The model is overloaded. Please try again later. (mock)",
            "UNAVAILABLE",
        ),
        504 => (
            "Deadline expired before operation could complete. (mock)",
            "DEADLINE_EXCEEDED",
        ),
        s if s >= 500 => ("An internal error has occurred. (mock)", "INTERNAL"),
        _ => ("Request failed. (mock)", "FAILED_PRECONDITION"),
    }
}

/// The error when neither `x-goog-api-key` nor `key=` carries a key.
pub fn auth_error(has_key: bool) -> Option<ApiError> {
    (!has_key).then(|| {
        error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API.",
        )
    })
}

/// The 404 for an unknown route.
pub fn unknown_route(method: &str, path: &str) -> ApiError {
    error(404, format!("Not found: {method} {path} (mock)"))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| error(400, format!("Invalid JSON payload received. {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest {
    #[serde(default)]
    contents: Vec<Content>,
    #[serde(default, alias = "system_instruction")]
    system_instruction: Option<Content>,
    #[serde(default)]
    tools: Vec<ToolGroup>,
    #[serde(default, alias = "tool_config")]
    tool_config: Option<Value>,
    #[serde(default, alias = "generation_config")]
    generation_config: Option<GenerationConfig>,
    #[serde(default, alias = "cached_content")]
    cached_content: Option<String>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct Content {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolGroup {
    #[serde(default, alias = "function_declarations")]
    function_declarations: Vec<FunctionDeclaration>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclaration {
    name: String,
    #[serde(default)]
    parameters: Value,
    #[serde(default, alias = "parameters_json_schema")]
    parameters_json_schema: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(default, alias = "max_output_tokens")]
    max_output_tokens: Option<u32>,
    #[serde(default, alias = "stop_sequences")]
    stop_sequences: Vec<String>,
}

/// Characters of a part: text, function call arguments, function response.
fn part_chars(part: &Value) -> usize {
    if let Some(text) = part.get("text").and_then(Value::as_str) {
        return text.chars().count();
    }
    [
        "functionCall",
        "functionResponse",
        "function_call",
        "function_response",
    ]
    .iter()
    .filter_map(|k| part.get(*k))
    .map(|v| v.to_string().chars().count())
    .sum()
}

fn choice(tool_config: Option<&Value>) -> Choice {
    let Some(config) = tool_config.and_then(|c| {
        c.get("functionCallingConfig")
            .or_else(|| c.get("function_calling_config"))
    }) else {
        return Choice::Auto;
    };
    let allowed: Vec<&str> = config
        .get("allowedFunctionNames")
        .or_else(|| config.get("allowed_function_names"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match config.get("mode").and_then(Value::as_str) {
        Some("NONE") => Choice::None,
        Some("ANY" | "VALIDATED") if allowed.len() == 1 => Choice::Named(allowed[0].to_owned()),
        Some("ANY") => Choice::Any,
        _ => Choice::Auto,
    }
}

/// Whether the last turn hands back function responses.
fn answering_tool_result(contents: &[Content]) -> bool {
    contents.last().is_some_and(|c| {
        c.parts
            .iter()
            .any(|p| p.get("functionResponse").is_some() || p.get("function_response").is_some())
    })
}

/// A generate/stream/count request for `model`: what the answer needs.
struct Prepared {
    prompt_tokens: u32,
    cached_tokens: u32,
    seed: u64,
    /// The function calls of the answer (none: text).
    calls: Vec<Call>,
    max_tokens: Option<u32>,
    stops: Vec<String>,
}

fn prepare(model: &str, body: &[u8], ctx: &Ctx<'_>) -> Result<Prepared, ApiError> {
    let req: GenerateRequest = parse(body)?;
    if req.contents.is_empty() {
        return Err(error(
            400,
            "* GenerateContentRequest.contents: contents is not specified\n",
        ));
    }
    let chars: usize = req
        .system_instruction
        .iter()
        .chain(&req.contents)
        .flat_map(|c| &c.parts)
        .map(part_chars)
        .sum();
    // Implicit caching (Gemini 2.5): the leading contents this server has seen, when it keeps
    // a prompt cache; an explicit `cachedContent` adds its own tokens.
    let implicit = ctx.prompt_cache.map_or(0, |cache| {
        let each: Vec<(String, u32)> = req
            .system_instruction
            .iter()
            .chain(&req.contents)
            .map(|c| {
                let text = serde_json::to_string(c).unwrap_or_default();
                let n = text::estimate_tokens(c.parts.iter().map(part_chars).sum());
                (text, n)
            })
            .collect();
        cache.lookup_and_store(&each)
    });
    let explicit = if req.cached_content.is_some() {
        CACHED_CONTENT_TOKENS
    } else {
        0
    };
    let cached_tokens = implicit.min(text::estimate_tokens(chars)) + explicit;
    let transcript =
        serde_json::to_string(&(&req.system_instruction, &req.contents)).unwrap_or_default();
    let seed = text::derive_seed(ctx.seed, &["gemini", model, &transcript]);
    let tools: Vec<Tool> = req
        .tools
        .iter()
        .flat_map(|g| &g.function_declarations)
        .map(|f| Tool {
            name: f.name.clone(),
            schema: if f.parameters.is_null() {
                f.parameters_json_schema.clone()
            } else {
                f.parameters.clone()
            },
        })
        .collect();
    let calls = tool::decide(
        &tools,
        &choice(req.tool_config.as_ref()),
        answering_tool_result(&req.contents),
        ctx.forced_tool.as_ref(),
        seed,
    )
    .map_or_else(Vec::new, |c| {
        tool::parallel(c, &tools, ctx.forced_tool.as_ref(), seed)
    });
    Ok(Prepared {
        prompt_tokens: text::estimate_tokens(chars) + explicit,
        cached_tokens,
        seed,
        calls,
        max_tokens: req
            .generation_config
            .as_ref()
            .and_then(|g| g.max_output_tokens),
        stops: req
            .generation_config
            .map(|g| g.stop_sequences)
            .unwrap_or_default(),
    })
}

/// Route a request under `/v1beta` (or `/v1`) to its Gemini handler.
pub fn route(method: &str, path: &str, query: Option<&str>, body: &[u8], ctx: &Ctx<'_>) -> Reply {
    let rest = path
        .strip_prefix("/v1beta/")
        .or_else(|| path.strip_prefix("/v1/"))
        .unwrap_or(path);
    if method == "GET" && rest == "models" {
        return models(ctx);
    }
    let Some(name) = rest.strip_prefix("models/") else {
        return Reply::Error(unknown_route(method, path));
    };
    match (method, name.split_once(':')) {
        ("GET", None) => model(name, ctx),
        ("POST", Some((model, "generateContent"))) => generate(model, body, ctx, Mode::Whole),
        ("POST", Some((model, "streamGenerateContent"))) => {
            let sse = query.is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
            generate(
                model,
                body,
                ctx,
                if sse { Mode::Sse } else { Mode::JsonArray },
            )
        }
        ("POST", Some((model, "countTokens"))) => match prepare(model, body, ctx) {
            Ok(p) => Reply::Json {
                body: json!({"totalTokens": p.prompt_tokens, "cachedContentTokenCount": p.cached_tokens}),
                tokens: 0,
            },
            Err(e) => Reply::Error(e),
        },
        _ => Reply::Error(unknown_route(method, path)),
    }
}

/// How `generate` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Whole,
    Sse,
    JsonArray,
}

fn generate(model: &str, body: &[u8], ctx: &Ctx<'_>, mode: Mode) -> Reply {
    let p = match prepare(model, body, ctx) {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let response_id = text::alphanumeric(
        text::derive_seed(ctx.seed, &["gemini-id", &ctx.request_id.to_string()]),
        22,
    );
    // Each chunk: its parts, and whether it is the last (finish reason, full usage).
    let (chunks, output, finish): (Vec<Vec<Value>>, u32, &str) = match p.calls.first() {
        Some(first) => {
            // Every call in one part list (Gemini sends parallel calls together).
            let parts: Vec<Value> = p
                .calls
                .iter()
                .map(|c| json!({"functionCall": {"name": c.name, "args": c.arguments}}))
                .collect();
            let said = first.text_tokens();
            let chunks = match mode {
                _ if said.is_empty() => vec![parts],
                Mode::Whole => {
                    vec![
                        std::iter::once(json!({"text": said.concat()}))
                            .chain(parts)
                            .collect(),
                    ]
                }
                _ => said
                    .iter()
                    .map(|t| vec![json!({"text": t})])
                    .chain(std::iter::once(parts))
                    .collect(),
            };
            (chunks, p.calls.iter().map(Call::tokens).sum(), "STOP")
        }
        None => {
            let (n, finish) = match p.max_tokens {
                Some(cap) if cap < ctx.completion_tokens => (cap, "MAX_TOKENS"),
                _ => (ctx.completion_tokens, "STOP"),
            };
            let tokens = text::completion(p.seed, n, finish == "STOP");
            let (tokens, n, finish) = match text::cut_at_stop(&tokens, &p.stops) {
                Some((kept, _)) => {
                    let n = u32::try_from(kept.len()).unwrap_or(u32::MAX);
                    (kept, n, "STOP")
                }
                None => (tokens, n, finish),
            };
            let chunks = match mode {
                Mode::Whole => vec![vec![json!({"text": tokens.concat()})]],
                _ if tokens.is_empty() => vec![vec![json!({"text": ""})]],
                _ => tokens.iter().map(|t| vec![json!({"text": t})]).collect(),
            };
            (chunks, n, finish)
        }
    };
    let usage = |last: bool| {
        let mut usage = json!({"promptTokenCount": p.prompt_tokens});
        if last {
            usage["candidatesTokenCount"] = json!(output);
            usage["totalTokenCount"] = json!(p.prompt_tokens + output);
        } else {
            usage["totalTokenCount"] = json!(p.prompt_tokens);
        }
        if p.cached_tokens > 0 {
            usage["cachedContentTokenCount"] = json!(p.cached_tokens);
        }
        usage
    };
    let count = chunks.len();
    let bodies: Vec<Value> = chunks
        .into_iter()
        .enumerate()
        .map(|(i, parts)| {
            let last = i + 1 == count;
            let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
            if last {
                candidate["finishReason"] = json!(finish);
            }
            json!({
                "candidates": [candidate],
                "usageMetadata": usage(last),
                "modelVersion": model,
                "responseId": response_id,
            })
        })
        .collect();
    match mode {
        Mode::Whole => Reply::Json {
            body: bodies.into_iter().next().unwrap_or(Value::Null),
            tokens: output,
        },
        Mode::JsonArray => Reply::Json {
            body: Value::Array(bodies),
            tokens: output,
        },
        Mode::Sse => Reply::Stream(
            bodies
                .iter()
                .map(|b| SseEvent::data_crlf(b.to_string(), true))
                .collect(),
        ),
    }
}

/// A generate request under a `refusal` fault: one candidate with `finishReason: "SAFETY"`,
/// no content and a blocking safety rating (streamed: that one chunk; as a JSON array: a
/// one-element array).
pub fn refusal(method: &str, path: &str, query: Option<&str>, body: &[u8], ctx: &Ctx<'_>) -> Reply {
    let rest = path
        .strip_prefix("/v1beta/")
        .or_else(|| path.strip_prefix("/v1/"))
        .unwrap_or(path);
    let Some((model, action)) = rest.strip_prefix("models/").and_then(|n| n.split_once(':')) else {
        return route(method, path, query, body, ctx);
    };
    let mode = match action {
        "generateContent" => Mode::Whole,
        "streamGenerateContent"
            if query.is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse")) =>
        {
            Mode::Sse
        }
        "streamGenerateContent" => Mode::JsonArray,
        _ => return route(method, path, query, body, ctx),
    };
    let p = match prepare(model, body, ctx) {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let answer = json!({
        "candidates": [{
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [{
                "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                "probability": "HIGH",
                "blocked": true,
            }],
        }],
        "usageMetadata": {"promptTokenCount": p.prompt_tokens, "totalTokenCount": p.prompt_tokens},
        "modelVersion": model,
        "responseId": text::alphanumeric(
            text::derive_seed(ctx.seed, &["gemini-id", &ctx.request_id.to_string()]),
            22,
        ),
    });
    match mode {
        Mode::Whole => Reply::Json {
            body: answer,
            tokens: 0,
        },
        Mode::JsonArray => Reply::Json {
            body: json!([answer]),
            tokens: 0,
        },
        Mode::Sse => Reply::Stream(vec![SseEvent::data_crlf(answer.to_string(), false)]),
    }
}

/// A `data:` line that is not JSON, for the `malformed_chunk` fault.
pub fn malformed_event() -> SseEvent {
    SseEvent::data_crlf(r#"{"candidates":[{"content":{"parts":[{"text":"#, false)
}

/// The in-stream error for a `stream_error` fault: a `data:` line with the error body.
pub fn stream_error_event(e: &ApiError) -> SseEvent {
    SseEvent::data_crlf(error_body(e).to_string(), false)
}

fn model_object(id: &str) -> Value {
    json!({
        "name": format!("models/{id}"),
        "version": "001",
        "displayName": id,
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 8192,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    })
}

/// `GET /v1beta/models`.
pub fn models(ctx: &Ctx<'_>) -> Reply {
    let data: Vec<Value> = ctx.models.iter().map(|m| model_object(m)).collect();
    Reply::Json {
        body: json!({ "models": data }),
        tokens: 0,
    }
}

/// `GET /v1beta/models/{id}`.
pub fn model(id: &str, ctx: &Ctx<'_>) -> Reply {
    if ctx.models.iter().any(|m| m == id) {
        return Reply::Json {
            body: model_object(id),
            tokens: 0,
        };
    }
    Reply::Error(error(
        404,
        format!("models/{id} is not found for API version v1beta (mock)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_code_message_status() {
        let e = fault_error(&Fault::RateLimit {
            retry_after: 3,
            message: None,
        })
        .expect("an error");
        let body = error_body(&e);
        assert_eq!(body["error"]["code"], 429);
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(body["error"]["details"][0]["retryDelay"], "3s");
    }

    #[test]
    fn tool_config_modes() {
        assert_eq!(choice(None), Choice::Auto);
        let any = json!({"functionCallingConfig": {"mode": "ANY"}});
        assert_eq!(choice(Some(&any)), Choice::Any);
        let one = json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}});
        assert_eq!(choice(Some(&one)), Choice::Named("f".into()));
        let none = json!({"functionCallingConfig": {"mode": "NONE"}});
        assert_eq!(choice(Some(&none)), Choice::None);
    }
}
