//! The control channel's server side, exactly as `switchyard_dsl::channel` documents it:
//! `GET /v1/snapshots/stream?have=&pod=` (Server-Sent Events) and `POST /v1/acks`, both behind
//! `Authorization: Bearer <token>`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::Frame;
use switchyard_dsl::channel::{Ack, UsageReport};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::http::{Body, Request, text};
use crate::metrics::Metrics;
use crate::publish::{Pods, Publication, Publisher};
use crate::usage::Usage;

/// The largest ack body accepted.
const MAX_ACK_BYTES: usize = 64 * 1024;

/// What the control channel serves from.
#[derive(Debug)]
pub struct Channel {
    pub token: String,
    pub publisher: Arc<Publisher>,
    pub pods: Arc<Pods>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    /// Interval of `: ping` comments on idle streams (15 s).
    pub ping: Duration,
    /// Budget usage the pods report.
    pub usage: Arc<Usage>,
}

fn authorized(req: &Request, token: &str) -> bool {
    let Some(value) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(given) = value.strip_prefix("Bearer ") else {
        return false;
    };
    // Constant time in the token's length.
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Routes one request.
pub async fn handle(channel: Arc<Channel>, req: Request) -> Response<Body> {
    if !authorized(&req, &channel.token) {
        let mut response = text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/v1/snapshots/stream") => stream(channel, &req),
        (&Method::POST, "/v1/acks") => ack(channel, req).await,
        (&Method::POST, "/v1/usage") => usage(channel, req).await,
        (_, "/v1/snapshots/stream" | "/v1/acks" | "/v1/usage") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn ack(channel: Arc<Channel>, req: Request) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_ACK_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("cannot read body: {e}\n")),
    };
    let ack: Ack = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid ack: {e}\n")),
    };
    tracing::debug!(pod = %ack.pod, version = ack.version, applied = ack.applied, "ack");
    channel.pods.ack(&ack);
    text(StatusCode::NO_CONTENT, "")
}

/// The largest usage report accepted (a pod with many per-key scopes reports many entries).
const MAX_USAGE_BYTES: usize = 4 * 1024 * 1024;

async fn usage(channel: Arc<Channel>, req: Request) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_USAGE_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("cannot read body: {e}\n")),
    };
    let report: UsageReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("invalid usage report: {e}\n"),
            );
        }
    };
    tracing::debug!(pod = %report.pod, entries = report.budgets.len(), "usage report");
    channel.usage.record(report);
    text(StatusCode::NO_CONTENT, "")
}

/// Unregisters the pod's stream when the connection goes away.
struct Connected {
    pod: String,
    pods: Arc<Pods>,
    metrics: Arc<Metrics>,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.pods.disconnected(&self.pod);
        self.metrics
            .connected_pods
            .set(self.pods.connected_count() as i64);
        tracing::info!(pod = %self.pod, "proxy disconnected");
    }
}

struct Stream {
    rx: watch::Receiver<Option<Arc<Publication>>>,
    sent: u64,
    ping: tokio::time::Interval,
    shutdown: CancellationToken,
    greeted: bool,
    _connected: Connected,
}

fn stream(channel: Arc<Channel>, req: &Request) -> Response<Body> {
    let Some(pod) = query(req, "pod").filter(|p| !p.is_empty()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "query parameter `pod` is required\n",
        );
    };
    let have = match query(req, "have").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(v)) => v,
        Some(Err(_)) => {
            return text(StatusCode::BAD_REQUEST, "`have` must be a version number\n");
        }
    };
    match channel.publisher.reissue_above(have) {
        Ok(Some(version)) => {
            tracing::warn!(
                pod,
                have,
                version,
                "pod holds a newer version than the live one; re-issued the live snapshot above it"
            );
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot serialize the snapshot"),
    }
    channel.pods.connected(pod, have);
    channel
        .metrics
        .connected_pods
        .set(channel.pods.connected_count() as i64);
    tracing::info!(pod, have, "proxy connected");
    let start = tokio::time::Instant::now() + channel.ping;
    let state = Stream {
        rx: channel.publisher.subscribe(),
        sent: have,
        ping: tokio::time::interval_at(start, channel.ping),
        shutdown: channel.shutdown.clone(),
        greeted: false,
        _connected: Connected {
            pod: pod.to_string(),
            pods: channel.pods.clone(),
            metrics: channel.metrics.clone(),
        },
    };
    let events = futures::stream::unfold(state, |mut s| async move {
        let frame = next_event(&mut s).await?;
        Some((Ok::<_, Infallible>(Frame::data(frame)), s))
    });
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(events)));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    response
}

/// The next bytes of the stream: a newer snapshot, a ping, or `None` to end it.
async fn next_event(s: &mut Stream) -> Option<Bytes> {
    if !s.greeted {
        s.greeted = true;
        return Some(Bytes::from_static(b": connected\n\n"));
    }
    loop {
        let current = s.rx.borrow_and_update().clone();
        if let Some(p) = current
            && p.version > s.sent
        {
            s.sent = p.version;
            return Some(Bytes::from(format!(
                "event: snapshot\ndata: {}\n\n",
                p.data
            )));
        }
        tokio::select! {
            changed = s.rx.changed() => changed.ok()?,
            _ = s.ping.tick() => return Some(Bytes::from_static(b": ping\n\n")),
            () = s.shutdown.cancelled() => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::compile::Outcome;

    const TOKEN: &str = "t0ken";

    async fn server() -> (SocketAddr, Arc<Channel>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let channel = Arc::new(Channel {
            token: TOKEN.into(),
            publisher: Arc::new(Publisher::default()),
            pods: Arc::new(Pods::default()),
            metrics: Arc::new(Metrics::new()),
            shutdown: CancellationToken::new(),
            ping: Duration::from_millis(100),
            usage: Arc::new(Usage::default()),
        });
        let c = channel.clone();
        tokio::spawn(crate::http::serve(
            listener,
            move |req| handle(c.clone(), req),
            channel.shutdown.clone(),
            None,
        ));
        (addr, channel)
    }

    async fn exchange(addr: SocketAddr, head: &str, token: Option<&str>, body: &str) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let req = format!(
            "{head} HTTP/1.0\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    fn publish(channel: &Channel, hash: &str) -> u64 {
        let snapshot: switchyard_dsl::Snapshot = serde_json::from_value(serde_json::json!({
            "ir_version": 1, "hash": hash, "providers": [], "targets": [], "routes": [], "budgets": []
        }))
        .expect("snapshot");
        let outcome = Outcome {
            snapshot: Some(snapshot),
            ..Outcome::default()
        };
        channel
            .publisher
            .publish(&outcome)
            .expect("json")
            .expect("new version")
    }

    #[tokio::test]
    async fn refuses_requests_without_the_token() {
        let (addr, _) = server().await;
        let r = exchange(addr, "GET /v1/snapshots/stream?pod=a", None, "").await;
        assert!(r.starts_with("HTTP/1.0 401"), "{r}");
        assert!(r.to_lowercase().contains("www-authenticate: bearer"), "{r}");
        let r = exchange(addr, "POST /v1/acks", Some("wrong"), "{}").await;
        assert!(r.starts_with("HTTP/1.0 401"), "{r}");
    }

    #[tokio::test]
    async fn usage_reports_are_recorded() {
        let (addr, channel) = server().await;
        let report = serde_json::json!({"pod": "a", "version": 3, "budgets": [{
            "name": "b", "origin": "ns/o", "scope": "global", "metric": "requests",
            "window": "day", "spent": 2, "limit": 5, "remaining": 3, "reset_at": 99,
            "state": "ok", "source": "redis"
        }]})
        .to_string();
        let r = exchange(addr, "POST /v1/usage", Some("wrong"), &report).await;
        assert!(r.starts_with("HTTP/1.0 401"), "{r}");
        assert!(channel.usage.fresh().is_empty());
        let r = exchange(addr, "POST /v1/usage", Some(TOKEN), "{\"pod\": 1}").await;
        assert!(r.starts_with("HTTP/1.0 400"), "{r}");
        let r = exchange(addr, "POST /v1/usage", Some(TOKEN), &report).await;
        assert!(r.starts_with("HTTP/1.0 204"), "{r}");
        let fresh = channel.usage.fresh();
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].budgets[0].spent, 2);
        let r = exchange(addr, "GET /v1/usage", Some(TOKEN), "").await;
        assert!(r.starts_with("HTTP/1.0 405"), "{r}");
    }

    #[tokio::test]
    async fn streams_newer_versions_pings_and_counts_acks() {
        let (addr, channel) = server().await;
        let v1 = publish(&channel, "h1");
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!(
            "GET /v1/snapshots/stream?have=0&pod=a HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut lines = BufReader::new(s).lines();
        let mut next_data = async || loop {
            let line = lines.next_line().await.expect("read").expect("open");
            if let Some(data) = line.strip_prefix("data: ") {
                return serde_json::from_str::<serde_json::Value>(data).expect("json");
            }
        };
        let first = next_data().await;
        assert_eq!(
            (
                first["version"].as_u64(),
                first["snapshot"]["hash"].as_str()
            ),
            (Some(v1), Some("h1"))
        );
        assert_eq!(channel.pods.rollout(v1).ratio(), "0/1");
        let v2 = publish(&channel, "h2");
        let second = next_data().await;
        assert_eq!(second["version"].as_u64(), Some(v2));

        let ack = serde_json::json!({"pod": "a", "version": v2, "hash": "h2", "applied": true, "error": null});
        let r = exchange(addr, "POST /v1/acks", Some(TOKEN), &ack.to_string()).await;
        assert!(r.starts_with("HTTP/1.0 204"), "{r}");
        let r = exchange(addr, "POST /v1/acks", Some(TOKEN), "not json").await;
        assert!(r.starts_with("HTTP/1.0 400"), "{r}");
        assert_eq!(channel.pods.rollout(v2).ratio(), "1/1");
    }

    #[tokio::test]
    async fn a_reconnecting_pod_gets_only_what_is_newer() {
        let (addr, channel) = server().await;
        let v1 = publish(&channel, "h1");
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!(
            "GET /v1/snapshots/stream?have={v1}&pod=b HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut lines = BufReader::new(s).lines();
        // Only comments (`: connected`, `: ping`) until something newer is published.
        let mut pings = 0;
        while pings < 2 {
            let line = lines.next_line().await.expect("read").expect("open");
            assert!(
                !line.starts_with("data:"),
                "sent a version the pod holds: {line}"
            );
            if line == ": ping" {
                pings += 1;
            }
        }
        assert_eq!(
            channel.pods.rollout(v1).ratio(),
            "1/1",
            "have counts as running"
        );
    }

    /// A CA and a serving certificate for `names`: `(ca.crt, tls.crt, tls.key)` as PEM.
    fn test_pki(names: &[&str]) -> (String, String, String) {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "switchyard test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().expect("key"))
            .expect("CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut leaf =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = leaf.signed_by(&key, &ca).expect("leaf");
        (ca.pem(), leaf.pem(), key.serialize_pem())
    }

    #[tokio::test]
    async fn serves_over_tls_to_clients_that_trust_the_ca_only() {
        use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
        use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, crt, key) = test_pki(&["operator.sy.svc"]);
        std::fs::write(dir.path().join("tls.crt"), crt).expect("write");
        std::fs::write(dir.path().join("tls.key"), key).expect("write");
        let acceptor = crate::tls::CertStore::load(dir.path())
            .expect("certificate")
            .acceptor()
            .expect("acceptor");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        tokio::spawn(crate::http::serve(
            listener,
            |_req| async { text(StatusCode::UNAUTHORIZED, "no\n") },
            shutdown.clone(),
            Some(acceptor),
        ));

        let client = |ca_pem: &str| {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                roots.add(cert.expect("pem")).expect("root");
            }
            let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        };
        let name = ServerName::try_from("operator.sy.svc").expect("name");
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut tls = client(&ca)
            .connect(name.clone(), tcp)
            .await
            .expect("handshake with the right CA");
        tls.write_all(b"GET /v1/acks HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut out = String::new();
        tls.read_to_string(&mut out).await.expect("read");
        assert!(out.starts_with("HTTP/1.0 401"), "{out}");

        let (other_ca, _, _) = test_pki(&["operator.sy.svc"]);
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let refused = client(&other_ca).connect(name, tcp).await;
        assert!(
            refused.is_err(),
            "a certificate from another CA was accepted"
        );
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let wrong_name = ServerName::try_from("evil.example").expect("name");
        assert!(client(&ca).connect(wrong_name, tcp).await.is_err());

        // Plain HTTP on the TLS port gets no HTTP answer.
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /v1/acks HTTP/1.0\r\n\r\n")
            .await
            .expect("write");
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        assert!(!raw.starts_with(b"HTTP/"), "{raw:?}");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_stream_needs_the_pod_name() {
        let (addr, _) = server().await;
        let r = exchange(addr, "GET /v1/snapshots/stream?have=0", Some(TOKEN), "").await;
        assert!(r.starts_with("HTTP/1.0 400"), "{r}");
        let r = exchange(
            addr,
            "GET /v1/snapshots/stream?pod=a&have=x",
            Some(TOKEN),
            "",
        )
        .await;
        assert!(r.starts_with("HTTP/1.0 400"), "{r}");
    }
}
