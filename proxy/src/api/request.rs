//! The client's JSON body seen through borrowed top-level members: only what routing needs
//! is decoded, and the upstream body is rebuilt with `model` replaced and every other member
//! copied byte for byte (unknown fields pass through untouched).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::ApiError;

/// A JSON string, borrowed when it has no escapes.
#[derive(Debug, Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

/// Top-level members in order, values undecoded.
#[derive(Debug)]
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Str(k)) = map.next_key::<Str<'de>>()? {
                    out.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// A parsed request body: the routing fields plus the raw members to rebuild it from.
#[derive(Debug)]
pub struct RequestBody<'a> {
    members: Members<'a>,
    pub model: Cow<'a, str>,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<u64>,
    /// Estimated prompt tokens: body bytes / 4 (OpenAI's rule of thumb of ~4 characters per
    /// token, applied to the whole JSON; cheap and deliberately rough).
    pub prompt_tokens: u64,
    body_len: usize,
}

fn field<'a, T: Deserialize<'a>>(raw: &'a RawValue, name: &str) -> Result<T, ApiError> {
    serde_json::from_str(raw.get())
        .map_err(|e| ApiError::invalid_field(format!("Invalid value for `{name}`: {e}")))
}

impl<'a> RequestBody<'a> {
    /// Parses the top level of `body`; 400 for invalid JSON, a non-object or a missing model.
    pub fn parse(body: &'a [u8]) -> Result<Self, ApiError> {
        if body.is_empty() {
            return Err(ApiError::malformed_json("the body is empty"));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::malformed_json("the body is not UTF-8"))?;
        let members: Members<'a> = serde_json::from_str(text).map_err(|e| {
            let detail = e.to_string();
            ApiError::malformed_json(&detail)
        })?;
        let mut model = None;
        let (mut stream, mut include_usage, mut max_tokens) = (false, false, None);
        for (k, v) in &members.0 {
            match k.as_ref() {
                "model" => {
                    let Str(m) = field::<Str<'a>>(v, "model")?;
                    model = Some(m);
                }
                "stream" => stream = field::<Option<bool>>(v, "stream")?.unwrap_or(false),
                "stream_options" => {
                    let o = field::<Option<StreamOptions>>(v, "stream_options")?;
                    include_usage = o.and_then(|o| o.include_usage).unwrap_or(false);
                }
                "max_tokens" | "max_completion_tokens" => {
                    max_tokens = field::<Option<u64>>(v, k)?.or(max_tokens);
                }
                _ => {}
            }
        }
        let model = match model {
            Some(m) if !m.is_empty() => m,
            _ => {
                return Err(ApiError::invalid_field(
                    "you must provide a model parameter",
                ));
            }
        };
        Ok(Self {
            members,
            model,
            stream,
            include_usage,
            max_tokens,
            prompt_tokens: (body.len() / 4) as u64,
            body_len: body.len(),
        })
    }

    /// A top-level member, undecoded (for session keys read from the body).
    pub fn member(&self, name: &str) -> Option<&'a RawValue> {
        self.members
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

    /// Whether the client asked the provider to keep the exchange (`"store": true`): such a
    /// request has an effect beyond its answer, so it is never sent twice (no hedging).
    pub fn stores(&self) -> bool {
        self.members
            .0
            .iter()
            .any(|(k, v)| k == "store" && v.get().trim() == "true")
    }

    /// The body for an upstream that calls the model `model`: every member as received, in
    /// order, with `model` replaced.
    pub fn rebuild(&self, model: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body_len + model.len() + 2);
        out.push(b'{');
        for (i, (k, v)) in self.members.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, k);
            out.push(b':');
            if k == "model" {
                write_json_string(&mut out, model);
            } else {
                out.extend_from_slice(v.get().as_bytes());
            }
        }
        out.push(b'}');
        out
    }
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = s.serialize(&mut serde_json::Serializer::new(out));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_fields_and_passthrough() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi \u00e9"}],
            "stream":true,"stream_options":{"include_usage":true},"x_custom":{"a":[1,2.50]},"max_tokens":7}"#;
        let r = RequestBody::parse(body).expect("parses");
        assert_eq!(r.model, "gpt-4o");
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, Some(7));
        let out = String::from_utf8(r.rebuild("gpt-4o-2024")).expect("utf8");
        assert!(out.starts_with(
            r#"{"model":"gpt-4o-2024","messages":[{"role":"user","content":"hi \u00e9"}]"#
        ));
        assert!(out.contains(r#""x_custom":{"a":[1,2.50]}"#), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid json");
        assert_eq!(v["model"], "gpt-4o-2024");
    }

    #[test]
    fn errors() {
        let code = |b: &[u8]| RequestBody::parse(b).expect_err("fails").code;
        assert_eq!(code(b""), Some("invalid_json"));
        assert_eq!(code(b"{not json"), Some("invalid_json"));
        assert_eq!(code(b"[1,2]"), Some("invalid_json"));
        assert_eq!(code(br#"{"messages":[]}"#), Some("invalid_request"));
        assert_eq!(code(br#"{"model":3}"#), Some("invalid_request"));
        assert_eq!(
            code(br#"{"model":"m","stream":"yes"}"#),
            Some("invalid_request")
        );
        let r = RequestBody::parse(br#"{"model":"a\"b","stream":null}"#).expect("ok");
        assert_eq!(r.model, "a\"b");
        assert!(!r.stream);
    }
}
