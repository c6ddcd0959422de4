//! Client keys from Secret documents in the config folder.
//!
//! A Secret labelled `switchyard.dev/client-keys: "true"` holds one entry per key: the entry
//! name is the key id, the value a YAML or JSON object
//! `{key | keyHash, team?, user?, allowIps?, expiresAt?}`. `keyHash` is the hex SHA-256 of
//! the key (what the operator passes); `expiresAt` is RFC 3339 (`2026-12-31T23:59:59Z`).

use serde::Deserialize;
use switchyard_crds::Config;

use super::{IpNet, KeyEntry, KeyHash, KeyTable};
use crate::quota::window::days_from_civil;

/// The label that marks a Secret as a client-key table.
pub const CLIENT_KEYS_LABEL: &str = "switchyard.dev/client-keys";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EntryDoc {
    key: Option<String>,
    key_hash: Option<String>,
    team: Option<String>,
    user: Option<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
    expires_at: Option<String>,
}

/// The key table of every labelled Secret, and the problems of entries left out (which
/// name the Secret and entry, never a value).
pub fn from_secrets(config: &Config) -> (KeyTable, Vec<String>) {
    let mut table = KeyTable::default();
    let mut problems = Vec::new();
    for secret in &config.secrets {
        let s = &secret.object;
        let labelled = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CLIENT_KEYS_LABEL))
            .is_some_and(|v| v == "true");
        if !labelled {
            continue;
        }
        let name = secret.qualified_name();
        let mut values: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(d) = &s.data {
            values.extend(d.iter().map(|(k, v)| (k.clone(), v.0.clone())));
        }
        if let Some(d) = &s.string_data {
            for (k, v) in d {
                values.retain(|(n, _)| n != k);
                values.push((k.clone(), v.clone().into_bytes()));
            }
        }
        for (id, value) in values {
            match entry(&id, &value) {
                Ok((hash, e)) => table.insert(hash, e),
                Err(why) => problems.push(format!("secret `{name}`, key id `{id}`: {why}")),
            }
        }
    }
    (table, problems)
}

fn entry(id: &str, value: &[u8]) -> Result<(KeyHash, KeyEntry), String> {
    // The YAML error could quote the value (the key): report only its position.
    let doc: EntryDoc = yaml_serde::from_slice(value).map_err(|e| match e.location() {
        Some(l) => format!(
            "not a valid entry (line {}, column {}); expected {{key, team, user?, allowIps?, expiresAt?}}",
            l.line(),
            l.column()
        ),
        None => "not a valid entry; expected {key, team, user?, allowIps?, expiresAt?}".into(),
    })?;
    let hash = match (&doc.key, &doc.key_hash) {
        (Some(k), None) if !k.trim().is_empty() => KeyHash::of(k.trim()),
        (None, Some(h)) => KeyHash::from_hex(h).ok_or("`keyHash` is not 64 hex digits")?,
        _ => return Err("give exactly one of `key` and `keyHash`".into()),
    };
    let allow_ips = doc
        .allow_ips
        .iter()
        .map(|s| {
            IpNet::parse(s).ok_or_else(|| format!("`{s}` in `allowIps` is not an address or CIDR"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let expires_at = match &doc.expires_at {
        Some(t) => Some(parse_rfc3339(t).ok_or_else(|| {
            format!("`expiresAt` `{t}` is not an RFC 3339 time like 2026-12-31T23:59:59Z")
        })?),
        None => None,
    };
    Ok((
        hash,
        KeyEntry {
            id: id.to_string(),
            team: doc.team,
            user: doc.user,
            allow_ips,
            expires_at,
        },
    ))
}

/// Unix seconds of an RFC 3339 time (`Z` or `±hh:mm`, fractions ignored); a bare date means
/// its midnight UTC.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let s = s.trim();
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if s.get(4..5)? != "-"
        || s.get(7..8)? != "-"
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let days = days_from_civil(y, m as u32, d as u32);
    if s.len() == 10 {
        return u64::try_from(days * 86_400).ok();
    }
    if !matches!(s.get(10..11)?, "T" | "t" | " ") || s.get(13..14)? != ":" || s.get(16..17)? != ":"
    {
        return None;
    }
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.get(3..4)? != ":" {
                return None;
            }
            let oh = rest.get(1..3)?.parse::<i64>().ok()?;
            let om = rest.get(4..6)?.parse::<i64>().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss - offset).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-22T02:30:00Z"), Some(1_795_314_600));
        assert_eq!(
            parse_rfc3339("2026-11-22T03:30:00+01:00"),
            Some(1_795_314_600)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T02:30:00.123Z"),
            Some(1_795_314_600)
        );
        assert_eq!(parse_rfc3339("2026-11-22"), Some(1_795_305_600));
        assert_eq!(parse_rfc3339("tomorrow"), None);
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn entries_parse_and_problems_hide_the_key() {
        let (h, e) = entry(
            "alpha",
            br#"{"key": "sk-a", "team": "t", "allowIps": ["10.0.0.0/8"], "expiresAt": "2030-01-01T00:00:00Z"}"#,
        )
        .expect("valid");
        assert_eq!(h, KeyHash::of("sk-a"));
        assert_eq!(e.team.as_deref(), Some("t"));
        assert_eq!(e.allow_ips.len(), 1);
        let yaml = b"key: sk-b\nteam: support\nuser: ann\n";
        assert_eq!(
            entry("b", yaml).expect("yaml").1.user.as_deref(),
            Some("ann")
        );
        let err = entry("c", b"{\"key\": \"sk-secret\", \"tem\": 1}").expect_err("unknown field");
        assert!(!err.contains("sk-secret"), "{err}");
        assert!(entry("d", b"{\"team\": \"t\"}").is_err());
    }
}
