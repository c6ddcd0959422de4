//! A per-server prompt cache for OpenAI chat requests, like OpenAI's automatic prompt caching:
//! the longest run of leading messages this server has already seen is reported as
//! `usage.prompt_tokens_details.cached_tokens`. Only the server that saw a conversation's
//! earlier turns reports them cached, which is what session affinity is for.
//!
//! Differences from OpenAI, to keep tests small and exact: there is no 1,024-token minimum
//! and no 128-token granularity (whole messages count), and the cache never expires; it
//! forgets everything once it holds [`MAX_PREFIXES`] prefixes.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

/// Prefixes remembered before the cache starts over.
pub const MAX_PREFIXES: usize = 1_000_000;

/// The prefixes a server has seen: a hash of each run of leading messages.
#[derive(Debug, Default)]
pub struct PromptCache {
    seen: Mutex<HashSet<u64>>,
}

impl PromptCache {
    /// Records a request's messages (each `(canonical text, tokens)`) and returns the tokens
    /// of the longest run of leading messages, short of the whole prompt, seen before.
    pub fn lookup_and_store(&self, messages: &[(String, u32)]) -> u32 {
        let mut hasher = DefaultHasher::new();
        let mut prefixes = Vec::with_capacity(messages.len());
        let mut tokens = 0u32;
        for (text, n) in messages {
            text.hash(&mut hasher);
            tokens = tokens.saturating_add(*n);
            prefixes.push((hasher.finish(), tokens));
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let cached = prefixes
            .iter()
            .take(messages.len().saturating_sub(1))
            .rev()
            .find(|(h, _)| seen.contains(h))
            .map_or(0, |(_, t)| *t);
        if seen.len() + prefixes.len() > MAX_PREFIXES {
            seen.clear();
        }
        seen.extend(prefixes.iter().map(|(h, _)| *h));
        cached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str, tokens: u32) -> (String, u32) {
        (text.to_owned(), tokens)
    }

    #[test]
    fn a_later_turn_finds_the_earlier_prompt() {
        let cache = PromptCache::default();
        let turn1 = [m("system: be brief", 4), m("user: hi", 2)];
        assert_eq!(cache.lookup_and_store(&turn1), 0, "nothing seen yet");
        let turn2 = [
            m("system: be brief", 4),
            m("user: hi", 2),
            m("assistant: hello", 3),
            m("user: more", 2),
        ];
        assert_eq!(cache.lookup_and_store(&turn2), 6, "turn 1's prompt");
        // The same request again: all but its last message.
        assert_eq!(cache.lookup_and_store(&turn2), 9);
        // Another server never saw it.
        assert_eq!(PromptCache::default().lookup_and_store(&turn2), 0);
        // A different system prompt shares nothing.
        assert_eq!(
            cache.lookup_and_store(&[m("system: be long", 4), m("user: hi", 2)]),
            0
        );
    }
}
