//! Standalone configuration: a folder of YAML documents compiled into the active snapshot,
//! swapped atomically when the folder changes.
//!
//! ```text
//!  DIR ──load_dir──▶ ActiveConfig { version, snapshot, credentials } ──swap──▶ ConfigHandle
//!   ▲                  (compile + resolve each provider's key)                   │ current()
//!   └──── spawn_watcher: poll, debounce, reload; a bad edit keeps the last good ◀┘ (lock-free)
//! ```
//!
//! A provider whose key cannot be found is not a load failure: its [`CredentialState`] is
//! `Missing` and the request path fails over to other providers. Key values never appear in
//! errors, logs or `Debug` output ([`ApiKey`] prints `[redacted]`).

mod credentials;
pub mod remote;
mod watch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use switchyard_crds::LoadErrors;

pub use watch::{DEBOUNCE, POLL_INTERVAL, spawn_watcher};

/// The configuration the proxy serves: a compiled snapshot and the provider keys it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveConfig {
    /// Standalone: 1 for the first load, +1 per successful swap. Control-plane mode: the
    /// operator's snapshot version. 0 only in [`ActiveConfig::empty`].
    pub version: u64,
    pub snapshot: switchyard_dsl::Snapshot,
    /// One per provider, indexed like `snapshot.providers`.
    pub credentials: Vec<CredentialState>,
    /// Client keys (hashes only) from Secrets labelled `switchyard.dev/client-keys`.
    pub keys: crate::auth::KeyTable,
    /// Control-plane mode: the snapshot with the `mode: Shadow` RoutePolicies promoted, decided
    /// beside the live one for every request (see [`crate::shadow`]).
    pub shadow: Option<Arc<switchyard_dsl::Snapshot>>,
}

impl ActiveConfig {
    /// No configuration yet (version 0, no routes): what a proxy in control-plane mode serves
    /// before its first snapshot arrives. `/readyz` answers 503 while it is in force.
    pub fn empty() -> Self {
        Self {
            version: 0,
            snapshot: switchyard_dsl::Snapshot::new(Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            credentials: Vec::new(),
            keys: crate::auth::KeyTable::default(),
            shadow: None,
        }
    }

    /// Whether a configuration has been loaded (false only for [`ActiveConfig::empty`]).
    pub fn is_loaded(&self) -> bool {
        self.version > 0
    }

    /// The credential of `snapshot.providers[index]`.
    pub fn credential(&self, index: usize) -> &CredentialState {
        self.credentials
            .get(index)
            .unwrap_or(&CredentialState::NotConfigured)
    }
}

/// Whether a provider's API key is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialState {
    /// The LLMProvider names no credentials (mock providers, local servers).
    NotConfigured,
    Resolved(ApiKey),
    /// Named but not found; `reason` says what is missing, never a value.
    Missing {
        reason: String,
    },
}

impl CredentialState {
    /// `resolved`, `missing: <reason>` or `none`, as the admin view shows it.
    pub fn describe(&self) -> String {
        match self {
            Self::NotConfigured => "none".to_string(),
            Self::Resolved(_) => "resolved".to_string(),
            Self::Missing { reason } => format!("missing: {reason}"),
        }
    }
}

/// A provider API key. `Debug` and `Display` print `[redacted]`; call [`ApiKey::expose`]
/// only where the key goes onto the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The active configuration, shared by every request and replaced atomically.
pub struct ConfigHandle {
    inner: ArcSwap<ActiveConfig>,
}

impl fmt::Debug for ConfigHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.inner.load();
        f.debug_struct("ConfigHandle")
            .field("version", &current.version)
            .field("hash", &current.snapshot.hash)
            .finish()
    }
}

impl ConfigHandle {
    pub fn new(initial: ActiveConfig) -> Self {
        Self {
            inner: ArcSwap::from_pointee(initial),
        }
    }

    /// The configuration now in force. Lock-free; hold the `Arc` for the whole request so
    /// that one request sees one snapshot.
    pub fn current(&self) -> Arc<ActiveConfig> {
        self.inner.load_full()
    }

    /// Replaces the configuration atomically; requests in flight keep the one they loaded.
    pub fn swap(&self, next: ActiveConfig) {
        self.inner.store(Arc::new(next));
    }
}

/// Why a configuration folder could not be loaded. `Display` is what a person needs to fix it:
/// every problem with its `file:line:column` and a `help` line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// YAML, schema or LLMProvider problems.
    #[error("{0}")]
    Load(LoadErrors),
    /// Policy compile errors, rendered with caret excerpts (warnings included).
    #[error("{rendered}")]
    Policy { rendered: String, errors: usize },
    #[error(
        "{}: no LLMProvider, RoutePolicy or Budget documents found\n  = help: put the YAML you would `kubectl apply` (`*.yaml` / `*.yml`) in this folder",
        .0.display()
    )]
    Empty(PathBuf),
    /// A reload that would drop every route while the configuration in force has some: an
    /// editor that truncates a file before writing it, or a deleted routes file. Refused like
    /// a folder with no documents at all; the last good configuration keeps serving.
    #[error(
        "the folder now has no routes, the configuration being served has {serving}; every model would answer 404\n  = help: restore the RoutePolicy documents (an editor may still be writing the file); to run with no routes on purpose, restart the proxy"
    )]
    NoRoutes { serving: usize },
    /// The compiler panicked (a bug); the watcher reports it instead of dying.
    #[error("the policy compiler failed unexpectedly; this is a bug, please report it")]
    Panicked,
}

/// Loads and compiles every document under `dir` and resolves provider credentials (Secret
/// documents in the folder, or the process environment). `version` is stamped on the result.
pub fn load_dir(dir: &Path, version: u64) -> Result<ActiveConfig, ConfigError> {
    let config = switchyard_crds::load_paths(&[dir]).map_err(ConfigError::Load)?;
    for skipped in &config.skipped {
        tracing::warn!(file = %skipped.file, problem = %skipped, "config file skipped");
    }
    if config.providers.is_empty() && config.route_policies.is_empty() && config.budgets.is_empty()
    {
        return Err(ConfigError::Empty(dir.to_path_buf()));
    }
    let compiled = switchyard_crds::compile(&config).map_err(ConfigError::Load)?;
    let Some(snapshot) = compiled.snapshot else {
        let sources = switchyard_crds::sources(&config);
        return Err(ConfigError::Policy {
            rendered: switchyard_dsl::render_all(&compiled.diagnostics, &sources),
            errors: compiled.diagnostics.iter().filter(|d| d.is_error()).count(),
        });
    };
    if !compiled.diagnostics.is_empty() {
        let sources = switchyard_crds::sources(&config);
        tracing::warn!(
            dir = %dir.display(),
            diagnostics = %switchyard_dsl::render_all(&compiled.diagnostics, &sources),
            "policy warnings"
        );
    }
    let credentials: Vec<CredentialState> = snapshot
        .providers
        .iter()
        .map(|p| credentials::resolve(&config, p.credential.as_ref(), |var| std::env::var(var)))
        .collect();
    for (provider, state) in snapshot.providers.iter().zip(&credentials) {
        if let CredentialState::Missing { reason } = state {
            tracing::warn!(
                provider = %provider.name,
                reason = %reason,
                "provider credential missing; requests fail over to other providers"
            );
        }
    }
    let (keys, problems) = crate::auth::from_secrets(&config);
    for problem in &problems {
        tracing::warn!(%problem, "client key left out");
    }
    // `mode: Shadow` RoutePolicies: decided beside the live ones, never served. One that does
    // not compile leaves the live configuration alone.
    let shadow = match switchyard_crds::compile_shadow(&config) {
        Some(Ok(c)) if c.snapshot.is_some() => c.snapshot.map(Arc::new),
        Some(Ok(c)) => {
            let sources = switchyard_crds::shadow_sources(&config).unwrap_or_default();
            tracing::warn!(
                dir = %dir.display(),
                diagnostics = %switchyard_dsl::render_all(&c.diagnostics, &sources),
                "shadow policies do not compile; not evaluated"
            );
            None
        }
        _ => None,
    };
    Ok(ActiveConfig {
        version,
        snapshot,
        credentials,
        keys,
        shadow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_is_redacted() {
        let key = ApiKey::new("sk-secret-value");
        assert_eq!(format!("{key:?}"), "[redacted]");
        assert_eq!(format!("{key}"), "[redacted]");
        let state = CredentialState::Resolved(key.clone());
        assert!(!format!("{state:?}").contains("sk-secret"));
        assert_eq!(key.expose(), "sk-secret-value");
        assert_eq!(state.describe(), "resolved");
    }
}
