//! `switchyard-operator`: parses flags, starts logging, calls [`switchyard_operator::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use switchyard_operator::Settings;
use switchyard_operator::leader::LeaseConfig;

/// Switchyard's Kubernetes operator.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
struct Args {
    /// OpenTelemetry traces (OTLP), off unless an endpoint is set.
    #[command(flatten)]
    otel: switchyard_operator::telemetry::OtelArgs,
    /// Watch only this namespace (default: all namespaces, compiled as one scope).
    #[arg(long)]
    namespace: Option<String>,
    /// Address of the control channel proxies connect to.
    #[arg(long, default_value = "0.0.0.0:8090")]
    control_listen: SocketAddr,
    /// File holding the control channel's bearer token.
    #[arg(long)]
    control_token_file: PathBuf,
    /// Serve the control channel over TLS with `DIR/tls.crt` and `DIR/tls.key` (the layout of
    /// a `kubernetes.io/tls` Secret, e.g. from cert-manager, mounted as a folder). The files
    /// are checked every 10 s and a changed, valid pair is served from then on. Required
    /// unless `--control-insecure`.
    #[arg(long, value_name = "DIR", required_unless_present = "control_insecure")]
    control_tls_dir: Option<PathBuf>,
    /// Serve the control channel as plain HTTP. For local testing only: snapshots carry
    /// provider API keys, which then cross the network in clear.
    #[arg(long, conflicts_with = "control_tls_dir")]
    control_insecure: bool,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8081")]
    admin_listen: SocketAddr,
    /// Run without leader election (one replica only).
    #[arg(long)]
    no_leader_election: bool,
    /// Name of the coordination.k8s.io/v1 Lease.
    #[arg(long, default_value = "switchyard-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else --namespace, else `default`).
    #[arg(long)]
    lease_namespace: Option<String>,
    /// Lease duration in seconds; the holder renews every third of it.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// This replica's identity (default: $POD_NAME, else the host name).
    #[arg(long)]
    identity: Option<String>,
    /// Seconds between `: ping` comments on idle control streams.
    #[arg(long, default_value_t = 15)]
    ping_interval: u64,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = switchyard_build_info::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }

    let tracer_provider =
        switchyard_operator::telemetry::init(&args.otel).map_err(anyhow::Error::msg)?;
    let token = std::fs::read_to_string(&args.control_token_file)
        .with_context(|| format!("cannot read {}", args.control_token_file.display()))?
        .trim()
        .to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "{} is empty: the control channel needs a token",
        args.control_token_file.display()
    );
    let identity = args
        .identity
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("switchyard-operator-{}", std::process::id()));
    let lease = (!args.no_leader_election).then(|| {
        let duration = Duration::from_secs(args.lease_duration.max(3));
        LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .or_else(|| args.namespace.clone())
                .unwrap_or_else(|| "default".into()),
            identity: identity.clone(),
            duration,
            renew_every: duration / 3,
        }
    });
    let settings = Settings {
        namespace: args.namespace,
        control_listen: args.control_listen,
        control_token: token,
        control_tls_dir: args.control_tls_dir,
        admin_listen: args.admin_listen,
        lease,
        identity,
        ping: Duration::from_secs(args.ping_interval.max(1)),
    };
    let result = switchyard_operator::run(settings).await;
    if let Some(provider) = tracer_provider {
        // Flushes what is queued; a dead collector only makes this fail.
        let _ = provider.shutdown();
    }
    result?;
    Ok(())
}
