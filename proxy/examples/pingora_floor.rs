//! The framework's floor, for the benchmark: what a pingora 0.9 server costs per request
//! before any Switchyard code runs. Two modes, both forwarding every request to one upstream:
//!
//! - `forward`: pingora's own proxy phases (`upstream_peer` only), the least a pingora
//!   proxy can do;
//! - `relay`: the shape `switchyard-proxy` has — the whole body read in `request_filter`, the
//!   upstream called over pingora's pooled `Connector`, the answer written back — with no
//!   routing, auth, budgets, metrics or logs.
//!
//! `switchyard-proxy`'s CPU per request minus `relay`'s is what Switchyard's own code costs;
//! `relay` minus nginx is the framework's share (see `tests/bench/run.sh`, targets
//! `floor-forward` and `floor-relay`).
//!
//! ```text
//! cargo run --release --example pingora_floor -- relay 127.0.0.1:8080 127.0.0.1:9000 [threads [scheduling]]
//! ```

use std::net::SocketAddr;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;

/// The same allocator as `switchyard-proxy`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Floor {
    upstream: SocketAddr,
    relay: bool,
    connector: Connector,
}

impl Floor {
    /// The `relay` mode: Switchyard's path without Switchyard.
    async fn relay(&self, session: &mut Session) -> Option<()> {
        let mut body = BytesMut::new();
        while let Some(chunk) = session.read_request_body().await.ok()? {
            body.extend_from_slice(&chunk);
        }
        let req = session.req_header();
        let mut header =
            RequestHeader::build(req.method.clone(), req.uri.path().as_bytes(), None).ok()?;
        header.insert_header("host", "upstream").ok()?;
        header
            .insert_header("content-type", "application/json")
            .ok()?;
        header
            .insert_header("content-length", body.len().to_string())
            .ok()?;
        let peer = HttpPeer::new(self.upstream, false, String::new());
        let (mut up, _reused) = self.connector.get_http_session(&peer).await.ok()?;
        up.write_request_header(Box::new(header)).await.ok()?;
        up.write_request_body(body.freeze(), true).await.ok()?;
        up.finish_request_body().await.ok()?;
        up.read_response_header().await.ok()?;
        let status = up.response_header()?.status.as_u16();
        let mut answer = BytesMut::new();
        while let Some(chunk) = up.read_response_body().await.ok()? {
            answer.extend_from_slice(&chunk);
        }
        if up.response_done() {
            self.connector.release_http_session(up, &peer, None).await;
        }
        let mut resp = ResponseHeader::build(status, Some(2)).ok()?;
        resp.insert_header("content-type", "application/json")
            .ok()?;
        resp.insert_header("content-length", answer.len().to_string())
            .ok()?;
        session
            .write_response_header(Box::new(resp), false)
            .await
            .ok()?;
        session
            .write_response_body(Some(Bytes::from(answer)), true)
            .await
            .ok()
    }
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> pingora::Result<bool> {
        if !self.relay {
            return Ok(false);
        }
        if self.relay(session).await.is_none() {
            let _ = session.respond_error(502).await;
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, listen, upstream, rest @ ..] = args.as_slice() else {
        eprintln!(
            "usage: pingora_floor forward|relay LISTEN UPSTREAM [THREADS [per-thread|work-stealing]]"
        );
        std::process::exit(2);
    };
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM is host:port");
    let threads = rest
        .first()
        .map_or(2, |t| t.parse().expect("THREADS is a number"));
    // pingora's default, as in switchyard-proxy. One runtime per thread (`per-thread`) was
    // measured no cheaper there: pooled upstream connections then cross threads.
    let work_stealing = rest.get(1).is_none_or(|s| s != "per-thread");
    // The same server settings as `switchyard-proxy` (see `server::build_with_quota`).
    let mut conf = ServerConf::new().expect("pingora has a default configuration");
    conf.threads = threads;
    conf.daemon = false;
    conf.work_stealing = work_stealing;
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let floor = Floor {
        upstream,
        relay: mode == "relay",
        connector: Connector::new(None),
    };
    let mut service = http_proxy_service(&server.configuration, floor);
    service.add_tcp(listen);
    server.add_service(service);
    println!("listening on {listen}");
    server.run_forever();
}
