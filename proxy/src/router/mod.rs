//! The runtime router: walks a decision's candidates in the order [`select`] gives (targets
//! out of rotation last), retries a target with backoff for the route's triggers, hedges the
//! first attempt with the next candidate when the route says so, fails over, and answers
//! 502/503/504 with what was tried when every candidate failed. Every attempt feeds the
//! target's [`stats`]. Nothing is retried once a byte reached the client.

pub mod active;
pub mod attempt;
pub mod classify;
pub mod health;
pub mod observe;
pub mod select;
pub mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::proxy::Session;
use switchyard_dsl::Decision;
use switchyard_dsl::ir::{ErrorClass, Route, Snapshot};

use self::attempt::{AttemptPlan, OpenFailure, Opened, Outcome};
use self::classify::{Failure, MAX_RATE_LIMIT_WAIT, backoff};
use self::health::HealthRegistry;
use self::observe::RoutingObserver;
use self::select::{Candidate, Standing};
use self::stats::{Sample, StatsRegistry, TargetStats, clock_ms};
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
    pub stats: Arc<StatsRegistry>,
    pub observer: Arc<RoutingObserver>,
    pub metrics: Arc<Metrics>,
}

/// How a hedged first attempt ended.
enum Race<'p> {
    /// The first attempt finished (opened or failed) before the hedge delay: no hedge sent.
    Unhedged(Result<Opened, OpenFailure>),
    /// The hedge (`hedge_plan`) was sent. `winner`: 0 = the first candidate, 1 = the hedge;
    /// the other was cancelled (its connection dropped) after waiting `loser_waited`.
    Won {
        winner: usize,
        opened: Opened,
        loser_waited: Option<Duration>,
        failures: Vec<(usize, OpenFailure)>,
        hedge_plan: AttemptPlan<'p>,
    },
    /// Both failed.
    BothFailed {
        failures: Vec<(usize, OpenFailure)>,
        hedge_plan: AttemptPlan<'p>,
    },
}

/// Runs `a`; when it has no first token after `delay`, plans the hedge (only then: a plan
/// copies the body) and runs it too. The first to produce a token wins; dropping the other's
/// future closes its upstream connection.
async fn race<'p>(
    providers: &Providers,
    a: &AttemptPlan<'p>,
    plan_hedge: impl FnOnce() -> AttemptPlan<'p>,
    delay: Duration,
) -> Race<'p> {
    let first = attempt::open(providers, a);
    tokio::pin!(first);
    tokio::select! {
        r = &mut first => return Race::Unhedged(r),
        () = tokio::time::sleep(delay) => {}
    }
    let hedge_started = Instant::now();
    let started = hedge_started - delay;
    let hedge_plan = plan_hedge();
    let mut failures: Vec<(usize, OpenFailure)> = Vec::new();
    let won = {
        let hedge = attempt::open(providers, &hedge_plan);
        tokio::pin!(hedge);
        let (mut first_done, mut hedge_done) = (false, false);
        loop {
            if first_done && hedge_done {
                break None;
            }
            tokio::select! {
                r = &mut first, if !first_done => match r {
                    Ok(opened) => {
                        let loser_waited = (!hedge_done).then(|| hedge_started.elapsed());
                        break Some((0, opened, loser_waited));
                    }
                    Err(f) => {
                        first_done = true;
                        failures.push((0, f));
                    }
                },
                r = &mut hedge, if !hedge_done => match r {
                    Ok(opened) => {
                        let loser_waited = (!first_done).then(|| started.elapsed());
                        break Some((1, opened, loser_waited));
                    }
                    Err(f) => {
                        hedge_done = true;
                        failures.push((1, f));
                    }
                },
            }
        }
        // The loser's future is dropped here: its connection closes.
    };
    match won {
        Some((winner, opened, loser_waited)) => Race::Won {
            winner,
            opened,
            loser_waited,
            failures,
            hedge_plan,
        },
        None => Race::BothFailed {
            failures,
            hedge_plan,
        },
    }
}

/// What a failed attempt tells the statistics: a timeout is a (lower bound) latency sample
/// and an error; other failures that count against health are errors; the client's own
/// mistakes (400s) say nothing about the target.
fn failure_sample(f: &OpenFailure) -> Option<Sample> {
    if f.failure.class == ErrorClass::Timeout {
        let ms = f.waited.as_secs_f64() * 1e3;
        return Some(Sample {
            ttft_ms: Some(ms),
            total_ms: Some(ms),
            error: true,
        });
    }
    f.failure.counts_against_health().then_some(Sample {
        error: true,
        ..Sample::default()
    })
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

/// Health and statistics of target `name` after an attempt that failed before reaching a
/// client (or an active health check that failed).
pub(crate) fn note_failure(
    health: &HealthRegistry,
    name: &str,
    stats: &TargetStats,
    f: &OpenFailure,
) {
    if f.failure.counts_against_health() {
        health.failure(name);
    }
    if let Some(s) = failure_sample(f) {
        stats.record(s);
    }
    if f.failure.class == ErrorClass::RateLimited
        && let Some(wait) = f.failure.retry_after
    {
        let wait = wait.min(MAX_RATE_LIMIT_WAIT).as_millis() as u64;
        stats.rate_limit_until(clock_ms() + wait);
    }
}

impl Router {
    fn plan<'a>(
        &self,
        job: &Job<'a>,
        c: &Candidate,
        total_deadline: Option<Instant>,
    ) -> AttemptPlan<'a> {
        let target = job.snapshot.target(c.target);
        let provider = job.snapshot.provider(target.provider);
        AttemptPlan {
            endpoint: job.endpoint,
            timeouts: &job.decision.route().timeouts,
            provider,
            credential: job.credentials.get(target.provider.0 as usize),
            model: &target.model,
            body: Bytes::from(job.body.rebuild(&target.model)),
            stream: job.body.stream,
            total_deadline,
            native: job.native.cloned(),
            stats: Arc::clone(&c.stats),
        }
    }

    /// An attempt on `c` is over; a probe's end starts the wait for the next probe.
    fn attempt_over(c: &Candidate) {
        if c.standing == (Standing::Available { probe: true }) {
            c.stats.probe_done(clock_ms());
        }
    }

    /// Health and statistics after an attempt that failed before reaching the client.
    fn note_failure(&self, c: &Candidate, f: &OpenFailure) {
        Self::attempt_over(c);
        note_failure(&self.health, &c.name, &c.stats, f);
    }

    /// Sends an opened attempt to the client and records how it went.
    async fn commit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Route,
        c: &Candidate,
        plan: &AttemptPlan<'_>,
        opened: Opened,
    ) -> Result<(), OpenFailure> {
        // Already set when the attempt began, unless a hedge answered instead.
        if ctx.provider.as_deref() != Some(plan.provider.name.as_str())
            || ctx.model.as_deref() != Some(plan.model)
        {
            ctx.provider = Some(plan.provider.name.clone());
            ctx.model = Some(plan.model.to_owned());
        }
        if let Some(d) = opened.rate_limited_for {
            c.stats.rate_limit_until(clock_ms() + d.as_millis() as u64);
        }
        let (started, ttft) = (opened.started, opened.ttft);
        match attempt::commit(&self.metrics, session, ctx, plan, opened).await {
            Outcome::Served { ok } => {
                if ok {
                    self.health.success(&c.name);
                } else {
                    self.health.failure(&c.name);
                }
                Self::attempt_over(c);
                let mut sample = Sample::ok(ttft, started.elapsed());
                sample.error = !ok;
                c.stats.record(sample);
                let outcome = if ok { "ok" } else { "error" };
                self.metrics
                    .upstream_attempt(&route.name, &plan.provider.name, outcome);
                Ok(())
            }
            Outcome::Failed(failure, response) => Err(OpenFailure {
                failure,
                response,
                waited: started.elapsed(),
            }),
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
        let (order, passed_over) = match ctx.downgrade {
            // An exhausted budget's downgrade target replaces the route's candidates.
            Some(t) => {
                let name = job.snapshot.target_name(t);
                let only = Candidate {
                    target: t,
                    stats: self.stats.target(&name),
                    name,
                    standing: Standing::Available { probe: false },
                };
                (vec![only], Vec::new())
            }
            None => {
                let mut rng = fastrand::Rng::new();
                select::order(
                    job.snapshot,
                    &job.decision,
                    &self.stats,
                    &self.health,
                    &self.observer,
                    &mut rng,
                )
            }
        };
        ctx.rerouted = passed_over;
        // A request the provider keeps (`store: true`) is never sent twice.
        let may_hedge = route.hedge.is_some() && !job.body.stores();
        let mut failures: Vec<Failure> = Vec::new();
        let mut tried: Vec<String> = Vec::new();
        let mut deadline_hit = false;
        let mut i = 0;
        'candidates: while i < order.len() {
            let c = &order[i];
            let plan = self.plan(&job, c, total_deadline);
            let provider = plan.provider;
            ctx.provider = Some(provider.name.clone());
            ctx.model = Some(plan.model.to_owned());
            let last_candidate = i + 1 == order.len();
            let mut n = 0;
            loop {
                n += 1;
                ctx.attempts += 1;
                let hedge = order
                    .get(i + 1)
                    .filter(|_| may_hedge && n == 1)
                    .and_then(|next| Some((next, select::hedge_delay(route, &c.stats)?)));
                let opened = match hedge {
                    None => attempt::open(&self.providers, &plan).await,
                    Some((next, delay)) => {
                        let plan_hedge = || self.plan(&job, next, total_deadline);
                        match race(&self.providers, &plan, plan_hedge, delay).await {
                            Race::Unhedged(r) => r,
                            Race::Won {
                                winner,
                                opened,
                                loser_waited,
                                failures: lost,
                                hedge_plan,
                            } => {
                                ctx.attempts += 1;
                                let pair = [(c, &plan), (next, &hedge_plan)];
                                for (k, f) in &lost {
                                    let (lc, lp) = pair[*k];
                                    self.note_failure(lc, f);
                                    self.metrics.upstream_attempt(
                                        &route.name,
                                        &lp.provider.name,
                                        "failover",
                                    );
                                    ctx.rerouted
                                        .push(format!("{}: {}", lc.name, f.failure.detail));
                                }
                                let (wc, wp) = pair[winner];
                                let (lc, lp) = pair[1 - winner];
                                if let Some(waited) = loser_waited {
                                    Self::attempt_over(lc);
                                    // Cancelled without a token: it was at least this slow.
                                    lc.stats.record(Sample {
                                        ttft_ms: Some(waited.as_secs_f64() * 1e3),
                                        ..Sample::default()
                                    });
                                    self.metrics.upstream_attempt(
                                        &route.name,
                                        &lp.provider.name,
                                        "hedge_cancelled",
                                    );
                                }
                                let who = if winner == 0 { "first" } else { "hedge" };
                                self.observer.hedge(&route.name, who);
                                ctx.hedged = Some(format!(
                                    "{} answered first; hedge sent to {} after {}ms",
                                    wc.name,
                                    next.name,
                                    delay.as_millis()
                                ));
                                match self.commit(session, ctx, route, wc, wp, opened).await {
                                    Ok(()) => return,
                                    Err(f) => {
                                        self.note_failure(wc, &f);
                                        tried.push(tried_line(&wc.name, &f.failure, 1));
                                        failures.push(f.failure);
                                        i += 2;
                                        continue 'candidates;
                                    }
                                }
                            }
                            Race::BothFailed {
                                failures: lost,
                                hedge_plan,
                            } => {
                                ctx.attempts += 1;
                                self.observer.hedge(&route.name, "neither");
                                let pair = [(c, &plan), (next, &hedge_plan)];
                                let mut pass_through = None;
                                for (k, f) in lost {
                                    let (lc, lp) = pair[k];
                                    self.note_failure(lc, &f);
                                    self.metrics.upstream_attempt(
                                        &route.name,
                                        &lp.provider.name,
                                        "failover",
                                    );
                                    if !f.failure.triggers(&route.triggers)
                                        && pass_through.is_none()
                                        && f.response.is_some()
                                    {
                                        pass_through = Some(f);
                                        continue;
                                    }
                                    tried.push(tried_line(&lc.name, &f.failure, 1));
                                    failures.push(f.failure);
                                }
                                if let Some(f) = pass_through {
                                    self.pass_through(session, ctx, f).await;
                                    return;
                                }
                                i += 2;
                                continue 'candidates;
                            }
                        }
                    }
                };
                let f = match opened {
                    Ok(opened) => match self.commit(session, ctx, route, c, &plan, opened).await {
                        Ok(()) => return,
                        Err(f) => f,
                    },
                    Err(f) => f,
                };
                self.note_failure(c, &f);
                if !f.failure.triggers(&route.triggers) {
                    self.metrics
                        .upstream_attempt(&route.name, &provider.name, "error");
                    if f.response.is_some() {
                        // Not the policy's business: the client sees what the provider said.
                        self.pass_through(session, ctx, f).await;
                        return;
                    }
                    tried.push(tried_line(&c.name, &f.failure, n));
                    failures.push(f.failure);
                    break 'candidates;
                }
                let failure = f.failure;
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
                ctx.rerouted.push(format!("{}: {}", c.name, failure.detail));
                tried.push(tried_line(&c.name, &failure, n));
                failures.push(failure);
                if total_deadline.is_some_and(|d| Instant::now() >= d) {
                    deadline_hit = true;
                    break 'candidates;
                }
                break;
            }
            i += 1;
        }
        let e = exhausted(&failures, &tried, deadline_hit);
        respond::send_error(session, ctx, &e).await;
    }

    /// Relays a provider's error response the route's triggers do not act on.
    async fn pass_through(&self, session: &mut Session, ctx: &mut RequestCtx, f: OpenFailure) {
        let Some(mut r) = f.response else {
            return;
        };
        if crate::api::anthropic::is_client(ctx) {
            r.body = crate::api::anthropic::response_body(r.status, &r.body, "");
            r.content_type = "application/json".into();
        }
        let h = respond::header(r.status, &r.content_type, Some(r.body.len()), ctx);
        ctx.error = Some(f.failure.detail.clone());
        respond::send(session, ctx, h, r.body, r.retry_after.as_deref()).await;
    }
}
