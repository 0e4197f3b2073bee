//! Building rustls configs from PEM files, with errors that name the file.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why a certificate, key or CA file could not become a TLS config. Each
/// variant names the file, so one line on stderr tells the user what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not PEM, or its PEM is broken.
    #[error("{}: not a valid PEM file ({detail})", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The file is PEM but holds no certificate.
    #[error("{}: no certificate in it", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file is PEM but holds no private key.
    #[error("{}: no private key in it", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is not the one the certificate was issued for.
    #[error("{} does not hold the private key of the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused what the file holds (an unsupported key type, a
    /// certificate it cannot parse).
    #[error("{}: {source}", path.display())]
    Rejected {
        /// The file.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// A server name that is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// Any other rustls failure while building a config.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every config of this crate uses: rustls's `ring`
/// provider (builds with a C compiler alone).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

fn not_pem(path: &Path, e: pem::Error) -> TlsConfigError {
    TlsConfigError::NotPem {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// The certificates in PEM text, end-entity first; `path` names it in errors.
///
/// # Errors
///
/// [`TlsConfigError::NotPem`] or [`TlsConfigError::NoCertificate`].
pub fn certs_from_pem(
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    if !looks_like_pem(bytes) {
        return Err(TlsConfigError::NotPem {
            path: path.to_path_buf(),
            detail: "no -----BEGIN line".into(),
        });
    }
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(path, e))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in PEM text; `path`
/// names it in errors.
///
/// # Errors
///
/// [`TlsConfigError::NotPem`] or [`TlsConfigError::NoKey`].
pub fn key_from_pem(bytes: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    if !looks_like_pem(bytes) {
        return Err(TlsConfigError::NotPem {
            path: path.to_path_buf(),
            detail: "no -----BEGIN line".into(),
        });
    }
    match PrivateKeyDer::from_pem_slice(bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsConfigError::NoKey {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(not_pem(path, e)),
    }
}

/// Reads a PEM certificate chain (end-entity first).
///
/// # Errors
///
/// [`TlsConfigError::Read`], [`TlsConfigError::NotPem`] or
/// [`TlsConfigError::NoCertificate`], naming the file.
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let path = path.as_ref();
    certs_from_pem(&read(path)?, path)
}

/// Reads a PEM private key.
///
/// # Errors
///
/// [`TlsConfigError::Read`], [`TlsConfigError::NotPem`] or
/// [`TlsConfigError::NoKey`], naming the file.
pub fn load_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let path = path.as_ref();
    key_from_pem(&read(path)?, path)
}

fn build_server(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsConfigError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            },
            source => TlsConfigError::Rejected {
                path: key_path.to_path_buf(),
                source,
            },
        })?;
    Ok(Arc::new(config))
}

/// A TLS 1.2/1.3 server config from a PEM certificate chain file and a PEM
/// key file, as `--tls-cert` and `--tls-key` name them.
///
/// ```no_run
/// let config = mio_selectors::tls::server_config("cert.pem", "key.pem")?;
/// # Ok::<(), mio_selectors::tls::TlsConfigError>(())
/// ```
///
/// # Errors
///
/// Any [`TlsConfigError`], naming the file at fault: unreadable, not PEM,
/// no certificate, no key, or a key that does not match the certificate.
pub fn server_config(
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let (cert, key) = (cert.as_ref(), key.as_ref());
    build_server(load_certs(cert)?, load_key(key)?, cert, key)
}

/// A server config from PEM text held in memory (tests, embedded certs).
///
/// # Errors
///
/// As [`server_config`], with the files named `<cert>` and `<key>`.
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let (cert, key) = (Path::new("<cert>"), Path::new("<key>"));
    build_server(
        certs_from_pem(cert_pem, cert)?,
        key_from_pem(key_pem, key)?,
        cert,
        key,
    )
}

/// A client config that trusts exactly the CA certificates in `ca_pem`
/// (PEM text; `<ca>` in errors), for tests and for clients of a private CA
/// or a self-signed server.
///
/// # Errors
///
/// [`TlsConfigError::NotPem`], [`TlsConfigError::NoCertificate`], or
/// [`TlsConfigError::Rejected`] for a certificate that cannot be a root.
pub fn client_config_trusting_pem(ca_pem: &[u8]) -> Result<Arc<ClientConfig>, TlsConfigError> {
    trusting(
        certs_from_pem(ca_pem, Path::new("<ca>"))?,
        Path::new("<ca>"),
    )
}

/// A client config that trusts exactly the CA certificates in the PEM file
/// `ca`.
///
/// # Errors
///
/// [`TlsConfigError::Read`] and the errors of [`client_config_trusting_pem`],
/// naming the file.
pub fn client_config_trusting(ca: impl AsRef<Path>) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let path = ca.as_ref();
    trusting(load_certs(path)?, path)
}

fn trusting(
    certs: Vec<CertificateDer<'static>>,
    path: &Path,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|source| TlsConfigError::Rejected {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
