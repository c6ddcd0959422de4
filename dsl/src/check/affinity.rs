//! `affinity by KEY [for D]`: the session key's source and the idle time, validated.

use super::{CheckedAffinity, Cx};
use crate::affinity::{MAX_BODY_PATH_DEPTH, MAX_IDLE_MS, MAX_PREFIX_TOKENS, MIN_IDLE_MS};
use crate::ast::{AffinityArg, AffinityBy, Quantity, StrLit};
use crate::ir::AffinityKey;
use crate::units;

/// The session sources, as written.
const SOURCES: [&str; 5] = ["header", "body", "prefix", "key", "user"];
const SOURCES_HELP: &str = "a session is identified by `header(\"NAME\")`, `body(\"FIELD\")`, `prefix(N)` (the first N tokens of the conversation), `key` or `user`";

impl Cx<'_> {
    pub(super) fn affinity(
        &mut self,
        by: &AffinityBy,
        idle: Option<&Quantity>,
    ) -> Option<CheckedAffinity> {
        let key = self.affinity_key(by);
        let idle_ms = match idle {
            None => Some(None),
            Some(q) => self.affinity_idle(q).map(Some),
        };
        Some(CheckedAffinity {
            by: key?,
            idle_ms: idle_ms?,
        })
    }

    fn affinity_key(&mut self, by: &AffinityBy) -> Option<AffinityKey> {
        let name = by.name.name.as_str();
        match (name, &by.arg) {
            ("header", Some(AffinityArg::Str(s))) => self.header_name(s).map(AffinityKey::Header),
            ("body", Some(AffinityArg::Str(s))) => self.body_path(s).map(AffinityKey::Body),
            ("prefix", Some(AffinityArg::Quantity(q))) => {
                let n = self.unit(q, units::count)?;
                if n == 0 || n > u64::from(MAX_PREFIX_TOKENS) {
                    self.error(
                        q.span,
                        format!("`prefix({})` is out of range", units::written(q)),
                        "tokens of the conversation",
                        format!(
                            "hash between 1 and {MAX_PREFIX_TOKENS} tokens of the conversation's start, e.g. `prefix(1k)`"
                        ),
                    );
                    return None;
                }
                Some(AffinityKey::Prefix { tokens: n as u32 })
            }
            ("key", None) => Some(AffinityKey::Key),
            ("user", None) => Some(AffinityKey::User),
            ("header" | "body", _) => {
                self.error(
                    by.span,
                    format!("`affinity by {name}` needs a name in double quotes"),
                    "no name",
                    format!("write `{name}(\"x-session-id\")`"),
                );
                None
            }
            ("prefix", _) => {
                self.error(
                    by.span,
                    "`affinity by prefix` needs a number of tokens".into(),
                    "no token count",
                    "write `prefix(N)` with a count, e.g. `prefix(1k)`",
                );
                None
            }
            ("key" | "user", Some(_)) => {
                self.error(
                    by.span,
                    format!("`affinity by {name}` takes no argument"),
                    "argument not expected",
                    format!(
                        "write `affinity by {name}`: the {} is the session",
                        if name == "key" {
                            "client key"
                        } else {
                            "client key's user"
                        }
                    ),
                );
                None
            }
            (other, _) => {
                let help = format!(
                    "{}{SOURCES_HELP}",
                    super::resolve::did_you_mean(other, SOURCES)
                );
                self.error(
                    by.name.span,
                    format!("unknown session key `{other}`"),
                    "not a session source",
                    help,
                );
                None
            }
        }
    }

    /// `"metadata.user_id"`: non-empty names separated by `.`, at most
    /// [`MAX_BODY_PATH_DEPTH`] of them.
    fn body_path(&mut self, s: &StrLit) -> Option<String> {
        let parts: Vec<&str> = s.value.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            self.error(
                s.span,
                format!("`body(\"{}\")` is not a field name", s.value),
                "empty name",
                "name a member of the JSON body, e.g. `body(\"prompt_cache_key\")`, or a nested one with dots: `body(\"metadata.user_id\")`",
            );
            return None;
        }
        if parts.len() > MAX_BODY_PATH_DEPTH {
            self.error(
                s.span,
                format!("`body(\"{}\")` is nested too deeply", s.value),
                "too deep",
                format!("a body field is at most {MAX_BODY_PATH_DEPTH} names deep"),
            );
            return None;
        }
        Some(s.value.clone())
    }

    fn affinity_idle(&mut self, q: &Quantity) -> Option<u64> {
        let ms = self.unit(q, units::duration_ms)?;
        if !(MIN_IDLE_MS..=MAX_IDLE_MS).contains(&ms) {
            self.error(
                q.span,
                format!("`affinity ... for {}` is out of range", units::written(q)),
                "how long an idle session is remembered",
                format!(
                    "remember a session between {} and {}, e.g. `for 10m` (prompt caches last minutes to an hour)",
                    units::format_duration_ms(MIN_IDLE_MS),
                    units::format_duration_ms(MAX_IDLE_MS)
                ),
            );
            return None;
        }
        Some(ms)
    }
}
