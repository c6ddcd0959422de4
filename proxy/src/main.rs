//! `switchyard-proxy`: parses the command line, starts logging, runs the server.

use anyhow::Context;
use clap::Parser;
use switchyard_proxy::settings::Settings;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    settings.validate().context("invalid settings")?;
    switchyard_proxy::server::run(&settings).context("switchyard-proxy failed")?;
    Ok(())
}
