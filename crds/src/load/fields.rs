//! Fields the API server would silently drop: keys a document has that its CRD schema lacks.
//!
//! The Rust types ignore unknown fields (an older operator must read objects written under a
//! newer schema), so the loader checks them against the generated schema instead; a typo such as
//! `baseURL` becomes an error at its line rather than a setting that quietly does nothing.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value as Json;
use yaml_serde::Value;

use super::Origin;
use super::error::{LoadError, LoadErrorKind};
use super::locate::{PathDisplay, Seg};

/// The `openAPIV3Schema` of each CRD, by kind.
static SCHEMAS: LazyLock<HashMap<String, Json>> = LazyLock::new(|| {
    crate::crds()
        .into_iter()
        .filter_map(|crd| {
            let version = crd.spec.versions.into_iter().next()?;
            let schema = version.schema?.open_api_v3_schema?;
            Some((crd.spec.names.kind, serde_json::to_value(schema).ok()?))
        })
        .collect()
});

/// One error per unknown key in `value`, located at the key.
pub(super) fn unknown_fields(kind: &str, value: &Value, origin: &Origin) -> Vec<LoadError> {
    let Some(schema) = SCHEMAS.get(kind) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    walk(value, schema, &mut Vec::new(), origin, &mut errors);
    errors
}

fn walk(
    value: &Value,
    schema: &Json,
    path: &mut Vec<Seg>,
    origin: &Origin,
    errors: &mut Vec<LoadError>,
) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Json::Bool(true)) {
        return;
    }
    match value {
        Value::Mapping(map) => {
            let properties = schema.get("properties").and_then(Json::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                let Some(key) = key.as_str() else { continue };
                // Every object has these; CRD schemas leave them to the API server.
                if path.is_empty() && matches!(key, "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                path.push(Seg::key(key));
                if let Some(sub) = properties.and_then(|p| p.get(key)).or(additional) {
                    walk(child, sub, path, origin, errors);
                } else if let Some(properties) = properties {
                    errors.push(unknown(
                        key,
                        properties.keys().map(String::as_str),
                        path,
                        origin,
                    ));
                }
                path.pop();
            }
        }
        Value::Sequence(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(item, sub, path, origin, errors);
                    path.pop();
                }
            }
        }
        Value::Tagged(tagged) => walk(&tagged.value, schema, path, origin, errors),
        _ => {}
    }
}

fn unknown<'a>(
    key: &str,
    known: impl Iterator<Item = &'a str> + Clone,
    path: &[Seg],
    origin: &Origin,
) -> LoadError {
    let parent = &path[..path.len() - 1];
    let message = if parent.is_empty() {
        format!("unknown field `{key}`")
    } else {
        format!("unknown field `{key}` in `{}`", PathDisplay(parent))
    };
    let help = match crate::suggest::closest(key, known.clone()) {
        Some(close) => format!("did you mean `{close}`?"),
        None => {
            let list: Vec<String> = known.map(|k| format!("`{k}`")).collect();
            format!("known fields: {}", list.join(", "))
        }
    };
    origin
        .error_at(LoadErrorKind::UnknownField, path, message)
        .with_help(help)
}
