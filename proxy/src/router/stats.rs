//! Per-target latency and error statistics over sliding windows, the measurements behind
//! latency- and error-rate triggers, `fastest of` ranking and `hedge after pNN(..)`.
//!
//! Percentiles come from DDSketch (relative error 1%), never averages, so tails show. A
//! window is a ring of ten slots of a tenth of its length each: a query covers the current
//! slot and the nine before it (between 90% and 100% of the window). Every slot ring is
//! sharded per worker thread, so recording takes an uncontended lock; the merged view is
//! recomputed at most every [`REFRESH_MS`] by whichever request asks first, and every other
//! reader gets the cached summary (one atomic load).
//!
//! Statistics are keyed by `provider/model`, so they survive snapshot swaps, and a target
//! gets one series per window length that some policy asks about.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;
use sketches_ddsketch::{Config as SketchConfig, DDSketch};
use switchyard_dsl::ir::{LatencyKind, LatencyMetric};

/// Slots per window.
const SLOTS: u64 = 10;
/// Shortest slot; windows under a second get coarser resolution rather than tiny slots.
const MIN_SLOT_MS: u64 = 100;
/// Longest a cached summary is served before the next reader recomputes it.
pub const REFRESH_MS: u64 = 100;
/// Window for `fastest of` ranking and `hedge after pNN(..)`, which name no window.
pub const RANKING_WINDOW_MS: u64 = 60_000;
/// Samples a target needs in the ranking window before its percentile counts.
pub const RANKING_MIN_SAMPLES: u64 = 5;
/// Samples needed before an error-rate trigger decides (latency triggers carry their own).
pub const ERROR_RATE_MIN_SAMPLES: u64 = 20;
/// Percentiles precomputed at every refresh (hundredths of a percent).
const PRECOMPUTED: [u32; 4] = [5000, 9000, 9500, 9900];

/// Milliseconds since the first call, the clock every series shares.
pub fn clock_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What one attempt contributes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Time to the first token (the whole answer for a non-streamed call); for an attempt
    /// that timed out or lost a hedge, the time it had waited (a lower bound, still telling).
    pub ttft_ms: Option<f64>,
    pub total_ms: Option<f64>,
    /// Counts towards the error rate.
    pub error: bool,
}

impl Sample {
    pub fn ok(ttft: Duration, total: Duration) -> Self {
        Self {
            ttft_ms: Some(ms(ttft)),
            total_ms: Some(ms(total)),
            error: false,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn sketch() -> DDSketch {
    DDSketch::new(SketchConfig::defaults())
}

#[derive(Clone)]
struct Slot {
    epoch: u64,
    ttft: DDSketch,
    total: DDSketch,
    requests: u64,
    errors: u64,
}

impl Slot {
    fn empty(epoch: u64) -> Self {
        Self {
            epoch,
            ttft: sketch(),
            total: sketch(),
            requests: 0,
            errors: 0,
        }
    }
}

/// One latency measure's percentiles over a window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub samples: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// A window's merged view, as of its last refresh.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub window_ms: u64,
    pub requests: u64,
    pub errors: u64,
    pub ttft: Percentiles,
    pub total: Percentiles,
    #[serde(skip)]
    sketches: Option<Box<Sketches>>,
}

/// The merged sketches (ttft, total), kept for percentiles outside [`PRECOMPUTED`].
#[derive(Clone)]
struct Sketches(DDSketch, DDSketch);

impl std::fmt::Debug for Sketches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sketches")
            .field(&self.0.count())
            .field(&self.1.count())
            .finish()
    }
}

impl Summary {
    fn empty(window_ms: u64) -> Self {
        Self {
            window_ms,
            requests: 0,
            errors: 0,
            ttft: Percentiles::default(),
            total: Percentiles::default(),
            sketches: None,
        }
    }

    /// The `metric` percentile in milliseconds and how many samples it rests on.
    pub fn percentile(&self, metric: LatencyMetric) -> (Option<f64>, u64) {
        let p = match metric.kind {
            LatencyKind::Ttft => &self.ttft,
            LatencyKind::Total => &self.total,
        };
        let pre = match metric.percentile_centi {
            5000 => Some(p.p50_ms),
            9000 => Some(p.p90_ms),
            9500 => Some(p.p95_ms),
            9900 => Some(p.p99_ms),
            _ => None,
        };
        let value = match pre {
            Some(v) => v,
            None => self.sketches.as_ref().and_then(|s| {
                let sk = match metric.kind {
                    LatencyKind::Ttft => &s.0,
                    LatencyKind::Total => &s.1,
                };
                quantile(sk, metric.percentile_centi)
            }),
        };
        (value, p.samples)
    }

    /// Errors per 10,000 requests, once there are any requests.
    pub fn error_rate_bp(&self) -> Option<u64> {
        (self.requests > 0).then(|| self.errors * 10_000 / self.requests)
    }
}

fn quantile(s: &DDSketch, centi: u32) -> Option<f64> {
    s.quantile(f64::from(centi) / 10_000.0).ok().flatten()
}

fn percentiles(s: &DDSketch) -> Percentiles {
    let [p50, p90, p95, p99] = PRECOMPUTED.map(|c| quantile(s, c));
    Percentiles {
        samples: s.count() as u64,
        p50_ms: p50,
        p90_ms: p90,
        p95_ms: p95,
        p99_ms: p99,
    }
}

/// One window length's measurements for one target.
pub struct Series {
    window_ms: u64,
    slot_ms: u64,
    shards: Box<[Mutex<Vec<Slot>>]>,
    summary: ArcSwap<Summary>,
    /// [`clock_ms`] of the last refresh; `u64::MAX` before the first.
    refreshed_at: AtomicU64,
    refreshing: AtomicBool,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("window_ms", &self.window_ms)
            .finish_non_exhaustive()
    }
}

fn shard_count() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8)
    })
}

/// This thread's shard: threads are numbered round robin on first use.
fn shard_index(n: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i % n)
}

impl Series {
    pub fn new(window_ms: u64) -> Self {
        let window_ms = window_ms.max(MIN_SLOT_MS);
        let slot_ms = (window_ms / SLOTS).max(MIN_SLOT_MS);
        let ring = || Mutex::new((0..SLOTS).map(|_| Slot::empty(u64::MAX)).collect());
        Self {
            window_ms,
            slot_ms,
            shards: (0..shard_count()).map(|_| ring()).collect(),
            summary: ArcSwap::from_pointee(Summary::empty(window_ms)),
            refreshed_at: AtomicU64::new(u64::MAX),
            refreshing: AtomicBool::new(false),
        }
    }

    /// Adds one attempt's sample at `now_ms` ([`clock_ms`] outside tests).
    pub fn record_at(&self, sample: Sample, now_ms: u64) {
        let epoch = now_ms / self.slot_ms;
        let shard = &self.shards[shard_index(self.shards.len())];
        let Ok(mut ring) = shard.lock() else {
            return;
        };
        let slot = &mut ring[(epoch % SLOTS) as usize];
        if slot.epoch != epoch {
            *slot = Slot::empty(epoch);
        }
        slot.requests += 1;
        slot.errors += u64::from(sample.error);
        if let Some(v) = sample.ttft_ms {
            slot.ttft.add(v.max(0.001));
        }
        if let Some(v) = sample.total_ms {
            slot.total.add(v.max(0.001));
        }
    }

    /// The merged view at `now_ms`, recomputed when older than [`REFRESH_MS`].
    pub fn summary_at(&self, now_ms: u64) -> Arc<Summary> {
        let at = self.refreshed_at.load(Ordering::Acquire);
        let fresh = at != u64::MAX && now_ms.saturating_sub(at) < REFRESH_MS;
        if fresh
            || self
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return self.summary.load_full();
        }
        let summary = Arc::new(self.merge(now_ms));
        self.summary.store(Arc::clone(&summary));
        self.refreshed_at.store(now_ms, Ordering::Release);
        self.refreshing.store(false, Ordering::Release);
        summary
    }

    fn merge(&self, now_ms: u64) -> Summary {
        let current = now_ms / self.slot_ms;
        let oldest = current.saturating_sub(SLOTS - 1);
        let mut ttft = sketch();
        let mut total = sketch();
        let (mut requests, mut errors) = (0, 0);
        for shard in &self.shards {
            let Ok(ring) = shard.lock() else { continue };
            for slot in ring
                .iter()
                .filter(|s| s.epoch != u64::MAX && (oldest..=current).contains(&s.epoch))
            {
                requests += slot.requests;
                errors += slot.errors;
                // Same configuration on both sides: merging cannot fail.
                let _ = ttft.merge(&slot.ttft);
                let _ = total.merge(&slot.total);
            }
        }
        Summary {
            window_ms: self.window_ms,
            requests,
            errors,
            ttft: percentiles(&ttft),
            total: percentiles(&total),
            sketches: Some(Box::new(Sketches(ttft, total))),
        }
    }
}

/// Everything measured about one target.
#[derive(Debug, Default)]
pub struct TargetStats {
    series: RwLock<Vec<Arc<Series>>>,
    /// Attempts open against the target right now.
    pub in_flight: AtomicI64,
    /// [`clock_ms`] until which the provider told us to stay away (`Retry-After`,
    /// `x-ratelimit-remaining-* = 0`); 0 = not limited.
    rate_limited_until: AtomicU64,
    /// [`clock_ms`] before which a degraded target gets no probe request; 0 = not degraded.
    next_probe_at: AtomicU64,
    /// The probe interval last claimed with.
    probe_every: AtomicU64,
}

impl TargetStats {
    /// The series for `window_ms`, created on first use.
    pub fn series(&self, window_ms: u64) -> Arc<Series> {
        let window_ms = window_ms.max(MIN_SLOT_MS);
        if let Ok(all) = self.series.read()
            && let Some(s) = all.iter().find(|s| s.window_ms == window_ms)
        {
            return Arc::clone(s);
        }
        let Ok(mut all) = self.series.write() else {
            return Arc::new(Series::new(window_ms));
        };
        if let Some(s) = all.iter().find(|s| s.window_ms == window_ms) {
            return Arc::clone(s);
        }
        let s = Arc::new(Series::new(window_ms));
        all.push(Arc::clone(&s));
        s
    }

    /// Adds a sample to every window.
    pub fn record(&self, sample: Sample) {
        let now = clock_ms();
        if let Ok(all) = self.series.read() {
            for s in all.iter() {
                s.record_at(sample, now);
            }
        }
    }

    /// Summaries of every window, shortest first.
    pub fn summaries(&self) -> Vec<Arc<Summary>> {
        let now = clock_ms();
        let mut out: Vec<_> = self
            .series
            .read()
            .map(|all| all.iter().map(|s| s.summary_at(now)).collect())
            .unwrap_or_default();
        out.sort_by_key(|s| s.window_ms);
        out
    }

    /// Keep away until `until_ms` ([`clock_ms`]); a later deadline wins.
    pub fn rate_limit_until(&self, until_ms: u64) {
        self.rate_limited_until
            .fetch_max(until_ms, Ordering::Relaxed);
    }

    /// Milliseconds left of a rate limit, if one is in force.
    pub fn rate_limited_for(&self, now_ms: u64) -> Option<u64> {
        let until = self.rate_limited_until.load(Ordering::Relaxed);
        (until > now_ms).then(|| until - now_ms)
    }

    /// Claims the probe slot of a degraded target: one request per `every_ms`, counted from
    /// the end of the previous probe ([`TargetStats::probe_done`]), and none in the first
    /// interval after the target was first found degraded.
    pub fn claim_probe(&self, now_ms: u64, every_ms: u64) -> bool {
        let next = self.next_probe_at.load(Ordering::Relaxed);
        if next == 0 {
            let _ = self.next_probe_at.compare_exchange(
                0,
                now_ms + every_ms,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            return false;
        }
        self.probe_every.store(every_ms, Ordering::Relaxed);
        now_ms >= next
            && self
                .next_probe_at
                .compare_exchange(next, now_ms + every_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// A probe request finished at `now_ms`: the next one waits a full interval from here,
    /// so slow probes do not follow each other back to back.
    pub fn probe_done(&self, now_ms: u64) {
        let every = self.probe_every.load(Ordering::Relaxed);
        self.next_probe_at
            .fetch_max(now_ms + every, Ordering::Relaxed);
    }

    /// The target is back in rotation: a later degradation starts with a quiet interval.
    pub fn reset_probes(&self) {
        self.next_probe_at.store(0, Ordering::Relaxed);
    }
}

/// Counts an attempt as in flight until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<TargetStats>);

impl InFlight {
    pub fn new(stats: &Arc<TargetStats>) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(stats))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Statistics of every target seen.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    targets: RwLock<HashMap<String, Arc<TargetStats>>>,
}

impl StatsRegistry {
    /// The target's statistics, created on first use.
    pub fn target(&self, name: &str) -> Arc<TargetStats> {
        if let Ok(m) = self.targets.read()
            && let Some(t) = m.get(name)
        {
            return Arc::clone(t);
        }
        let Ok(mut m) = self.targets.write() else {
            return Arc::default();
        };
        Arc::clone(m.entry(name.to_owned()).or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P95_TTFT: LatencyMetric = LatencyMetric {
        kind: LatencyKind::Ttft,
        percentile_centi: 9500,
    };

    fn ttft(ms: f64) -> Sample {
        Sample {
            ttft_ms: Some(ms),
            total_ms: Some(ms * 2.0),
            error: false,
        }
    }

    #[test]
    fn percentiles_show_the_tail_not_the_mean() {
        let s = Series::new(10_000);
        // 90 fast answers and 10 very slow ones: the mean is ~590 ms, p95 is the slow tail.
        for i in 0..100 {
            s.record_at(ttft(if i % 10 == 0 { 5_000.0 } else { 50.0 }), 1_000);
        }
        let sum = s.summary_at(1_000);
        let (p95, n) = sum.percentile(P95_TTFT);
        assert_eq!(n, 100);
        let p95 = p95.expect("a value");
        assert!((4_900.0..=5_100.0).contains(&p95), "p95 {p95}");
        let p50 = sum.ttft.p50_ms.expect("a value");
        assert!((49.0..=51.0).contains(&p50), "p50 {p50}");
        let total_p50 = sum.total.p50_ms.expect("a value");
        assert!((98.0..=102.0).contains(&total_p50), "total p50 {total_p50}");
        // A percentile outside the precomputed ones comes from the sketch.
        let p80 = LatencyMetric {
            kind: LatencyKind::Ttft,
            percentile_centi: 8000,
        };
        assert!((49.0..=51.0).contains(&sum.percentile(p80).0.expect("a value")));
    }

    #[test]
    fn old_samples_leave_the_window() {
        let s = Series::new(1_000); // ten 100 ms slots
        for _ in 0..50 {
            s.record_at(ttft(3_000.0), 0);
        }
        for _ in 0..50 {
            s.record_at(ttft(100.0), 950);
        }
        let both = s.summary_at(950);
        assert_eq!(both.ttft.samples, 100);
        // 1.05 s later the slow slot is out of the window, the fast one still in.
        let later = s.summary_at(1_050);
        assert_eq!(later.ttft.samples, 50);
        assert!(later.ttft.p99_ms.expect("a value") < 110.0);
        // Much later the window is empty.
        let empty = s.summary_at(5_000);
        assert_eq!((empty.ttft.samples, empty.requests), (0, 0));
        assert_eq!(empty.percentile(P95_TTFT), (None, 0));
    }

    #[test]
    fn summaries_are_cached_between_refreshes() {
        let s = Series::new(10_000);
        s.record_at(ttft(10.0), 0);
        assert_eq!(s.summary_at(0).requests, 1);
        s.record_at(ttft(10.0), 10);
        assert_eq!(s.summary_at(10).requests, 1, "still the cached view");
        assert_eq!(s.summary_at(REFRESH_MS + 1).requests, 2);
    }

    #[test]
    fn error_rate_counts_requests_and_errors() {
        let s = Series::new(10_000);
        for i in 0..40 {
            s.record_at(
                Sample {
                    error: i % 4 == 0,
                    ..Sample::default()
                },
                5,
            );
        }
        let sum = s.summary_at(5);
        assert_eq!((sum.requests, sum.errors), (40, 10));
        assert_eq!(sum.error_rate_bp(), Some(2_500));
        assert_eq!(sum.ttft.samples, 0, "no latency without a measurement");
    }

    #[test]
    fn samples_from_many_threads_all_count() {
        let s = Arc::new(Series::new(60_000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        s.record_at(ttft(20.0), 500);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(s.summary_at(500).ttft.samples, 4_000);
    }

    #[test]
    fn registry_series_and_probes() {
        let r = StatsRegistry::default();
        let t = r.target("p/m");
        assert!(Arc::ptr_eq(&t, &r.target("p/m")));
        assert!(Arc::ptr_eq(&t.series(2_000), &t.series(2_000)));
        assert_eq!(t.summaries().len(), 1);
        assert!(!t.claim_probe(1_000, 500), "no probe in the first interval");
        assert!(!t.claim_probe(1_200, 500));
        assert!(t.claim_probe(1_500, 500));
        assert!(!t.claim_probe(1_700, 500), "one probe per interval");
        t.probe_done(2_100);
        assert!(
            !t.claim_probe(2_200, 500),
            "counted from the end of the last probe"
        );
        assert!(t.claim_probe(2_600, 500));
        t.rate_limit_until(2_000);
        assert_eq!(t.rate_limited_for(1_500), Some(500));
        assert_eq!(t.rate_limited_for(2_000), None);
        {
            let _a = InFlight::new(&t);
            assert_eq!(t.in_flight.load(Ordering::Relaxed), 1);
        }
        assert_eq!(t.in_flight.load(Ordering::Relaxed), 0);
    }
}
