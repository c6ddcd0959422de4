//! What the translating adapters (Anthropic, Gemini) share: where the request goes, its
//! header, and the [`ResponseSource`] that turns the provider's answer, streamed or whole,
//! and its errors into OpenAI's shapes as it is read.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use serde_json::Value;
use switchyard_dsl::ir::{ErrorClass, Provider};

use super::{AttemptError, AttemptRequest, ResponseSource};
use crate::config::CredentialState;
use crate::translate::{ClientOptions, openai_anthropic, openai_error, openai_gemini};
use crate::upstream::{Destination, Upstream};

/// The largest whole (non-streamed) answer translated.
const MAX_WHOLE_BODY: usize = 32 * 1024 * 1024;

/// The destination and path prefix of `provider`'s base URL (or `default`).
pub fn base(provider: &Provider, default: &str) -> Result<(Destination, String), AttemptError> {
    let base = provider.base_url.as_deref().unwrap_or(default);
    let bad =
        || AttemptError::Unavailable(format!("provider `{}`: invalid base URL", provider.name));
    let uri: http::Uri = base.parse().map_err(|_| bad())?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad()),
    };
    let host = uri.host().ok_or_else(bad)?.to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let prefix = uri.path().trim_end_matches('/').to_owned();
    Ok((Destination { host, port, tls }, prefix))
}

/// A POST header with the provider's own auth headers: `auth(key)` gives their names and
/// values.
pub fn request_header(
    req: &AttemptRequest<'_>,
    dest: &Destination,
    path: &str,
    body_len: usize,
    auth: impl Fn(&str) -> Vec<(&'static str, String)>,
    extra: &[(&'static str, &'static str)],
) -> Result<RequestHeader, AttemptError> {
    let internal = |_| AttemptError::Unavailable("cannot build the upstream request".into());
    let mut h = RequestHeader::build("POST", path.as_bytes(), Some(8)).map_err(internal)?;
    let host = if (dest.tls && dest.port == 443) || (!dest.tls && dest.port == 80) {
        dest.host.clone()
    } else {
        format!("{}:{}", dest.host, dest.port)
    };
    h.insert_header("host", host).map_err(internal)?;
    h.insert_header("content-type", "application/json")
        .map_err(internal)?;
    h.insert_header("content-length", body_len.to_string())
        .map_err(internal)?;
    let accept = if req.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    h.insert_header("accept", accept).map_err(internal)?;
    h.insert_header("user-agent", "switchyard-proxy")
        .map_err(internal)?;
    for (k, v) in extra {
        h.insert_header(*k, *v).map_err(internal)?;
    }
    super::add_trace_headers(&mut h, req)?;
    match req.credential {
        Some(CredentialState::Resolved(key)) => {
            for (k, v) in auth(key.expose()) {
                h.insert_header(k, v).map_err(internal)?;
            }
        }
        Some(CredentialState::Missing { reason }) => {
            return Err(AttemptError::Unavailable(format!(
                "credential of provider `{}` unavailable: {reason}",
                req.provider.name
            )));
        }
        Some(CredentialState::NotConfigured) | None => {}
    }
    Ok(h)
}

/// Which protocol the upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Anthropic,
    Gemini,
}

impl Protocol {
    fn classify(self, status: u16, body: &[u8]) -> ErrorClass {
        match self {
            Self::Anthropic => crate::translate::classify::anthropic(status, body),
            Self::Gemini => crate::translate::classify::gemini(status, body),
        }
    }
}

#[derive(Debug)]
enum Streamer {
    Anthropic(openai_anthropic::Stream),
    Gemini(openai_gemini::Stream),
}

impl Streamer {
    fn push(&mut self, b: &[u8]) -> Vec<u8> {
        match self {
            Self::Anthropic(s) => s.push(b),
            Self::Gemini(s) => s.push(b),
        }
    }
    fn finish(&mut self) -> Vec<u8> {
        match self {
            Self::Anthropic(_) => Vec::new(),
            Self::Gemini(s) => s.finish(),
        }
    }
}

/// A response translated into OpenAI's shapes while it is read.
pub struct Translated {
    inner: Option<Box<dyn ResponseSource>>,
    protocol: Protocol,
    opts: ClientOptions,
    status: u16,
    streamer: Option<Streamer>,
    /// A successful body relayed untranslated (see [`ResponseSource::passthrough`]).
    raw: bool,
    /// A whole answer already produced (errors, non-streamed bodies, canned answers).
    whole: Option<Bytes>,
    done: bool,
}

impl std::fmt::Debug for Translated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translated")
            .field("protocol", &self.protocol)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Translated {
    /// Wraps a provider response.
    pub fn new(inner: Box<dyn ResponseSource>, protocol: Protocol, opts: ClientOptions) -> Self {
        let status = inner.status();
        let streamer = ((200..300).contains(&status) && opts.stream).then(|| match protocol {
            Protocol::Anthropic => Streamer::Anthropic(openai_anthropic::Stream::new(opts.clone())),
            Protocol::Gemini => Streamer::Gemini(openai_gemini::Stream::new(opts.clone())),
        });
        Self {
            inner: Some(inner),
            protocol,
            opts,
            status,
            streamer,
            raw: false,
            whole: None,
            done: false,
        }
    }

    /// Wraps the answer to a body the client wrote in the provider's own API: success
    /// passes through untranslated, errors are translated like any other.
    pub fn native(inner: Box<dyn ResponseSource>, protocol: Protocol, opts: ClientOptions) -> Self {
        let mut t = Self::new(inner, protocol, opts);
        if (200..300).contains(&t.status) {
            t.streamer = None;
            t.raw = true;
        }
        t
    }

    /// An answer made without asking the provider (a request it cannot take).
    pub fn canned(protocol: Protocol, status: u16, class: ErrorClass, message: &str) -> Self {
        Self {
            inner: None,
            protocol,
            opts: ClientOptions::default(),
            status,
            streamer: None,
            raw: false,
            whole: Some(Bytes::from(openai_error(class, message).to_string())),
            done: false,
        }
    }

    async fn read_all(&mut self) -> Result<Bytes, AttemptError> {
        let mut buf = BytesMut::new();
        if let Some(inner) = self.inner.as_mut() {
            while let Some(c) = inner.next_chunk().await? {
                buf.extend_from_slice(&c);
                if buf.len() > MAX_WHOLE_BODY {
                    return Err(AttemptError::Protocol(
                        "response larger than the proxy buffers".into(),
                    ));
                }
            }
        }
        Ok(buf.freeze())
    }

    async fn whole_answer(&mut self) -> Result<Bytes, AttemptError> {
        let body = self.read_all().await?;
        if !(200..300).contains(&self.status) {
            let class = self.protocol.classify(self.status, &body);
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let msg = crate::translate::error_message(&v)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("upstream answered {}", self.status));
            return Ok(Bytes::from(openai_error(class, &msg).to_string()));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| AttemptError::Protocol("malformed JSON response".into()))?;
        let out = match self.protocol {
            Protocol::Anthropic => openai_anthropic::response(&v, &self.opts),
            Protocol::Gemini => openai_gemini::response(&v, &self.opts),
        };
        Ok(Bytes::from(out.to_string()))
    }
}

#[async_trait]
impl ResponseSource for Translated {
    fn status(&self) -> u16 {
        // Anthropic's 529 "overloaded" is a 503 to an OpenAI client.
        if self.status == 529 { 503 } else { self.status }
    }

    fn header(&self, name: &str) -> Option<&str> {
        if self.raw {
            return self.inner.as_ref()?.header(name);
        }
        match name {
            "content-type" if self.streamer.is_some() => Some("text/event-stream"),
            "content-type" => Some("application/json"),
            "content-length" | "transfer-encoding" | "content-encoding" => None,
            _ => self.inner.as_ref()?.header(name),
        }
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, AttemptError> {
        if self.done {
            return Ok(None);
        }
        if self.raw {
            return match self.inner.as_mut() {
                Some(inner) => inner.next_chunk().await,
                None => Ok(None),
            };
        }
        if let Some(streamer) = self.streamer.as_mut() {
            let Some(inner) = self.inner.as_mut() else {
                return Ok(None);
            };
            loop {
                match inner.next_chunk().await? {
                    Some(b) => {
                        let out = streamer.push(&b);
                        if !out.is_empty() {
                            return Ok(Some(Bytes::from(out)));
                        }
                    }
                    None => {
                        self.done = true;
                        let out = streamer.finish();
                        return Ok((!out.is_empty()).then(|| Bytes::from(out)));
                    }
                }
            }
        }
        self.done = true;
        let body = match self.whole.take() {
            Some(b) => b,
            None => self.whole_answer().await?,
        };
        Ok(Some(body))
    }

    fn passthrough(&self) -> bool {
        self.raw
    }

    async fn finish(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            inner.finish().await;
        }
    }
}

/// Sends `body` and wraps the answer.
pub async fn send(
    upstream: &Arc<Upstream>,
    req: &AttemptRequest<'_>,
    dest: &Destination,
    header: RequestHeader,
    body: Bytes,
    protocol: Protocol,
    opts: ClientOptions,
) -> Result<Box<dyn ResponseSource>, AttemptError> {
    let response = upstream
        .send(dest, header, body, req.connect_timeout, req.read_timeout)
        .await?;
    let inner = Box::new(response);
    Ok(Box::new(
        if req.native.is_some()
            && req.endpoint == crate::api::Endpoint::Messages
            && protocol == Protocol::Anthropic
        {
            Translated::native(inner, protocol, opts)
        } else {
            Translated::new(inner, protocol, opts)
        },
    ))
}
