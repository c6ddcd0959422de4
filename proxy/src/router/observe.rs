//! What the routing layer tells operators: each target's state per route as it changes
//! (a log line and `switchyard_target_state_changes_total`), hedge outcomes, and the
//! `/admin/targets` view that explains every state with its numbers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use switchyard_dsl::ir::{Selection, Snapshot, TargetId};

use super::health::HealthRegistry;
use super::standing::{Standing, degradation};
use super::stats::{StatsRegistry, Summary, clock_ms};
use crate::admin::Page;
use crate::config::ConfigHandle;

fn state_label(s: &Standing) -> &'static str {
    match s {
        Standing::Available { .. } => "healthy",
        Standing::Degraded(_) => "degraded",
        Standing::RateLimited(_) => "rate_limited",
        Standing::Ejected => "ejected",
    }
}

/// Routing events for metrics and logs.
#[derive(Debug)]
pub struct RoutingObserver {
    /// route → target → last state seen.
    states: RwLock<HashMap<String, HashMap<String, &'static str>>>,
    state_changes: IntCounterVec,
    hedges: IntCounterVec,
}

impl RoutingObserver {
    /// Registers the families on `registry`.
    pub fn new(registry: &Registry) -> Self {
        let state_changes = IntCounterVec::new(
            Opts::new(
                "switchyard_target_state_changes_total",
                "A target entered a state for a route: healthy, degraded (latency or error-rate \
                 trigger), rate_limited or ejected.",
            ),
            &["route", "target", "state"],
        )
        .expect("static metric definition is valid");
        let hedges = IntCounterVec::new(
            Opts::new(
                "switchyard_hedged_requests_total",
                "Requests that sent a hedge, by who produced the first token: first, hedge or \
                 neither.",
            ),
            &["route", "winner"],
        )
        .expect("static metric definition is valid");
        for c in [&state_changes, &hedges] {
            if let Err(e) = registry.register(Box::new(c.clone())) {
                tracing::warn!(error = %e, "routing metric not registered");
            }
        }
        Self {
            states: RwLock::new(HashMap::new()),
            state_changes,
            hedges,
        }
    }

    /// Notes a target's standing for a route; a change is counted and logged. Probe
    /// admissions change nothing: the target keeps its state until the numbers do.
    pub fn observe(&self, route: &str, target: &str, standing: &Standing) {
        if matches!(standing, Standing::Available { probe: true }) {
            return;
        }
        let state = state_label(standing);
        let known = self
            .states
            .read()
            .ok()
            .and_then(|m| m.get(route).and_then(|t| t.get(target)).copied());
        // A target starts healthy without a change being counted.
        if known == Some(state) || (known.is_none() && state == "healthy") {
            return;
        }
        if let Ok(mut m) = self.states.write() {
            m.entry(route.to_owned())
                .or_default()
                .insert(target.to_owned(), state);
        }
        self.state_changes
            .with_label_values(&[route, target, state])
            .inc();
        match standing.reason() {
            Some(why) => tracing::warn!(route, target, state, reason = why, "target state changed"),
            None => tracing::info!(route, target, state, "target state changed"),
        }
    }

    /// The state last seen for `target` on `route`, if it ever left `healthy`.
    pub fn state(&self, route: &str, target: &str) -> Option<&'static str> {
        self.states.read().ok()?.get(route)?.get(target).copied()
    }

    /// A hedged request ended; `winner` is `first`, `hedge` or `neither`.
    pub fn hedge(&self, route: &str, winner: &str) {
        self.hedges.with_label_values(&[route, winner]).inc();
    }
}

/// One route's view of a target.
#[derive(Debug, Serialize)]
struct RouteView {
    route: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// One target as `/admin/targets` shows it.
#[derive(Debug, Serialize)]
struct TargetView {
    target: String,
    /// The worst state any route gives it: ejected, rate_limited, degraded or healthy.
    state: &'static str,
    consecutive_failures: u32,
    /// Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    ejected_until: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limited_until: Option<u64>,
    in_flight: i64,
    /// Its routes, the ones not available first, at most [`ROUTES_PER_TARGET`].
    routes: Vec<RouteView>,
    /// How many routes use it.
    routes_total: usize,
    /// Measurements per window length in use.
    windows: Vec<Summary>,
}

fn unix_ms_in(ms: u64) -> u64 {
    crate::clock::unix_ms(SystemTime::now() + Duration::from_millis(ms))
}

fn route_targets(snapshot: &Snapshot, route: usize) -> Vec<TargetId> {
    let r = &snapshot.routes[route];
    let mut out: Vec<TargetId> = match &r.selection {
        Selection::Single(t) => vec![*t],
        Selection::Split(arms) => arms.iter().map(|a| a.target).collect(),
        Selection::Cheapest(ts) | Selection::Fastest { targets: ts, .. } => ts.clone(),
    };
    out.extend(&r.failover);
    out
}

/// `/admin/targets`: every target of the current snapshot with its state per route and why,
/// its percentiles, error rate and in-flight count (read without claiming probe slots).
#[derive(Debug)]
pub struct TargetsView {
    pub config: Arc<ConfigHandle>,
    pub health: Arc<HealthRegistry>,
    pub stats: Arc<StatsRegistry>,
    pub observer: Arc<RoutingObserver>,
}

/// Most routes listed under one target of `/admin/targets` (the ones not available first);
/// `routes_total` counts them all.
const ROUTES_PER_TARGET: usize = 20;

impl TargetsView {
    fn view(&self, page: Page) -> (Vec<TargetView>, usize) {
        let cfg = self.config.current();
        let snapshot = &cfg.snapshot;
        let now = clock_ms();
        let health = self.health.view();
        // Each target's routes, found in one pass over the routes.
        let mut routes_of = vec![Vec::new(); snapshot.targets.len()];
        for r in 0..snapshot.routes.len() {
            for t in route_targets(snapshot, r) {
                if let Some(list) = routes_of.get_mut(t.0 as usize)
                    && list.last() != Some(&r)
                {
                    list.push(r);
                }
            }
        }
        let total = snapshot.targets.len();
        let view = page
            .range(total)
            .map(|i| {
                let id = TargetId(i as u32);
                let name = snapshot.target_name(id);
                let stats = self.stats.target(&name);
                let h = health.iter().find(|h| h.target == name);
                let ejected = h.is_some_and(|h| h.state == "ejected");
                let limited = stats.rate_limited_for(now);
                let mut routes: Vec<RouteView> = routes_of[i]
                    .iter()
                    .map(|&r| {
                        let route = &snapshot.routes[r];
                        let standing = if ejected {
                            Standing::Ejected
                        } else if let Some(ms) = limited {
                            Standing::RateLimited(ms)
                        } else if let Some((why, _)) = degradation(
                            route,
                            &stats,
                            now,
                            self.observer.state(&route.name, &name) == Some("degraded"),
                        ) {
                            Standing::Degraded(why)
                        } else {
                            Standing::Available { probe: false }
                        };
                        RouteView {
                            route: route.name.clone(),
                            state: state_label(&standing),
                            reason: standing.reason(),
                        }
                    })
                    .collect();
                let rank = |s: &str| match s {
                    "ejected" => 3,
                    "rate_limited" => 2,
                    "degraded" => 1,
                    _ => 0,
                };
                let state = routes
                    .iter()
                    .map(|r| r.state)
                    .chain([if ejected { "ejected" } else { "healthy" }])
                    .chain(limited.map(|_| "rate_limited"))
                    .max_by_key(|s| rank(s))
                    .unwrap_or("healthy");
                let routes_total = routes.len();
                // Stable: policy order within each state, the worst states first.
                routes.sort_by_key(|r| std::cmp::Reverse(rank(r.state)));
                routes.truncate(ROUTES_PER_TARGET);
                TargetView {
                    target: name.clone(),
                    state,
                    consecutive_failures: h.map_or(0, |h| h.consecutive_failures),
                    ejected_until: h.and_then(|h| h.ejected_until),
                    rate_limited_until: limited.map(unix_ms_in),
                    in_flight: stats.in_flight.load(std::sync::atomic::Ordering::Relaxed),
                    routes,
                    routes_total,
                    windows: stats.summaries().iter().map(|s| (**s).clone()).collect(),
                }
            })
            .collect();
        (view, total)
    }
}

impl crate::admin::TargetHealth for TargetsView {
    fn targets_json(&self, page: Page) -> serde_json::Value {
        let (targets, total) = self.view(page);
        serde_json::json!({
            "targets": targets,
            "total": total,
            "next_offset": page.next_offset(total),
        })
    }
}
