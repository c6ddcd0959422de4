//! pest errors → [`Diagnostic`]s in words a policy author knows.
//!
//! pest reports the furthest position it reached and the rules it tried there. Rule names mean
//! nothing to users, so each is mapped to a [`Want`] ("a target like `openai/gpt-4o`"), the
//! wants are listed in the message, and the most specific one chooses the help line. When the
//! statement is clearly unfinished at the end of a line, the caret goes right after the last
//! word instead of on the next line.

use pest::error::{Error, ErrorVariant, InputLocation};

use super::BlockKind;
use super::grammar::Rule;
use super::wants::{BUDGET_KEYWORDS, ROUTE_KEYWORDS, Want, syntax, want};
use crate::diagnostic::{Diagnostic, SourceId};
use crate::source::Span;

/// Where the failed parse was.
#[derive(Debug)]
pub(super) struct Context<'t> {
    pub kind: BlockKind,
    /// The first word of the statement being parsed; `None` for a block header.
    pub stmt: Option<&'t str>,
    /// Where the text given to pest ended.
    pub limit: usize,
    /// Byte offset of the block's closing `}`, if it has one.
    pub closed: Option<usize>,
}

/// The token at an error position, for "found ..." and the caret.
#[derive(Debug)]
pub(super) struct Found {
    pub text: String,
    pub span: Span,
}

/// Describes what is at `pos`; `limit` is where the parsed text ended.
pub(super) fn describe_found(text: &str, pos: usize, limit: usize) -> Found {
    let rest = text.get(pos..limit.min(text.len())).unwrap_or_default();
    let Some(c) = rest.chars().next() else {
        return if text[limit.min(text.len())..].starts_with('}') {
            Found {
                text: "`}`".into(),
                span: Span::new(limit, limit + 1),
            }
        } else {
            Found {
                text: "end of input".into(),
                span: Span::new(pos, pos),
            }
        };
    };
    if c == '\n' || c == '\r' {
        return Found {
            text: "end of line".into(),
            span: Span::new(pos, pos),
        };
    }
    if c.is_whitespace() {
        return Found {
            text: "a space".into(),
            span: Span::new(pos, pos + c.len_utf8()),
        };
    }
    let len = if c.is_alphanumeric() || c == '_' {
        rest.find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(rest.len())
    } else if c == '"' {
        rest[1..]
            .find(['"', '\n'])
            .map_or(rest.len(), |n| n + 2)
            .min(rest.len())
    } else if ["&&", "||", "==", "!=", "<=", ">=", ".."]
        .iter()
        .any(|op| rest.starts_with(op))
    {
        2
    } else {
        c.len_utf8()
    };
    let token = &rest[..len];
    let shown = match token.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &token[..cut]),
        None => token.to_string(),
    };
    Found {
        text: format!("`{shown}`"),
        span: Span::new(pos, pos + len),
    }
}

/// Turns a pest error on the text starting at byte `off` into a diagnostic.
pub(super) fn convert(
    id: SourceId,
    text: &str,
    off: usize,
    err: &Error<Rule>,
    cx: &Context<'_>,
) -> Diagnostic {
    let rel = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let at = off + rel;
    let positives = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives,
        ErrorVariant::CustomError { .. } => {
            return Diagnostic::error(id, Span::new(at, at), "this statement is nested too deeply")
                .with_help("split the condition into simpler parts");
        }
    };
    let mut wants: Vec<Want> = positives.iter().filter_map(|&r| want(r)).collect();
    wants.sort();
    wants.dedup();
    if wants.contains(&Want::Model) {
        wants.retain(|w| *w != Want::Str);
    }
    let open_ended = wants
        .iter()
        .any(|w| matches!(w, Want::NextStmt | Want::End));
    // A word starting a line where a statement may start: an unknown statement keyword.
    let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
    let first_on_line = text[line_start..at].trim().is_empty();
    if wants.contains(&Want::NextStmt) && first_on_line && cx.stmt.is_some() {
        wants = vec![match cx.kind {
            BlockKind::Route => Want::RouteStmt,
            BlockKind::Budget => Want::BudgetStmt,
        }];
    }
    let mut found = describe_found(text, at, cx.limit);
    // An unfinished statement at the end of a line: point just after its last word.
    if !open_ended && !wants.is_empty() {
        let code_end = last_code_end(text, off, at);
        if text[code_end..at].contains('\n') {
            found = Found {
                text: "end of line".into(),
                span: Span::new(code_end, code_end),
            };
        }
    }
    let list: Vec<&str> = wants.iter().map(|w| w.describe(cx)).collect();
    let expected = match list.split_last() {
        None => "something else".to_string(),
        Some((last, [])) => last.to_string(),
        Some((last, init)) => format!("{} or {last}", init.join(", ")),
    };
    let message = format!("expected {expected}, found {}", found.text);
    let help = help_for(text, &wants, &found, cx);
    Diagnostic::error(id, found.span, message).with_help(help)
}

/// Chooses the help line: a fix for a familiar mistake, then the most specific want, then the
/// statement's syntax.
fn help_for(text: &str, wants: &[Want], found: &Found, cx: &Context<'_>) -> String {
    let token = text.get(found.span.range()).unwrap_or_default();
    match token {
        "&&" | "&" => return "write `and` instead of `&&`".into(),
        "||" | "|" => return "write `or` instead of `||`".into(),
        "!" => return "write `not` instead of `!`".into(),
        "=" if wants.contains(&Want::CmpOp) => return "use `==` to compare".into(),
        _ => {}
    }
    let comparison = ["==", "!=", "<", "<=", ">", ">=", "in", "matches", "="];
    if cx.stmt == Some("failover") && comparison.contains(&token) {
        return "a `when` right after `failover to ...` lists its triggers; write the route's \
                condition before its selection, or in parentheses: `when (model == \"x\")`"
            .into();
    }
    let keywords = match wants.first() {
        Some(Want::RouteStmt) => Some(ROUTE_KEYWORDS),
        Some(Want::BudgetStmt) => Some(BUDGET_KEYWORDS),
        _ => None,
    };
    if let Some(keywords) = keywords {
        let noun = if keywords == ROUTE_KEYWORDS {
            "route"
        } else {
            "budget"
        };
        let list: Vec<String> = keywords.iter().map(|k| format!("`{k}`")).collect();
        let guess = suggest(token, keywords)
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        return format!(
            "{guess}a {noun} statement starts with one of {}",
            list.join(", ")
        );
    }
    if let Some(help) = wants.iter().find_map(|w| w.help()) {
        return help.to_string();
    }
    if let Some(syntax) = cx.stmt.and_then(syntax) {
        let extra = if wants.contains(&Want::NextStmt) {
            "; start each statement on its own line"
        } else {
            ""
        };
        return format!("the statement is written {syntax}{extra}");
    }
    match cx.kind {
        BlockKind::Route => "a route block starts `route NAME {`".into(),
        BlockKind::Budget => "a budget block starts `budget NAME {`".into(),
    }
}

/// Byte offset just after the last character of code (not whitespace, not a comment) in
/// `from..to`, or `from` when there is none.
fn last_code_end(text: &str, from: usize, to: usize) -> usize {
    let (mut end, mut in_str, mut in_comment, mut escaped) = (from, false, false, false);
    for (i, c) in text[from..to].char_indices() {
        let i = from + i;
        if in_comment {
            in_comment = c != '\n';
            continue;
        }
        if in_str {
            in_str = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '#' {
            in_comment = true;
            continue;
        } else if c == '"' {
            in_str = true;
        }
        if !c.is_whitespace() {
            end = i + c.len_utf8();
        }
    }
    end
}

/// The candidate closest to `word` (at most two edits away), for "did you mean".
pub(super) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|&(d, c)| d > 0 && d <= 2 && d < c.len().max(2))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A statement pest accepted but the builder could not read: a bug, not a user mistake.
pub(super) fn internal(id: SourceId, pos: usize) -> Diagnostic {
    Diagnostic::error(
        id,
        Span::new(pos, pos),
        "internal error: could not read this statement",
    )
    .with_help("this is a bug in the policy parser; please report it with the policy text")
}
