//! Status parts shared by every Switchyard resource: the conditions and snapshot fields every
//! status has ([`ObjectStatus`]), and policy diagnostics.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The status fields every Switchyard resource has, flattened into each kind's status type
/// (`#[serde(flatten)]`), so the operator computes them once for all kinds and the status
/// JSON keeps them at the top level.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    /// `Accepted`, `Compiled` (message: the rendered diagnostics) and `Applied`.
    /// An `LLMProvider` has no `Compiled`; its status type describes its own conditions.
    #[schemars(
        description = "`Accepted`, `Compiled` (message: the rendered diagnostics) and `Applied`."
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Version of the newest snapshot that contains this generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_version: Option<i64>,
    /// Content hash (hex SHA-256) of that snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_hash: Option<String>,
    /// Proxy pods running that snapshot out of all proxy pods, e.g. `3/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_pods: Option<String>,
}

/// Sets the schema description of `conditions` in a status type that flattens
/// [`ObjectStatus`], for kinds whose conditions differ from the shared description.
pub(crate) fn describe_conditions(schema: &mut schemars::Schema, description: &str) {
    if let Some(conditions) = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut("conditions"))
        .and_then(serde_json::Value::as_object_mut)
    {
        conditions.insert("description".into(), description.into());
    }
}

/// One observation of the object's state, shaped like Kubernetes' `metav1.Condition`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The aspect this condition describes, in CamelCase: `Accepted`, `Compiled` or `Applied`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word for why the condition is in this state, e.g. `CompileFailed`.
    pub reason: String,
    /// A human-readable explanation; for compile failures, the rendered diagnostics.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed, as an RFC 3339 timestamp.
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Condition `status` values.
pub mod condition_status {
    pub const TRUE: &str = "True";
    pub const FALSE: &str = "False";
    pub const UNKNOWN: &str = "Unknown";
}

/// Condition `type` values used by Switchyard's resources.
pub mod condition_type {
    /// The object is well-formed and was taken into the configuration.
    pub const ACCEPTED: &str = "Accepted";
    /// The policy text compiled without errors (RoutePolicy, Budget).
    pub const COMPILED: &str = "Compiled";
    /// The snapshot holding this object's current generation runs on every proxy pod.
    pub const APPLIED: &str = "Applied";
}

/// One compiler error or warning about an object's `spec.policy`, positioned in the policy text.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDiagnostic {
    /// `error` or `warning`.
    pub severity: DiagnosticSeverity,
    /// One-based line within `spec.policy`.
    pub line: i32,
    /// One-based column within `spec.policy`.
    pub column: i32,
    /// What is wrong, e.g. ``unknown provider `opnai` ``.
    pub message: String,
    /// How to fix it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// How serious a [`PolicyDiagnostic`] is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiagnosticSeverity {
    /// The policy was not applied.
    Error,
    /// The policy was applied, but something in it is probably a mistake.
    Warning,
}

impl PolicyDiagnostic {
    /// A compiler diagnostic as status data, positioned within `spec.policy` (the source's
    /// file offsets removed). `source` is the one the diagnostic refers to.
    pub fn from_diagnostic(
        diag: &switchyard_dsl::Diagnostic,
        source: &switchyard_dsl::Source,
    ) -> Self {
        let (line, column) = source.line_col(diag.span.start);
        let line = line.saturating_sub(source.line_offset).max(1);
        let column = column.saturating_sub(source.column_offset).max(1);
        Self {
            severity: if diag.is_error() {
                DiagnosticSeverity::Error
            } else {
                DiagnosticSeverity::Warning
            },
            line: i32::try_from(line).unwrap_or(i32::MAX),
            column: i32::try_from(column).unwrap_or(i32::MAX),
            message: diag.message.clone(),
            help: diag.help.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_dsl::{Diagnostic, Source, SourceId, Span};

    fn object() -> ObjectStatus {
        ObjectStatus {
            conditions: vec![Condition {
                type_: condition_type::APPLIED.into(),
                status: condition_status::TRUE.into(),
                reason: "RolledOut".into(),
                message: String::new(),
                last_transition_time: "2026-01-01T00:00:00Z".into(),
                observed_generation: None,
            }],
            observed_generation: Some(3),
            snapshot_version: Some(7),
            snapshot_hash: Some("abc".into()),
            applied_pods: Some("2/3".into()),
        }
    }

    /// The flattened fields serialize at the status' top level, in the order they had as
    /// fields of each kind's status, and read back.
    #[test]
    fn shared_fields_stay_at_the_top_level_of_each_status() {
        let shared = r#""conditions":[{"type":"Applied","status":"True","reason":"RolledOut","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}],"observedGeneration":3,"snapshotVersion":7,"snapshotHash":"abc","appliedPods":"2/3""#;
        let diagnostic = PolicyDiagnostic {
            severity: DiagnosticSeverity::Error,
            line: 1,
            column: 2,
            message: "m".into(),
            help: None,
        };
        let diagnostics =
            r#""diagnostics":[{"severity":"error","line":1,"column":2,"message":"m"}]"#;

        let provider = crate::LLMProviderStatus { object: object() };
        let text = serde_json::to_string(&provider).expect("serializes");
        assert_eq!(text, format!("{{{shared}}}"));
        assert_eq!(
            serde_json::from_str::<crate::LLMProviderStatus>(&text).ok(),
            Some(provider)
        );

        let policy = crate::RoutePolicyStatus {
            object: object(),
            diagnostics: vec![diagnostic.clone()],
            shadow: None,
        };
        let text = serde_json::to_string(&policy).expect("serializes");
        assert_eq!(text, format!("{{{shared},{diagnostics}}}"));
        assert_eq!(
            serde_json::from_str::<crate::RoutePolicyStatus>(&text).ok(),
            Some(policy)
        );

        let budget = crate::BudgetStatus {
            object: object(),
            diagnostics: vec![diagnostic],
            state: Some(crate::BudgetState::Ok),
            budgets: Vec::new(),
        };
        let text = serde_json::to_string(&budget).expect("serializes");
        assert_eq!(text, format!(r#"{{{shared},{diagnostics},"state":"ok"}}"#));
        assert_eq!(
            serde_json::from_str::<crate::BudgetStatus>(&text).ok(),
            Some(budget)
        );
    }

    /// Empty fields are left out, and an empty status reads back as the default.
    #[test]
    fn an_empty_status_is_an_empty_object() {
        let empty = crate::RoutePolicyStatus::default();
        assert_eq!(serde_json::to_string(&empty).ok().as_deref(), Some("{}"));
        assert_eq!(
            serde_json::from_str::<crate::RoutePolicyStatus>("{}").ok(),
            Some(empty)
        );
        assert_eq!(
            serde_json::from_str::<crate::BudgetStatus>(r#"{"snapshotVersion":2}"#)
                .ok()
                .map(|s| s.object.snapshot_version),
            Some(Some(2))
        );
    }

    #[test]
    fn diagnostics_are_positioned_in_the_policy_text() {
        let mut source = Source::new("f.yaml", "route a {\n  use x/y\n}\n");
        source.line_offset = 9;
        source.column_offset = 4;
        let diag = Diagnostic::warning(SourceId(0), Span::new(16, 17), "w").with_help("h");
        let status = PolicyDiagnostic::from_diagnostic(&diag, &source);
        assert_eq!(
            status,
            PolicyDiagnostic {
                severity: DiagnosticSeverity::Warning,
                line: 2,
                column: 7,
                message: "w".into(),
                help: Some("h".into()),
            }
        );
    }
}
