//! The reconcile every kind shares: compile the scope (cached), compute this object's status,
//! write it when it differs, record an Event when a condition turns False.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard_crds::status::condition_status;
use switchyard_crds::{Condition, ObjectStatus};

use crate::compile::{Kind, ObjectKey};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::status::Observed;

/// Field manager of status writes (spec is the user's; 1.20 cannot track managers per
/// subresource, so status gets its own manager name).
pub const STATUS_MANAGER: &str = "switchyard-operator-status";

/// How often an unchanged object is reconciled anyway.
const RESYNC: Duration = Duration::from_secs(300);

/// One of the three watched kinds, as the shared reconcile sees it.
pub trait Watched:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    const KIND: Kind;
    type Status: Serialize + PartialEq + Debug + Send + Sync;

    fn current_status(&self) -> Option<&Self::Status>;
    fn desired_status(&self, obs: &Observed<'_>) -> Self::Status;
    /// The conditions and snapshot fields every kind's status has.
    fn object_status(status: &Self::Status) -> &ObjectStatus;

    /// The conditions currently stored (none before the first status write).
    fn current_conditions(&self) -> &[Condition] {
        self.current_status()
            .map_or(&[], |s| &Self::object_status(s).conditions)
    }

    /// Events beyond the conditions' (budget thresholds) when `desired` replaces the
    /// current status.
    fn status_events(&self, _desired: &Self::Status) -> Vec<Event> {
        Vec::new()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Converts the shared status parts (used by the per-kind impls).
pub(crate) fn now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::LLMProvider => "llmprovider",
        Kind::RoutePolicy => "routepolicy",
        Kind::Budget => "budget",
    }
}

/// Reconciles one object of any watched kind.
/// The `reconcile` span of one object, as the parent context of its compile and publish.
fn reconcile_span(
    kind: Kind,
    namespace: &str,
    name: &str,
    generation: Option<i64>,
) -> opentelemetry::Context {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{TraceContextExt, Tracer};
    let tracer = opentelemetry::global::tracer(crate::telemetry::TRACER);
    let span = tracer
        .span_builder("reconcile")
        .with_attributes([
            KeyValue::new("switchyard.object.kind", label(kind)),
            KeyValue::new("k8s.namespace.name", namespace.to_owned()),
            KeyValue::new("switchyard.object.name", name.to_owned()),
            KeyValue::new("switchyard.object.generation", generation.unwrap_or(0)),
        ])
        .start(&tracer);
    opentelemetry::Context::new().with_span(span)
}

pub async fn reconcile<K: Watched>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let kind = label(K::KIND);
    ctx.metrics.reconciles.with_label_values(&[kind]).inc();
    let _timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&[kind])
        .start_timer();
    let namespace = obj
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let cx = reconcile_span(K::KIND, &namespace, &name, obj.meta().generation);
    let outcome = ctx.compile_and_publish(&cx).await?;
    let key = ObjectKey::of(K::KIND, obj.as_ref());
    let live = ctx.publisher.current();
    let rollout = live.as_ref().map(|l| ctx.pods.rollout(l.version));
    let usage = if K::KIND == Kind::Budget {
        crate::usage::aggregate(&ctx.usage.fresh(), unix_now())
    } else {
        Vec::new()
    };
    let shadow = match (&live, K::KIND) {
        (Some(live), Kind::RoutePolicy) => live
            .shadow_hash
            .as_deref()
            .and_then(|s| crate::usage::aggregate_shadow(&ctx.usage.fresh(), &live.hash, s)),
        _ => None,
    };
    let obs = Observed {
        key: &key,
        generation: obj.meta().generation.unwrap_or(0),
        outcome: &outcome,
        live: live.as_deref(),
        rollout,
        previous: obj.current_conditions(),
        usage: &usage,
        shadow: shadow.as_ref(),
        now: now(),
    };
    let desired = obj.desired_status(&obs);
    if obj.current_status() != Some(&desired) {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": desired,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(STATUS_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        tracing::debug!(object = %key, "status written");
        publish_events(&ctx, obj.as_ref(), &K::object_status(&desired).conditions).await;
        for event in obj.status_events(&desired) {
            if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
                tracing::warn!(error = %e, "cannot record event");
            }
        }
    }
    ctx.succeeded(&key.to_string());
    Ok(Action::requeue(RESYNC))
}

/// A Warning Event for each `Accepted` / `Compiled` condition that newly became False (or
/// whose message changed while False).
async fn publish_events<K: Watched>(ctx: &Context, obj: &K, desired: &[Condition]) {
    for c in desired {
        if c.status != condition_status::FALSE || c.type_ == "Applied" {
            continue;
        }
        let unchanged = obj
            .current_conditions()
            .iter()
            .any(|p| p.type_ == c.type_ && p.status == c.status && p.message == c.message);
        if unchanged {
            continue;
        }
        let mut note = c.message.clone();
        if note.len() > 1000 {
            let mut end = 1000;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        let event = Event {
            type_: EventType::Warning,
            reason: c.reason.clone(),
            note: Some(note),
            action: if c.type_ == "Compiled" {
                "Compile"
            } else {
                "Accept"
            }
            .into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot record event");
        }
    }
}

/// Retries a failed reconcile with exponential backoff per object.
pub fn error_policy<K: Watched>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectKey::of(K::KIND, obj.as_ref());
    ctx.metrics
        .failures
        .with_label_values(&[label(K::KIND), error.metric_label()])
        .inc();
    let delay = ctx.backoff(&key.to_string());
    tracing::warn!(object = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
