//! Client keys: from Secret documents in the config folder (standalone) or from the hashed
//! entries the operator sends in the snapshot envelope (Kubernetes). The Secret format and
//! its parsing live in `switchyard_crds::client_keys`, shared with the operator.

use switchyard_crds::Config;
use switchyard_crds::client_keys::{ClientKey, secret_entries};

use super::{IpNet, KeyEntry, KeyHash, KeyTable};

pub use switchyard_crds::client_keys::{CLIENT_KEYS_LABEL, parse_rfc3339};

/// The key table of every labelled Secret, and the problems of entries left out (which
/// name the Secret and entry, never a value).
pub fn from_secrets(config: &Config) -> (KeyTable, Vec<String>) {
    let mut table = KeyTable::default();
    let mut problems = Vec::new();
    for secret in &config.secrets {
        let name = secret.qualified_name();
        for (id, parsed) in secret_entries(&secret.object) {
            match parsed.and_then(|k| table_entry(&k)) {
                Ok((hash, e)) => table.insert(hash, e),
                Err(why) => problems.push(format!("secret `{name}`, key id `{id}`: {why}")),
            }
        }
    }
    (table, problems)
}

/// The key table of the hashed entries in a snapshot envelope, and the problems of entries
/// left out.
pub fn from_client_keys(keys: &[ClientKey]) -> (KeyTable, Vec<String>) {
    let mut table = KeyTable::default();
    let mut problems = Vec::new();
    for key in keys {
        match table_entry(key) {
            Ok((hash, e)) => table.insert(hash, e),
            Err(why) => problems.push(format!("key id `{}`: {why}", key.id)),
        }
    }
    (table, problems)
}

fn table_entry(key: &ClientKey) -> Result<(KeyHash, KeyEntry), String> {
    let hash = KeyHash::from_hex(&key.sha256).ok_or("`sha256` is not 64 hex digits")?;
    let allow_ips = key
        .allow_ips
        .iter()
        .map(|s| {
            IpNet::parse(s).ok_or_else(|| format!("`{s}` in `allowIps` is not an address or CIDR"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        hash,
        KeyEntry {
            id: key.id.clone(),
            team: key.team.clone(),
            user: key.user.clone(),
            allow_ips,
            expires_at: key.expires_at,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_crds::client_keys::entry;

    #[test]
    fn entries_become_table_entries() {
        let k = entry(
            "alpha",
            br#"{"key": "sk-a", "team": "t", "allowIps": ["10.0.0.0/8"], "expiresAt": "2030-01-01T00:00:00Z"}"#,
        )
        .expect("valid");
        let (table, problems) = from_client_keys(&[k]);
        assert!(problems.is_empty(), "{problems:?}");
        let e = &table.entries[&KeyHash::of("sk-a")];
        assert_eq!(e.id, "alpha");
        assert_eq!(e.team.as_deref(), Some("t"));
        assert_eq!(e.allow_ips.len(), 1);
        assert_eq!(e.expires_at, parse_rfc3339("2030-01-01T00:00:00Z"));
        let bad = ClientKey {
            id: "b".into(),
            sha256: "zz".into(),
            team: None,
            user: None,
            allow_ips: Vec::new(),
            expires_at: None,
        };
        let (table, problems) = from_client_keys(&[bad]);
        assert!(table.is_empty());
        assert_eq!(problems.len(), 1);
    }
}
