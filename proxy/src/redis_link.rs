//! A Redis connection that never holds a request up, shared by the budget store and the
//! response cache: every call is bounded by [`TIMEOUT`], and after a failure Redis is skipped
//! for [`BACKOFF`] and then tried again (the connection manager reconnects in the background).
//! The connection's tasks run on a small runtime of their own, because pingora's per-thread
//! runtimes come and go with the server.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Longest a request waits for Redis.
pub const TIMEOUT: Duration = Duration::from_millis(100);
/// How long Redis is skipped after a failure.
pub const BACKOFF: Duration = Duration::from_millis(500);

/// Why Redis did not answer; never contains a key or a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    #[error("redis is unreachable ({0})")]
    Unreachable(String),
    #[error("redis timed out")]
    Timeout,
    #[error("redis is being skipped after a recent failure")]
    BackingOff,
}

/// One guarded connection; `user` names its owner in log lines.
pub struct RedisLink {
    conn: ConnectionManager,
    down_since: Mutex<Option<Instant>>,
    user: &'static str,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// Connects lazily to `url`; `thread` names the connection's runtime thread.
    pub fn new(url: &str, user: &'static str, thread: &str) -> Result<Self, LinkError> {
        let client = redis::Client::open(url).map_err(|e| LinkError::Unreachable(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(thread)
            .enable_all()
            .build()
            .map_err(|e| LinkError::Unreachable(e.to_string()))?;
        // The runtime lives as long as the process: dropping one inside async code panics.
        let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(runtime));
        let _guard = runtime.enter();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(BACKOFF);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| LinkError::Unreachable(e.to_string()))?;
        Ok(Self {
            conn,
            down_since: Mutex::new(None),
            user,
        })
    }

    /// Runs `call` on the connection within [`TIMEOUT`], unless Redis failed less than
    /// [`BACKOFF`] ago; a failure starts the back-off, a success after one ends it.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<T, LinkError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        {
            let down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
            if down.is_some_and(|t| t.elapsed() < BACKOFF) {
                return Err(LinkError::BackingOff);
            }
        }
        let r = match tokio::time::timeout(TIMEOUT, call(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(LinkError::Unreachable(e.category().to_string())),
            Err(_) => Err(LinkError::Timeout),
        };
        let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        match &r {
            Ok(_) => {
                if down.take().is_some() {
                    tracing::info!(user = self.user, "redis is reachable again");
                }
            }
            Err(e) => {
                if down.is_none() {
                    tracing::warn!(user = self.user, error = %e, "redis failed");
                }
                *down = Some(Instant::now());
            }
        }
        r
    }
}
