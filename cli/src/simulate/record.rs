//! Decision records read back from the proxy's access log (`docs/decision-records.md`).

use std::borrow::Cow;

use serde::Deserialize;
use switchyard_dsl::RequestFeatures;

/// The highest record version this tool understands.
pub(crate) const KNOWN_VERSION: u32 = 1;

/// One access-log line: the envelope every log line has.
#[derive(Debug, Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow)]
    target: Cow<'a, str>,
    #[serde(borrow)]
    fields: Record<'a>,
}

/// Recorded header values by name, in record order.
pub(crate) type Headers<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// The fields of a decision record that a replay reads; unknown fields are ignored, so newer
/// records stay readable.
#[derive(Debug, Deserialize)]
pub(crate) struct Record<'a> {
    #[serde(default)]
    pub record: u32,
    #[serde(borrow, default)]
    pub requested_model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub team: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub user: Option<Cow<'a, str>>,
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(borrow, default, deserialize_with = "header_map")]
    pub headers: Headers<'a>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(borrow, default)]
    pub provider: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    /// Unix seconds, from the envelope's timestamp.
    #[serde(skip)]
    pub time: u64,
}

/// What one log line is to a replay.
#[derive(Debug)]
pub(crate) enum Line<'a> {
    /// A routed request.
    Request(Box<Record<'a>>),
    /// Another log line, or a request that never reached routing (no `requested_model`).
    Other,
}

/// Parses one line of the access log.
pub(crate) fn parse(line: &[u8]) -> Result<Line<'_>, String> {
    let envelope: Envelope<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if envelope.target != "switchyard::access" || envelope.fields.requested_model.is_none() {
        return Ok(Line::Other);
    }
    let mut record = envelope.fields;
    let time = humantime::parse_rfc3339(&envelope.timestamp)
        .map_err(|e| format!("timestamp `{}`: {e}", envelope.timestamp))?;
    record.time = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Line::Request(Box::new(record)))
}

impl Record<'_> {
    /// Input tokens to price and count: the provider's count, else the estimate.
    pub fn input(&self) -> u64 {
        self.input_tokens.or(self.prompt_tokens).unwrap_or(0)
    }

    pub fn output(&self) -> u64 {
        self.output_tokens.unwrap_or(0)
    }
}

impl RequestFeatures for Record<'_> {
    fn model(&self) -> &str {
        self.requested_model.as_deref().unwrap_or_default()
    }
    fn header(&self, lower_case_name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(lower_case_name))
            .map(|(_, v)| v.as_ref())
    }
    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    fn team(&self) -> Option<&str> {
        self.team.as_deref()
    }
    fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
    fn prompt_tokens(&self) -> u64 {
        self.prompt_tokens.or(self.input_tokens).unwrap_or(0)
    }
    fn stream(&self) -> bool {
        self.stream
    }
}

/// The `headers` object as a list of pairs: a handful of entries, no map needed.
fn header_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Headers<'de>, D::Error> {
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Headers<'de>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of header values")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::new();
            while let Some((k, v)) = map.next_entry::<Borrowed<'de>, Borrowed<'de>>()? {
                pairs.push((k.0, v.0));
            }
            Ok(pairs)
        }
    }
    d.deserialize_map(Pairs)
}

/// A string borrowed from the input when it has no escapes.
#[derive(Deserialize)]
struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
