//! The state every reconcile shares: API client, event recorder, metrics, the watch caches,
//! the last compile, the publisher and the pods on the control channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use switchyard_crds::{Budget, LLMProvider, RoutePolicy};
use tokio::sync::watch;

use crate::compile::{self, Inputs, Outcome};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::publish::{Pods, Publisher};

/// Read handles of the four watch caches.
#[derive(Clone, Debug)]
pub struct Stores {
    pub providers: Store<LLMProvider>,
    pub route_policies: Store<RoutePolicy>,
    pub budgets: Store<Budget>,
    pub secrets: Store<Secret>,
}

impl Stores {
    fn inputs(&self) -> Inputs {
        Inputs {
            providers: self.providers.state(),
            route_policies: self.route_policies.state(),
            budgets: self.budgets.state(),
            secrets: self.secrets.state(),
        }
    }

    /// The highest `status.snapshotVersion` any object records (from an earlier leader).
    fn recorded_version(&self) -> u64 {
        let p = self
            .providers
            .state()
            .iter()
            .filter_map(|o| o.status.as_ref()?.object.snapshot_version)
            .max();
        let r = self
            .route_policies
            .state()
            .iter()
            .filter_map(|o| o.status.as_ref()?.object.snapshot_version)
            .max();
        let b = self
            .budgets
            .state()
            .iter()
            .filter_map(|o| o.status.as_ref()?.object.snapshot_version)
            .max();
        [p, r, b]
            .into_iter()
            .flatten()
            .max()
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(0)
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub stores: Stores,
    pub publisher: Arc<Publisher>,
    pub pods: Arc<Pods>,
    /// Budget usage reported by the pods.
    pub usage: Arc<crate::usage::Usage>,
    /// Bumped when the compile outcome changes: every object's status is recomputed.
    pub outcome_changed: watch::Sender<u64>,
    /// `true` once every cache holds its first full list. (kube-runtime 5's
    /// `Store::wait_until_ready` wakes only one of several concurrent waiters, and the
    /// controller itself is one, so readiness is signalled from the watch streams instead.)
    pub caches_ready: watch::Sender<bool>,
    last: tokio::sync::Mutex<Option<Arc<Outcome>>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("stores", &self.stores)
            .field("publisher", &self.publisher)
            .field("pods", &self.pods)
            .finish_non_exhaustive()
    }
}

/// The name events are reported under.
pub const CONTROLLER_NAME: &str = "switchyard-operator";

impl Context {
    pub fn new(
        client: Client,
        stores: Stores,
        metrics: Arc<Metrics>,
        publisher: Arc<Publisher>,
        pods: Arc<Pods>,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER_NAME.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            stores,
            publisher,
            pods,
            usage: Arc::default(),
            outcome_changed: watch::channel(0).0,
            caches_ready: watch::channel(false).0,
            last: tokio::sync::Mutex::new(None),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Uses `usage` (shared with the control channel) for budget status.
    pub fn with_usage(mut self, usage: Arc<crate::usage::Usage>) -> Self {
        self.usage = usage;
        self
    }

    /// Compiles the caches' current contents and publishes the snapshot to the proxies when
    /// its content changed; returns the outcome. Recompiles only when the inputs'
    /// fingerprint changed, so every reconcile may call it.
    pub async fn compile_and_publish(
        &self,
        parent: &opentelemetry::Context,
    ) -> Result<Arc<Outcome>> {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{Span, TraceContextExt, Tracer};
        let mut ready = self.caches_ready.subscribe();
        match tokio::time::timeout(Duration::from_secs(30), ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => {}
            _ => return Err(Error::NotReady),
        }
        let mut last = self.last.lock().await;
        let inputs = self.stores.inputs();
        let fingerprint = compile::fingerprint(&inputs);
        if let Some(outcome) = last.as_ref()
            && outcome.fingerprint == fingerprint
        {
            return Ok(outcome.clone());
        }
        if last.is_none() {
            self.publisher.raise_floor(self.stores.recorded_version());
        }
        let tracer = opentelemetry::global::tracer(crate::telemetry::TRACER);
        let mut compile_span = tracer.start_with_context("compile", parent);
        let started = std::time::Instant::now();
        let outcome = Arc::new(compile::compile(&inputs));
        compile_span.set_attributes([
            KeyValue::new("switchyard.compile.ok", outcome.snapshot.is_some()),
            KeyValue::new(
                "switchyard.snapshot.hash",
                outcome
                    .snapshot
                    .as_ref()
                    .map_or_else(String::new, |s| s.hash.clone()),
            ),
            KeyValue::new(
                "switchyard.snapshot.routes",
                outcome
                    .snapshot
                    .as_ref()
                    .map_or(0, |s| s.routes.len() as i64),
            ),
            KeyValue::new("switchyard.rejected_objects", outcome.rejected.len() as i64),
        ]);
        compile_span.end();
        for problem in &outcome.client_key_problems {
            tracing::warn!(%problem, "client key left out");
        }
        let compiled_ms = started.elapsed().as_millis() as u64;
        let result = if outcome.snapshot.is_some() {
            "ok"
        } else {
            "failed"
        };
        self.metrics.compiles.with_label_values(&[result]).inc();
        let publish_cx = parent.with_span(tracer.start_with_context("publish", parent));
        let published = self
            .publisher
            .publish_traced(&outcome, crate::telemetry::traceparent(&publish_cx))?;
        let publish_span = publish_cx.span();
        publish_span.set_attribute(KeyValue::new("switchyard.published", published.is_some()));
        if let Some(v) = published.or_else(|| self.publisher.current().map(|p| p.version)) {
            publish_span.set_attribute(KeyValue::new(
                "switchyard.snapshot.version",
                i64::try_from(v).unwrap_or(i64::MAX),
            ));
        }
        publish_span.end();
        if let Some(version) = published {
            self.metrics.publications.inc();
            self.metrics
                .snapshot_version
                .set(i64::try_from(version).unwrap_or(i64::MAX));
            tracing::info!(
                version,
                hash = outcome.snapshot.as_ref().map(|s| s.hash.as_str()),
                compile_ms = compiled_ms,
                total_ms = started.elapsed().as_millis() as u64,
                "published snapshot"
            );
        } else if outcome.snapshot.is_none() {
            tracing::warn!("compile failed; the previous snapshot stays live");
        }
        *last = Some(outcome.clone());
        self.outcome_changed.send_modify(|n| *n += 1);
        Ok(outcome)
    }

    /// Forgets the failures of an object after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Exponential backoff: 1 s, 2 s, 4 s, ... up to 5 minutes.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let secs = 1u64 << (*n - 1).min(9);
        Duration::from_secs(secs.min(300))
    }
}
