//! Caret rendering of diagnostics, rustc style, without colour codes.
//!
//! The layout is fixed by the doc comment of [`crate::diagnostic::render`]: a headline, an
//! arrow with `file:line:col` in the user's file (YAML offsets applied), the offending line
//! re-indented as it appears in that file, carets under the span with an optional label, and
//! the help line.

use std::fmt::Write as _;

use crate::diagnostic::{Diagnostic, Severity};
use crate::source::Source;

/// Renders one diagnostic; a diagnostic whose source is missing renders as its headline plus
/// help, so nothing is lost.
pub(crate) fn render(diag: &Diagnostic, sources: &[Source]) -> String {
    let mut out = String::new();
    let severity = match diag.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = writeln!(out, "{severity}: {}", diag.message);
    let Some(source) = sources.get(diag.source.0 as usize) else {
        if let Some(help) = &diag.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        return out;
    };

    let start = clamp_to_char(&source.text, diag.span.start as usize);
    let (line_no, col) = source.line_col(start as u32);
    let (line, line_start) = source.line_at(start as u32);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let width = line_no.to_string().len();
    let pad = " ".repeat(width);
    let indent = " ".repeat(source.column_offset as usize);

    // Carets: from the span start to its end, clamped to the end of the first line; at least
    // one caret. A tab is shown as four spaces, so it counts four columns here too.
    let rel = (start - line_start).min(line.len());
    let end = (diag.span.end as usize).clamp(line_start + rel, line_start + line.len());
    let end = clamp_to_char(&source.text, end);
    let (shown, before, carets) = excerpt(line, rel, end - line_start);

    let _ = writeln!(out, "{pad}--> {}:{line_no}:{col}", source.file);
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{line_no} | {indent}{shown}");
    let _ = write!(
        out,
        "{pad} | {indent}{}{}",
        " ".repeat(before),
        "^".repeat(carets.max(1))
    );
    match &diag.label {
        Some(label) => {
            let _ = writeln!(out, " {label}");
        }
        None => out.push('\n'),
    }
    if let Some(help) = &diag.help {
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{pad} = help: {help}");
    }
    out
}

/// Renders every diagnostic, separated by blank lines, then a summary line
/// (`error: aborting due to 2 errors; 1 warning emitted`, or `warning: 1 warning emitted`
/// when there is no error). Empty input renders as an empty string.
pub(crate) fn render_all(diags: &[Diagnostic], sources: &[Source]) -> String {
    if diags.is_empty() {
        return String::new();
    }
    let mut out = diags
        .iter()
        .map(|d| render(d, sources))
        .collect::<Vec<_>>()
        .join("\n");
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let warned = match warnings {
        0 => String::new(),
        1 => "1 warning emitted".to_string(),
        n => format!("{n} warnings emitted"),
    };
    out.push('\n');
    match errors {
        0 => out.push_str(&format!("warning: {warned}\n")),
        n => {
            let noun = if n == 1 { "error" } else { "errors" };
            let sep = if warned.is_empty() { "" } else { "; " };
            out.push_str(&format!("error: aborting due to {n} {noun}{sep}{warned}\n"));
        }
    }
    out
}

/// Longest excerpt shown, in characters; a longer line (generated or hostile policies put
/// megabytes on one line) is cut around the span and the cuts are marked with `...`.
const MAX_EXCERPT_CHARS: usize = 120;
/// Characters of a long line kept before the span.
const EXCERPT_LEAD: usize = 40;

/// The excerpt of `line` to print for the span `from..to` (byte offsets into `line`, on char
/// boundaries), the display width before the span, and the span's display width.
fn excerpt(line: &str, from: usize, to: usize) -> (String, usize, usize) {
    if line.chars().count() <= MAX_EXCERPT_CHARS {
        return (
            expand_tabs(line),
            text_width(&line[..from]),
            text_width(&line[from..to]),
        );
    }
    let skip = line[..from].chars().count().saturating_sub(EXCERPT_LEAD);
    let start = line.char_indices().nth(skip).map_or(from, |(i, _)| i);
    let end = line[start..]
        .char_indices()
        .nth(MAX_EXCERPT_CHARS)
        .map_or(line.len(), |(i, _)| start + i);
    let lead = if start > 0 { "..." } else { "" };
    let tail = if end < line.len() { "..." } else { "" };
    (
        format!("{lead}{}{tail}", expand_tabs(&line[start..end])),
        lead.len() + text_width(&line[start..from]),
        text_width(&line[from..to.min(end).max(from)]),
    )
}

/// Moves `pos` back to a char boundary (and into the text), so a bad span cannot panic.
fn clamp_to_char(text: &str, pos: usize) -> usize {
    let mut pos = pos.min(text.len());
    while !text.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}

/// Tabs are shown as four spaces so the carets line up under them.
fn expand_tabs(line: &str) -> String {
    line.replace('\t', "    ")
}

/// Display width of `s` as [`expand_tabs`] shows it (one column per other character).
fn text_width(s: &str) -> usize {
    s.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::SourceId;
    use crate::source::Span;

    #[test]
    fn caret_under_span_with_yaml_offsets() {
        let mut src = Source::new(
            "policies/support.yaml",
            "route a {\n  use opnai/gpt-4o\n}\n",
        );
        src.line_offset = 9;
        src.column_offset = 4;
        let d = Diagnostic::error(SourceId(0), Span::new(16, 21), "unknown provider `opnai`")
            .with_label("not in the provider catalogue")
            .with_help("did you mean `openai`?");
        let expected = "\
error: unknown provider `opnai`
  --> policies/support.yaml:11:11
   |
11 |       use opnai/gpt-4o
   |           ^^^^^ not in the provider catalogue
   |
   = help: did you mean `openai`?
";
        assert_eq!(render(&d, &[src]), expected);
    }

    #[test]
    fn zero_width_and_multi_line_spans() {
        let src = Source::new("p", "ab\ncd");
        let zero = Diagnostic::warning(SourceId(0), Span::new(2, 2), "w");
        assert!(render(&zero, std::slice::from_ref(&src)).contains("1 | ab\n  |   ^\n"));
        let multi = Diagnostic::error(SourceId(0), Span::new(1, 5), "e");
        assert!(render(&multi, std::slice::from_ref(&src)).contains("1 | ab\n  |  ^\n"));
        let summary = render_all(&[zero, multi], &[src]);
        assert!(summary.ends_with("error: aborting due to 1 error; 1 warning emitted\n"));
    }

    #[test]
    fn long_lines_are_cut_around_the_span() {
        let text = format!("{}needle{}", "a".repeat(5000), "b".repeat(5000));
        let src = Source::new("p", text);
        let d = Diagnostic::error(SourceId(0), Span::new(5000, 5006), "e");
        let out = render(&d, &[src]);
        let lines: Vec<&str> = out.lines().collect();
        let excerpt = lines[3].trim_start_matches("1 | ");
        assert!(
            excerpt.starts_with("...") && excerpt.ends_with("..."),
            "{out}"
        );
        assert!(excerpt.len() <= MAX_EXCERPT_CHARS + 6, "{out}");
        let caret_line = lines[4].trim_start_matches("  | ");
        let at = excerpt.find("needle").expect("the span is shown");
        assert_eq!(caret_line, format!("{}^^^^^^", " ".repeat(at)));
    }
}
