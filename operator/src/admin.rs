//! The admin port: `/healthz` (the process runs), `/readyz` (leader and caches synced: only the
//! ready replica gets proxy connections through the Service) and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Response, StatusCode};

use crate::http::{Body, Request, text};
use crate::metrics::Metrics;

#[derive(Debug)]
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
}

pub async fn handle(admin: Arc<Admin>, req: Request) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if admin.ready.load(Ordering::Relaxed) => text(StatusCode::OK, "ok\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not the leader or caches not synced\n",
        ),
        "/metrics" => {
            let mut response = text(StatusCode::OK, admin.metrics.render());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
