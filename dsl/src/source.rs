//! Policy text handed to the compiler, with where it came from so diagnostics can point at the
//! user's file (a policy embedded in a YAML block scalar is shifted by the scalar's position).

use serde::{Deserialize, Serialize};

/// Byte range into one [`Source`]'s `text`.
///
/// Equality deliberately ignores positions (every `Span` equals every other), so that ASTs
/// compare structurally: `parse(fmt(x)) == parse(x)` is then a meaningful property.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Self {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

impl PartialEq for Span {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Span {}
impl std::hash::Hash for Span {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// Which blocks a source may contain: a `RoutePolicy` holds routes, a `Budget` holds budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SourceKind {
    Routes,
    Budgets,
    /// A bare policy file (CLI, tests): both kinds of block allowed.
    Any,
}

/// One piece of policy text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// What diagnostics call the file: a path such as `policies/support.yaml`.
    pub file: String,
    /// The object the text belongs to (`namespace/name` or `name`); recorded in the IR so the
    /// data plane can say which object a route came from.
    pub origin: String,
    pub kind: SourceKind,
    pub text: String,
    /// Zero-based line in `file` where `text` starts.
    pub line_offset: u32,
    /// Columns of indentation stripped from every line of `text` (YAML block scalars).
    pub column_offset: u32,
}

impl Source {
    /// A bare policy with no enclosing file position.
    pub fn new(file: impl Into<String>, text: impl Into<String>) -> Self {
        let file = file.into();
        Self {
            origin: file.clone(),
            file,
            kind: SourceKind::Any,
            text: text.into(),
            line_offset: 0,
            column_offset: 0,
        }
    }

    /// One-based (line, column) in the user's file for a byte offset into `text`.
    /// Columns count characters, not bytes.
    pub fn line_col(&self, offset: u32) -> (u32, u32) {
        let offset = (offset as usize).min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() as u32;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() as u32;
        (line + self.line_offset + 1, col + self.column_offset + 1)
    }

    /// The text of the policy line containing `offset`, without its newline, and the byte
    /// offset where that line starts.
    pub fn line_at(&self, offset: u32) -> (&str, usize) {
        let offset = (offset as usize).min(self.text.len());
        let start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        (&self.text[start..end], start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_accounts_for_yaml_offsets() {
        let mut s = Source::new("a.yaml", "route a {\n  use x/y\n}\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(14), (2, 5));
        s.line_offset = 9;
        s.column_offset = 4;
        assert_eq!(s.line_col(14), (11, 9));
        assert_eq!(s.line_at(14), ("  use x/y", 10));
    }
}
