//! Process settings from the command line (and `SWITCHYARD_*` environment variables),
//! validated once at start-up. Routing never comes from here: it arrives as snapshots.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Ten mebibytes: the default request body limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// `switchyard-proxy`: an OpenAI-compatible LLM gateway.
///
/// Serves `POST /v1/chat/completions`, `POST /v1/responses`, `POST /v1/messages`,
/// `POST /v1/embeddings` and `GET /v1/models` on
/// `--listen`, routing every request through the policies found in `--config`. Prints
/// `listening on ADDR` and `admin listening on ADDR` on stdout once each port accepts
/// connections. SIGINT stops at once; SIGTERM drains for `--grace-period-seconds`.
#[derive(Debug, Clone, Parser)]
#[command(name = "switchyard-proxy", version, about, long_about)]
pub struct Settings {
    /// Standalone mode: a folder of YAML documents (LLMProvider, RoutePolicy, Budget,
    /// Secret) as you would `kubectl apply` them. Watched; a valid edit is swapped in
    /// atomically, an invalid one keeps the last good snapshot.
    /// Exactly one of `--config` and `--control-plane` is required.
    #[arg(
        long,
        value_name = "DIR",
        env = "SWITCHYARD_CONFIG",
        required_unless_present = "control_plane",
        conflicts_with = "control_plane"
    )]
    pub config: Option<PathBuf>,

    /// Kubernetes mode: the operator's control channel, `http://host:port`. Snapshots are
    /// pushed over it, applied atomically, acknowledged and persisted in `--state-dir`.
    #[arg(long, value_name = "URL", env = "SWITCHYARD_CONTROL_PLANE")]
    pub control_plane: Option<String>,

    /// File with the control channel's bearer token (the chart mounts it from a Secret).
    /// Read again on every reconnect. Ignored with `--config`.
    #[arg(long, value_name = "PATH", env = "SWITCHYARD_CONTROL_TOKEN_FILE")]
    pub control_token_file: Option<PathBuf>,

    /// Where the last applied snapshot is persisted (`snapshot.json`, mode 0600, holds
    /// provider keys) so that a restart without the operator still serves.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/switchyard",
        env = "SWITCHYARD_STATE_DIR"
    )]
    pub state_dir: PathBuf,

    /// This pod's name, reported to the operator (default: the host name).
    #[arg(long, value_name = "NAME", env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Address of the client API (OpenAI-compatible). Port 0 is not supported: pick a port.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "SWITCHYARD_LISTEN"
    )]
    pub listen: SocketAddr,

    /// Address of the admin API: /healthz, /readyz, /metrics, /admin/*.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9090",
        env = "SWITCHYARD_ADMIN_LISTEN"
    )]
    pub admin_listen: SocketAddr,

    /// Largest accepted request body in bytes; larger requests get 413.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Worker threads of the proxy service (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// On SIGTERM, seconds to keep accepting before closing listeners, and again at most
    /// to let in-flight requests finish. Keep it below the pod's termination grace period.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub grace_period_seconds: u64,

    /// Standalone mode: a second folder of YAML documents whose policies are decided beside
    /// the live ones for every request (decision only: never admitted, never sent upstream);
    /// `/admin/shadow` counts where they agree and where they would differ. Read at start.
    #[arg(
        long,
        value_name = "DIR",
        env = "SWITCHYARD_SHADOW",
        conflicts_with = "control_plane"
    )]
    pub shadow: Option<PathBuf>,

    /// Seed for weighted-split draws, for reproducible tests; random when absent.
    #[arg(long, value_name = "N", hide_short_help = true)]
    pub draw_seed: Option<u64>,

    /// Serve requests without a known client key as anonymous (local use only). Without
    /// it, `/v1/*` requests need `Authorization: Bearer KEY` with a key from a Secret
    /// labelled `switchyard.dev/client-keys: "true"`, and get 401 otherwise.
    #[arg(long, env = "SWITCHYARD_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,

    /// Keep budget counters in Redis (`redis://host:port/db`), shared by every replica.
    /// Without it they are kept in this process.
    #[arg(long, value_name = "URL", env = "SWITCHYARD_REDIS_URL")]
    pub redis_url: Option<String>,

    /// When Redis cannot be reached: `fail-open` counts in this process until it is back,
    /// `fail-closed` answers 503 to requests a budget applies to.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        default_value = "fail-open",
        env = "SWITCHYARD_REDIS_FAILURE"
    )]
    pub redis_failure: crate::quota::FailureMode,

    /// Output tokens reserved for a request that sets no `max_tokens`.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4096,
        env = "SWITCHYARD_DEFAULT_MAX_TOKENS"
    )]
    pub default_max_tokens: u64,

    /// Byte bound of the in-memory response cache (routes with `cache for`); the least
    /// useful entries are evicted past it.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = crate::cache::DEFAULT_MAX_BYTES,
        env = "SWITCHYARD_CACHE_MAX_BYTES"
    )]
    pub cache_max_bytes: u64,

    /// Keep the response cache in Redis (`redis://host:port/db`), shared by every replica,
    /// instead of in this process. Separate from `--redis-url` because cache entries are
    /// large and evictable (a Redis with `maxmemory-policy allkeys-lru` suits them) while
    /// budget counters must never be evicted. Redis trouble makes lookups misses.
    #[arg(long, value_name = "URL", env = "SWITCHYARD_CACHE_REDIS_URL")]
    pub cache_redis_url: Option<String>,

    /// Deadlines and caps of the client listener.
    #[command(flatten)]
    pub limits: crate::listener::ConnectionLimits,

    /// Bounds of the Responses API store (`previous_response_id`).
    #[command(flatten)]
    pub responses: crate::responses_store::StoreSettings,

    /// OpenTelemetry traces (OTLP), off unless an endpoint is set.
    #[command(flatten)]
    pub telemetry: crate::telemetry::TelemetrySettings,

    // -- Security in transit (control channel) and at the admin port.
    /// PEM file of the CA that signed the operator's control-channel certificate (`ca.crt` of
    /// the chart's TLS Secret). Required with an `https://` --control-plane; read again when
    /// it changes.
    #[arg(long, value_name = "PATH", env = "SWITCHYARD_CONTROL_CA_FILE")]
    pub control_ca_file: Option<PathBuf>,

    /// Verify the operator's certificate against this name instead of the host of the
    /// --control-plane URL.
    #[arg(long, value_name = "NAME", env = "SWITCHYARD_CONTROL_TLS_SERVER_NAME")]
    pub control_tls_server_name: Option<String>,

    /// Accept a plain `http://` --control-plane URL. For local testing only: snapshots carry
    /// provider API keys, which then cross the network in clear.
    #[arg(long, env = "SWITCHYARD_CONTROL_PLANE_INSECURE")]
    pub control_plane_insecure: bool,

    /// File with the token `/admin/*` then requires (`Authorization: Bearer TOKEN`), read at
    /// start. `/healthz`, `/readyz` and `/metrics` stay open. Without it `/admin/*` answers
    /// whoever reaches --admin-listen.
    #[arg(long, value_name = "PATH", env = "SWITCHYARD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
}

impl Settings {
    /// Worker threads, resolving the default.
    pub fn worker_threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
            .max(1)
    }

    /// The pod name sent to the operator: `--pod-name`, else the host name.
    pub fn pod(&self) -> String {
        self.pod_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
            })
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "switchyard-proxy".to_string())
    }

    /// The control-plane settings of `--control-plane` mode (`None` with `--config`).
    pub fn remote(&self) -> Option<crate::config::remote::RemoteSettings> {
        let url = self.control_plane.clone()?;
        Some(crate::config::remote::RemoteSettings {
            url,
            token_file: self.control_token_file.clone(),
            state_dir: self.state_dir.clone(),
            pod: self.pod(),
            ca_file: self.control_ca_file.clone(),
            tls_server_name: self.control_tls_server_name.clone(),
            allow_plaintext: self.control_plane_insecure,
        })
    }

    /// Checks what clap cannot: non-zero ports, a usable body limit, distinct addresses.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::Error::Settings(m));
        if self.listen.port() == 0 || self.admin_listen.port() == 0 {
            return bad("port 0 is not supported for --listen or --admin-listen".into());
        }
        if self.listen == self.admin_listen {
            return bad(format!(
                "--listen and --admin-listen are both {}",
                self.listen
            ));
        }
        if let Some(remote) = self.remote()
            && let Err(e) = crate::config::remote::check(&remote)
        {
            return bad(format!("--control-plane: {e}"));
        }
        if let Some(url) = &self.redis_url
            && redis::Client::open(url.as_str()).is_err()
        {
            return bad("--redis-url is not a valid redis:// URL".into());
        }
        if let Some(url) = &self.cache_redis_url
            && redis::Client::open(url.as_str()).is_err()
        {
            return bad("--cache-redis-url is not a valid redis:// URL".into());
        }
        if let Some(url) = &self.responses.responses_redis_url
            && redis::Client::open(url.as_str()).is_err()
        {
            return bad("--responses-redis-url is not a valid redis:// URL".into());
        }
        self.telemetry.exporter("switchyard-proxy")?;
        if self.max_body_bytes == 0 {
            return bad("--max-body-bytes must be at least 1".into());
        }
        let limits = &self.limits;
        if limits.max_buffered_body_bytes < self.max_body_bytes {
            return bad(format!(
                "--max-buffered-body-bytes ({}) is below --max-body-bytes ({}): a body the \
                 proxy accepts could never be held",
                limits.max_buffered_body_bytes, self.max_body_bytes
            ));
        }
        if [
            limits.header_timeout,
            limits.body_timeout,
            limits.idle_timeout,
        ]
        .contains(&Duration::ZERO)
            || limits.max_connections == 0
        {
            return bad(
                "--header-timeout, --body-timeout, --idle-timeout and --max-connections must be \
                 above zero"
                    .into(),
            );
        }
        Ok(())
    }

    /// Settings for tests and embedding: defaults with this config folder (anonymous
    /// clients allowed).
    pub fn with_config(config: PathBuf) -> Self {
        Self {
            config: Some(config),
            control_plane: None,
            control_token_file: None,
            state_dir: PathBuf::from("/var/lib/switchyard"),
            pod_name: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            threads: Some(1),
            grace_period_seconds: 1,
            shadow: None,
            draw_seed: None,
            allow_anonymous: true,
            redis_url: None,
            redis_failure: crate::quota::FailureMode::FailOpen,
            default_max_tokens: 4096,
            cache_max_bytes: crate::cache::DEFAULT_MAX_BYTES,
            cache_redis_url: None,
            limits: crate::listener::ConnectionLimits::default(),
            responses: crate::responses_store::StoreSettings::default(),
            telemetry: crate::telemetry::TelemetrySettings::default(),
            control_ca_file: None,
            control_tls_server_name: None,
            control_plane_insecure: false,
            admin_token_file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults() {
        let s = Settings::try_parse_from(["switchyard-proxy", "--config", "x"]).expect("parses");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.admin_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(s.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(s.grace_period_seconds, 5);
        s.validate().expect("valid");
    }

    #[test]
    fn exactly_one_of_config_and_control_plane() {
        let both = [
            "switchyard-proxy",
            "--config",
            "x",
            "--control-plane",
            "http://op:1",
        ];
        assert!(Settings::try_parse_from(both).is_err());
        let s = Settings::try_parse_from([
            "switchyard-proxy",
            "--control-plane",
            "https://op:8081",
            "--control-token-file",
            "/t",
            "--control-ca-file",
            "/ca.crt",
            "--pod-name",
            "p-1",
        ])
        .expect("parses");
        assert_eq!(s.config, None);
        assert_eq!(s.state_dir, PathBuf::from("/var/lib/switchyard"));
        assert_eq!(s.pod(), "p-1");
        s.validate().expect("valid");
    }

    #[test]
    fn the_control_plane_is_https_with_a_ca_unless_plaintext_is_allowed() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["switchyard-proxy"];
            args.extend_from_slice(extra);
            Settings::try_parse_from(args).expect("parses")
        };
        let plain = parse(&["--control-plane", "http://op:8090"]);
        let err = plain.validate().expect_err("plain refused").to_string();
        assert!(err.contains("--control-plane-insecure"), "{err}");
        parse(&[
            "--control-plane",
            "http://op:8090",
            "--control-plane-insecure",
        ])
        .validate()
        .expect("explicitly allowed");
        let err = parse(&["--control-plane", "https://op:8090"])
            .validate()
            .expect_err("no CA")
            .to_string();
        assert!(err.contains("--control-ca-file"), "{err}");
    }

    #[test]
    fn client_limits_that_could_never_serve_are_refused() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["switchyard-proxy", "--config", "x"];
            args.extend_from_slice(extra);
            Settings::try_parse_from(args).expect("parses")
        };
        parse(&[]).validate().expect("defaults are valid");
        assert!(
            parse(&[
                "--max-buffered-body-bytes",
                "1000",
                "--max-body-bytes",
                "2000"
            ])
            .validate()
            .is_err()
        );
        assert!(parse(&["--header-timeout", "0s"]).validate().is_err());
        assert!(parse(&["--max-connections", "0"]).validate().is_err());
        parse(&["--idle-timeout", "5s", "--max-connections", "10"])
            .validate()
            .expect("valid");
    }

    #[test]
    fn config_is_required_and_port_zero_rejected() {
        assert!(Settings::try_parse_from(["switchyard-proxy"]).is_err());
        let s = Settings::try_parse_from([
            "switchyard-proxy",
            "--config",
            "x",
            "--listen",
            "127.0.0.1:0",
        ])
        .expect("parses");
        assert!(s.validate().is_err());
    }
}
