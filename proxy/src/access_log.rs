//! The access log: one JSON line per request, in the shape `tracing_subscriber`'s JSON
//! formatter gives every other log line (`timestamp`, `level`, `fields`, `target`), so log
//! pipelines read both alike.
//!
//! Formatting the line through a `tracing` event cost about 4 µs per request (the JSON
//! formatter's field visitors), a twentieth of the proxy's CPU at 5k req/s. The binary
//! therefore hands its log sink to [`install`], and the line is serialised straight into
//! it. `RUST_LOG` still decides: the line is written only when target `switchyard::access` is
//! enabled at `info`. Without an installed sink (the library inside tests) the line is an
//! ordinary `tracing` event with the same fields.
//!
//! Each line is also a decision record (`record` is its version, [`RECORD_VERSION`]): the
//! routing features the policies read — model as requested, key, team, user, stream, the
//! estimated prompt tokens and the headers some policy references (hashed when only compared
//! for equality) — beside the outcome, so `switchyard simulate` can replay it through another
//! policy. No prompt or completion text. The schema is documented in
//! `docs/decision-records.md`.

use std::cell::RefCell;
use std::sync::OnceLock;

use serde::{Serialize, Serializer};

use switchyard_dsl::Snapshot;
use switchyard_dsl::headers::{HeaderUse, recorded_value};

use crate::log_sink::BatchedSink;

/// The log target of access-log lines (for `RUST_LOG`, e.g. `switchyard::access=off`).
pub const TARGET: &str = "switchyard::access";

static SINK: OnceLock<BatchedSink> = OnceLock::new();

/// Sends access-log lines straight to `sink` (the one the `tracing` subscriber writes to,
/// so lines of both kinds stay in order), deferred to its next batch. Only the first call
/// counts.
pub fn install(sink: &BatchedSink) {
    let _ = SINK.set(sink.deferred());
}

/// The version of the decision-record fields; bumped when their meaning changes.
pub const RECORD_VERSION: u32 = 1;

/// One finished request, as logged. Absent values are left out, as `tracing` does.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// [`RECORD_VERSION`].
    pub record: u32,
    pub method: &'a str,
    pub path: &'a str,
    pub endpoint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_model: Option<&'a str>,
    /// The client key id, team and user the decision saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    /// The prompt-token estimate the decision and the budgets used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    /// The request's values of the headers the policies reference; see [`recorded_headers`].
    #[serde(skip_serializing_if = "RecordedHeaders::is_empty")]
    pub headers: RecordedHeaders,
    pub route: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub status: u16,
    pub attempts: u32,
    pub stream: bool,
    pub stream_error: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'a str>,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Of `input_tokens`, those read from the provider's prompt cache (left out when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// Header values in a decision record, serialized as a JSON object by name.
#[derive(Debug, Default)]
pub struct RecordedHeaders(pub Vec<(String, String)>);

impl RecordedHeaders {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for RecordedHeaders {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(n, v)| (n, v)))
    }
}

thread_local! {
    /// The headers the snapshot in force references, by its hash: computed once per snapshot
    /// and thread instead of walking every condition per request.
    static REFERENCED: RefCell<(String, Vec<HeaderUse>)> = const { RefCell::new((String::new(), Vec::new())) };
}

/// The request's values of the headers `snapshot`'s policies reference, in the form
/// [`switchyard_dsl::headers::recorded_value`] gives (hashed when only compared for equality,
/// else cut short). Headers the request lacks are left out.
pub fn recorded_headers(snapshot: &Snapshot, headers: &http::HeaderMap) -> RecordedHeaders {
    REFERENCED.with_borrow_mut(|(hash, uses)| {
        if *hash != snapshot.hash || hash.is_empty() {
            *uses = switchyard_dsl::headers::referenced_headers(snapshot);
            hash.clone_from(&snapshot.hash);
        }
        RecordedHeaders(
            uses.iter()
                .filter_map(|u| {
                    let value = headers.get(&u.name)?.to_str().ok()?;
                    Some((u.name.clone(), recorded_value(value, u.equality_only)))
                })
                .collect(),
        )
    })
}

/// The whole line around [`Line`]'s fields.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(serialize_with = "as_text")]
    timestamp: humantime::Rfc3339Timestamp,
    level: &'static str,
    fields: Fields<'a>,
    target: &'static str,
}

#[derive(Serialize)]
struct Fields<'a> {
    message: &'static str,
    #[serde(flatten)]
    line: &'a Line<'a>,
}

impl Line<'_> {
    /// Writes the line where access-log lines go, if `RUST_LOG` enables them.
    pub fn write(&self) {
        if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            return;
        }
        match SINK.get() {
            Some(sink) => {
                let mut out = Vec::with_capacity(512);
                self.serialize_into(&mut out);
                sink.append(&out);
            }
            None => tracing::info!(target: TARGET, line = ?self, "request"),
        }
    }

    /// The JSON line, newline-terminated.
    fn serialize_into(&self, out: &mut Vec<u8>) {
        let envelope = Envelope {
            timestamp: humantime::format_rfc3339_micros(std::time::SystemTime::now()),
            level: "INFO",
            fields: Fields {
                message: "request",
                line: self,
            },
            target: TARGET,
        };
        // Serialising plain strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &envelope);
        out.push(b'\n');
    }
}

/// The timestamp written straight into the line, without a `String` of its own.
fn as_text<S: Serializer>(t: &humantime::Rfc3339Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_headers_are_recorded_hashed_or_cut() {
        let source = switchyard_dsl::Source::new(
            "t.yaml",
            r#"route a { when header("x-team") == "support" use p/m }
               route b { when header("x-task") matches "sum*" use p/m }"#,
        );
        let catalogue = [switchyard_dsl::ir::Provider::new(
            "p",
            switchyard_dsl::ir::ProviderKind::Mock,
            &["m"],
        )];
        let snapshot = switchyard_dsl::compile(&[source], &catalogue)
            .snapshot
            .expect("compiles")
            .seal();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-team", http::HeaderValue::from_static("support"));
        headers.insert("x-task", http::HeaderValue::from_static("summarize"));
        headers.insert("authorization", http::HeaderValue::from_static("Bearer sk"));
        let recorded = recorded_headers(&snapshot, &headers);
        assert_eq!(
            recorded.0,
            [
                ("x-task".to_string(), "summarize".to_string()),
                (
                    "x-team".to_string(),
                    switchyard_dsl::headers::hashed("support")
                ),
            ]
        );
    }

    #[test]
    fn the_line_has_the_shape_of_every_other_log_line() {
        let line = Line {
            record: RECORD_VERSION,
            method: "POST",
            path: "/v1/chat/completions",
            endpoint: "chat",
            requested_model: Some("gpt-4o"),
            key: Some("app-1"),
            team: None,
            user: Some("alice"),
            prompt_tokens: Some(30),
            headers: RecordedHeaders(vec![("x-team".into(), "sha256:0123".into())]),
            route: "all",
            provider: "openai",
            model: "gpt-4o-2024",
            status: 200,
            attempts: 1,
            stream: false,
            stream_error: false,
            cache: None,
            duration_ms: 1.5,
            ttft_ms: Some(0.75),
            input_tokens: Some(12),
            output_tokens: None,
            cached_tokens: Some(8),
            error: Some("quote \" and\nnewline"),
        };
        let mut out = Vec::new();
        line.serialize_into(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "switchyard::access");
        assert!(
            humantime::parse_rfc3339(v["timestamp"].as_str().expect("timestamp")).is_ok(),
            "{v}"
        );
        let f = &v["fields"];
        assert_eq!(f["message"], "request");
        assert_eq!(f["requested_model"], "gpt-4o");
        assert_eq!(f["status"], 200);
        assert_eq!(f["ttft_ms"], 0.75);
        assert_eq!(f["input_tokens"], 12);
        assert_eq!(f["cached_tokens"], 8);
        assert_eq!(f["error"], "quote \" and\nnewline");
        assert_eq!(f["record"], RECORD_VERSION);
        assert_eq!(f["key"], "app-1");
        assert_eq!(f["prompt_tokens"], 30);
        assert_eq!(f["headers"], serde_json::json!({"x-team": "sha256:0123"}));
        for absent in ["cache", "output_tokens", "team"] {
            assert!(f.get(absent).is_none(), "{absent} left out: {f}");
        }
    }
}
