//! Client identity: virtual API keys (bearer tokens) mapped to a key id, team and optional
//! user, with optional IP allowlists and expiry. Only SHA-256 hashes of keys are held; a key
//! never appears in logs, metrics, errors or `Debug` output.

mod keys;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

pub use keys::{CLIENT_KEYS_LABEL, from_client_keys, from_secrets, parse_rfc3339};

/// SHA-256 of a client key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// Hashes a presented key.
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Parses 64 hex digits (how the operator passes hashes).
    pub fn from_hex(hex_digits: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_digits.trim(), &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}…", hex::encode(&self.0[..4]))
    }
}

/// An IPv4 or IPv6 network in CIDR notation; a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<Self> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max)?,
            None => max,
        };
        Some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// What a key grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key id: what budgets, logs and metrics name (never the key).
    pub id: String,
    pub team: Option<String>,
    pub user: Option<String>,
    /// Empty: any address.
    pub allow_ips: Vec<IpNet>,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<u64>,
}

/// The client key table: hashes to entries. Plain data; the operator can build it from
/// hashes it computed itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyTable {
    pub entries: HashMap<KeyHash, KeyEntry>,
}

impl KeyTable {
    pub fn insert(&mut self, hash: KeyHash, entry: KeyEntry) {
        self.entries.insert(hash, entry);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub key: String,
    pub team: Option<String>,
    pub user: Option<String>,
}

/// Why a request was refused; the messages name no key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Invalid,
    Expired,
    IpNotAllowed,
}

impl AuthError {
    /// Metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::IpNotAllowed => "ip_not_allowed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => {
                "You didn't provide an API key. Send it as `Authorization: Bearer KEY`."
            }
            Self::Invalid => "Incorrect API key provided.",
            Self::Expired => "The API key provided has expired.",
            Self::IpNotAllowed => "The API key provided is not allowed from this address.",
        }
    }
}

/// The key presented in `Authorization: Bearer KEY` or `x-api-key: KEY`.
pub fn presented_key<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
) -> Option<&'a str> {
    let bearer = authorization.and_then(|v| {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    bearer
        .or(x_api_key.map(str::trim))
        .filter(|k| !k.is_empty())
}

/// Checks `key` against `table` for a client at `peer` at unix time `now`.
pub fn authenticate(
    table: &KeyTable,
    key: Option<&str>,
    peer: Option<IpAddr>,
    now: u64,
) -> Result<Identity, AuthError> {
    let key = key.ok_or(AuthError::Missing)?;
    let entry = table
        .entries
        .get(&KeyHash::of(key))
        .ok_or(AuthError::Invalid)?;
    if entry.expires_at.is_some_and(|t| now >= t) {
        return Err(AuthError::Expired);
    }
    if !entry.allow_ips.is_empty()
        && !peer.is_some_and(|ip| entry.allow_ips.iter().any(|n| n.contains(ip)))
    {
        return Err(AuthError::IpNotAllowed);
    }
    Ok(Identity {
        key: entry.id.clone(),
        team: entry.team.clone(),
        user: entry.user.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> KeyTable {
        let mut t = KeyTable::default();
        t.insert(
            KeyHash::of("sk-alpha"),
            KeyEntry {
                id: "alpha".into(),
                team: Some("support".into()),
                user: None,
                allow_ips: vec![IpNet::parse("10.0.0.0/8").expect("cidr")],
                expires_at: Some(2_000),
            },
        );
        t
    }

    #[test]
    fn keys_are_checked_by_hash_expiry_and_address() {
        let t = table();
        let ip: IpAddr = "10.1.2.3".parse().expect("ip");
        let id = authenticate(&t, Some("sk-alpha"), Some(ip), 1_000).expect("ok");
        assert_eq!(id.key, "alpha");
        assert_eq!(id.team.as_deref(), Some("support"));
        assert_eq!(
            authenticate(&t, None, Some(ip), 1_000),
            Err(AuthError::Missing)
        );
        assert_eq!(
            authenticate(&t, Some("sk-beta"), Some(ip), 1_000),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            authenticate(&t, Some("sk-alpha"), Some(ip), 2_000),
            Err(AuthError::Expired)
        );
        let outside: IpAddr = "192.168.1.1".parse().expect("ip");
        assert_eq!(
            authenticate(&t, Some("sk-alpha"), Some(outside), 1_000),
            Err(AuthError::IpNotAllowed)
        );
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert!(authenticate(&t, Some("sk-alpha"), Some(mapped), 1_000).is_ok());
    }

    #[test]
    fn headers_and_debug() {
        assert_eq!(presented_key(Some("Bearer  sk-x "), None), Some("sk-x"));
        assert_eq!(presented_key(None, Some("sk-y")), Some("sk-y"));
        assert_eq!(presented_key(Some("Basic abc"), None), None);
        assert_eq!(presented_key(Some("Bearer "), None), None);
        assert!(!format!("{:?}", table()).contains("sk-alpha"));
        assert_eq!(
            KeyHash::from_hex(&hex::encode(KeyHash::of("k").0)),
            Some(KeyHash::of("k"))
        );
        assert!(
            IpNet::parse("::1")
                .expect("v6")
                .contains("::1".parse().expect("ip"))
        );
        assert!(IpNet::parse("10.0.0.0/33").is_none());
    }
}
