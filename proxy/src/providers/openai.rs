//! OpenAI and every OpenAI-compatible provider, Azure OpenAI included: the body is already
//! in OpenAI's format, so an attempt is a URL, an auth header and the bytes. A Responses
//! client's own body goes to `/responses` of targets that speak that API.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::RequestHeader;
use switchyard_dsl::ir::{Provider, ProviderKind};

use super::{AttemptError, AttemptRequest, ProviderAdapter, ResponseSource};
use crate::api::Endpoint;
use crate::config::CredentialState;
use crate::upstream::{Destination, HttpResponse, Upstream};

/// The path suffix of the Responses API.
const RESPONSES_SUFFIX: &str = "/responses";

/// OpenAI's public API.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Azure OpenAI `api-version` when the provider names none.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// The adapter for `openai`, `openai-compatible` and `azure-openai`.
#[derive(Debug)]
pub struct OpenAi {
    upstream: Arc<Upstream>,
}

impl OpenAi {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self { upstream }
    }
}

/// Where a request for `model` goes: destination and path-and-query.
pub fn target_url(
    provider: &Provider,
    endpoint_suffix: &str,
    model: &str,
) -> Result<(Destination, String), AttemptError> {
    let base = match (&provider.base_url, provider.kind) {
        (Some(url), _) => url.as_str(),
        (None, ProviderKind::Openai) => OPENAI_BASE_URL,
        (None, kind) => {
            return Err(AttemptError::Unavailable(format!(
                "provider `{}` of kind `{}` has no base URL",
                provider.name,
                kind.as_str()
            )));
        }
    };
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
    let prefix = uri.path().trim_end_matches('/');
    let path = if provider.kind == ProviderKind::AzureOpenai
        && endpoint_suffix.starts_with(RESPONSES_SUFFIX)
    {
        // Azure's Responses API is not per deployment: the body names it.
        let version = provider
            .api_version
            .as_deref()
            .unwrap_or(AZURE_DEFAULT_API_VERSION);
        format!("{prefix}/openai{endpoint_suffix}?api-version={version}")
    } else if provider.kind == ProviderKind::AzureOpenai {
        let version = provider
            .api_version
            .as_deref()
            .unwrap_or(AZURE_DEFAULT_API_VERSION);
        format!("{prefix}/openai/deployments/{model}{endpoint_suffix}?api-version={version}")
    } else {
        format!("{prefix}{endpoint_suffix}")
    };
    Ok((Destination { host, port, tls }, path))
}

fn request_header(
    req: &AttemptRequest<'_>,
    dest: &Destination,
    path: &str,
    body_len: usize,
) -> Result<RequestHeader, AttemptError> {
    let internal = |_| AttemptError::Unavailable("cannot build the upstream request".into());
    let mut h = RequestHeader::build("POST", path.as_bytes(), Some(8)).map_err(internal)?;
    h.insert_header("host", host_header(dest))
        .map_err(internal)?;
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
    authorize(&mut h, req.provider, req.credential)?;
    super::add_trace_headers(&mut h, req)?;
    Ok(h)
}

/// `host` for `dest`: the port only when it is not the scheme's default.
fn host_header(dest: &Destination) -> String {
    if (dest.tls && dest.port == 443) || (!dest.tls && dest.port == 80) {
        dest.host.clone()
    } else {
        format!("{}:{}", dest.host, dest.port)
    }
}

/// The provider's key in the header its API expects (Azure's `api-key`, else a bearer token).
fn authorize(
    h: &mut RequestHeader,
    provider: &Provider,
    credential: Option<&CredentialState>,
) -> Result<(), AttemptError> {
    let internal = |_| AttemptError::Unavailable("cannot build the upstream request".into());
    match credential {
        Some(CredentialState::Resolved(key)) => {
            if provider.kind == ProviderKind::AzureOpenai {
                h.insert_header("api-key", key.expose()).map_err(internal)?;
            } else {
                h.insert_header("authorization", format!("Bearer {}", key.expose()))
                    .map_err(internal)?;
            }
        }
        Some(CredentialState::Missing { reason }) => {
            return Err(AttemptError::Unavailable(format!(
                "credential of provider `{}` unavailable: {reason}",
                provider.name
            )));
        }
        Some(CredentialState::NotConfigured) | None => {}
    }
    Ok(())
}

/// What a client asks of a Responses API answer that its provider keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldRequest {
    /// `GET /responses/{id}`.
    Get,
    /// `DELETE /responses/{id}`.
    Delete,
    /// `POST /responses/{id}/cancel`.
    Cancel,
}

/// The most of a kept response's answer relayed (a whole response object).
const MAX_HELD_BYTES: usize = 16 * 1024 * 1024;

impl OpenAi {
    /// Sends `request` about response `id` to `provider`, which keeps it, and reads the whole
    /// answer: its status and body, relayed to the client as they are.
    pub async fn held_response(
        &self,
        provider: &Provider,
        credential: Option<&CredentialState>,
        request: HeldRequest,
        id: &str,
        timeout: std::time::Duration,
    ) -> Result<(u16, Bytes), AttemptError> {
        let (method, suffix) = match request {
            HeldRequest::Get => ("GET", format!("{RESPONSES_SUFFIX}/{id}")),
            HeldRequest::Delete => ("DELETE", format!("{RESPONSES_SUFFIX}/{id}")),
            HeldRequest::Cancel => ("POST", format!("{RESPONSES_SUFFIX}/{id}/cancel")),
        };
        let (dest, path) = target_url(provider, &suffix, "")?;
        let internal = |_| AttemptError::Unavailable("cannot build the upstream request".into());
        let mut h = RequestHeader::build(method, path.as_bytes(), Some(6)).map_err(internal)?;
        h.insert_header("host", host_header(&dest))
            .map_err(internal)?;
        h.insert_header("accept", "application/json")
            .map_err(internal)?;
        h.insert_header("user-agent", "switchyard-proxy")
            .map_err(internal)?;
        h.insert_header("content-length", "0").map_err(internal)?;
        authorize(&mut h, provider, credential)?;
        let mut response = self
            .upstream
            .send(&dest, h, Bytes::new(), timeout, timeout)
            .await?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.next_chunk().await? {
            if body.len() + chunk.len() > MAX_HELD_BYTES {
                response.finish().await;
                return Err(AttemptError::Unavailable(format!(
                    "provider `{}` answered more than {MAX_HELD_BYTES} bytes",
                    provider.name
                )));
            }
            body.extend_from_slice(&chunk);
        }
        response.finish().await;
        Ok((status, Bytes::from(body)))
    }
}

#[async_trait]
impl ProviderAdapter for OpenAi {
    async fn open(
        &self,
        req: &AttemptRequest<'_>,
    ) -> Result<Box<dyn ResponseSource>, AttemptError> {
        let native = req
            .native
            .as_ref()
            .filter(|_| req.endpoint == Endpoint::Responses)
            .filter(|_| crate::api::responses::native_target(req.provider));
        let (suffix, body) = match native {
            Some(n) => {
                let parsed = crate::api::request::RequestBody::parse(&n.body)
                    .map_err(|e| AttemptError::Unavailable(e.message))?;
                (RESPONSES_SUFFIX, Bytes::from(parsed.rebuild(req.model)))
            }
            None => (req.endpoint.suffix(), req.body.clone()),
        };
        let (dest, path) = target_url(req.provider, suffix, req.model)?;
        let header = request_header(req, &dest, &path, body.len())?;
        let response = self
            .upstream
            .send(&dest, header, body, req.connect_timeout, req.read_timeout)
            .await?;
        Ok(match native {
            Some(_) => Box::new(Native(response)),
            None => Box::new(response),
        })
    }
}

/// A Responses API answer to a Responses client: a success is already in the client's API.
struct Native(HttpResponse);

#[async_trait]
impl ResponseSource for Native {
    fn status(&self) -> u16 {
        self.0.status()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.0.header(name)
    }
    fn passthrough(&self) -> bool {
        (200..300).contains(&self.0.status())
    }
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, AttemptError> {
        Ok(self.0.next_chunk().await?)
    }
    async fn finish(self: Box<Self>) {
        self.0.finish().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(kind: ProviderKind, base: Option<&str>) -> Provider {
        let mut p = Provider::new("p", kind, &[]);
        p.base_url = base.map(str::to_owned);
        p.api_version = Some("2024-06-01".into());
        p
    }

    #[test]
    fn urls() {
        let (d, p) = target_url(
            &provider(ProviderKind::Openai, None),
            "/chat/completions",
            "m",
        )
        .expect("ok");
        assert_eq!(
            (d.host.as_str(), d.port, d.tls),
            ("api.openai.com", 443, true)
        );
        assert_eq!(p, "/v1/chat/completions");
        let az = provider(
            ProviderKind::AzureOpenai,
            Some("https://r.openai.azure.com/"),
        );
        let (_, p) = target_url(&az, "/chat/completions", "dep1").expect("ok");
        assert_eq!(
            p,
            "/openai/deployments/dep1/chat/completions?api-version=2024-06-01"
        );
        let local = provider(
            ProviderKind::OpenaiCompatible,
            Some("http://127.0.0.1:9/v1"),
        );
        let (d, p) = target_url(&local, "/embeddings", "m").expect("ok");
        assert_eq!((d.port, d.tls, p.as_str()), (9, false, "/v1/embeddings"));
        assert!(target_url(&provider(ProviderKind::OpenaiCompatible, None), "/x", "m").is_err());
    }
}
