//! Failed attempts and the retry clock: an upstream status and error body become a
//! [`Failure`] (its class from `translate::classify`), the route's triggers decide whether it
//! moves on, and backoff honours `Retry-After` within a cap.

use std::time::Duration;

use switchyard_dsl::ir::{ErrorClass, Retry, Triggers};

use crate::providers::AttemptError;

/// The longest `Retry-After` the proxy will wait before retrying the same target.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The longest a target is kept out of rotation on a provider's rate-limit word
/// (`Retry-After` on a 429, `x-ratelimit-remaining-* = 0`).
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// One failed attempt.
#[derive(Debug, Clone)]
pub struct Failure {
    pub class: ErrorClass,
    /// Upstream status when there was a response.
    pub status: Option<u16>,
    /// What happened, for the client's error message and the log (no secrets, no content).
    pub detail: String,
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// From an attempt that produced no response.
    pub fn from_attempt(e: &AttemptError) -> Self {
        let class = match e {
            AttemptError::Connect(_) | AttemptError::Unavailable(_) => ErrorClass::ConnectFailure,
            AttemptError::Timeout(_) => ErrorClass::Timeout,
            AttemptError::Protocol(_) => ErrorClass::ServerError,
        };
        Self {
            class,
            status: None,
            detail: e.to_string(),
            retry_after: None,
        }
    }

    /// From an error response.
    pub fn from_response(status: u16, body: &[u8], retry_after: Option<&str>) -> Self {
        let class = crate::translate::classify::openai(status, body);
        Self {
            class,
            status: Some(status),
            detail: format!("status {status} ({})", class.as_str()),
            retry_after: retry_after.and_then(parse_retry_after),
        }
    }

    /// Whether the route's triggers make this failure move on (retry, then next candidate).
    /// A broken or malformed response counts as the `502` a gateway would have answered.
    pub fn triggers(&self, t: &Triggers) -> bool {
        let status = self
            .status
            .or((self.class == ErrorClass::ServerError).then_some(502));
        let by_status =
            status.is_some_and(|s| t.statuses.iter().any(|r| (r.lo..=r.hi).contains(&s)));
        by_status || t.errors.contains(&self.class)
    }

    /// Whether a target can do nothing about it (never retried on the same target).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.class,
            ErrorClass::BadRequest
                | ErrorClass::Auth
                | ErrorClass::ContextTooLong
                | ErrorClass::ContentPolicy
                | ErrorClass::QuotaExhausted
        ) || self.detail.starts_with("not callable")
    }

    /// Whether it says something about the target's health.
    pub fn counts_against_health(&self) -> bool {
        matches!(
            self.class,
            ErrorClass::ConnectFailure
                | ErrorClass::Timeout
                | ErrorClass::ServerError
                | ErrorClass::Overloaded
                | ErrorClass::RateLimited
        )
    }
}

/// `Retry-After` as seconds (delta form; the HTTP-date form is not used by LLM providers).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The wait before retry number `n` (1-based): exponential from the route's minimum, capped
/// at its maximum; a `Retry-After` replaces it (capped at [`MAX_RETRY_AFTER`]).
pub fn backoff(retry: &Retry, n: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(ra) = retry_after {
        return ra.min(MAX_RETRY_AFTER);
    }
    let min = retry.backoff_min_ms.max(1);
    let max = retry.backoff_max_ms.max(min);
    let exp = min.saturating_mul(1u64 << n.saturating_sub(1).min(20));
    Duration::from_millis(exp.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_dsl::ir::StatusRange;

    #[test]
    fn triggers_and_backoff() {
        let t = Triggers {
            statuses: vec![StatusRange { lo: 500, hi: 599 }],
            errors: vec![ErrorClass::Timeout],
            ..Triggers::default()
        };
        assert!(Failure::from_response(503, b"", None).triggers(&t));
        assert!(!Failure::from_response(400, b"", None).triggers(&t));
        assert!(!Failure::from_response(429, b"", Some("1")).triggers(&t));
        assert!(Failure::from_attempt(&AttemptError::Timeout("x")).triggers(&t));
        let r = Retry {
            attempts: 3,
            backoff_min_ms: 100,
            backoff_max_ms: 300,
        };
        assert_eq!(backoff(&r, 1, None), Duration::from_millis(100));
        assert_eq!(backoff(&r, 2, None), Duration::from_millis(200));
        assert_eq!(backoff(&r, 3, None), Duration::from_millis(300));
        let ra = parse_retry_after("2");
        assert_eq!(backoff(&r, 1, ra), Duration::from_secs(2));
        assert_eq!(backoff(&r, 1, parse_retry_after("3600")), MAX_RETRY_AFTER);
    }
}
