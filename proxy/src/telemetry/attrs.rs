//! Attribute values of the OpenTelemetry GenAI semantic conventions: operation and provider
//! names, and what a provider's answer says about itself (id, model, finish reasons).

use serde::Deserialize;
use switchyard_dsl::ir::{Provider, ProviderKind};

/// Longest content attribute (prompt or completion), in bytes; longer is cut at a character
/// boundary and marked.
pub const MAX_CONTENT: usize = 16 * 1024;

/// `gen_ai.operation.name` of a client endpoint label (`RequestCtx::endpoint`).
pub fn operation(endpoint: &str) -> &'static str {
    match endpoint {
        "embeddings" => "embeddings",
        "models" => "list_models",
        _ => "chat",
    }
}

/// `gen_ai.provider.name`: the convention's well-known value for a provider type, else the
/// catalogue name of an OpenAI-compatible provider (`deepseek`, `groq`, ...).
pub fn provider_name(p: &Provider) -> String {
    match p.kind {
        ProviderKind::Openai => "openai".into(),
        ProviderKind::AzureOpenai => "azure.ai.openai".into(),
        ProviderKind::Anthropic => "anthropic".into(),
        ProviderKind::Gemini => "gcp.gemini".into(),
        ProviderKind::Mock => "switchyard.mock".into(),
        ProviderKind::OpenaiCompatible => p.name.clone(),
    }
}

/// What an OpenAI-shaped answer (a whole body or a stream's first event) says about itself.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Answer {
    pub id: Option<String>,
    pub model: Option<String>,
    pub finish_reasons: Vec<String>,
    /// The `choices` as JSON, bounded: the completion, captured only with the opt-in.
    pub content: Option<String>,
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    finish_reason: Option<String>,
}

impl Answer {
    /// Reads `json` (an OpenAI chat or embeddings body, or one `data:` event); anything else
    /// gives an empty answer.
    pub fn probe(json: &[u8], keep_content: bool) -> Self {
        let Ok(p) = serde_json::from_slice::<Probe<'_>>(json) else {
            return Self::default();
        };
        let finish_reasons = p
            .choices
            .and_then(|c| serde_json::from_str::<Vec<Choice>>(c.get()).ok())
            .map(|cs| cs.into_iter().filter_map(|c| c.finish_reason).collect())
            .unwrap_or_default();
        Self {
            id: p.id.map(|s| bounded(&s, 256)),
            model: p.model.map(|s| bounded(&s, 256)),
            finish_reasons,
            content: p
                .choices
                .filter(|_| keep_content)
                .map(|c| bounded(c.get(), MAX_CONTENT)),
        }
    }

    /// The first `data:` event of an SSE chunk, probed.
    pub fn probe_sse(chunk: &[u8], keep_content: bool) -> Self {
        let text = String::from_utf8_lossy(chunk);
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .find(|d| d.starts_with('{'))
            .map(|d| Self::probe(d.as_bytes(), keep_content))
            .unwrap_or_default()
    }
}

/// `s` cut to at most `max` bytes at a character boundary, `…` marking a cut.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The request's messages (or embeddings input) as JSON, bounded: the prompt, captured only
/// with the opt-in.
pub fn prompt(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Input<'a> {
        #[serde(borrow, default)]
        messages: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow, default)]
        input: Option<&'a serde_json::value::RawValue>,
    }
    let i: Input<'_> = serde_json::from_slice(body).ok()?;
    i.messages
        .or(i.input)
        .map(|raw| bounded(raw.get(), MAX_CONTENT))
}

/// `temperature` of a request body, when it sets one.
pub fn temperature(body: &[u8]) -> Option<f64> {
    #[derive(Deserialize)]
    struct T {
        #[serde(default)]
        temperature: Option<f64>,
    }
    serde_json::from_slice::<T>(body).ok()?.temperature
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_name_their_id_model_and_finish_reasons() {
        let body = br#"{"id":"chatcmpl-1","model":"m-2024","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"},{"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let a = Answer::probe(body, false);
        assert_eq!(a.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(a.model.as_deref(), Some("m-2024"));
        assert_eq!(a.finish_reasons, ["stop", "length"]);
        assert_eq!(a.content, None, "content only on request");
        let a = Answer::probe(body, true);
        assert!(a.content.expect("content").contains("\"hi\""));
        let sse = b"data: {\"id\":\"c-9\",\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\n";
        let a = Answer::probe_sse(sse, false);
        assert_eq!(a.id.as_deref(), Some("c-9"));
        assert!(a.finish_reasons.is_empty());
        assert_eq!(Answer::probe(b"not json", true), Answer::default());
    }

    #[test]
    fn prompts_are_bounded_at_a_character_boundary() {
        let long = "é".repeat(MAX_CONTENT);
        let body =
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": long}]});
        let p = prompt(&serde_json::to_vec(&body).expect("json")).expect("prompt");
        assert!(p.len() <= MAX_CONTENT + "…".len() && p.ends_with('…'));
        assert_eq!(temperature(br#"{"temperature":0.2}"#), Some(0.2));
        assert_eq!(temperature(br#"{"model":"m"}"#), None);
    }
}
