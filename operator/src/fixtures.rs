//! Test helpers: objects, a [`Context`] over a mocked API server, and an
//! [`ApiServerVerifier`] that plays one [`Scenario`] per test (as in kube-rs/controller-rs).

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use serde_json::{Value, json};
use switchyard_crds::{Budget, LLMProvider, RoutePolicy};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

use crate::context::{Context, Stores};
use crate::metrics::Metrics;
use crate::publish::{Pods, Publisher};

pub const NS: &str = "testns";

fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("valid test object")
}

/// A mock provider with two models, optionally with a Secret reference.
pub fn provider(name: &str, secret: Option<(&str, &str)>) -> LLMProvider {
    let mut spec = json!({
        "type": "mock",
        "models": [
            {"name": "large", "pricing": {"inputPerMillion": 2.5, "outputPerMillion": 10}},
            {"name": "small", "pricing": {"inputPerMillion": 0.1, "outputPerMillion": 0.4}}
        ],
        "mock": {"latency": "10ms"}
    });
    if let Some((secret, key)) = secret {
        spec["credentials"] = json!({"secretRef": {"name": secret, "key": key}});
    }
    object(json!({
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "LLMProvider",
        "metadata": {"name": name, "namespace": NS, "generation": 1, "uid": format!("uid-{name}")},
        "spec": spec,
    }))
}

pub fn route_policy(name: &str, policy: &str) -> RoutePolicy {
    object(json!({
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "RoutePolicy",
        "metadata": {"name": name, "namespace": NS, "generation": 3, "uid": format!("uid-{name}")},
        "spec": {"policy": policy},
    }))
}

pub fn secret(name: &str, key: &str, value: &str) -> Secret {
    object(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "stringData": {key: value},
    }))
}

fn filled<K>(objects: Vec<K>) -> (reflector::Store<K>, Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store::<K>();
    writer.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(o));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (store, writer)
}

/// The watch caches' contents of a test.
#[derive(Debug, Default)]
pub struct World {
    pub providers: Vec<LLMProvider>,
    pub route_policies: Vec<RoutePolicy>,
    pub budgets: Vec<Budget>,
    pub secrets: Vec<Secret>,
}

/// Keeps the cache writers alive for the test's duration.
#[expect(dead_code, reason = "held only to keep the stores' writers alive")]
#[expect(missing_debug_implementations, reason = "test helper")]
pub struct Writers(
    Writer<LLMProvider>,
    Writer<RoutePolicy>,
    Writer<Budget>,
    Writer<Secret>,
);

impl Context {
    /// A context over a mocked API server whose caches hold `world`.
    pub fn test(world: World) -> (Arc<Self>, ApiServerVerifier, Writers) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (p, pw) = filled(world.providers);
        let (r, rw) = filled(world.route_policies);
        let (b, bw) = filled(world.budgets);
        let (s, sw) = filled(world.secrets);
        let stores = Stores {
            providers: p,
            route_policies: r,
            budgets: b,
            secrets: s,
        };
        let ctx = Context::new(
            client,
            stores,
            Arc::new(Metrics::new()),
            Arc::new(Publisher::default()),
            Arc::new(Pods::default()),
            Some("test".into()),
        );
        ctx.caches_ready.send_replace(true);
        (
            Arc::new(ctx),
            ApiServerVerifier(handle),
            Writers(pw, rw, bw, sw),
        )
    }
}

/// One expected API call.
#[derive(Debug)]
pub enum Call {
    /// A server-side-apply status patch of `routepolicies` / `llmproviders` / ...; the check gets
    /// the sent `status`.
    PatchStatus {
        plural: &'static str,
        name: &'static str,
        /// The object as stored; the reply is it with the sent status.
        object: Value,
        check: fn(&Value),
    },
    /// An events.k8s.io Event; the check gets the Event.
    Event { check: fn(&Value) },
}

/// The calls a test expects, in order. Playing fails when a call differs or never comes.
#[derive(Debug)]
pub struct Scenario(pub Vec<Call>);

#[expect(missing_debug_implementations, reason = "test helper")]
pub struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

/// How long the verifier waits for each expected call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl ApiServerVerifier {
    /// Serves the scenario's calls, then checks that no further call comes within 200 ms.
    pub fn run(self, scenario: Scenario) -> JoinHandle<Vec<Value>> {
        let mut handle = self.0;
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for call in scenario.0 {
                let (request, send) = tokio::time::timeout(CALL_TIMEOUT, handle.next_request())
                    .await
                    .unwrap_or_else(|_| panic!("expected call never came: {call:?}"))
                    .expect("service not called");
                let method = request.method().clone();
                let uri = request.uri().to_string();
                let body = request.into_body().collect_bytes().await.expect("body");
                let json: Value = serde_json::from_slice(&body).expect("json body");
                let mut reply = json.clone();
                match call {
                    Call::PatchStatus {
                        plural,
                        name,
                        object,
                        check,
                    } => {
                        reply = object;
                        reply["status"] = json["status"].clone();
                        assert_eq!(method, http::Method::PATCH, "{uri}");
                        assert_eq!(
                            uri,
                            format!(
                                "/apis/switchyard.dev/v1alpha1/namespaces/{NS}/{plural}/{name}/status?&force=true&fieldManager=switchyard-operator-status"
                            )
                        );
                        check(&json["status"]);
                    }
                    Call::Event { check } => {
                        assert_eq!(method, http::Method::POST, "{uri}");
                        assert!(
                            uri.starts_with(&format!(
                                "/apis/events.k8s.io/v1/namespaces/{NS}/events"
                            )),
                            "{uri}"
                        );
                        check(&json);
                    }
                }
                let reply = serde_json::to_vec(&reply).expect("json");
                send.send_response(
                    Response::builder()
                        .body(Body::from(reply))
                        .expect("response"),
                );
                seen.push(json);
            }
            if let Ok(Some((request, _))) =
                tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
            {
                panic!("unexpected call: {} {}", request.method(), request.uri());
            }
            seen
        })
    }
}
