//! Errors and warnings about policy text, and their rendering with a caret excerpt.
//!
//! Messages follow one style: lower-case, the user's words in backticks, no Rust type names,
//! and a `help` line that says how to fix it.

use crate::source::{Source, Span};

/// Index of a [`Source`] in the slice handed to [`crate::compile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SourceId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub source: SourceId,
    pub span: Span,
    /// Short text printed beside the caret.
    pub label: Option<String>,
    /// How to fix it. Every diagnostic the compiler emits has one.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(source: SourceId, span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
            source,
            span,
            label: None,
            help: None,
        }
    }

    pub fn warning(source: SourceId, span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(source, span, message)
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Renders `diag` against the sources it refers to, in the style:
///
/// ```text
/// error: unknown provider `opnai`
///   --> policies/support.yaml:12:9
///    |
/// 12 |       use opnai/gpt-4o
///    |           ^^^^^ not in the provider catalogue
///    |
///    = help: did you mean `openai`? known providers: `anthropic`, `openai`
/// ```
///
/// Line and column are the user's file positions (YAML offsets applied); the excerpt line is
/// re-indented by the source's column offset so it looks like the file. No colour codes.
pub fn render(diag: &Diagnostic, sources: &[Source]) -> String {
    crate::render::render(diag, sources)
}

/// Renders all diagnostics, errors and warnings, followed by a summary line such as
/// `error: 2 errors, 1 warning` (or nothing when the list is empty).
pub fn render_all(diags: &[Diagnostic], sources: &[Source]) -> String {
    crate::render::render_all(diags, sources)
}
