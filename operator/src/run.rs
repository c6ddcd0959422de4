//! Wiring: listeners, leader election, the three controllers and the Secret watch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Controller;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use switchyard_crds::{Budget, LLMProvider, RoutePolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Admin};
use crate::channel::{self, Channel};
use crate::context::{Context, Stores};
use crate::error::{Error, Result};
use crate::leader::{self, LeaseConfig};
use crate::metrics::Metrics;
use crate::publish::{Pods, Publisher};
use crate::reconcile::{Watched, error_policy, reconcile};

/// Process settings, validated once by the binary.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch one namespace; `None` watches all and compiles them as one scope.
    pub namespace: Option<String>,
    pub control_listen: SocketAddr,
    pub control_token: String,
    /// Folder with `tls.crt` and `tls.key` (cert-manager layout) to serve the control channel
    /// over TLS; `None` serves plain HTTP (the binary allows it only with
    /// `--control-insecure`: snapshots carry provider keys).
    pub control_tls_dir: Option<std::path::PathBuf>,
    pub admin_listen: SocketAddr,
    pub lease: Option<LeaseConfig>,
    pub identity: String,
    pub ping: Duration,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Yields `()` whenever the watched value changes.
fn changes(rx: watch::Receiver<u64>) -> impl Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    })
}

/// Runs until SIGTERM / SIGINT (`Ok`) or until the leader lease is lost (`Err`).
pub async fn run(settings: Settings) -> Result<()> {
    let client = Client::try_default().await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    run_with(client, settings, shutdown).await
}

async fn signals(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

/// [`run`] with a given client and shutdown token.
pub async fn run_with(
    client: Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    let publisher = Arc::new(Publisher::default());
    let pods = Arc::new(Pods::default());
    let usage = Arc::new(crate::usage::Usage::default());
    let ready = Arc::new(AtomicBool::new(false));

    // A bad certificate stops the start, before anything listens.
    let control_tls = match &settings.control_tls_dir {
        Some(dir) => {
            let store = crate::tls::CertStore::load(dir)?;
            let acceptor = store.acceptor()?;
            tokio::spawn(store.watch(shutdown.clone()));
            Some(acceptor)
        }
        None => None,
    };
    let admin_listener = TcpListener::bind(settings.admin_listen).await?;
    let control_listener = TcpListener::bind(settings.control_listen).await?;
    tracing::info!(addr = %admin_listener.local_addr()?, "admin (healthz, readyz, metrics) listening");
    tracing::info!(
        addr = %control_listener.local_addr()?,
        tls = control_tls.is_some(),
        "control channel listening"
    );
    if control_tls.is_none() {
        tracing::warn!(
            "the control channel is plain HTTP: provider keys in snapshots cross the network in clear"
        );
    }
    let admin = Arc::new(Admin {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    let admin_server = tokio::spawn(crate::http::serve(
        admin_listener,
        move |req| admin::handle(admin.clone(), req),
        shutdown.clone(),
        None,
    ));
    let channel = Arc::new(Channel {
        token: settings.control_token.clone(),
        publisher: publisher.clone(),
        pods: pods.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        ping: settings.ping,
        usage: usage.clone(),
    });
    let control_server = tokio::spawn(crate::http::serve(
        control_listener,
        move |req| channel::handle(channel.clone(), req),
        shutdown.clone(),
        control_tls,
    ));

    // Leader election: wait for the Lease, then hold it in the background.
    let lease_lost = CancellationToken::new();
    let mut holder = None;
    if let Some(cfg) = settings.lease.clone() {
        tracing::info!(lease = %cfg.name, namespace = %cfg.namespace, "waiting for the leader lease");
        if !leader::acquire(client.clone(), &cfg, &shutdown).await {
            return stop(admin_server, control_server).await;
        }
        let (c, stop_holding, lost) = (client.clone(), shutdown.clone(), lease_lost.clone());
        holder = Some(tokio::spawn(async move {
            let result = leader::hold(c, cfg, stop_holding).await;
            lost.cancel();
            result
        }));
    }
    metrics.is_leader.set(1);

    let ns = settings.namespace.as_deref();
    let wc = watcher::Config::default();
    let (p_ready, r_ready, b_ready, s_ready) = (
        watch::channel(false),
        watch::channel(false),
        watch::channel(false),
        watch::channel(false),
    );
    // Bumped by Secret changes and by deletions (a deleted object is not reconciled itself,
    // but the others must recompile without it).
    let secrets_changed = watch::channel(0u64).0;
    let providers = controller(
        api::<LLMProvider>(&client, ns),
        &wc,
        p_ready.0,
        secrets_changed.clone(),
    );
    let routes = controller(
        api::<RoutePolicy>(&client, ns),
        &wc,
        r_ready.0,
        secrets_changed.clone(),
    );
    let budgets = controller(
        api::<Budget>(&client, ns),
        &wc,
        b_ready.0,
        secrets_changed.clone(),
    );
    let (secret_store, secret_writer) = reflector::store::<Secret>();
    let stores = Stores {
        providers: providers.store(),
        route_policies: routes.store(),
        budgets: budgets.store(),
        secrets: secret_store,
    };
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            stores,
            metrics.clone(),
            publisher,
            pods.clone(),
            Some(settings.identity.clone()),
        )
        .with_usage(usage),
    );

    // Secrets only feed the cache; any change makes every object re-check its inputs.
    let secret_events = reflector(
        secret_writer,
        watcher(api::<Secret>(&client, ns), wc).default_backoff(),
    );
    let notify = secrets_changed.clone();
    let secret_task = tokio::spawn(async move {
        let mut events = std::pin::pin!(secret_events);
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    s_ready.0.send_replace(true);
                    notify.send_modify(|n| *n += 1);
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    notify.send_modify(|n| *n += 1);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "secret watch failed; retrying"),
            }
        }
    });

    let ready_ctx = ctx.clone();
    let ready_flag = ready.clone();
    tokio::spawn(async move {
        for mut rx in [p_ready.1, r_ready.1, b_ready.1, s_ready.1] {
            if rx.wait_for(|r| *r).await.is_err() {
                return;
            }
        }
        ready_ctx.caches_ready.send_replace(true);
        loop {
            match ready_ctx
                .compile_and_publish(&opentelemetry::Context::new())
                .await
            {
                Ok(_) => {
                    ready_flag.store(true, Ordering::Relaxed);
                    return;
                }
                Err(e) => tracing::info!(error = %e, "waiting for the caches"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });

    let stopping = {
        let (a, b) = (shutdown.clone(), lease_lost.clone());
        move || {
            let (a, b) = (a.clone(), b.clone());
            async move {
                tokio::select! {
                    () = a.cancelled() => {}
                    () = b.cancelled() => {}
                }
            }
        }
    };
    let triggers = |ctx: &Arc<Context>| {
        futures::stream::select_all([
            changes(ctx.outcome_changed.subscribe()).boxed(),
            changes(ctx.pods.subscribe()).boxed(),
            changes(secrets_changed.subscribe()).boxed(),
        ])
    };
    tokio::join!(
        drive(providers, triggers(&ctx), stopping(), ctx.clone()),
        // Shadow counts arrive with the usage reports.
        drive(
            routes,
            futures::stream::select(triggers(&ctx), changes(ctx.usage.subscribe()).boxed()),
            stopping(),
            ctx.clone()
        ),
        drive(
            budgets,
            futures::stream::select(triggers(&ctx), changes(ctx.usage.subscribe()).boxed()),
            stopping(),
            ctx.clone()
        ),
    );
    ready.store(false, Ordering::Relaxed);
    metrics.is_leader.set(0);
    secret_task.abort();
    shutdown.cancel();
    let lease_result = match holder {
        Some(h) => h.await.unwrap_or(Ok(())),
        None => Ok(()),
    };
    stop(admin_server, control_server).await?;
    lease_result
}

/// A controller over our own reflector, so that its first full list can be signalled.
fn controller<K: Watched>(
    api: Api<K>,
    wc: &watcher::Config,
    synced: watch::Sender<bool>,
    deleted: watch::Sender<u64>,
) -> Controller<K> {
    let (store, writer) = reflector::store::<K>();
    let events = watcher(api, wc.clone())
        .default_backoff()
        .reflect(writer)
        .inspect(move |event| {
            match event {
                Ok(watcher::Event::InitDone) => {
                    synced.send_replace(true);
                    // Objects deleted while the watch was down are gone from the new list.
                    deleted.send_modify(|n| *n += 1);
                }
                Ok(watcher::Event::Delete(_)) => deleted.send_modify(|n| *n += 1),
                _ => {}
            }
        })
        .applied_objects();
    Controller::for_stream(events, store)
}

async fn drive<K: Watched>(
    controller: Controller<K>,
    triggers: impl Stream<Item = ()> + Send + 'static,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ctx: Arc<Context>,
) {
    controller
        .reconcile_all_on(triggers)
        .graceful_shutdown_on(stop)
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile error");
            }
        })
        .await;
}

async fn stop(
    admin: tokio::task::JoinHandle<()>,
    control: tokio::task::JoinHandle<()>,
) -> Result<()> {
    for task in [admin, control] {
        if tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
        {
            return Err(Error::Config("servers did not stop within 5 s".into()));
        }
    }
    Ok(())
}
