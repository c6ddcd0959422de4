//! Batched export off the request path: requests put their finished spans on a bounded queue
//! (never waiting), and one background thread sends them to the collector with the SDK's
//! OTLP exporter, in batches of up to [`MAX_BATCH`] spans or every schedule delay.
//!
//! Our own queue rather than the SDK's `BatchSpanProcessor`: that one builds spans through
//! its tracer (which picks span ids itself, while ours are chosen before an attempt starts so
//! the provider request can carry them) and does not expose how many spans it dropped.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use super::settings::ExporterConfig;

/// Spans in one export request.
pub const MAX_BATCH: usize = 512;

/// The sending side, held by the request path.
#[derive(Debug)]
pub struct Queue {
    tx: SyncSender<Vec<SpanData>>,
    dropped_full: IntCounter,
}

/// The span counters, shared with the export thread.
#[derive(Clone)]
struct Counters {
    exported: IntCounter,
    dropped_failed: IntCounter,
}

impl Queue {
    /// Starts the export thread. The queue holds `config.queue_size` span groups (one per
    /// request: a server span and its attempts).
    pub fn start(config: ExporterConfig, registry: &Registry) -> crate::Result<Self> {
        let exported = IntCounter::with_opts(Opts::new(
            "switchyard_otel_spans_exported_total",
            "Spans the OTLP collector accepted.",
        ))
        .map_err(|e| crate::Error::Server(e.to_string()))?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "switchyard_otel_spans_dropped_total",
                "Spans not exported: `queue_full` (the exporter fell behind) or \
                 `export_failed` (the collector refused or could not be reached).",
            ),
            &["reason"],
        )
        .map_err(|e| crate::Error::Server(e.to_string()))?;
        // Registered once per process; a second registration (tests) keeps the first.
        let _ = registry.register(Box::new(exported.clone()));
        let _ = registry.register(Box::new(dropped.clone()));
        let counters = Counters {
            exported,
            dropped_failed: dropped.with_label_values(&["export_failed"]),
        };
        let (tx, rx) = sync_channel(config.queue_size);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| crate::Error::Server(format!("telemetry runtime: {e}")))?;
        let mut exporter = {
            let _entered = runtime.enter();
            config
                .build()
                .map_err(|e| crate::Error::Settings(format!("OTLP exporter: {e}")))?
        };
        exporter.set_resource(
            &Resource::builder()
                .with_service_name(config.service.clone())
                .build(),
        );
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || run(runtime, exporter, rx, config, counters))
            .map_err(|e| crate::Error::Server(format!("telemetry thread: {e}")))?;
        Ok(Self {
            tx,
            dropped_full: dropped.with_label_values(&["queue_full"]),
        })
    }

    /// Queues one request's spans; drops them (counted) when the queue is full.
    pub fn send(&self, spans: Vec<SpanData>) {
        let n = spans.len() as u64;
        match self.tx.try_send(spans) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped_full.inc_by(n);
            }
        }
    }
}

fn run(
    runtime: tokio::runtime::Runtime,
    exporter: opentelemetry_otlp::SpanExporter,
    rx: Receiver<Vec<SpanData>>,
    config: ExporterConfig,
    counters: Counters,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(MAX_BATCH);
    let mut due = Instant::now() + config.schedule_delay;
    loop {
        let wait = due.saturating_duration_since(Instant::now());
        let closed = match rx.recv_timeout(wait) {
            Ok(spans) => {
                batch.extend(spans);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if batch.len() >= MAX_BATCH || Instant::now() >= due || closed {
            while !batch.is_empty() {
                let rest = batch.split_off(batch.len().min(MAX_BATCH));
                let send = std::mem::replace(&mut batch, rest);
                let n = send.len() as u64;
                match runtime.block_on(exporter.export(send)) {
                    Ok(()) => counters.exported.inc_by(n),
                    Err(e) => {
                        counters.dropped_failed.inc_by(n);
                        tracing::debug!(error = %e, spans = n, "OTLP export failed");
                    }
                }
            }
            due = Instant::now() + config.schedule_delay;
        }
        if closed {
            let _ = exporter.shutdown();
            return;
        }
    }
}
