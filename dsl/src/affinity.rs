//! Session affinity: which target a session maps to, computed the same way on every replica
//! without shared state.
//!
//! A route with `affinity by KEY` hashes the request's session key (with the route's name, so
//! one session on two routes maps independently) and ranks the split's arms by weighted
//! rendezvous hashing: each arm scores `weight / -ln(u)`, where `u` in (0, 1) is a hash of the
//! session and the arm's `provider/model`, and the highest score wins. An arm then wins with
//! probability weight / total over many sessions, so the long-run shares follow the weights;
//! the ranking is the session's order of next choices when its target is out; and adding,
//! removing or reweighting one arm moves only the sessions that arm gains or loses.
//!
//! The hash is XXH3 (a specified algorithm, the same on every platform and version) with
//! fixed seeds: replicas, restarts and `switchyard explain` agree on every mapping.

use xxhash_rust::xxh3::{Xxh3, xxh3_64_with_seed};

use crate::decide::RequestFeatures;
use crate::ir::{AffinityKey, Snapshot, TargetId, WeightedTarget};

/// `affinity by ...` without `for`: a session idle for 10 minutes is forgotten (prompt caches
/// of the big providers last 5 to 10 minutes without use).
pub const DEFAULT_IDLE_MS: u64 = 10 * 60_000;
/// Shortest `for` an affinity accepts.
pub const MIN_IDLE_MS: u64 = 1_000;
/// Longest `for` an affinity accepts: a day, the longest any provider keeps a prompt cache.
pub const MAX_IDLE_MS: u64 = 24 * 3_600_000;
/// Largest N of `prefix(N)`: 32k tokens, 128 KiB of text hashed per request at most.
pub const MAX_PREFIX_TOKENS: u32 = 32_768;
/// Deepest `body("a.b.c.d")` path.
pub const MAX_BODY_PATH_DEPTH: usize = 4;
/// The tokens-to-text rule of `prefix(N)`: N tokens are the first 4 × N bytes of text (OpenAI's
/// rule of thumb of about four characters per token; no tokenizer runs on the request path).
pub const BYTES_PER_TOKEN: usize = 4;

/// The fixed seed every replica hashes with.
const SEED: u64 = 0x7377_6974_6368_7964;

/// The seed of a route's session hashes.
fn route_seed(route: &str) -> u64 {
    xxh3_64_with_seed(route.as_bytes(), SEED)
}

/// The session hash of a key's `value` on route `route`.
pub fn session_hash(route: &str, value: &[u8]) -> u64 {
    xxh3_64_with_seed(value, route_seed(route))
}

/// The session hash of a key the request's headers or identity hold (`header(..)`, `key`,
/// `user`); `None` for a missing or empty value and for keys in the body.
pub fn identity_session<R: RequestFeatures + ?Sized>(
    request: &R,
    route: &str,
    key: &AffinityKey,
) -> Option<u64> {
    let value = match key {
        AffinityKey::Header(name) => request.header(name),
        AffinityKey::Key => request.key(),
        AffinityKey::User => request.user(),
        AffinityKey::Body(_) | AffinityKey::Prefix { .. } => None,
    }?;
    (!value.is_empty()).then(|| session_hash(route, value.as_bytes()))
}

/// The rendezvous score of a target with `weight` for `session`: higher wins; zero for a zero
/// weight (such an arm is chosen only when no other arm is left).
pub fn score(session: u64, provider: &str, model: &str, weight: u32) -> f64 {
    if weight == 0 {
        return 0.0;
    }
    // Provider names cannot contain `/`, so hashing the two names apart is unambiguous.
    let h = xxh3_64_with_seed(
        model.as_bytes(),
        xxh3_64_with_seed(provider.as_bytes(), session),
    );
    // The top 53 bits as a uniform draw strictly inside (0, 1).
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(weight) / -u.ln()
}

fn arm_score(snapshot: &Snapshot, session: u64, arm: &WeightedTarget) -> f64 {
    let t = snapshot.target(arm.target);
    score(
        session,
        &snapshot.provider(t.provider).name,
        &t.model,
        arm.weight,
    )
}

/// The index of the arm `session` maps to among the arms `admit` accepts: the highest score,
/// the first listed on a tie. `None` when `admit` accepts none. Allocation-free.
pub fn choose(
    snapshot: &Snapshot,
    arms: &[WeightedTarget],
    session: u64,
    admit: impl Fn(TargetId) -> bool,
) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, arm) in arms.iter().enumerate() {
        if !admit(arm.target) {
            continue;
        }
        let s = arm_score(snapshot, session, arm);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

/// Every arm's index and score for `session`, best first: the session's order of choices.
pub fn ranking(snapshot: &Snapshot, arms: &[WeightedTarget], session: u64) -> Vec<(usize, f64)> {
    let mut out: Vec<(usize, f64)> = arms
        .iter()
        .enumerate()
        .map(|(i, a)| (i, arm_score(snapshot, session, a)))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// Hashes the start of a conversation for `prefix(N)`: the leading system (or developer)
/// messages and the first other message, in order, up to N tokens' worth of text
/// ([`BYTES_PER_TOKEN`] bytes a token). Later turns of a conversation repeat that start, so
/// they hash alike; the rest of the conversation is never read.
pub struct PrefixHasher {
    hasher: Box<Xxh3>,
    left: usize,
    fed: bool,
    done: bool,
}

impl std::fmt::Debug for PrefixHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixHasher")
            .field("left", &self.left)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl PrefixHasher {
    pub fn new(route: &str, tokens: u32) -> Self {
        Self {
            hasher: Box::new(Xxh3::with_seed(route_seed(route))),
            left: (tokens as usize).saturating_mul(BYTES_PER_TOKEN),
            fed: false,
            done: false,
        }
    }

    /// Whether more messages are wanted.
    pub fn wants_more(&self) -> bool {
        !self.done
    }

    /// Feeds one message's role and text parts (non-text parts are left out by the caller).
    pub fn message<'t>(&mut self, role: &str, texts: impl IntoIterator<Item = &'t str>) {
        if self.done {
            return;
        }
        self.hasher.update(role.as_bytes());
        self.hasher.update(&[0x1f]);
        for text in texts {
            let take = text.len().min(self.left);
            self.hasher.update(&text.as_bytes()[..take]);
            self.fed |= take > 0;
            self.left -= take;
        }
        self.hasher.update(&[0x1e]);
        if self.left == 0 || !matches!(role, "system" | "developer") {
            self.done = true;
        }
    }

    /// The session hash, `None` when no text was fed.
    pub fn finish(self) -> Option<u64> {
        self.fed.then(|| self.hasher.digest())
    }
}

/// The prefix hash of an OpenAI chat `messages` array (string content or text parts).
pub fn prefix_of_messages(route: &str, tokens: u32, messages: &serde_json::Value) -> Option<u64> {
    let mut h = PrefixHasher::new(route, tokens);
    for m in messages.as_array()? {
        if !h.wants_more() {
            break;
        }
        let role = m["role"].as_str().unwrap_or("");
        match &m["content"] {
            serde_json::Value::String(s) => h.message(role, [s.as_str()]),
            serde_json::Value::Array(parts) => {
                h.message(role, parts.iter().filter_map(|p| p["text"].as_str()));
            }
            _ => h.message(role, []),
        }
    }
    h.finish()
}

/// A string or number member of a JSON body at a dotted `path`, as text (a number as written).
pub fn body_field<'v>(
    body: &'v serde_json::Value,
    path: &str,
) -> Option<std::borrow::Cow<'v, str>> {
    let mut v = body;
    for name in path.split('.') {
        v = v.get(name)?;
    }
    match v {
        serde_json::Value::String(s) => Some(s.as_str().into()),
        serde_json::Value::Number(n) => Some(n.to_string().into()),
        _ => None,
    }
}

/// A request with its JSON body (OpenAI chat shape), for `explain` and tests: answers
/// `body(..)` and `prefix(N)` session keys that a [`crate::RequestView`] alone cannot.
#[derive(Clone, Copy, Debug)]
pub struct WithBody<'a, R> {
    pub request: R,
    pub body: &'a serde_json::Value,
}

impl<R: RequestFeatures> RequestFeatures for WithBody<'_, R> {
    fn model(&self) -> &str {
        self.request.model()
    }
    fn header(&self, lower_case_name: &str) -> Option<&str> {
        self.request.header(lower_case_name)
    }
    fn key(&self) -> Option<&str> {
        self.request.key()
    }
    fn team(&self) -> Option<&str> {
        self.request.team()
    }
    fn user(&self) -> Option<&str> {
        self.request.user()
    }
    fn prompt_tokens(&self) -> u64 {
        self.request.prompt_tokens()
    }
    fn stream(&self) -> bool {
        self.request.stream()
    }
    fn session(&self, route: &str, key: &AffinityKey) -> Option<u64> {
        match key {
            AffinityKey::Body(path) => {
                let v = body_field(self.body, path)?;
                (!v.is_empty()).then(|| session_hash(route, v.as_bytes()))
            }
            AffinityKey::Prefix { tokens } => {
                prefix_of_messages(route, *tokens, &self.body["messages"])
            }
            _ => self.request.session(route, key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_fixed_and_weighted() {
        // The same inputs give the same score on every run and replica.
        assert_eq!(score(7, "p", "m", 50), score(7, "p", "m", 50));
        assert_eq!(score(7, "p", "m", 0), 0.0);
        assert!(score(7, "p", "m", 90) > score(7, "p", "m", 10));
        assert_ne!(session_hash("a", b"s"), session_hash("b", b"s"));
    }

    #[test]
    fn prefix_reads_the_system_prompt_and_first_message_only() {
        let turn1 = serde_json::json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}]}
        ]);
        let turn3 = serde_json::json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "more"}
        ]);
        let other = serde_json::json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "goodbye"}
        ]);
        let h = |m| prefix_of_messages("r", 100, m);
        assert_eq!(h(&turn1), h(&turn3));
        assert_ne!(h(&turn1), h(&other));
        // Two tokens are 8 bytes: "be brief" fills them, so the user message is not read.
        assert_eq!(
            prefix_of_messages("r", 2, &turn1),
            prefix_of_messages("r", 2, &other)
        );
        assert_eq!(h(&serde_json::json!([])), None);
    }
}
