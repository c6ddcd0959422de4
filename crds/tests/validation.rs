//! Admission rules in the generated CRDs: plain OpenAPI keywords wherever they suffice (any
//! API server enforces them; `tests/apiserver.rs` proves it against a real one), CEL
//! `x-kubernetes-validations` only for cross-field rules (1.25+; not executable here, so this
//! file checks that they are present, well formed and name only fields that exist).

use serde_json::{Value, json};

fn spec_schema(kind: &str) -> Value {
    let crd = switchyard_crds::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("known kind");
    let v = serde_json::to_value(&crd).expect("serializes");
    v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// The schema node at a `.`-separated path of property names (`[]` steps into `items`).
fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    let mut node = schema;
    for step in path.split('.') {
        node = if step == "[]" {
            &node["items"]
        } else {
            &node["properties"][step]
        };
        assert!(node.is_object(), "no schema at `{path}` (step `{step}`)");
    }
    node
}

fn rules(node: &Value) -> Vec<(String, String)> {
    node["x-kubernetes-validations"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    (
                        r["rule"].as_str().expect("rule").to_string(),
                        r["message"].as_str().expect("message").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn provider_keywords() {
    let spec = spec_schema("LLMProvider");
    let duration = json!(r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$");
    for path in [
        "timeouts.connect",
        "timeouts.firstToken",
        "timeouts.total",
        "mock.latency",
        "mock.ttft",
        "mock.retryAfter",
    ] {
        assert_eq!(at(&spec, path)["pattern"], duration, "{path}");
    }
    for path in [
        "models.[].pricing.inputPerMillion",
        "models.[].pricing.outputPerMillion",
        "models.[].contextWindow",
        "models.[].maxOutputTokens",
        "rateLimits.requestsPerMinute",
        "rateLimits.tokensPerMinute",
        "mock.tokensPerSecond",
    ] {
        assert_eq!(at(&spec, path)["minimum"], json!(0.0), "{path}");
    }
    for path in ["mock.errorRate", "mock.rateLimitRate"] {
        assert_eq!(at(&spec, path)["minimum"], json!(0.0), "{path}");
        assert_eq!(at(&spec, path)["maximum"], json!(1.0), "{path}");
    }
    let models = at(&spec, "models");
    assert_eq!(models["minItems"], json!(1));
    assert_eq!(models["x-kubernetes-list-type"], json!("map"));
    assert_eq!(models["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(at(&spec, "models.[].name")["minLength"], json!(1));
    let credentials = at(&spec, "credentials");
    assert_eq!(credentials["minProperties"], json!(1));
    assert_eq!(credentials["maxProperties"], json!(1));
    assert_eq!(
        at(&spec, "credentials.env")["pattern"],
        json!("^[A-Za-z_][A-Za-z0-9_]*$")
    );
    for path in ["credentials.secretRef.name", "credentials.secretRef.key"] {
        assert_eq!(at(&spec, path)["minLength"], json!(1), "{path}");
    }
    assert_eq!(at(&spec, "baseUrl")["pattern"], json!(r"^https?://\S+$"));
}

#[test]
fn provider_cel_rules() {
    let spec = spec_schema("LLMProvider");
    let rules = rules(&spec);
    let texts: Vec<&str> = rules.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        texts,
        [
            "self.type != 'openai-compatible' || has(self.baseUrl)",
            "self.type != 'azure-openai' || has(self.baseUrl)",
            "self.type != 'mock' || has(self.mock)",
            "self.type == 'mock' || !has(self.mock)",
        ]
    );
    for (rule, message) in &rules {
        assert!(message.contains('`'), "{rule}: message names the field");
    }
    // Every rule's `fieldPath` names a property of the spec.
    for r in spec["x-kubernetes-validations"].as_array().expect("rules") {
        let field = r["fieldPath"].as_str().expect("fieldPath");
        at(&spec, field.trim_start_matches('.'));
    }
    let credentials = self::rules(at(&spec, "credentials"));
    assert_eq!(
        credentials,
        [(
            "has(self.secretRef) != has(self.env)".to_string(),
            "`credentials` sets exactly one of `secretRef` and `env`".to_string()
        )]
    );
}

#[test]
fn policy_keywords() {
    for kind in ["RoutePolicy", "Budget"] {
        let spec = spec_schema(kind);
        assert_eq!(at(&spec, "policy")["minLength"], json!(1), "{kind}");
        assert!(rules(&spec).is_empty(), "{kind}: no CEL needed");
    }
    let route = spec_schema("RoutePolicy");
    let priority = at(&route, "priority");
    assert_eq!(priority["minimum"], json!(-1000.0));
    assert_eq!(priority["maximum"], json!(1000.0));
}

/// Every `self.<field>` a CEL rule reads is a property of the schema node it sits on, so a
/// renamed field cannot leave a rule behind that the API server would refuse to compile.
#[test]
fn cel_rules_name_existing_fields() {
    for crd in switchyard_crds::crds() {
        let v = serde_json::to_value(&crd).expect("serializes");
        let mut found = 0;
        check_rules(
            &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
            "openAPIV3Schema",
            &mut found,
        );
        if crd.spec.names.kind == "LLMProvider" {
            assert_eq!(found, 5);
        }
    }
}

fn check_rules(node: &Value, at: &str, found: &mut usize) {
    let props = node["properties"].as_object();
    for (rule, _) in rules(node) {
        *found += 1;
        for (i, _) in rule.match_indices("self.") {
            let field: String = rule[i + 5..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                props.is_some_and(|p| p.contains_key(&field)),
                "{at}: rule `{rule}` reads `{field}`, not a property here"
            );
        }
    }
    if let Some(props) = props {
        for (k, child) in props {
            check_rules(child, &format!("{at}.{k}"), found);
        }
    }
    if node["items"].is_object() {
        check_rules(&node["items"], &format!("{at}[]"), found);
    }
}
