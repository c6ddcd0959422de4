//! `switchyard-proxy`: parses the command line, starts logging, runs the server.

use anyhow::Context;
use switchyard_proxy::settings::Settings;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let settings: Settings = switchyard_build_info::parse();
    // Log lines (one JSON access-log line per request) are written by a background thread, so
    // a slow stderr never stalls the request path. Not lossy: when the buffer fills, callers
    // wait rather than drop lines. The guard flushes what is queued when `main` returns.
    let (writer, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_env_filter(
            EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    settings.validate().context("invalid settings")?;
    switchyard_proxy::server::run(&settings).context("switchyard-proxy failed")?;
    Ok(())
}
