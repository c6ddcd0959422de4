//! The Redis store: the same reserve rule as [`super::store::reserve_in`] in one Lua script
//! (atomic on the server, so replicas never race between check and charge), settlement as
//! `INCRBY` of the difference, and window-aligned keys that expire after their window.
//!
//! Every call goes through a [`RedisLink`]: bounded in time, skipped for a while after a
//! failure.

use redis::{Script, Value};

use super::store::{CounterOp, Reserved};
use crate::redis_link::{LinkError, RedisLink};

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
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("unexpected redis reply")]
    Reply,
}

/// A shared counter store in Redis.
pub struct RedisStore {
    link: RedisLink,
    reserve: Script,
    adjust: Script,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects lazily to `url`.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Ok(Self {
            link: RedisLink::new(url, "quota store", "switchyard-redis")?,
            reserve: Script::new(RESERVE),
            adjust: Script::new(ADJUST),
            prefix: "switchyard:quota:".into(),
        })
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    async fn call(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<i64>,
    ) -> Result<Value, RedisError> {
        let mut inv = script.prepare_invoke();
        for k in &keys {
            inv.key(self.key(k));
        }
        for a in &args {
            inv.arg(*a);
        }
        let v = self
            .link
            .run(|mut conn| async move { inv.invoke_async::<Value>(&mut conn).await })
            .await?;
        Ok(v)
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
    /// replica: a bounded `SCAN`, at most [`TIMEOUT`](crate::redis_link::TIMEOUT) and 10,000
    /// keys.
    pub async fn keys_of(&self, budget: &str) -> Result<Vec<String>, RedisError> {
        let pattern = format!("{}{}|*", self.prefix, glob_escape(budget));
        let scan = |mut conn: redis::aio::ConnectionManager| async move {
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
        Ok(self.link.run(scan).await?)
    }

    pub async fn get(&self, keys: &[String]) -> Result<Vec<i64>, RedisError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(self.key(k));
        }
        let values = self
            .link
            .run(|mut conn| async move { cmd.query_async::<Vec<Option<i64>>>(&mut conn).await })
            .await?;
        Ok(values.into_iter().map(|x| x.unwrap_or(0)).collect())
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
