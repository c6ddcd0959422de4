//! Which candidates a request tries, in which order: a decision's candidates with each
//! target's standing applied. Targets a route's latency or error-rate triggers find
//! degraded, targets the provider asked us to leave alone (rate limits) and targets the
//! health registry ejected move behind the available ones; a split whose drawn arm is out
//! redraws among the available arms by weight; `fastest of` ranks its members by the
//! measured percentile with a small exploration share. On a route with `affinity`, a session
//! goes to its remembered target while that is in, a split's session whose arm is out takes
//! its next rendezvous choice instead of a redraw, and an arm at its load cap spills the
//! request to the next choice (see [`super::affinity`]).

use std::sync::Arc;

use switchyard_dsl::Decision;
use switchyard_dsl::ir::{
    HedgeDelay, LatencyMetric, Route, Selection, Snapshot, TargetId, WeightedTarget,
};

use super::affinity::AffinityState;
use super::health::HealthRegistry;
use super::observe::RoutingObserver;
use super::standing::{Standing, standing};
use super::stats::{RANKING_MIN_SAMPLES, RANKING_WINDOW_MS, StatsRegistry, TargetStats, clock_ms};

/// One candidate in the order it will be tried.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub target: TargetId,
    pub name: String,
    pub stats: Arc<TargetStats>,
    pub standing: Standing,
}

/// Redraws a split among the arms `available` admits, by weight; `draw` in `[0, 1)`.
pub fn redraw_split(
    arms: &[WeightedTarget],
    available: impl Fn(TargetId) -> bool,
    draw: f64,
) -> Option<TargetId> {
    let total: u32 = arms
        .iter()
        .filter(|a| available(a.target))
        .map(|a| a.weight)
        .sum();
    if total == 0 {
        return None;
    }
    let mut point = draw * f64::from(total);
    for a in arms.iter().filter(|a| available(a.target)) {
        let w = f64::from(a.weight);
        if point < w {
            return Some(a.target);
        }
        point -= w;
    }
    arms.iter()
        .rev()
        .find(|a| available(a.target))
        .map(|a| a.target)
}

/// Orders `members` (available ones) by their measured `by` percentile, fastest first;
/// members without [`RANKING_MIN_SAMPLES`] in the ranking window follow in declared order.
/// With probability `explore_bp / 10_000` another member goes first (an unmeasured one when
/// there is one) so every member stays measured.
pub fn rank_fastest(
    members: &mut [Candidate],
    by: LatencyMetric,
    explore_bp: u32,
    now_ms: u64,
    rng: &mut fastrand::Rng,
) {
    let measure = |c: &Candidate| {
        let s = c.stats.series(RANKING_WINDOW_MS).summary_at(now_ms);
        match s.percentile(by) {
            (Some(v), n) if n >= RANKING_MIN_SAMPLES => Some(v),
            _ => None,
        }
    };
    let mut keyed: Vec<(Option<f64>, usize)> = members
        .iter()
        .enumerate()
        .map(|(i, c)| (measure(c), i))
        .collect();
    keyed.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x.total_cmp(&y).then(a.1.cmp(&b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    let explore = members.len() > 1 && rng.u32(0..10_000) < explore_bp;
    if explore {
        let unmeasured: Vec<usize> = (1..keyed.len()).filter(|&i| keyed[i].0.is_none()).collect();
        let pick = if unmeasured.is_empty() {
            rng.usize(1..keyed.len())
        } else {
            unmeasured[rng.usize(..unmeasured.len())]
        };
        let chosen = keyed.remove(pick);
        keyed.insert(0, chosen);
    }
    let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    let original = members.to_vec();
    for (slot, i) in members.iter_mut().zip(order) {
        *slot = original[i].clone();
    }
}

/// The registries a candidate order reads.
#[derive(Debug, Clone, Copy)]
pub struct Registries<'a> {
    pub stats: &'a StatsRegistry,
    pub health: &'a HealthRegistry,
    pub observer: &'a RoutingObserver,
    pub affinity: &'a AffinityState,
}

/// How affinity shaped an order: the session's first choice, and a target that took the
/// request only because the one before it was at its load cap (not remembered).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AffinityPick {
    pub home: Option<String>,
    pub spilled_to: Option<String>,
}

/// The order in which a request tries its candidates, and the targets passed over for
/// others (`name: why`, for the `x-switchyard-failover` header): those out of rotation that
/// the decision would have tried before one that is in.
pub fn order(
    snapshot: &Snapshot,
    decision: &Decision<'_>,
    reg: Registries<'_>,
    rng: &mut fastrand::Rng,
) -> (Vec<Candidate>, Vec<String>, AffinityPick) {
    let Registries {
        stats,
        health,
        observer,
        affinity,
    } = reg;
    let session = decision.session();
    let mut pick = AffinityPick::default();
    let route = decision.route();
    let now = clock_ms();
    let candidate = |t: TargetId| {
        let name = snapshot.target_name(t);
        let stats = stats.target(&name);
        let was_degraded = observer.state(&route.name, &name) == Some("degraded");
        let checked = snapshot
            .provider(snapshot.target(t).provider)
            .health_check
            .is_some();
        let standing = standing(route, &name, &stats, health, now, was_degraded, checked);
        Candidate {
            target: t,
            name,
            stats,
            standing,
        }
    };
    let mut all: Vec<Candidate> = decision.candidates().map(candidate).collect();
    for c in &all {
        observer.observe(&route.name, &c.name, &c.standing);
    }
    // The order the decision alone would have tried, to tell who was passed over.
    let decided: Vec<(TargetId, Option<String>)> = all
        .iter()
        .map(|c| {
            (
                c.target,
                c.standing.reason().map(|r| format!("{}: {r}", c.name)),
            )
        })
        .collect();
    let mut drawn_arm = None;
    pick.home = match (&route.selection, session) {
        (Selection::Fastest { .. }, _) | (_, None) => None,
        _ => all.first().map(|c| c.name.clone()),
    };
    let moved_to = session.and_then(|s| affinity.moved_to(s));
    match &route.selection {
        Selection::Split(arms) if all.first().is_some_and(|c| !c.standing.available()) => {
            // The drawn arm is out: draw again among the arms that are in, by weight, or take
            // the session's next choice.
            let others: Vec<Candidate> = arms
                .iter()
                .filter(|a| a.target != all[0].target)
                .map(|a| candidate(a.target))
                .collect();
            let ok = |t: TargetId| {
                others
                    .iter()
                    .any(|c| c.target == t && c.standing.available())
            };
            let next = match session {
                Some(s) => {
                    switchyard_dsl::affinity::choose(snapshot, arms, s, ok).map(|i| arms[i].target)
                }
                None => redraw_split(arms, ok, rng.f64()),
            };
            if let Some(t) = next
                && let Some(c) = others.into_iter().find(|c| c.target == t)
            {
                drawn_arm = Some(all[0].target);
                all.retain(|x| x.target != t);
                all.insert(0, c);
            }
        }
        Selection::Fastest {
            targets,
            by,
            explore_bp,
        } => {
            // The members come first among the candidates; rank the available ones among them.
            let n = all
                .iter()
                .take_while(|c| targets.contains(&c.target))
                .count();
            let (members, _) = all.split_at_mut(n);
            members.sort_by_key(|c| !c.standing.available());
            let up = members.iter().filter(|c| c.standing.available()).count();
            rank_fastest(&mut members[..up], *by, *explore_bp, now, rng);
        }
        _ => {}
    }
    if let Some(name) = moved_to {
        // A session that moved stays where it went while that target is in.
        let known = all.iter().position(|c| *c.name == *name);
        let c = match known {
            Some(i) => Some(all.remove(i)),
            None => session_target(snapshot, route, &name).map(candidate),
        };
        match (c, known) {
            (Some(c), _) if c.standing.available() => all.insert(0, c),
            // Out: it keeps its place if the decision had it, else it is not tried.
            (Some(c), Some(i)) => all.insert(i, c),
            _ => {}
        }
    } else if let (Some(s), Selection::Split(arms)) = (session, &route.selection) {
        spill(
            snapshot,
            &route.name,
            arms,
            s,
            affinity,
            &mut all,
            &candidate,
            &mut pick,
        );
    }
    let (mut out, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(|c| c.standing.available());
    // Degraded and rate-limited targets are a last resort (slow answers before none, then the
    // rate limit that ends soonest); ejected ones only when nothing else is left (the circuit
    // is open).
    let (ejected, mut last_resort): (Vec<_>, Vec<_>) = rest
        .into_iter()
        .partition(|c| c.standing == Standing::Ejected);
    last_resort.sort_by_key(|c| match c.standing {
        Standing::RateLimited(ms) => ms,
        _ => 0,
    });
    out.extend(last_resort);
    if out.is_empty() {
        out = ejected;
    }
    let position = |t: TargetId| out.iter().position(|c| c.target == t);
    let passed_over = decided
        .iter()
        .enumerate()
        .filter_map(|(k, (t, why))| {
            let why = why.as_ref()?;
            let overtaken = match position(*t) {
                // Left out altogether (an open circuit) while others are tried.
                None => !out.is_empty(),
                Some(p) => {
                    Some(*t) == drawn_arm
                        || decided[k + 1..]
                            .iter()
                            .any(|(later, _)| position(*later).is_some_and(|q| q < p))
                }
            };
            overtaken.then(|| why.clone())
        })
        .collect();
    (out, passed_over, pick)
}

/// The target named `name` if it is one of the route's split arms or candidates (a session
/// remembered under an older policy may name a target this one no longer routes to).
fn session_target(snapshot: &Snapshot, route: &Route, name: &str) -> Option<TargetId> {
    let arms = match &route.selection {
        Selection::Split(arms) => arms.as_slice(),
        _ => &[],
    };
    arms.iter()
        .map(|a| a.target)
        .chain(route.failover.iter().copied())
        .find(|&t| snapshot.target_name(t) == name)
}

/// Bounded load: when the first candidate (a split arm) is at its cap, the session's next
/// choice among the available arms under their caps takes this request.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the parts of `order` it needs"
)]
fn spill(
    snapshot: &Snapshot,
    route: &str,
    arms: &[WeightedTarget],
    session: u64,
    affinity: &AffinityState,
    all: &mut Vec<Candidate>,
    candidate: &dyn Fn(TargetId) -> Candidate,
    pick: &mut AffinityPick,
) {
    let total: u32 = arms.iter().map(|a| a.weight).sum::<u32>().max(1);
    let share = |t: TargetId| {
        arms.iter()
            .find(|a| a.target == t)
            .map_or(0.0, |a| f64::from(a.weight) / f64::from(total))
    };
    let Some(first) = all.first() else { return };
    if !first.standing.available() || !affinity.over_cap(route, &first.name, share(first.target)) {
        return;
    }
    let first_target = first.target;
    let others: Vec<Candidate> = arms
        .iter()
        .filter(|a| a.target != first_target)
        .map(|a| candidate(a.target))
        .collect();
    let ok = |t: TargetId| {
        others.iter().any(|c| {
            c.target == t && c.standing.available() && !affinity.over_cap(route, &c.name, share(t))
        })
    };
    if let Some(i) = switchyard_dsl::affinity::choose(snapshot, arms, session, ok)
        && let Some(c) = others.into_iter().find(|c| c.target == arms[i].target)
    {
        pick.spilled_to = Some(c.name.clone());
        all.retain(|x| x.target != c.target);
        all.insert(0, c);
    }
}

/// How long to wait for the first candidate's first token before hedging, if the route
/// hedges and the delay is known (a percentile needs [`RANKING_MIN_SAMPLES`] samples).
pub fn hedge_delay(route: &Route, first: &TargetStats) -> Option<std::time::Duration> {
    let ms = match route.hedge?.after {
        HedgeDelay::Fixed { ms } => ms as f64,
        HedgeDelay::Percentile(metric) => {
            let summary = first.series(RANKING_WINDOW_MS).summary_at(clock_ms());
            match summary.percentile(metric) {
                (Some(v), n) if n >= RANKING_MIN_SAMPLES => v,
                _ => return None,
            }
        }
    };
    Some(std::time::Duration::from_micros((ms * 1e3) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::standing::{PROBES_PER_WINDOW, degradation, duration_name, metric_name};
    use crate::router::stats::ERROR_RATE_MIN_SAMPLES;
    use crate::router::stats::Sample;
    use switchyard_dsl::ir::LatencyKind;

    #[test]
    fn split_weights_hold_among_available_arms() {
        // 50/30/20 with the 30 arm out: the others keep their 50:20 ratio.
        let arms = [
            WeightedTarget {
                target: TargetId(0),
                weight: 50,
            },
            WeightedTarget {
                target: TargetId(1),
                weight: 30,
            },
            WeightedTarget {
                target: TargetId(2),
                weight: 20,
            },
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 3];
        const N: u32 = 10_000;
        for _ in 0..N {
            let t = redraw_split(&arms, |t| t != TargetId(1), rng.f64()).expect("a value");
            counts[t.0 as usize] += 1;
        }
        assert_eq!(counts[1], 0);
        let share = f64::from(counts[0]) / f64::from(N);
        assert!(
            (share - 50.0 / 70.0).abs() < 0.01,
            "share of arm 0: {share}"
        );
        // With every arm available the draw follows all three weights.
        let mut counts = [0u32; 3];
        for _ in 0..N {
            let t = redraw_split(&arms, |_| true, rng.f64()).expect("a value");
            counts[t.0 as usize] += 1;
        }
        for (c, w) in counts.iter().zip([0.5, 0.3, 0.2]) {
            let share = f64::from(*c) / f64::from(N);
            assert!((share - w).abs() < 0.01, "{counts:?}");
        }
        assert_eq!(redraw_split(&arms, |_| false, 0.3), None);
    }

    fn member(i: u32, ttft_ms: Option<f64>) -> Candidate {
        let stats = Arc::new(TargetStats::default());
        let series = stats.series(RANKING_WINDOW_MS);
        if let Some(ms) = ttft_ms {
            for _ in 0..RANKING_MIN_SAMPLES {
                series.record_at(
                    Sample {
                        ttft_ms: Some(ms),
                        total_ms: Some(ms),
                        error: false,
                    },
                    clock_ms(),
                );
            }
        }
        Candidate {
            target: TargetId(i),
            name: format!("p/m{i}"),
            stats,
            standing: Standing::Available { probe: false },
        }
    }

    const P50_TTFT: LatencyMetric = LatencyMetric {
        kind: LatencyKind::Ttft,
        percentile_centi: 5000,
    };

    #[test]
    fn fastest_ranks_by_percentile_and_explores() {
        let members = vec![
            member(0, Some(900.0)),
            member(1, None),
            member(2, Some(120.0)),
            member(3, Some(400.0)),
        ];
        let mut rng = fastrand::Rng::with_seed(1);
        let mut ranked = members.clone();
        rank_fastest(&mut ranked, P50_TTFT, 0, clock_ms(), &mut rng);
        let ids: Vec<u32> = ranked.iter().map(|c| c.target.0).collect();
        assert_eq!(ids, [2, 3, 0, 1], "measured fastest first, unmeasured last");
        // A 10% exploration share sends about a tenth of requests to the unmeasured member.
        let mut first = [0u32; 4];
        for _ in 0..10_000 {
            let mut ranked = members.clone();
            rank_fastest(&mut ranked, P50_TTFT, 1_000, clock_ms(), &mut rng);
            first[ranked[0].target.0 as usize] += 1;
        }
        assert!((850..=1_150).contains(&first[1]), "{first:?}");
        assert_eq!(first[1] + first[2], 10_000, "{first:?}");
    }

    fn route(triggers: &str) -> Route {
        use switchyard_dsl::ir::{Provider, ProviderKind};
        let catalogue = [Provider::new("p", ProviderKind::Mock, &["a", "b"])];
        let policy = format!("route r {{\n  use p/a\n  failover to p/b when {triggers}\n}}\n");
        let sources = [switchyard_dsl::Source::new("t.policy", &policy)];
        let compiled = switchyard_dsl::compile(&sources, &catalogue);
        let snapshot = compiled.snapshot.expect("compiles");
        snapshot.routes[0].clone()
    }

    fn sample(ms: f64, error: bool) -> Sample {
        Sample {
            ttft_ms: Some(ms),
            total_ms: Some(ms),
            error,
        }
    }

    #[test]
    fn latency_triggers_need_min_samples_and_stick_on_little_data() {
        let r = route("p95(ttft) > 1s over 10s min_samples 5");
        let stats = TargetStats::default();
        let series = stats.series(10_000);
        for _ in 0..4 {
            series.record_at(sample(3_000.0, false), 1_000);
        }
        assert_eq!(
            degradation(&r, &stats, 1_000, false),
            None,
            "4 < min_samples"
        );
        let (why, every) = degradation(&r, &stats, 1_000, true).expect("sticky");
        assert!(why.starts_with("p95(ttft) 3"), "{why}");
        assert_eq!(every, 10_000 / PROBES_PER_WINDOW);
        series.record_at(sample(3_000.0, false), 1_000);
        assert!(degradation(&r, &stats, 1_200, false).is_some());
        // Fast samples push the slow ones under the 5% tail.
        for _ in 0..200 {
            series.record_at(sample(100.0, false), 1_300);
        }
        assert_eq!(degradation(&r, &stats, 1_400, true), None);
        // An empty window lets even a degraded target back in.
        assert_eq!(degradation(&r, &stats, 60_000, true), None);
    }

    #[test]
    fn error_rate_trigger_counts_failed_attempts() {
        let r = route("error_rate > 10% over 30s");
        let stats = TargetStats::default();
        let series = stats.series(30_000);
        for i in 0..ERROR_RATE_MIN_SAMPLES {
            series.record_at(sample(50.0, i % 5 == 0), 10);
        }
        let (why, _) = degradation(&r, &stats, 10, false).expect("20% > 10%");
        assert!(
            why.starts_with("error_rate 20.0% > 10.0% over 30s (4 of 20 failed)"),
            "{why}"
        );
        let calm = route("error_rate > 25% over 30s");
        assert_eq!(degradation(&calm, &stats, 10, false), None);
    }

    #[test]
    fn metric_names_read_like_the_policy() {
        let m = |kind, percentile_centi| LatencyMetric {
            kind,
            percentile_centi,
        };
        assert_eq!(metric_name(m(LatencyKind::Ttft, 9500)), "p95(ttft)");
        assert_eq!(metric_name(m(LatencyKind::Total, 9990)), "p99.9(latency)");
        assert_eq!(duration_name(120_000), "2m");
        assert_eq!(duration_name(1_500), "1500ms");
    }

    /// A session whose first choice is ejected takes its next choice, stays there once served
    /// (even with the first back in), and goes home when its memory is gone.
    #[test]
    fn affinity_orders_next_choice_then_memory() {
        use switchyard_dsl::ir::{Provider, ProviderKind};
        use switchyard_dsl::{RequestView, Source, compile, decide};
        let catalogue = [Provider::new("p", ProviderKind::Mock, &["a", "b", "c"])];
        let policy =
            "route r {\n  split { 50% p/a, 30% p/b, 20% p/c }\n  affinity by key for 1m\n}\n";
        let snapshot = compile(&[Source::new("t", policy)], &catalogue)
            .snapshot
            .expect("compiles");
        // A session whose first choice is `p/a`.
        let key = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| {
                let req = RequestView {
                    model: "m",
                    key: Some(k),
                    ..RequestView::default()
                };
                let d = decide(&snapshot, &req, 0.5).expect("routes");
                snapshot.target_name(d.primary()) == "p/a"
            })
            .expect("a session");
        let req = RequestView {
            model: "m",
            key: Some(&key),
            ..RequestView::default()
        };
        let registry = prometheus::Registry::new();
        let observer = RoutingObserver::new(&registry);
        let (stats, affinity) = (StatsRegistry::default(), AffinityState::default());
        let health = HealthRegistry::new(1, std::time::Duration::from_secs(600));
        let reg = Registries {
            stats: &stats,
            health: &health,
            observer: &observer,
            affinity: &affinity,
        };
        let mut rng = fastrand::Rng::with_seed(1);
        let first = |reg: Registries<'_>, rng: &mut fastrand::Rng| {
            let d = decide(&snapshot, &req, 0.5).expect("routes");
            let (order, passed_over, pick) = order(&snapshot, &d, reg, rng);
            (order[0].name.clone(), passed_over, pick)
        };
        let (name, passed_over, pick) = first(reg, &mut rng);
        assert_eq!((name.as_str(), pick.home.as_deref()), ("p/a", Some("p/a")));
        assert!(passed_over.is_empty());

        health.failure("p/a");
        let d = decide(&snapshot, &req, 0.5).expect("routes");
        let session = d.session().expect("a session key");
        let arms = match &snapshot.routes[0].selection {
            Selection::Split(arms) => arms.clone(),
            _ => unreachable!("a split"),
        };
        let next = switchyard_dsl::affinity::ranking(&snapshot, &arms, session)[1].0;
        let next = snapshot.target_name(arms[next].target);
        let (name, passed_over, _) = first(reg, &mut rng);
        assert_eq!(name, next, "the session's second choice");
        assert_eq!(passed_over, ["p/a: ejected after consecutive failures"]);
        // Every draw gives the same next choice.
        for _ in 0..20 {
            assert_eq!(first(reg, &mut rng).0, next);
        }

        affinity.served(
            session,
            Some("p/a"),
            &next,
            std::time::Duration::from_secs(60),
        );
        health.success("p/a");
        let (name, _, _) = first(reg, &mut rng);
        assert_eq!(name, next, "remembered: no flapping back");

        affinity.served(
            session,
            Some("p/a"),
            "p/a",
            std::time::Duration::from_secs(60),
        );
        assert_eq!(first(reg, &mut rng).0, "p/a", "forgotten: home again");
    }
}
