//! `Budget`: spending rules written in the policy language, and their live counters in status.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::{ObjectStatus, PolicyDiagnostic};

/// Spending rules in the Switchyard policy language (`budget NAME { ... }` blocks).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "Budget",
    plural = "budgets",
    singular = "budget",
    shortname = "llmb",
    category = "switchyard",
    namespaced,
    status = "BudgetStatus",
    derive = "PartialEq",
    doc = "Token, request and dollar budgets in the Switchyard policy language, with their live counters in status.",
    printcolumn = r#"{"name":"Ready", "type":"string", "description":"Whether the policy compiled", "jsonPath":".status.conditions[?(@.type==\"Compiled\")].status"}"#,
    printcolumn = r#"{"name":"State", "type":"string", "description":"The worst state among the budgets: ok, warning or exhausted", "jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BudgetSpec {
    /// The budgets, in the Switchyard policy language, e.g.
    /// `budget support { for team "support" limit $500 per month }`.
    #[schemars(length(min = 1))]
    pub policy: String,
}

/// What the operator observed about a `Budget`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// Conditions, generation and snapshot fields, at the top level of the status.
    #[serde(flatten)]
    pub object: ObjectStatus,
    /// Compiler errors and warnings about `spec.policy`, positioned in the policy text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<PolicyDiagnostic>,
    /// The worst state among `budgets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BudgetState>,
    /// Live counters of each `budget` block (for `for each ...` scopes: the most used one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetUsage>,
}

/// Usage of one `budget` block in its current window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetUsage {
    /// The budget block's name.
    pub name: String,
    /// Used so far in the current window, in the limit's unit, e.g. `$312.40` or `1.2M tokens`.
    pub spent: String,
    /// Left in the current window, e.g. `$187.60`.
    pub remaining: String,
    /// When the current window ends, as an RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub reset_at: Option<String>,
    /// `ok`, `warning` (past a `warn at` threshold) or `exhausted`.
    pub state: BudgetState,
}

/// How far a budget is used.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BudgetState {
    /// Below every `warn at` threshold.
    Ok,
    /// Past a `warn at` threshold.
    Warning,
    /// The limit is reached; `on exhausted` applies.
    Exhausted,
}
