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
