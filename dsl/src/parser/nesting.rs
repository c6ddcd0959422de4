//! The nesting guard: a linear pass over the scan's marks that finds conditions nested deeper
//! than [`MAX_NESTING`] before pest (or any later, recursive stage) sees them.
//!
//! A condition's depth at a word is the number of `(` groups around it plus the `not`s still
//! waiting for their operand at each level. `not` binds tighter than `and`/`or`, so an `and`
//! or `or` ends every pending `not` of its level; a route statement keyword, `{` or `}` ends
//! the statement and with it all nesting (no condition rule reads past one). A `(` right after a
//! word other than `when`/`and`/`or`/`not` is a call (`header("x")`, `p95(ttft)`), not a group.
//! The count is never below the recursion depth of the parser, so bounding it bounds pest and
//! every stage after it.

use super::scan::{MarkKind, Scan};
use crate::diagnostic::{Diagnostic, SourceId};
use crate::limits::MAX_NESTING;
use crate::source::Span;

/// Route statement keywords: the grammar never reads one as a subject, so a condition (and its
/// nesting) ends there. Budget statements have no conditions, and other words (`route`, `on`,
/// ...) may be subjects, so they end nothing.
const STATEMENT_WORDS: &[&str] = &[
    "when", "use", "split", "cheapest", "fastest", "failover", "retry", "timeout", "hedge",
    "cache", "affinity",
];

/// One level of parentheses (the outermost level is the condition itself).
#[derive(Clone, Copy)]
struct Level {
    /// `(` groups count a level; call parentheses do not.
    group: bool,
    /// `not`s at this level still waiting for their operand.
    nots: usize,
}

/// One error per statement whose nesting passes [`MAX_NESTING`], at the `not` or `(` that
/// passes it.
pub(super) fn check(id: SourceId, text: &str, scan: &Scan) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut levels = vec![Level {
        group: false,
        nots: 0,
    }];
    let mut depth = 0usize;
    // Set once the current statement is reported, until it ends.
    let mut reported = false;
    let mut prev_word: Option<&str> = None;
    for m in &scan.marks {
        let word = (m.kind == MarkKind::Word).then(|| &text[m.start..m.end]);
        let deeper = match (m.kind, word) {
            (MarkKind::Open | MarkKind::Close, _) => {
                reset(&mut levels, &mut depth, &mut reported);
                false
            }
            (_, Some(w)) if STATEMENT_WORDS.contains(&w) => {
                reset(&mut levels, &mut depth, &mut reported);
                false
            }
            (_, Some("not")) => {
                if let Some(top) = levels.last_mut() {
                    top.nots += 1;
                }
                depth += 1;
                true
            }
            (_, Some("and" | "or")) => {
                if let Some(top) = levels.last_mut() {
                    depth -= top.nots;
                    top.nots = 0;
                }
                false
            }
            (MarkKind::Other, _) if &text[m.start..m.end] == "(" => {
                let group = prev_word.is_none_or(|w| matches!(w, "when" | "and" | "or" | "not"));
                levels.push(Level { group, nots: 0 });
                depth += usize::from(group);
                group
            }
            (MarkKind::Other, _) if &text[m.start..m.end] == ")" => {
                if levels.len() > 1
                    && let Some(top) = levels.pop()
                {
                    depth -= top.nots + usize::from(top.group);
                }
                false
            }
            _ => false,
        };
        prev_word = match m.kind {
            MarkKind::Word => word,
            _ => None,
        };
        if deeper && depth > MAX_NESTING && !reported {
            reported = true;
            diags.push(too_deep(id, Span::new(m.start, m.end)));
        }
    }
    diags
}

fn reset(levels: &mut Vec<Level>, depth: &mut usize, reported: &mut bool) {
    levels.truncate(1);
    levels[0].nots = 0;
    *depth = 0;
    *reported = false;
}

fn too_deep(id: SourceId, span: Span) -> Diagnostic {
    Diagnostic::error(
        id,
        span,
        format!(
            "condition nested too deeply: more than {MAX_NESTING} levels of `not` and parentheses"
        ),
    )
    .with_label(format!("level {} starts here", MAX_NESTING + 1))
    .with_help(format!(
        "a condition may nest `not` and `( )` at most {MAX_NESTING} deep; drop double negations \
         (`not not x` is `x`) and redundant parentheses, or split the route into several routes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::scan::scan;

    fn deepest_ok(text: &str) -> bool {
        check(SourceId(0), text, &scan(SourceId(0), text)).is_empty()
    }

    fn nots(n: usize) -> String {
        format!(
            "route a {{\n  when {}model == \"x\"\n  use p/m\n}}\n",
            "not ".repeat(n)
        )
    }

    fn parens(n: usize) -> String {
        format!(
            "route a {{\n  when {}model == \"x\"{}\n  use p/m\n}}\n",
            "(".repeat(n),
            ")".repeat(n)
        )
    }

    #[test]
    fn the_limit_is_exact_for_not_and_parentheses() {
        assert!(deepest_ok(&nots(MAX_NESTING)));
        assert!(!deepest_ok(&nots(MAX_NESTING + 1)));
        assert!(deepest_ok(&parens(MAX_NESTING)));
        assert!(!deepest_ok(&parens(MAX_NESTING + 1)));
        let half = MAX_NESTING / 2;
        let mixed = |n: usize| {
            format!(
                "route a {{\n  when {}stream{}\n  use p/m\n}}\n",
                "not (".repeat(n),
                ")".repeat(n)
            )
        };
        assert!(deepest_ok(&mixed(half)));
        assert!(!deepest_ok(&mixed(half + 1)));
    }

    #[test]
    fn and_or_end_pending_nots_and_calls_are_not_groups() {
        // Many `not`s in a row of operands, each one level deep.
        let wide = format!(
            "route a {{\n  when {}stream\n  use p/m\n}}\n",
            "not stream and ".repeat(4 * MAX_NESTING)
        );
        assert!(deepest_ok(&wide));
        // Calls inside the deepest level do not count.
        let calls = format!(
            "route a {{\n  when {}header(\"x\") == \"y\"\n  use p/m\n}}\n",
            "not ".repeat(MAX_NESTING)
        );
        assert!(deepest_ok(&calls));
        // A statement ends all nesting, even when its parentheses are unbalanced.
        let unbalanced = format!(
            "route a {{\n  when {}stream\n  use p/m\n  when {}stream\n}}\n",
            "(".repeat(MAX_NESTING),
            "(".repeat(MAX_NESTING)
        );
        assert!(deepest_ok(&unbalanced));
        // Closing a group keeps the `not`s before it pending until `and`/`or`.
        let after_group = format!(
            "route a {{\n  when {}(stream) and {}stream\n  use p/m\n}}\n",
            "not ".repeat(MAX_NESTING - 1),
            "not ".repeat(MAX_NESTING)
        );
        assert!(deepest_ok(&after_group));
    }

    #[test]
    fn one_error_per_statement_at_the_word_that_passes_the_limit() {
        let text = format!("{}{}", nots(10 * MAX_NESTING), parens(10 * MAX_NESTING));
        let diags = check(SourceId(0), &text, &scan(SourceId(0), &text));
        assert_eq!(diags.len(), 2);
        let first = diags[0].span.start as usize;
        assert_eq!(&text[first..first + 3], "not");
        assert_eq!(text[..first].matches("not").count(), MAX_NESTING);
        let second = diags[1].span.start as usize;
        assert_eq!(&text[second..second + 1], "(");
    }
}
