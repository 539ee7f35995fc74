//! Stoker's one TLS stack: rustls on the aws-lc-rs provider (the one
//! reqwest already uses), for every link Stoker opens or serves.
//!
//! [`ClientTls`] says how a client verifies its server (the system's roots,
//! or a private CA file) and whether it presents a certificate of its own;
//! [`ClientTls::connector`] reads the files once and gives a [`Connector`]
//! that wraps a connected socket in TLS, the server verified by name.
//! [`MaybeTls`] is a stream either plain or wrapped, for links whose URL
//! decides. [`tunnel`] carries a client that can only speak to a Unix socket
//! (rumqttc without its own TLS) over a [`Connector`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub mod certificate;
mod mqtt;
pub mod server;
mod stream;
pub mod tunnel;
mod verify;

pub use mqtt::MqttTlsOptions;
pub use stream::MaybeTls;
pub use tokio_rustls::TlsAcceptor;
pub use tokio_rustls::client::TlsStream;
pub use verify::Verify;

/// Why a TLS configuration could not be built. Names the file, never its
/// contents.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate or key file could not be read or holds no valid PEM.
    #[error("cannot read {what} {path}: {reason}")]
    File {
        /// Which file it is ("CA file", "client certificate", …).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file holds no certificate (or no private key) at all.
    #[error("{what} {path} holds no {expected} in PEM form")]
    Empty {
        /// Which file it is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What it should hold.
        expected: &'static str,
    },
    /// No trusted root: the system has none and no CA file was given.
    #[error("no trusted root certificate: the system store is empty; give a CA file")]
    NoRoots,
    /// rustls refused the configuration (a key that does not match its
    /// certificate, an unsupported key type, …).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// One of a certificate and key pair is set without the other.
    #[error("{0}")]
    Pair(&'static str),
    /// A host that is neither a DNS name nor an IP address.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
}

/// The crypto provider every TLS configuration is built on.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// How a client side of a link does TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM file of the certificate authorities trusted for the server's
    /// certificate, instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM files of the client's own certificate (chain) and private key,
    /// for servers that require one.
    pub identity: Option<Identity>,
}

/// A certificate chain and its private key, as PEM file paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The certificate, then any intermediates.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl ClientTls {
    /// Settings from optional paths as the settings give them: a client
    /// certificate needs its key and the other way round.
    pub fn from_paths(
        ca_file: Option<PathBuf>,
        cert_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
    ) -> Result<Self, String> {
        let identity = match (cert_file, key_file) {
            (Some(cert_file), Some(key_file)) => Some(Identity {
                cert_file,
                key_file,
            }),
            (None, None) => None,
            (Some(_), None) => return Err("a client certificate needs its key file".into()),
            (None, Some(_)) => return Err("a client key needs its certificate file".into()),
        };
        Ok(Self { ca_file, identity })
    }

    /// Reads the files and builds the rustls client configuration, the
    /// server verified by name ([`Verify::Full`]).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, Error> {
        self.client_config_verifying(Verify::Full)
    }

    /// The rustls client configuration with the verification `verify`
    /// asks for (Postgres' `sslmode` may ask for less than full).
    pub fn client_config_verifying(&self, verify: Verify) -> Result<rustls::ClientConfig, Error> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match verify {
            Verify::Full => builder.with_root_certificates(self.roots()?),
            Verify::ChainOnly => builder
                .dangerous()
                .with_custom_certificate_verifier(verify::ChainOnly::new(self.roots()?)?),
            Verify::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(verify::Nothing::new()),
        };
        Ok(match &self.identity {
            Some(identity) => {
                let (chain, key) = identity.read("client certificate", "client key")?;
                builder.with_client_auth_cert(chain, key)?
            }
            None => builder.with_no_client_auth(),
        })
    }

    /// The trusted roots: the CA file's, or the system's.
    fn roots(&self) -> Result<rustls::RootCertStore, Error> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in read_certs(path, "CA file")? {
                    roots.add(cert).map_err(|error| Error::File {
                        what: "CA file",
                        path: path.clone(),
                        reason: error.to_string(),
                    })?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for error in &native.errors {
                    tracing::debug!(%error, "a system root certificate could not be read");
                }
                let (added, _ignored) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(Error::NoRoots);
                }
            }
        }
        Ok(roots)
    }

    /// A [`Connector`] with this configuration (files read now).
    pub fn connector(&self) -> Result<Connector, Error> {
        self.connector_verifying(Verify::Full)
    }

    /// A [`Connector`] that verifies what `verify` asks for.
    pub fn connector_verifying(&self, verify: Verify) -> Result<Connector, Error> {
        Ok(Connector {
            inner: tokio_rustls::TlsConnector::from(Arc::new(
                self.client_config_verifying(verify)?,
            )),
        })
    }
}

impl Identity {
    /// The certificate chain and private key, read from their files.
    pub fn read(
        &self,
        cert_what: &'static str,
        key_what: &'static str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
        let chain = read_certs(&self.cert_file, cert_what)?;
        let key = PrivateKeyDer::from_pem_file(&self.key_file).map_err(|error| {
            match error {
                rustls::pki_types::pem::Error::NoItemsFound => Error::Empty {
                    what: key_what,
                    path: self.key_file.clone(),
                    expected: "private key",
                },
                // The error of a key file may quote what it read: say only
                // its kind.
                other => Error::File {
                    what: key_what,
                    path: self.key_file.clone(),
                    reason: pem_error_kind(&other),
                },
            }
        })?;
        Ok((chain, key))
    }
}

/// Every certificate of a PEM file (at least one).
pub fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|error| Error::File {
            what,
            path: path.to_owned(),
            reason: pem_error_kind(&error),
        })?;
    if certs.is_empty() {
        return Err(Error::Empty {
            what,
            path: path.to_owned(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

/// What went wrong reading PEM, without any of the file's contents.
fn pem_error_kind(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as Pem;
    match error {
        Pem::Io(error) => error.to_string(),
        Pem::NoItemsFound => "no PEM section".into(),
        Pem::MissingSectionEnd { .. } => "a PEM section has no end line".into(),
        Pem::IllegalSectionStart { .. } => "a PEM section start line is malformed".into(),
        Pem::Base64Decode(_) => "a PEM section is not valid base64".into(),
        _ => "malformed PEM".into(),
    }
}

/// Wraps connected sockets in TLS with one client configuration.
#[derive(Clone)]
pub struct Connector {
    inner: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// The TLS handshake over `stream`, the server's certificate verified
    /// for `host` (a DNS name or an IP address). A failed verification is
    /// an error of kind `InvalidData` whose text says why (the name the
    /// certificate is valid for, an unknown issuer, an expired one).
    pub async fn connect<S>(&self, host: &str, stream: S) -> std::io::Result<TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = server_name(host)
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
        self.inner.connect(name, stream).await
    }

    /// The rustls configuration, for clients that take one (tokio-postgres,
    /// reqwest).
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(self.inner.config())
    }
}

/// A host as a TLS server name (an IP address is matched against the
/// certificate's IP addresses).
pub fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|_| Error::ServerName(host.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_needs_its_key_and_the_other_way_round() {
        assert!(ClientTls::from_paths(None, Some("c.pem".into()), None).is_err());
        assert!(ClientTls::from_paths(None, None, Some("k.pem".into())).is_err());
        let both = ClientTls::from_paths(None, Some("c.pem".into()), Some("k.pem".into()));
        assert!(both.unwrap().identity.is_some());
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let missing = ClientTls {
            ca_file: Some("/nonexistent/ca.pem".into()),
            identity: None,
        };
        let error = missing.client_config().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
        let empty = std::env::temp_dir().join(format!("stoker_tls_empty_{}", std::process::id()));
        std::fs::write(&empty, "no pem here\n").unwrap();
        let error = ClientTls {
            ca_file: Some(empty.clone()),
            identity: None,
        }
        .client_config()
        .unwrap_err()
        .to_string();
        assert!(error.contains("holds no certificate"), "{error}");
        let _ = std::fs::remove_file(empty);
    }

    #[test]
    fn server_names_take_dns_names_and_addresses() {
        assert!(server_name("broker.example").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("not a name").is_err());
    }
}
