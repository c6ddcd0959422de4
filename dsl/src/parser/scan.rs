//! A quick lexical pass over a whole policy: it collects comments, reports string mistakes, and
//! lists coarse tokens ("marks") that the driver uses to find blocks and recovery points.
//!
//! pest never sees the text at this level: the driver needs to know where blocks start and end
//! before any grammar rule runs, and that only takes words, braces, strings and comments.

use crate::ast::Comment;
use crate::diagnostic::{Diagnostic, SourceId};
use crate::source::Span;

/// The coarse kind of a [`Mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MarkKind {
    /// A run of letters, digits, `_` and `-`.
    Word,
    /// A double-quoted string (possibly unterminated).
    Str,
    /// `{`
    Open,
    /// `}`
    Close,
    /// Any other character.
    Other,
}

/// One coarse token, with its byte range.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mark {
    pub kind: MarkKind,
    pub start: usize,
    pub end: usize,
    /// The first mark on its line: statements and blocks usually start at one.
    pub line_start: bool,
}

/// What the scan found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    pub comments: Vec<Comment>,
    pub marks: Vec<Mark>,
    pub errors: Vec<Diagnostic>,
}

impl Scan {
    /// The text of the mark at `i` if it is a word.
    pub fn word<'t>(&self, text: &'t str, i: usize) -> Option<&'t str> {
        let m = self.marks.get(i)?;
        (m.kind == MarkKind::Word).then(|| &text[m.start..m.end])
    }

    /// Index of the first mark starting at or after byte `pos`.
    pub fn mark_at(&self, pos: usize) -> usize {
        self.marks.partition_point(|m| m.start < pos)
    }

    /// Whether `route NAME {` or `budget NAME {` starts at mark `i`.
    pub fn is_header(&self, text: &str, i: usize) -> bool {
        matches!(self.word(text, i), Some("route" | "budget"))
            && self.word(text, i + 1).is_some()
            && self
                .marks
                .get(i + 2)
                .is_some_and(|m| m.kind == MarkKind::Open)
    }

    /// Whether a lexical error (such as an unterminated string) starts in `start..end`.
    pub fn has_error_in(&self, start: usize, end: usize) -> bool {
        self.errors
            .iter()
            .any(|d| (start..end).contains(&(d.span.start as usize)))
    }
}

/// Whether `c` continues a word for the purpose of finding keywords.
pub(super) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Scans `text` once, front to back.
pub(super) fn scan(id: SourceId, text: &str) -> Scan {
    let mut out = Scan::default();
    let mut line_start = true;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let kind = match c {
            '\n' => {
                line_start = true;
                continue;
            }
            c if c.is_whitespace() || c == '\u{feff}' => continue,
            '#' => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                let body = text[i + 1..end].trim_end();
                out.comments.push(Comment {
                    text: body.to_string(),
                    span: Span::new(i, i + 1 + body.len()),
                });
                while chars.next_if(|&(j, _)| j < end).is_some() {}
                continue;
            }
            '"' => {
                let end = scan_string(id, text, i, &mut out.errors);
                while chars.next_if(|&(j, _)| j < end).is_some() {}
                MarkKind::Str
            }
            '{' => MarkKind::Open,
            '}' => MarkKind::Close,
            c if is_word_char(c) => {
                while chars.next_if(|&(_, c)| is_word_char(c)).is_some() {}
                MarkKind::Word
            }
            _ => MarkKind::Other,
        };
        let end = chars.peek().map_or(text.len(), |&(j, _)| j);
        out.marks.push(Mark {
            kind,
            start: i,
            end,
            line_start,
        });
        line_start = false;
    }
    out
}

/// Scans the string whose opening quote is at `start`; returns the byte offset just past it
/// (past the closing quote, or at the end of the line when it is unterminated).
fn scan_string(id: SourceId, text: &str, start: usize, errors: &mut Vec<Diagnostic>) -> usize {
    let mut chars = text[start + 1..]
        .char_indices()
        .map(|(j, c)| (start + 1 + j, c));
    while let Some((j, c)) = chars.next() {
        match c {
            '"' => return j + 1,
            '\n' | '\r' => return unterminated(id, start, j, errors),
            '\\' => match chars.next() {
                Some((_, '"' | '\\')) => {}
                Some((k, '\n' | '\r')) => return unterminated(id, start, k, errors),
                Some((k, other)) => {
                    let shown: String = other.escape_debug().collect();
                    errors.push(
                        Diagnostic::error(
                            id,
                            Span::new(j, k + other.len_utf8()),
                            format!("unknown escape `\\{shown}` in a string"),
                        )
                        .with_label("not an escape")
                        .with_help(
                            "strings know only two escapes: `\\\"` for a quote and `\\\\` for a \
                             backslash",
                        ),
                    );
                }
                None => return unterminated(id, start, text.len(), errors),
            },
            _ => {}
        }
    }
    unterminated(id, start, text.len(), errors)
}

/// Reports a string opened at `start` that reaches `end` (a line end) without its closing quote.
fn unterminated(id: SourceId, start: usize, end: usize, errors: &mut Vec<Diagnostic>) -> usize {
    errors.push(
        Diagnostic::error(id, Span::new(start, end), "unterminated string")
            .with_label("this string has no closing `\"`")
            .with_help("close the string with `\"` on the same line; strings cannot span lines"),
    );
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_marks() {
        let text = "route a { # hi \n  use x/\"m#\" }\n";
        let s = scan(SourceId(0), text);
        assert_eq!(s.comments.len(), 1);
        assert_eq!(s.comments[0].text, " hi");
        assert_eq!(&text[s.comments[0].span.range()], "# hi");
        let kinds: Vec<_> = s.marks.iter().map(|m| m.kind).collect();
        use MarkKind::*;
        assert_eq!(kinds, [Word, Word, Open, Word, Word, Other, Str, Close]);
        assert!(s.marks[3].line_start && !s.marks[4].line_start);
        assert!(s.errors.is_empty());
        assert!(s.is_header(text, 0));
    }

    #[test]
    fn string_errors() {
        let s = scan(SourceId(0), "\"a\\n\" \"open\nx");
        assert_eq!(s.errors.len(), 2);
        assert!(s.errors[0].message.contains("`\\n`"));
        assert_eq!(s.errors[1].message, "unterminated string");
        assert_eq!(s.marks.last().map(|m| m.kind), Some(MarkKind::Word));
    }
}
