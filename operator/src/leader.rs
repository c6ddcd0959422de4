//! Leader election with a `coordination.k8s.io/v1` Lease: only the holder reconciles and
//! publishes.
//!
//! The holder renews every `renew_every`; another replica takes the Lease over only after
//! `renewTime + leaseDurationSeconds` has passed. Writes use the Lease's `resourceVersion`, so
//! two replicas racing for it cannot both win. A holder that cannot renew for
//! `duration - renew_every` gives up (the operator then exits and restarts as a standby), which
//! is before any other replica may take over — as long as the replicas' clocks agree to within
//! `renew_every`. With worse clock skew two replicas can publish at once for a moment; proxies
//! take whichever version is higher, and both compiled the same objects.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Which Lease, and who we are.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// One attempt to take or renew the Lease; `true` while we hold it.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool> {
    let duration = i32::try_from(cfg.duration.as_secs()).unwrap_or(15);
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some(cfg.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(Error::Kube(e)),
        };
    };
    let mut spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let ours = holder == cfg.identity;
    let expired = holder.is_empty()
        || match &spec.renew_time {
            None => true,
            Some(MicroTime(renewed)) => {
                let secs = i64::from(spec.lease_duration_seconds.unwrap_or(duration));
                renewed
                    .checked_add(SignedDuration::from_secs(secs))
                    .map_or(true, |end| end < Timestamp::now())
            }
        };
    if !ours && !expired {
        return Ok(false);
    }
    if !ours {
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.holder_identity = Some(cfg.identity.clone());
    }
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(duration);
    lease.spec = Some(spec);
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// Waits until this replica holds the Lease (or `stop` is cancelled: `false`).
pub async fn acquire(client: Client, cfg: &LeaseConfig, stop: &CancellationToken) -> bool {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    loop {
        match try_acquire(&api, cfg).await {
            Ok(true) => {
                tracing::info!(lease = %cfg.name, identity = %cfg.identity, "acquired the leader lease");
                return true;
            }
            Ok(false) => tracing::debug!(lease = %cfg.name, "another replica leads"),
            Err(e) => tracing::warn!(error = %e, "cannot read or write the leader lease"),
        }
        tokio::select! {
            () = tokio::time::sleep(cfg.renew_every) => {}
            () = stop.cancelled() => return false,
        }
    }
}

/// Renews the Lease until it is lost (returns) or `stop` is cancelled (releases it, returns).
pub async fn hold(client: Client, cfg: LeaseConfig, stop: CancellationToken) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let deadline = cfg.duration.saturating_sub(cfg.renew_every);
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(cfg.renew_every) => {}
            () = stop.cancelled() => {
                release(&api, &cfg).await;
                return Ok(());
            }
        }
        match try_acquire(&api, &cfg).await {
            Ok(true) => renewed = tokio::time::Instant::now(),
            Ok(false) => {
                return Err(Error::Config(
                    "lost the leader lease to another replica".into(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the leader lease");
                if renewed.elapsed() > deadline {
                    return Err(Error::Config(format!(
                        "could not renew the leader lease for {deadline:?}"
                    )));
                }
            }
        }
    }
}

/// Gives the Lease up on shutdown so a standby takes over at once.
async fn release(api: &Api<Lease>, cfg: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(&cfg.identity) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    if let Err(e) = api.replace(&cfg.name, &PostParams::default(), &lease).await {
        tracing::warn!(error = %e, "cannot release the leader lease");
    } else {
        tracing::info!(lease = %cfg.name, "released the leader lease");
    }
}
