//! The `switchyard-mock` binary: parse flags, start logging to stderr, run the server.

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: switchyard_mock::Args = switchyard_build_info::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = args.into_config()?;
    switchyard_mock::run(config).await?;
    Ok(())
}
