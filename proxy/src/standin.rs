//! Private stand-ins for the config, metrics and admin modules another engineer is writing;
//! the rest of the crate reaches them only through `crate::cfg`, so switching is one line.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

/// A compiled snapshot with its resolved credentials.
#[derive(Debug)]
pub struct ActiveConfig {
    pub version: u64,
    pub snapshot: switchyard_dsl::Snapshot,
    pub credentials: Vec<CredentialState>,
}

/// Whether a provider's key could be resolved.
#[derive(Debug)]
pub enum CredentialState {
    NotConfigured,
    Resolved(ApiKey),
    Missing { reason: String },
}

/// A provider API key; never printed.
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The active configuration behind an atomic pointer.
#[derive(Debug)]
pub struct ConfigHandle(ArcSwap<ActiveConfig>);

impl ConfigHandle {
    pub fn new(initial: ActiveConfig) -> Self {
        Self(ArcSwap::from_pointee(initial))
    }
    pub fn current(&self) -> Arc<ActiveConfig> {
        self.0.load_full()
    }
    pub fn swap(&self, next: ActiveConfig) {
        self.0.store(Arc::new(next));
    }
}

/// Metrics sink (no-op until the real one lands).
#[derive(Debug, Default)]
pub struct Metrics;

impl Metrics {
    pub fn new() -> Self {
        Self
    }
    pub fn request_finished(
        &self,
        _route: &str,
        _provider: &str,
        _model: &str,
        _status: u16,
        _duration: Duration,
        _ttft: Option<Duration>,
    ) {
    }
    pub fn tokens(&self, _provider: &str, _model: &str, _input: u64, _output: u64) {}
    pub fn upstream_attempt(&self, _route: &str, _provider: &str, _outcome: &str) {}
    pub fn stream_started(&self) {}
    pub fn stream_finished(&self) {}
}

/// Loading a folder is the config module's job; until it lands the binary cannot start.
pub fn load_dir(dir: &std::path::Path, _version: u64) -> Result<ActiveConfig, String> {
    Err(format!(
        "cannot load {}: the standalone config loader is not built yet",
        dir.display()
    ))
}
