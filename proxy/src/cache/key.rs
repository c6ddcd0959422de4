//! The cache key and the determinism rule: which chat requests may be answered from the
//! cache, and the hash that says two of them would get the same answer.
//!
//! The key is SHA-256 over `switchyard-cache-v1`, the endpoint, the route name and the request
//! body in canonical form: parsed, the members in [`EXCLUDED`] removed, object keys sorted at
//! every depth, no whitespace. Everything else the client sent is in it, unknown members
//! included, so a field the proxy does not know can only cause a miss, never a wrong hit.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Top-level members that do not change the answer: who asks (`user`, `safety_identifier`),
/// how it is delivered (`stream`, `stream_options`), bookkeeping (`metadata`, `store`,
/// `service_tier`) and provider-side prompt caching hints (`prompt_cache_key`,
/// `prompt_cache_retention`).
pub const EXCLUDED: &[&str] = &[
    "user",
    "safety_identifier",
    "stream",
    "stream_options",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
];

/// Why a request on a caching route is not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Uncacheable {
    #[error("temperature is not 0 and the request did not allow caching")]
    Nondeterministic,
    #[error("more than one choice (`n` > 1)")]
    ManyChoices,
    #[error("log probabilities requested")]
    Logprobs,
    #[error("the body is not a JSON object")]
    NotAnObject,
}

/// Checks that `body` (an OpenAI chat request) may be cached. By default only requests with
/// `temperature: 0` qualify (an absent temperature means the provider's default, which is
/// not 0); `allow` (the client sent `x-switchyard-cache: allow`) accepts any temperature.
/// `n` > 1 and `logprobs` are refused because a replayed stream carries neither.
pub fn cacheable(body: &Value, allow: bool) -> Result<(), Uncacheable> {
    let obj = body.as_object().ok_or(Uncacheable::NotAnObject)?;
    if obj.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(Uncacheable::ManyChoices);
    }
    if obj.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(Uncacheable::Logprobs);
    }
    let zero = obj
        .get("temperature")
        .and_then(Value::as_f64)
        .is_some_and(|t| t == 0.0);
    if zero || allow {
        Ok(())
    } else {
        Err(Uncacheable::Nondeterministic)
    }
}

/// The hex key of `body` on `route` at `endpoint`.
pub fn key(endpoint: &str, route: &str, body: &Map<String, Value>) -> String {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"switchyard-cache-v1\0");
    out.extend_from_slice(endpoint.as_bytes());
    out.push(0);
    out.extend_from_slice(route.as_bytes());
    out.push(0);
    let mut members: Vec<(&String, &Value)> = body
        .iter()
        .filter(|(k, _)| !EXCLUDED.contains(&k.as_str()))
        .collect();
    members.sort_by(|a, b| a.0.cmp(b.0));
    write_object(&mut out, members);
    hex::encode(Sha256::digest(&out))
}

fn write_object(out: &mut Vec<u8>, members: Vec<(&String, &Value)>) {
    out.push(b'{');
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_scalar(out, &Value::String(k.clone()));
        out.push(b':');
        canonical(out, v);
    }
    out.push(b'}');
}

/// `v` with sorted object keys, whatever order `serde_json`'s map keeps.
fn canonical(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Object(m) => {
            let mut members: Vec<_> = m.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            write_object(out, members);
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(out, x);
            }
            out.push(b']');
        }
        scalar => write_scalar(out, scalar),
    }
}

fn write_scalar(out: &mut Vec<u8>, v: &Value) {
    // Writing a JSON scalar into a Vec cannot fail.
    let _ = serde_json::to_writer(out, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn k(route: &str, v: Value) -> String {
        key("chat", route, v.as_object().expect("object"))
    }

    #[test]
    fn excluded_fields_and_member_order_do_not_change_the_key() {
        let a = json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_object"}});
        let b = json!({"messages": [{"content": "hi", "role": "user"}], "stream": true,
            "stream_options": {"include_usage": true}, "user": "u-1", "metadata": {"x": "y"},
            "response_format": {"type": "json_object"}, "temperature": 0, "model": "m"});
        assert_eq!(k("r", a.clone()), k("r", b));
        assert_eq!(k("r", a.clone()).len(), 64);
        assert_ne!(k("r", a.clone()), k("other", a.clone()));
        assert_ne!(
            k("r", a.clone()),
            key("embeddings", "r", a.as_object().expect("object"))
        );
    }

    #[test]
    fn fields_that_change_the_answer_change_the_key() {
        let base = json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]});
        let same = k("r", base.clone());
        for (field, value) in [
            ("model", json!("m2")),
            ("messages", json!([{"role": "user", "content": "hi!"}])),
            (
                "tools",
                json!([{"type": "function", "function": {"name": "f"}}]),
            ),
            ("max_tokens", json!(5)),
            ("seed", json!(7)),
            ("top_p", json!(0.5)),
            ("response_format", json!({"type": "json_object"})),
            ("x_unknown", json!(1)),
        ] {
            let mut v = base.clone();
            v[field] = value;
            assert_ne!(k("r", v), same, "{field}");
        }
    }

    #[test]
    fn determinism_rule() {
        let t = |v: Value, allow| cacheable(&v, allow);
        assert_eq!(t(json!({"temperature": 0}), false), Ok(()));
        assert_eq!(t(json!({"temperature": 0.0, "n": 1}), false), Ok(()));
        assert_eq!(t(json!({}), false), Err(Uncacheable::Nondeterministic));
        assert_eq!(
            t(json!({"temperature": 0.7}), false),
            Err(Uncacheable::Nondeterministic)
        );
        assert_eq!(t(json!({"temperature": 0.7}), true), Ok(()));
        assert_eq!(t(json!({}), true), Ok(()));
        assert_eq!(
            t(json!({"temperature": 0, "n": 2}), true),
            Err(Uncacheable::ManyChoices)
        );
        assert_eq!(
            t(json!({"temperature": 0, "logprobs": true}), false),
            Err(Uncacheable::Logprobs)
        );
        assert_eq!(t(json!([1]), true), Err(Uncacheable::NotAnObject));
    }
}
