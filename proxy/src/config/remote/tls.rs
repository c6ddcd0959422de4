//! The client side of the control channel's TLS: the operator's certificate is verified
//! against the CA file (`--control-ca-file`, the `ca.crt` of the chart's Secret) and the
//! host name of the URL (or `--control-tls-server-name`). The CA file is read again when it
//! changes, so a rotated CA is picked up at the next connection.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// What a TLS connection to the operator verifies.
pub struct ClientTls {
    ca_file: PathBuf,
    /// The name the operator's certificate must carry.
    server_name: ServerName<'static>,
    /// The CA file's bytes and the config built from them (reused, so sessions resume).
    cached: Mutex<Option<(Vec<u8>, Arc<ClientConfig>)>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_file", &self.ca_file)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// `server_name`: a DNS name or an IP address, as in the URL.
    pub fn new(ca_file: PathBuf, server_name: &str) -> Result<Self, String> {
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|_| format!("`{server_name}` is not a DNS name or an IP address"))?;
        Ok(Self {
            ca_file,
            server_name,
            cached: Mutex::new(None),
        })
    }

    /// A connector verifying against the CA file's current content.
    pub fn connector(&self) -> Result<(TlsConnector, ServerName<'static>), String> {
        let pem = std::fs::read(&self.ca_file)
            .map_err(|e| format!("cannot read the CA file {}: {e}", self.ca_file.display()))?;
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let config = match cached.as_ref() {
            Some((bytes, config)) if *bytes == pem => Arc::clone(config),
            _ => {
                let config = Arc::new(self.config(&pem)?);
                *cached = Some((pem, Arc::clone(&config)));
                config
            }
        };
        Ok((TlsConnector::from(config), self.server_name.clone()))
    }

    fn config(&self, pem: &[u8]) -> Result<ClientConfig, String> {
        let shown = self.ca_file.display();
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("{shown}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("{shown}: unusable CA certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!("{shown} holds no PEM certificate"));
        }
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_file_must_hold_a_certificate_and_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ca.crt");
        let tls = ClientTls::new(file.clone(), "op.sy.svc").expect("name");
        assert!(tls.connector().is_err(), "no file");
        std::fs::write(&file, "not pem").expect("write");
        let Err(err) = tls.connector() else {
            panic!("a file without a certificate was accepted");
        };
        assert!(err.contains("no PEM certificate"), "{err}");
        let key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&key)
            .expect("ca");
        std::fs::write(&file, ca.pem()).expect("write");
        tls.connector().expect("a CA");
        assert!(ClientTls::new(file.clone(), "10.0.0.1").is_ok());
        assert!(ClientTls::new(file, "bad name!").is_err());
    }
}
