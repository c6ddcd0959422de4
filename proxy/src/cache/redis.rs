//! The shared store: `GET` and `SET key value PX ttl` in Redis under `switchyard:cache:`,
//! the entry as JSON, through a [`RedisLink`] (bounded in time, skipped for a while after a
//! failure). Callers turn every error into a miss: the cache never fails a request.

use std::time::Duration;

use super::entry::Entry;
use crate::redis_link::{LinkError, RedisLink};

/// Why Redis did not answer; never contains a key or content.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("the stored entry could not be read")]
    Corrupt,
}

/// Entries in Redis, shared by every replica pointed at it.
#[derive(Debug)]
pub struct RedisStore {
    link: RedisLink,
}

fn key(k: &str) -> String {
    format!("switchyard:cache:{k}")
}

impl RedisStore {
    /// Connects lazily to `url`.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Ok(Self {
            link: RedisLink::new(url, "response cache", "switchyard-cache-redis")?,
        })
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, RedisError> {
        let v = self
            .link
            .run(|mut conn| async move { cmd.query_async::<T>(&mut conn).await })
            .await?;
        Ok(v)
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
