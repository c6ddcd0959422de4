//! `switchyard-proxy`: parses the command line, starts logging, runs the server.

use anyhow::Context;
use switchyard_proxy::settings::Settings;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's allocator: the request path allocates and frees many small
/// buffers across threads, where glibc's malloc/free took an eighth of the CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let settings: Settings = switchyard_build_info::parse();
    // Log lines (one JSON access-log line per request) are written in batches by a background
    // thread, so a slow stderr never stalls the request path and a request costs no write(2).
    // Not lossy: when the buffer fills, callers wait rather than drop lines. The guard writes
    // out what is left when `main` returns.
    let (writer, _flush_on_exit) = switchyard_proxy::log_sink::batched(std::io::stderr())
        .context("starting the log writer")?;
    switchyard_proxy::access_log::install(&writer);
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
