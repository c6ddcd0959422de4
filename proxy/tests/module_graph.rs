//! The proxy's module import graph has no cycles: no module uses one that uses it back,
//! directly or around a longer loop. Layers stay layers (transport under providers under the
//! router, the per-request context under the services that fill it), and a change that
//! closes a loop fails here with the loop spelled out.
//!
//! An edge is any path in non-test code that names another module of the crate: `crate::a::b`,
//! `super::x`, `self::child`, a child module by its own name, and every item of a `use`
//! tree (`use crate::{a, b::{c, d}}`); a path to a module that contains the user (its
//! parent's interface: `super::AttemptError` in a provider adapter) is not an edge. Test
//! modules (from `#[cfg(test)]` to the end of a file) are not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `proxy/src`.
fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `router/attempt.rs` → `["router", "attempt"]`, `cache/mod.rs`
/// → `["cache"]`, `lib.rs` → `[]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The source without comments, string and char literals, and the test module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'r' if matches!(bytes.get(i + 1), Some(b'"' | b'#'))
                && !bytes
                    .get(i.wrapping_sub(1))
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while bytes.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if bytes.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                j += 1;
                while j < bytes.len() && !bytes[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A char literal ('x', '\n', '\''), not a lifetime ('a).
            b'\'' if bytes.get(i + 2) == Some(&b'\'') || bytes.get(i + 1) == Some(&b'\\') => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            b => {
                out.push(b as char);
                i += 1;
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
            continue;
        }
        out.push(match c {
            ':' if chars.get(i + 1) == Some(&':') => {
                i += 1;
                Token::PathSep
            }
            '{' => Token::Open,
            '}' => Token::Close,
            ',' => Token::Comma,
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            _ => Token::Other,
        });
        i += 1;
    }
    out
}

/// Reads a path starting at `tokens[i]` (an identifier): its segments, expanded over `use`
/// groups; returns the index after it.
fn read_path(
    tokens: &[Token],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix;
    loop {
        match tokens.get(i) {
            Some(Token::Ident(name)) => {
                path.push(name.clone());
                i += 1;
            }
            Some(Token::Open) => {
                i += 1;
                while i < tokens.len() && tokens[i] != Token::Close {
                    if matches!(tokens[i], Token::Ident(_) | Token::Open) {
                        i = read_path(tokens, i, path.clone(), out);
                    } else {
                        i += 1;
                    }
                }
                return i + 1;
            }
            _ => break,
        }
        if tokens.get(i) == Some(&Token::PathSep) {
            i += 1;
        } else {
            break;
        }
    }
    out.push(path);
    i
}

/// The modules `module`'s code names.
fn uses(module: &[String], code: &str, known: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let tokens = tokens(code);
    let children: BTreeSet<String> = tokens
        .windows(2)
        .filter_map(|w| match w {
            [Token::Ident(m), Token::Ident(name)] if m == "mod" => Some(name.clone()),
            _ => None,
        })
        .collect();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts_path = matches!(&tokens[i], Token::Ident(_))
            && tokens.get(i + 1) == Some(&Token::PathSep)
            && (i == 0 || tokens[i - 1] != Token::PathSep);
        if starts_path {
            i = read_path(&tokens, i, Vec::new(), &mut paths);
        } else {
            i += 1;
        }
    }
    let mut found = BTreeSet::new();
    for path in paths {
        let mut segments = path.into_iter().peekable();
        let mut base: Vec<String> = match segments.peek().map(String::as_str) {
            Some("crate") => {
                segments.next();
                Vec::new()
            }
            Some("super") => {
                // `super` of a file module is its folder's module; of `x/mod.rs`, x's parent.
                let mut base = module.to_vec();
                base.pop();
                segments.next();
                while segments.peek().map(String::as_str) == Some("super") {
                    base.pop();
                    segments.next();
                }
                base
            }
            Some("self") => {
                segments.next();
                module.to_vec()
            }
            Some(first) if children.contains(first) => module.to_vec(),
            _ => continue,
        };
        let mut target = known.contains(&base).then(|| base.clone());
        for s in segments {
            base.push(s);
            if known.contains(&base) {
                target = Some(base.clone());
            }
        }
        // A module may use what the modules containing it define (a parent module is the
        // interface its children implement); any other edge counts.
        if let Some(t) = target
            && !module.starts_with(&t)
        {
            found.insert(t);
        }
    }
    found
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn the_proxy_module_graph_has_no_cycles() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let modules: BTreeMap<Vec<String>, PathBuf> =
        all.iter().map(|f| (module_of(f), f.clone())).collect();
    let known: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("read a source file");
        edges.insert(module.clone(), uses(module, &code_of(&text), &known));
    }
    // The scanner still sees paths (`self::failover::...` in router/mod.rs) and `use` groups
    // (`use crate::upstream::{Destination, Upstream}` in providers/openai.rs).
    let m = |path: &str| -> Vec<String> { path.split("::").map(str::to_owned).collect() };
    for (from, to) in [
        ("router", "router::failover"),
        ("providers::openai", "upstream"),
        ("router::attempt", "cache"),
    ] {
        assert!(
            edges.get(&m(from)).is_some_and(|e| e.contains(&m(to))),
            "the scanner no longer sees {from} -> {to}: {:?}",
            edges.get(&m(from))
        );
    }

    // Every module that can reach itself, with one loop through it.
    let mut loops = Vec::new();
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    let mut l: Vec<String> = trail.iter().map(|m| name(m)).collect();
                    l.push(name(start));
                    loops.push(l.join(" -> "));
                    stack.clear();
                    break;
                }
                if seen.insert(next.clone()) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
    assert!(
        loops.is_empty(),
        "module import cycles:\n  {}",
        loops.join("\n  ")
    );
}
