//! Reading a request body whole, within three bounds: its own size (`--max-body-bytes`,
//! 413), the time it may take to arrive (`--body-timeout`, 408), and the bytes of all
//! request bodies held at once (`--max-buffered-body-bytes`, 503 with `Retry-After`), so
//! that many large uploads together cannot exhaust memory. `Expect: 100-continue` is
//! answered once the request has passed authentication and the size check, so a client
//! refused early never sends its body.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use prometheus::{IntGauge, Registry};

use crate::api::ApiError;

/// The bytes of request bodies held in memory across all requests, and their bound.
#[derive(Debug)]
pub struct BodyBudget {
    limit: usize,
    held: AtomicUsize,
    /// `switchyard_request_body_bytes_held`.
    gauge: IntGauge,
}

/// Bytes of one request's body counted against the [`BodyBudget`]; given back when dropped.
#[derive(Debug)]
pub struct BodyHold {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl BodyBudget {
    /// A budget of `limit` bytes; registers `switchyard_request_body_bytes_held` in
    /// `registry`.
    pub fn new(limit: usize, registry: &Registry) -> Arc<Self> {
        let gauge = IntGauge::new(
            "switchyard_request_body_bytes_held",
            "Bytes of request bodies held in memory (bounded by --max-buffered-body-bytes).",
        )
        .expect("static metric definition is valid");
        // Registering twice (a second server in one test process) keeps the first.
        let _ = registry.register(Box::new(gauge.clone()));
        Arc::new(Self {
            limit,
            held: AtomicUsize::new(0),
            gauge,
        })
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// An empty hold, to grow as the body arrives.
    pub fn hold(self: &Arc<Self>) -> BodyHold {
        BodyHold {
            budget: Arc::clone(self),
            bytes: 0,
        }
    }
}

impl BodyHold {
    /// Counts `more` bytes; `false` (and nothing counted) when that would pass the bound.
    pub fn grow(&mut self, more: usize) -> bool {
        let budget = &self.budget;
        let grown = budget
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(more).filter(|n| *n <= budget.limit)
            })
            .is_ok();
        if grown {
            self.bytes += more;
            budget.gauge.add(more as i64);
        }
        grown
    }
}

impl Drop for BodyHold {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
        self.budget.gauge.sub(self.bytes as i64);
    }
}

/// The bounds a body is read within.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
    pub budget: Arc<BodyBudget>,
}

fn busy() -> ApiError {
    ApiError {
        status: 503,
        message: "The gateway is holding too many request bodies at once; retry shortly."
            .to_string(),
        kind: "server_error",
        code: Some("overloaded"),
        retry_after: Some(1),
    }
}

fn timed_out(timeout: Duration) -> ApiError {
    ApiError {
        status: 408,
        message: format!(
            "The request body did not arrive within {}.",
            humantime::format_duration(timeout)
        ),
        kind: "invalid_request_error",
        code: Some("request_timeout"),
        retry_after: None,
    }
}

/// Whether the client waits for `100 Continue` before sending the body.
fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get("expect")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads the whole request body within `limits`; the hold keeps its bytes counted until
/// the request is done with them.
pub async fn read(
    session: &mut Session,
    limits: &BodyLimits,
) -> Result<(Bytes, BodyHold), ApiError> {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes) {
        session.set_keepalive(None);
        return Err(ApiError::too_large(limits.max_bytes));
    }
    let mut hold = limits.budget.hold();
    if let Some(n) = declared
        && !hold.grow(n)
    {
        session.set_keepalive(None);
        return Err(busy());
    }
    if expects_continue(session) && session.write_continue_response().await.is_err() {
        return Err(ApiError::malformed_json(
            "the request body could not be read",
        ));
    }
    let read = read_chunks(session, limits, declared, &mut hold);
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(Ok(body)) => Ok((body, hold)),
        Ok(Err(e)) => {
            session.set_keepalive(None);
            Err(e)
        }
        Err(_) => {
            session.set_keepalive(None);
            Err(timed_out(limits.timeout))
        }
    }
}

async fn read_chunks(
    session: &mut Session,
    limits: &BodyLimits,
    declared: Option<usize>,
    hold: &mut BodyHold,
) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                let len = buf.len() + chunk.len();
                if len > limits.max_bytes {
                    return Err(ApiError::too_large(limits.max_bytes));
                }
                // A declared length was counted up front; a chunked body as it arrives.
                if len > hold.bytes && !hold.grow(len - hold.bytes) {
                    return Err(busy());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(_) => {
                return Err(ApiError::malformed_json(
                    "the request body could not be read",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_bounded_and_given_back() {
        let budget = BodyBudget::new(100, &Registry::new());
        let mut a = budget.hold();
        assert!(a.grow(60));
        let mut b = budget.hold();
        assert!(!b.grow(41), "past the bound");
        assert!(b.grow(40));
        assert_eq!(budget.held(), 100);
        drop(a);
        assert_eq!(budget.held(), 40);
        assert!(b.grow(60));
        drop(b);
        assert_eq!(budget.held(), 0);
    }
}
