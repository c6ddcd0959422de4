//! Bounds on what the loader reads: file sizes and YAML nesting, checked before the YAML
//! library runs (its scanner slows down quadratically with flow nesting: a 100,000-deep
//! `[[[...` took about 20 s) and before a special file can block or flood the reader.

/// Largest file read from a config folder or named on a command line: 4 MiB, room for a policy
/// of about 10,000 routes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Largest total of all files read in one load: 32 MiB.
pub const MAX_TOTAL_BYTES: u64 = 32 * 1024 * 1024;

/// Deepest nesting of YAML collections (block or flow) in one document. Kubernetes objects
/// nest about 10 deep; the policy text is a single string and does not count.
pub const MAX_YAML_DEPTH: usize = 64;

/// Most YAML nodes (about: lines, `- ` entries, flow collections and their items) in one
/// document. Each costs a few hundred bytes once parsed, so this bounds the memory a 4 MiB
/// file of `[a,a,a,...` could take (about 0.5 GB for 2 million items); a provider with 1,000
/// models or a Secret with 10,000 client keys stays far below it.
pub const MAX_YAML_NODES: usize = 100_000;

/// What a document exceeds, and where: one-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Excess {
    pub line: u32,
    pub column: u32,
    /// `true`: more than [`MAX_YAML_NODES`]; `false`: deeper than [`MAX_YAML_DEPTH`].
    pub too_many: bool,
}

impl Excess {
    /// The error message, lower-case like every load error.
    pub fn message(&self) -> String {
        if self.too_many {
            format!("YAML document too large: more than {MAX_YAML_NODES} nodes")
        } else {
            format!("YAML nested too deeply: more than {MAX_YAML_DEPTH} levels")
        }
    }
}

/// Where `text` first nests collections deeper than [`MAX_YAML_DEPTH`] or passes
/// [`MAX_YAML_NODES`], if it does. A linear scan that over-estimates rather than
/// under-estimates: it follows indentation, compact `- ` entries, `[`/`{` in flow context or
/// where a value starts, quoted scalars, comments and block scalars (`|`, `>`), whose contents
/// are text however they look.
pub fn check(text: &str) -> Result<(), Excess> {
    let mut nodes = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    // Parent column of the block scalar being skipped.
    let mut block_scalar: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if let Some(parent) = block_scalar {
            if content.trim().is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        if quote.is_none() && (content.is_empty() || content.starts_with('#')) {
            continue;
        }
        let mut depth = 0;
        let mut rest = content;
        let excess = |column: usize, too_many: bool| Excess {
            line: n as u32 + 1,
            column: line[..column].chars().count() as u32 + 1,
            too_many,
        };
        if quote.is_none() && flow == 0 {
            nodes += 1;
            while indents.last().is_some_and(|&top| top > indent) {
                indents.pop();
            }
            if indents.last().is_none_or(|&top| top < indent) {
                indents.push(indent);
            }
            depth = indents.len();
            while let Some(after) = rest.strip_prefix("- ").or(rest.strip_prefix("? ")) {
                depth += 1;
                nodes += 1;
                rest = after.trim_start_matches(' ');
            }
        }
        let column = line.len() - rest.len();
        let mut value_start = true;
        let mut prev = ' ';
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if let Some(q) = quote {
                if c == q {
                    if q == '\'' && chars.peek().is_some_and(|&(_, n)| n == '\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                } else if c == '\\' && q == '"' {
                    chars.next();
                }
                prev = c;
                continue;
            }
            match c {
                '#' if prev == ' ' || prev == '\t' => break,
                '"' | '\'' if value_start || flow > 0 => quote = Some(c),
                '[' | '{' if value_start || flow > 0 => {
                    flow += 1;
                    nodes += 1;
                    if depth + flow > MAX_YAML_DEPTH {
                        return Err(excess(column + i, false));
                    }
                }
                ']' | '}' if flow > 0 => flow -= 1,
                ',' if flow > 0 => nodes += 1,
                _ => {}
            }
            if nodes > MAX_YAML_NODES {
                return Err(excess(column + i, true));
            }
            value_start = match c {
                ' ' | '\t' => value_start || matches!(prev, ':' | '-' | '?' | ','),
                '[' | '{' | ',' => flow > 0,
                _ => false,
            };
            prev = c;
        }
        if depth > MAX_YAML_DEPTH || nodes > MAX_YAML_NODES {
            return Err(excess(column, depth <= MAX_YAML_DEPTH));
        }
        if quote.is_none() && flow == 0 && starts_block_scalar(rest) {
            block_scalar = Some(column);
        }
    }
    Ok(())
}

/// Whether `line` ends in a block scalar indicator (`key: |`, `- >-`, `key: |2 # text`).
fn starts_block_scalar(line: &str) -> bool {
    let code = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    };
    let code = code.trim_end();
    let indicator = code.trim_end_matches(|c: char| c == '+' || c == '-' || c.is_ascii_digit());
    (indicator.ends_with('|') || indicator.ends_with('>'))
        && (indicator.len() == 1 || indicator[..indicator.len() - 1].ends_with([' ', ':']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_and_policies_in_block_scalars_pass() {
        let text = "apiVersion: v1\nkind: RoutePolicy\nmetadata:\n  name: a\n  labels: {a: b}\n\
                    spec:\n  models:\n    - name: x\n      pricing: { inputPerMillion: 1 }\n  \
                    policy: |\n    route a {\n      when (((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((stream\n    }\n  \
                    url: http://x/{id}[0\n";
        assert_eq!(check(text), Ok(()));
    }

    fn at(text: &str) -> Option<(u32, u32)> {
        check(text).err().map(|e| (e.line, e.column))
    }

    #[test]
    fn deep_flow_block_and_compact_nesting_is_found_where_it_passes_the_limit() {
        let flow = format!("a: {}", "[".repeat(100_000));
        assert_eq!(at(&flow), Some((1, 4 + MAX_YAML_DEPTH as u32 - 1)));
        let at_limit = format!(
            "a: {}1{}",
            "[".repeat(MAX_YAML_DEPTH - 1),
            "]".repeat(MAX_YAML_DEPTH - 1)
        );
        assert_eq!(check(&at_limit), Ok(()));
        let compact = format!("{}x\n", "- ".repeat(1000));
        assert!(check(&compact).is_err_and(|e| !e.too_many));
        let block: String = (0..100)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(at(&block).map(|(l, _)| l), Some(MAX_YAML_DEPTH as u32 + 1));
        let mixed = format!("a:\n  - b: {}\n", "{c: ".repeat(100));
        assert!(check(&mixed).is_err());
    }

    #[test]
    fn too_many_nodes_flow_or_block() {
        let flat = format!("a: [{}1]\n", "1,".repeat(MAX_YAML_NODES));
        let e = check(&flat).expect_err("too many");
        assert!(e.too_many && e.line == 1, "{e:?}");
        assert!(e.message().contains("100000 nodes"));
        let lines = "k: v\n".repeat(MAX_YAML_NODES + 1);
        assert_eq!(at(&lines), Some((MAX_YAML_NODES as u32 + 1, 1)));
        let fine = "k: v\n".repeat(MAX_YAML_NODES / 2);
        assert_eq!(check(&fine), Ok(()));
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let text = format!(
            "a: \"{}\"\nb: '{}'\nc: 1 # {}\n",
            "[".repeat(200),
            "{".repeat(200),
            "[".repeat(200)
        );
        assert_eq!(check(&text), Ok(()));
    }

    #[test]
    fn block_scalar_indicators() {
        assert!(starts_block_scalar("policy: |"));
        assert!(starts_block_scalar("policy: >-"));
        assert!(starts_block_scalar("- |2 # text"));
        assert!(starts_block_scalar("|"));
        assert!(!starts_block_scalar("a: b|"));
        assert!(!starts_block_scalar("a: 'x'"));
    }
}
