//! The admin listener: health probes, Prometheus metrics and a JSON view of the active
//! snapshot and target health. Nothing here prints a key.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` while the process serves |
//! | `GET /readyz` | `200 ready` once a configuration is loaded, 503 before (control-plane mode) |
//! | `GET /metrics` | Prometheus text, `text/plain; version=0.0.4` |
//! | `GET /admin/snapshot` | version, hash, routes, budgets, providers and credential states |
//! | `GET /admin/targets` | the router's per-target health |
//! | `GET /admin/budgets` | per budget and scope: spent, remaining, reset time, state |
//!
//! Anything else is a 404 (405 for other methods) with an OpenAI-shaped JSON error.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode, header};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;
use switchyard_dsl::ir::{Selection, Snapshot, TargetId};

use crate::config::{ActiveConfig, ConfigHandle};
use crate::metrics::{self, Metrics};

/// What `/admin/targets` shows: implemented by the router's health registry
/// (`router::health::HealthRegistry`, beside its type).
pub trait TargetHealth: Send + Sync + 'static {
    /// The per-target health view, as JSON.
    fn targets_json(&self) -> serde_json::Value;
}

/// The admin HTTP service listening on `addr`; add it to the pingora `Server` beside the
/// proxy service.
pub fn admin_service<H: TargetHealth>(
    addr: &str,
    config: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    health: Arc<H>,
    quota: Option<Arc<crate::quota::Quota>>,
) -> impl pingora::services::Service + 'static {
    let app = AdminApp {
        config,
        metrics,
        health,
        quota,
    };
    let mut service =
        pingora::services::listening::Service::new("switchyard admin".to_string(), app);
    service.add_tcp(addr);
    // Probes and scrapes are light: one runtime thread, not one per proxy worker.
    service.threads = Some(1);
    service
}

/// The admin endpoints as a pingora [`ServeHttp`] app.
pub struct AdminApp<H> {
    pub config: Arc<ConfigHandle>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<H>,
    /// Budget usage for `/admin/budgets` (none: an empty list).
    pub quota: Option<Arc<crate::quota::Quota>>,
}

impl<H> std::fmt::Debug for AdminApp<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApp")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<H: TargetHealth> ServeHttp for AdminApp<H> {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        if method != Method::GET {
            // A body we do not read must not be taken for the next request.
            session.set_keepalive(None);
        }
        if method == Method::GET && session.req_header().uri.path() == "/admin/budgets" {
            return self.budgets().await;
        }
        self.handle(&method, session.req_header().uri.path())
    }
}

impl<H: TargetHealth> AdminApp<H> {
    /// The response to `method path`; everything but the socket, for tests.
    pub fn handle(&self, method: &Method, path: &str) -> Response<Vec<u8>> {
        let known = matches!(
            path,
            "/healthz"
                | "/readyz"
                | "/metrics"
                | "/admin/snapshot"
                | "/admin/targets"
                | "/admin/budgets"
        );
        if !known {
            return error(
                StatusCode::NOT_FOUND,
                &format!("no admin endpoint `{path}`"),
                "not_found",
            );
        }
        if method != Method::GET {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("`{path}` accepts only GET"),
                "method_not_allowed",
            );
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
            return r;
        }
        match path {
            "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
            // A bad reload keeps the last good configuration; only a proxy in control-plane
            // mode still waiting for its first snapshot has none.
            "/readyz" if !self.config.current().is_loaded() => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "waiting for the first snapshot from the control plane\n".into(),
            ),
            "/readyz" => text(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                "ready\n".into(),
            ),
            "/metrics" => {
                self.metrics
                    .set_snapshot_version(self.config.current().version);
                text(StatusCode::OK, metrics::CONTENT_TYPE, self.metrics.render())
            }
            "/admin/snapshot" => json(StatusCode::OK, &snapshot_view(&self.config.current())),
            "/admin/budgets" => json(StatusCode::OK, &serde_json::json!({ "budgets": [] })),
            _ => json(StatusCode::OK, &self.health.targets_json()),
        }
    }

    /// `GET /admin/budgets`: usage per budget and scope (the store is asked, hence async).
    pub async fn budgets(&self) -> Response<Vec<u8>> {
        match &self.quota {
            Some(q) => json(
                StatusCode::OK,
                &q.status(&self.config.current().snapshot).await,
            ),
            None => json(StatusCode::OK, &serde_json::json!({ "budgets": [] })),
        }
    }
}

#[derive(Serialize)]
struct SnapshotView<'a> {
    version: u64,
    hash: &'a str,
    ir_version: u32,
    routes: Vec<RouteView<'a>>,
    budgets: Vec<&'a str>,
    providers: Vec<ProviderView<'a>>,
}

#[derive(Serialize)]
struct RouteView<'a> {
    name: &'a str,
    origin: &'a str,
    exposed_models: &'a [String],
    /// `provider/model`, selection first, then failover, without repeats.
    targets: Vec<String>,
}

#[derive(Serialize)]
struct ProviderView<'a> {
    name: &'a str,
    kind: &'a str,
    base_url: Option<&'a str>,
    models: Vec<&'a str>,
    /// `resolved`, `missing: <reason>` or `none`.
    credential: String,
}

fn snapshot_view(active: &ActiveConfig) -> SnapshotView<'_> {
    let s = &active.snapshot;
    SnapshotView {
        version: active.version,
        hash: &s.hash,
        ir_version: s.ir_version,
        routes: s
            .routes
            .iter()
            .map(|r| RouteView {
                name: &r.name,
                origin: &r.origin,
                exposed_models: &r.exposed_models,
                targets: route_targets(s, &r.selection, &r.failover),
            })
            .collect(),
        budgets: s.budgets.iter().map(|b| b.name.as_str()).collect(),
        providers: s
            .providers
            .iter()
            .enumerate()
            .map(|(i, p)| ProviderView {
                name: &p.name,
                kind: p.kind.as_str(),
                base_url: p.base_url.as_deref(),
                models: p.models.iter().map(|m| m.name.as_str()).collect(),
                credential: active.credential(i).describe(),
            })
            .collect(),
    }
}

fn route_targets(s: &Snapshot, selection: &Selection, failover: &[TargetId]) -> Vec<String> {
    let selected: Vec<TargetId> = match selection {
        Selection::Single(t) => vec![*t],
        Selection::Split(arms) => arms.iter().map(|a| a.target).collect(),
        Selection::Cheapest(ts) => ts.clone(),
        Selection::Fastest { targets, .. } => targets.clone(),
    };
    let mut seen = BTreeSet::new();
    selected
        .into_iter()
        .chain(failover.iter().copied())
        .filter(|t| seen.insert(*t) && (t.0 as usize) < s.targets.len())
        .map(|t| s.target_name(t))
        .collect()
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Vec<u8>> {
    let body = body.into_bytes();
    let mut r = Response::new(Vec::new());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(header::CONTENT_LENGTH, body.len().into());
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    *r.body_mut() = body;
    r
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Vec<u8>> {
    let mut body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_string());
    body.push('\n');
    text(status, "application/json", body)
}

fn error(status: StatusCode, message: &str, code: &str) -> Response<Vec<u8>> {
    let value = serde_json::json!({
        "error": { "message": message, "type": "invalid_request_error", "code": code }
    });
    json(status, &value)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::load_dir;

    struct FakeHealth;

    impl TargetHealth for FakeHealth {
        fn targets_json(&self) -> serde_json::Value {
            serde_json::json!([{ "target": "mock-primary/mock-large", "healthy": true }])
        }
    }

    fn app() -> AdminApp<FakeHealth> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
        let active = load_dir(&dir, 1).expect("the quickstart loads");
        AdminApp {
            config: Arc::new(ConfigHandle::new(active)),
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(FakeHealth),
            quota: None,
        }
    }

    fn body(r: &Response<Vec<u8>>) -> &str {
        std::str::from_utf8(r.body()).expect("utf-8 body")
    }

    #[test]
    fn probes_answer_ok() {
        let app = app();
        let r = app.handle(&Method::GET, "/healthz");
        assert_eq!(r.status(), 200);
        assert_eq!(body(&r), "ok\n");
        assert_eq!(app.handle(&Method::GET, "/readyz").status(), 200);
    }

    #[test]
    fn metrics_are_prometheus_text_with_the_snapshot_version() {
        let r = app().handle(&Method::GET, "/metrics");
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .is_ok_and(|v| v.starts_with("text/plain; version=0.0.4"))
        );
        assert!(body(&r).contains("switchyard_snapshot_version 1"));
    }

    #[test]
    fn snapshot_view_lists_routes_budgets_and_providers() {
        let r = app().handle(&Method::GET, "/admin/snapshot");
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        assert_eq!(v["version"], 1);
        assert_eq!(v["ir_version"], switchyard_dsl::ir::IR_VERSION);
        assert_eq!(v["hash"].as_str().map(str::len), Some(64));
        let chat = &v["routes"][1];
        assert_eq!(chat["name"], "chat");
        assert_eq!(chat["origin"], "quickstart");
        assert_eq!(chat["exposed_models"], serde_json::json!(["gpt-4o"]));
        assert_eq!(
            chat["targets"],
            serde_json::json!(["mock-primary/mock-large", "mock-backup/mock-large"])
        );
        assert_eq!(v["budgets"], serde_json::json!(["per-key"]));
        assert_eq!(v["providers"][0]["kind"], "mock");
        assert_eq!(v["providers"][0]["credential"], "none");
        assert_eq!(
            v["providers"][0]["models"],
            serde_json::json!(["mock-large", "mock-small"])
        );
    }

    #[test]
    fn targets_come_from_the_health_registry() {
        let r = app().handle(&Method::GET, "/admin/targets");
        let v: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        assert_eq!(v[0]["healthy"], true);
    }

    #[test]
    fn unknown_paths_and_methods_are_json_errors() {
        let app = app();
        let r = app.handle(&Method::GET, "/nope");
        assert_eq!(r.status(), 404);
        let v: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        assert_eq!(v["error"]["code"], "not_found");
        let r = app.handle(&Method::POST, "/metrics");
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "GET");
    }
}
