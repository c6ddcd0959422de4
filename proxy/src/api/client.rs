//! The API a client spoke, chosen once from the request path. What the client gets back —
//! errors, whole answers, relayed provider errors, streams, cache replays — takes its shape
//! from here, so no other code asks which API that was.

use std::sync::Arc;

use bytes::Bytes;

use super::{ApiError, anthropic, responses};

/// The client's API.
#[derive(Debug, Clone, Default)]
pub enum ClientApi {
    /// OpenAI's: chat completions, embeddings, models (and anything unknown: OpenAI-shaped
    /// errors are the gateway's default).
    #[default]
    OpenAi,
    /// Anthropic Messages (`/v1/messages`): routed as its OpenAI translation, answered in
    /// Anthropic's shapes.
    AnthropicMessages,
    /// OpenAI Responses (`/v1/responses`): routed as its chat translation, answered in the
    /// Responses shapes; the turn carries the response id and what the answer echoes.
    Responses(Arc<responses::Turn>),
}

impl PartialEq for ClientApi {
    /// Same API (two Responses requests are of one API whatever their turns).
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

impl ClientApi {
    /// The API a request to `path` speaks.
    pub fn from_path(path: &str) -> Self {
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            Self::AnthropicMessages
        } else {
            Self::OpenAi
        }
    }

    /// A gateway error in the client's shape.
    pub fn error_body(&self, e: &ApiError) -> Bytes {
        match self {
            Self::OpenAi | Self::Responses(_) => e.body(),
            Self::AnthropicMessages => anthropic::error_body(e),
        }
    }

    /// A whole upstream answer for the client: as received when the upstream spoke the
    /// client's API (`native`), else translated from OpenAI's shape (success or error).
    /// `provider` and `model` name the target that answered.
    pub fn whole_answer(
        &self,
        status: u16,
        body: Bytes,
        native: bool,
        (provider, model): (&str, &str),
    ) -> Bytes {
        match self {
            Self::AnthropicMessages if !native => anthropic::response_body(status, &body, model),
            Self::Responses(turn) => {
                responses::whole_answer(turn, status, body, native, &format!("{provider}/{model}"))
            }
            _ => body,
        }
    }

    /// Writes what the answer kept to the shared Responses store (nothing for other APIs):
    /// awaited before the end of an answer reaches the client.
    pub async fn share(&self) {
        if let Self::Responses(turn) = self {
            turn.share().await;
        }
    }

    /// A provider's error response relayed to the client: its body and content type.
    pub fn relayed_error(&self, status: u16, body: Bytes, content_type: String) -> (Bytes, String) {
        match self {
            Self::OpenAi | Self::Responses(_) => (body, content_type),
            Self::AnthropicMessages => (
                anthropic::response_body(status, &body, ""),
                "application/json".into(),
            ),
        }
    }

    /// Whether a stream replayed from the cache must end with a usage chunk whatever the
    /// client asked (Anthropic's `message_delta` and `response.completed` always carry usage).
    pub fn replay_needs_usage(&self) -> bool {
        matches!(self, Self::AnthropicMessages | Self::Responses(_))
    }

    /// OpenAI chunks replayed from the cache, in the client's stream format.
    pub fn replayed_stream(&self, chunks: Bytes, model: &str) -> Bytes {
        match self {
            Self::OpenAi => chunks,
            Self::AnthropicMessages => {
                let mut events = crate::translate::anthropic_openai::Stream::new(model);
                Bytes::from(events.push(&chunks))
            }
            Self::Responses(turn) => {
                let mut events = responses::Events::new(turn, model);
                Bytes::from(events.push(&chunks))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_decides_the_api() {
        assert_eq!(
            ClientApi::from_path("/v1/messages"),
            ClientApi::AnthropicMessages
        );
        assert_eq!(
            ClientApi::from_path("/v1/messages/count_tokens"),
            ClientApi::AnthropicMessages
        );
        assert_eq!(ClientApi::from_path("/v1/messagesX"), ClientApi::OpenAi);
        assert_eq!(
            ClientApi::from_path("/v1/chat/completions"),
            ClientApi::OpenAi
        );
    }

    #[test]
    fn errors_take_the_clients_shape() {
        let e = ApiError::unknown_model("m");
        let openai: serde_json::Value =
            serde_json::from_slice(&ClientApi::OpenAi.error_body(&e)).expect("json");
        assert_eq!(openai["error"]["code"], "model_not_found");
        let anthropic: serde_json::Value =
            serde_json::from_slice(&ClientApi::AnthropicMessages.error_body(&e)).expect("json");
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "not_found_error");
    }
}
