//! Status parts shared by every Switchyard resource: conditions and policy diagnostics.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
