//! The listeners' side: HTTPS on the API and the health/metrics listener
//! (`HTTP_TLS_CERT`, `HTTP_TLS_KEY`), the certificate read again on SIGHUP
//! without a restart.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::{Error, Identity, provider};

/// HTTPS for a listener; both files, or neither (plain HTTP).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ServerTlsOptions {
    /// PEM file of the listener's certificate chain: with HTTP_TLS_KEY, the API and the health/metrics listener speak HTTPS only. Read again on SIGHUP (a renewed certificate is served without a restart).
    #[arg(id = "http_tls_cert", long = "http-tls-cert", env = "HTTP_TLS_CERT")]
    pub cert: Option<PathBuf>,

    /// PEM file of the certificate's private key (never logged).
    #[arg(id = "http_tls_key", long = "http-tls-key", env = "HTTP_TLS_KEY")]
    pub key: Option<PathBuf>,
}

impl ServerTlsOptions {
    /// The certificate, read now, or `None` for plain HTTP.
    pub fn load(&self) -> Result<Option<Arc<ReloadingCert>>, Error> {
        match (&self.cert, &self.key) {
            (None, None) => Ok(None),
            (Some(cert_file), Some(key_file)) => {
                let identity = Identity {
                    cert_file: cert_file.clone(),
                    key_file: key_file.clone(),
                };
                let current = read(&identity)?;
                Ok(Some(Arc::new(ReloadingCert {
                    identity,
                    current: RwLock::new(current),
                })))
            }
            (Some(_), None) => Err(Error::Pair("HTTP_TLS_CERT is set without HTTP_TLS_KEY")),
            (None, Some(_)) => Err(Error::Pair("HTTP_TLS_KEY is set without HTTP_TLS_CERT")),
        }
    }
}

/// A certificate and key read from files, read again by
/// [`ReloadingCert::reload`]; every new TLS connection gets the current.
#[derive(Debug)]
pub struct ReloadingCert {
    identity: Identity,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// Reads the files again; on an error the current certificate stays.
    pub fn reload(&self) -> Result<(), Error> {
        let fresh = read(&self.identity)?;
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = fresh;
        Ok(())
    }

    /// The current certificate's expiry, described.
    pub fn describe(&self) -> String {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current
            .cert
            .first()
            .and_then(|cert| crate::certificate::not_after(cert.as_ref()))
            .map_or_else(
                || "certificate expiry unreadable".to_owned(),
                |expires| {
                    format!(
                        "certificate {}",
                        crate::certificate::describe_expiry(expires)
                    )
                },
            )
    }

    /// A TLS acceptor serving the current certificate (HTTP/1.1).
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Reads the files again on every SIGHUP until `stop`, logging the
    /// outcome (a failed reload keeps the certificate served).
    pub async fn reload_on_sighup(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let mut hangups = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        ) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGHUP: the HTTPS certificate is read at start only");
                return;
            }
        };
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                received = hangups.recv() => if received.is_none() { return },
            }
            match self.reload() {
                Ok(()) => {
                    tracing::info!(cert = %self.identity.cert_file.display(), expiry = %self.describe(), "SIGHUP: HTTPS certificate read again")
                }
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: the HTTPS certificate could not be read again; serving the previous one")
                }
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(Arc::clone(&current))
    }
}

fn read(identity: &Identity) -> Result<Arc<CertifiedKey>, Error> {
    let (chain, key) = identity.read("HTTP_TLS_CERT", "HTTP_TLS_KEY")?;
    let certified = CertifiedKey::from_der(chain, key, &provider())?;
    Ok(Arc::new(certified))
}
