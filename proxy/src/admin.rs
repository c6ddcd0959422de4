//! The admin listener: health probes, Prometheus metrics and a JSON view of the active
//! snapshot and target health. Nothing here prints a key.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` while the process serves |
//! | `GET /readyz` | `200 ready` once a configuration is loaded, 503 before (control-plane mode) |
//! | `GET /metrics` | Prometheus text, `text/plain; version=0.0.4` |
//! | `GET /admin/snapshot` | version, hash, routes (paged), budgets, providers and credential states |
//! | `GET /admin/targets` | the router's per-target health (paged) |
//! | `GET /admin/budgets` | per budget and scope: spent, remaining, reset time, state |
//!
//! Anything else is a 404 (405 for other methods) with an OpenAI-shaped JSON error.
//!
//! The lists that grow with the policy are paged so that a 10,000-route snapshot never makes
//! a multi-megabyte answer: `?offset=N&limit=M` ([`Page`]) over the snapshot's routes and over
//! the targets; each answer says `total` and `next_offset` (`null` on the last page).
//!
//! [`AdminAccess`] guards the port: with `--admin-token-file`, `/admin/*` needs
//! `Authorization: Bearer TOKEN` (401 otherwise; the probes and `/metrics` stay open), and a
//! port bound to loopback answers only `Host: 127.0.0.1`, `localhost` or `[::1]` (421
//! otherwise), so a web page cannot read it through DNS rebinding. A request without any host
//! (an HTTP/1.0 tool) is answered: browsers always send one.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode, header};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchyard_dsl::ir::{Selection, Snapshot, TargetId};

use crate::config::{ActiveConfig, ConfigHandle};
use crate::metrics::{self, Metrics};

/// What `/admin/targets` shows: implemented by the router's health registry
/// (`router::health::HealthRegistry`, beside its type).
pub trait TargetHealth: Send + Sync + 'static {
    /// One page of the per-target health view, as JSON.
    fn targets_json(&self, page: Page) -> serde_json::Value;
}

/// A page of an admin list: `?offset=N&limit=M`. The default and the largest limit keep an
/// answer small whatever the policy's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

impl Page {
    /// Items per page without `limit`.
    pub const DEFAULT_LIMIT: usize = 500;
    /// The largest `limit` accepted.
    pub const MAX_LIMIT: usize = 5_000;

    /// Reads `offset` and `limit` from a query string (other parameters are ignored).
    pub fn from_query(query: Option<&str>) -> Result<Self, String> {
        let mut page = Self::default();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "offset" => &mut page.offset,
                "limit" => &mut page.limit,
                _ => continue,
            };
            *slot = value
                .parse()
                .map_err(|_| format!("`{name}` must be a non-negative integer"))?;
        }
        if page.limit == 0 || page.limit > Self::MAX_LIMIT {
            return Err(format!("`limit` must be 1 to {}", Self::MAX_LIMIT));
        }
        Ok(page)
    }

    /// The indexes of this page in a list of `total` items.
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        let start = self.offset.min(total);
        start..start.saturating_add(self.limit).min(total)
    }

    /// Where the next page starts, `None` after the last.
    pub fn next_offset(&self, total: usize) -> Option<usize> {
        let end = self.range(total).end;
        (end < total).then_some(end)
    }
}

/// Who may use the admin port: an optional bearer token for `/admin/*`, and, on a port bound
/// to loopback, only loopback `Host` names (a browser on the same host sends the attacker's
/// name after a DNS rebinding, so the check stops it reading the port).
#[derive(Clone, Default)]
pub struct AdminAccess {
    /// SHA-256 of the token: compared in constant time, whatever the lengths.
    token: Option<[u8; 32]>,
    /// The bound address when it is a loopback one (its literal is accepted too).
    loopback: Option<SocketAddr>,
}

impl std::fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccess")
            .field("token", &self.token.is_some())
            .field("loopback", &self.loopback)
            .finish()
    }
}

impl AdminAccess {
    /// The access rules of an admin port bound to `listen`, with an optional token.
    pub fn new(listen: SocketAddr, token: Option<&str>) -> Self {
        Self {
            token: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            loopback: listen.ip().is_loopback().then_some(listen),
        }
    }

    /// From `--admin-listen` and `--admin-token-file` (read now; empty or unreadable fails).
    pub fn from_settings(settings: &crate::settings::Settings) -> crate::Result<Self> {
        let token = match &settings.admin_token_file {
            None => None,
            Some(file) => {
                let token = std::fs::read_to_string(file).map_err(|e| {
                    crate::Error::Settings(format!("--admin-token-file {}: {e}", file.display()))
                })?;
                let token = token.trim().to_string();
                if token.is_empty() {
                    return Err(crate::Error::Settings(format!(
                        "--admin-token-file {} is empty",
                        file.display()
                    )));
                }
                Some(token)
            }
        };
        Ok(Self::new(settings.admin_listen, token.as_deref()))
    }

    /// The refusal for a request to `path` with these `Host` and `Authorization` values, or
    /// `None` when it may be answered.
    pub fn refuse(
        &self,
        path: &str,
        host: Option<&str>,
        authorization: Option<&[u8]>,
    ) -> Option<Response<Vec<u8>>> {
        if let (Some(bound), Some(host)) = (self.loopback, host)
            && !loopback_host(host, bound)
        {
            return Some(error(
                StatusCode::MISDIRECTED_REQUEST,
                "this admin port is bound to loopback and answers only the hosts 127.0.0.1, localhost and [::1]",
                "host_not_allowed",
            ));
        }
        let Some(want) = &self.token else {
            return None;
        };
        if path != "/admin" && !path.starts_with("/admin/") {
            return None;
        }
        let given = authorization
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .map(|t| t.trim_ascii());
        let matches = given.is_some_and(|t| {
            let got: [u8; 32] = Sha256::digest(t).into();
            bool::from(got.ct_eq(want))
        });
        if matches {
            return None;
        }
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "`/admin/*` needs `Authorization: Bearer <admin token>` (--admin-token-file)",
            "invalid_admin_token",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        Some(r)
    }
}

/// `127.0.0.1`, `localhost`, `[::1]` or the bound address's literal, with an optional port.
fn loopback_host(host: &str, bound: SocketAddr) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inner, "")) => (inner, None),
            Some((inner, rest)) => match rest.strip_prefix(':') {
                Some(port) => (inner, Some(port)),
                None => return false,
            },
            None => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err()) {
        return false;
    }
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "127.0.0.1" | "localhost" | "::1")
        || name.parse::<std::net::IpAddr>().ok() == Some(bound.ip())
}

/// The admin HTTP service listening on `addr`, guarded by `access`; add it to the pingora
/// `Server` beside the proxy service.
pub fn admin_service<H: TargetHealth>(
    addr: &str,
    access: AdminAccess,
    config: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    health: Arc<H>,
    quota: Option<Arc<crate::quota::Quota>>,
    shadow: Option<Arc<crate::shadow::Shadow>>,
) -> impl pingora::services::Service + 'static {
    let app_metrics = metrics.listener("admin");
    let app = AdminApp {
        config,
        metrics,
        health,
        quota,
        shadow,
        access,
    };
    let app = crate::listener::Guarded::new(
        app,
        &crate::listener::ConnectionLimits::admin(),
        app_metrics,
    );
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
    /// Shadow counts for `/admin/shadow` (404 while there is no shadow snapshot).
    pub shadow: Option<Arc<crate::shadow::Shadow>>,
    /// Token and `Host` checks, before anything is answered.
    pub access: AdminAccess,
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
        let req = session.req_header();
        // An absolute-form request line names the host too; it takes precedence (RFC 9112).
        let host = req
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers
                    .get(header::HOST)
                    .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            });
        let authorization = req.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        if let Some(refusal) = self
            .access
            .refuse(req.uri.path(), host.as_deref(), authorization)
        {
            session.set_keepalive(None);
            return refusal;
        }
        if method == Method::GET && session.req_header().uri.path() == "/admin/budgets" {
            return self.budgets().await;
        }
        let uri = &session.req_header().uri;
        self.handle(&method, uri.path(), uri.query())
    }
}

impl<H: TargetHealth> AdminApp<H> {
    /// The response to `method path?query`; everything but the socket, for tests.
    pub fn handle(&self, method: &Method, path: &str, query: Option<&str>) -> Response<Vec<u8>> {
        let known = matches!(
            path,
            "/healthz"
                | "/readyz"
                | "/metrics"
                | "/admin/snapshot"
                | "/admin/targets"
                | "/admin/budgets"
                | "/admin/shadow"
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
        let page = match path {
            "/admin/snapshot" | "/admin/targets" => match Page::from_query(query) {
                Ok(page) => page,
                Err(why) => return error(StatusCode::BAD_REQUEST, &why, "invalid_query"),
            },
            _ => Page::default(),
        };
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
            "/admin/snapshot" => json(StatusCode::OK, &snapshot_view(&self.config.current(), page)),
            "/admin/budgets" => json(StatusCode::OK, &serde_json::json!({ "budgets": [] })),
            "/admin/shadow" => match self
                .shadow
                .as_ref()
                .and_then(|s| s.report(&self.config.current()))
            {
                Some(report) => json(StatusCode::OK, &report),
                None => error(
                    StatusCode::NOT_FOUND,
                    "no shadow policy: start the proxy with `--shadow DIR`, or set `mode: Shadow` \
                     on a RoutePolicy",
                    "not_found",
                ),
            },
            _ => json(StatusCode::OK, &self.health.targets_json(page)),
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
    /// This page of the routes, in policy order.
    routes: Vec<RouteView<'a>>,
    routes_total: usize,
    /// The `offset` of the next page of routes; `None` on the last.
    next_offset: Option<usize>,
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

fn snapshot_view(active: &ActiveConfig, page: Page) -> SnapshotView<'_> {
    let s = &active.snapshot;
    SnapshotView {
        version: active.version,
        hash: &s.hash,
        ir_version: s.ir_version,
        routes_total: s.routes.len(),
        next_offset: page.next_offset(s.routes.len()),
        routes: s.routes[page.range(s.routes.len())]
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
        fn targets_json(&self, _page: Page) -> serde_json::Value {
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
            shadow: None,
            access: AdminAccess::default(),
        }
    }

    fn body(r: &Response<Vec<u8>>) -> &str {
        std::str::from_utf8(r.body()).expect("utf-8 body")
    }

    #[test]
    fn probes_answer_ok() {
        let app = app();
        let r = app.handle(&Method::GET, "/healthz", None);
        assert_eq!(r.status(), 200);
        assert_eq!(body(&r), "ok\n");
        assert_eq!(app.handle(&Method::GET, "/readyz", None).status(), 200);
    }

    #[test]
    fn metrics_are_prometheus_text_with_the_snapshot_version() {
        let r = app().handle(&Method::GET, "/metrics", None);
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .is_ok_and(|v| v.starts_with("text/plain; version=0.0.4"))
        );
        assert!(body(&r).contains("switchyard_snapshot_version 1"));
    }

    #[test]
    fn lists_are_paged() {
        let app = app();
        let all = app.handle(&Method::GET, "/admin/snapshot", None);
        let all: serde_json::Value = serde_json::from_slice(all.body()).expect("json");
        let total = all["routes"].as_array().expect("routes").len();
        assert!(total >= 2, "the quickstart has routes");
        assert_eq!(all["routes_total"], total);
        assert_eq!(all["next_offset"], serde_json::Value::Null);
        let r = app.handle(&Method::GET, "/admin/snapshot", Some("limit=1&offset=1"));
        let v: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        assert_eq!(v["routes"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["routes"][0], all["routes"][1]);
        assert_eq!(v["routes_total"], total);
        let next = if total > 2 {
            serde_json::json!(2)
        } else {
            serde_json::Value::Null
        };
        assert_eq!(v["next_offset"], next);
        let past = app.handle(&Method::GET, "/admin/snapshot", Some("offset=99999"));
        let past: serde_json::Value = serde_json::from_slice(past.body()).expect("json");
        assert_eq!(past["routes"], serde_json::json!([]));
        for bad in ["limit=0", "limit=5001", "offset=-1", "limit=x"] {
            let r = app.handle(&Method::GET, "/admin/targets", Some(bad));
            assert_eq!(r.status(), 400, "{bad}");
        }
        assert_eq!(
            Page::from_query(Some("foo=1&limit=7")),
            Ok(Page {
                offset: 0,
                limit: 7
            })
        );
    }

    #[test]
    fn snapshot_view_lists_routes_budgets_and_providers() {
        let r = app().handle(&Method::GET, "/admin/snapshot", None);
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
        let r = app().handle(&Method::GET, "/admin/targets", None);
        let v: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        assert_eq!(v[0]["healthy"], true);
    }

    #[test]
    fn unknown_paths_and_methods_are_json_errors() {
        let app = app();
        let r = app.handle(&Method::GET, "/nope", None);
        assert_eq!(r.status(), 404);
        let v: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        assert_eq!(v["error"]["code"], "not_found");
        let r = app.handle(&Method::POST, "/metrics", None);
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "GET");
        let r = app.handle(&Method::GET, "/admin/shadow", None);
        assert_eq!(r.status(), 404, "no --shadow, no counts");
        assert!(body(&r).contains("--shadow DIR"), "{}", body(&r));
    }

    #[test]
    fn loopback_ports_answer_only_loopback_host_names() {
        let bound: SocketAddr = "127.0.0.1:9090".parse().expect("addr");
        for ok in [
            "127.0.0.1",
            "127.0.0.1:9090",
            "localhost",
            "LOCALHOST:1",
            "[::1]",
            "[::1]:9090",
        ] {
            assert!(loopback_host(ok, bound), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9090",
            "127.0.0.1.evil.example",
            "localhost.",
            "127.0.0.2",
            "[::1]x",
            "localhost:",
            "localhost:99999",
            "localhost:9090:1",
            "::1",
            "",
        ] {
            assert!(!loopback_host(bad, bound), "{bad}");
        }
        let other: SocketAddr = "127.0.0.2:9090".parse().expect("addr");
        assert!(loopback_host("127.0.0.2:9090", other));
    }

    #[test]
    fn access_checks_the_host_on_loopback_and_the_token_on_admin_paths() {
        let loopback = AdminAccess::new("127.0.0.1:9090".parse().expect("addr"), Some("s3cret"));
        let r = loopback
            .refuse("/healthz", Some("evil.example"), None)
            .expect("refused");
        assert_eq!(r.status(), 421);
        let v: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        assert_eq!(v["error"]["code"], "host_not_allowed");
        assert!(
            loopback
                .refuse("/healthz", Some("localhost"), None)
                .is_none()
        );
        assert!(loopback.refuse("/metrics", None, None).is_none());
        let r = loopback
            .refuse("/admin/snapshot", Some("localhost"), None)
            .expect("no token");
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        for wrong in [
            &b"Bearer nope"[..],
            b"Bearer s3cre",
            b"s3cret",
            b"Basic s3cret",
        ] {
            assert!(loopback.refuse("/admin/x", None, Some(wrong)).is_some());
        }
        assert!(
            loopback
                .refuse("/admin/snapshot", None, Some(b"Bearer s3cret"))
                .is_none()
        );
        // Not bound to loopback: any host; no token configured: /admin/* open.
        let open = AdminAccess::new("0.0.0.0:9090".parse().expect("addr"), None);
        assert!(
            open.refuse("/admin/snapshot", Some("evil.example"), None)
                .is_none()
        );
        let debug = format!("{loopback:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
