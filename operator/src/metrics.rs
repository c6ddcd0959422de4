//! Prometheus metrics of the operator, served on `/metrics` of the admin port.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The operator's metrics, registered in their own registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: IntCounterVec,
    pub failures: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    pub compiles: IntCounterVec,
    pub publications: IntCounter,
    pub snapshot_version: IntGauge,
    pub connected_pods: IntGauge,
    pub is_leader: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    #[expect(clippy::expect_used, reason = "static metric definitions are valid")]
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("switchyard_operator".into()), None)
            .expect("valid registry prefix");
        let reconciles = IntCounterVec::new(
            Opts::new("reconciliations_total", "Reconciliations by kind"),
            &["kind"],
        )
        .expect("metric");
        let failures = IntCounterVec::new(
            Opts::new(
                "reconcile_failures_total",
                "Failed reconciliations by kind and error",
            ),
            &["kind", "error"],
        )
        .expect("metric");
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Time of one reconciliation")
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
            &["kind"],
        )
        .expect("metric");
        let compiles = IntCounterVec::new(
            Opts::new(
                "compiles_total",
                "Compiles of the scope by result (ok, failed)",
            ),
            &["result"],
        )
        .expect("metric");
        let publications =
            IntCounter::new("snapshot_publications_total", "Snapshot versions published")
                .expect("metric");
        let snapshot_version =
            IntGauge::new("snapshot_version", "The live snapshot version").expect("metric");
        let connected_pods = IntGauge::new(
            "connected_pods",
            "Proxy pods with an open control-channel stream",
        )
        .expect("metric");
        let is_leader =
            IntGauge::new("is_leader", "1 while this replica holds the Lease").expect("metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(compiles.clone()),
            Box::new(publications.clone()),
            Box::new(snapshot_version.clone()),
            Box::new(connected_pods.clone()),
            Box::new(is_leader.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Self {
            registry,
            reconciles,
            failures,
            reconcile_duration,
            compiles,
            publications,
            snapshot_version,
            connected_pods,
            is_leader,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
