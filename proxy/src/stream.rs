//! Server-sent-event relay: forwards complete upstream events as they arrive, checks each
//! `data:` payload, picks up `usage`, and ends a stream that breaks off (EOF before
//! `[DONE]`, a malformed event, a read error or timeout) with an OpenAI-style error event so
//! it never looks like a normal completion.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::api::ApiError;
use crate::api::Usage;
use crate::providers::ResponseSource;

#[derive(Debug, Deserialize)]
struct UsageJson {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

/// `usage.prompt_tokens_details`: the cached part of the prompt.
#[derive(Debug, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl UsageJson {
    fn usage(&self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        Usage {
            input: self.prompt_tokens,
            output: self.completion_tokens,
            cached: cached.min(self.prompt_tokens),
        }
    }
}

/// The parts of a chunk (or a whole JSON response) the proxy reads; parsing it also checks
/// that the payload is valid JSON.
#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(default)]
    usage: Option<UsageJson>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// Token usage in a JSON document, `Err` when it is not valid JSON.
pub fn probe_usage(json: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    let p: Probe = serde_json::from_slice(json)?;
    Ok(p.usage.map(|u| u.usage()))
}

/// Incremental SSE checker.
#[derive(Debug, Default)]
pub struct SseScanner {
    pending: BytesMut,
    /// Bytes of `pending` already split into lines.
    scanned: usize,
    /// Start of the current line in `pending`.
    line_start: usize,
    /// Data of the current event (for multi-line `data:`).
    data: Vec<u8>,
    data_lines: u32,
    pub done: bool,
    /// The upstream sent its own `{"error": ...}` event.
    pub upstream_error: bool,
    pub usage: Option<Usage>,
    pub events: u64,
}

impl SseScanner {
    /// Adds `chunk`; returns the complete, checked events to forward, or `Err` on a malformed
    /// event (nothing of which is returned).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Bytes, &'static str> {
        self.pending.extend_from_slice(chunk);
        let mut complete = 0;
        while let Some(off) = self.pending[self.scanned..]
            .iter()
            .position(|&b| b == b'\n')
        {
            let end = self.scanned + off;
            let mut line = &self.pending[self.line_start..end];
            if let Some(l) = line.strip_suffix(b"\r") {
                line = l;
            }
            if line.is_empty() {
                self.end_event()?;
                complete = end + 1;
            } else if let Some(rest) = line.strip_prefix(b"data:") {
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                if self.data_lines > 0 {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(rest);
                self.data_lines += 1;
            }
            self.scanned = end + 1;
            self.line_start = end + 1;
        }
        let out = self.pending.split_to(complete).freeze();
        self.scanned -= complete;
        self.line_start -= complete;
        Ok(out)
    }

    fn end_event(&mut self) -> Result<(), &'static str> {
        if self.data_lines == 0 {
            return Ok(());
        }
        self.events += 1;
        let data = std::mem::take(&mut self.data);
        self.data_lines = 0;
        if self.done {
            return Ok(());
        }
        if data == b"[DONE]" {
            self.done = true;
            return Ok(());
        }
        let probe: Probe = serde_json::from_slice(&data).map_err(|_| "a malformed event")?;
        if probe.error.is_some() {
            self.upstream_error = true;
        }
        if let Some(u) = probe.usage {
            self.usage = Some(u.usage());
        }
        self.data = data;
        self.data.clear();
        Ok(())
    }

    /// Whether a partial event is left over.
    pub fn has_partial(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// How a relayed stream ended.
#[derive(Debug, Default)]
pub struct StreamEnd {
    pub usage: Option<Usage>,
    /// Why it ended with an error event, if it did.
    pub error: Option<String>,
    /// The client went away.
    pub client_gone: bool,
}

fn stream_error(reason: &str) -> ApiError {
    ApiError::upstream(
        502,
        "stream_interrupted",
        format!("The upstream stream was interrupted: {reason}. The response is incomplete."),
    )
}

/// What the upstream sends and the client reads.
#[derive(Debug, Clone, Copy)]
pub enum Relay<'a> {
    /// OpenAI chunks, relayed as they are.
    OpenAi,
    /// OpenAI chunks, relayed as Anthropic events to a Messages client (the model named).
    ToAnthropic(&'a str),
    /// Anthropic events relayed as they are to a Messages client, checked through their
    /// OpenAI translation.
    Anthropic,
    /// OpenAI chunks, relayed as Responses events to a Responses client (the model named).
    ToResponses(&'a std::sync::Arc<crate::api::responses::Turn>, &'a str),
    /// Responses events relayed as they are from a target that speaks the Responses API
    /// (`provider/model` named), checked as they pass.
    Responses(
        &'a std::sync::Arc<crate::api::responses::Turn>,
        &'a str,
        &'a str,
    ),
}

impl<'a> Relay<'a> {
    /// The Responses request relayed, whose kept answer is shared before it is sent on.
    fn turn(&self) -> Option<&'a std::sync::Arc<crate::api::responses::Turn>> {
        match *self {
            Self::ToResponses(turn, _) | Self::Responses(turn, _, _) => Some(turn),
            _ => None,
        }
    }

    /// How a stream reaches a client of `client`'s API: as received when the upstream
    /// spoke it (`native`), else translated from OpenAI chunks.
    pub fn to(
        client: &'a crate::api::client::ClientApi,
        native: bool,
        (provider, model): (&'a str, &'a str),
    ) -> Self {
        use crate::api::client::ClientApi;
        match (client, native) {
            (ClientApi::AnthropicMessages, true) => Self::Anthropic,
            (ClientApi::AnthropicMessages, false) => Self::ToAnthropic(model),
            (ClientApi::Responses(turn), true) => Self::Responses(turn, provider, model),
            (ClientApi::Responses(turn), false) => Self::ToResponses(turn, model),
            (ClientApi::OpenAi, _) => Self::OpenAi,
        }
    }
}

/// Turns the upstream's checked OpenAI chunks into the client's events.
enum Translator {
    Anthropic(crate::translate::anthropic_openai::Stream),
    Responses(crate::api::responses::Events),
}

impl Translator {
    fn push(&mut self, b: &[u8]) -> Vec<u8> {
        match self {
            Self::Anthropic(t) => t.push(b),
            Self::Responses(t) => t.push(b),
        }
    }
}

/// Reads events relayed untranslated as the OpenAI chunks the scanner checks.
enum Checker {
    Anthropic(crate::translate::openai_anthropic::Stream),
    Responses(crate::api::responses::NativeEvents),
}

impl Checker {
    fn push(&mut self, b: &[u8]) -> Vec<u8> {
        match self {
            Self::Anthropic(c) => c.push(b),
            Self::Responses(c) => c.push(b),
        }
    }
}

/// Relays `source` (already committed with `first` as its first chunk) until its end.
pub async fn relay(
    session: &mut Session,
    mut source: Box<dyn ResponseSource>,
    first: Bytes,
    deadline: Option<Instant>,
    mode: Relay<'_>,
) -> StreamEnd {
    use crate::translate::{ClientOptions, anthropic_openai, openai_anthropic};
    // An Anthropic (Responses) client gets the checked OpenAI events as Anthropic
    // (Responses) events.
    let mut to_client = match mode {
        Relay::ToAnthropic(model) => {
            Some(Translator::Anthropic(anthropic_openai::Stream::new(model)))
        }
        Relay::ToResponses(turn, model) => Some(Translator::Responses(
            crate::api::responses::Events::new(turn, model),
        )),
        _ => None,
    };
    // Events passed through are checked (and their usage read) as OpenAI chunks.
    let mut checker = match mode {
        Relay::Anthropic => Some(Checker::Anthropic(openai_anthropic::Stream::new(
            ClientOptions {
                include_usage: true,
                stream: true,
                ..ClientOptions::default()
            },
        ))),
        Relay::Responses(turn, provider, model) => Some(Checker::Responses(
            crate::api::responses::NativeEvents::new(turn, format!("{provider}/{model}")),
        )),
        _ => None,
    };
    let mut sse = SseScanner::default();
    let mut end = StreamEnd::default();
    let mut next = Some(Ok(Some(first)));
    let failure = loop {
        let chunk = match next.take() {
            Some(c) => c,
            None => match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), source.next_chunk())
                    .await
                    .unwrap_or(Err(crate::providers::AttemptError::Timeout(
                        "(total deadline) while streaming",
                    ))),
                None => source.next_chunk().await,
            },
        };
        match chunk {
            Ok(Some(bytes)) => match sse.push(&match checker.as_mut() {
                Some(c) => Bytes::from(c.push(&bytes)),
                None => bytes.clone(),
            }) {
                Ok(out) if out.is_empty() && checker.is_none() => {}
                Ok(out) => {
                    let out = match (to_client.as_mut(), checker.is_some()) {
                        (_, true) => bytes,
                        (Some(t), false) => Bytes::from(t.push(&out)),
                        (None, false) => out,
                    };
                    if let Some(turn) = mode.turn() {
                        turn.share().await;
                    }
                    if session.write_response_body(Some(out), false).await.is_err() {
                        end.client_gone = true;
                        break None;
                    }
                }
                Err(why) => break Some(why.to_owned()),
            },
            Ok(None) if sse.done || (sse.upstream_error && !sse.has_partial()) => {
                let _ = session.write_response_body(None, true).await;
                break None;
            }
            Ok(None) => break Some("the upstream closed it before [DONE]".to_owned()),
            Err(e) => break Some(e.to_string()),
        }
    };
    end.usage = sse.usage;
    if sse.upstream_error && failure.is_none() {
        end.error = Some("the upstream sent an error event".into());
    }
    if let Some(reason) = failure {
        let message = stream_error(&reason).message;
        let event = match (mode, to_client.as_mut(), checker.as_mut()) {
            (_, Some(Translator::Responses(t)), _) => Bytes::from(t.failed(&message)),
            (_, _, Some(Checker::Responses(c))) => Bytes::from(c.failed(&message)),
            // After raw events, a blank line first ends any event cut in the middle.
            (Relay::ToAnthropic(_) | Relay::Anthropic, _, _) => {
                let mut e = if matches!(mode, Relay::Anthropic) {
                    b"\n\n".to_vec()
                } else {
                    Vec::new()
                };
                e.extend(anthropic_openai::Stream::error_event(&message));
                Bytes::from(e)
            }
            _ => stream_error(&reason).sse_event(),
        };
        if session
            .write_response_body(Some(event), true)
            .await
            .is_err()
        {
            end.client_gone = true;
        }
        end.error = Some(reason);
    }
    source.finish().await;
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_whole_events_only() {
        let mut s = SseScanner::default();
        assert_eq!(
            s.push(b"data: {\"a\":1}\n\ndata: {\"b\"").expect("ok"),
            "data: {\"a\":1}\n\n"
        );
        assert_eq!(
            s.push(b":2}\r\n\r\n").expect("ok"),
            "data: {\"b\":2}\r\n\r\n"
        );
        assert!(!s.done);
        let usage =
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n";
        s.push(usage).expect("ok");
        assert_eq!(
            s.usage,
            Some(Usage {
                input: 3,
                output: 4,
                cached: 0
            })
        );
        assert_eq!(s.push(b"data: [DONE]\n\n").expect("ok"), "data: [DONE]\n\n");
        assert!(s.done && !s.has_partial());
    }

    #[test]
    fn malformed_and_partial() {
        let mut s = SseScanner::default();
        assert!(
            s.push(b"data: {\"choices\":[{\"delta\":{\"content\":\n\n")
                .is_err()
        );
        let mut s = SseScanner::default();
        s.push(b": comment\n\ndata: {\"x\"").expect("ok");
        assert!(s.has_partial());
        let mut s = SseScanner::default();
        s.push(b"data: {\"error\":{\"message\":\"m\"}}\n\n")
            .expect("ok");
        assert!(s.upstream_error);
    }
}
