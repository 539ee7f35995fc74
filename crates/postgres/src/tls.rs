//! Postgres over TLS, as libpq's `sslmode` and `sslrootcert` say, on
//! Stoker's one TLS stack (`stoker-tls`).
//!
//! tokio-postgres knows `disable`, `prefer` and `require` only, and no
//! root file: [`split_ssl_settings`] takes both settings out of the
//! connection string before the driver reads it, the driver is told
//! `require` for the `verify-*` modes, and [`PgTls`] verifies what the
//! mode asks for:
//!
//! | sslmode       | no sslrootcert          | sslrootcert file        |
//! |---------------|-------------------------|-------------------------|
//! | `disable`     | plain                   | plain                   |
//! | `prefer`      | TLS if offered, unverified | TLS if offered, chain verified |
//! | `require`     | TLS, unverified         | TLS, chain verified     |
//! | `verify-ca`   | refused (no root)       | TLS, chain verified     |
//! | `verify-full` | refused (no root)       | TLS, chain and host name verified |
//!
//! `sslrootcert=system` trusts the system's roots and asks for
//! `verify-full` (a weaker mode is refused), as libpq 16 does.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it (libpq's default).
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, the server's certificate chain verified.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// Its name in a connection string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            // libpq's `allow` tries plain first: Stoker does not.
            other => {
                return Err(format!(
                    "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    /// What tokio-postgres is told.
    pub(crate) fn driver(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            Self::Disable => Driver::Disable,
            Self::Prefer => Driver::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Driver::Require,
        }
    }
}

/// The TLS settings a connection string held, and the string without them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SslSettings {
    pub(crate) mode: Option<SslMode>,
    pub(crate) root_cert: Option<PathBuf>,
}

impl SslSettings {
    /// `sslrootcert=system`: the system's roots.
    pub(crate) fn is_system(&self) -> bool {
        self.root_cert.as_deref() == Some(std::path::Path::new("system"))
    }
}

/// Takes `sslmode` and `sslrootcert` out of a connection string (URL or
/// `key=value` form) for the driver, which knows neither fully.
pub(crate) fn split_ssl_settings(url: &str) -> Result<(String, SslSettings), String> {
    let mut settings = SslSettings::default();
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => settings.mode = Some(SslMode::parse(value)?),
            "sslrootcert" => settings.root_cert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), settings));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, &percent_decode(value)?)? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for (key, value, text) in key_values(url)? {
            if !take(key, &value)? {
                kept.push(text);
            }
        }
        kept.join(" ")
    };
    Ok((rest, settings))
}

/// `%XX` escapes of a URL's query value decoded.
fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let byte = value
                .get(at + 1..at + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or("a %-escape in the URL's query is malformed")?;
            decoded.push(byte);
            at += 3;
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| "the URL's query is not UTF-8 once decoded".to_owned())
}

/// The `key = value` pairs of a libpq connection string: each key, its
/// value (quotes and backslash escapes resolved) and its original text.
fn key_values(input: &str) -> Result<Vec<(&str, String, &str)>, String> {
    let mut pairs = Vec::new();
    let mut rest = input.trim_start();
    while !rest.is_empty() {
        let start = rest;
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = rest[key_end..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("option {key:?} has no '=' and value"))?
            .trim_start();
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let quoted = rest.starts_with('\'');
        if quoted {
            chars.next();
        }
        let mut end = rest.len();
        let mut closed = !quoted;
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '\'' if quoted => {
                    end = at + 1;
                    closed = true;
                    break;
                }
                c if !quoted && c.is_whitespace() => {
                    end = at;
                    break;
                }
                c => value.push(c),
            }
        }
        if !closed {
            return Err(format!("the value of {key:?} has no closing quote"));
        }
        let consumed = start.len() - rest.len() + end;
        pairs.push((key, value, &start[..consumed]));
        rest = rest[end..].trim_start();
    }
    Ok(pairs)
}

/// tokio-postgres' TLS for Stoker's connections: the handshake on the
/// configuration the `sslmode` asks for, the server named by its host.
/// Remembers the last handshake's outcome for `stoker check`.
#[derive(Clone)]
pub struct PgTls {
    connector: stoker_tls::Connector,
    last_handshake: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTls").finish_non_exhaustive()
    }
}

impl PgTls {
    pub(crate) fn new(connector: stoker_tls::Connector) -> Self {
        Self {
            connector,
            last_handshake: Arc::new(Mutex::new(None)),
        }
    }

    /// "TLS 1.3, certificate valid until …" of the last connection made
    /// through it over TLS; `None` while none was.
    pub fn last_handshake(&self) -> Option<String> {
        self.last_handshake
            .lock()
            .ok()
            .and_then(|last| last.clone())
    }
}

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = std::io::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<PgTlsConnect, std::io::Error> {
        Ok(PgTlsConnect {
            tls: self.clone(),
            host: host.to_owned(),
        })
    }
}

/// One connection's handshake, to `host`.
#[derive(Debug)]
pub struct PgTlsConnect {
    tls: PgTls,
    host: String,
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = self.tls.connector.connect(&self.host, stream).await?;
            let described = stoker_tls::certificate::describe(stream.get_ref().1);
            if let Ok(mut last) = self.tls.last_handshake.lock() {
                *last = Some(described);
            }
            Ok(PgTlsStream(Box::new(stream)))
        })
    }
}

/// A Postgres connection's TLS stream.
#[derive(Debug)]
pub struct PgTlsStream<S>(Box<stoker_tls::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.0
            .get_ref()
            .1
            .peer_certificates()
            .and_then(<[_]>::first)
            .and_then(|cert| stoker_tls::certificate::tls_server_end_point(cert.as_ref()))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.get_mut().0.as_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_settings_leave_the_url_and_the_rest_stays() {
        let (rest, settings) = split_ssl_settings(
            "postgres://u:p@db:5432/x?sslmode=verify-full&application_name=a&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db:5432/x?application_name=a");
        assert_eq!(settings.mode, Some(SslMode::VerifyFull));
        assert_eq!(settings.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let (rest, settings) = split_ssl_settings("postgres://db/x?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://db/x");
        assert_eq!(settings.mode, Some(SslMode::Require));
        assert!(split_ssl_settings("postgres://db/x?sslmode=allow").is_err());
    }

    #[test]
    fn ssl_settings_leave_a_key_value_string() {
        let (rest, settings) = split_ssl_settings(
            "host=db user=u sslmode = verify-ca  password='a b\\'c' sslrootcert='/my ca.pem'",
        )
        .unwrap();
        assert_eq!(rest, "host=db user=u password='a b\\'c'");
        assert_eq!(settings.mode, Some(SslMode::VerifyCa));
        assert_eq!(settings.root_cert, Some(PathBuf::from("/my ca.pem")));
        assert!(split_ssl_settings("host=db sslrootcert='open").is_err());
    }
}
