//! The gateway's memory of Responses API answers (`store` defaults to true there): for a
//! translated target, each stored response's input and output items, so that a follow-up's
//! `previous_response_id` expands into the whole conversation; for a native target, only
//! which target holds the response, so that the follow-up reaches it. Bounded in entries,
//! bytes and age; the oldest entries go first.
//!
//! With `--responses-redis-url` every answer kept is also written to Redis (with the TTL),
//! and an id this process does not hold is looked up there: a conversation can continue on
//! any replica. The write is awaited before the client reads the end of the answer, so a
//! follow-up sent after it finds the response wherever it lands. Redis trouble never fails a
//! request: the process's own memory still answers, and the error is counted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::redis_link::RedisLink;

/// What a chat-only target does with Responses tools it cannot offer the model (built-in
/// tools such as `web_search`, custom tools).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UnsupportedTools {
    /// Answer 400 naming the tool and the target.
    #[default]
    Refuse,
    /// Offer the model only the function tools; the answer's `tools` lists what was offered.
    Omit,
}

/// The Responses API's settings: the store's bounds and what chat-only targets do with
/// built-in tools, each a flag (and a `SWITCHYARD_*` variable).
#[derive(Debug, Clone, Args)]
pub struct StoreSettings {
    /// Most Responses API answers the gateway keeps for `previous_response_id` and
    /// `GET /v1/responses/{id}` (per proxy process); the oldest go first. 0 keeps none.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        env = "SWITCHYARD_RESPONSES_STORE_ENTRIES"
    )]
    pub responses_store_entries: usize,

    /// Byte bound of the kept Responses answers (their JSON size: input and output items of
    /// the whole conversation so far); the oldest go first past it.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 256 * 1024 * 1024,
        env = "SWITCHYARD_RESPONSES_STORE_BYTES"
    )]
    pub responses_store_bytes: usize,

    /// How long a kept Responses answer can be continued or read back.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration, env = "SWITCHYARD_RESPONSES_STORE_TTL")]
    pub responses_store_ttl: Duration,

    /// Also keep Responses API answers in Redis (`redis://host:port/db`) under
    /// `switchyard:responses:`, with the TTL above, so that `previous_response_id` and
    /// `GET /v1/responses/{id}` work on every replica. Separate from `--redis-url`: answers
    /// are large and may be evicted (`maxmemory-policy volatile-lru` suits them), budget
    /// counters must not be. Without it each replica knows only its own answers.
    #[arg(long, value_name = "URL", env = "SWITCHYARD_RESPONSES_REDIS_URL")]
    pub responses_redis_url: Option<String>,

    /// Responses requests with built-in tools (`web_search`, `file_search`, ...) or custom
    /// tools, on a target that speaks only chat completions: `refuse` answers 400 naming the
    /// tool and the target; `omit` offers the model the function tools only (the Codex CLI
    /// always sends `web_search`: `omit` lets it run on such targets).
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        default_value = "refuse",
        env = "SWITCHYARD_RESPONSES_UNSUPPORTED_TOOLS"
    )]
    pub responses_unsupported_tools: UnsupportedTools,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            responses_store_entries: 10_000,
            responses_store_bytes: 256 * 1024 * 1024,
            responses_store_ttl: Duration::from_secs(24 * 3600),
            responses_redis_url: None,
            responses_unsupported_tools: UnsupportedTools::Refuse,
        }
    }
}

/// What the gateway keeps of one response.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    /// Answered by a translated target: the conversation's items up to and including this
    /// response's output, and the response object for `GET`.
    Translated {
        items: Arc<Vec<Value>>,
        response: Arc<Value>,
    },
    /// Answered by a target that speaks the Responses API and keeps the state itself.
    Native {
        /// `provider/model`.
        target: String,
    },
}

#[derive(Debug)]
struct Entry {
    held: Held,
    /// The client key id that made it; others do not see it.
    owner: Option<String>,
    stored: Instant,
    size: usize,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Entry>,
    /// Ids in the order stored (ids already removed are skipped when met).
    order: VecDeque<(String, Instant)>,
    bytes: usize,
}

/// The bounded store, shared by every request of the process.
#[derive(Debug)]
pub struct ResponsesStore {
    settings: StoreSettings,
    inner: Mutex<Inner>,
    shared: Option<Shared>,
}

/// The Redis copy of the store, shared by every replica pointed at it.
#[derive(Debug)]
struct Shared {
    link: RedisLink,
    /// Redis calls that failed, by operation (`get`, `put`, `delete`).
    errors: IntCounterVec,
}

fn redis_key(id: &str) -> String {
    format!("switchyard:responses:{id}")
}

/// Marks `id` deleted, for replicas that still hold it in memory.
fn tombstone_key(id: &str) -> String {
    format!("switchyard:responses-deleted:{id}")
}

/// One entry as Redis keeps it (JSON).
#[derive(Debug, Deserialize)]
struct Record {
    owner: Option<String>,
    target: Option<String>,
    items: Option<Vec<Value>>,
    response: Option<Value>,
}

impl Record {
    fn encode(owner: Option<&str>, held: &Held) -> Vec<u8> {
        let v = match held {
            Held::Translated { items, response } => {
                json!({"owner": owner, "items": items.as_ref(), "response": response.as_ref()})
            }
            Held::Native { target } => json!({"owner": owner, "target": target}),
        };
        v.to_string().into_bytes()
    }

    fn held(self) -> Option<Held> {
        match (self.target, self.items, self.response) {
            (Some(target), None, None) => Some(Held::Native { target }),
            (None, Some(items), Some(response)) => Some(Held::Translated {
                items: Arc::new(items),
                response: Arc::new(response),
            }),
            _ => None,
        }
    }
}

impl Default for ResponsesStore {
    fn default() -> Self {
        Self::new(StoreSettings::default())
    }
}

fn size_of(held: &Held) -> usize {
    match held {
        Held::Translated { items, response } => {
            let items: usize = items.iter().map(|v| v.to_string().len()).sum();
            items + response.to_string().len() + 64
        }
        Held::Native { target } => target.len() + 64,
    }
}

impl ResponsesStore {
    /// A store in this process's memory only (whatever `responses_redis_url` says).
    pub fn new(settings: StoreSettings) -> Self {
        Self {
            settings,
            inner: Mutex::new(Inner::default()),
            shared: None,
        }
    }

    /// A store also kept in Redis when `settings.responses_redis_url` is set (connected
    /// lazily); its error counter is registered in `registry`.
    pub fn with_redis(
        settings: StoreSettings,
        registry: &Registry,
    ) -> Result<Self, crate::redis_link::LinkError> {
        let shared = match &settings.responses_redis_url {
            None => None,
            Some(url) => {
                let errors = IntCounterVec::new(
                    Opts::new(
                        "switchyard_responses_store_redis_errors_total",
                        "Redis calls of the Responses store that failed (the process's memory \
                         answered instead), by operation.",
                    ),
                    &["op"],
                )
                .expect("static metric definition is valid");
                let _ = registry.register(Box::new(errors.clone()));
                Some(Shared {
                    link: RedisLink::new(url, "responses store", "switchyard-responses-redis")?,
                    errors,
                })
            }
        };
        Ok(Self {
            shared,
            ..Self::new(settings)
        })
    }

    /// Whether answers are also written to Redis (then [`Self::share`] must be awaited).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Writes `held` to Redis under `id` (nothing without Redis, or past the byte bound).
    pub async fn share(&self, id: &str, owner: Option<&str>, held: &Held) {
        let Some(shared) = &self.shared else {
            return;
        };
        let value = Record::encode(owner, held);
        if value.len() > self.settings.responses_store_bytes {
            return;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(redis_key(id))
            .arg(value)
            .arg("PX")
            .arg(self.ttl_millis());
        let r = (shared.link)
            .run(|mut conn| async move { cmd.query_async::<()>(&mut conn).await })
            .await;
        if r.is_err() {
            shared.errors.with_label_values(&["put"]).inc();
        }
    }

    fn ttl_millis(&self) -> u64 {
        u64::try_from(self.settings.responses_store_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The response `id` as the client with key id `owner` may see it: from this process's
    /// memory unless another replica deleted it since, else from Redis (then remembered here
    /// too).
    pub async fn lookup(&self, id: &str, owner: Option<&str>) -> Option<Held> {
        if let Some(held) = self.get(id, owner) {
            let Some(shared) = &self.shared else {
                return Some(held);
            };
            let mut cmd = redis::cmd("EXISTS");
            cmd.arg(tombstone_key(id));
            let deleted = (shared.link)
                .run(|mut conn| async move { cmd.query_async::<bool>(&mut conn).await })
                .await;
            return match deleted {
                Ok(true) => {
                    self.remove(id, owner);
                    None
                }
                Ok(false) => Some(held),
                Err(_) => {
                    shared.errors.with_label_values(&["get"]).inc();
                    Some(held)
                }
            };
        }
        let shared = self.shared.as_ref()?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(redis_key(id));
        let found = (shared.link)
            .run(|mut conn| async move { cmd.query_async::<Option<Vec<u8>>>(&mut conn).await })
            .await;
        let bytes = match found {
            Ok(found) => found?,
            Err(_) => {
                shared.errors.with_label_values(&["get"]).inc();
                return None;
            }
        };
        let Ok(record) = serde_json::from_slice::<Record>(&bytes) else {
            tracing::warn!("responses store: an entry in Redis could not be read");
            return None;
        };
        if record.owner.as_deref() != owner {
            return None;
        }
        let held = record.held()?;
        self.put(id, owner, held.clone());
        Some(held)
    }

    /// Forgets `id` here and in Redis, where a tombstone tells the replicas that still hold
    /// it in memory; `false` when it was not there (for this owner).
    pub async fn forget(&self, id: &str, owner: Option<&str>) -> bool {
        if self.lookup(id, owner).await.is_none() {
            return false;
        }
        self.remove(id, owner);
        if let Some(shared) = &self.shared {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("DEL")
                .arg(redis_key(id))
                .ignore()
                .cmd("SET")
                .arg(tombstone_key(id))
                .arg(1)
                .arg("PX")
                .arg(self.ttl_millis())
                .ignore();
            let r = (shared.link)
                .run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
                .await;
            if r.is_err() {
                shared.errors.with_label_values(&["delete"]).inc();
            }
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `held` under `id` in this process; `false` when it alone is over the byte bound
    /// (or the store keeps nothing).
    pub fn put(&self, id: &str, owner: Option<&str>, held: Held) -> bool {
        let size = size_of(&held) + id.len();
        if self.settings.responses_store_entries == 0 || size > self.settings.responses_store_bytes
        {
            return false;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(old) = inner.map.remove(id) {
            inner.bytes -= old.size;
        }
        inner.bytes += size;
        inner.map.insert(
            id.to_owned(),
            Entry {
                held,
                owner: owner.map(str::to_owned),
                stored: now,
                size,
            },
        );
        inner.order.push_back((id.to_owned(), now));
        self.evict(&mut inner, now);
        true
    }

    fn evict(&self, inner: &mut Inner, now: Instant) {
        let s = &self.settings;
        while let Some((id, at)) = inner.order.front().cloned() {
            let over = inner.map.len() > s.responses_store_entries
                || inner.bytes > s.responses_store_bytes
                || now.duration_since(at) > s.responses_store_ttl;
            // Entries stored again since are met later in the order: skip the stale mark.
            let current = inner.map.get(&id).is_some_and(|e| e.stored == at);
            if current && !over {
                break;
            }
            inner.order.pop_front();
            if current && let Some(e) = inner.map.remove(&id) {
                inner.bytes -= e.size;
            }
        }
    }

    /// The response `id` as the client with key id `owner` may see it, from this process.
    pub fn get(&self, id: &str, owner: Option<&str>) -> Option<Held> {
        let mut inner = self.lock();
        let e = inner.map.get(id)?;
        if Instant::now().duration_since(e.stored) > self.settings.responses_store_ttl {
            if let Some(e) = inner.map.remove(id) {
                inner.bytes -= e.size;
            }
            return None;
        }
        (e.owner.as_deref() == owner).then(|| e.held.clone())
    }

    /// Forgets `id` in this process; `false` when it was not there (for this owner).
    pub fn remove(&self, id: &str, owner: Option<&str>) -> bool {
        let mut inner = self.lock();
        if inner
            .map
            .get(id)
            .is_none_or(|e| e.owner.as_deref() != owner)
        {
            return false;
        }
        if let Some(e) = inner.map.remove(id) {
            inner.bytes -= e.size;
        }
        true
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(t: &str) -> Held {
        Held::Native { target: t.into() }
    }

    #[test]
    fn bounded_by_entries_and_bytes_oldest_first() {
        let store = ResponsesStore::new(StoreSettings {
            responses_store_entries: 2,
            ..StoreSettings::default()
        });
        assert!(store.put("a", None, native("p/m")));
        assert!(store.put("b", None, native("p/m")));
        assert!(store.put("c", None, native("p/m")));
        assert_eq!(store.len(), 2);
        assert_eq!(store.get("a", None), None);
        assert_eq!(store.get("c", None), Some(native("p/m")));

        let store = ResponsesStore::new(StoreSettings {
            responses_store_bytes: 300,
            ..StoreSettings::default()
        });
        let big = Held::Translated {
            items: Arc::new(vec![Value::String("x".repeat(100))]),
            response: Arc::new(Value::Null),
        };
        assert!(store.put("a", None, big.clone()));
        assert!(store.put("b", None, big.clone()));
        assert_eq!(store.get("a", None), None, "evicted past the byte bound");
        assert!(store.get("b", None).is_some());
        let huge = Held::Translated {
            items: Arc::new(vec![Value::String("x".repeat(1000))]),
            response: Arc::new(Value::Null),
        };
        assert!(!store.put("c", None, huge), "alone over the bound");
    }

    #[test]
    fn owners_ttl_and_removal() {
        let store = ResponsesStore::new(StoreSettings {
            responses_store_ttl: Duration::from_millis(0),
            ..StoreSettings::default()
        });
        store.put("a", Some("k1"), native("p/m"));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(store.get("a", Some("k1")), None, "expired");

        let store = ResponsesStore::default();
        store.put("a", Some("k1"), native("p/m"));
        assert_eq!(store.get("a", Some("k2")), None, "another key");
        assert_eq!(store.get("a", None), None);
        assert!(!store.remove("a", Some("k2")));
        assert!(store.remove("a", Some("k1")));
        assert!(store.is_empty());
        // Stored twice: the first order mark must not evict the second entry.
        store.put("b", None, native("x/1"));
        store.put("b", None, native("x/2"));
        assert_eq!(store.get("b", None), Some(native("x/2")));
        assert_eq!(store.len(), 1);
    }
}
