//! `GET /v1/models`: the model names the active snapshot's routes expose, in OpenAI's list
//! shape, each owned by the provider of its route's first target.
//!
//! The bodies are built once per configuration version and kept ([`ModelsCache`]): with
//! 10,000 routes the list is about a megabyte and a walk over every route, too much to
//! redo for every request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde::Serialize;
use switchyard_dsl::ir::{Route, Selection, Snapshot, TargetId};

#[derive(Debug, Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

#[derive(Debug, Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

fn first_target(route: &Route) -> Option<TargetId> {
    match &route.selection {
        Selection::Single(t) => Some(*t),
        Selection::Split(arms) => arms.first().map(|a| a.target),
        Selection::Cheapest(ts) | Selection::Fastest { targets: ts, .. } => ts.first().copied(),
    }
}

fn models(snapshot: &Snapshot, created: u64) -> Vec<Model<'_>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for route in &snapshot.routes {
        let owner = first_target(route)
            .map(|t| snapshot.provider(snapshot.target(t).provider).name.as_str())
            .unwrap_or("switchyard");
        for id in &route.exposed_models {
            if seen.insert(id.as_str()) {
                out.push(Model {
                    id,
                    object: "model",
                    created,
                    owned_by: owner,
                });
            }
        }
    }
    out
}

/// The `/v1/models` bodies of one configuration version.
#[derive(Debug)]
struct Built {
    version: u64,
    list: Bytes,
    one: HashMap<String, Bytes>,
}

/// The `/v1/models` answers of the configuration in force, rebuilt when its version changes.
#[derive(Debug, Default)]
pub struct ModelsCache {
    built: Mutex<Option<Arc<Built>>>,
}

impl ModelsCache {
    fn get(&self, version: u64, snapshot: &Snapshot, created: u64) -> Arc<Built> {
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        match built.as_ref() {
            Some(b) if b.version == version => Arc::clone(b),
            _ => {
                let models = models(snapshot, created);
                let one = models
                    .iter()
                    .map(|m| {
                        let body = Bytes::from(serde_json::to_vec(m).unwrap_or_default());
                        (m.id.to_owned(), body)
                    })
                    .collect();
                let b = Arc::new(Built {
                    version,
                    list: list_body(models),
                    one,
                });
                *built = Some(Arc::clone(&b));
                b
            }
        }
    }

    /// The body of `GET /v1/models` for configuration `version` holding `snapshot`.
    pub fn list(&self, version: u64, snapshot: &Snapshot, created: u64) -> Bytes {
        self.get(version, snapshot, created).list.clone()
    }

    /// The body of `GET /v1/models/{id}`, or `None` when no route exposes it.
    pub fn one(&self, version: u64, snapshot: &Snapshot, id: &str, created: u64) -> Option<Bytes> {
        self.get(version, snapshot, created).one.get(id).cloned()
    }
}

fn list_body(data: Vec<Model<'_>>) -> Bytes {
    let list = List {
        object: "list",
        data,
    };
    Bytes::from(serde_json::to_vec(&list).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_rebuilt_only_when_the_version_changes() {
        let empty = Snapshot::new(Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let cache = ModelsCache::default();
        let first = cache.list(1, &empty, 7);
        let v: serde_json::Value = serde_json::from_slice(&first).expect("json");
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"].as_array().map(Vec::len), Some(0));
        // Same version: the very same bytes, not a rebuild.
        assert_eq!(cache.list(1, &empty, 8).as_ptr(), first.as_ptr());
        // A new version is rebuilt (here with another `created`).
        let second = cache.list(2, &empty, 8);
        assert_ne!(second.as_ptr(), first.as_ptr());
        assert!(cache.one(2, &empty, "gpt-4o", 8).is_none());
    }
}
