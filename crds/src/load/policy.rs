//! Where `spec.policy`'s text sits in its file, so policy diagnostics point at the real
//! line and column.
//!
//! For a literal block scalar (`policy: |`, `|-`, `|+`, `|2`) the text starts on the line after
//! the key and every line is indented by the same amount. The mapping is only used after
//! checking it: the file's lines, de-indented, must equal the parsed text line for line.
//! Otherwise (folded `>` or multi-line quoted scalars) positions fall back to the `policy:` line.

use super::Origin;
use super::locate::{self, Seg};

/// Zero-based file line where the policy text starts, and the columns stripped from each line:
/// exactly [`switchyard_dsl::Source`]'s `line_offset` and `column_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyPosition {
    pub line_offset: u32,
    pub column_offset: u32,
}

/// Finds `text` (the parsed value of `spec.policy`) in the document of `origin`.
pub fn policy_position(origin: &Origin, text: &str) -> PolicyPosition {
    let path = [Seg::key("spec"), Seg::key("policy")];
    let Some((found, true)) = locate::locate(&origin.text, &path) else {
        return PolicyPosition {
            line_offset: origin.line - 1,
            column_offset: 0,
        };
    };
    let lines: Vec<&str> = origin
        .text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    let key_line = origin.text_offset + found.line as u32;
    let fallback = PolicyPosition {
        line_offset: key_line,
        column_offset: 0,
    };
    let Some(value_col) = found.value_col else {
        return fallback;
    };
    let header_line = lines[found.line];
    let value: String = header_line.chars().skip(value_col).collect();
    if let Some(header) = value.strip_prefix('|') {
        let Some(explicit) = block_header(header) else {
            return fallback;
        };
        let body = &lines[found.line + 1..];
        let indent = match explicit {
            Some(n) => found.key_col + n,
            None => match body.iter().find(|l| !l.trim().is_empty()) {
                Some(l) => l.len() - l.trim_start_matches(' ').len(),
                None => return fallback,
            },
        };
        if block_matches(body, indent, text) {
            return PolicyPosition {
                line_offset: key_line + 1,
                column_offset: indent as u32,
            };
        }
        return fallback;
    }
    // A one-line plain or quoted scalar with nothing to unescape.
    let quoted = value.starts_with('"') || value.starts_with('\'');
    let start = value_col + usize::from(quoted);
    let on_line: String = header_line.chars().skip(start).collect();
    if !text.contains('\n') && !text.contains('\\') && on_line.starts_with(text) && !text.is_empty()
    {
        return PolicyPosition {
            line_offset: key_line,
            column_offset: start as u32,
        };
    }
    fallback
}

/// Parses the rest of a literal block header after `|`: chomping (`-`, `+`) and an optional
/// indentation digit in either order, then an optional comment. `Some(None)` when there is no
/// explicit indentation; `None` when this is not a valid header.
fn block_header(header: &str) -> Option<Option<usize>> {
    let mut explicit = None;
    let mut rest = header;
    for _ in 0..2 {
        match rest.chars().next() {
            Some('-' | '+') => rest = &rest[1..],
            Some(c @ '1'..='9') => {
                explicit = Some(c as usize - '0' as usize);
                rest = &rest[1..];
            }
            _ => break,
        }
    }
    let rest = rest.trim_start();
    (rest.is_empty() || rest.starts_with('#')).then_some(explicit)
}

/// Whether the body lines, de-indented by `indent`, spell `text` (ignoring trailing blank
/// lines, which only chomping decides).
fn block_matches(body: &[&str], indent: usize, text: &str) -> bool {
    let wanted: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
    if wanted.len() > body.len() {
        return false;
    }
    wanted.iter().zip(body).all(|(want, line)| {
        let got = if line.len() >= indent && line[..indent].bytes().all(|b| b == b' ') {
            &line[indent..]
        } else if line.trim().is_empty() {
            ""
        } else {
            return false;
        };
        got == *want
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str, text_offset: u32) -> Origin {
        Origin {
            file: "p.yaml".into(),
            line: text_offset + 1,
            text_offset,
            text: text.into(),
        }
    }

    #[test]
    fn literal_block_maps_line_for_line() {
        let doc = "kind: RoutePolicy\nspec:\n  policy: |-\n    route a {\n\n      use x/y\n    }\n  priority: 1\n";
        let text = "route a {\n\n  use x/y\n}";
        let p = policy_position(&origin(doc, 5), text);
        assert_eq!(
            p,
            PolicyPosition {
                line_offset: 8,
                column_offset: 4
            }
        );
    }

    #[test]
    fn explicit_indentation_indicator() {
        let doc = "spec:\n  policy: |2 # keep\n      indented first\n    route a {}\n";
        let p = policy_position(&origin(doc, 0), "  indented first\nroute a {}\n");
        assert_eq!(
            p,
            PolicyPosition {
                line_offset: 2,
                column_offset: 4
            }
        );
    }

    #[test]
    fn one_line_scalars_map_to_their_column() {
        let doc = "spec:\n  policy: \"route a { use x/y }\"\n";
        let p = policy_position(&origin(doc, 3), "route a { use x/y }");
        assert_eq!(
            p,
            PolicyPosition {
                line_offset: 4,
                column_offset: 11
            }
        );
    }

    #[test]
    fn folded_and_escaped_scalars_fall_back_to_the_key_line() {
        let doc = "spec:\n  policy: >\n    route a {\n    use x/y }\n";
        let p = policy_position(&origin(doc, 0), "route a { use x/y }\n");
        assert_eq!(
            p,
            PolicyPosition {
                line_offset: 1,
                column_offset: 0
            }
        );
        let doc = "spec:\n  policy: \"route a {\\n use x/y }\"\n";
        let p = policy_position(&origin(doc, 0), "route a {\n use x/y }");
        assert_eq!(
            p,
            PolicyPosition {
                line_offset: 1,
                column_offset: 0
            }
        );
    }
}
