//! One keep-alive HTTP/1.1 connection (hyper's low-level client) and one timed request on it.

use std::time::Instant;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What is sent on every request.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    pub authority: String,
    /// The request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The JSON body.
    pub body: Bytes,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl Target {
    /// Parses `http://host:port/path`.
    pub fn parse(url: &str) -> anyhow::Result<(String, String)> {
        let uri: Uri = url.parse()?;
        anyhow::ensure!(
            uri.scheme_str() == Some("http"),
            "only http:// URLs are supported, got `{url}`"
        );
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("`{url}` has no host"))?;
        anyhow::ensure!(authority.port().is_some(), "`{url}` needs a port");
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok((authority.to_string(), path.to_owned()))
    }
}

/// When one request's answer arrived.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The first byte of the body (for a non-stream: the whole body).
    pub first_byte: Instant,
    /// The end of the body.
    pub done: Instant,
}

/// A connection that reconnects on the next request after an error.
#[derive(Debug)]
pub struct Conn {
    target: std::sync::Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// Not connected yet; the first request connects.
    pub fn new(target: std::sync::Arc<Target>) -> Conn {
        Conn {
            target,
            sender: None,
        }
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(&self.target.authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| anyhow::anyhow!("handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Sends one request and reads the whole answer. Errors name their kind (`status 502`,
    /// `connect: ...`, `io: ...`); after one, the next call reconnects.
    pub async fn request(&mut self) -> Result<Timing, String> {
        let result = self.try_request().await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_request(&mut self) -> Result<Timing, String> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => {
                let sender = self.connect().await.map_err(|e| format!("connect: {e}"))?;
                self.sender.insert(sender)
            }
        };
        sender.ready().await.map_err(|e| format!("io: {e}"))?;
        let target = &self.target;
        let mut request = Request::post(target.path.as_str())
            .header("host", target.authority.as_str())
            .header("content-type", "application/json");
        for (name, value) in &target.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(target.body.clone()))
            .map_err(|e| format!("request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("io: {e}"))?;
        let status = response.status();
        let mut body = response.into_body();
        let mut first_byte = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("io: {e}"))?;
            if first_byte.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
                first_byte = Some(Instant::now());
            }
        }
        let done = Instant::now();
        if !status.is_success() {
            return Err(format!("status {}", status.as_u16()));
        }
        Ok(Timing {
            first_byte: first_byte.unwrap_or(done),
            done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls() {
        let (authority, path) =
            Target::parse("http://127.0.0.1:8080/v1/chat/completions").expect("valid");
        assert_eq!(authority, "127.0.0.1:8080");
        assert_eq!(path, "/v1/chat/completions");
        assert!(Target::parse("https://127.0.0.1:1/").is_err());
        assert!(Target::parse("http://127.0.0.1/").is_err());
    }
}
