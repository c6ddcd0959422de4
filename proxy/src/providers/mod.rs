//! Provider adapters: how one attempt against one target is made. Each provider kind sits
//! behind [`ProviderAdapter`] and answers with a [`ResponseSource`] the router relays.

pub mod anthropic;
pub mod gemini;
pub mod mock;
pub mod openai;
pub mod translated;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use switchyard_dsl::ir::{Provider, ProviderKind};

use crate::api::Endpoint;
use crate::config::CredentialState;
use crate::upstream::{HttpResponse, TransportError, Upstream};

/// Why an attempt produced no usable response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttemptError {
    /// No connection, or it was reset/closed before a response header arrived.
    #[error("connection failed: {0}")]
    Connect(String),
    /// A deadline passed before the response (or its first token) arrived.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The response broke off or was malformed.
    #[error("bad response: {0}")]
    Protocol(String),
    /// The provider cannot be called at all (missing key, unsupported kind, bad URL).
    #[error("not callable: {0}")]
    Unavailable(String),
}

/// One attempt's request, already rewritten for the target.
#[derive(Debug)]
pub struct AttemptRequest<'a> {
    pub endpoint: Endpoint,
    pub provider: &'a Provider,
    pub credential: Option<&'a CredentialState>,
    /// The upstream model name.
    pub model: &'a str,
    pub body: Bytes,
    /// The client's own request when its API is not OpenAI's chat: an Anthropic Messages body,
    /// which the Anthropic adapter sends as is (model replaced, `anthropic-beta` kept)
    /// instead of translating, or a Responses body, which the OpenAI adapter sends as is to
    /// targets that speak the Responses API.
    pub native: Option<crate::api::anthropic::Native>,
    pub stream: bool,
    /// `traceparent` (and `tracestate`) naming the attempt's span, when the request is traced.
    pub trace_headers: Option<crate::telemetry::propagate::Outgoing>,
    /// Connect deadline (TCP + TLS).
    pub connect_timeout: Duration,
    /// Longest silence while reading, per read.
    pub read_timeout: Duration,
}

/// Adds the attempt's `traceparent` (and `tracestate`) to a provider request.
pub(crate) fn add_trace_headers(
    h: &mut pingora::http::RequestHeader,
    req: &AttemptRequest<'_>,
) -> Result<(), AttemptError> {
    let Some(t) = &req.trace_headers else {
        return Ok(());
    };
    let internal = |_| AttemptError::Unavailable("cannot build the upstream request".into());
    if let Some(tp) = &t.traceparent {
        h.insert_header("traceparent", tp.as_str())
            .map_err(internal)?;
    }
    if let Some(ts) = &t.tracestate {
        h.insert_header("tracestate", ts.as_str())
            .map_err(internal)?;
    }
    Ok(())
}

/// A response being received from a provider.
#[async_trait]
pub trait ResponseSource: Send {
    fn status(&self) -> u16;
    /// A response header by lower-case name.
    fn header(&self, name: &str) -> Option<&str>;
    /// Whether a successful body is already in the client's API rather than OpenAI's (an
    /// Anthropic answer to an Anthropic client), to be relayed without translation.
    fn passthrough(&self) -> bool {
        false
    }
    /// The next piece of the body; `None` at its proper end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, AttemptError>;
    /// Done with the response: return the connection to the pool when the body was read to
    /// its end, close it otherwise.
    async fn finish(self: Box<Self>);
}

impl From<TransportError> for AttemptError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Connect(m) => Self::Connect(m),
            TransportError::Timeout(m) => Self::Timeout(m),
            TransportError::Protocol(m) => Self::Protocol(m),
        }
    }
}

#[async_trait]
impl ResponseSource for HttpResponse {
    fn status(&self) -> u16 {
        HttpResponse::status(self)
    }

    fn header(&self, name: &str) -> Option<&str> {
        HttpResponse::header(self, name)
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, AttemptError> {
        Ok(HttpResponse::next_chunk(self).await?)
    }

    async fn finish(self: Box<Self>) {
        HttpResponse::finish(*self).await;
    }
}

/// A provider kind's way of making an attempt.
#[async_trait]
pub trait ProviderAdapter: Send + Sync {
    async fn open(&self, req: &AttemptRequest<'_>)
    -> Result<Box<dyn ResponseSource>, AttemptError>;
}

/// Every adapter, by provider kind.
pub struct Providers {
    /// What chat-only targets do with Responses built-in tools.
    pub responses_unsupported_tools: crate::responses_store::UnsupportedTools,
    openai: openai::OpenAi,
    anthropic: anthropic::Anthropic,
    gemini: gemini::Gemini,
    mock: mock::Mock,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Providers")
    }
}

impl Providers {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self {
            responses_unsupported_tools: crate::responses_store::UnsupportedTools::default(),
            openai: openai::OpenAi::new(Arc::clone(&upstream)),
            anthropic: anthropic::Anthropic::new(Arc::clone(&upstream)),
            gemini: gemini::Gemini::new(upstream),
            mock: mock::Mock::default(),
        }
    }

    /// The adapter that reaches responses kept by providers speaking the Responses API.
    pub fn openai(&self) -> &openai::OpenAi {
        &self.openai
    }

    /// The adapter for `kind`.
    pub fn adapter(&self, kind: ProviderKind) -> Result<&dyn ProviderAdapter, AttemptError> {
        match kind {
            ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::AzureOpenai => {
                Ok(&self.openai)
            }
            ProviderKind::Mock => Ok(&self.mock),
            ProviderKind::Anthropic => Ok(&self.anthropic),
            ProviderKind::Gemini => Ok(&self.gemini),
        }
    }
}
