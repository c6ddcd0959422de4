//! `RoutePolicy`: routing rules written in the policy language.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::{ObjectStatus, PolicyDiagnostic};

/// The lowest `spec.priority` the API server admits.
pub const MIN_PRIORITY: i32 = -1000;
/// The highest `spec.priority` the API server admits.
pub const MAX_PRIORITY: i32 = 1000;

/// Routing rules in the Switchyard policy language (`route NAME { ... }` blocks).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "RoutePolicy",
    plural = "routepolicies",
    singular = "routepolicy",
    shortname = "rp",
    category = "switchyard",
    namespaced,
    status = "RoutePolicyStatus",
    derive = "PartialEq",
    doc = "Routing rules in the Switchyard policy language.",
    printcolumn = r#"{"name":"Ready", "type":"string", "description":"Whether the policy compiled", "jsonPath":".status.conditions[?(@.type==\"Compiled\")].status"}"#,
    printcolumn = r#"{"name":"Version", "type":"integer", "description":"Snapshot version holding this generation", "jsonPath":".status.snapshotVersion"}"#,
    printcolumn = r#"{"name":"Applied", "type":"string", "description":"Proxy pods running that snapshot", "jsonPath":".status.appliedPods"}"#,
    printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RoutePolicySpec {
    /// The routes, in the Switchyard policy language, e.g.
    /// `route chat { when model == "gpt-4o" use openai/gpt-4o }`. Routes are tried top to bottom.
    #[schemars(length(min = 1))]
    pub policy: String,
    /// Order among RoutePolicies: higher first, then by `namespace/name`. Default `0`; from
    /// `-1000` to `1000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_PRIORITY, max = MAX_PRIORITY))]
    pub priority: Option<i32>,
}

/// What the operator observed about a `RoutePolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutePolicyStatus {
    /// Conditions, generation and snapshot fields, at the top level of the status.
    #[serde(flatten)]
    pub object: ObjectStatus,
    /// Compiler errors and warnings about `spec.policy`, positioned in the policy text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<PolicyDiagnostic>,
}
