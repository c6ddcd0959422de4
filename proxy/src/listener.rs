//! Connection limits of the client listener: a cap on open connections, a deadline for each
//! request header, an idle deadline between requests, and OpenAI-shaped bodies for the
//! errors pingora answers itself.
//!
//! pingora reads request headers before any `ProxyHttp` phase runs and only bounds each
//! single read (a client that drips one byte every few seconds never trips it), keeps
//! HTTP/1.1 connections open between requests for ever, and accepts every connection the
//! kernel hands it. So the listener's app is wrapped ([`Guarded`]): connections beyond the
//! cap are answered 503 and closed at once, and every accepted stream is a
//! [`DeadlineStream`] that watches the bytes going by: from the first byte of a request until
//! the blank line ending its header at most `header_timeout` may pass, and a connection with
//! no request under way is closed after `idle_timeout`. Body reads are bounded by the request
//! handler (`crate::body`), which knows when it reads one.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use clap::Args;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use prometheus::{IntCounter, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The listener's limits, each a flag (and a `SWITCHYARD_*` variable).
#[derive(Debug, Clone, Args)]
pub struct ConnectionLimits {
    /// Longest time from the first byte of a request to the end of its header; slower
    /// clients are disconnected.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration, env = "SWITCHYARD_HEADER_TIMEOUT")]
    pub header_timeout: Duration,

    /// Longest time to receive a whole request body once its header is in; slower clients
    /// get 408.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration, env = "SWITCHYARD_BODY_TIMEOUT")]
    pub body_timeout: Duration,

    /// A connection with no request under way (a new one that sends nothing, or a
    /// keep-alive one between requests) is closed after this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration, env = "SWITCHYARD_IDLE_TIMEOUT")]
    pub idle_timeout: Duration,

    /// Most client connections open at once; more are answered 503 and closed at once.
    /// Never more than three quarters of the process's open-file limit, so that upstream
    /// connections, config files and the admin port keep descriptors.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        env = "SWITCHYARD_MAX_CONNECTIONS"
    )]
    pub max_connections: usize,

    /// Most bytes of request bodies held in memory at once across all requests; a request
    /// that would go past it gets 503 with `Retry-After`.
    #[arg(long, value_name = "BYTES", default_value_t = 128 * 1024 * 1024, env = "SWITCHYARD_MAX_BUFFERED_BODY_BYTES")]
    pub max_buffered_body_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_buffered_body_bytes: 128 * 1024 * 1024,
        }
    }
}

impl ConnectionLimits {
    /// The admin listener's: probes and scrapes are few and quick, so a small cap keeps a
    /// flood on the admin port from taking the descriptors the client listener needs.
    pub fn admin() -> Self {
        Self {
            max_connections: 256,
            ..Self::default()
        }
    }

    /// `--max-connections`, lowered to three quarters of the open-file limit when that is
    /// smaller (read from `/proc/self/limits`; unknown elsewhere).
    pub fn effective_max_connections(&self) -> usize {
        match open_file_limit() {
            Some(n) => self.max_connections.min(n / 4 * 3).max(1),
            None => self.max_connections.max(1),
        }
    }
}

/// The soft `Max open files` limit of this process.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Open-connection accounting shared by the listener's tasks.
#[derive(Debug)]
struct Slots {
    max: usize,
    open: AtomicUsize,
    gauge: IntGauge,
}

/// One accepted connection's place under the cap; given back when dropped.
struct Slot(Arc<Slots>);

impl Slots {
    fn take(self: &Arc<Self>) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        self.gauge.inc();
        Some(Slot(Arc::clone(self)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.dec();
    }
}

/// A listener's connection gauge and refusal counter.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    pub open: IntGauge,
    pub refused: IntCounter,
}

/// A pingora app with the listener's limits around it.
#[derive(Debug)]
pub struct Guarded<A> {
    inner: Arc<A>,
    header_timeout: Duration,
    idle_timeout: Duration,
    slots: Arc<Slots>,
    refused: IntCounter,
}

impl<A> Guarded<A> {
    /// Wraps `inner`, counting its connections in `metrics`.
    pub fn new(inner: A, limits: &ConnectionLimits, metrics: ListenerMetrics) -> Self {
        let ListenerMetrics {
            open: gauge,
            refused,
        } = metrics;
        Self {
            inner: Arc::new(inner),
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            slots: Arc::new(Slots {
                max: limits.effective_max_connections(),
                open: AtomicUsize::new(0),
                gauge,
            }),
            refused,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Some(_slot) = self.slots.take() else {
            self.refused.inc();
            // A new socket's send buffer is empty: this write does not wait on the client.
            let answer = over_capacity();
            let _ =
                tokio::time::timeout(Duration::from_millis(100), stream.write_all(&answer)).await;
            Shutdown::shutdown(&mut *stream).await;
            return None;
        };
        let stream = DeadlineStream::new(stream, self.header_timeout, self.idle_timeout);
        self.inner.process_new(Box::new(stream), shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Where a connection stands, as seen from the bytes that went through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request under way since this instant (accepted, or the last response byte sent).
    Idle(Instant),
    /// A request's header is arriving; its first byte came at this instant.
    Header(Instant),
    /// The header is in; the handler reads the body (under its own deadline) and answers.
    Busy,
}

/// A client stream that fails reads past the header or idle deadline, and gives pingora's
/// own bodiless error answers an OpenAI-shaped body.
#[derive(Debug)]
pub struct DeadlineStream {
    inner: Stream,
    phase: Phase,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// Set while a read waits with a deadline.
    timer: Option<Pin<Box<Sleep>>>,
    /// How the bytes read so far end, for a header end split across reads.
    carry: HeaderEnd,
    /// A replacement answer being written, and how much of it is out.
    rewrite: Option<(Vec<u8>, usize)>,
}

/// Progress towards the blank line that ends a header: `\n` then an optional `\r` then `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderEnd {
    None,
    /// The bytes so far end with `\n`.
    Newline,
    /// The bytes so far end with `\n\r`.
    NewlineCr,
}

impl HeaderEnd {
    /// Whether `data`, following what was seen before, completes a header; updates `self`.
    fn completes(&mut self, data: &[u8]) -> bool {
        let first = data.first().copied();
        match (*self, first) {
            (Self::Newline | Self::NewlineCr, Some(b'\n')) => return true,
            (Self::Newline, Some(b'\r')) => match data.get(1) {
                Some(b'\n') => return true,
                None => {
                    *self = Self::NewlineCr;
                    return false;
                }
                Some(_) => {}
            },
            _ => {}
        }
        *self = Self::None;
        for at in memchr::memchr_iter(b'\n', data) {
            match data.get(at + 1) {
                Some(b'\n') => return true,
                Some(b'\r') => match data.get(at + 2) {
                    Some(b'\n') => return true,
                    None => {
                        *self = Self::NewlineCr;
                        return false;
                    }
                    Some(_) => {}
                },
                None => {
                    *self = Self::Newline;
                    return false;
                }
                Some(_) => {}
            }
        }
        false
    }
}

impl DeadlineStream {
    pub fn new(inner: Stream, header_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            inner,
            phase: Phase::Idle(Instant::now()),
            header_timeout,
            idle_timeout,
            timer: None,
            carry: HeaderEnd::None,
            rewrite: None,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle(since) => Some(since + self.idle_timeout),
            Phase::Header(since) => Some(since + self.header_timeout),
            Phase::Busy => None,
        }
    }

    fn saw_read(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Phase::Idle(_) = self.phase {
            self.phase = Phase::Header(Instant::now());
            self.carry = HeaderEnd::None;
        }
        if let Phase::Header(_) = self.phase
            && self.carry.completes(data)
        {
            self.phase = Phase::Busy;
        }
    }

    fn timed_out(&self) -> std::io::Error {
        let what = match self.phase {
            Phase::Header(_) => "request header not complete within --header-timeout",
            _ => "connection idle for --idle-timeout",
        };
        std::io::Error::new(std::io::ErrorKind::TimedOut, what)
    }
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let deadline = self.deadline();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Poll::Ready(Err(self.timed_out()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                self.timer = None;
                self.saw_read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = deadline else {
                    return Poll::Pending;
                };
                let timer = match &mut self.timer {
                    Some(t) => {
                        if t.deadline() != deadline {
                            t.as_mut().reset(deadline);
                        }
                        t
                    }
                    none => none.insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(self.timed_out())),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

/// Whether `head` is the start of an error answer pingora wrote itself (bodiless, `Content-
/// Length: 0`, `Cache-Control: private, no-store`; the gateway's own errors always carry a
/// JSON body), and its status.
fn pingora_error_status(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?.get(2..)?;
    let status: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    if status < 400 {
        return None;
    }
    let end = memchr::memmem::find(head, b"\r\n\r\n")?;
    let lower = head[..end].to_ascii_lowercase();
    let has = |needle: &[u8]| memchr::memmem::find(&lower, needle).is_some();
    (has(b"\r\ncontent-length: 0\r\n") && has(b"\r\ncache-control: private, no-store"))
        .then_some(status)
}

/// The answer that replaces pingora's bodiless error `status`.
fn error_answer(status: u16) -> Vec<u8> {
    match status {
        400 => json_answer(
            "400 Bad Request",
            "invalid_http_request",
            "The request could not be read as HTTP/1.1: a malformed request line or header, \
             or a header section over 64 KiB.",
            "",
        ),
        405 => json_answer(
            "405 Method Not Allowed",
            "method_not_allowed",
            "This method is not allowed here.",
            "",
        ),
        _ => json_answer(
            &format!("{status} Error"),
            "server_error",
            "The gateway could not serve this request.",
            "",
        ),
    }
}

/// The answer to a connection over the cap, written before it is closed.
fn over_capacity() -> Vec<u8> {
    json_answer(
        "503 Service Unavailable",
        "overloaded",
        "Too many open connections to the gateway; retry shortly.",
        "retry-after: 1\r\n",
    )
}

/// A whole `connection: close` answer with an OpenAI-shaped error body.
fn json_answer(status_line: &str, code: &str, message: &str, extra_headers: &str) -> Vec<u8> {
    let kind = if status_line.starts_with('4') {
        "invalid_request_error"
    } else {
        "server_error"
    };
    let body = serde_json::json!({"error": {
        "message": message, "type": kind, "param": null, "code": code,
    }})
    .to_string();
    format!(
        "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         cache-control: private, no-store\r\n{extra_headers}connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.rewrite.is_none() {
            if let Some(status) = pingora_error_status(buf) {
                self.rewrite = Some((error_answer(status), 0));
            } else {
                // An interim `100 Continue` does not end the request: the body follows.
                if !buf.is_empty() && !buf.starts_with(b"HTTP/1.1 100 ") {
                    self.phase = Phase::Idle(Instant::now());
                }
                return Pin::new(&mut self.inner).poll_write(cx, buf);
            }
        }
        // Write the replacement in full, then report the original as written.
        loop {
            let this = &mut *self;
            let Some((answer, sent)) = &mut this.rewrite else {
                return Poll::Ready(Ok(buf.len()));
            };
            if *sent == answer.len() {
                this.rewrite = None;
                this.phase = Phase::Idle(Instant::now());
                return Poll::Ready(Ok(buf.len()));
            }
            match Pin::new(&mut this.inner).poll_write(cx, &answer[*sent..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for DeadlineStream {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await;
    }
}

impl UniqueID for DeadlineStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for DeadlineStream {}

impl GetTimingDigest for DeadlineStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for DeadlineStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for DeadlineStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for DeadlineStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completes_in(chunks: &[&[u8]]) -> Option<usize> {
        let mut end = HeaderEnd::None;
        chunks.iter().position(|c| end.completes(c))
    }

    #[test]
    fn finds_the_blank_line_in_one_read_or_split_across_reads() {
        let whole = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n\r\n{}";
        assert_eq!(completes_in(&[whole]), Some(0));
        for split in 1..whole.len() {
            let (a, b) = whole.split_at(split);
            let expected = if split >= whole.len() - 2 { 0 } else { 1 };
            assert_eq!(completes_in(&[a, b]), Some(expected), "split at {split}");
        }
        let bytes: Vec<&[u8]> = whole.iter().map(std::slice::from_ref).collect();
        assert_eq!(completes_in(&bytes), Some(whole.len() - 3));
        assert_eq!(completes_in(&[b"GET / HTTP/1.1\nhost: x\n\n"]), Some(0));
        assert_eq!(completes_in(&[b"GET / HTTP/1.1\n", b"\r", b"\n"]), Some(2));
    }

    #[test]
    fn an_unfinished_header_never_completes() {
        assert_eq!(
            completes_in(&[b"GET / HTTP/1.1\r\n", b"host: x\r", b"\nx-a: \r\r\n"]),
            None
        );
        assert_eq!(completes_in(&[b"\r\n", b"a\r\n", b"\r"]), None);
    }

    #[test]
    fn recognises_only_pingoras_bodiless_errors() {
        let pingora = b"HTTP/1.1 400 Bad Request\r\nServer: Pingora\r\nDate: x\r\n\
            Content-Length: 0\r\nCache-Control: private, no-store\r\nConnection: close\r\n\r\n";
        assert_eq!(pingora_error_status(pingora), Some(400));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
            content-length: 80\r\n\r\n";
        assert_eq!(pingora_error_status(ours), None);
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\
            Cache-Control: private, no-store\r\n\r\n";
        assert_eq!(pingora_error_status(ok), None);
        let answer = error_answer(400);
        let text = String::from_utf8(answer).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a header and a body");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["error"]["code"], "invalid_http_request");
    }

    #[test]
    fn the_over_capacity_answer_is_well_formed() {
        let answer = over_capacity();
        let text = std::str::from_utf8(&answer).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a header and a body");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["error"]["code"], "overloaded");
    }

    #[test]
    fn the_connection_cap_stays_under_the_open_file_limit() {
        let limits = ConnectionLimits {
            max_connections: usize::MAX,
            ..ConnectionLimits::default()
        };
        let effective = limits.effective_max_connections();
        if let Some(files) = open_file_limit() {
            assert!(effective <= files / 4 * 3 && effective >= 1);
        }
        let small = ConnectionLimits {
            max_connections: 5,
            ..ConnectionLimits::default()
        };
        assert_eq!(small.effective_max_connections(), 5);
    }
}
