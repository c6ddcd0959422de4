//! Shadowed routes: a route that an earlier route always catches can never be used.
//!
//! The test is conservative (it only warns when the shadowing is certain): the earlier route
//! has no `when`, or its condition is implied by the later one's structurally — equal, a subset
//! of its conjuncts, a disjunction one of whose branches is implied, or a string match that
//! contains the later exact value (`model in ["a", "b"]` catches `model == "a"`).

use super::{CheckedRoute, Cx};
use crate::ast::Span;
use crate::decide::glob_match;
use crate::diagnostic::SourceId;
use crate::ir::{Condition, StringMatch};

/// Where a route was declared, for shadowing reports.
#[derive(Clone, Copy, Debug)]
pub(super) struct RouteSite {
    pub source: SourceId,
    /// The route's name.
    pub span: Span,
    /// A `when` was written (its condition may still have failed to check).
    pub has_when: bool,
}

/// Warns on every route shadowed by an earlier one. `sites[i]` is route `i`'s declaration.
pub(super) fn report(cx: &mut Cx<'_>, routes: &[CheckedRoute], sites: &[RouteSite]) {
    for (i, later) in routes.iter().enumerate() {
        let Some(&RouteSite {
            source: src, span, ..
        }) = sites.get(i)
        else {
            continue;
        };
        let shadowing = routes[..i].iter().enumerate().find(|&(j, earlier)| {
            let has_when = sites.get(j).is_none_or(|s| s.has_when);
            match &earlier.condition {
                // A condition that had errors was reported already; nothing certain to say.
                None => !has_when,
                Some(e) => later.condition.as_ref().is_some_and(|l| implies(l, e)),
            }
        });
        let Some((j, earlier)) = shadowing else {
            continue;
        };
        let Some(&RouteSite {
            source: esrc,
            span: espan,
            ..
        }) = sites.get(j)
        else {
            continue;
        };
        let at = cx.location(esrc, espan);
        let why = if earlier.condition.is_none() {
            "has no `when` and"
        } else {
            "has a weaker condition and"
        };
        cx.source = src;
        cx.warning(
            span,
            format!("route `{}` can never be used", later.name),
            &format!("shadowed by route `{}`", earlier.name),
            format!(
                "route `{}` at {at} {why} matches every request this one does; move this route above it or narrow the earlier condition",
                earlier.name
            ),
        );
    }
}

/// Whether `later` holding guarantees `earlier` holds (structurally, never guessing).
pub(crate) fn implies(later: &Condition, earlier: &Condition) -> bool {
    if later == earlier || *earlier == Condition::Always {
        return true;
    }
    match (later, earlier) {
        (_, Condition::All(es)) => es.iter().all(|e| implies(later, e)),
        (_, Condition::Any(es)) if es.iter().any(|e| implies(later, e)) => true,
        (Condition::All(ls), _) if ls.iter().any(|l| implies(l, earlier)) => true,
        (Condition::Any(ls), _) => ls.iter().all(|l| implies(l, earlier)),
        (Condition::Model(l), Condition::Model(e))
        | (Condition::Key(l), Condition::Key(e))
        | (Condition::Team(l), Condition::Team(e))
        | (Condition::User(l), Condition::User(e)) => match_implies(l, e),
        (
            Condition::Header {
                name: ln,
                matches: l,
            },
            Condition::Header {
                name: en,
                matches: e,
            },
        ) => ln == en && match_implies(l, e),
        (Condition::Header { name, .. }, Condition::HasHeader(h)) => name == h,
        _ => false,
    }
}

/// Whether every value matched by `l` is matched by `e`.
fn match_implies(l: &StringMatch, e: &StringMatch) -> bool {
    let values: &[String] = match l {
        StringMatch::Exact(v) => std::slice::from_ref(v),
        StringMatch::OneOf(vs) => vs,
        StringMatch::Glob(_) => return l == e,
    };
    values.iter().all(|v| match e {
        StringMatch::Exact(x) => x == v,
        StringMatch::OneOf(xs) => xs.contains(v),
        StringMatch::Glob(g) => glob_match(g, v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(m: &str) -> Condition {
        Condition::Model(StringMatch::Exact(m.into()))
    }

    #[test]
    fn implication() {
        let a = model("a");
        let both = Condition::All(vec![model("a"), Condition::Stream(true)]);
        assert!(implies(&both, &a));
        assert!(!implies(&a, &both));
        assert!(implies(
            &a,
            &Condition::Model(StringMatch::OneOf(vec!["b".into(), "a".into()]))
        ));
        assert!(implies(
            &a,
            &Condition::Model(StringMatch::Glob("*".into()))
        ));
        assert!(implies(
            &a,
            &Condition::Any(vec![Condition::Stream(true), model("a")])
        ));
        assert!(!implies(
            &Condition::Any(vec![Condition::Stream(true), model("a")]),
            &a
        ));
        assert!(!implies(&model("b"), &a));
        assert!(!implies(&Condition::Not(Box::new(a.clone())), &a));
    }
}
