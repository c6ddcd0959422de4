//! Session keys that live in the request body: `affinity by body("a.b")` and
//! `affinity by prefix(N)`, read from the raw JSON without decoding more than they need.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use switchyard_dsl::affinity::PrefixHasher;

/// Finds one member of a JSON object, skipping the others without decoding them.
struct Member<'p>(&'p str);

impl<'de> DeserializeSeed<'de> for Member<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if found.is_none() && key == self.0 {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The string or number at the dotted `path` of a JSON object (a number as written); `None`
/// when it is missing, of another type, or the body is not an object.
pub fn body_field<'a>(body: &'a [u8], path: &str) -> Option<Cow<'a, str>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut raw: &'a str = text;
    for name in path.split('.') {
        let mut de = serde_json::Deserializer::from_str(raw);
        raw = Member(name).deserialize(&mut de).ok()??.get();
    }
    let raw = raw.trim();
    if raw.starts_with('"') {
        #[derive(Deserialize)]
        struct Str<'a>(#[serde(borrow)] Cow<'a, str>);
        serde_json::from_str::<Str<'a>>(raw).ok().map(|s| s.0)
    } else if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Some(Cow::Borrowed(raw))
    } else {
        None
    }
}

/// One chat message: its role and undecoded content.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// A content part; only text parts count.
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

/// Feeds messages to the hasher until it has what it wants, then skips the rest.
struct Feed<'h>(&'h mut PrefixHasher);

impl<'de> DeserializeSeed<'de> for Feed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Feed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while self.0.wants_more() {
            let Some(m) = seq.next_element::<Message<'de>>()? else {
                return Ok(());
            };
            let role = m.role.as_deref().unwrap_or("");
            let content = m.content.map(RawValue::get).unwrap_or("null").trim();
            if content.starts_with('"') {
                let text: Cow<'_, str> = serde_json::from_str(content).unwrap_or_default();
                self.0.message(role, [text.as_ref()]);
            } else if content.starts_with('[') {
                let parts: Vec<Part<'_>> = serde_json::from_str(content).unwrap_or_default();
                self.0
                    .message(role, parts.iter().filter_map(|p| p.text.as_deref()));
            } else {
                self.0.message(role, []);
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// The `prefix(tokens)` session hash of a chat `messages` array on `route`.
pub fn prefix(route: &str, tokens: u32, messages: &RawValue) -> Option<u64> {
    let mut hasher = PrefixHasher::new(route, tokens);
    let mut de = serde_json::Deserializer::from_str(messages.get());
    Feed(&mut hasher).deserialize(&mut de).ok()?;
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_fields_by_path() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}],
            "prompt_cache_key":"conv-\u00e9","metadata":{"user_id":"u-7","n":42,"o":{}},"user":""}"#;
        assert_eq!(
            body_field(body, "prompt_cache_key").as_deref(),
            Some("conv-é")
        );
        assert_eq!(body_field(body, "metadata.user_id").as_deref(), Some("u-7"));
        assert_eq!(body_field(body, "metadata.n").as_deref(), Some("42"));
        assert_eq!(body_field(body, "metadata.o"), None, "an object is no key");
        assert_eq!(body_field(body, "metadata.missing"), None);
        assert_eq!(body_field(body, "model.x"), None, "a string has no members");
        assert_eq!(body_field(b"[1]", "a"), None);
        assert_eq!(body_field(body, "user").as_deref(), Some(""));
    }

    /// The proxy's borrowed reading and the dsl's reading of a decoded body agree, so
    /// `switchyard explain` and every replica map a conversation alike.
    #[test]
    fn prefix_matches_the_dsl() {
        let messages = serde_json::json!([
            {"role": "system", "content": [{"type": "text", "text": "be brief"}, {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "user", "content": "hi \"there\""},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "user", "content": "more"}
        ]);
        let raw = serde_json::value::to_raw_value(&messages).expect("raw");
        for tokens in [1, 2, 3, 100] {
            assert_eq!(
                prefix("r", tokens, &raw),
                switchyard_dsl::affinity::prefix_of_messages("r", tokens, &messages),
                "{tokens}"
            );
        }
        assert!(prefix("r", 100, &raw).is_some());
        let empty = serde_json::value::to_raw_value(&serde_json::json!([])).expect("raw");
        assert_eq!(prefix("r", 100, &empty), None);
    }
}
