//! The model index over a snapshot's routes, so that a decision does not scan every route.
//!
//! Most routes pin the requested model (`when model == "x" and ...`). For each route the index
//! records the model names its condition can match at all; a route whose condition does not
//! pin the model is an "any model" route. A decision then walks the routes indexed under the
//! request's model merged, in policy order, with the any-model routes: every route it leaves
//! out cannot match that model, so the first match is the one a linear scan finds.
//!
//! The index is derived from the routes and never serialized: [`crate::Snapshot`] rebuilds it
//! when it is built or deserialized, so snapshots stay byte-identical (same hash, same
//! `IR_VERSION`) and old snapshots load unchanged.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::ir::{Condition, Route, StringMatch};

/// Model name → routes that can match it, plus the routes that can match any model.
///
/// Route numbers are indices into [`crate::Snapshot::routes`], ascending within each list.
/// The lookup is one hash of the requested model (a sorted list with binary search measured
/// 100–270 ns at 100–10,000 names, mostly cache misses; the hash map stays flat).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RouteIndex {
    /// Model name → its run `start..end` in `postings`.
    models: HashMap<Box<str>, (u32, u32)>,
    /// The runs of route numbers of all models, back to back.
    postings: Vec<u32>,
    /// Routes whose condition does not pin the model, ascending.
    any_model: Vec<u32>,
    /// How many routes were indexed (a stale index is a bug; `decide` checks in debug builds).
    routes: u32,
}

/// The index is a function of the routes, which the snapshot hashes itself: hashing the route
/// count keeps `a == b ⇒ hash(a) == hash(b)` without walking the map.
impl Hash for RouteIndex {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.routes.hash(state);
    }
}

/// A summary: the full map of a 10,000-route policy is no use in a log line.
impl fmt::Debug for RouteIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteIndex")
            .field("routes", &self.routes)
            .field("models", &self.models.len())
            .field("any_model", &self.any_model)
            .finish_non_exhaustive()
    }
}

impl RouteIndex {
    /// Indexes `routes` (in policy order).
    pub fn build(routes: &[Route]) -> Self {
        let mut by_model: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        let mut any_model = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let i = route_number(i);
            match model_set(&route.condition) {
                Some(models) => {
                    for m in models {
                        by_model.entry(m).or_default().push(i);
                    }
                }
                None => any_model.push(i),
            }
        }
        let mut models = HashMap::with_capacity(by_model.len());
        let mut postings = Vec::with_capacity(by_model.values().map(Vec::len).sum());
        for (name, routes) in by_model {
            let start = route_number(postings.len());
            postings.extend(routes);
            models.insert(name.into(), (start, route_number(postings.len())));
        }
        Self {
            models,
            postings,
            any_model,
            routes: route_number(routes.len()),
        }
    }

    /// The routes that can match a request for `model`, ascending (policy order). Does not
    /// allocate.
    pub fn candidates(&self, model: &str) -> IndexedRoutes<'_> {
        let pinned = self
            .models
            .get(model)
            .and_then(|&(start, end)| self.postings.get(start as usize..end as usize))
            .unwrap_or(&[]);
        IndexedRoutes {
            pinned,
            any: &self.any_model,
        }
    }

    /// How many routes were indexed.
    pub fn route_count(&self) -> usize {
        self.routes as usize
    }

    /// Routes that can match any model.
    pub fn any_model_routes(&self) -> usize {
        self.any_model.len()
    }

    /// Distinct model names routes are indexed under.
    pub fn model_names(&self) -> usize {
        self.models.len()
    }
}

/// Route numbers are `u32` in the index; a policy never comes near 4 billion routes (the
/// compiler's limits are far below), and saturating keeps this panic-free regardless.
fn route_number(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The merge, in ascending order, of the routes pinned to the requested model and the
/// any-model routes; see [`RouteIndex::candidates`]. A route is in at most one of the two.
#[derive(Clone, Debug)]
pub struct IndexedRoutes<'i> {
    pinned: &'i [u32],
    any: &'i [u32],
}

impl Iterator for IndexedRoutes<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let take_pinned = match (self.pinned.first(), self.any.first()) {
            (Some(p), Some(a)) => p < a,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let list = if take_pinned {
            &mut self.pinned
        } else {
            &mut self.any
        };
        let (&first, rest) = list.split_first()?;
        *list = rest;
        Some(first as usize)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.pinned.len() + self.any.len();
        (n, Some(n))
    }
}

/// The model names a condition can match, sorted and distinct; `None` when it can match any
/// model (or the index cannot tell).
///
/// `model == "x"` and `model in [...]` pin the model; an `and` pins it to the intersection of
/// its pinned conjuncts (other conjuncts narrow nothing here); an `or` pins it to the union
/// when every branch pins it. Everything else — `not`, `matches` globs, conditions on other
/// fields, no condition — matches any model. Over-approximating is always safe: `decide`
/// still evaluates the whole condition of every route it visits.
pub fn model_set(c: &Condition) -> Option<Vec<&str>> {
    let set = match c {
        Condition::Model(StringMatch::Exact(m)) => vec![m.as_str()],
        Condition::Model(StringMatch::OneOf(ms)) => ms.iter().map(String::as_str).collect(),
        // Sets come back sorted, so membership is a binary search (lists can be long).
        Condition::All(cs) => {
            let mut pinned: Option<Vec<&str>> = None;
            for set in cs.iter().filter_map(model_set) {
                pinned = Some(match pinned {
                    None => set,
                    Some(p) => p
                        .into_iter()
                        .filter(|m| set.binary_search(m).is_ok())
                        .collect(),
                });
            }
            pinned?
        }
        Condition::Any(cs) => {
            let mut union = Vec::new();
            for c in cs {
                union.extend(model_set(c)?);
            }
            union
        }
        _ => return None,
    };
    let mut set = set;
    set.sort_unstable();
    set.dedup();
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(m: &str) -> Condition {
        Condition::Model(StringMatch::Exact(m.into()))
    }

    fn one_of(ms: &[&str]) -> Condition {
        Condition::Model(StringMatch::OneOf(
            ms.iter().map(|m| m.to_string()).collect(),
        ))
    }

    fn header() -> Condition {
        Condition::Header {
            name: "x-team".into(),
            matches: StringMatch::Exact("a".into()),
        }
    }

    #[test]
    fn model_sets() {
        assert_eq!(model_set(&exact("a")), Some(vec!["a"]));
        assert_eq!(model_set(&one_of(&["b", "a", "b"])), Some(vec!["a", "b"]));
        assert_eq!(
            model_set(&Condition::All(vec![header(), exact("a")])),
            Some(vec!["a"])
        );
        assert_eq!(
            model_set(&Condition::All(vec![
                one_of(&["a", "b"]),
                one_of(&["b", "c"])
            ])),
            Some(vec!["b"])
        );
        assert_eq!(
            model_set(&Condition::All(vec![exact("a"), exact("b")])),
            Some(vec![])
        );
        assert_eq!(
            model_set(&Condition::Any(vec![exact("b"), one_of(&["a"])])),
            Some(vec!["a", "b"])
        );
        assert_eq!(model_set(&Condition::Any(vec![exact("b"), header()])), None);
        assert_eq!(model_set(&Condition::Not(Box::new(exact("a")))), None);
        assert_eq!(
            model_set(&Condition::Model(StringMatch::Glob("gpt-*".into()))),
            None
        );
        assert_eq!(model_set(&Condition::All(vec![header()])), None);
        assert_eq!(model_set(&Condition::Always), None);
    }
}
