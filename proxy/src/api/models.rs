//! `GET /v1/models`: the model names the active snapshot's routes expose, in OpenAI's list
//! shape, each owned by the provider of its route's first target.

use std::collections::HashSet;

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

/// The body of `GET /v1/models`.
pub fn list(snapshot: &Snapshot, created: u64) -> Bytes {
    let list = List {
        object: "list",
        data: models(snapshot, created),
    };
    Bytes::from(serde_json::to_vec(&list).unwrap_or_default())
}

/// The body of `GET /v1/models/{id}`, or `None` when no route exposes it.
pub fn one(snapshot: &Snapshot, id: &str, created: u64) -> Option<Bytes> {
    let all = models(snapshot, created);
    let m = all.into_iter().find(|m| m.id == id)?;
    Some(Bytes::from(serde_json::to_vec(&m).unwrap_or_default()))
}
