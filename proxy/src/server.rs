//! The pingora server: the client API service and the admin service, graceful-shutdown
//! settings, and the `listening on ADDR` lines printed once each port accepts connections.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};

use crate::config::{ActiveConfig, ConfigHandle};
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::router::Router;
use crate::router::health::HealthRegistry;
use crate::router::observe::{RoutingObserver, TargetsView};
use crate::router::stats::StatsRegistry;
use crate::service::{Draw, Gateway};
use crate::settings::Settings;
use crate::upstream::Upstream;
use crate::{Error, Result};

/// Shared state handed to the services.
#[derive(Debug, Clone)]
pub struct Shared {
    pub config: Arc<ConfigHandle>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<HealthRegistry>,
    pub stats: Arc<StatsRegistry>,
    pub observer: Arc<RoutingObserver>,
    /// OpenTelemetry traces, when `--otel-endpoint` (or `OTEL_*`) configures them.
    pub telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// Shadow counts: of the operator's shadow snapshots, or of the `--shadow` policy.
    pub shadow: Arc<crate::shadow::Shadow>,
}

impl Shared {
    /// Fresh runtime state around a loaded configuration.
    pub fn new(active: ActiveConfig) -> Self {
        let metrics = Arc::new(Metrics::new());
        let observer = Arc::new(RoutingObserver::new(metrics.registry()));
        Self {
            config: Arc::new(ConfigHandle::new(active)),
            metrics,
            health: Arc::new(HealthRegistry::default()),
            stats: Arc::new(StatsRegistry::default()),
            observer,
            telemetry: None,
            shadow: Arc::new(crate::shadow::Shadow::new()),
        }
    }

    /// Starts the trace exporter that `settings` configure (none when tracing is off).
    pub fn start_telemetry(&mut self, settings: &Settings) -> Result<()> {
        self.telemetry = crate::telemetry::Telemetry::start(
            &settings.telemetry,
            "switchyard-proxy",
            self.metrics.registry(),
        )?;
        Ok(())
    }
}

/// The gateway service logic for `settings` (no listener yet).
pub fn gateway(settings: &Settings, shared: &Shared) -> Gateway {
    let upstream = Arc::new(Upstream::new());
    if let Err(e) = crate::router::active::spawn(
        Arc::clone(&shared.config),
        Arc::new(Providers::new(Arc::clone(&upstream))),
        Arc::clone(&shared.health),
        Arc::clone(&shared.stats),
    ) {
        tracing::error!(error = %e, "health checks not started");
    }
    let mut providers = Providers::new(upstream);
    providers.responses_unsupported_tools = settings.responses.responses_unsupported_tools;
    let router = Router {
        providers,
        health: Arc::clone(&shared.health),
        stats: Arc::clone(&shared.stats),
        observer: Arc::clone(&shared.observer),
        metrics: Arc::clone(&shared.metrics),
        affinity: Arc::new(affinity_state(settings)),
    };
    let draw = settings.draw_seed.map_or(Draw::Random, Draw::seeded);
    let mut gateway = Gateway::new(
        Arc::clone(&shared.config),
        router,
        crate::body::BodyLimits {
            max_bytes: settings.max_body_bytes,
            timeout: settings.limits.body_timeout,
            budget: crate::body::BodyBudget::new(
                settings.limits.max_buffered_body_bytes,
                shared.metrics.registry(),
            ),
        },
        draw,
    );
    gateway.allow_anonymous = settings.allow_anonymous;
    gateway.telemetry = shared.telemetry.clone();
    gateway.shadow = Some(Arc::clone(&shared.shadow));
    // In control-plane mode the keys arrive with the first snapshot.
    if !settings.allow_anonymous
        && settings.control_plane.is_none()
        && shared.config.current().keys.is_empty()
    {
        tracing::warn!(
            "no client keys configured: every /v1 request gets 401; add a Secret labelled \
             `switchyard.dev/client-keys: \"true\"` or start with --allow-anonymous"
        );
    }
    match crate::quota::Quota::new(
        settings.redis_url.as_deref(),
        settings.redis_failure,
        settings.default_max_tokens,
        shared.metrics.registry(),
    ) {
        Ok(q) => gateway.quota = Arc::new(q),
        // `Settings::validate` checks the URL first; this is a last resort.
        Err(e) => tracing::error!(error = %e, "budgets are counted in memory"),
    }
    gateway.cache = Arc::new(response_cache(settings, shared));
    gateway.responses = Arc::new(
        crate::responses_store::ResponsesStore::with_redis(
            settings.responses.clone(),
            shared.metrics.registry(),
        )
        .unwrap_or_else(|e| {
            // `Settings::validate` checks the URL first; this is a last resort.
            tracing::error!(error = %e, "the responses store is kept in memory");
            crate::responses_store::ResponsesStore::new(settings.responses.clone())
        }),
    );
    gateway
}

/// Session affinity's memory: also in Redis when budgets share one (`--redis-url`).
fn affinity_state(settings: &Settings) -> crate::router::affinity::AffinityState {
    use crate::router::affinity::AffinityState;
    match settings.redis_url.as_deref().map(AffinityState::with_redis) {
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            tracing::error!(error = %e, "affinity memory kept in this replica only");
            AffinityState::default()
        }
        None => AffinityState::default(),
    }
}

/// The response cache: in Redis with `--cache-redis-url`, else in memory.
fn response_cache(settings: &Settings, shared: &Shared) -> crate::cache::ResponseCache {
    let registry = shared.metrics.registry();
    if let Some(url) = &settings.cache_redis_url {
        match crate::cache::ResponseCache::redis(url, registry) {
            Ok(c) => return c,
            // `Settings::validate` checks the URL first; this is a last resort.
            Err(e) => tracing::error!(error = %e, "the response cache is kept in memory"),
        }
    }
    crate::cache::ResponseCache::memory(settings.cache_max_bytes, registry)
}

/// A pingora server with the proxy service on `settings.listen` and the admin service on
/// `settings.admin_listen`.
pub fn build(settings: &Settings, shared: &Shared) -> Result<Server> {
    build_with_quota(settings, shared).map(|(server, _)| server)
}

/// [`build`], also handing out the budget counters (for the usage reporter).
pub fn build_with_quota(
    settings: &Settings,
    shared: &Shared,
) -> Result<(Server, Arc<crate::quota::Quota>)> {
    let mut conf = ServerConf::new().ok_or_else(|| Error::Server("no default config".into()))?;
    conf.threads = settings.worker_threads();
    conf.grace_period_seconds = Some(settings.grace_period_seconds);
    conf.graceful_shutdown_timeout_seconds = Some(settings.grace_period_seconds);
    conf.daemon = false;
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let gateway = gateway(settings, shared);
    let quota = Arc::clone(&gateway.quota);
    let proxy = pingora::proxy::http_proxy(&server.configuration, gateway);
    let mut proxy = pingora::services::listening::Service::new(
        "switchyard proxy".to_string(),
        crate::listener::Guarded::new(proxy, &settings.limits, shared.metrics.listener("client")),
    );
    proxy.add_tcp(&settings.listen.to_string());
    server.add_service(proxy);
    server.add_service(crate::admin::admin_service(
        &settings.admin_listen.to_string(),
        crate::admin::AdminAccess::from_settings(settings)?,
        Arc::clone(&shared.config),
        Arc::clone(&shared.metrics),
        Arc::new(TargetsView {
            config: Arc::clone(&shared.config),
            health: Arc::clone(&shared.health),
            stats: Arc::clone(&shared.stats),
            observer: Arc::clone(&shared.observer),
        }),
        Some(Arc::clone(&quota)),
        Some(Arc::clone(&shared.shadow)),
    ));
    Ok((server, quota))
}

/// Prints `{label} ADDR` on stdout once `addr` accepts connections (checked by connecting).
pub fn announce_when_bound(label: &'static str, addr: SocketAddr) {
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{label} {addr}");
                let _ = out.flush();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::error!(%addr, "{label}: the port never accepted a connection");
    });
}

/// Loads the configuration (the config folder, or the persisted snapshot in control-plane
/// mode), starts the watcher or the control-channel client, builds the server and runs it
/// until SIGINT/SIGTERM.
pub fn run(settings: &Settings) -> Result<()> {
    let remote = settings.remote();
    let active = match (&remote, &settings.config) {
        (Some(remote), _) => crate::config::remote::initial(remote),
        (None, Some(dir)) => {
            let active =
                crate::config::load_dir(dir, 1).map_err(|e| Error::Config(e.to_string()))?;
            tracing::info!(
                version = active.version,
                hash = %active.snapshot.hash,
                routes = active.snapshot.routes.len(),
                "configuration loaded"
            );
            active
        }
        (None, None) => {
            return Err(Error::Settings(
                "one of --config and --control-plane is required".into(),
            ));
        }
    };
    let mut shared = Shared::new(active);
    shared.start_telemetry(settings)?;
    if let Some(dir) = &settings.shadow {
        let shadow = crate::config::load_dir(dir, 1)
            .map_err(|e| Error::Config(format!("--shadow {}: {e}", dir.display())))?;
        tracing::info!(
            hash = %shadow.snapshot.hash,
            routes = shadow.snapshot.routes.len(),
            "shadow configuration loaded"
        );
        shared.shadow = Arc::new(crate::shadow::Shadow::standalone(shadow.snapshot));
    }
    match (remote.clone(), &settings.config) {
        (Some(remote), _) => {
            let url = remote.url.clone();
            crate::config::remote::spawn_control_client(
                remote,
                Arc::clone(&shared.config),
                Arc::clone(&shared.metrics),
                shared.telemetry.clone(),
            )
            .map_err(|e| Error::Config(format!("control plane {url}: {e}")))?;
        }
        (None, Some(dir)) => {
            crate::config::spawn_watcher(
                dir.clone(),
                Arc::clone(&shared.config),
                Arc::clone(&shared.metrics),
            )
            .map_err(|e| Error::Config(format!("cannot watch {}: {e}", dir.display())))?;
        }
        (None, None) => {}
    }
    let (server, quota) = build_with_quota(settings, &shared)?;
    if let Some(remote) = remote {
        let url = remote.url.clone();
        crate::config::remote::spawn_usage_reporter(
            remote,
            Arc::clone(&shared.config),
            quota,
            Arc::clone(&shared.shadow),
        )
        .map_err(|e| Error::Config(format!("control plane {url}: {e}")))?;
    }
    announce_when_bound("listening on", settings.listen);
    announce_when_bound("admin listening on", settings.admin_listen);
    server.run(RunArgs::default());
    Ok(())
}
