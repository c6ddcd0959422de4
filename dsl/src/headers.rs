//! Which request headers a snapshot reads, and how: what a decision record must keep of a
//! request so that a replay decides it the same way, and no more.
//!
//! A header the policies only compare for equality (`header("x-team") == "support"`, `in
//! [...]`, `has header`, a budget `for each ... in header`) can be recorded as a hash of its
//! value: a replay compares hashes. A header matched against a glob needs its text.

use std::collections::BTreeMap;

use crate::ir::{BudgetScope, Condition, Snapshot, StringMatch};

/// How the policies read one header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderUse {
    /// Lower-case header name.
    pub name: String,
    /// Only compared for equality or presence, never against a pattern.
    pub equality_only: bool,
}

/// Prefix of a hashed header value in a decision record.
pub const HASH_PREFIX: &str = "sha256:";

/// Longest header value a record keeps as text, in bytes (cut at a character boundary).
pub const MAX_RECORDED_VALUE: usize = 64;

/// The form a decision record keeps a header value in: `sha256:` and the first 16 hex digits
/// of the value's SHA-256 when the policies only compare it for equality, else the value cut
/// to [`MAX_RECORDED_VALUE`] bytes.
pub fn recorded_value(value: &str, equality_only: bool) -> String {
    if equality_only {
        hashed(value)
    } else {
        let mut end = value.len().min(MAX_RECORDED_VALUE);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value[..end].to_string()
    }
}

/// `sha256:` and the first 16 hex digits of the SHA-256 of `value`.
pub fn hashed(value: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(value.as_bytes());
    format!("{HASH_PREFIX}{}", hex::encode(&digest[..8]))
}

/// Every header any route condition or budget scope of `snapshot` reads, sorted by name.
pub fn referenced_headers(snapshot: &Snapshot) -> Vec<HeaderUse> {
    let mut uses: BTreeMap<&str, bool> = BTreeMap::new();
    for route in &snapshot.routes {
        walk(&route.condition, &mut uses);
    }
    for budget in &snapshot.budgets {
        if let BudgetScope::EachHeaderValue(name) = &budget.scope {
            uses.entry(name).or_insert(true);
        }
    }
    uses.into_iter()
        .map(|(name, equality_only)| HeaderUse {
            name: name.to_string(),
            equality_only,
        })
        .collect()
}

fn walk<'s>(condition: &'s Condition, uses: &mut BTreeMap<&'s str, bool>) {
    match condition {
        Condition::All(cs) | Condition::Any(cs) => cs.iter().for_each(|c| walk(c, uses)),
        Condition::Not(c) => walk(c, uses),
        Condition::Header { name, matches } => {
            let equality = !matches!(matches, StringMatch::Glob(_));
            let entry = uses.entry(name).or_insert(equality);
            *entry &= equality;
        }
        Condition::HasHeader(name) => {
            uses.entry(name).or_insert(true);
        }
        Condition::Always
        | Condition::Model(_)
        | Condition::Key(_)
        | Condition::Team(_)
        | Condition::User(_)
        | Condition::PromptTokens { .. }
        | Condition::Stream(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_are_hashed_or_cut() {
        let h = recorded_value("support", true);
        assert!(
            h.starts_with(HASH_PREFIX) && h.len() == HASH_PREFIX.len() + 16,
            "{h}"
        );
        assert_eq!(h, hashed("support"));
        assert_ne!(h, hashed("sales"));
        assert_eq!(recorded_value("summarize", false), "summarize");
        let long = "é".repeat(40);
        let cut = recorded_value(&long, false);
        assert_eq!(cut.len(), 64);
        assert!(long.starts_with(&cut));
    }
    use crate::ir::{Provider, ProviderKind};
    use crate::source::{Source, SourceKind};

    #[test]
    fn equality_only_unless_some_condition_uses_a_pattern() {
        let source = |kind, text: &str| Source {
            file: "t.yaml".into(),
            origin: "t".into(),
            kind,
            text: text.into(),
            line_offset: 0,
            column_offset: 0,
        };
        let routes = source(
            SourceKind::Routes,
            r#"route a { when header("x-team") == "support" and has header("x-beta") use p/m }
               route b { when header("x-task") matches "sum*" or header("x-team") in ["a", "b"] use p/m }
               route c { when not header("x-task") == "exact" use p/m }"#,
        );
        let budgets = source(
            SourceKind::Budgets,
            r#"budget u { for each user in header "x-user-id" limit 10 requests per minute }"#,
        );
        let catalogue = [Provider::new("p", ProviderKind::Mock, &["m"])];
        let compiled = crate::compile(&[routes, budgets], &catalogue);
        let snapshot = compiled.snapshot.expect("compiles");
        let uses = referenced_headers(&snapshot);
        let got: Vec<(&str, bool)> = uses
            .iter()
            .map(|h| (h.name.as_str(), h.equality_only))
            .collect();
        assert_eq!(
            got,
            [
                ("x-beta", true),
                ("x-task", false),
                ("x-team", true),
                ("x-user-id", true)
            ]
        );
    }
}
