//! Tool calls, wire-neutral: whether a request that offers tools gets a call, which tool,
//! and the call's arguments — all deterministic functions of the request and the seed.
//!
//! The rule, the same for every wire format:
//!
//! - a `tool_call` fault forces a call (its `name`, else the first tool offered, else
//!   `mock_tool`; its `arguments`, else ones made from the tool's schema) — or, with
//!   `calls: 0`, forces text even where a call would come: as the default fault it makes
//!   agent clients (Claude Code, Codex) end their run after one answer, where the random
//!   calls below would keep them looping;
//! - no tools offered, or a tool choice of "none": text;
//! - a choice that demands a tool ("required" / "any" / a named tool): a call;
//! - "auto" (or no choice): a call, unless the request is answering a tool result (its last
//!   turn carries tool output), in which case text — so a two-step tool loop ends.

use serde_json::{Map, Value, json};

use crate::text::{self, Rng};

/// A tool the request offers: its name and the JSON Schema of its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// The function's name.
    pub name: String,
    /// Its parameters' JSON Schema (`Null` when it has none).
    pub schema: Value,
}

/// What the request says about calling tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The model decides (the default).
    Auto,
    /// Never call a tool.
    None,
    /// Call some tool.
    Any,
    /// Call this tool.
    Named(String),
}

/// A `tool_call` fault's demands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Forced {
    /// The tool to call.
    pub name: Option<String>,
    /// The arguments to send.
    pub arguments: Option<Value>,
    /// Text said before the call (a text block or content beside it).
    pub text: Option<String>,
    /// Calls in one answer (parallel tool calls); 1 when absent; 0 answers with text.
    pub calls: Option<u32>,
}

/// A tool call to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The tool's name.
    pub name: String,
    /// The arguments, a JSON object.
    pub arguments: Value,
    /// Text said before the call, if any.
    pub text: Option<String>,
}

impl Call {
    /// The arguments as compact JSON text.
    pub fn arguments_json(&self) -> String {
        self.arguments.to_string()
    }

    /// Tokens the call counts as output: `ceil(chars / 4)` of name and arguments, at least 1,
    /// plus the words of its text.
    pub fn tokens(&self) -> u32 {
        let text = u32::try_from(self.text_tokens().len()).unwrap_or(u32::MAX);
        text::estimate_tokens(self.name.chars().count() + self.arguments_json().chars().count())
            .max(1)
            + text
    }

    /// The text before the call as tokens, one per word (later words with their leading
    /// space); empty without text.
    pub fn text_tokens(&self) -> Vec<String> {
        let Some(text) = self.text.as_deref().filter(|t| !t.is_empty()) else {
            return Vec::new();
        };
        text.split(' ')
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    w.to_owned()
                } else {
                    format!(" {w}")
                }
            })
            .collect()
    }
}

/// Decide whether to answer with a tool call; see the module docs for the rule.
pub fn decide(
    tools: &[Tool],
    choice: &Choice,
    answering_tool_result: bool,
    forced: Option<&Forced>,
    seed: u64,
) -> Option<Call> {
    if let Some(forced) = forced {
        if forced.calls == Some(0) {
            return None;
        }
        let name = forced
            .name
            .clone()
            .or_else(|| tools.first().map(|t| t.name.clone()))
            .unwrap_or_else(|| "mock_tool".to_owned());
        let arguments = forced.arguments.clone().unwrap_or_else(|| {
            let schema = tools
                .iter()
                .find(|t| t.name == name)
                .map_or(Value::Null, |t| t.schema.clone());
            arguments(&schema, text::derive_seed(seed, &["tool-args", &name]))
        });
        return Some(Call {
            name,
            arguments,
            text: forced.text.clone(),
        });
    }
    let first = tools.first()?;
    let (name, schema) = match choice {
        Choice::None => return None,
        Choice::Auto if answering_tool_result => return None,
        Choice::Named(name) => (
            name.clone(),
            tools
                .iter()
                .find(|t| &t.name == name)
                .map_or(Value::Null, |t| t.schema.clone()),
        ),
        Choice::Auto | Choice::Any => (first.name.clone(), first.schema.clone()),
    };
    let arguments = arguments(&schema, text::derive_seed(seed, &["tool-args", &name]));
    Some(Call {
        name,
        arguments,
        text: None,
    })
}

/// The calls of one answer: `first`, then for a `tool_call` fault with `calls: N` the next
/// N - 1 tools offered in order (wrapping around; the same name again when none are
/// offered), each with arguments from its schema and no text.
pub fn parallel(first: Call, tools: &[Tool], forced: Option<&Forced>, seed: u64) -> Vec<Call> {
    let count = forced.and_then(|f| f.calls).unwrap_or(1).max(1) as usize;
    let start = tools.iter().position(|t| t.name == first.name).unwrap_or(0);
    let mut calls = Vec::with_capacity(count);
    for i in 1..count {
        let (name, schema) = match tools.get((start + i) % tools.len().max(1)) {
            Some(t) => (t.name.clone(), t.schema.clone()),
            None => (first.name.clone(), Value::Null),
        };
        let seed = text::derive_seed(seed, &["tool-args", &name, &i.to_string()]);
        calls.push(Call {
            arguments: arguments(&schema, seed),
            name,
            text: None,
        });
    }
    calls.insert(0, first);
    calls
}

/// Arguments that fit `schema`: `enum`/`const` take their first value, strings are two
/// seeded words, integers 1–100, numbers one decimal, booleans seeded; objects fill their
/// `required` properties (all of them when none are listed); arrays hold one item. Type
/// names are matched case-insensitively (Gemini writes `STRING`, `OBJECT`).
pub fn arguments(schema: &Value, seed: u64) -> Value {
    let mut rng = Rng::new(seed);
    let value = value_for(schema, &mut rng, 0);
    if value.is_object() { value } else { json!({}) }
}

fn value_for(schema: &Value, rng: &mut Rng, depth: u32) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.eq_ignore_ascii_case("null"))
            .unwrap_or("null")
            .to_ascii_lowercase(),
        _ if schema.get("properties").is_some() || depth == 0 => "object".to_owned(),
        _ => "string".to_owned(),
    };
    match ty.as_str() {
        "object" => {
            let mut out = Map::new();
            if depth >= 4 {
                return Value::Object(out);
            }
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return Value::Object(out);
            };
            let required: Option<Vec<&str>> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect());
            for (name, property) in properties {
                if required.as_ref().is_none_or(|r| r.contains(&name.as_str())) {
                    out.insert(name.clone(), value_for(property, rng, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" if depth < 4 => {
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            json!([value_for(&items, rng, depth + 1)])
        }
        "array" => json!([]),
        "integer" => json!(1 + rng.below(100)),
        "number" => json!(f64::from(u32::try_from(rng.below(1000)).unwrap_or(0)) / 10.0),
        "boolean" => json!(rng.below(2) == 0),
        "null" => Value::Null,
        _ => json!(
            text::completion(rng.next_u64(), 2, false)
                .concat()
                .to_lowercase()
        ),
    }
}

/// `text` in `n` pieces of about equal length (on char boundaries), for streamed arguments.
pub fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    let size = chars.len().div_ceil(n.max(1));
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> Tool {
        Tool {
            name: "get_weather".into(),
            schema: json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "INTEGER"},
                    "detailed": {"type": "boolean"}
                },
                "required": ["city", "unit", "days"]
            }),
        }
    }

    #[test]
    fn arguments_fit_the_schema_and_repeat() {
        let args = arguments(&weather().schema, 7);
        assert_eq!(args, arguments(&weather().schema, 7));
        assert!(args["city"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(args["unit"], "celsius");
        assert!(
            args["days"]
                .as_u64()
                .is_some_and(|d| (1..=100).contains(&d))
        );
        assert!(args.get("detailed").is_none(), "not required: {args}");
        assert_eq!(arguments(&Value::Null, 1), json!({}));
    }

    #[test]
    fn the_rule() {
        let tools = [weather()];
        let call = |choice: &Choice, answered: bool| decide(&tools, choice, answered, None, 1);
        assert!(call(&Choice::Auto, false).is_some());
        assert!(call(&Choice::Auto, true).is_none());
        assert!(call(&Choice::Any, true).is_some());
        assert!(call(&Choice::None, false).is_none());
        assert_eq!(
            call(&Choice::Named("x".into()), false).map(|c| c.name),
            Some("x".into())
        );
        assert!(decide(&[], &Choice::Any, false, None, 1).is_none());
        let forced = Forced {
            name: None,
            arguments: Some(json!({"a": 1})),
            text: Some("Let me look.".into()),
            calls: None,
        };
        let call = decide(&[], &Choice::None, true, Some(&forced), 1).expect("forced");
        assert_eq!(call.name, "mock_tool");
        assert_eq!(call.arguments, json!({"a": 1}));
        assert_eq!(call.text_tokens(), ["Let", " me", " look."]);
        // `calls: 0` answers with text even where a call is demanded.
        let text = Forced {
            calls: Some(0),
            ..Forced::default()
        };
        assert!(decide(&tools, &Choice::Any, false, Some(&text), 1).is_none());
        assert!(decide(&tools, &Choice::Auto, false, Some(&text), 1).is_none());
    }

    #[test]
    fn pieces_rejoin() {
        let p = pieces(r#"{"city":"paris"}"#, 3);
        assert_eq!(p.len(), 3);
        assert_eq!(p.concat(), r#"{"city":"paris"}"#);
        assert_eq!(pieces("", 3), vec![String::new()]);
    }
}
