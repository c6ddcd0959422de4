//! What a replica remembers for routes with `affinity`: the target a session moved to after
//! its own was out (so it does not flap back), and each target's in-flight requests per route
//! (so one hot session cannot overload a target).
//!
//! Where a session goes first is computed, not remembered: [`switchyard_dsl::affinity`]
//! ranks a split's arms by weighted rendezvous hashing of the session key, the same on every
//! replica. Memory is needed only for sessions that left that first choice, so only those are
//! stored: until the session has been idle for the route's `for`, or until its new target
//! also fails (then it goes back to its first choice, or the next one that is in). At most
//! [`MAX_SESSIONS`] sessions are remembered per replica; past that the least used are
//! forgotten first (moka's TinyLFU), and a forgotten session simply goes back to its first
//! choice.
//!
//! With a Redis URL (`--redis-url`, the store budgets share) the moved sessions are kept there
//! too, under `switchyard:affinity:<session hash>` with the idle time as their expiry, so
//! every replica sends a moved session to the same place: a request reads its session's entry
//! (refreshing the expiry) before ordering its candidates, and an answer writes or deletes it.
//! Redis calls are bounded in time; when Redis fails, the replica's own memory is used.
//!
//! Bounded load: a split arm whose in-flight requests on the route reach
//! [`LOAD_FACTOR`] times its weighted share of the route's in-flight requests (and at least
//! [`MIN_SPILL_IN_FLIGHT`]) takes no new session requests; they spill to the session's next
//! choice under its cap, for that request only (a spill is not remembered).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::redis_link::{LinkError, RedisLink};

/// Sessions remembered per replica (each a few dozen bytes plus moka's bookkeeping).
pub const MAX_SESSIONS: u64 = 65_536;
/// A target takes new session requests while its in-flight count is below this many times its
/// weighted share of the route's in-flight requests (the "c" of consistent hashing with
/// bounded loads). Looser than the paper's 1.25: a spill costs the session its prompt cache,
/// so only a clear overload should cause one. An arm of a 50/50 split spills past 75% of the
/// route's requests in flight; a 90% arm never does.
pub const LOAD_FACTOR: f64 = 1.5;
/// Below this many in flight a target is never over its cap: at small counts an uneven spread
/// is chance, not a hot session.
pub const MIN_SPILL_IN_FLIGHT: u32 = 32;

/// A remembered session: the `provider/model` it moved to and the route's idle time.
#[derive(Debug, Clone)]
struct Moved {
    target: Arc<str>,
    idle: Duration,
}

/// Each session is forgotten after its route's idle time without a request.
struct IdleExpiry;

impl Expiry<u64, Moved> for IdleExpiry {
    fn expire_after_create(&self, _: &u64, v: &Moved, _: Instant) -> Option<Duration> {
        Some(v.idle)
    }

    fn expire_after_read(
        &self,
        _: &u64,
        v: &Moved,
        _: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        Some(v.idle)
    }

    fn expire_after_update(
        &self,
        _: &u64,
        v: &Moved,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.idle)
    }
}

/// In-flight requests of one route: the route's total and each target's.
#[derive(Debug, Default)]
struct RouteLoad {
    total: AtomicU32,
    targets: RwLock<HashMap<String, Arc<AtomicU32>>>,
}

/// Session memory and load of every route with `affinity`, shared by the replica's requests.
#[derive(Debug)]
pub struct AffinityState {
    /// Session hash (route included) → where it moved.
    moved: Cache<u64, Moved>,
    /// Route name → its load. Grows with the routes that have affinity, nothing else.
    load: RwLock<HashMap<String, Arc<RouteLoad>>>,
    /// Moved sessions shared between replicas, when configured.
    shared: Option<RedisLink>,
}

impl Default for AffinityState {
    fn default() -> Self {
        Self::new(MAX_SESSIONS)
    }
}

impl AffinityState {
    pub fn new(max_sessions: u64) -> Self {
        Self {
            moved: Cache::builder()
                .max_capacity(max_sessions)
                .expire_after(IdleExpiry)
                .build(),
            load: RwLock::new(HashMap::new()),
            shared: None,
        }
    }

    /// Memory kept in Redis at `url` as well (connected lazily).
    pub fn with_redis(url: &str) -> Result<Self, LinkError> {
        Ok(Self {
            shared: Some(RedisLink::new(
                url,
                "affinity",
                "switchyard-affinity-redis",
            )?),
            ..Self::default()
        })
    }

    /// Brings the replica's memory of `session` up to date from Redis, when configured (and
    /// restarts the shared entry's idle time). On a Redis failure the local memory stands.
    pub async fn refresh(&self, session: u64, idle: Duration) {
        let Some(link) = &self.shared else { return };
        let mut cmd = redis::cmd("GETEX");
        cmd.arg(shared_key(session))
            .arg("PX")
            .arg(idle.as_millis().max(1) as u64);
        let got = link
            .run(|mut conn| async move { cmd.query_async::<Option<String>>(&mut conn).await })
            .await;
        match got {
            Ok(Some(target)) => self.remember_locally(session, &target, idle),
            Ok(None) => self.moved.invalidate(&session),
            Err(_) => {}
        }
    }

    /// [`Self::served`], and the same in Redis when configured.
    pub async fn served_shared(
        &self,
        session: u64,
        home: Option<&str>,
        served: &str,
        idle: Duration,
    ) {
        self.served(session, home, served, idle);
        let Some(link) = &self.shared else { return };
        let mut cmd;
        if home == Some(served) {
            cmd = redis::cmd("DEL");
            cmd.arg(shared_key(session));
        } else {
            cmd = redis::cmd("SET");
            cmd.arg(shared_key(session))
                .arg(served)
                .arg("PX")
                .arg(idle.as_millis().max(1) as u64);
        }
        // A failure is logged by the link; the local memory already holds the answer.
        let _ = link
            .run(|mut conn| async move { cmd.query_async::<redis::Value>(&mut conn).await })
            .await;
    }

    fn remember_locally(&self, session: u64, target: &str, idle: Duration) {
        if self
            .moved
            .get(&session)
            .is_none_or(|m| &*m.target != target)
        {
            self.moved.insert(
                session,
                Moved {
                    target: target.into(),
                    idle,
                },
            );
        }
    }

    /// The target `session` moved to, if it is remembered (the read restarts its idle time).
    pub fn moved_to(&self, session: u64) -> Option<Arc<str>> {
        self.moved.get(&session).map(|m| m.target)
    }

    /// Records where `session` was served: forgotten when that is its first choice `home`,
    /// remembered for `idle` otherwise.
    pub fn served(&self, session: u64, home: Option<&str>, served: &str, idle: Duration) {
        if home == Some(served) {
            self.moved.invalidate(&session);
        } else {
            self.remember_locally(session, served, idle);
        }
    }

    /// Sessions remembered now (moka counts lazily; for tests and the admin view).
    pub fn remembered(&self) -> u64 {
        self.moved.run_pending_tasks();
        self.moved.entry_count()
    }

    fn route(&self, route: &str) -> Arc<RouteLoad> {
        if let Some(l) = self.load.read().ok().and_then(|m| m.get(route).cloned()) {
            return l;
        }
        let mut map = self.load.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(route.to_string()).or_default())
    }

    /// Whether `target` takes no new session requests on `route`: its in-flight count is at
    /// its cap for a `share` (0..=1) of the route's traffic.
    pub fn over_cap(&self, route: &str, target: &str, share: f64) -> bool {
        let load = self.route(route);
        let total = load.total.load(Ordering::Relaxed);
        let mine = load
            .targets
            .read()
            .ok()
            .and_then(|m| m.get(target).map(|c| c.load(Ordering::Relaxed)))
            .unwrap_or(0);
        let cap = (LOAD_FACTOR * share * f64::from(total + 1)).ceil() as u32;
        mine >= cap.max(MIN_SPILL_IN_FLIGHT)
    }

    /// Counts a request in flight to `target` on `route` until the guard drops.
    pub fn start(&self, route: &str, target: &str) -> InFlight {
        let load = self.route(route);
        let counter = load
            .targets
            .read()
            .ok()
            .and_then(|m| m.get(target).cloned())
            .unwrap_or_else(|| {
                let mut map = load.targets.write().unwrap_or_else(|e| e.into_inner());
                Arc::clone(map.entry(target.to_string()).or_default())
            });
        load.total.fetch_add(1, Ordering::Relaxed);
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight { load, counter }
    }
}

/// The Redis key of a moved session.
fn shared_key(session: u64) -> String {
    format!("switchyard:affinity:{session:016x}")
}

/// One request in flight on an affinity route; counted down on drop.
#[derive(Debug)]
pub struct InFlight {
    load: Arc<RouteLoad>,
    counter: Arc<AtomicU32>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
        self.load.total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_session_is_remembered_until_it_is_back_home() {
        let a = AffinityState::new(16);
        let idle = Duration::from_secs(60);
        assert_eq!(a.moved_to(1), None);
        a.served(1, Some("p/a"), "p/a", idle);
        assert_eq!(a.moved_to(1), None, "served at home: nothing to remember");
        a.served(1, Some("p/a"), "p/b", idle);
        assert_eq!(a.moved_to(1).as_deref(), Some("p/b"));
        a.served(1, Some("p/a"), "p/a", idle);
        assert_eq!(a.moved_to(1), None, "back home: forgotten");
        // Without a first choice (`fastest of`) every served target is remembered.
        a.served(2, None, "p/c", idle);
        assert_eq!(a.moved_to(2).as_deref(), Some("p/c"));
    }

    #[test]
    fn an_idle_session_is_forgotten() {
        let a = AffinityState::new(16);
        a.served(1, Some("p/a"), "p/b", Duration::from_millis(30));
        assert_eq!(a.moved_to(1).as_deref(), Some("p/b"));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(a.moved_to(1), None);
    }

    #[test]
    fn a_target_at_its_cap_takes_no_more() {
        let a = AffinityState::default();
        let mut held = Vec::new();
        // Under the floor nothing is over its cap, whatever the share.
        for _ in 0..MIN_SPILL_IN_FLIGHT - 1 {
            held.push(a.start("r", "p/a"));
        }
        assert!(!a.over_cap("r", "p/a", 0.1));
        held.push(a.start("r", "p/a"));
        // 32 in flight, all on p/a: a 50% share caps it at max(32, ceil(1.5 × 0.5 × 33)) = 32.
        assert!(a.over_cap("r", "p/a", 0.5));
        assert!(!a.over_cap("r", "p/b", 0.5));
        // More traffic on the other arm raises the cap: ceil(1.5 × 0.5 × 73) = 55.
        for _ in 0..40 {
            held.push(a.start("r", "p/b"));
        }
        assert!(!a.over_cap("r", "p/a", 0.5));
        // A 90% share is never over: 1.5 × 0.9 of the route is more than all of it.
        assert!(!a.over_cap("r", "p/b", 0.9));
        held.clear();
        assert!(!a.over_cap("r", "p/a", 0.5));
    }
}
