//! The committed CRD YAML against a real Kubernetes API server.
//!
//! Proves that `crds/*.yaml` is accepted (structural schemas), that every LLMProvider,
//! RoutePolicy and Budget in each example folder is stored exactly as written (the server
//! prunes nothing), that status is written through the status
//! subresource (and only there), that the printer columns are stored and evaluate, and that
//! objects breaking a schema keyword (negative price, malformed duration, empty policy, ...)
//! are refused at admission while valid ones are admitted.
//!
//! Needs `SWITCHYARD_KUBE_APISERVER=/path/to/kube-apiserver` and `etcd` on `PATH` (or
//! `SWITCHYARD_ETCD`); `tests/k8s/build-apiserver.sh` builds the former from Debian's source
//! package and installs the latter. Ignored by default, run with
//! `cargo test -p switchyard-crds --test apiserver -- --include-ignored`; see tests/k8s/README.md.
//! The test starts etcd and kube-apiserver itself, on free 127.0.0.1 ports, in a temporary
//! directory, and kills both when it ends (a watchdog kills them if the test process dies).

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use switchyard_tests::apiserver::ApiServer;

use switchyard_crds::status::{condition_status, condition_type};
use switchyard_crds::{
    Budget, BudgetState, BudgetStatus, BudgetUsage, Condition, DiagnosticSeverity, LLMProvider,
    LLMProviderStatus, Loaded, ObjectStatus, PolicyDiagnostic, RoutePolicy, RoutePolicyStatus,
};

const FIELD_MANAGER: &str = "switchyard-crd-test";

/// The printer columns each kind must show (crds/README.md), after the implicit NAME.
const COLUMNS: [(&str, &[&str]); 3] = [
    ("llmproviders", &["Type", "Ready", "Age"]),
    (
        "routepolicies",
        &["Ready", "Version", "Applied", "Mode", "Shadow", "Age"],
    ),
    ("budgets", &["Ready", "State", "Age"]),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crds/ is inside the workspace")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// JSON comparison
// ---------------------------------------------------------------------------------------------

/// Records where `actual` differs from `expected`. Numbers compare by value (`0.0` is stored
/// as `0`). With `exact`, fields present only in `actual` are differences too (something the
/// server added, e.g. a default); otherwise they are allowed.
fn diff(path: &str, expected: &Value, actual: &Value, exact: bool, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    Some(av) => diff(&p, ev, av, exact, out),
                    None => out.push(format!("{p}: missing on the server (pruned), sent {ev}")),
                }
            }
            if exact {
                for (k, av) in a {
                    if !e.contains_key(k) {
                        out.push(format!("{path}.{k}: added by the server: {av}"));
                    }
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(&format!("{path}[{i}]"), ev, av, exact, out);
            }
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => {}
        (e, a) if e == a => {}
        (e, a) => out.push(format!("{path}: sent {e}, stored {a}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kube-apiserver: see tests/k8s/README.md"]
async fn committed_crds_and_examples_on_a_real_apiserver() {
    let Some(apiserver) = std::env::var_os("SWITCHYARD_KUBE_APISERVER") else {
        panic!(
            "SWITCHYARD_KUBE_APISERVER is not set: build the server with \
             `tests/k8s/build-apiserver.sh` and run \
             `SWITCHYARD_KUBE_APISERVER=$(tests/k8s/build-apiserver.sh) cargo test -p \
             switchyard-crds --test apiserver -- --include-ignored` (see tests/k8s/README.md)"
        );
    };
    let server = ApiServer::start(Path::new(&apiserver)).await;
    let client = server.client.clone().expect("ready");
    let version = client.apiserver_version().await.expect("/version");
    eprintln!("kube-apiserver {} ready; {server:?}", version.git_version);

    // CEL rules (`x-kubernetes-validations`) exist from 1.25 (beta; alpha 1.23); an older server
    // does not know the field and drops it, so the stored CRD lacks it there; server-side apply
    // even refuses the unknown field, so for such a server it is removed before applying (as a
    // client-side `kubectl apply` or `helm install` would have it dropped).
    let minor: u32 = version
        .minor
        .trim_end_matches('+')
        .parse()
        .expect("numeric minor version");
    let cel = version.major == "1" && minor >= 25;
    let mut problems = Vec::new();
    apply_crds(&client, cel, &mut problems).await;
    assert!(
        problems.is_empty(),
        "CRDs rejected:\n{}",
        problems.join("\n")
    );
    check_stored_crds(&client, cel, &mut problems).await;
    check_admission(&client, &mut problems).await;

    for (example, namespace) in [
        ("examples/quickstart", "quickstart"),
        ("examples/multi-provider", "multi-provider"),
        ("examples/openai-compatible", "openai-compatible"),
        ("examples/gitops", "gitops"),
    ] {
        let config = switchyard_crds::load_paths(&[workspace().join(example)])
            .unwrap_or_else(|e| panic!("{example} does not load:\n{e}"));
        assert!(
            !config.providers.is_empty() && !config.route_policies.is_empty(),
            "{example}: expected providers and route policies"
        );
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {namespace}: {e}"));

        let mut count = 0;
        count += check_kind(
            &client,
            namespace,
            &config.providers,
            |p: &LLMProvider| p.spec.clone(),
            |_, generation| LLMProviderStatus {
                object: object_status(condition_type::ACCEPTED, generation),
            },
            |p| {
                vec![
                    ("Type", json!(p.spec.type_)),
                    ("Ready", json!(condition_status::TRUE)),
                ]
            },
            &mut problems,
        )
        .await;
        count += check_kind(
            &client,
            namespace,
            &config.route_policies,
            |r: &RoutePolicy| r.spec.clone(),
            |_, generation| RoutePolicyStatus {
                object: object_status(condition_type::COMPILED, generation),
                diagnostics: vec![diagnostic()],
                shadow: None,
            },
            |_| {
                vec![
                    ("Ready", json!(condition_status::TRUE)),
                    ("Version", json!(7)),
                    ("Applied", json!("2/3")),
                ]
            },
            &mut problems,
        )
        .await;
        count += check_kind(
            &client,
            namespace,
            &config.budgets,
            |b: &Budget| b.spec.clone(),
            |_, generation| BudgetStatus {
                object: object_status(condition_type::COMPILED, generation),
                diagnostics: vec![diagnostic()],
                state: Some(BudgetState::Warning),
                budgets: vec![BudgetUsage {
                    name: "per-key".to_string(),
                    spent: "$4.10".to_string(),
                    remaining: "$0.90".to_string(),
                    reset_at: Some("2026-01-01T00:00:00Z".to_string()),
                    state: BudgetState::Warning,
                }],
            },
            |_| {
                vec![
                    ("Ready", json!(condition_status::TRUE)),
                    ("State", json!("warning")),
                ]
            },
            &mut problems,
        )
        .await;
        eprintln!(
            "{example}: {count} objects created, read back and status-patched in {namespace}"
        );
    }

    drop(server);
    assert!(
        problems.is_empty(),
        "{} problem(s) against a real kube-apiserver:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// The shared status fields, with `type_` and `Applied` conditions.
fn object_status(type_: &str, generation: i64) -> ObjectStatus {
    ObjectStatus {
        conditions: conditions_for(&[type_], generation),
        observed_generation: Some(generation),
        snapshot_version: Some(7),
        snapshot_hash: Some(HASH.to_string()),
        applied_pods: Some("2/3".to_string()),
    }
}

fn conditions_for(types: &[&str], generation: i64) -> Vec<Condition> {
    types
        .iter()
        .chain([&condition_type::APPLIED])
        .map(|t| Condition {
            type_: (*t).to_string(),
            status: condition_status::TRUE.to_string(),
            reason: "Test".to_string(),
            message: format!("{t} by the apiserver test"),
            last_transition_time: "2026-01-01T00:00:00Z".to_string(),
            observed_generation: Some(generation),
        })
        .collect()
}

fn diagnostic() -> PolicyDiagnostic {
    PolicyDiagnostic {
        severity: DiagnosticSeverity::Warning,
        line: 3,
        column: 7,
        message: "a test warning".to_string(),
        help: Some("none needed".to_string()),
    }
}

/// Server-side applies the three committed files and waits until each is Established.
async fn apply_crds(client: &Client, cel: bool, problems: &mut Vec<String>) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (file, _) in switchyard_crds::crd_files() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(&file);
        let text = std::fs::read_to_string(&path).expect("committed CRD file");
        let mut doc: Value = yaml_serde::from_str(&text).expect("CRD YAML");
        if !cel {
            remove_key(&mut doc, "x-kubernetes-validations");
        }
        let name = doc["metadata"]["name"]
            .as_str()
            .expect("metadata.name")
            .to_string();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match crds.patch(&name, &params, &Patch::Apply(&doc)).await {
            Ok(_) => {}
            Err(e) => {
                problems.push(format!("crds/{file}: rejected: {e}"));
                continue;
            }
        }
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(Duration::from_secs(60), established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => problems.push(format!("crds/{file}: waiting for Established: {e}")),
            Err(_) => {
                let status = crds.get(&name).await.map(|c| c.status);
                problems.push(format!(
                    "crds/{file}: not Established after 60 s; status: {status:?}"
                ));
            }
        }
    }
}

/// The stored CRDs keep every field of the committed files (an older server drops schema
/// keywords it does not know), have a status subresource, and their printer columns.
async fn check_stored_crds(client: &Client, cel: bool, problems: &mut Vec<String>) {
    let raw: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<CustomResourceDefinition>(&()),
    );
    let typed: Api<CustomResourceDefinition> = Api::all(client.clone());
    let generated = switchyard_crds::crds();
    for (file, _) in switchyard_crds::crd_files() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(&file);
        let mut committed: Value =
            yaml_serde::from_str(&std::fs::read_to_string(&path).expect("read")).expect("yaml");
        if !cel {
            let removed = remove_key(&mut committed, "x-kubernetes-validations");
            eprintln!(
                "crds/{file}: {removed} CEL rule list(s) not checked: this server predates CEL"
            );
        }
        let name = committed["metadata"]["name"].as_str().expect("name");
        let stored = raw.get(name).await.expect("get stored CRD");
        let mut out = Vec::new();
        diff(
            "spec",
            &committed["spec"],
            &stored.data["spec"],
            false,
            &mut out,
        );
        problems.extend(out.into_iter().map(|d| format!("crds/{file}: {d}")));

        let crd = typed.get(name).await.expect("get stored CRD");
        let want = generated
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .expect("generated CRD of the same name");
        let (plural, columns) = COLUMNS
            .iter()
            .find(|(plural, _)| *plural == crd.spec.names.plural)
            .expect("a known plural");
        for (version, want_version) in crd.spec.versions.iter().zip(&want.spec.versions) {
            let stored_cols = version
                .additional_printer_columns
                .clone()
                .unwrap_or_default();
            let names: Vec<&str> = stored_cols.iter().map(|c| c.name.as_str()).collect();
            if names != *columns {
                problems.push(format!(
                    "{plural} {}: printer columns {names:?}, expected {columns:?}",
                    version.name
                ));
            }
            if Some(&stored_cols) != want_version.additional_printer_columns.as_ref() {
                problems.push(format!(
                    "{plural} {}: stored printer columns differ from the generated ones:\n  \
                     stored {stored_cols:?}\n  generated {:?}",
                    version.name, want_version.additional_printer_columns
                ));
            }
            let has_status = version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some());
            if !has_status {
                problems.push(format!("{plural} {}: no status subresource", version.name));
            }
        }
    }
}

/// Removes every `key` from a JSON tree; returns how many were removed.
fn remove_key(value: &mut Value, key: &str) -> usize {
    match value {
        Value::Object(map) => {
            let here = usize::from(map.remove(key).is_some());
            here + map.values_mut().map(|v| remove_key(v, key)).sum::<usize>()
        }
        Value::Array(items) => items.iter_mut().map(|v| remove_key(v, key)).sum(),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Admission: the schema keywords refuse obviously wrong objects
// ---------------------------------------------------------------------------------------------

/// A valid LLMProvider spec; each case below breaks one thing.
fn provider_spec() -> Value {
    json!({
        "type": "openai",
        "credentials": {"env": "OPENAI_API_KEY"},
        "models": [{"name": "gpt-4o", "pricing": {"inputPerMillion": 2.5, "outputPerMillion": 10}}],
        "timeouts": {"connect": "5s", "firstToken": "1.5s", "total": "10m"},
    })
}

fn mock_spec() -> Value {
    json!({
        "type": "mock",
        "models": [{"name": "m", "pricing": {"inputPerMillion": 0, "outputPerMillion": 0}}],
        "mock": {"latency": "400ms", "errorRate": 0.02, "rateLimitRate": 1, "retryAfter": "1s"},
    })
}

/// Sets `value` at a `/`-separated path of object keys and array indexes.
fn with(mut spec: Value, path: &str, value: Value) -> Value {
    let mut node = &mut spec;
    let keys: Vec<&str> = path.split('/').collect();
    for key in &keys[..keys.len() - 1] {
        node = match key.parse::<usize>() {
            Ok(i) => &mut node[i],
            Err(_) => &mut node[*key],
        };
    }
    node[keys[keys.len() - 1]] = value;
    spec
}

/// Valid objects are admitted, and objects that break a schema keyword (`minimum`, `maximum`,
/// `pattern`, `minLength`, `minItems`, `minProperties`/`maxProperties`, a list-map key) are
/// refused with 422 Invalid naming the field. CEL rules are not exercised: a 1.20 server
/// ignores them.
async fn check_admission(client: &Client, problems: &mut Vec<String>) {
    let namespace = "admission";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {namespace}: {e}"));

    let provider = ApiResource::erase::<LLMProvider>(&());
    let route = ApiResource::erase::<RoutePolicy>(&());
    let budget = ApiResource::erase::<Budget>(&());
    let policy = json!({"policy": "route r { use m/m }", "priority": 10});

    let accepted: Vec<(&str, &ApiResource, Value)> = vec![
        ("provider", &provider, provider_spec()),
        ("mock", &provider, mock_spec()),
        (
            "secret-ref",
            &provider,
            with(
                provider_spec(),
                "credentials",
                json!({"secretRef": {"name": "keys", "key": "openai"}}),
            ),
        ),
        ("route", &route, policy.clone()),
        (
            "route-edges",
            &route,
            json!({"policy": "x", "priority": -1000}),
        ),
        (
            "budget",
            &budget,
            json!({"policy": "budget b { limit $1 per day }"}),
        ),
    ];
    for (name, resource, spec) in accepted {
        if let Err(e) = create(client, namespace, resource, name, spec.clone()).await {
            problems.push(format!(
                "admission: valid {} `{name}` refused: {e}\n  spec: {spec}",
                resource.kind
            ));
        }
    }

    // (name, resource, spec, a field path the refusal must name)
    let refused: Vec<(&str, &ApiResource, Value, &str)> = vec![
        (
            "negative-price",
            &provider,
            with(
                provider_spec(),
                "models/0/pricing/inputPerMillion",
                json!(-1),
            ),
            "spec.models.pricing.inputPerMillion",
        ),
        (
            "negative-count",
            &provider,
            with(
                provider_spec(),
                "rateLimits",
                json!({"requestsPerMinute": -5}),
            ),
            "spec.rateLimits.requestsPerMinute",
        ),
        (
            "bad-duration",
            &provider,
            with(provider_spec(), "timeouts/connect", json!("5 seconds")),
            "spec.timeouts.connect",
        ),
        (
            "bad-unit",
            &provider,
            with(provider_spec(), "timeouts/total", json!("10min")),
            "spec.timeouts.total",
        ),
        (
            "bad-mock-duration",
            &provider,
            with(mock_spec(), "mock/ttft", json!("-1s")),
            "spec.mock.ttft",
        ),
        (
            "error-rate-above-one",
            &provider,
            with(mock_spec(), "mock/errorRate", json!(1.5)),
            "spec.mock.errorRate",
        ),
        (
            "negative-rate",
            &provider,
            with(mock_spec(), "mock/rateLimitRate", json!(-0.1)),
            "spec.mock.rateLimitRate",
        ),
        (
            "no-models",
            &provider,
            with(provider_spec(), "models", json!([])),
            "spec.models",
        ),
        (
            "empty-model-name",
            &provider,
            with(provider_spec(), "models/0/name", json!("")),
            "spec.models.name",
        ),
        (
            "duplicate-model",
            &provider,
            with(
                provider_spec(),
                "models",
                json!([
                    {"name": "gpt-4o", "pricing": {"inputPerMillion": 1, "outputPerMillion": 1}},
                    {"name": "gpt-4o", "pricing": {"inputPerMillion": 2, "outputPerMillion": 2}},
                ]),
            ),
            "spec.models",
        ),
        (
            "both-credentials",
            &provider,
            with(
                provider_spec(),
                "credentials",
                json!({"env": "KEY", "secretRef": {"name": "keys", "key": "openai"}}),
            ),
            "spec.credentials",
        ),
        (
            "empty-credentials",
            &provider,
            with(provider_spec(), "credentials", json!({})),
            "spec.credentials",
        ),
        (
            "bad-env-name",
            &provider,
            with(provider_spec(), "credentials", json!({"env": "OPENAI-KEY"})),
            "spec.credentials.env",
        ),
        (
            "empty-secret-key",
            &provider,
            with(
                provider_spec(),
                "credentials",
                json!({"secretRef": {"name": "keys", "key": ""}}),
            ),
            "spec.credentials.secretRef.key",
        ),
        (
            "bad-base-url",
            &provider,
            with(provider_spec(), "baseUrl", json!("api.example.com/v1")),
            "spec.baseUrl",
        ),
        (
            "empty-route-policy",
            &route,
            json!({"policy": ""}),
            "spec.policy",
        ),
        (
            "priority-too-high",
            &route,
            json!({"policy": "x", "priority": 1001}),
            "spec.priority",
        ),
        (
            "empty-budget-policy",
            &budget,
            json!({"policy": ""}),
            "spec.policy",
        ),
    ];
    let mut count = 0;
    for (name, resource, spec, field) in refused {
        match create(client, namespace, resource, name, spec.clone()).await {
            Ok(()) => problems.push(format!(
                "admission: {} `{name}` was admitted, expected a refusal at `{field}`\n  \
                 spec: {spec}",
                resource.kind
            )),
            Err(kube::Error::Api(status)) if status.code == 422 => {
                // Older servers leave out list indexes (`spec.models.name`).
                if !without_indexes(&status.message).contains(field) {
                    problems.push(format!(
                        "admission: {} `{name}` refused without naming `{field}`: {}",
                        resource.kind, status.message
                    ));
                }
                eprintln!(
                    "admission: {} `{name}` refused: {}",
                    resource.kind, status.message
                );
                count += 1;
            }
            Err(e) => problems.push(format!(
                "admission: {} `{name}`: expected 422 Invalid, got {e}",
                resource.kind
            )),
        }
    }
    eprintln!("admission: {count} invalid objects refused by the server");
}

/// `spec.models[0].name` → `spec.models.name`.
fn without_indexes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) if close > 0 && after[..close].bytes().all(|b| b.is_ascii_digit()) => {
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

async fn create(
    client: &Client,
    namespace: &str,
    resource: &ApiResource,
    name: &str,
    spec: Value,
) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .expect("object");
    api.create(&PostParams::default(), &object).await.map(drop)
}

/// Creates every object as written in its file, reads it back raw and typed, patches status
/// through the status subresource, and reads the printer columns the server computes.
/// Returns how many objects were checked.
#[allow(clippy::too_many_arguments)]
async fn check_kind<K, S, St>(
    client: &Client,
    namespace: &str,
    objects: &[Loaded<K>],
    spec: impl Fn(&K) -> S,
    status: impl Fn(&K, i64) -> St,
    cells: impl Fn(&K) -> Vec<(&'static str, Value)>,
    problems: &mut Vec<String>,
) -> usize
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
    S: PartialEq + Debug,
    St: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let resource = ApiResource::erase::<K>(&());
    let raw: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let typed: Api<K> = Api::namespaced(client.clone(), namespace);

    for (index, loaded) in objects.iter().enumerate() {
        let object = &loaded.object;
        let name = object
            .meta()
            .name
            .clone()
            .expect("loaded objects have names");
        let at = format!(
            "{}:{} {}/{name}",
            loaded.origin.file,
            loaded.origin.line,
            K::kind(&())
        );
        // The document exactly as a user would `kubectl apply` it.
        let mut doc: Value = yaml_serde::from_str(&loaded.origin.text).expect("document YAML");
        doc["metadata"]["namespace"] = json!(namespace);
        let sent: DynamicObject = serde_json::from_value(doc.clone()).expect("a k8s object");

        // A CRD's endpoint may lag Established for a moment: retry 404s briefly.
        let deadline = Instant::now() + Duration::from_secs(20);
        let created = loop {
            match raw.create(&PostParams::default(), &sent).await {
                Err(kube::Error::Api(e)) if e.code == 404 && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => break other,
            }
        };
        if let Err(e) = created {
            problems.push(format!("{at}: create rejected: {e}"));
            continue;
        }
        if index == 0 {
            prune_canary(&raw, &typed, &doc, &at, problems).await;
        }

        // Raw: the stored spec is exactly the document's spec.
        let stored = raw.get(&name).await.expect("get raw");
        let mut out = Vec::new();
        diff("spec", &doc["spec"], &stored.data["spec"], true, &mut out);
        problems.extend(out.iter().map(|d| format!("{at}: {d}")));
        // Typed: what the operator reads back equals what the loader read.
        let back = typed.get(&name).await.expect("get typed");
        if spec(&back) != spec(object) {
            problems.push(format!(
                "{at}: typed spec changed:\n  loaded {:?}\n  stored {:?}",
                spec(object),
                spec(&back)
            ));
        }
        let generation = back.meta().generation.unwrap_or_default();

        // Status through the status subresource: stored in full, spec and generation untouched.
        let want_status = status(object, generation);
        let want_value = serde_json::to_value(&want_status).expect("status JSON");
        if let Err(e) = typed
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": want_value })),
            )
            .await
        {
            problems.push(format!("{at}: status patch rejected: {e}"));
            continue;
        }
        let stored = raw.get(&name).await.expect("get raw");
        let mut out = Vec::new();
        diff(
            "status",
            &want_value,
            &stored.data["status"],
            true,
            &mut out,
        );
        diff("spec", &doc["spec"], &stored.data["spec"], true, &mut out);
        problems.extend(out.iter().map(|d| format!("{at} after status patch: {d}")));
        match serde_json::from_value::<St>(stored.data["status"].clone()) {
            Ok(st) if st == want_status => {}
            Ok(st) => problems.push(format!(
                "{at}: typed status changed:\n  sent {want_status:?}\n  stored {st:?}"
            )),
            Err(e) => problems.push(format!("{at}: stored status does not deserialize: {e}")),
        }
        if stored.metadata.generation != Some(generation) {
            problems.push(format!(
                "{at}: a status patch changed metadata.generation {generation} -> {:?}",
                stored.metadata.generation
            ));
        }

        // Status written through the main resource is ignored (the subresource is enabled).
        typed
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": { "observedGeneration": 999 } })),
            )
            .await
            .unwrap_or_else(|e| panic!("{at}: merge patch of the main resource: {e}"));
        let stored = raw.get(&name).await.expect("get raw");
        if stored.data["status"]["observedGeneration"] != json!(generation) {
            problems.push(format!(
                "{at}: status written through the main resource was stored: {}",
                stored.data["status"]
            ));
        }

        check_table(
            client,
            namespace,
            &resource,
            &name,
            &cells(object),
            &at,
            problems,
        )
        .await;
    }
    objects.len()
}

/// Shows that the comparisons above can fail: the server does prune fields outside the schema
/// (in spec and in status), and `diff` reports exactly those.
async fn prune_canary<K>(
    raw: &Api<DynamicObject>,
    typed: &Api<K>,
    doc: &Value,
    at: &str,
    problems: &mut Vec<String>,
) where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    const CANARY: &str = "switchyardPruneCanary";
    let mut doc = doc.clone();
    let name = format!(
        "{}-prune-canary",
        doc["metadata"]["name"].as_str().expect("name")
    );
    doc["metadata"]["name"] = json!(name);
    doc["spec"][CANARY] = json!({ "unknown": true });
    let sent: DynamicObject = serde_json::from_value(doc.clone()).expect("a k8s object");
    if let Err(e) = raw.create(&PostParams::default(), &sent).await {
        problems.push(format!("{at}: canary with an unknown field rejected: {e}"));
        return;
    }
    let stored = raw.get(&name).await.expect("get canary");
    let mut out = Vec::new();
    diff("spec", &doc["spec"], &stored.data["spec"], true, &mut out);
    let want = format!("spec.{CANARY}: missing on the server (pruned)");
    if out.len() != 1 || !out[0].starts_with(&want) {
        problems.push(format!(
            "{at}: an unknown spec field was not pruned as expected (so the spec checks prove \
             nothing): {out:?}"
        ));
    }
    let patched = typed
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { (CANARY): 1, "observedGeneration": 1 } })),
        )
        .await;
    let stored = raw.get(&name).await.expect("get canary");
    if patched.is_err()
        || stored.data["status"].get(CANARY).is_some()
        || stored.data["status"]["observedGeneration"] != json!(1)
    {
        problems.push(format!(
            "{at}: an unknown status field was not pruned as expected: {patched:?} {}",
            stored.data["status"]
        ));
    }
    raw.delete(&name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{at}: delete canary: {e}"));
}

/// `kubectl get` output as the server computes it (a `meta.k8s.io/v1` Table): the printer
/// columns evaluate to the expected cells.
async fn check_table(
    client: &Client,
    namespace: &str,
    resource: &ApiResource,
    name: &str,
    cells: &[(&'static str, Value)],
    at: &str,
    problems: &mut Vec<String>,
) {
    let uri = format!(
        "/apis/{}/namespaces/{namespace}/{}/{name}",
        resource.api_version, resource.plural
    );
    let req = http::Request::get(uri)
        .header(
            http::header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        )
        .body(Vec::new())
        .expect("request");
    let table: Value = match client.request(req).await {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{at}: Table request failed: {e}"));
            return;
        }
    };
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let row = &table["rows"][0]["cells"];
    for (column, want) in cells {
        match columns.iter().position(|c| c == column) {
            None => problems.push(format!("{at}: Table has no column {column}: {columns:?}")),
            Some(i) if &row[i] != want => problems.push(format!(
                "{at}: column {column} shows {}, expected {want}",
                row[i]
            )),
            Some(_) => {}
        }
    }
}
