//! The committed CRD YAML is fresh, and the schemas are structural (the API server accepts
//! them and prunes nothing the types carry).

use serde_json::Value;

#[test]
fn committed_crd_yaml_is_up_to_date() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, fresh) in switchyard_crds::crd_files() {
        let path = dir.join(&name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "crds/{name} is stale or missing: run `{}` and commit the result",
            switchyard_crds::REGENERATE
        );
    }
}

#[test]
fn documents_come_in_a_stable_order() {
    let docs = switchyard_crds::crd_documents();
    let names: Vec<String> = docs
        .split("---\n")
        .map(|d| {
            let v: Value = yaml_serde::from_str(d).expect("each document is YAML");
            v["metadata"]["name"].as_str().expect("named").to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "llmproviders.switchyard.dev",
            "routepolicies.switchyard.dev",
            "budgets.switchyard.dev"
        ]
    );
}

#[test]
fn names_printer_columns_and_subresources() {
    for crd in switchyard_crds::crds() {
        let v = serde_json::to_value(&crd).expect("serializes");
        let spec = &v["spec"];
        assert_eq!(spec["group"], "switchyard.dev");
        assert_eq!(spec["scope"], "Namespaced");
        let version = &spec["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert!(
            version["subresources"]["status"].is_object(),
            "{}: status subresource",
            spec["names"]["kind"]
        );
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .expect("printer columns")
            .iter()
            .map(|c| c["name"].as_str().expect("column name"))
            .collect();
        let expected: &[&str] = match spec["names"]["kind"].as_str().expect("kind") {
            "LLMProvider" => &["Type", "Ready", "Age"],
            "RoutePolicy" => &["Ready", "Version", "Applied", "Mode", "Shadow", "Age"],
            "Budget" => &["Ready", "State", "Age"],
            other => panic!("unexpected kind {other}"),
        };
        assert_eq!(columns, expected);
        assert!(
            !spec["names"]["shortNames"]
                .as_array()
                .expect("short names")
                .is_empty()
        );
    }
}

/// Every schema node must have a `type` (structural schema), no unsigned formats, no
/// references or combinators the API server rejects, no `properties` beside
/// `additionalProperties`.
#[test]
fn schemas_are_structural() {
    for crd in switchyard_crds::crds() {
        let v = serde_json::to_value(&crd).expect("serializes");
        let schema = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut problems = Vec::new();
        walk(schema, "openAPIV3Schema".to_string(), &mut problems);
        assert!(
            problems.is_empty(),
            "{}: {problems:#?}",
            v["metadata"]["name"]
        );
    }
}

fn walk(node: &Value, at: String, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        problems.push(format!("{at}: not an object"));
        return;
    };
    let exempt = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !obj.contains_key("type") && !exempt {
        problems.push(format!("{at}: no `type`"));
    }
    if let Some(format) = obj.get("format").and_then(Value::as_str)
        && format.starts_with("uint")
    {
        problems.push(format!("{at}: unsigned format `{format}`"));
    }
    for banned in [
        "$ref",
        "definitions",
        "$defs",
        "oneOf",
        "anyOf",
        "allOf",
        "not",
    ] {
        if obj.contains_key(banned) {
            problems.push(format!("{at}: uses `{banned}`"));
        }
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        problems.push(format!(
            "{at}: both `properties` and `additionalProperties`"
        ));
    }
    if obj.get("type") == Some(&Value::String("array".into())) && !obj.contains_key("items") {
        problems.push(format!("{at}: array without `items`"));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            walk(child, format!("{at}.{k}"), problems);
        }
    }
    if let Some(items) = obj.get("items") {
        walk(items, format!("{at}[]"), problems);
    }
    if let Some(extra) = obj.get("additionalProperties").filter(|a| a.is_object()) {
        walk(extra, format!("{at}{{*}}"), problems);
    }
}
