//! The route's failover rule as pure functions: after a failed attempt, [`next`] says whether
//! to retry the target, move to the next candidate, relay the provider's answer or stop;
//! [`Exhausted`] gathers what was tried and turns it into the error a client gets when
//! every candidate failed. No sockets and no clock of their own, so every trigger is unit
//! tested.

use std::time::{Duration, Instant};

use switchyard_dsl::ir::{ErrorClass, Retry, Triggers};

use super::classify::{Failure, backoff};
use crate::api::ApiError;

/// The router's next move after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Try the same target again after this wait.
    Retry(Duration),
    /// Move on to the next candidate.
    Next,
    /// The route does not act on this failure and the provider answered: the client gets
    /// the provider's answer.
    PassThrough,
    /// The route does not act on this failure and there is no answer to relay: stop with
    /// the error that lists what was tried.
    Stop,
    /// The route's total deadline has passed: stop (504).
    Deadline,
}

/// The move after attempt number `n` (1-based) on one target failed with `failure`;
/// `answered` when the provider sent an error response. A retry is taken while the route
/// allows more attempts, the failure is one the target could recover from, and the wait
/// ends before `deadline`.
pub fn next(
    triggers: &Triggers,
    retry: &Retry,
    failure: &Failure,
    answered: bool,
    n: u32,
    now: Instant,
    deadline: Option<Instant>,
) -> Step {
    if !failure.triggers(triggers) {
        return if answered {
            Step::PassThrough
        } else {
            Step::Stop
        };
    }
    let retry_left = n <= retry.attempts && !failure.is_permanent();
    let wait = backoff(retry, n, failure.retry_after);
    if retry_left && deadline.is_none_or(|d| now + wait < d) {
        return Step::Retry(wait);
    }
    if deadline.is_some_and(|d| now >= d) {
        Step::Deadline
    } else {
        Step::Next
    }
}

/// What every failed candidate said, for the error when none could answer.
#[derive(Debug, Default)]
pub struct Exhausted {
    failures: Vec<Failure>,
    /// One line per target: `name: what happened (after N attempts)`.
    tried: Vec<String>,
    /// The route's total deadline ended the search.
    pub deadline_hit: bool,
}

impl Exhausted {
    /// Records that `target` failed with `failure` after `attempts` attempts.
    pub fn record(&mut self, target: &str, failure: Failure, attempts: u32) {
        self.tried.push(if attempts > 1 {
            format!("{target}: {} (after {attempts} attempts)", failure.detail)
        } else {
            format!("{target}: {}", failure.detail)
        });
        self.failures.push(failure);
    }

    /// The client's error: 504 when the deadline or only timeouts ended it, 503 (with the
    /// shortest `Retry-After` heard) when every target was rate limited, overloaded or out of
    /// quota, 502 otherwise; the message lists what was tried.
    pub fn error(&self) -> ApiError {
        let failures = &self.failures;
        let all =
            |p: fn(ErrorClass) -> bool| !failures.is_empty() && failures.iter().all(|f| p(f.class));
        let (status, code) = if self.deadline_hit || all(|c| c == ErrorClass::Timeout) {
            (504, "upstream_timeout")
        } else if all(|c| {
            matches!(
                c,
                ErrorClass::RateLimited | ErrorClass::Overloaded | ErrorClass::QuotaExhausted
            )
        }) {
            (503, "upstream_unavailable")
        } else {
            (502, "upstream_failed")
        };
        let mut message = String::from("All upstream candidates failed");
        if self.deadline_hit {
            message.push_str(" before the total deadline");
        }
        message.push_str(": ");
        message.push_str(&self.tried.join("; "));
        let mut e = ApiError::upstream(status, code, message);
        if status == 503 {
            e.retry_after = failures
                .iter()
                .filter_map(|f| f.retry_after)
                .min()
                .map(|d| d.as_secs().max(1));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::AttemptError;
    use switchyard_dsl::ir::StatusRange;

    /// `failover ... when status in [429, 500..599] or timeout or connect_failure`,
    /// `retry 2 backoff 100ms..1s`.
    fn policy() -> (Triggers, Retry) {
        let triggers = Triggers {
            statuses: vec![
                StatusRange { lo: 429, hi: 429 },
                StatusRange { lo: 500, hi: 599 },
            ],
            errors: vec![ErrorClass::Timeout, ErrorClass::ConnectFailure],
            ..Triggers::default()
        };
        let retry = Retry {
            attempts: 2,
            backoff_min_ms: 100,
            backoff_max_ms: 1_000,
        };
        (triggers, retry)
    }

    fn status(code: u16, body: &str, retry_after: Option<&str>) -> Failure {
        Failure::from_response(code, body.as_bytes(), retry_after)
    }

    fn step(failure: &Failure, answered: bool, n: u32, deadline_in: Option<u64>) -> Step {
        let (triggers, retry) = policy();
        let now = Instant::now();
        let deadline = deadline_in.map(|ms| now + Duration::from_millis(ms));
        next(&triggers, &retry, failure, answered, n, now, deadline)
    }

    #[test]
    fn every_trigger_retries_then_moves_on() {
        let triggering = [
            status(429, "{}", None),
            status(500, "{}", None),
            status(503, "{}", None),
            status(599, "{}", None),
            Failure::from_attempt(&AttemptError::Timeout("first token")),
            Failure::from_attempt(&AttemptError::Connect("refused".into())),
            // A malformed answer counts as the 502 a gateway would give.
            Failure::from_attempt(&AttemptError::Protocol("bad chunk".into())),
        ];
        for f in &triggering {
            assert_eq!(
                step(f, true, 1, None),
                Step::Retry(Duration::from_millis(100))
            );
            assert_eq!(
                step(f, true, 2, None),
                Step::Retry(Duration::from_millis(200))
            );
            assert_eq!(step(f, true, 3, None), Step::Next, "{f:?}");
        }
    }

    #[test]
    fn failures_the_route_does_not_name_are_relayed_or_stop() {
        for code in [400, 401, 403, 404, 413, 422] {
            let f = status(code, "{}", None);
            assert_eq!(step(&f, true, 1, None), Step::PassThrough, "{code}");
            assert_eq!(step(&f, false, 1, None), Step::Stop, "{code}");
        }
        // Without `connect_failure` among the triggers a refused connection stops the search.
        let (mut triggers, retry) = policy();
        triggers.errors.retain(|e| *e != ErrorClass::ConnectFailure);
        let refused = Failure::from_attempt(&AttemptError::Connect("refused".into()));
        let now = Instant::now();
        assert_eq!(
            next(&triggers, &retry, &refused, false, 1, now, None),
            Step::Stop
        );
    }

    #[test]
    fn permanent_failures_move_on_without_a_retry() {
        let quota = status(
            429,
            r#"{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}"#,
            None,
        );
        assert_eq!(quota.class, ErrorClass::QuotaExhausted);
        assert_eq!(step(&quota, true, 1, None), Step::Next);
        let context = status(500, r#"{"error":{"code":"context_length_exceeded"}}"#, None);
        assert_eq!(step(&context, true, 1, None), Step::Next);
    }

    #[test]
    fn retry_after_sets_the_wait_and_the_deadline_bounds_it() {
        let limited = status(429, "{}", Some("2"));
        assert_eq!(
            step(&limited, true, 1, None),
            Step::Retry(Duration::from_secs(2))
        );
        // The wait would end after the total deadline: move on instead of waiting.
        assert_eq!(step(&limited, true, 1, Some(1_000)), Step::Next);
        assert_eq!(
            step(&limited, true, 1, Some(5_000)),
            Step::Retry(Duration::from_secs(2))
        );
        // The deadline has passed: stop.
        assert_eq!(step(&limited, true, 1, Some(0)), Step::Deadline);
        assert_eq!(
            step(&status(503, "{}", None), true, 3, Some(0)),
            Step::Deadline
        );
    }

    #[test]
    fn no_retries_configured_means_straight_to_the_next_candidate() {
        let (triggers, _) = policy();
        let none = Retry::default();
        let f = status(503, "{}", None);
        let now = Instant::now();
        assert_eq!(next(&triggers, &none, &f, true, 1, now, None), Step::Next);
    }

    #[test]
    fn the_exhausted_error_follows_what_failed() {
        let mut timeouts = Exhausted::default();
        timeouts.record("a/m", Failure::from_attempt(&AttemptError::Timeout("t")), 3);
        let e = timeouts.error();
        assert_eq!((e.status, e.code), (504, Some("upstream_timeout")));
        assert!(e.message.contains("a/m: "), "{}", e.message);
        assert!(e.message.contains("(after 3 attempts)"), "{}", e.message);

        let mut busy = Exhausted::default();
        busy.record("a/m", status(429, "{}", Some("7")), 1);
        busy.record("b/m", status(503, "{}", Some("3")), 1);
        let e = busy.error();
        assert_eq!((e.status, e.retry_after), (503, Some(3)));
        assert!(e.message.contains("a/m: status 429"), "{}", e.message);

        let mut mixed = Exhausted::default();
        mixed.record("a/m", status(500, "{}", None), 1);
        mixed.record("b/m", status(429, "{}", None), 1);
        assert_eq!(mixed.error().status, 502);

        let mut late = Exhausted::default();
        late.record("a/m", status(500, "{}", None), 1);
        late.deadline_hit = true;
        let e = late.error();
        assert_eq!(e.status, 504);
        assert!(
            e.message.contains("before the total deadline"),
            "{}",
            e.message
        );
    }
}
