//! The runtime router: walks a decision's candidates (healthy first), retries a target with
//! backoff for the route's triggers, fails over to the next, and answers 502/503/504 with
//! what was tried when every candidate failed. Nothing is retried once a byte reached the
//! client.

pub mod attempt;
pub mod classify;
pub mod health;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::proxy::Session;
use switchyard_dsl::Decision;
use switchyard_dsl::ir::{ErrorClass, Snapshot, TargetId};

use self::attempt::{AttemptPlan, Outcome};
use self::classify::{Failure, backoff};
use self::health::{Admission, HealthRegistry};
use crate::api::request::RequestBody;
use crate::api::{ApiError, Endpoint, respond};
use crate::cfg::{CredentialState, Metrics};
use crate::ctx::RequestCtx;
use crate::providers::Providers;

/// A routed request, ready to be sent.
#[derive(Debug)]
pub struct Job<'a> {
    pub snapshot: &'a Snapshot,
    pub credentials: &'a [CredentialState],
    pub decision: Decision<'a>,
    pub body: &'a RequestBody<'a>,
    pub endpoint: Endpoint,
    /// The client's own body when its API is not OpenAI's (an Anthropic Messages body).
    pub native: Option<&'a Bytes>,
}

/// Shared router state.
#[derive(Debug)]
pub struct Router {
    pub providers: Providers,
    pub health: Arc<HealthRegistry>,
    pub metrics: Arc<Metrics>,
}

/// One line of the "what was tried" message.
fn tried_line(target: &str, f: &Failure, attempts: u32) -> String {
    if attempts > 1 {
        format!("{target}: {} (after {attempts} attempts)", f.detail)
    } else {
        format!("{target}: {}", f.detail)
    }
}

/// The error when every candidate failed.
fn exhausted(failures: &[Failure], tried: &[String], deadline_hit: bool) -> ApiError {
    let all =
        |p: fn(ErrorClass) -> bool| !failures.is_empty() && failures.iter().all(|f| p(f.class));
    let (status, code) = if deadline_hit || all(|c| c == ErrorClass::Timeout) {
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
    if deadline_hit {
        message.push_str(" before the total deadline");
    }
    message.push_str(": ");
    message.push_str(&tried.join("; "));
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

impl Router {
    /// Candidates in order, targets the health registry ejected moved out; when every one
    /// is ejected they are all tried anyway.
    fn order(&self, snapshot: &Snapshot, decision: &Decision<'_>) -> Vec<(TargetId, String)> {
        let mut admitted = Vec::new();
        let mut ejected = Vec::new();
        for t in decision.candidates() {
            let name = snapshot.target_name(t);
            match self.health.admit(&name) {
                Admission::Healthy | Admission::Probe => admitted.push((t, name)),
                Admission::Ejected => ejected.push((t, name)),
            }
        }
        if admitted.is_empty() {
            ejected
        } else {
            admitted
        }
    }

    /// Serves `job` to the client: an answer, an error passed through from a provider, or
    /// an error that lists every target tried.
    pub async fn serve(&self, session: &mut Session, ctx: &mut RequestCtx, job: Job<'_>) {
        let route = job.decision.route();
        ctx.route = Some(route.name.clone());
        let total_deadline = route
            .timeouts
            .total_ms
            .map(|ms| ctx.started + Duration::from_millis(ms));
        let order = match ctx.downgrade {
            // An exhausted budget's downgrade target replaces the route's candidates.
            Some(t) => vec![(t, job.snapshot.target_name(t))],
            None => self.order(job.snapshot, &job.decision),
        };
        let mut failures: Vec<Failure> = Vec::new();
        let mut tried: Vec<String> = Vec::new();
        let mut deadline_hit = false;
        'candidates: for (i, (t, name)) in order.iter().enumerate() {
            let target = job.snapshot.target(*t);
            let provider = job.snapshot.provider(target.provider);
            ctx.provider = Some(provider.name.clone());
            ctx.model = Some(target.model.clone());
            let plan = AttemptPlan {
                endpoint: job.endpoint,
                route,
                provider,
                credential: job.credentials.get(target.provider.0 as usize),
                model: &target.model,
                body: Bytes::from(job.body.rebuild(&target.model)),
                stream: job.body.stream,
                total_deadline,
                native: job.native.cloned(),
            };
            let last_candidate = i + 1 == order.len();
            let mut n = 0;
            loop {
                n += 1;
                ctx.attempts += 1;
                let (failure, response) =
                    match attempt::run(&self.providers, &self.metrics, session, ctx, &plan).await {
                        Outcome::Served { ok } => {
                            if ok {
                                self.health.success(name);
                            } else {
                                self.health.failure(name);
                            }
                            let outcome = if ok { "ok" } else { "error" };
                            self.metrics
                                .upstream_attempt(&route.name, &provider.name, outcome);
                            return;
                        }
                        Outcome::Failed(f, r) => (f, r),
                    };
                if failure.counts_against_health() {
                    self.health.failure(name);
                }
                if !failure.triggers(&route.triggers) {
                    self.metrics
                        .upstream_attempt(&route.name, &provider.name, "error");
                    if let Some(r) = response {
                        // Not the policy's business: the client sees what the provider said.
                        let mut r = r;
                        if crate::api::anthropic::is_client(ctx) {
                            r.body = crate::api::anthropic::response_body(r.status, &r.body, "");
                            r.content_type = "application/json".into();
                        }
                        let h = respond::header(r.status, &r.content_type, Some(r.body.len()), ctx);
                        ctx.error = Some(failure.detail.clone());
                        respond::send(session, ctx, h, r.body, r.retry_after.as_deref()).await;
                        return;
                    }
                    tried.push(tried_line(name, &failure, n));
                    failures.push(failure);
                    break 'candidates;
                }
                let retry_left = n <= route.retry.attempts && !failure.is_permanent();
                let wait = backoff(&route.retry, n, failure.retry_after);
                let wait_fits = total_deadline.is_none_or(|d| Instant::now() + wait < d);
                if retry_left && wait_fits {
                    self.metrics
                        .upstream_attempt(&route.name, &provider.name, "retry");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                let outcome = if last_candidate { "error" } else { "failover" };
                self.metrics
                    .upstream_attempt(&route.name, &provider.name, outcome);
                tried.push(tried_line(name, &failure, n));
                failures.push(failure);
                if total_deadline.is_some_and(|d| Instant::now() >= d) {
                    deadline_hit = true;
                    break 'candidates;
                }
                break;
            }
        }
        let e = exhausted(&failures, &tried, deadline_hit);
        respond::send_error(session, ctx, &e).await;
    }
}
