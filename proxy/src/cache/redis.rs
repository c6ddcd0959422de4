//! The shared store: `GET` and `SET key value PX ttl` in Redis under `switchyard:cache:`,
//! the entry as JSON. Every call is bounded by [`TIMEOUT`]; after a failure Redis is skipped
//! for [`BACKOFF`] (the connection manager reconnects in the background). Callers turn every
//! error into a miss: the cache never fails a request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::entry::Entry;

/// Longest a request waits for Redis: a hit must stay much cheaper than a provider call.
pub const TIMEOUT: Duration = Duration::from_millis(100);
/// How long Redis is skipped after a failure.
pub const BACKOFF: Duration = Duration::from_millis(500);

/// Why Redis did not answer; never contains a key or content.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisError {
    #[error("redis is unreachable ({0})")]
    Unreachable(String),
    #[error("redis timed out")]
    Timeout,
    #[error("redis is being skipped after a recent failure")]
    BackingOff,
    #[error("the stored entry could not be read")]
    Corrupt,
}

/// Entries in Redis, shared by every replica pointed at it.
pub struct RedisStore {
    conn: ConnectionManager,
    down_since: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

fn key(k: &str) -> String {
    format!("switchyard:cache:{k}")
}

impl RedisStore {
    /// Connects lazily to `url`; the connection's tasks run on a small runtime of their own
    /// (pingora's per-thread runtimes come and go with the server).
    pub fn new(url: &str) -> Result<Self, RedisError> {
        let client =
            redis::Client::open(url).map_err(|e| RedisError::Unreachable(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("switchyard-cache-redis")
            .enable_all()
            .build()
            .map_err(|e| RedisError::Unreachable(e.to_string()))?;
        // The runtime lives as long as the process: dropping one inside async code panics.
        let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(runtime));
        let _guard = runtime.enter();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(BACKOFF);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RedisError::Unreachable(e.to_string()))?;
        Ok(Self {
            conn,
            down_since: Mutex::new(None),
        })
    }

    fn check_backoff(&self) -> Result<(), RedisError> {
        let down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        match *down {
            Some(t) if t.elapsed() < BACKOFF => Err(RedisError::BackingOff),
            _ => Ok(()),
        }
    }

    fn record<T>(&self, r: Result<T, RedisError>) -> Result<T, RedisError> {
        let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        match &r {
            Ok(_) => {
                if down.take().is_some() {
                    tracing::info!("response cache: redis is reachable again");
                }
            }
            Err(RedisError::BackingOff | RedisError::Corrupt) => {}
            Err(e) => {
                if down.is_none() {
                    tracing::warn!(error = %e, "response cache: redis failed; serving misses");
                }
                *down = Some(Instant::now());
            }
        }
        r
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, RedisError> {
        self.check_backoff()?;
        let mut conn = self.conn.clone();
        let r = match tokio::time::timeout(TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisError::Unreachable(e.category().to_string())),
            Err(_) => Err(RedisError::Timeout),
        };
        self.record(r)
    }

    pub async fn get(&self, k: &str) -> Result<Option<Entry>, RedisError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key(k));
        match self.run::<Option<Vec<u8>>>(cmd).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| RedisError::Corrupt),
        }
    }

    pub async fn put(&self, k: &str, entry: &Entry, ttl: Duration) -> Result<(), RedisError> {
        let value = serde_json::to_vec(entry).map_err(|_| RedisError::Corrupt)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key(k))
            .arg(value)
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        self.run::<()>(cmd).await
    }
}
