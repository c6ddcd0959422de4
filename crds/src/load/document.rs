//! Turning one YAML document into a typed object, or into located errors.

use k8s_openapi::api::core::v1::Secret;
use serde::de::DeserializeOwned;
use yaml_serde::Value;

use super::error::{LoadError, LoadErrorKind};
use super::locate::Seg;
use super::{Config, Loaded, Loader, Origin, RawDoc, fields, limits};
use crate::{API_VERSION, Budget, LLMProvider, RoutePolicy, RoutePolicyTest};

/// The kinds a config folder may hold, with their `apiVersion`.
const KINDS: [(&str, &str); 5] = [
    ("LLMProvider", API_VERSION),
    ("RoutePolicy", API_VERSION),
    ("Budget", API_VERSION),
    ("Secret", "v1"),
    ("RoutePolicyTest", API_VERSION),
];

fn known_kinds() -> String {
    KINDS.map(|(k, _)| k).join(", ")
}

/// A kind the loader stores in [`Config`].
trait Kind: DeserializeOwned + kube::Resource {
    const KIND: &'static str;
    /// Whether unknown fields are checked against the CRD schema.
    const CHECK_FIELDS: bool;
    fn store(config: &mut Config, item: Loaded<Self>);
}

impl Kind for LLMProvider {
    const KIND: &'static str = "LLMProvider";
    const CHECK_FIELDS: bool = true;
    fn store(config: &mut Config, item: Loaded<Self>) {
        config.providers.push(item);
    }
}

impl Kind for RoutePolicy {
    const KIND: &'static str = "RoutePolicy";
    const CHECK_FIELDS: bool = true;
    fn store(config: &mut Config, item: Loaded<Self>) {
        config.route_policies.push(item);
    }
}

impl Kind for Budget {
    const KIND: &'static str = "Budget";
    const CHECK_FIELDS: bool = true;
    fn store(config: &mut Config, item: Loaded<Self>) {
        config.budgets.push(item);
    }
}

impl Kind for RoutePolicyTest {
    const KIND: &'static str = "RoutePolicyTest";
    /// No CRD schema to check against: the spec types reject unknown fields themselves.
    const CHECK_FIELDS: bool = false;
    fn store(config: &mut Config, item: Loaded<Self>) {
        config.tests.push(item);
    }
}

impl Kind for Secret {
    const KIND: &'static str = "Secret";
    const CHECK_FIELDS: bool = false;
    fn store(config: &mut Config, item: Loaded<Self>) {
        config.secrets.push(item);
    }
}

/// Parses `doc` and stores its object in the loader's config, or records why it cannot.
pub(super) fn load(loader: &mut Loader, file: &str, doc: RawDoc) {
    let Some(first) = doc
        .text
        .lines()
        .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    else {
        return; // nothing but comments and blank lines
    };
    let origin = Origin {
        file: file.to_string(),
        line: doc.offset + first as u32 + 1,
        text_offset: doc.offset,
        text: doc.text,
    };
    if let Err(excess) = limits::check(&origin.text) {
        let help = if excess.too_many {
            "split it into several documents (`---`) or files"
        } else {
            "Kubernetes objects nest far less; look for unbalanced `[` or `{`"
        };
        let error = LoadError::new(
            LoadErrorKind::Yaml,
            file,
            Some(origin.text_offset + excess.line),
            Some(excess.column),
            excess.message(),
        )
        .with_help(help);
        return loader.errors.push(error);
    }
    let value: Value = match yaml_serde::from_str(&origin.text) {
        Ok(v) => v,
        Err(e) => {
            return loader
                .errors
                .push(yaml_error(&origin, &e, LoadErrorKind::Yaml));
        }
    };
    let Value::Mapping(map) = &value else {
        if !value.is_null() {
            loader.errors.push(
                LoadError::new(
                    LoadErrorKind::UnknownKind,
                    file,
                    Some(origin.line),
                    None,
                    "a document must be a mapping with `apiVersion`, `kind` and `metadata`",
                )
                .with_help(format!("known kinds: {}", known_kinds())),
            );
        }
        return;
    };
    let Some(kind) = map.get("kind").and_then(Value::as_str) else {
        let error = origin.error_at(
            LoadErrorKind::UnknownKind,
            &[Seg::key("kind")],
            "missing `kind`",
        );
        return loader
            .errors
            .push(error.with_help(format!("known kinds: {}", known_kinds())));
    };
    let Some(&(kind, api_version)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        let (line, column) = origin.value_position(&[Seg::key("kind")]);
        let mut error = LoadError::new(
            LoadErrorKind::UnknownKind,
            file,
            Some(line),
            column,
            format!("unknown kind `{kind}` (known: {})", known_kinds()),
        );
        if let Some(close) = crate::suggest::closest(kind, KINDS.iter().map(|(k, _)| *k)) {
            error = error.with_help(format!("did you mean `{close}`?"));
        }
        return loader.errors.push(error);
    };
    let found_version = map.get("apiVersion").and_then(Value::as_str);
    if found_version != Some(api_version) {
        let (line, column) = origin.value_position(&[Seg::key("apiVersion")]);
        let message = match found_version {
            Some(v) => format!("unknown apiVersion `{v}` for kind `{kind}`"),
            None => format!("missing `apiVersion` for kind `{kind}`"),
        };
        let error = LoadError::new(
            LoadErrorKind::UnknownApiVersion,
            file,
            Some(line),
            column,
            message,
        )
        .with_help(format!("use `apiVersion: {api_version}`"));
        return loader.errors.push(error);
    }
    match kind {
        "LLMProvider" => load_typed::<LLMProvider>(loader, origin, &value),
        "RoutePolicy" => load_typed::<RoutePolicy>(loader, origin, &value),
        "Budget" => load_typed::<Budget>(loader, origin, &value),
        "RoutePolicyTest" => load_typed::<RoutePolicyTest>(loader, origin, &value),
        _ => load_typed::<Secret>(loader, origin, &value),
    }
}

fn load_typed<K: Kind>(loader: &mut Loader, origin: Origin, value: &Value) {
    let before = loader.errors.len();
    if K::CHECK_FIELDS {
        loader
            .errors
            .extend(fields::unknown_fields(K::KIND, value, &origin));
    }
    let object: K = match yaml_serde::from_str(&origin.text) {
        Ok(object) => object,
        Err(e) => {
            return loader
                .errors
                .push(yaml_error(&origin, &e, LoadErrorKind::Field));
        }
    };
    let meta = object.meta();
    let Some(name) = meta.name.as_deref().filter(|n| !n.is_empty()) else {
        let error = origin
            .error_at(
                LoadErrorKind::MissingName,
                &[Seg::key("metadata"), Seg::key("name")],
                "missing `metadata.name`",
            )
            .with_help(format!("every {} needs a name", K::KIND));
        return loader.errors.push(error);
    };
    let namespace = meta.namespace.clone();
    let name = name.to_string();
    if loader.claim(K::KIND, &origin, namespace.as_deref(), &name) && loader.errors.len() == before
    {
        K::store(&mut loader.config, Loaded { object, origin });
    }
}

/// A YAML syntax or deserialization error, moved from document to file coordinates.
fn yaml_error(origin: &Origin, e: &yaml_serde::Error, kind: LoadErrorKind) -> LoadError {
    let text = e.to_string();
    match e.location() {
        Some(loc) => {
            let message = rewrite_marks(&text, loc.line(), loc.column(), origin.text_offset);
            let message = plain_words(&message);
            let (line, column) = clamp_to_document(&origin.text, loc.line(), loc.column());
            let line = origin.text_offset + line as u32;
            LoadError::new(kind, &origin.file, Some(line), Some(column as u32), message)
        }
        None => LoadError::new(kind, &origin.file, Some(origin.line), None, text),
    }
}

/// Replaces Rust type names in serde's messages with what a YAML author would call them.
fn plain_words(message: &str) -> String {
    let mut out = message.to_string();
    for (rust, plain) in [
        ("expected f64", "expected a number"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping"),
        ("invalid type: map,", "invalid type: mapping,"),
        ("invalid type: sequence,", "invalid type: list,"),
    ] {
        out = out.replace(rust, plain);
    }
    // `expected struct Pricing` → `expected a mapping`
    while let Some(i) = out.find("expected struct ") {
        let rest = &out[i + "expected struct ".len()..];
        let end = rest
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        out = format!("{}expected a mapping{}", &out[..i], &rest[end..]);
    }
    out
}

/// An error at the end of the input (an unclosed bracket) is reported by the YAML library on
/// the line after the document, which in a multi-document file is the next `---`; point at the
/// end of the document's last line with content instead.
fn clamp_to_document(text: &str, line: usize, column: usize) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    if line <= lines.len() {
        return (line, column);
    }
    match lines.iter().rposition(|l| !l.trim().is_empty()) {
        Some(i) => (i + 1, lines[i].trim_end().chars().count() + 1),
        None => (line, column),
    }
}

/// Drops ` at line L column C` (the error's own position, shown as `file:line:col` instead) and
/// shifts any other `line N` mention by the document's offset in the file.
fn rewrite_marks(message: &str, line: usize, column: usize, offset: u32) -> String {
    const AT: &str = " at line ";
    let mut out = String::new();
    let mut rest = message;
    while let Some(i) = rest.find(AT) {
        out.push_str(&rest[..i]);
        let after = &rest[i + AT.len()..];
        let digits = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        let Ok(l) = after[..digits].parse::<usize>() else {
            out.push_str(AT);
            rest = after;
            continue;
        };
        let tail = &after[digits..];
        let (c, tail) = match tail.strip_prefix(" column ") {
            Some(t) => {
                let d = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
                (t[..d].parse::<usize>().ok(), &t[d..])
            }
            None => (None, tail),
        };
        if !(l == line && c == Some(column)) {
            out.push_str(&format!(" at line {}", l + offset as usize));
            if let Some(c) = c {
                out.push_str(&format!(" column {c}"));
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::rewrite_marks;

    #[test]
    fn drops_the_own_mark_and_shifts_others() {
        let m = "did not find expected key at line 3 column 1, while parsing a block mapping at line 1 column 1";
        assert_eq!(
            rewrite_marks(m, 3, 1, 10),
            "did not find expected key, while parsing a block mapping at line 11 column 1"
        );
        assert_eq!(
            rewrite_marks("spec: missing field `policy`", 1, 1, 0),
            "spec: missing field `policy`"
        );
    }
}
