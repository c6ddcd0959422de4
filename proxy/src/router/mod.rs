//! The runtime router: walks a decision's candidates in the order [`select`] gives (targets
//! out of rotation last), retries a target with backoff for the route's triggers, hedges the
//! first attempt with the next candidate when the route says so, fails over, and answers
//! 502/503/504 with what was tried when every candidate failed. Every attempt feeds the
//! target's [`stats`]. Nothing is retried once a byte reached the client.

pub mod active;
pub mod affinity;
pub mod attempt;
pub mod classify;
pub mod failover;
pub mod health;
pub mod hedge;
pub mod observe;
pub mod select;
pub mod session;
pub mod standing;
pub mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::proxy::Session;
use switchyard_dsl::Decision;
use switchyard_dsl::ir::{ErrorClass, Route, Snapshot};

use self::attempt::{AttemptPlan, OpenFailure, Opened, Outcome};
use self::classify::MAX_RATE_LIMIT_WAIT;
use self::failover::{Exhausted, Step};
use self::health::HealthRegistry;
use self::hedge::{HedgeEnd, Race, Won};
use self::observe::RoutingObserver;
use self::select::Candidate;
use self::standing::Standing;
use self::stats::{Sample, StatsRegistry, TargetStats, clock_ms};
use crate::api::request::RequestBody;
use crate::api::{Endpoint, respond};
use crate::config::CredentialState;
use crate::ctx::RequestCtx;
use crate::metrics::Metrics;
use crate::providers::Providers;

/// A routed request, ready to be sent.
#[derive(Debug)]
pub struct Job<'a> {
    pub snapshot: &'a Snapshot,
    pub credentials: &'a [CredentialState],
    pub decision: Decision<'a>,
    pub body: &'a RequestBody<'a>,
    pub endpoint: Endpoint,
    /// The client's own request when its API is not OpenAI's chat (an Anthropic Messages or
    /// a Responses body).
    pub native: Option<&'a crate::api::anthropic::Native>,
    /// The request's budget reservation and cache capture buffer.
    pub holds: attempt::Holds<'a>,
    /// The request's trace: each attempt records a client span in it.
    pub trace: Option<Arc<crate::telemetry::RequestTrace>>,
}

/// One candidate's turn in [`Router::serve`].
struct Turn<'j, 'a> {
    job: &'j Job<'a>,
    candidate: &'j Candidate,
    /// The next candidate and the delay after which it is sent as a hedge of the first
    /// attempt, when the route hedges.
    hedge: Option<(&'j Candidate, Duration)>,
    /// No candidate comes after this one.
    last: bool,
    total_deadline: Option<Instant>,
}

/// Where a candidate's turn left the request.
enum Moved {
    /// The client has its answer (or the provider's error, relayed).
    Answered,
    /// Go on with the candidate this many places further.
    On { candidates: usize },
    /// Stop trying: the client gets the error listing what was tried.
    Stop,
}

/// Shared router state.
#[derive(Debug)]
pub struct Router {
    pub providers: Providers,
    pub health: Arc<HealthRegistry>,
    pub stats: Arc<StatsRegistry>,
    pub observer: Arc<RoutingObserver>,
    pub metrics: Arc<Metrics>,
    /// Session memory and load of routes with `affinity`.
    pub affinity: Arc<affinity::AffinityState>,
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
            holds: job.holds,
            trace: job.trace.clone(),
            hedge: false,
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
        // A moved session may have been remembered by another replica.
        if let (Some(s), Some(a), None) = (
            job.decision.session(),
            route.affinity.as_ref(),
            ctx.downgrade,
        ) {
            self.affinity
                .refresh(s, Duration::from_millis(a.idle_ms))
                .await;
        }
        let (order, passed_over, pick) = match ctx.downgrade {
            // An exhausted budget's downgrade target replaces the route's candidates.
            Some(t) => {
                let name = job.snapshot.target_name(t);
                let only = Candidate {
                    target: t,
                    stats: self.stats.target(&name),
                    name,
                    standing: Standing::Available { probe: false },
                };
                (vec![only], Vec::new(), select::AffinityPick::default())
            }
            None => {
                let mut rng = fastrand::Rng::new();
                let registries = select::Registries {
                    stats: &self.stats,
                    health: &self.health,
                    observer: &self.observer,
                    affinity: &self.affinity,
                };
                select::order(job.snapshot, &job.decision, registries, &mut rng)
            }
        };
        ctx.rerouted = passed_over;
        // A session's request counts against its first target's load until it is over.
        let sticky = job
            .decision
            .session()
            .zip(route.affinity.as_ref())
            .filter(|_| ctx.downgrade.is_none());
        let _in_flight = sticky
            .and(order.first())
            .map(|c| self.affinity.start(&route.name, &c.name));
        // A request the provider keeps (`store: true`) is never sent twice.
        let may_hedge = route.hedge.is_some() && !job.body.stores();
        let mut exhausted = Exhausted::default();
        let mut i = 0;
        while i < order.len() {
            let c = &order[i];
            let hedge = order
                .get(i + 1)
                .filter(|_| may_hedge)
                .and_then(|next| Some((next, select::hedge_delay(route, &c.stats)?)));
            let candidate = Turn {
                job: &job,
                candidate: c,
                hedge,
                last: i + 1 == order.len(),
                total_deadline,
            };
            match self
                .try_candidate(session, ctx, candidate, &mut exhausted)
                .await
            {
                Moved::Answered => {
                    if let Some((s, a)) = sticky {
                        self.remember(ctx, s, a, &pick).await;
                    }
                    return;
                }
                Moved::On { candidates } => i += candidates,
                Moved::Stop => break,
            }
        }
        respond::send_error(session, ctx, &exhausted.error()).await;
    }

    /// After a session's request was answered: where it went, unless that was an error or a
    /// spill past a loaded target.
    async fn remember(
        &self,
        ctx: &RequestCtx,
        session: u64,
        affinity: &switchyard_dsl::ir::Affinity,
        pick: &select::AffinityPick,
    ) {
        let (Some(provider), Some(model)) = (&ctx.provider, &ctx.model) else {
            return;
        };
        if !(200..300).contains(&ctx.status) {
            return;
        }
        let served = format!("{provider}/{model}");
        if pick.spilled_to.as_deref() == Some(served.as_str()) {
            return;
        }
        let idle = Duration::from_millis(affinity.idle_ms);
        self.affinity
            .served_shared(session, pick.home.as_deref(), &served, idle)
            .await;
    }

    /// Sends attempts to one candidate (hedged on the first one when `turn.hedge` says so)
    /// until it answers or [`failover::next`] moves on.
    async fn try_candidate(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        turn: Turn<'_, '_>,
        exhausted: &mut Exhausted,
    ) -> Moved {
        let (job, c) = (turn.job, turn.candidate);
        let route = job.decision.route();
        let plan = self.plan(job, c, turn.total_deadline);
        let provider = plan.provider;
        ctx.provider = Some(provider.name.clone());
        ctx.model = Some(plan.model.to_owned());
        let mut n = 0;
        loop {
            n += 1;
            ctx.attempts += 1;
            let opened = match turn.hedge.filter(|_| n == 1) {
                None => attempt::open(&self.providers, &plan).await,
                Some((next, delay)) => {
                    // Planned only when the hedge is sent: a plan copies the body.
                    let hedge_plan = std::sync::OnceLock::new();
                    let start_hedge = || {
                        let p = hedge_plan.get_or_init(|| AttemptPlan {
                            hedge: true,
                            ..self.plan(job, next, turn.total_deadline)
                        });
                        attempt::open(&self.providers, p)
                    };
                    let first = attempt::open(&self.providers, &plan);
                    match hedge::race(first, start_hedge, delay).await {
                        Race::Unhedged(r) => r,
                        Race::Hedged(end) => {
                            let hedge_plan = hedge_plan.get().expect("planned when it started");
                            let pair = [(c, &plan), (next, hedge_plan)];
                            return self
                                .hedge_over(session, ctx, route, pair, delay, end, exhausted)
                                .await;
                        }
                    }
                }
            };
            let f = match opened {
                Ok(opened) => match self.commit(session, ctx, route, c, &plan, opened).await {
                    Ok(()) => return Moved::Answered,
                    Err(f) => f,
                },
                Err(f) => f,
            };
            self.note_failure(c, &f);
            let step = failover::next(
                &route.triggers,
                &route.retry,
                &f.failure,
                f.response.is_some(),
                n,
                Instant::now(),
                turn.total_deadline,
            );
            let attempt = |outcome| {
                self.metrics
                    .upstream_attempt(&route.name, &provider.name, outcome);
            };
            match step {
                Step::Retry(wait) => {
                    attempt("retry");
                    tokio::time::sleep(wait).await;
                }
                Step::PassThrough => {
                    attempt("error");
                    // Not the policy's business: the client sees what the provider said.
                    self.pass_through(session, ctx, f).await;
                    return Moved::Answered;
                }
                Step::Stop => {
                    attempt("error");
                    exhausted.record(&c.name, f.failure, n);
                    return Moved::Stop;
                }
                Step::Next | Step::Deadline => {
                    attempt(if turn.last { "error" } else { "failover" });
                    ctx.rerouted
                        .push(format!("{}: {}", c.name, f.failure.detail));
                    exhausted.record(&c.name, f.failure, n);
                    if step == Step::Deadline {
                        exhausted.deadline_hit = true;
                        return Moved::Stop;
                    }
                    return Moved::On { candidates: 1 };
                }
            }
        }
    }

    /// The bookkeeping of a hedged first attempt once both ran: failures and the cancelled
    /// loser feed their targets' statistics, the winner is committed; when both failed, an
    /// answer the route does not act on is relayed. Either way both candidates are used up.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the race's whole state"
    )]
    async fn hedge_over(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Route,
        pair: [(&Candidate, &AttemptPlan<'_>); 2],
        delay: Duration,
        end: HedgeEnd<Opened, OpenFailure>,
        exhausted: &mut Exhausted,
    ) -> Moved {
        ctx.attempts += 1;
        let both = Moved::On { candidates: 2 };
        let HedgeEnd { failures, won } = end;
        let mut pass_through = None;
        for (k, f) in failures {
            let (lc, lp) = pair[k];
            self.note_failure(lc, &f);
            self.metrics
                .upstream_attempt(&route.name, &lp.provider.name, "failover");
            if won.is_some() {
                ctx.rerouted
                    .push(format!("{}: {}", lc.name, f.failure.detail));
            } else if !f.failure.triggers(&route.triggers)
                && pass_through.is_none()
                && f.response.is_some()
            {
                pass_through = Some(f);
            } else {
                exhausted.record(&lc.name, f.failure, 1);
            }
        }
        let Some(Won {
            winner,
            opened,
            loser_waited,
        }) = won
        else {
            self.observer.hedge(&route.name, "neither");
            if let Some(f) = pass_through {
                self.pass_through(session, ctx, f).await;
                return Moved::Answered;
            }
            return both;
        };
        let (wc, wp) = pair[winner];
        let (lc, lp) = pair[1 - winner];
        if let Some(waited) = loser_waited {
            Self::attempt_over(lc);
            // Cancelled without a token: it was at least this slow.
            lc.stats.record(Sample {
                ttft_ms: Some(waited.as_secs_f64() * 1e3),
                ..Sample::default()
            });
            self.metrics
                .upstream_attempt(&route.name, &lp.provider.name, "hedge_cancelled");
        }
        let who = if winner == 0 { "first" } else { "hedge" };
        self.observer.hedge(&route.name, who);
        ctx.hedged = Some(format!(
            "{} answered first; hedge sent to {} after {}ms",
            wc.name,
            pair[1].0.name,
            delay.as_millis()
        ));
        match self.commit(session, ctx, route, wc, wp, opened).await {
            Ok(()) => Moved::Answered,
            Err(f) => {
                self.note_failure(wc, &f);
                exhausted.record(&wc.name, f.failure, 1);
                both
            }
        }
    }

    /// Relays a provider's error response the route's triggers do not act on.
    async fn pass_through(&self, session: &mut Session, ctx: &mut RequestCtx, f: OpenFailure) {
        let Some(mut r) = f.response else {
            return;
        };
        (r.body, r.content_type) = ctx.client.relayed_error(r.status, r.body, r.content_type);
        let h = respond::header(r.status, &r.content_type, Some(r.body.len()), ctx);
        ctx.error = Some(f.failure.detail.clone());
        respond::send(session, ctx, h, r.body, r.retry_after.as_deref()).await;
    }
}
