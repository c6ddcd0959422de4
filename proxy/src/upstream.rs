//! HTTP exchanges with providers over pingora's pooled connector (rustls, system roots):
//! resolve and cache the address, write the request, read the response header, and hand the
//! body out chunk by chunk; the connection goes back to the pool only when fully read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error as PError, ErrorType};

/// What can go wrong on the wire, before or during a response. The providers layer maps it
/// into its own attempt errors; this layer knows nothing above HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection, or it was reset/closed before a response header arrived.
    #[error("connection failed: {0}")]
    Connect(String),
    /// A socket deadline passed.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The response broke off.
    #[error("bad response: {0}")]
    Protocol(String),
}

/// How long a resolved address is reused.
const DNS_TTL: Duration = Duration::from_secs(30);
/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Where and how to send one request.
#[derive(Debug, Clone)]
pub struct Destination {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// The shared connector and address cache.
pub struct Upstream {
    connector: Connector,
    dns: RwLock<HashMap<(String, u16), (SocketAddr, Instant)>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upstream")
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Self::new()
    }
}

impl Upstream {
    pub fn new() -> Self {
        Self {
            connector: Connector::new(None),
            dns: RwLock::new(HashMap::new()),
        }
    }

    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, TransportError> {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_owned(), port);
        if let Some((addr, at)) = self.dns.read().ok().and_then(|m| m.get(&key).copied())
            && at.elapsed() < DNS_TTL
        {
            return Ok(addr);
        }
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| TransportError::Connect(format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| TransportError::Connect(format!("no address for {host}")))?;
        if let Ok(mut m) = self.dns.write() {
            m.insert(key, (addr, Instant::now()));
        }
        Ok(addr)
    }

    /// Sends `header` + `body` and reads the response header.
    pub async fn send(
        self: &Arc<Self>,
        dest: &Destination,
        header: RequestHeader,
        body: Bytes,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<HttpResponse, TransportError> {
        let addr = self.resolve(&dest.host, dest.port).await?;
        let mut peer = HttpPeer::new(addr, dest.tls, dest.host.clone());
        peer.options.connection_timeout = Some(connect_timeout);
        peer.options.total_connection_timeout = Some(connect_timeout);
        peer.options.read_timeout = Some(read_timeout);
        peer.options.write_timeout = Some(read_timeout);
        peer.options.idle_timeout = Some(POOL_IDLE);
        // A pooled connection may have been closed by the server meanwhile: one more try
        // on another (or a fresh) connection when a reused one fails before any response.
        let mut tries = 0;
        loop {
            tries += 1;
            let (mut session, reused) = self
                .connector
                .get_http_session(&peer)
                .await
                .map_err(|e| connect_error(&e))?;
            match exchange(&mut session, header.clone(), body.clone()).await {
                Ok(()) => {
                    return Ok(HttpResponse {
                        upstream: Arc::clone(self),
                        peer,
                        session: Some(session),
                    });
                }
                Err(e @ TransportError::Connect(_)) if reused && tries < 2 => {
                    tracing::debug!(error = %e, "reused upstream connection failed; retrying");
                    session.shutdown().await;
                }
                Err(e) => {
                    session.shutdown().await;
                    return Err(e);
                }
            }
        }
    }
}

async fn exchange(
    session: &mut HttpSession,
    header: RequestHeader,
    body: Bytes,
) -> Result<(), TransportError> {
    session
        .write_request_header(Box::new(header))
        .await
        .map_err(|e| connect_error(&e))?;
    session
        .write_request_body(body, true)
        .await
        .map_err(|e| connect_error(&e))?;
    session
        .finish_request_body()
        .await
        .map_err(|e| connect_error(&e))?;
    session
        .read_response_header()
        .await
        .map_err(|e| connect_error(&e))
}

/// Errors before a response header: connect failures, resets, or a read timeout.
fn connect_error(e: &PError) -> TransportError {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout => {
            TransportError::Timeout("connecting")
        }
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            TransportError::Timeout("waiting for the response")
        }
        t => TransportError::Connect(t.as_str().to_owned()),
    }
}

/// A response from an HTTP provider.
pub struct HttpResponse {
    upstream: Arc<Upstream>,
    peer: HttpPeer,
    session: Option<HttpSession>,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpResponse")
    }
}

impl HttpResponse {
    /// The response status (0 before a header).
    pub fn status(&self) -> u16 {
        self.session
            .as_ref()
            .and_then(|s| s.response_header())
            .map_or(0, |h| h.status.as_u16())
    }

    /// A response header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.session
            .as_ref()?
            .response_header()?
            .headers
            .get(name)?
            .to_str()
            .ok()
    }

    /// The next piece of the body; `None` at its proper end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(None);
        };
        session
            .read_response_body()
            .await
            .map_err(|e| match e.etype() {
                ErrorType::ReadTimedout => {
                    TransportError::Timeout("waiting for more of the response")
                }
                t => TransportError::Protocol(format!("response broke off: {}", t.as_str())),
            })
    }

    /// Returns the connection to the pool when the body was read to its end, closes it
    /// otherwise.
    pub async fn finish(mut self) {
        if let Some(mut session) = self.session.take() {
            if session.response_done() {
                self.upstream
                    .connector
                    .release_http_session(session, &self.peer, Some(POOL_IDLE))
                    .await;
            } else {
                session.shutdown().await;
            }
        }
    }
}
