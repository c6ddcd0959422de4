//! The Redis store: the same reserve rule as [`super::store::reserve_in`] in one Lua script
//! (atomic on the server, so replicas never race between check and charge), settlement as
//! `INCRBY` of the difference, and window-aligned keys that expire after their window.
//!
//! Every call is bounded by [`TIMEOUT`]; after a failure Redis is skipped for
//! [`BACKOFF`] and then tried again (the connection manager reconnects in the background).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use super::store::{CounterOp, Reserved};

/// Longest a request waits for Redis.
pub const TIMEOUT: Duration = Duration::from_millis(100);
/// How long Redis is skipped after a failure.
pub const BACKOFF: Duration = Duration::from_millis(500);

const RESERVE: &str = r"
local n = #KEYS
local before = {}
for i = 1, n do
  local v = tonumber(redis.call('GET', KEYS[i]) or '0')
  before[i] = v
  local limit = tonumber(ARGV[3 * i - 1])
  if limit >= 0 and v >= limit then
    return {0, i - 1, v}
  end
end
for i = 1, n do
  redis.call('INCRBY', KEYS[i], ARGV[3 * i - 2])
  redis.call('EXPIREAT', KEYS[i], ARGV[3 * i])
end
local out = {1}
for i = 1, n do out[i + 1] = before[i] end
return out
";

const ADJUST: &str = r"
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])
  redis.call('EXPIREAT', KEYS[i], ARGV[2 * i])
end
return 1
";

/// Why Redis did not answer; never contains a key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisError {
    #[error("redis is unreachable ({0})")]
    Unreachable(String),
    #[error("redis timed out")]
    Timeout,
    #[error("redis is being skipped after a recent failure")]
    BackingOff,
    #[error("unexpected redis reply")]
    Reply,
}

/// A shared counter store in Redis.
pub struct RedisStore {
    conn: ConnectionManager,
    reserve: Script,
    adjust: Script,
    down_since: Mutex<Option<Instant>>,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects lazily to `url`; the connection's tasks run on a small runtime of their own.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        let client =
            redis::Client::open(url).map_err(|e| RedisError::Unreachable(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("switchyard-redis")
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
            reserve: Script::new(RESERVE),
            adjust: Script::new(ADJUST),
            down_since: Mutex::new(None),
            prefix: "switchyard:quota:".into(),
        })
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
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
                    tracing::info!("quota store: redis is reachable again");
                }
            }
            Err(RedisError::BackingOff) => {}
            Err(e) => {
                if down.is_none() {
                    tracing::warn!(error = %e, "quota store: redis failed");
                }
                *down = Some(Instant::now());
            }
        }
        r
    }

    async fn call(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<i64>,
    ) -> Result<Value, RedisError> {
        self.check_backoff()?;
        let mut inv = script.prepare_invoke();
        for k in &keys {
            inv.key(self.key(k));
        }
        for a in &args {
            inv.arg(*a);
        }
        let mut conn = self.conn.clone();
        let r = match tokio::time::timeout(TIMEOUT, inv.invoke_async::<Value>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisError::Unreachable(e.category().to_string())),
            Err(_) => Err(RedisError::Timeout),
        };
        self.record(r)
    }

    pub async fn reserve(&self, ops: &[CounterOp]) -> Result<Reserved, RedisError> {
        let keys = ops.iter().map(|o| o.key.clone()).collect();
        let args = ops
            .iter()
            .flat_map(|o| [o.amount, o.limit.unwrap_or(-1), o.expire_at as i64])
            .collect();
        let v = self.call(&self.reserve, keys, args).await?;
        let Value::Array(items) = v else {
            return Err(RedisError::Reply);
        };
        let ints: Vec<i64> = items
            .iter()
            .map(|x| match x {
                Value::Int(i) => Ok(*i),
                _ => Err(RedisError::Reply),
            })
            .collect::<Result<_, _>>()?;
        match ints.split_first() {
            Some((1, before)) if before.len() == ops.len() => {
                Ok(Reserved::Admitted(before.to_vec()))
            }
            Some((0, [index, value])) => Ok(Reserved::Exhausted {
                index: usize::try_from(*index).map_err(|_| RedisError::Reply)?,
                value: *value,
            }),
            _ => Err(RedisError::Reply),
        }
    }

    pub async fn adjust(&self, deltas: &[(String, i64, u64)]) -> Result<(), RedisError> {
        let keys = deltas.iter().map(|d| d.0.clone()).collect();
        let args = deltas.iter().flat_map(|d| [d.1, d.2 as i64]).collect();
        self.call(&self.adjust, keys, args).await.map(|_| ())
    }

    /// The counter keys (without the prefix) that start with `budget|`, across every
    /// replica: a bounded `SCAN`, at most [`TIMEOUT`] and 10,000 keys.
    pub async fn keys_of(&self, budget: &str) -> Result<Vec<String>, RedisError> {
        self.check_backoff()?;
        let pattern = format!("{}{}|*", self.prefix, glob_escape(budget));
        let mut conn = self.conn.clone();
        let scan = async {
            let mut out = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await?;
                out.extend(
                    keys.into_iter()
                        .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned)),
                );
                if next == 0 || out.len() >= 10_000 {
                    return Ok::<_, redis::RedisError>(out);
                }
                cursor = next;
            }
        };
        let r = match tokio::time::timeout(TIMEOUT, scan).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisError::Unreachable(e.category().to_string())),
            Err(_) => Err(RedisError::Timeout),
        };
        self.record(r)
    }

    pub async fn get(&self, keys: &[String]) -> Result<Vec<i64>, RedisError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.check_backoff()?;
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(self.key(k));
        }
        let mut conn = self.conn.clone();
        let r = match tokio::time::timeout(TIMEOUT, cmd.query_async::<Vec<Option<i64>>>(&mut conn))
            .await
        {
            Ok(Ok(v)) => Ok(v.into_iter().map(|x| x.unwrap_or(0)).collect()),
            Ok(Err(e)) => Err(RedisError::Unreachable(e.category().to_string())),
            Err(_) => Err(RedisError::Timeout),
        };
        self.record(r)
    }
}

/// `s` with Redis glob characters escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
