//! The in-process store: a `moka` cache bounded in bytes (each entry weighs what it holds),
//! evicting by moka's TinyLFU admission and LRU eviction, with each entry expiring after its
//! route's TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use super::entry::Entry;

/// An entry with the TTL it was stored under.
#[derive(Debug)]
struct Stored {
    entry: Arc<Entry>,
    ttl: Duration,
}

/// Expires each entry after its own TTL; a refresh restarts the clock.
struct PerEntryTtl;

impl Expiry<String, Arc<Stored>> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, v: &Arc<Stored>, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Arc<Stored>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Entries in this process, at most `max_bytes` of them.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    cache: Cache<String, Arc<Stored>>,
}

impl MemoryStore {
    pub fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Arc<Stored>| {
                u32::try_from(k.len() + v.entry.weight()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self { cache }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.cache.get(key).map(|s| Arc::clone(&s.entry))
    }

    pub fn put(&self, key: String, entry: Arc<Entry>, ttl: Duration) {
        self.cache.insert(key, Arc::new(Stored { entry, ttl }));
    }

    /// Bytes held, after applying pending evictions.
    pub fn bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(size: usize) -> Arc<Entry> {
        let c = json!({"choices": [{"message": {"content": "x".repeat(size)}, "finish_reason": "stop"}]});
        Arc::new(Entry::new("p", "m", None, &c))
    }

    #[test]
    fn evicts_to_stay_under_the_byte_bound() {
        let store = MemoryStore::new(10_000);
        for i in 0..40 {
            store.put(format!("k{i}"), entry(1_000), Duration::from_secs(60));
            // Touch the early keys so the sketch sees them as popular.
            let _ = store.get("k0");
        }
        let bytes = store.bytes();
        assert!(bytes <= 10_000, "{bytes} bytes held");
        let held = (0..40)
            .filter(|i| store.get(&format!("k{i}")).is_some())
            .count();
        assert!(held > 0 && held < 40, "{held} entries held");
        // An entry larger than the whole bound is never held.
        store.put("huge".into(), entry(20_000), Duration::from_secs(60));
        store.bytes();
        assert!(store.get("huge").is_none());
    }

    #[test]
    fn entries_expire_after_their_ttl() {
        let store = MemoryStore::new(1_000_000);
        store.put("short".into(), entry(10), Duration::from_millis(50));
        store.put("long".into(), entry(10), Duration::from_secs(60));
        assert!(store.get("short").is_some());
        std::thread::sleep(Duration::from_millis(120));
        assert!(store.get("short").is_none());
        assert!(store.get("long").is_some());
    }
}
