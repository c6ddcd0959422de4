//! Latency histograms per worker, merged into one report printed as a table or JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

/// The largest latency recorded exactly; longer ones are clamped to it.
const MAX_NANOS: u64 = 120_000_000_000;

/// What one worker measured.
#[derive(Debug)]
pub struct Recorder {
    /// The latency that counts: whole answer, or time to first body byte for streams.
    pub latency: Histogram<u64>,
    /// The whole answer, for streams.
    pub total: Histogram<u64>,
    /// Error counts by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            latency: histogram(),
            total: histogram(),
            errors: BTreeMap::new(),
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NANOS, 3).expect("valid histogram bounds")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos())
        .unwrap_or(MAX_NANOS)
        .clamp(1, MAX_NANOS)
}

impl Recorder {
    /// One answered request.
    pub fn ok(&mut self, latency: Duration, total: Duration) {
        let _ = self.latency.record(nanos(latency));
        let _ = self.total.record(nanos(total));
    }

    /// One failed request; long messages are cut so similar errors group together.
    pub fn error(&mut self, kind: &str) {
        let kind: String = kind.chars().take(80).collect();
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Adds another worker's measurements.
    pub fn merge(&mut self, other: Recorder) {
        let _ = self.latency.add(&other.latency);
        let _ = self.total.add(&other.total);
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }
}

/// The run's description and results.
#[derive(Debug)]
pub struct Report {
    /// e.g. `open-loop 1000 req/s over 32 connections`.
    pub mode: String,
    /// `chat` or `stream`.
    pub kind: String,
    /// The URL loaded.
    pub url: String,
    /// A free-form label (`direct`, `nginx`, `proxy`).
    pub label: String,
    /// The target rate, open loop only.
    pub target_rate: Option<f64>,
    /// The measured window.
    pub duration: Duration,
    /// What was measured.
    pub recorder: Recorder,
}

const PERCENTILES: [(&str, f64); 4] =
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn summary(h: &Histogram<u64>) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (name, q) in PERCENTILES {
        map.insert(name.replace('.', "_"), json!(ms(h.value_at_percentile(q))));
    }
    map.insert("max".into(), json!(ms(h.max())));
    map.insert("mean".into(), json!(h.mean() / 1e6));
    serde_json::Value::Object(map)
}

impl Report {
    fn ok(&self) -> u64 {
        self.recorder.latency.len()
    }

    fn errors(&self) -> u64 {
        self.recorder.errors.values().sum()
    }

    fn achieved_rate(&self) -> f64 {
        self.ok() as f64 / self.duration.as_secs_f64()
    }

    /// The report as JSON (latencies in milliseconds).
    pub fn json(&self) -> serde_json::Value {
        let mut value = json!({
            "label": self.label,
            "mode": self.mode,
            "kind": self.kind,
            "url": self.url,
            "target_rate": self.target_rate,
            "duration_s": self.duration.as_secs_f64(),
            "ok": self.ok(),
            "errors": self.errors(),
            "error_kinds": self.recorder.errors,
            "achieved_rate": self.achieved_rate(),
            "latency_ms": summary(&self.recorder.latency),
        });
        if self.kind == "stream" {
            value["total_ms"] = summary(&self.recorder.total);
        }
        value
    }

    /// The report as a human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} {}: {}, {} for {:.1}s\n",
            self.label,
            self.url,
            self.mode,
            self.kind,
            self.duration.as_secs_f64()
        );
        out += &format!(
            "  ok {}  errors {}  achieved {:.0} req/s\n",
            self.ok(),
            self.errors(),
            self.achieved_rate()
        );
        for (kind, n) in &self.recorder.errors {
            out += &format!("  error {n:>8} × {kind}\n");
        }
        out += "  latency (ms)        p50      p90      p99    p99.9      max     mean\n";
        let name = if self.kind == "stream" {
            "first byte"
        } else {
            "response"
        };
        out += &row(name, &self.recorder.latency);
        if self.kind == "stream" {
            out += &row("whole stream", &self.recorder.total);
        }
        out
    }
}

fn row(name: &str, h: &Histogram<u64>) -> String {
    let mut line = format!("  {name:<14}");
    for (_, q) in PERCENTILES {
        line += &format!(" {:>8.3}", ms(h.value_at_percentile(q)));
    }
    line + &format!(" {:>8.3} {:>8.3}\n", ms(h.max()), h.mean() / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_recorders_report_percentiles_in_ms() {
        let mut a = Recorder::default();
        for i in 1..=100u64 {
            a.ok(Duration::from_micros(i * 10), Duration::from_micros(i * 20));
        }
        let mut b = Recorder::default();
        b.error("status 502");
        b.error("status 502");
        a.merge(b);
        let report = Report {
            mode: "closed-loop".into(),
            kind: "chat".into(),
            url: "http://127.0.0.1:1/".into(),
            label: "t".into(),
            target_rate: None,
            duration: Duration::from_secs(1),
            recorder: a,
        };
        let json = report.json();
        assert_eq!(json["ok"], 100);
        assert_eq!(json["errors"], 2);
        assert_eq!(json["error_kinds"]["status 502"], 2);
        let p50 = json["latency_ms"]["p50"].as_f64().expect("a number");
        assert!((p50 - 0.5).abs() < 0.01, "{p50}");
        assert!(report.table().contains("achieved 100 req/s"));
    }
}
