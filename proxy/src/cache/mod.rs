//! The response cache: exact-match answers for routes that say `cache for D`.
//!
//! ```text
//!  plan ──── route has no `cache for`          → no cache, no header
//!    │       not cacheable (see below)          → `x-switchyard-cache: bypass`
//!    ▼       key = sha256(endpoint, route, canonical body − EXCLUDED)   (key.rs)
//!  answer ── `cache-control: no-cache` skips the lookup (refresh)
//!    │       hit  → replayed as JSON or SSE, no upstream call, `hit`
//!    ▼       miss → `miss`, the attempt tees the answer into the miss's Fill (fill.rs)
//!  finish ── 2xx, no stream error, stream ended with [DONE], every choice finished
//!            not from a budget's downgrade target
//!            → assembled into one chat.completion (entry.rs) and stored for the TTL
//! ```
//!
//! Not cacheable: `cache-control: no-store`, embeddings, `n` > 1, `logprobs`, and a
//! temperature other than 0 unless the request says `x-switchyard-cache: allow`. Anthropic
//! Messages clients are keyed on their OpenAI translation and served from the OpenAI-shaped
//! entry through the Messages translators; an answer passed through natively (an Anthropic
//! target) is not stored. The memory store (moka, bounded in bytes) is the default;
//! `--cache-redis-url` shares entries between replicas. A store that fails is a miss.

pub mod entry;
pub mod fill;
pub mod key;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use pingora::proxy::Session;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use switchyard_dsl::ir::{Route, Snapshot};

use self::entry::Entry;
pub use self::fill::{Fill, capture, tee};
use self::memory::MemoryStore;
use self::redis::RedisStore;
use crate::api::request::RequestBody;
use crate::api::{Endpoint, respond};
use crate::ctx::RequestCtx;

/// The memory store's default bound: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The request header that lets a request with a non-zero temperature use the cache.
pub const ALLOW_HEADER: &str = "x-switchyard-cache";

/// Where entries live.
#[derive(Debug)]
enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

struct CacheMetrics {
    requests: IntCounterVec,
    stores: IntCounterVec,
    store_errors: IntCounterVec,
    memory_bytes: IntGauge,
    written_bytes: IntCounter,
    saved_tokens: IntCounterVec,
    saved_micro_usd: IntCounter,
}

impl CacheMetrics {
    fn new(registry: &Registry) -> Self {
        let vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .expect("static metric definition is valid");
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let one = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("static metric definition is valid");
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let memory_bytes = IntGauge::new(
            "switchyard_cache_memory_bytes",
            "Bytes held by the in-memory response cache.",
        )
        .expect("static metric definition is valid");
        let _ = registry.register(Box::new(memory_bytes.clone()));
        Self {
            requests: vec(
                "switchyard_cache_requests_total",
                "Requests on caching routes by result: hit, miss or bypass.",
                &["route", "result"],
            ),
            stores: vec(
                "switchyard_cache_stores_total",
                "Answers of cache misses by what became of them: stored, or why not.",
                &["result"],
            ),
            store_errors: vec(
                "switchyard_cache_store_errors_total",
                "Response cache store operations that failed (served as misses).",
                &["op"],
            ),
            memory_bytes,
            written_bytes: one(
                "switchyard_cache_written_bytes_total",
                "Bytes of entries written to the response cache store.",
            ),
            saved_tokens: vec(
                "switchyard_cache_saved_tokens_total",
                "Provider tokens not spent thanks to cache hits, by direction.",
                &["direction"],
            ),
            saved_micro_usd: one(
                "switchyard_cache_saved_micro_usd_total",
                "Provider cost not spent thanks to cache hits, in micro-USD.",
            ),
        }
    }
}

/// What the cache does for one request on a caching route.
#[derive(Debug)]
pub struct Plan {
    route: String,
    ttl: Duration,
    /// `None`: bypass (not cacheable, or `no-store`).
    key: Option<String>,
    /// `cache-control: no-cache`: no lookup, store the fresh answer.
    refresh: bool,
    stream: bool,
    include_usage: bool,
}

/// What a cache lookup did.
#[derive(Debug)]
pub enum Lookup {
    /// The client has its answer from the cache: no upstream is called.
    Answered,
    /// A miss: the answer is to be captured in this buffer (and stored by `finish`).
    Miss(Fill),
    /// No lookup (the route does not cache, or the request may not be cached).
    Skipped,
}

/// The shared response cache.
pub struct ResponseCache {
    store: Store,
    metrics: CacheMetrics,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Default for ResponseCache {
    /// In memory, [`DEFAULT_MAX_BYTES`], metrics in a registry of their own.
    fn default() -> Self {
        Self::memory(DEFAULT_MAX_BYTES, &Registry::new())
    }
}

/// The comma-separated directives of a `cache-control` header, lower-cased.
fn directives(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect()
}

impl ResponseCache {
    /// An in-memory cache of at most `max_bytes`.
    pub fn memory(max_bytes: u64, registry: &Registry) -> Self {
        Self {
            store: Store::Memory(MemoryStore::new(max_bytes)),
            metrics: CacheMetrics::new(registry),
        }
    }

    /// A cache in Redis at `url` (connected lazily).
    pub fn redis(url: &str, registry: &Registry) -> Result<Self, self::redis::RedisError> {
        Ok(Self {
            store: Store::Redis(RedisStore::new(url)?),
            metrics: CacheMetrics::new(registry),
        })
    }

    /// The plan for a request routed to `route`; `None` when the route does not cache.
    pub fn plan(
        &self,
        route: &Route,
        endpoint: Endpoint,
        headers: &HeaderMap,
        openai_body: &[u8],
        body: &RequestBody<'_>,
    ) -> Option<Plan> {
        let ttl = Duration::from_millis(route.cache_ttl_ms?);
        let d = directives(headers);
        let allow = headers
            .get(ALLOW_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("allow"));
        // Messages requests are keyed apart: their OpenAI translation could equal a chat
        // request that asks for something slightly different.
        let label = match endpoint {
            Endpoint::ChatCompletions => Some("chat"),
            Endpoint::Messages => Some("messages"),
            Endpoint::Responses => Some("responses"),
            Endpoint::Embeddings => None,
        };
        let key = label
            .filter(|_| !d.iter().any(|x| x == "no-store"))
            .and_then(|label| {
                let v = serde_json::from_slice::<serde_json::Value>(openai_body).ok()?;
                key::cacheable(&v, allow).ok()?;
                Some(key::key(label, &route.name, v.as_object()?))
            });
        Some(Plan {
            route: route.name.clone(),
            ttl,
            key,
            refresh: d.iter().any(|x| x == "no-cache"),
            stream: body.stream,
            include_usage: body.include_usage,
        })
    }

    async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        match &self.store {
            Store::Memory(m) => m.get(key),
            Store::Redis(r) => match r.get(key).await {
                Ok(e) => e.map(Arc::new),
                Err(_) => {
                    self.metrics.store_errors.with_label_values(&["get"]).inc();
                    None
                }
            },
        }
    }

    /// Answers from the cache when it can; otherwise marks the request `miss` or `bypass`
    /// and, for a miss, hands out the buffer the answer is to be captured in.
    pub async fn answer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        plan: Option<&Plan>,
        snapshot: &Snapshot,
    ) -> Lookup {
        let Some(plan) = plan else {
            return Lookup::Skipped;
        };
        let Some(key) = &plan.key else {
            self.count(ctx, plan, "bypass");
            return Lookup::Skipped;
        };
        if !plan.refresh
            && let Some(entry) = self.get(key).await
        {
            self.count(ctx, plan, "hit");
            self.serve_hit(session, ctx, plan, &entry, snapshot).await;
            return Lookup::Answered;
        }
        self.count(ctx, plan, "miss");
        Lookup::Miss(Fill::default())
    }

    fn count(&self, ctx: &mut RequestCtx, plan: &Plan, result: &'static str) {
        ctx.cache = Some(result);
        self.metrics
            .requests
            .with_label_values(&[&plan.route, result])
            .inc();
    }

    async fn serve_hit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        plan: &Plan,
        entry: &Entry,
        snapshot: &Snapshot,
    ) {
        ctx.route = Some(plan.route.clone());
        ctx.provider = Some(entry.provider.clone());
        ctx.model = Some(entry.model.clone());
        if let Some(u) = entry.usage() {
            self.metrics
                .saved_tokens
                .with_label_values(&["input"])
                .inc_by(u.input);
            self.metrics
                .saved_tokens
                .with_label_values(&["output"])
                .inc_by(u.output);
            let price = crate::quota::Price::by_name(snapshot, &entry.provider, &entry.model);
            self.metrics
                .saved_micro_usd
                .inc_by(price.cost(u.input, u.output));
        }
        let client = ctx.client.clone();
        let sent = if plan.stream {
            let completion = serde_json::from_str(entry.completion.get()).unwrap_or_default();
            let chunks = entry::replay(
                &completion,
                plan.include_usage || client.replay_needs_usage(),
            );
            let body = client.replayed_stream(chunks, &entry.model);
            client.share().await;
            let h = respond::header(200, "text/event-stream", None, ctx);
            ctx.status = 200;
            ctx.ttft = Some(ctx.started.elapsed());
            session.write_response_header(h, false).await.is_ok()
                && session.write_response_body(Some(body), true).await.is_ok()
        } else {
            let openai = Bytes::copy_from_slice(entry.completion.get().as_bytes());
            let body = client.whole_answer(200, openai, false, (&entry.provider, &entry.model));
            client.share().await;
            let h = respond::header(200, "application/json", Some(body.len()), ctx);
            ctx.ttft = Some(ctx.started.elapsed());
            respond::send(session, ctx, h, body, None).await
        };
        if !sent {
            ctx.error = Some("client went away".into());
        }
    }

    /// After a miss was served: stores the answer when it is complete and well-formed, never
    /// a failed, partial or oversized one.
    pub async fn finish(&self, ctx: &RequestCtx, plan: Option<&Plan>, fill: Option<Fill>) {
        let (Some(plan), Some(fill)) = (plan, fill) else {
            return;
        };
        let Some(key) = &plan.key else {
            return;
        };
        let result = match self.entry(ctx, &fill) {
            Ok(entry) => self.put(key, entry, plan.ttl).await,
            Err(why) => why,
        };
        self.metrics.stores.with_label_values(&[result]).inc();
    }

    /// The entry for a served miss, or why there is none (a metric label).
    fn entry(&self, ctx: &RequestCtx, fill: &Fill) -> Result<Entry, &'static str> {
        if !(200..300).contains(&ctx.status) || ctx.stream_error || ctx.error.is_some() {
            return Err("failed");
        }
        if ctx.downgrade.is_some() {
            // A budget's downgrade target answered, not the route: other clients must not
            // get this answer for the route's.
            return Err("downgraded");
        }
        let raw = fill.take()?;
        let completion = if ctx.stream {
            entry::assemble(&raw)
        } else {
            entry::completion(&raw)
        }
        .map_err(|e| {
            tracing::debug!(reason = %e, "response cache: answer not stored");
            "incomplete"
        })?;
        Ok(Entry::new(
            ctx.provider.as_deref().unwrap_or(""),
            ctx.model.as_deref().unwrap_or(""),
            ctx.usage,
            &completion,
        ))
    }

    async fn put(&self, key: &str, entry: Entry, ttl: Duration) -> &'static str {
        let weight = entry.weight() as u64;
        match &self.store {
            Store::Memory(m) => {
                m.put(key.to_owned(), Arc::new(entry), ttl);
                self.metrics
                    .memory_bytes
                    .set(i64::try_from(m.bytes()).unwrap_or(i64::MAX));
            }
            Store::Redis(r) => {
                if r.put(key, &entry, ttl).await.is_err() {
                    self.metrics.store_errors.with_label_values(&["put"]).inc();
                    return "error";
                }
            }
        }
        self.metrics.written_bytes.inc_by(weight);
        "stored"
    }
}
