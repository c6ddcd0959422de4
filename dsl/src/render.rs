//! Caret rendering of diagnostics. (stub: being written)
use crate::diagnostic::Diagnostic;
use crate::source::Source;

pub(crate) fn render(diag: &Diagnostic, sources: &[Source]) -> String {
    let _ = sources;
    diag.message.clone()
}

pub(crate) fn render_all(diags: &[Diagnostic], sources: &[Source]) -> String {
    diags.iter().map(|d| render(d, sources)).collect::<Vec<_>>().join("\n")
}
