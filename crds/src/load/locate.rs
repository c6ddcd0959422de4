//! Finding keys in the text of a block-style YAML document, so errors can point at the line
//! and column of the field they are about, and policy text maps back to its file position.
//!
//! This is not a YAML parser: it follows indentation of block mappings and sequences (and one
//! level of `{ flow: mappings }` on a line), which is how Kubernetes manifests are written.
//! When it cannot follow the structure it returns the deepest key it did find.

use std::fmt;

/// One step of a path into a document: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    pub fn key(k: &str) -> Self {
        Seg::Key(k.to_string())
    }
}

/// `spec.models[2].pricing`
pub struct PathDisplay<'a>(pub &'a [Seg]);

impl fmt::Display for PathDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Where a key was found: zero-based line within the document and zero-based columns (in
/// characters) of the key and of its value when the value starts on the same line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub line: usize,
    pub key_col: usize,
    pub value_col: Option<usize>,
}

#[derive(Clone, Debug)]
struct Entry<'a> {
    line: usize,
    /// Column where `content` starts.
    indent: usize,
    content: &'a str,
}

/// Finds `path` in `doc`. Returns the position of the deepest segment found and whether the
/// whole path was found; `None` when not even the first segment was.
pub fn locate(doc: &str, path: &[Seg]) -> Option<(Found, bool)> {
    let mut entries: Vec<Entry<'_>> = doc
        .lines()
        .enumerate()
        .filter_map(|(line, text)| {
            let text = text.trim_end_matches('\r');
            let content = text.trim_start_matches(' ');
            let blank = content.trim().is_empty() || content.starts_with('#');
            let marker = text.starts_with("---") || text.starts_with("...");
            (!blank && !marker).then(|| Entry {
                line,
                indent: text.len() - content.len(),
                content,
            })
        })
        .collect();
    let mut range = 0..entries.len();
    let mut best: Option<Found> = None;
    // Set when the current node is a flow mapping on one line: (entry index, column to search from).
    let mut inline: Option<(usize, usize)> = None;
    for seg in path {
        if let Some((i, from)) = inline {
            let Seg::Key(k) = seg else {
                return best.map(|b| (b, false));
            };
            let entry = &entries[i];
            let Some(col) = find_flow_key(entry.content, from - entry.indent, k) else {
                return best.map(|b| (b, false));
            };
            let after_key = col + quoted_len(entry.content, col, k);
            let colon = after_key + entry.content[after_key..].len()
                - entry.content[after_key..].trim_start_matches(' ').len();
            let value = value_start(entry.content, colon);
            best = Some(Found {
                line: entry.line,
                key_col: char_col(entry, entry.indent + col),
                value_col: value.map(|v| char_col(entry, entry.indent + v)),
            });
            inline = value
                .filter(|&v| entry.content[v..].starts_with('{'))
                .map(|v| (i, entry.indent + v + 1));
            if inline.is_none() {
                range = 0..0;
            }
            continue;
        }
        if range.is_empty() {
            return best.map(|b| (b, false));
        }
        let indent = entries[range.start].indent;
        match seg {
            Seg::Key(k) => {
                let Some(i) = range.clone().find(|&i| {
                    entries[i].indent == indent && key_len(entries[i].content, k).is_some()
                }) else {
                    return best.map(|b| (b, false));
                };
                let entry = &entries[i];
                let klen = key_len(entry.content, k).unwrap_or(0);
                let value_col = value_start(entry.content, klen).map(|c| entry.indent + c);
                best = Some(Found {
                    line: entry.line,
                    key_col: char_col(entry, entry.indent),
                    value_col: value_col.map(|c| char_col(entry, c)),
                });
                if let Some(c) = value_col {
                    let value = &entry.content[c - entry.indent..];
                    inline = value.starts_with('{').then_some((i, c + 1));
                    // A block scalar header (`|`, `>-`) or an anchor leaves the value below.
                    let below = value.starts_with('|') || value.starts_with('>');
                    if !below && inline.is_none() {
                        range = 0..0;
                        continue;
                    }
                }
                range = value_region(&entries, i, range.end);
            }
            Seg::Index(n) => {
                let items: Vec<usize> = range
                    .clone()
                    .filter(|&i| entries[i].indent == indent && is_dash(entries[i].content))
                    .collect();
                let Some(&i) = items.get(*n) else {
                    return best.map(|b| (b, false));
                };
                let end = items.get(n + 1).copied().unwrap_or(range.end);
                let entry = entries[i].clone();
                best = Some(Found {
                    line: entry.line,
                    key_col: char_col(&entry, entry.indent),
                    value_col: Some(char_col(&entry, entry.indent)),
                });
                let rest = &entry.content[1..];
                let inner = rest.trim_start_matches(' ');
                if inner.is_empty() || inner.starts_with('#') {
                    range = i + 1..end;
                } else {
                    // The item's first line holds content: treat `- ` as indentation.
                    let skip = 1 + rest.len() - inner.len();
                    if inner.starts_with('{') {
                        inline = Some((i, entry.indent + skip + 1));
                    }
                    entries[i] = Entry {
                        line: entry.line,
                        indent: entry.indent + skip,
                        content: inner,
                    };
                    range = i..end;
                }
            }
        }
    }
    best.map(|b| (b, true))
}

/// Entries after the key at `i` that belong to its value: more indented lines, or a block
/// sequence at the key's own indentation (`key:\n- a\n- b`).
fn value_region(entries: &[Entry<'_>], i: usize, end: usize) -> std::ops::Range<usize> {
    let indent = entries[i].indent;
    let first = i + 1;
    let same_level_seq =
        first < end && entries[first].indent == indent && is_dash(entries[first].content);
    let mut j = first;
    while j < end
        && (entries[j].indent > indent
            || (same_level_seq && entries[j].indent == indent && is_dash(entries[j].content)))
    {
        j += 1;
    }
    first..j
}

fn is_dash(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// If `content` starts with `key:` (plain or quoted key), the byte length up to the colon.
fn key_len(content: &str, key: &str) -> Option<usize> {
    let len = quoted_len(content, 0, key);
    (len > 0 && content[len..].starts_with(':') && {
        let after = &content[len + 1..];
        after.is_empty() || after.starts_with(' ') || after.starts_with('\t')
    })
    .then_some(len)
}

/// Length of `key` at `at` in `content`, plain or in quotes; 0 when it is not there.
fn quoted_len(content: &str, at: usize, key: &str) -> usize {
    let s = &content[at..];
    if s.starts_with(key) {
        return key.len();
    }
    for q in ['"', '\''] {
        if s.starts_with(q) && s[1..].starts_with(key) && s[1 + key.len()..].starts_with(q) {
            return key.len() + 2;
        }
    }
    0
}

/// Byte column of the value after the colon at `colon`, if the line has one (not a comment).
fn value_start(content: &str, colon: usize) -> Option<usize> {
    let after = content.get(colon + 1..)?;
    let value = after.trim_start_matches([' ', '\t']);
    (!value.is_empty() && !value.starts_with('#')).then(|| content.len() - value.len())
}

/// Byte column of `key:` inside a flow mapping on this line, searching from byte `from`.
fn find_flow_key(content: &str, from: usize, key: &str) -> Option<usize> {
    let mut at = from;
    while at < content.len() {
        let rel = content[at..].find(key.chars().next()?)?;
        let start = at + rel;
        let before = content[..start].trim_end_matches(' ');
        let prefix_ok = before.ends_with('{') || before.ends_with(',');
        let len = quoted_len(content, start, key);
        let start_ok = prefix_ok && len > 0;
        if start_ok
            && content[start + len..]
                .trim_start_matches(' ')
                .starts_with(':')
        {
            return Some(start);
        }
        at = start + 1;
        while !content.is_char_boundary(at) {
            at += 1;
        }
    }
    None
}

/// Converts a byte column in the entry's line to a character column.
fn char_col(entry: &Entry<'_>, byte_col: usize) -> usize {
    let in_content = byte_col
        .saturating_sub(entry.indent)
        .min(entry.content.len());
    entry.indent + entry.content[..in_content].chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<Seg> {
        p.iter()
            .map(|s| s.parse::<usize>().map_or_else(|_| Seg::key(s), Seg::Index))
            .collect()
    }

    const DOC: &str = "\
# comment
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: openai
spec:
  type: openai
  models:
  - name: a
    pricing: { inputPerMillion: 1, outputPerMillion: 2 }
  -
    name: b
    pricing:
      inputPerMillion: -1
  timeouts: {connect: 5s}
";

    fn at(p: &[&str]) -> Option<(Found, bool)> {
        locate(DOC, &path(p))
    }

    #[test]
    fn finds_block_keys() {
        let (f, all) = at(&["kind"]).expect("found");
        assert!(all);
        assert_eq!((f.line, f.key_col, f.value_col), (2, 0, Some(6)));
        let (f, _) = at(&["metadata", "name"]).expect("found");
        assert_eq!((f.line, f.key_col, f.value_col), (4, 2, Some(8)));
    }

    #[test]
    fn finds_sequence_items_and_flow_keys() {
        let (f, all) = at(&["spec", "models", "0", "pricing", "outputPerMillion"]).expect("found");
        assert!(all);
        assert_eq!((f.line, f.key_col), (9, 35));
        let (f, all) = at(&["spec", "models", "1", "pricing", "inputPerMillion"]).expect("found");
        assert!(all);
        assert_eq!((f.line, f.key_col, f.value_col), (13, 6, Some(23)));
        let (f, _) = at(&["spec", "models", "1", "name"]).expect("found");
        assert_eq!(f.line, 11);
        let (f, all) = at(&["spec", "timeouts", "connect"]).expect("found");
        assert!(all);
        assert_eq!((f.line, f.key_col, f.value_col), (14, 13, Some(22)));
    }

    #[test]
    fn returns_the_deepest_found() {
        let (f, all) = at(&["spec", "models", "5", "name"]).expect("found");
        assert!(!all);
        assert_eq!(f.line, 7);
        assert!(at(&["nothing"]).is_none());
        let (f, all) = at(&["metadata", "namespace"]).expect("found");
        assert!(!all);
        assert_eq!(f.line, 3);
    }

    #[test]
    fn a_sequence_may_sit_at_its_key_indentation() {
        let doc = "spec:\n  models:\n  - name: a\n  - name: b\n  other: 1\n";
        let (f, all) = locate(doc, &path(&["spec", "models", "1", "name"])).expect("found");
        assert!(all);
        assert_eq!((f.line, f.key_col), (3, 4));
        let (f, all) = locate(doc, &path(&["spec", "other"])).expect("found");
        assert!(all);
        assert_eq!(f.line, 4);
    }
}
