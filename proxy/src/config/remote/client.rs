//! The control-channel connection loop: open the snapshot stream, apply what arrives, ack it,
//! reconnect with capped exponential backoff sending the version held.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use switchyard_dsl::channel::{Ack, SnapshotEnvelope, UsageReport};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::tls::ClientTls;
use super::{IDLE_TIMEOUT, MAX_BACKOFF, MIN_BACKOFF, RemoteSettings, envelope_config, persist};
use crate::config::ConfigHandle;
use crate::metrics::Metrics;
use crate::translate::sse::Parser;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The operator's address, from `https://host:port[/prefix]` (or `http://` when plain
/// HTTP is explicitly allowed), and how to verify it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`, for connecting and for the `Host` header.
    authority: String,
    /// Path prefix without a trailing `/` (usually empty).
    prefix: String,
    /// `None`: plain HTTP (only with `--control-plane-insecure`).
    tls: Option<Arc<ClientTls>>,
}

impl Target {
    /// The target of `settings.url`. An `https://` URL needs `settings.ca_file`; an `http://`
    /// one is refused unless `settings.allow_plaintext`.
    pub fn new(settings: &RemoteSettings) -> Result<Self, String> {
        let url = settings.url.as_str();
        let (secure, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!(
                "control plane URL `{url}` must start with `https://` (or `http://` with --control-plane-insecure)"
            ));
        };
        if !secure && !settings.allow_plaintext {
            return Err(format!(
                "control plane URL `{url}` is plain HTTP, which would carry provider keys in clear: \
                 use `https://` with --control-ca-file (--control-plane-insecure allows `http://` for local testing)"
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("control plane URL `{url}` has no usable host"));
        }
        let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']')
        });
        let host = if has_port {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        } else {
            authority
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("control plane URL `{url}` has no usable host"));
        }
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:{}", if secure { 443 } else { 80 })
        };
        let tls = if secure {
            let ca_file = settings.ca_file.clone().ok_or_else(|| {
                format!("control plane URL `{url}` is https: --control-ca-file is required to verify the operator")
            })?;
            let name = settings.tls_server_name.as_deref().unwrap_or(host);
            Some(Arc::new(ClientTls::new(ca_file, name)?))
        } else {
            None
        };
        Ok(Self {
            authority,
            prefix: path.trim_end_matches('/').to_string(),
            tls,
        })
    }
}

/// Runs forever: one stream session after another.
pub async fn run(
    target: Target,
    settings: RemoteSettings,
    handle: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let have = handle.current().version;
        let mut session = Session {
            target: &target,
            settings: &settings,
            handle: &handle,
            metrics: &metrics,
            telemetry: telemetry.as_deref(),
            connected: false,
        };
        let result = session.stream(have).await;
        if session.connected {
            backoff = MIN_BACKOFF;
        }
        match result {
            Ok(()) => tracing::info!(
                url = %settings.url,
                "control channel closed by the operator; reconnecting"
            ),
            Err(e) => tracing::warn!(
                url = %settings.url,
                serving_version = handle.current().version,
                retry_in_ms = backoff.as_millis() as u64,
                error = %e,
                "control channel unavailable; serving the current snapshot"
            ),
        }
        // Jitter keeps a fleet of pods from reconnecting in lockstep.
        let jitter = Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 4));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

struct Session<'a> {
    target: &'a Target,
    settings: &'a RemoteSettings,
    handle: &'a Arc<ConfigHandle>,
    metrics: &'a Metrics,
    telemetry: Option<&'a crate::telemetry::Telemetry>,
    /// The operator answered 200 (resets the backoff).
    connected: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Session<'_> {
    async fn stream(&mut self, have: u64) -> Result<(), BoxError> {
        let path = format!(
            "{}/v1/snapshots/stream?have={have}&pod={}",
            self.target.prefix,
            encode(&self.settings.pod)
        );
        let request = self
            .request("GET", &path)?
            .header(header::ACCEPT, "text/event-stream")
            .body(Empty::<Bytes>::new())?;
        let mut sender = connect(self.target).await?;
        let response = tokio::time::timeout(IDLE_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| "no response to the stream request")??;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(format!("the operator answered {status} to the stream request").into());
        }
        self.connected = true;
        tracing::info!(url = %self.settings.url, have, "control channel connected");
        let mut body = response.into_body();
        let mut events = Parser::default();
        loop {
            let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
                Err(_) => return Err("no event or ping within the idle timeout".into()),
                Ok(None) => return Ok(()),
                Ok(Some(frame)) => frame?,
            };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            for event in events.push(&chunk) {
                if event.event.as_deref() == Some("snapshot") {
                    self.on_snapshot(&event.data).await;
                }
            }
            if events.overflowed() {
                return Err("an event-stream line is too long".into());
            }
        }
    }

    async fn on_snapshot(&self, data: &str) {
        let env: SnapshotEnvelope = match serde_json::from_str(data) {
            Ok(env) => env,
            Err(e) => {
                // serde_json's message can quote the offending value (which may be a key):
                // log only its category and position.
                tracing::warn!(
                    category = ?e.classify(),
                    line = e.line(),
                    column = e.column(),
                    "undecodable snapshot event ignored"
                );
                return;
            }
        };
        let current = self.handle.current();
        if env.version <= current.version {
            tracing::debug!(
                version = env.version,
                serving = current.version,
                "snapshot not newer than the one served; ignored"
            );
            return;
        }
        let started = std::time::SystemTime::now();
        let ack = match envelope_config(&env, current.version) {
            Ok(next) => {
                tracing::info!(
                    version = next.version,
                    hash = %next.snapshot.hash,
                    routes = next.snapshot.routes.len(),
                    providers = next.snapshot.providers.len(),
                    "snapshot applied from the control plane"
                );
                let hash = next.snapshot.hash.clone();
                self.handle.swap(next);
                self.metrics.set_snapshot_version(env.version);
                self.metrics.config_reload(true);
                if let Err(e) = persist(&self.settings.state_dir, &env) {
                    tracing::error!(
                        state_dir = %self.settings.state_dir.display(),
                        error = %e,
                        "cannot persist the snapshot; a restart without the operator will not serve it"
                    );
                }
                Ack {
                    pod: self.settings.pod.clone(),
                    version: env.version,
                    hash,
                    applied: true,
                    error: None,
                }
            }
            Err(refusal) => {
                tracing::warn!(
                    version = env.version,
                    serving_version = current.version,
                    error = %refusal,
                    "snapshot refused; keeping the current one"
                );
                self.metrics.config_reload(false);
                Ack {
                    pod: self.settings.pod.clone(),
                    version: env.version,
                    hash: current.snapshot.hash.clone(),
                    applied: false,
                    error: Some(refusal.to_string()),
                }
            }
        };
        if let Some(t) = self.telemetry {
            t.export(crate::telemetry::spans::apply_span(
                (t.new_trace_id(), t.new_span_id()),
                env.traceparent.as_deref(),
                &ack,
                started,
            ));
        }
        if let Err(e) = self.ack(&ack).await {
            tracing::warn!(version = ack.version, error = %e, "ack not delivered");
        }
    }

    async fn ack(&self, ack: &Ack) -> Result<(), BoxError> {
        let body = serde_json::to_vec(ack)?;
        let request = self
            .request("POST", &format!("{}/v1/acks", self.target.prefix))?
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let exchange = async {
            let mut sender = connect(self.target).await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let _ = response.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err::<(), BoxError>(format!("the operator answered {status}").into())
            }
        };
        tokio::time::timeout(ACK_TIMEOUT, exchange)
            .await
            .map_err(|_| "timed out")?
    }

    fn request(&self, method: &str, path: &str) -> Result<http::request::Builder, BoxError> {
        request_builder(self.target, self.settings, method, path)
    }
}

/// A request builder with `Host` and the bearer token (read from the file each time).
fn request_builder(
    target: &Target,
    settings: &RemoteSettings,
    method: &str,
    path: &str,
) -> Result<http::request::Builder, BoxError> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, &target.authority);
    if let Some(file) = &settings.token_file {
        let token = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the token file {}: {e}", file.display()))?;
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {}", token.trim()));
    }
    Ok(builder)
}

/// Reports budget usage every [`super::USAGE_INTERVAL`] (see
/// [`super::spawn_usage_reporter`]). Runs forever.
pub async fn report_usage(
    target: Target,
    settings: RemoteSettings,
    handle: Arc<ConfigHandle>,
    quota: Arc<crate::quota::Quota>,
    shadow: Arc<crate::shadow::Shadow>,
) {
    let mut tick = tokio::time::interval(super::USAGE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let active = handle.current();
        if active.snapshot.budgets.is_empty() && active.shadow.is_none() {
            continue;
        }
        let status = quota.status(&active.snapshot).await;
        let report = UsageReport {
            pod: settings.pod.clone(),
            version: active.version,
            budgets: status.usage_entries(),
            shadow: active.shadow.as_ref().and_then(|_| shadow.report(&active)),
        };
        if let Err(e) = post_usage(&target, &settings, &report).await {
            tracing::debug!(error = %e, "usage report not delivered");
        }
    }
}

async fn post_usage(
    target: &Target,
    settings: &RemoteSettings,
    report: &UsageReport,
) -> Result<(), BoxError> {
    let body = serde_json::to_vec(report)?;
    let request = request_builder(
        target,
        settings,
        "POST",
        &format!("{}/v1/usage", target.prefix),
    )?
    .header(header::CONTENT_TYPE, "application/json")
    .body(Full::new(Bytes::from(body)))?;
    let exchange = async {
        let mut sender = connect(target).await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err::<(), BoxError>(format!("the operator answered {status}").into())
        }
    };
    tokio::time::timeout(ACK_TIMEOUT, exchange)
        .await
        .map_err(|_| "timed out")?
}

/// One HTTP/1.1 connection (over TLS unless plain HTTP was allowed); its driver runs on the
/// current runtime.
async fn connect<B>(target: &Target) -> Result<hyper::client::conn::http1::SendRequest<B>, BoxError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // Read (and parsed) before connecting, so a missing CA file is the error reported.
    let tls = match &target.tls {
        Some(tls) => Some(tls.connector()?),
        None => None,
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&target.authority))
        .await
        .map_err(|_| format!("connecting to {} timed out", target.authority))??;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => handshake(tcp).await,
        Some((connector, name)) => {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| format!("TLS handshake with {} timed out", target.authority))?
                .map_err(|e| format!("TLS handshake with {} failed: {e}", target.authority))?;
            handshake(stream).await
        }
    }
}

async fn handshake<S, B>(io: S) -> Result<hyper::client::conn::http1::SendRequest<B>, BoxError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "control channel connection ended");
        }
    });
    Ok(sender)
}

/// Percent-encodes a query value (pod names are DNS labels, so this is belt and braces).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> RemoteSettings {
        RemoteSettings {
            url: url.into(),
            token_file: None,
            state_dir: "/tmp".into(),
            pod: "p".into(),
            ca_file: Some("/ca.crt".into()),
            tls_server_name: None,
            allow_plaintext: false,
        }
    }

    #[test]
    fn urls() {
        let t = Target::new(&settings("https://switchyard-operator.sy.svc:8090")).expect("parses");
        assert_eq!(t.authority, "switchyard-operator.sy.svc:8090");
        assert_eq!(t.prefix, "");
        assert!(t.tls.is_some());
        let t = Target::new(&settings("https://op/control/")).expect("parses");
        assert_eq!(t.authority, "op:443");
        assert_eq!(t.prefix, "/control");
        let t = Target::new(&settings("https://[::1]:8090")).expect("an IPv6 literal");
        assert_eq!(t.authority, "[::1]:8090");
        assert!(Target::new(&settings("https://")).is_err());
        assert!(Target::new(&settings("ftp://op:1")).is_err());
        assert_eq!(encode("pod-1 x"), "pod-1%20x");
    }

    #[test]
    fn plain_http_needs_the_insecure_flag_and_https_a_ca() {
        let err = Target::new(&settings("http://op:8090")).expect_err("plain refused");
        assert!(err.contains("--control-plane-insecure"), "{err}");
        let mut plain = settings("http://op");
        plain.allow_plaintext = true;
        let t = Target::new(&plain).expect("allowed");
        assert_eq!(t.authority, "op:80");
        assert!(t.tls.is_none());
        let mut no_ca = settings("https://op:8090");
        no_ca.ca_file = None;
        let err = Target::new(&no_ca).expect_err("no CA");
        assert!(err.contains("--control-ca-file"), "{err}");
    }
}
