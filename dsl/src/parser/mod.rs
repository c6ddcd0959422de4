//! Policy text → [`crate::ast`], reporting every syntax error in the text at once.
//!
//! pest stops at the first error, so the driver here does the outer work itself: a lexical
//! `scan` finds comments, strings and braces; the text is cut into `route NAME { ... }` and
//! `budget NAME { ... }` blocks by matching braces; and each block is parsed one statement at a
//! time with the grammar in `grammar.pest`. After an error, parsing resumes at the next line
//! that starts with a word, so one mistake hides nothing after it. pest pairs never leave this
//! module: `build` turns them into AST nodes and `errors` into [`Diagnostic`]s.

mod build;
mod errors;
mod nesting;
mod scan;
mod wants;

use std::collections::HashMap;

use pest::Parser as _;

use self::build::Builder;
use self::errors::{Context, describe_found};
use self::grammar::{PolicyParser, Rule};
use self::scan::{MarkKind, Scan};
use crate::ast::{BudgetDecl, Item, PolicyFile, RouteDecl};
use crate::diagnostic::{Diagnostic, SourceId};
use crate::limits::MAX_POLICY_BYTES;
use crate::source::{Source, Span};

/// The pest parser, kept in a private module so that neither it nor its `Rule` enum is public.
mod grammar {
    /// Generated from `grammar.pest`.
    #[derive(Debug, pest_derive::Parser)]
    #[grammar = "parser/grammar.pest"]
    pub(super) struct PolicyParser;
}

/// Parses one source. Every syntax error found is returned, in source order: an error in one
/// block does not hide errors in the others, nor (usually) in later statements of its block.
///
/// Text over [`MAX_POLICY_BYTES`](crate::limits::MAX_POLICY_BYTES), or with a condition
/// nested deeper than [`MAX_NESTING`](crate::limits::MAX_NESTING), is refused before any
/// grammar rule runs, with only those errors: the limits are what keep every later stage's
/// recursion shallow.
pub fn parse(id: SourceId, source: &Source) -> Result<PolicyFile, Vec<Diagnostic>> {
    let text = source.text.as_str();
    if text.len() > MAX_POLICY_BYTES {
        return Err(vec![too_large(id, text)]);
    }
    let scan = scan::scan(id, text);
    let too_deep = nesting::check(id, text, &scan);
    if !too_deep.is_empty() {
        let mut diags = too_deep;
        diags.extend(scan.errors);
        diags.sort_by_key(|d| (d.span.start, d.span.end));
        return Err(diags);
    }
    let mut p = Driver {
        id,
        text,
        scan,
        items: Vec::new(),
        diags: Vec::new(),
    };
    p.file();
    let Driver {
        scan,
        items,
        mut diags,
        ..
    } = p;
    diags.extend(scan.errors);
    if diags.is_empty() {
        Ok(PolicyFile {
            items,
            comments: scan.comments,
        })
    } else {
        diags.sort_by_key(|d| (d.span.start, d.span.end));
        diags.dedup_by_key(|d| d.span.start);
        Err(diags)
    }
}

/// The error for a text over [`MAX_POLICY_BYTES`], at the first character past the limit.
fn too_large(id: SourceId, text: &str) -> Diagnostic {
    let mut at = MAX_POLICY_BYTES;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    Diagnostic::error(
        id,
        Span::new(at, at),
        format!(
            "policy is too large: {} bytes, the limit is {MAX_POLICY_BYTES} bytes (4 MiB)",
            text.len()
        ),
    )
    .with_label("the limit is reached here")
    .with_help("split the policy into several RoutePolicy or Budget objects")
}

/// Which kind of block is being parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BlockKind {
    Route,
    Budget,
}

/// One `route`/`budget` block as found by brace matching, in byte offsets.
#[derive(Debug)]
struct Block {
    kind: BlockKind,
    start: usize,
    /// Just past the closing `}`, or past the last mark when the block is unclosed.
    end: usize,
    /// Byte offset of the block's `{`, if any.
    open: Option<usize>,
    /// Byte offset of the block's `}`, if any.
    close: Option<usize>,
}

struct Driver<'t> {
    id: SourceId,
    text: &'t str,
    scan: Scan,
    items: Vec<Item>,
    diags: Vec<Diagnostic>,
}

impl Driver<'_> {
    /// Walks the top level: blocks, and anything else as an error.
    fn file(&mut self) {
        let mut i = 0;
        while i < self.scan.marks.len() {
            i = match self.scan.word(self.text, i) {
                Some("route") => self.block(i, BlockKind::Route),
                Some("budget") => self.block(i, BlockKind::Budget),
                _ => self.junk(i),
            };
        }
    }

    /// Reports the top-level mark at `i`, which does not start a block, and returns the index
    /// of the next mark that may start one.
    fn junk(&mut self, i: usize) -> usize {
        let m = self.scan.marks[i];
        let found = describe_found(self.text, m.start, self.text.len());
        let diag = if m.kind == MarkKind::Close {
            Diagnostic::error(self.id, found.span, "unexpected `}` outside any block")
                .with_label("this `}` closes nothing")
                .with_help("remove it, or check that the block above has no extra `}`")
        } else {
            let mut help = String::new();
            if let Some(s) = self
                .scan
                .word(self.text, i)
                .and_then(|w| errors::suggest(w, &["route", "budget"]))
            {
                help = format!("did you mean `{s}`? ");
            }
            help.push_str(
                "a policy is a list of `route NAME { ... }` and `budget NAME { ... }` blocks",
            );
            Diagnostic::error(
                self.id,
                found.span,
                format!("expected `route` or `budget`, found {}", found.text),
            )
            .with_help(help)
        };
        self.diags.push(diag);
        let marks = &self.scan.marks;
        (i + 1..marks.len())
            .find(|&k| {
                matches!(self.scan.word(self.text, k), Some("route" | "budget"))
                    && (marks[k].line_start || self.scan.is_header(self.text, k))
            })
            .unwrap_or(marks.len())
    }

    /// Finds the extent of the block starting at mark `i`, parses it, and returns the index of
    /// the mark after it.
    fn block(&mut self, i: usize, kind: BlockKind) -> usize {
        let marks = &self.scan.marks;
        let (mut depth, mut open, mut close) = (0usize, None, None);
        let mut j = i + 1;
        while j < marks.len() {
            let m = marks[j];
            if m.line_start && self.scan.is_header(self.text, j) {
                break;
            }
            match m.kind {
                MarkKind::Open => {
                    depth += 1;
                    open = open.or(Some(m.start));
                }
                MarkKind::Close if depth <= 1 => {
                    close = Some(m.start);
                    j += 1;
                    break;
                }
                MarkKind::Close => depth -= 1,
                _ => {}
            }
            j += 1;
        }
        let block = Block {
            kind,
            start: marks[i].start,
            end: marks[j - 1].end,
            open,
            close,
        };
        self.parse_block(&block);
        j
    }

    fn parse_block(&mut self, b: &Block) {
        let (rule, noun) = match b.kind {
            BlockKind::Route => (Rule::route_header, "route"),
            BlockKind::Budget => (Rule::budget_header, "budget"),
        };
        let header_text = &self.text[b.start..b.end];
        let name = match PolicyParser::parse(rule, header_text) {
            Ok(mut pairs) => {
                let builder = Builder { off: b.start };
                pairs.next().and_then(|p| builder.header_name(p))
            }
            Err(e) => {
                let cx = Context {
                    kind: b.kind,
                    stmt: None,
                    limit: b.end,
                    closed: b.close,
                };
                self.diags
                    .push(errors::convert(self.id, self.text, b.start, &e, &cx));
                return;
            }
        };
        let Some(open) = b.open else { return };
        if b.close.is_none() {
            self.diags.push(self.unclosed(b, open, noun));
        }
        let body_end = b.close.unwrap_or(b.end);
        let span = Span::new(b.start, b.close.map_or(b.end, |c| c + 1));
        match b.kind {
            BlockKind::Route => {
                let stmts = self.statements(b, open + 1, body_end, Builder::route_stmt);
                if let Some(name) = name {
                    self.items
                        .push(Item::Route(RouteDecl { name, stmts, span }));
                }
            }
            BlockKind::Budget => {
                let stmts = self.statements(b, open + 1, body_end, Builder::budget_stmt);
                if let Some(name) = name {
                    self.items
                        .push(Item::Budget(BudgetDecl { name, stmts, span }));
                }
            }
        }
    }

    /// Reports an unclosed block. Braces are counted, so which `{` lacks its `}` is a guess:
    /// the innermost `{` with no `}` after it on its own line, nor starting a later line at the
    /// indentation of the `{`'s line. Linear in the size of the block.
    fn unclosed(&self, b: &Block, open: usize, noun: &str) -> Diagnostic {
        let inside = &self.scan.marks[self.scan.mark_at(b.start)..self.scan.mark_at(b.end)];
        // (line number, indentation of the line) of every mark.
        let (mut line, mut indent) = (0usize, 0usize);
        let place: Vec<(usize, usize)> = inside
            .iter()
            .map(|m| {
                if m.line_start {
                    line += 1;
                    indent = m.start - self.text[..m.start].rfind('\n').map_or(0, |n| n + 1);
                }
                (line, indent)
            })
            .collect();
        let mut last_close_on_line = HashMap::new();
        let mut last_close_at_indent = HashMap::new();
        for (i, m) in inside
            .iter()
            .enumerate()
            .filter(|(_, m)| m.kind == MarkKind::Close)
        {
            last_close_on_line.insert(place[i].0, i);
            if m.line_start {
                last_close_at_indent.insert(place[i].1, i);
            }
        }
        let blamed = inside
            .iter()
            .enumerate()
            .rev()
            .find(|&(i, m)| {
                let (line, indent) = place[i];
                m.kind == MarkKind::Open
                    && last_close_on_line.get(&line).is_none_or(|&c| c < i)
                    && last_close_at_indent.get(&indent).is_none_or(|&c| c < i)
            })
            .map_or(open, |(_, m)| m.start);
        let (message, help) = if blamed == open {
            (
                format!("`{noun}` block is missing its closing `}}`"),
                "add `}` on its own line after the last statement of the block",
            )
        } else {
            (
                "unclosed `{`".to_string(),
                "add `}` to close it, on its own line at the indentation of the `{` line",
            )
        };
        Diagnostic::error(self.id, Span::new(blamed, blamed + 1), message)
            .with_label("this `{` is never closed")
            .with_help(help)
    }

    /// Parses the statements in `start..end`, one at a time, recovering after errors.
    fn statements<T>(
        &mut self,
        b: &Block,
        start: usize,
        end: usize,
        build: fn(Builder, pest::iterators::Pair<'_, Rule>) -> Option<T>,
    ) -> Vec<T> {
        let rule = match b.kind {
            BlockKind::Route => Rule::route_stmt_entry,
            BlockKind::Budget => Rule::budget_stmt_entry,
        };
        let mut out = Vec::new();
        let mut pos = start;
        loop {
            pos = skip_trivia(self.text, pos, end);
            if pos >= end {
                break;
            }
            let input = &self.text[pos..end];
            match PolicyParser::parse(rule, input) {
                Ok(mut pairs) => {
                    let Some(pair) = pairs.next() else { break };
                    let len = pair.as_span().end();
                    match build(Builder { off: pos }, pair) {
                        Some(stmt) => out.push(stmt),
                        None => self.diags.push(errors::internal(self.id, pos)),
                    }
                    pos += len.max(1);
                }
                Err(e) => {
                    let stmt = self.scan.word(self.text, self.scan.mark_at(pos));
                    let cx = Context {
                        kind: b.kind,
                        stmt,
                        limit: end,
                        closed: b.close,
                    };
                    let d = errors::convert(self.id, self.text, pos, &e, &cx);
                    let at = d.span.start as usize;
                    // A string mistake already reported on this line explains this error.
                    let line_end = self.text[at..]
                        .find('\n')
                        .map_or(self.text.len(), |n| at + n);
                    if !self.scan.has_error_in(pos, line_end) {
                        self.diags.push(d);
                    }
                    match self.recover(pos, at.max(pos + 1), end, stmt) {
                        Some(next) => pos = next,
                        None => break,
                    }
                }
            }
        }
        out
    }

    /// Where to resume after an error at `err` in the statement starting at `stmt_start`: the
    /// next line that starts with a word at the statement's brace depth (not `and`/`or`/`not`,
    /// which continue a condition, nor `when` after a failover, which continues it).
    fn recover(
        &self,
        stmt_start: usize,
        err: usize,
        end: usize,
        stmt: Option<&str>,
    ) -> Option<usize> {
        let marks = &self.scan.marks;
        let mut depth = 0i32;
        for m in &marks[self.scan.mark_at(stmt_start)..] {
            if m.start >= end {
                return None;
            }
            match m.kind {
                MarkKind::Open => depth += 1,
                MarkKind::Close => depth -= 1,
                MarkKind::Word if m.start >= err && m.line_start && depth <= 0 => {
                    let w = &self.text[m.start..m.end];
                    let continues = matches!(w, "and" | "or" | "not")
                        || (w == "when" && stmt == Some("failover"));
                    if !continues {
                        return Some(m.start);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// Skips whitespace and comments from `pos`, not past `end`.
fn skip_trivia(text: &str, mut pos: usize, end: usize) -> usize {
    while pos < end {
        let rest = &text[pos..end];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if trimmed.starts_with('#') {
            pos = text[pos..end].find('\n').map_or(end, |n| pos + n);
        } else {
            break;
        }
    }
    pos
}
