//! Shadowed routes: a route that an earlier route always catches can never be used.
//!
//! The test is conservative (it only warns when the shadowing is certain): the earlier route
//! has no `when`, or its condition is implied by the later one's structurally — equal, a subset
//! of its conjuncts, a disjunction one of whose branches is implied, or a string match that
//! contains the later exact value (`model in ["a", "b"]` catches `model == "a"`).

use std::collections::HashMap;

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
///
/// Routes are bucketed by the exact model their condition requires (`model == "x"`, alone or
/// as a conjunct): a route requiring one model cannot be caught by a route requiring another,
/// so with the usual one-model-per-route policies this is linear rather than quadratic.
pub(super) fn report(cx: &mut Cx<'_>, routes: &[CheckedRoute], sites: &[RouteSite]) {
    let mut unkeyed: Vec<usize> = Vec::new();
    let mut keyed: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, later) in routes.iter().enumerate() {
        let shadows = |j: usize| {
            let has_when = sites.get(j).is_none_or(|s| s.has_when);
            match &routes[j].condition {
                // A condition that had errors was reported already; nothing certain to say.
                None => !has_when,
                Some(e) => later.condition.as_ref().is_some_and(|l| implies(l, e)),
            }
        };
        let key = later.condition.as_ref().and_then(model_key);
        let first = match key {
            Some(k) => {
                let a = unkeyed.iter().copied().find(|&j| shadows(j));
                let b = keyed
                    .get(k)
                    .and_then(|js| js.iter().copied().find(|&j| shadows(j)));
                a.into_iter().chain(b).min()
            }
            None => (0..i).find(|&j| shadows(j)),
        };
        match key {
            Some(k) => keyed.entry(k).or_default().push(i),
            None => unkeyed.push(i),
        }
        if let (Some(j), Some(site), Some(esite)) =
            (first, sites.get(i), first.and_then(|j| sites.get(j)))
        {
            warn(cx, later, &routes[j], site, esite);
        }
    }
}

fn warn(
    cx: &mut Cx<'_>,
    later: &CheckedRoute,
    earlier: &CheckedRoute,
    site: &RouteSite,
    esite: &RouteSite,
) {
    let at = cx.location(esite.source, esite.span);
    let why = if earlier.condition.is_none() {
        "has no `when` and"
    } else {
        "has the same or a weaker condition and"
    };
    cx.source = site.source;
    cx.warning(
        site.span,
        format!("route `{}` can never be used", later.name),
        &format!("shadowed by route `{}`", earlier.name),
        format!(
            "route `{}` at {at} {why} matches every request this one does; move this route above it or narrow the earlier condition",
            earlier.name
        ),
    );
}

/// The model a condition requires exactly, if it requires one at the top level.
fn model_key(c: &Condition) -> Option<&str> {
    match c {
        Condition::Model(StringMatch::Exact(m)) => Some(m),
        Condition::All(cs) => cs.iter().find_map(|c| match c {
            Condition::Model(StringMatch::Exact(m)) => Some(m.as_str()),
            _ => None,
        }),
        _ => None,
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
