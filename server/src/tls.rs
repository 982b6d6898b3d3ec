//! TLS for `ferry serve --tls-cert FILE --tls-key FILE`: rustls on the ring
//! provider, ALPN `h2` then `http/1.1`.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// Most bytes read from a certificate or key file.
const MAX_PEM_FILE: u64 = 1 << 20;

fn read_limited(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    let err = |e: String| TlsError(format!("{what} {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > MAX_PEM_FILE {
        return Err(err(format!("larger than {MAX_PEM_FILE} bytes")));
    }
    std::fs::read(path).map_err(|e| err(e.to_string()))
}

/// The server configuration for a PEM certificate chain (leaf first) and
/// its PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_pem = read_limited(cert, "--tls-cert")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("--tls-cert {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "--tls-cert {}: no PEM certificate (BEGIN CERTIFICATE) in it",
            cert.display()
        )));
    }
    let key_pem = read_limited(key, "--tls-key")?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsError(format!(
            "--tls-key {}: no usable PEM private key ({e})",
            key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            TlsError(format!(
                "--tls-cert {} / --tls-key {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
