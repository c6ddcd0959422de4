//! Prometheus metrics of the operator, served on `/metrics` of the admin port.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The operator's metrics, registered in their own registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub registry: Registry,
    /// `switchyard_build_info`, apart from `registry` so that it keeps the name the proxy's
    /// gauge has (one query finds every component's version) without the operator prefix.
    build_info: Registry,
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
        let build_info = Registry::new();
        let info = IntGaugeVec::new(
            Opts::new(
                "switchyard_build_info",
                "Version and source revision of this build; always 1.",
            ),
            &["component", "version", "revision"],
        )
        .expect("metric");
        build_info
            .register(Box::new(info.clone()))
            .expect("unique metric names");
        info.with_label_values(&[
            "operator",
            switchyard_build_info::VERSION,
            switchyard_build_info::REVISION,
        ])
        .set(1);
        Self {
            registry,
            build_info,
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
        let mut families = self.registry.gather();
        families.extend(self.build_info.gather());
        let _ = TextEncoder::new().encode(&families, &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_names_version_and_revision() {
        let text = Metrics::new().render();
        let line = format!(
            "switchyard_build_info{{component=\"operator\",revision=\"{}\",version=\"{}\"}} 1",
            switchyard_build_info::REVISION,
            switchyard_build_info::VERSION
        );
        assert!(text.contains(&line), "{line} missing:\n{text}");
        assert!(text.contains("switchyard_operator_is_leader 0"), "{text}");
    }
}
