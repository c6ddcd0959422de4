//! The control channel's messages: how the operator hands compiled snapshots to proxy pods and
//! how pods say what they applied. Plain serde data, like the IR it carries.
//!
//! Protocol (HTTP on the operator's control port, every call with
//! `Authorization: Bearer <token>` from the chart's control-channel Secret):
//!
//! - `GET /v1/snapshots/stream?have=<version>&pod=<pod-name>` answers `text/event-stream`. When
//!   the operator's current version is newer than `have`, it sends it at once; afterwards every
//!   newly published version as it is published. Each event is `event: snapshot` with one
//!   `data:` line holding a [`SnapshotEnvelope`] as JSON. A `: ping` comment every 15 s keeps
//!   idle connections alive. Proxies reconnect with backoff, sending the version they hold.
//! - `POST /v1/acks` with an [`Ack`] as JSON after a pod applied (or refused) a version; this
//!   feeds the `Applied` condition and the `3/3` counts in status.
//! - `POST /v1/usage` with a [`UsageReport`] as JSON (→ 204) every ~5 s from each pod while
//!   its snapshot has budgets: the same numbers as the pod's `GET /admin/budgets`, one
//!   [`UsageEntry`] per budget, scope and limit in the current window. The operator keeps each
//!   pod's latest report (dropping it after 30 s without a new one), aggregates them — entries
//!   with `source: "redis"` are the replicas' shared counters, so the largest report counts;
//!   `source: "memory"` counters are per pod, so they are summed — and writes each `Budget`'s
//!   `status.budgets` / `status.state`, with a Warning Event when a budget crosses a
//!   `warn at` threshold or is exhausted. Operators older than this protocol answer 404;
//!   proxies then keep reporting quietly. While the envelope carries a `shadow` snapshot the
//!   report also carries the pod's [`ShadowReport`]; the operator sums those of the pods that
//!   report on the live and shadow hashes it published into the shadow RoutePolicies'
//!   `status.shadow`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ir::Snapshot;

/// One published snapshot version, as pushed to proxies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEnvelope {
    /// Monotonic per operator deployment; a proxy ignores versions not newer than its own.
    pub version: u64,
    pub snapshot: Snapshot,
    /// Resolved provider API keys by provider name. Only providers whose Secret resolved appear;
    /// a provider with a credential reference and no entry here is reported missing by the proxy.
    /// Never logged: the type's `Debug` is derived, so log the version and hash, not the envelope.
    pub credentials: BTreeMap<String, String>,
    /// Client keys (virtual API keys) from the Secrets labelled
    /// `switchyard.dev/client-keys: "true"`, as SHA-256 hashes only: the plaintext keys never
    /// leave the operator. Absent in envelopes of older operators (then the table is empty).
    #[serde(default)]
    pub client_keys: Vec<ClientKey>,
    /// W3C `traceparent` of the operator's publish span, when the operator traces: the proxy's
    /// snapshot-apply span continues that trace. Absent from untraced and older operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The snapshot with every `mode: Shadow` RoutePolicy promoted: proxies decide each
    /// request under it too (decision only) and report the differences. Absent without
    /// shadow policies (and in envelopes of older operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Snapshot>,
}

/// One client key as the operator passes it: the key's hash and what it grants.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientKey {
    /// The key id (the entry name in the Secret): what budgets, logs and metrics name.
    pub id: String,
    /// Hex SHA-256 of the key (64 lowercase hex digits).
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Addresses or CIDR networks the key may be used from; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_ips: Vec<String>,
    /// Unix seconds after which the key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// A proxy pod's report about one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub pod: String,
    pub version: u64,
    /// The snapshot hash the pod now serves.
    pub hash: String,
    /// `false` when the pod refused the version (e.g. an IR version it does not know) and kept
    /// serving its previous one.
    pub applied: bool,
    pub error: Option<String>,
}

/// A proxy pod's budget usage (`POST /v1/usage`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub pod: String,
    /// The snapshot version the pod serves (whose budgets the entries are about).
    pub version: u64,
    pub budgets: Vec<UsageEntry>,
    /// The pod's shadow counts, while it has a shadow snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowReport>,
}

/// How the shadow snapshot decided the requests the live one served, as one pod counted
/// (also what the proxy's `GET /admin/shadow` answers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowReport {
    /// Hashes of the live and the shadow snapshot the counts are about; counts start again
    /// when either changes.
    pub live_snapshot: String,
    pub shadow_snapshot: String,
    pub requests: u64,
    /// Requests the shadow sends to the same route and first target.
    pub same_target: u64,
    /// Requests it sends elsewhere, largest first.
    #[serde(default)]
    pub changed: Vec<ShadowChange>,
    /// Requests the live snapshot routes and the shadow would answer with 404.
    pub would_reject: u64,
}

/// Requests that move from one outcome (`route → provider/model`, or `404`) to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowChange {
    pub from: String,
    pub to: String,
    pub count: u64,
}

/// One counter: a budget's limit for one scope in its current window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEntry {
    /// The `budget NAME` block.
    pub name: String,
    /// Where the block was written: `namespace/name` of its `Budget` object.
    #[serde(default)]
    pub origin: String,
    /// `global`, `key=ID`, `team=T`, `user=U`, `route=R` or `header NAME=sha256:…`.
    pub scope: String,
    /// `requests`, `input_tokens`, `output_tokens`, `total_tokens` or `micro_usd`.
    pub metric: String,
    /// `second`, `minute`, `hour`, `day` or `month`.
    pub window: String,
    /// Settled usage plus reservations in flight, in the metric's unit.
    pub spent: i64,
    pub limit: u64,
    pub remaining: u64,
    /// Unix seconds when the window ends (and the counter resets).
    pub reset_at: u64,
    /// `ok`, `warning` or `exhausted`, as the pod sees it.
    pub state: String,
    /// `redis` (shared by every replica) or `memory` (this pod's own counters).
    pub source: String,
}
