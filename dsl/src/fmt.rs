//! Canonical formatting of policy text: one layout for every policy, comments kept.
//!
//! The tree is printed as a list of output lines, each remembering the source range it came
//! from (its anchor). Comments are then put back by position: a comment written after code on
//! the same source line stays at the end of that line; any other comment goes on its own line
//! before the next output line, at that line's indentation (inside a block when it trailed the
//! block). Formatting is idempotent, and `parse(format(x))` equals `parse(x)`.

mod text;

use std::fmt::Write as _;

use self::text::{expr, is_name, latency, quantity, string, target, targets, trigger};

use crate::ast::*;
use crate::diagnostic::{Diagnostic, SourceId};
use crate::parser::parse;
use crate::source::Source;

/// Parses `source` and formats it; syntax errors are returned unchanged.
pub fn format_source(id: SourceId, source: &Source) -> Result<String, Vec<Diagnostic>> {
    parse(id, source).map(|file| format(&file, &source.text))
}

/// Formats a parsed file. `source_text` is the text `file` was parsed from; it is only used to
/// tell end-of-line comments from full-line ones, so a tree built by hand (with no comments)
/// may pass `""`.
pub fn format(file: &PolicyFile, source_text: &str) -> String {
    let mut lines = Vec::new();
    for (i, item) in file.items.iter().enumerate() {
        let (keyword, name, span) = match item {
            Item::Route(r) => ("route", &r.name, r.span),
            Item::Budget(b) => ("budget", &b.name, b.span),
        };
        let mut head = Line::new(
            0,
            format!("{keyword} {} {{", name.name),
            span.start,
            name.span.end,
        );
        head.blank_before = i > 0;
        lines.push(head);
        match item {
            Item::Route(r) => {
                let mut after_bare_failover = false;
                for s in &r.stmts {
                    route_stmt(s, after_bare_failover, &mut lines);
                    after_bare_failover = matches!(
                        &s.kind,
                        RouteStmtKind::Failover { triggers, .. } if triggers.is_empty()
                    );
                }
            }
            Item::Budget(b) => b.stmts.iter().for_each(|s| budget_stmt(s, &mut lines)),
        }
        lines.push(Line::close(0, span.end));
    }
    place_comments(&lines, &file.comments, source_text)
}

/// One output line and the source range it stands for.
#[derive(Debug)]
struct Line {
    indent: usize,
    text: String,
    start: usize,
    end: usize,
    /// Indentation of full-line comments placed before this line.
    comment_indent: usize,
    /// Separate this line (and the comments before it) from the previous one.
    blank_before: bool,
}

impl Line {
    fn new(indent: usize, text: String, start: u32, end: u32) -> Self {
        let (start, end) = (start as usize, end as usize);
        Self {
            indent,
            text,
            start,
            end,
            comment_indent: indent,
            blank_before: false,
        }
    }

    /// A closing `}` at `indent` whose source `}` ends at `end`; comments before it belong to
    /// the block's contents, one level deeper.
    fn close(indent: usize, end: u32) -> Self {
        let mut line = Self::new(indent, "}".into(), end.saturating_sub(1), end);
        line.comment_indent = indent + 2;
        line
    }
}

/// Writes `lines`, putting every comment back in source order.
fn place_comments(lines: &[Line], comments: &[Comment], source: &str) -> String {
    let mut out = String::new();
    let mut next = comments.iter().peekable();
    let comment_line = |out: &mut String, indent: usize, c: &Comment| {
        let _ = writeln!(out, "{:indent$}#{}", "", c.text);
    };
    for (i, line) in lines.iter().enumerate() {
        if line.blank_before {
            out.push('\n');
        }
        while let Some(c) = next.next_if(|c| (c.span.start as usize) < line.end) {
            comment_line(&mut out, line.comment_indent, c);
            // A top-level comment block set apart by a blank line (a file header) stays so.
            let follows = next
                .peek()
                .map_or(line.start, |n| (n.span.start as usize).min(line.start));
            let gap = source.get(c.span.end as usize..follows).unwrap_or_default();
            if line.comment_indent == 0 && gap.matches('\n').count() >= 2 {
                out.push('\n');
            }
        }
        let _ = write!(out, "{:indent$}{}", "", line.text, indent = line.indent);
        let before_next = lines.get(i + 1).map_or(usize::MAX, |l| l.start);
        let same_line = |c: &&Comment| {
            let at = c.span.start as usize;
            at >= line.end
                && at < before_next
                && source
                    .get(line.end..at)
                    .is_some_and(|gap| !gap.contains('\n'))
        };
        if let Some(c) = next.next_if(same_line) {
            let _ = write!(out, " #{}", c.text);
        }
        out.push('\n');
    }
    if next.peek().is_some() && !lines.is_empty() {
        out.push('\n');
    }
    while let Some(c) = next.next() {
        comment_line(&mut out, 0, c);
        let follows = next.peek().map_or(source.len(), |n| n.span.start as usize);
        let gap = source.get(c.span.end as usize..follows).unwrap_or_default();
        if next.peek().is_some() && gap.matches('\n').count() >= 2 {
            out.push('\n');
        }
    }
    out
}

/// Appends the lines of one route statement. A `when` right after a failover without triggers
/// would read as its triggers, so its condition is put in parentheses.
fn route_stmt(stmt: &RouteStmt, after_bare_failover: bool, lines: &mut Vec<Line>) {
    let (start, end) = (stmt.span.start, stmt.span.end);
    let one = |text: String| Line::new(2, text, start, end);
    let line = match &stmt.kind {
        RouteStmtKind::When(e) if after_bare_failover => one(format!("when ({})", expr(e))),
        RouteStmtKind::When(e) => one(format!("when {}", expr(e))),
        RouteStmtKind::Use(t) => one(format!("use {}", target(t))),
        RouteStmtKind::Split(arms) => {
            lines.push(Line::new(
                2,
                "split {".into(),
                start,
                start + "split".len() as u32,
            ));
            for arm in arms {
                let text = format!("{} {}", quantity(&arm.weight), target(&arm.target));
                lines.push(Line::new(4, text, arm.span.start, arm.span.end));
            }
            Line::close(2, end)
        }
        RouteStmtKind::Cheapest(ts) => one(format!("cheapest of {}", targets(ts))),
        RouteStmtKind::Fastest {
            targets: ts,
            by,
            explore,
        } => {
            let mut text = format!("fastest of {}", targets(ts));
            if let Some(by) = by {
                let _ = write!(text, " by {}", latency(by));
            }
            if let Some(q) = explore {
                let _ = write!(text, " explore {}", quantity(q));
            }
            one(text)
        }
        RouteStmtKind::Failover {
            targets: ts,
            triggers,
        } => {
            let text = format!("failover to {}", targets(ts));
            let (Some(first), Some(last_target)) = (triggers.first(), ts.last()) else {
                return lines.push(one(text));
            };
            lines.push(Line::new(2, text, start, last_target.span.end));
            let when: Vec<String> = triggers.iter().map(trigger).collect();
            Line::new(
                4,
                format!("when {}", when.join(" or ")),
                first.span.start,
                end,
            )
        }
        RouteStmtKind::Retry { count, backoff } => {
            let mut text = format!("retry {}", quantity(count));
            if let Some((min, max)) = backoff {
                let _ = write!(text, " backoff {}..{}", quantity(min), quantity(max));
            }
            one(text)
        }
        RouteStmtKind::Timeout(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|(k, q)| format!("{} {}", k.name, quantity(q)))
                .collect();
            one(format!("timeout {}", items.join(", ")))
        }
        RouteStmtKind::Hedge(HedgeAfter::Fixed(q)) => one(format!("hedge after {}", quantity(q))),
        RouteStmtKind::Hedge(HedgeAfter::Percentile(l)) => {
            one(format!("hedge after {}", latency(l)))
        }
        RouteStmtKind::Cache(q) => one(format!("cache for {}", quantity(q))),
        RouteStmtKind::Affinity { by, idle } => {
            let mut text = format!("affinity by {}", by.name.name);
            match &by.arg {
                Some(AffinityArg::Str(s)) => {
                    let _ = write!(text, "({})", string(&s.value));
                }
                Some(AffinityArg::Quantity(q)) => {
                    let _ = write!(text, "({})", quantity(q));
                }
                None => {}
            }
            if let Some(q) = idle {
                let _ = write!(text, " for {}", quantity(q));
            }
            one(text)
        }
    };
    lines.push(line);
}

fn budget_stmt(stmt: &BudgetStmt, lines: &mut Vec<Line>) {
    let text = match &stmt.kind {
        BudgetStmtKind::For(scope) => {
            let mut text = String::from("for ");
            if scope.each {
                text.push_str("each ");
            }
            text.push_str(&scope.subject.name);
            if let Some(v) = &scope.value {
                let bare = scope.subject.name == "route" && !scope.each && is_name(&v.value);
                let _ = write!(
                    text,
                    " {}",
                    if bare {
                        v.value.clone()
                    } else {
                        string(&v.value)
                    }
                );
            }
            if let Some(h) = &scope.header {
                let _ = write!(text, " in header {}", string(&h.value));
            }
            text
        }
        BudgetStmtKind::Limit(limits) => {
            let limits: Vec<String> = limits
                .iter()
                .map(|l| {
                    let metric = l.metric.as_ref().map(|m| format!(" {}", m.name));
                    let amount = quantity(&l.amount);
                    format!(
                        "{amount}{} per {}",
                        metric.unwrap_or_default(),
                        l.window.name
                    )
                })
                .collect();
            format!("limit {}", limits.join(", "))
        }
        BudgetStmtKind::Warn(qs) => {
            let qs: Vec<String> = qs.iter().map(quantity).collect();
            format!("warn at {}", qs.join(", "))
        }
        BudgetStmtKind::OnExhausted(Exhausted::Reject(_)) => "on exhausted reject".into(),
        BudgetStmtKind::OnExhausted(Exhausted::Downgrade(t)) => {
            format!("on exhausted downgrade to {}", target(t))
        }
        BudgetStmtKind::OnOverrun(action) => format!("on overrun {}", action.name),
    };
    lines.push(Line::new(2, text, stmt.span.start, stmt.span.end));
}
