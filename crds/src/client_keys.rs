//! Client keys from Secrets: the one format both the standalone proxy (Secret documents in its
//! config folder) and the operator (Secrets in its namespace) read.
//!
//! A Secret labelled `switchyard.dev/client-keys: "true"` holds one entry per key: the entry
//! name is the key id, the value a YAML or JSON object
//! `{key | keyHash, team?, user?, allowIps?, expiresAt?}`. `keyHash` is the hex SHA-256 of
//! the key; `expiresAt` is RFC 3339 (`2026-12-31T23:59:59Z`). Parsing hashes `key` at once:
//! the result ([`ClientKey`]) holds only the hash, and problems never quote a value.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
pub use switchyard_dsl::channel::ClientKey;

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

/// Whether the Secret carries the client-keys label.
pub fn is_client_keys_secret(secret: &Secret) -> bool {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CLIENT_KEYS_LABEL))
        .is_some_and(|v| v == "true")
}

/// Hex SHA-256 of a key.
pub fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The entries of a labelled Secret (`stringData` wins over `data`), in key-id order, each
/// parsed or with the reason it was left out (naming the key id, never a value). An
/// unlabelled Secret gives nothing.
pub fn secret_entries(secret: &Secret) -> Vec<(String, Result<ClientKey, String>)> {
    if !is_client_keys_secret(secret) {
        return Vec::new();
    }
    let mut values: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    if let Some(d) = &secret.data {
        values.extend(d.iter().map(|(k, v)| (k.clone(), v.0.clone())));
    }
    if let Some(d) = &secret.string_data {
        values.extend(d.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())));
    }
    values
        .into_iter()
        .map(|(id, value)| {
            let parsed = entry(&id, &value);
            (id, parsed)
        })
        .collect()
}

/// Parses one entry (the Secret value of key id `id`).
pub fn entry(id: &str, value: &[u8]) -> Result<ClientKey, String> {
    // A deep or huge YAML value would make the parser crawl: refuse it before parsing.
    if let Err(e) = crate::load::limits::check(&String::from_utf8_lossy(value)) {
        return Err(format!(
            "not a valid entry (line {}, column {}): {}",
            e.line,
            e.column,
            e.message()
        ));
    }
    // The YAML error could quote the value (the key): report only its position.
    let doc: EntryDoc = yaml_serde::from_slice(value).map_err(|e| match e.location() {
        Some(l) => format!(
            "not a valid entry (line {}, column {}); expected {{key, team, user?, allowIps?, expiresAt?}}",
            l.line(),
            l.column()
        ),
        None => "not a valid entry; expected {key, team, user?, allowIps?, expiresAt?}".into(),
    })?;
    let sha256 = match (&doc.key, &doc.key_hash) {
        (Some(k), None) if !k.trim().is_empty() => sha256_hex(k.trim()),
        (None, Some(h)) => {
            let h = h.trim().to_ascii_lowercase();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("`keyHash` is not 64 hex digits".into());
            }
            h
        }
        _ => return Err("give exactly one of `key` and `keyHash`".into()),
    };
    for s in &doc.allow_ips {
        if !valid_net(s) {
            return Err(format!("`{s}` in `allowIps` is not an address or CIDR"));
        }
    }
    let expires_at = match &doc.expires_at {
        Some(t) => Some(parse_rfc3339(t).ok_or_else(|| {
            format!("`expiresAt` `{t}` is not an RFC 3339 time like 2026-12-31T23:59:59Z")
        })?),
        None => None,
    };
    Ok(ClientKey {
        id: id.to_string(),
        sha256,
        team: doc.team,
        user: doc.user,
        allow_ips: doc.allow_ips.iter().map(|s| s.trim().to_string()).collect(),
        expires_at,
    })
}

/// An address or `address/prefix`.
fn valid_net(s: &str) -> bool {
    let (a, p) = match s.trim().split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s.trim(), None),
    };
    let Ok(addr) = a.parse::<IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    p.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn entries_parse_hashed_and_problems_hide_the_key() {
        let e = entry(
            "alpha",
            br#"{"key": "sk-a", "team": "t", "allowIps": ["10.0.0.0/8"], "expiresAt": "2030-01-01T00:00:00Z"}"#,
        )
        .expect("valid");
        assert_eq!(e.sha256, sha256_hex("sk-a"));
        assert_eq!(e.team.as_deref(), Some("t"));
        assert_eq!(e.allow_ips, vec!["10.0.0.0/8".to_string()]);
        assert!(!serde_json::to_string(&e).expect("json").contains("sk-a"));
        let yaml = b"key: sk-b\nteam: support\nuser: ann\n";
        assert_eq!(entry("b", yaml).expect("yaml").user.as_deref(), Some("ann"));
        let err = entry("c", b"{\"key\": \"sk-secret\", \"tem\": 1}").expect_err("unknown field");
        assert!(!err.contains("sk-secret"), "{err}");
        assert!(entry("d", b"{\"team\": \"t\"}").is_err());
        assert!(entry("e", b"{\"key\": \"k\", \"allowIps\": [\"10.0.0.0/33\"]}").is_err());
        let hashed = format!("{{\"keyHash\": \"{}\"}}", sha256_hex("x").to_uppercase());
        assert_eq!(
            entry("f", hashed.as_bytes()).expect("hash").sha256,
            sha256_hex("x")
        );
    }
}
