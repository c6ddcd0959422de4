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
    printcolumn = r#"{"name":"Mode", "type":"string", "description":"Active serves; Shadow is evaluated beside the live policies without serving", "jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Shadow", "type":"string", "description":"In shadow mode: how many requests the policy would route differently", "jsonPath":".status.shadow.summary"}"#,
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
    /// `Active` (the default) serves traffic. `Shadow` is compiled and shipped to every proxy,
    /// which decides each request under the policies as they would be with this one active,
    /// beside the live decision, without serving it; `status.shadow` counts the differences.
    /// Promote by setting `Active`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "mode_schema")]
    pub mode: Option<PolicyMode>,
}

/// `mode` as a plain string enum: the derived schema of an optional enum lists `null` among
/// the values, which API servers need not accept.
fn mode_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "`Active` (the default) serves traffic. `Shadow` is compiled and shipped to \
            every proxy, which decides each request under the policies as they would be with this \
            one active, beside the live decision, without serving it; `status.shadow` counts the \
            differences. Promote by setting `Active`.",
        "type": "string",
        "enum": ["Active", "Shadow"],
    })
}

/// Whether a RoutePolicy serves traffic or is only evaluated beside the live policies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PolicyMode {
    #[default]
    Active,
    Shadow,
}

impl RoutePolicySpec {
    /// Whether this policy is in shadow mode (evaluated, not served).
    pub fn is_shadow(&self) -> bool {
        self.mode == Some(PolicyMode::Shadow)
    }
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
    /// In shadow mode: what the proxies counted, summed over the pods that reported on the
    /// current live and shadow snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowStatus>,
}

/// Shadow-mode counts: how the policies with this one active would have routed the requests
/// the live policies served.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShadowStatus {
    /// Requests decided under both.
    pub requests: i64,
    /// Requests the shadow sends to the same route and first target.
    pub same_target: i64,
    /// Requests it sends elsewhere, by live and shadow `route → provider/model` (or `404`),
    /// largest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<ShadowChange>,
    /// Requests the live policies route that the shadow would answer with 404.
    pub would_reject: i64,
    /// Proxy pods whose reports are summed.
    pub pods: i32,
    /// For the printer column, e.g. `12/1000 changed`.
    pub summary: String,
}

/// A count of requests that move from one outcome to another.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ShadowChange {
    pub from: String,
    pub to: String,
    pub count: i64,
}
