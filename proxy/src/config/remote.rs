//! Control-plane mode: snapshots pushed by the operator over the control channel
//! (protocol in `switchyard_dsl::channel`), applied atomically, acknowledged, and persisted so
//! that a restart without the operator still serves the last good snapshot.
//!
//! ```text
//!  operator ──SSE `event: snapshot`──▶ session ──envelope_config──▶ ConfigHandle::swap
//!     ▲  GET /v1/snapshots/stream?have=V&pod=P   │                      │
//!     │                                          ├──persist──▶ {state-dir}/snapshot.json (0600)
//!     └──────────── POST /v1/acks ◀──────────────┘
//! ```
//!
//! Until the first snapshot arrives (and with nothing persisted) the handle holds
//! [`ActiveConfig::empty`] (version 0): no routes, and `/readyz` answers 503.
//! Keys travel in the envelope and in the persisted file only; they are never logged. The
//! channel runs over TLS (`https://`, the operator verified against `--control-ca-file`, see
//! `tls.rs`); plain `http://` is refused unless `--control-plane-insecure` allows it.

mod client;
mod persist;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchyard_dsl::channel::SnapshotEnvelope;
use switchyard_dsl::ir::{Credential, IR_VERSION};

use super::{ActiveConfig, ApiKey, ConfigHandle, CredentialState};
use crate::metrics::Metrics;

pub use persist::{STATE_FILE, load_persisted, persist};

/// First reconnect delay; doubled per failed attempt up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between reconnects.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// With no event and no `: ping` for this long the stream is considered dead (the operator
/// pings every 15 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// Where the control channel is and who this pod is.
#[derive(Clone)]
pub struct RemoteSettings {
    /// `https://host:port[/prefix]` of the operator's control port (`http://` only with
    /// `allow_plaintext`).
    pub url: String,
    /// File holding the bearer token; read again before every connection so a rotated
    /// Secret is picked up. `None` sends no `Authorization` header.
    pub token_file: Option<PathBuf>,
    /// Folder of the persisted snapshot.
    pub state_dir: PathBuf,
    /// Reported in the stream request and in acks.
    pub pod: String,
    /// PEM CA bundle the operator's certificate must chain to (required for `https://`).
    pub ca_file: Option<PathBuf>,
    /// The name the operator's certificate must carry, instead of the URL's host.
    pub tls_server_name: Option<String>,
    /// Accept an `http://` URL (local testing only: snapshots carry provider keys).
    pub allow_plaintext: bool,
}

impl std::fmt::Debug for RemoteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSettings")
            .field("url", &self.url)
            .field("state_dir", &self.state_dir)
            .field("pod", &self.pod)
            .field("ca_file", &self.ca_file)
            .field("tls_server_name", &self.tls_server_name)
            .field("allow_plaintext", &self.allow_plaintext)
            .finish_non_exhaustive()
    }
}

/// Checks the URL and the TLS settings (an `https://` URL with a CA file, or `http://` only
/// when plain HTTP is allowed) without connecting or reading files.
pub fn check(settings: &RemoteSettings) -> Result<(), String> {
    client::Target::new(settings).map(|_| ())
}

/// Why an envelope was not applied (sent back in the ack's `error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "snapshot IR version {got} is not supported by this proxy (it reads IR version {expected}); keeping version {serving}"
    )]
    IrVersion {
        got: u32,
        expected: u32,
        serving: u64,
    },
}

/// The configuration an envelope describes, or why this proxy cannot serve it.
/// `serving` is the version kept when it is refused.
pub fn envelope_config(env: &SnapshotEnvelope, serving: u64) -> Result<ActiveConfig, Refusal> {
    if env.snapshot.ir_version != IR_VERSION {
        return Err(Refusal::IrVersion {
            got: env.snapshot.ir_version,
            expected: IR_VERSION,
            serving,
        });
    }
    let credentials = env
        .snapshot
        .providers
        .iter()
        .map(|p| credential(p.credential.as_ref(), env.credentials.get(&p.name)))
        .collect();
    // Client keys arrive as hashes; an entry this proxy cannot read is left out (and named).
    let (keys, problems) = crate::auth::from_client_keys(&env.client_keys);
    for problem in &problems {
        tracing::warn!(%problem, "client key from the operator left out");
    }
    Ok(ActiveConfig {
        version: env.version,
        snapshot: env.snapshot.clone(),
        credentials,
        keys,
        // A shadow of an IR version this proxy does not know is left out, never the live one.
        shadow: env
            .shadow
            .clone()
            .filter(|s| s.ir_version == IR_VERSION)
            .map(Arc::new),
    })
}

/// Present in the envelope → resolved; referenced but absent → missing (an `env` reference
/// may still be satisfied by the proxy's own environment); no reference → not configured.
fn credential(reference: Option<&Credential>, sent: Option<&String>) -> CredentialState {
    if let Some(key) = sent.map(|k| k.trim()).filter(|k| !k.is_empty()) {
        return CredentialState::Resolved(ApiKey::new(key));
    }
    match reference {
        None => CredentialState::NotConfigured,
        Some(Credential::Env { var }) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => CredentialState::Resolved(ApiKey::new(v.trim())),
            _ => CredentialState::Missing {
                reason: format!(
                    "the operator sent no key and environment variable `{var}` is not set"
                ),
            },
        },
        Some(Credential::Secret {
            namespace,
            name,
            key,
        }) => {
            let shown = match namespace {
                Some(ns) => format!("{ns}/{name}"),
                None => name.clone(),
            };
            CredentialState::Missing {
                reason: format!("the operator could not resolve key `{key}` of secret `{shown}`"),
            }
        }
    }
}

/// The configuration to start with: the persisted snapshot when there is a usable one,
/// otherwise [`ActiveConfig::empty`] (not ready until the operator sends one).
pub fn initial(settings: &RemoteSettings) -> ActiveConfig {
    match load_persisted(&settings.state_dir) {
        Ok(Some(env)) => match envelope_config(&env, 0) {
            Ok(active) => {
                tracing::info!(
                    version = active.version,
                    hash = %active.snapshot.hash,
                    routes = active.snapshot.routes.len(),
                    "serving the persisted snapshot until the control plane answers"
                );
                active
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the persisted snapshot");
                ActiveConfig::empty()
            }
        },
        Ok(None) => {
            tracing::info!("no persisted snapshot; not ready until the control plane sends one");
            ActiveConfig::empty()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the persisted snapshot; waiting for the control plane");
            ActiveConfig::empty()
        }
    }
}

/// How often a pod reports its budget usage to the operator (`POST /v1/usage`).
pub const USAGE_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the usage reporter on its own thread: every [`USAGE_INTERVAL`], while the served
/// snapshot has budgets, the numbers of `GET /admin/budgets` go to the operator. Failures are
/// logged at debug level (an older operator answers 404) and retried at the next tick.
pub fn spawn_usage_reporter(
    settings: RemoteSettings,
    handle: Arc<ConfigHandle>,
    quota: Arc<crate::quota::Quota>,
    shadow: Arc<crate::shadow::Shadow>,
) -> std::io::Result<()> {
    let target = client::Target::new(&settings)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("usage-reporter".to_string())
        .spawn(move || {
            runtime.block_on(client::report_usage(
                target, settings, handle, quota, shadow,
            ));
        })?;
    Ok(())
}

/// Starts the control-channel client on its own thread (a small tokio runtime, apart from
/// pingora's). It runs for the life of the process. With `telemetry`, each snapshot it
/// receives is recorded as an apply span, in the trace of the operator's publish span.
pub fn spawn_control_client(
    settings: RemoteSettings,
    handle: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
) -> std::io::Result<()> {
    let target = client::Target::new(&settings)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    metrics.set_snapshot_version(handle.current().version);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("control-channel".to_string())
        .spawn(move || {
            runtime.block_on(client::run(target, settings, handle, metrics, telemetry));
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn envelope(version: u64) -> SnapshotEnvelope {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
        let mut snapshot = crate::config::load_dir(&dir, 1)
            .expect("the quickstart loads")
            .snapshot;
        snapshot.providers[0].credential = Some(Credential::Secret {
            namespace: Some("ml".into()),
            name: "keys".into(),
            key: "openai".into(),
        });
        snapshot.providers[1].credential = Some(Credential::Secret {
            namespace: None,
            name: "keys".into(),
            key: "other".into(),
        });
        let mut credentials = BTreeMap::new();
        credentials.insert(snapshot.providers[0].name.clone(), "sk-1\n".to_string());
        SnapshotEnvelope {
            version,
            snapshot,
            credentials,
            client_keys: vec![
                switchyard_crds::client_keys::entry("alpha", b"{key: sk-alpha, team: t}")
                    .expect("entry"),
            ],
            traceparent: None,
            shadow: None,
        }
    }

    #[test]
    fn credentials_map_per_provider() {
        let env = envelope(7);
        let active = envelope_config(&env, 0).expect("applies");
        assert_eq!(active.version, 7);
        assert_eq!(
            active.credential(0),
            &CredentialState::Resolved(ApiKey::new("sk-1"))
        );
        assert_eq!(
            active.credential(1).describe(),
            "missing: the operator could not resolve key `other` of secret `keys`"
        );
        for i in 2..active.snapshot.providers.len() {
            assert_eq!(active.credential(i), &CredentialState::NotConfigured);
        }
        let id = crate::auth::authenticate(&active.keys, Some("sk-alpha"), None, 0).expect("key");
        assert_eq!((id.key.as_str(), id.team.as_deref()), ("alpha", Some("t")));
    }

    #[test]
    fn startup_serves_a_usable_persisted_snapshot_only() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let settings = RemoteSettings {
            url: "https://op:8090".into(),
            token_file: None,
            state_dir: dir.path().join("state"),
            pod: "p".into(),
            ca_file: None,
            tls_server_name: None,
            allow_plaintext: false,
        };
        assert!(!initial(&settings).is_loaded(), "nothing persisted");
        persist(&settings.state_dir, &envelope(5))?;
        let active = initial(&settings);
        assert_eq!(active.version, 5);
        assert!(active.is_loaded());
        let mut refused = envelope(6);
        refused.snapshot.ir_version = IR_VERSION + 1;
        persist(&settings.state_dir, &refused)?;
        assert!(!initial(&settings).is_loaded(), "unknown IR version");
        std::fs::write(settings.state_dir.join(STATE_FILE), "{\"version\": 1")?;
        assert!(!initial(&settings).is_loaded(), "corrupt file");
        Ok(())
    }

    #[test]
    fn unknown_ir_version_is_refused() {
        let mut env = envelope(3);
        env.snapshot.ir_version = IR_VERSION + 1;
        let err = envelope_config(&env, 2).expect_err("refused");
        assert!(err.to_string().contains("keeping version 2"), "{err}");
    }
}
