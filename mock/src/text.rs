//! Deterministic completion text, token estimates, embedding vectors and ids, from a seed.
//!
//! Everything here is a pure function of its inputs: the same seed and request give the same
//! words, vectors and usage on every run and every platform. The generator is SplitMix64,
//! written out here so its output can never change under a dependency upgrade.

/// The words completions are made of; one word is one token.
const WORDS: &[&str] = &[
    "the", "gateway", "routes", "each", "request", "to", "a", "provider", "model", "token",
    "budget", "policy", "failover", "latency", "stream", "chunk", "mock", "reply", "signal",
    "switch", "track", "yard", "train", "rail", "quota", "window", "cluster", "retry", "hedge",
    "split", "weight", "upstream", "answer", "prompt", "context", "steady", "quick", "quiet",
    "green", "amber", "north", "south", "east", "west", "bright", "simple", "careful", "ready",
    "and", "of", "in", "with", "for", "on", "is", "was", "will", "can", "then", "now", "here",
    "every", "some", "many",
];

/// A small, fast, seedable generator (SplitMix64). Stable output forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`); the tiny modulo bias does not matter here.
    pub fn below(&mut self, n: usize) -> usize {
        // `n` is a small slice length, so the cast back is lossless.
        (self.next_u64() % n as u64) as usize
    }

    /// A float in `[-1, 1)`.
    pub fn unit(&mut self) -> f32 {
        // 24 random bits map exactly onto an f32 mantissa.
        let bits = (self.next_u64() >> 40) as u32;
        (bits as f32 / (1u32 << 23) as f32) - 1.0
    }
}

/// FNV-1a over the parts, with a separator between them, mixed with `seed`.
pub fn derive_seed(seed: u64, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Rng::new(h).next_u64()
}

/// `n` completion tokens. The first is capitalised, the others carry a leading space, and
/// the last ends with a full stop when `finished` (a reply that stopped on its own).
pub fn completion(seed: u64, n: u32, finished: bool) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let word = WORDS[rng.below(WORDS.len())];
        let mut token = if i == 0 {
            capitalise(word)
        } else {
            format!(" {word}")
        };
        if finished && i + 1 == n {
            token.push('.');
        }
        out.push(token);
    }
    out
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Cut `tokens` before the first occurrence in their text of any of `stops` (the earliest
/// one wins; empty ones are ignored), as a stop sequence does: the tokens kept (the last one
/// shortened when the stop begins inside it) and the stop sequence hit. `None` when no stop
/// sequence occurs.
pub fn cut_at_stop(tokens: &[String], stops: &[String]) -> Option<(Vec<String>, String)> {
    let text = tokens.concat();
    let (at, stop) = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|i| (i, s)))
        .min_by_key(|(i, _)| *i)?;
    let mut kept = Vec::new();
    let mut start = 0;
    for token in tokens {
        if start >= at {
            break;
        }
        let piece = token.get(..at - start).unwrap_or(token);
        if !piece.is_empty() {
            kept.push(piece.to_owned());
        }
        start += token.len();
    }
    Some((kept, stop.clone()))
}

/// Tokens for `chars` characters of text: `ceil(chars / 4)`.
pub fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

/// A unit-length vector of `dims` floats for `input`.
pub fn embedding(seed: u64, input: &str, dims: usize) -> Vec<f32> {
    let mut rng = Rng::new(derive_seed(seed, &["embedding", input]));
    let mut v: Vec<f32> = (0..dims).map(|_| rng.unit()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// `len` characters from `[A-Za-z0-9]`, as in OpenAI's ids.
pub fn alphanumeric(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = Rng::new(seed);
    (0..len)
        .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())]))
        .collect()
}

/// Standard base64 (with padding) of the little-endian bytes of `v`, as OpenAI sends
/// embeddings when asked for `encoding_format: "base64"`.
pub fn base64_f32(v: &[f32]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_is_deterministic_and_shaped() {
        let a = completion(7, 5, true);
        assert_eq!(a, completion(7, 5, true));
        assert_ne!(a, completion(8, 5, true));
        assert_eq!(a.len(), 5);
        assert!(a[0].chars().next().is_some_and(char::is_uppercase));
        assert!(a[1].starts_with(' '));
        assert!(a[4].ends_with('.'));
        assert!(!completion(7, 5, false)[4].ends_with('.'));
        assert!(completion(7, 0, true).is_empty());
    }

    #[test]
    fn stop_sequences_cut_before_the_first_hit() {
        let tokens: Vec<String> = ["Alpha", " beta", " gamma", " delta."]
            .map(str::to_owned)
            .into();
        let stops = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let (kept, hit) = cut_at_stop(&tokens, &stops(&["delta", " gam"])).expect("a hit");
        assert_eq!(
            (kept, hit.as_str()),
            (vec!["Alpha".into(), " beta".into()], " gam")
        );
        let (kept, _) = cut_at_stop(&tokens, &stops(&["ta g"])).expect("inside a token");
        assert_eq!(kept, ["Alpha", " be"]);
        assert!(cut_at_stop(&tokens, &stops(&["zeta", ""])).is_none());
    }

    #[test]
    fn token_estimate_rounds_up() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(8), 2);
        assert_eq!(estimate_tokens(9), 3);
    }

    #[test]
    fn embeddings_are_unit_length_and_stable() {
        let v = embedding(1, "hello", 32);
        assert_eq!(v.len(), 32);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(v, embedding(1, "hello", 32));
        assert_ne!(v, embedding(1, "world", 32));
    }

    #[test]
    fn base64_matches_known_values() {
        // 1.0f32 little-endian is 00 00 80 3f.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 1.0]), "AACAPwAAgD8=");
        assert_eq!(base64_f32(&[1.0, 1.0, 1.0]), "AACAPwAAgD8AAIA/");
    }

    #[test]
    fn ids_are_alphanumeric() {
        let id = alphanumeric(3, 29);
        assert_eq!(id.len(), 29);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
