//! `switchyard-mock`: a fake LLM provider over real HTTP, for end-to-end and
//! fault-injection tests of the gateway.
//!
//! ```text
//!  request ─▶ server (accept loop, per-connection control)
//!               ├─ /_mock/*  ─▶ script::State (fault queue, default, behaviour, request log)
//!               └─ /v1/*     ─▶ fault chosen (header › queue › default)
//!                               ─▶ openai | anthropic | gemini (pure: bytes ─▶ Reply,
//!                                  words from text, tool calls from tool)
//!                               ─▶ body (timing + body faults as Steps) ─▶ wire
//! ```
//!
//! Start one in process with [`MockServer::start`], or run the `switchyard-mock` binary.
//! Everything generated is a function of the seed and the request, so runs repeat exactly.

pub mod anthropic;
pub mod body;
pub mod config;
pub mod fault;
pub mod gemini;
pub mod openai;
pub mod prompt_cache;
pub mod reply;
pub mod responses;
pub mod script;
pub mod server;
pub mod text;
pub mod tool;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{Args, Behaviour, Config};
pub use fault::{Fault, FaultSpec};
pub use script::{RecordedRequest, Script, State};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read.
    #[error("cannot read config file `{}`: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("invalid config file `{}`: {message}", path.display())]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the address line or waiting for a signal failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A running mock server. Dropping it stops the server and closes its connections.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl MockServer {
    /// Bind `config.listen` and serve on a task of the current tokio runtime.
    pub async fn start(config: Config) -> Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let state = Arc::new(State::new(config));
        let task = tokio::spawn(server::serve(listener, Arc::clone(&state)));
        Ok(Self { addr, state, task })
    }

    /// The bound address (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL without `/v1`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The scriptable state, for tests in the same process: queue faults, read the log.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Stop serving and close every connection.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Run a server until Ctrl-C or SIGTERM, printing `listening on ADDR` as the first line of
/// stdout.
pub async fn run(config: Config) -> Result<()> {
    let server = MockServer::start(config).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", server.addr())?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(addr = %server.addr(), name = %server.state().config().name, "mock provider ready");
    shutdown_signal().await?;
    tracing::info!("shutting down");
    Ok(())
}

#[cfg(unix)]
async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
