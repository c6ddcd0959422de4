//! TLS of the control channel: the serving certificate comes from a folder in the cert-manager
//! layout (`tls.crt`, `tls.key`; a mounted `kubernetes.io/tls` Secret) and is reloaded when the
//! files change, so a renewed certificate is served without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{ServerConfig, version};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// The certificate chain file inside the folder.
pub const CERT_FILE: &str = "tls.crt";
/// The private key file inside the folder.
pub const KEY_FILE: &str = "tls.key";
/// How often the files are compared with what is served (a Secret update reaches a mounted
/// volume within about a minute anyway).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// The certificate being served, swapped when the files change.
#[derive(Debug)]
pub struct CertStore {
    dir: PathBuf,
    /// `(tls.crt bytes, tls.key bytes)` of what is served, to notice changes.
    loaded: RwLock<(Vec<u8>, Vec<u8>, Arc<CertifiedKey>)>,
}

impl CertStore {
    /// Loads `DIR/tls.crt` and `DIR/tls.key`; fails if either is missing or unusable.
    pub fn load(dir: &Path) -> Result<Arc<Self>> {
        let (crt, key) = read_pair(dir)?;
        let certified = certified_key(dir, &crt, &key)?;
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            loaded: RwLock::new((crt, key, certified)),
        }))
    }

    /// Reads the files again and swaps the certificate if they changed and are usable.
    /// Returns whether a new certificate is now served. A broken pair keeps the old one.
    pub fn reload(&self) -> Result<bool> {
        let (crt, key) = read_pair(&self.dir)?;
        {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            if loaded.0 == crt && loaded.1 == key {
                return Ok(false);
            }
        }
        let certified = certified_key(&self.dir, &crt, &key)?;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = (crt, key, certified);
        Ok(true)
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .2
            .clone()
    }

    /// A TLS acceptor (TLS 1.2 and 1.3, ring) serving whatever certificate is current.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor> {
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_protocol_versions(&[&version::TLS13, &version::TLS12])
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Checks the files every [`RELOAD_INTERVAL`] until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(RELOAD_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            match self.reload() {
                Ok(true) => {
                    tracing::info!(dir = %self.dir.display(), "control channel certificate reloaded")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    error = %e,
                    "control channel certificate not reloaded; serving the previous one"
                ),
            }
        }
    }
}

#[derive(Debug)]
struct Resolver(Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

fn read_pair(dir: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))
    };
    Ok((read(CERT_FILE)?, read(KEY_FILE)?))
}

/// Parses the chain and the key and checks that they belong together.
fn certified_key(dir: &Path, crt: &[u8], key: &[u8]) -> Result<Arc<CertifiedKey>> {
    let shown = |name: &str| dir.join(name).display().to_string();
    let chain = CertificateDer::pem_slice_iter(crt)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("{}: {e}", shown(CERT_FILE))))?;
    if chain.is_empty() {
        return Err(Error::Config(format!(
            "{} holds no PEM certificate",
            shown(CERT_FILE)
        )));
    }
    // The message never quotes the key file's content.
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| {
        Error::Config(format!(
            "{} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1)",
            shown(KEY_FILE)
        ))
    })?;
    let certified = CertifiedKey::from_der(chain, key, &ring::default_provider()).map_err(|e| {
        Error::Config(format!(
            "{} and {} do not form a usable certificate: {e}",
            shown(CERT_FILE),
            shown(KEY_FILE)
        ))
    })?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_cert(dir: &Path, name: &str) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        std::fs::write(dir.join(CERT_FILE), cert.pem()).expect("write");
        std::fs::write(dir.join(KEY_FILE), key.serialize_pem()).expect("write");
    }

    #[test]
    fn loads_reloads_on_change_and_keeps_the_old_pair_when_broken() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(CertStore::load(dir.path()).is_err(), "no files");
        write_cert(dir.path(), "a.example");
        let store = CertStore::load(dir.path()).expect("loads");
        let first = store.current();
        assert!(!store.reload().expect("same files"), "unchanged");
        write_cert(dir.path(), "b.example");
        assert!(store.reload().expect("new pair"));
        let second = store.current();
        assert_ne!(first.cert, second.cert);
        // A key that does not match the certificate is refused; the served pair stays.
        let other = rcgen::KeyPair::generate().expect("key");
        std::fs::write(dir.path().join(KEY_FILE), other.serialize_pem()).expect("write");
        let err = store.reload().expect_err("mismatched key");
        assert!(err.to_string().contains("do not form"), "{err}");
        assert_eq!(store.current().cert, second.cert);
        std::fs::write(dir.path().join(KEY_FILE), "not a key").expect("write");
        let err = store.reload().expect_err("garbage key").to_string();
        assert!(
            err.contains("no usable PEM private key") && !err.contains("not a key"),
            "{err}"
        );
    }
}
