//! The e-mail channel: its settings (`ALERT_SMTP_URL`, `ALERT_EMAIL_*`,
//! `ALERT_ESCALATE_TO`) and the SMTP client (lettre, on tokio and the
//! process's rustls with aws-lc-rs).
//!
//! An e-mail row of the outbox holds its recipients (comma-separated) as
//! the target and the rendered message (`{"subject", "text"}`, see
//! [`super::render`]) as the body, so the record says what was sent.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use stoker_domain::Secret;

use super::{Error, Result};

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: STARTTLS when the server offers it, else plain.
    Opportunistic,
    /// `smtp://…?tls=required`: STARTTLS, or no delivery.
    StartTls,
    /// `smtp://…?tls=none`: plain, never STARTTLS.
    Plain,
    /// `smtps://`: TLS from the first byte.
    Tls,
}

/// `ALERT_SMTP_URL`: `smtp://[user:password@]host[:port][?tls=required|none]`
/// (port 587 by default) or `smtps://…` (port 465). `Debug` and
/// [`SmtpUrl::describe`] never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// The server's host name (checked against its certificate).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Plain, STARTTLS or TLS.
    pub security: SmtpSecurity,
    /// The user to log in as (none: no login).
    pub user: Option<String>,
    /// The password.
    pub password: Option<Secret>,
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SmtpUrl {
    /// Parses the URL; the error never repeats the password.
    pub fn parse(text: &str) -> Result<Self, String> {
        let shown = stoker_domain::redact_url(text);
        let url = url::Url::parse(text).map_err(|error| {
            format!("{shown} is not a URL ({error}): expected e.g. smtp://user:password@mail.example.com:587")
        })?;
        let (mut security, default_port) = match url.scheme() {
            "smtp" => (SmtpSecurity::Opportunistic, 587),
            "smtps" => (SmtpSecurity::Tls, 465),
            other => {
                return Err(format!(
                    "{shown} uses scheme {other:?}: use smtp:// (STARTTLS when offered) or smtps:// (TLS)"
                ));
            }
        };
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| format!("{shown} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref(), security) {
                ("tls", "required", SmtpSecurity::Opportunistic) => {
                    security = SmtpSecurity::StartTls;
                }
                ("tls", "opportunistic", SmtpSecurity::Opportunistic) => {}
                ("tls", "none", SmtpSecurity::Opportunistic) => security = SmtpSecurity::Plain,
                ("tls", "required", SmtpSecurity::Tls) => {}
                ("tls", value, _) => {
                    return Err(format!(
                        "{shown}: tls={value:?} is not understood here: smtp:// takes tls=required, \
                         tls=opportunistic (the default) or tls=none; smtps:// is always TLS"
                    ));
                }
                (key, _, _) => {
                    return Err(format!(
                        "{shown}: parameter {key:?} is unknown (only tls= is)"
                    ));
                }
            }
        }
        if !url.path().is_empty() && url.path() != "/" {
            return Err(format!("{shown} has a path; an SMTP URL has none"));
        }
        let decode = |text: &str| {
            percent_decode(text).map_err(|()| {
                format!("{shown}: the user or password is not valid percent-encoded UTF-8")
            })
        };
        let user = match url.username() {
            "" => None,
            user => Some(decode(user)?),
        };
        let password = url.password().map(decode).transpose()?.map(Secret::new);
        if password.is_some() && user.is_none() {
            return Err(format!("{shown} has a password without a user"));
        }
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            user,
            password,
        })
    }

    /// `smtp://user@host:port?tls=required`, without the password.
    pub fn describe(&self) -> String {
        let scheme = match self.security {
            SmtpSecurity::Tls => "smtps",
            _ => "smtp",
        };
        let user = self
            .user
            .as_deref()
            .map(|user| format!("{user}@"))
            .unwrap_or_default();
        let query = match self.security {
            SmtpSecurity::StartTls => "?tls=required",
            SmtpSecurity::Plain => "?tls=none",
            SmtpSecurity::Opportunistic | SmtpSecurity::Tls => "",
        };
        format!("{scheme}://{user}{}:{}{query}", self.host, self.port)
    }
}

fn percent_decode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3).ok_or(())?;
            decoded.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| ())
}

/// Where alert e-mail goes, and through which server.
#[derive(Clone, Default, clap::Args)]
pub struct EmailOptions {
    /// SMTP server alert e-mail is sent through: smtp://[user:password@]host[:port] (port 587; STARTTLS when the server offers it, ?tls=required to insist on it, ?tls=none never) or smtps://… (TLS from the start, port 465). None by default: no e-mail. The password is never logged.
    #[arg(
        id = "email_smtp_url",
        long = "alert-smtp-url",
        env = "ALERT_SMTP_URL",
        value_name = "URL",
        value_parser = SmtpUrl::parse,
        hide_env_values = true
    )]
    pub smtp_url: Option<SmtpUrl>,

    /// PEM file of the CA certificates the SMTP server's certificate is checked against, instead of the system's (a private mail server).
    #[arg(
        id = "email_smtp_ca_file",
        long = "alert-smtp-ca-file",
        env = "ALERT_SMTP_CA_FILE",
        value_name = "FILE"
    )]
    pub smtp_ca_file: Option<PathBuf>,

    /// Sender of alert e-mail: an address, or "Name <address>". Required with ALERT_SMTP_URL.
    #[arg(
        id = "email_from",
        long = "alert-email-from",
        env = "ALERT_EMAIL_FROM",
        value_name = "MAILBOX",
        value_parser = parse_mailbox
    )]
    pub from: Option<Mailbox>,

    /// Recipients of every alert transition by e-mail, comma-separated. Per severity, ALERT_EMAIL_TO_INFO, ALERT_EMAIL_TO_WARNING and ALERT_EMAIL_TO_CRITICAL replace this list for alerts of that severity (set to an empty text: nobody).
    #[arg(
        id = "email_to",
        long = "alert-email-to",
        env = "ALERT_EMAIL_TO",
        value_name = "ADDRESSES",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_address_list
    )]
    pub to: ::std::vec::Vec<Address>,

    /// Recipients of info alerts, comma-separated, instead of ALERT_EMAIL_TO.
    #[arg(
        id = "email_to_info",
        long = "alert-email-to-info",
        env = "ALERT_EMAIL_TO_INFO",
        value_name = "ADDRESSES",
        value_parser = parse_address_list
    )]
    pub to_info: Option<::std::vec::Vec<Address>>,

    /// Recipients of warning alerts, comma-separated, instead of ALERT_EMAIL_TO.
    #[arg(
        id = "email_to_warning",
        long = "alert-email-to-warning",
        env = "ALERT_EMAIL_TO_WARNING",
        value_name = "ADDRESSES",
        value_parser = parse_address_list
    )]
    pub to_warning: Option<::std::vec::Vec<Address>>,

    /// Recipients of critical alerts, comma-separated, instead of ALERT_EMAIL_TO.
    #[arg(
        id = "email_to_critical",
        long = "alert-email-to-critical",
        env = "ALERT_EMAIL_TO_CRITICAL",
        value_name = "ADDRESSES",
        value_parser = parse_address_list
    )]
    pub to_critical: Option<::std::vec::Vec<Address>>,

    /// Escalation targets, comma-separated e-mail addresses: an alert of a rule with escalate_after that stays unacknowledged that long is e-mailed to them (and published on alerts/{site}/escalations), again after each such period until acknowledged or closed.
    #[arg(
        id = "email_escalate_to",
        long = "alert-escalate-to",
        env = "ALERT_ESCALATE_TO",
        value_name = "ADDRESSES",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_address_list
    )]
    pub escalate_to: ::std::vec::Vec<Address>,
}

impl fmt::Debug for EmailOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |addresses: &[Address]| addresses.len();
        f.debug_struct("EmailOptions")
            .field("smtp_url", &self.smtp_url)
            .field("smtp_ca_file", &self.smtp_ca_file)
            .field("from", &self.from.as_ref().map(ToString::to_string))
            .field("to", &list(&self.to))
            .field("to_info", &self.to_info.as_deref().map(list))
            .field("to_warning", &self.to_warning.as_deref().map(list))
            .field("to_critical", &self.to_critical.as_deref().map(list))
            .field("escalate_to", &list(&self.escalate_to))
            .finish()
    }
}

impl EmailOptions {
    /// Whether e-mail can be sent (a server and a sender).
    pub fn enabled(&self) -> bool {
        self.smtp_url.is_some() && self.from.is_some()
    }

    /// The recipients of an alert of `severity` (`info`, `warning`,
    /// `critical`; another name gets ALERT_EMAIL_TO).
    pub fn recipients(&self, severity: &str) -> &[Address] {
        let special = match severity {
            "info" => self.to_info.as_deref(),
            "warning" => self.to_warning.as_deref(),
            "critical" => self.to_critical.as_deref(),
            _ => None,
        };
        special.unwrap_or(&self.to)
    }

    fn any_recipient(&self) -> bool {
        !self.to.is_empty()
            || !self.escalate_to.is_empty()
            || [&self.to_info, &self.to_warning, &self.to_critical]
                .into_iter()
                .any(|list| list.as_ref().is_some_and(|list| !list.is_empty()))
    }

    /// Recipients need a server and a sender.
    pub(super) fn validate(&self) -> Result<()> {
        let invalid = |variable: &'static str, reason: &str| {
            Err(Error::Config {
                variable,
                reason: reason.to_owned(),
            })
        };
        if self.any_recipient() && self.smtp_url.is_none() {
            return invalid(
                "ALERT_SMTP_URL",
                "it is required when e-mail recipients (ALERT_EMAIL_TO*, ALERT_ESCALATE_TO) are set",
            );
        }
        if self.smtp_url.is_some() && self.from.is_none() {
            return invalid(
                "ALERT_EMAIL_FROM",
                "it is required when ALERT_SMTP_URL is set: every e-mail names its sender",
            );
        }
        if self.smtp_ca_file.is_some() && self.smtp_url.is_none() {
            return invalid(
                "ALERT_SMTP_CA_FILE",
                "it is set without ALERT_SMTP_URL: no SMTP server to check it against",
            );
        }
        Ok(())
    }
}

fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    text.trim().parse::<Mailbox>().map_err(|error| {
        format!("{text:?} is not an e-mail address ({error}): expected e.g. \"Stoker <alerts@example.com>\"")
    })
}

/// A comma-separated list of addresses; blanks between commas are
/// ignored, so an empty text is an empty list.
fn parse_address_list(text: &str) -> Result<Vec<Address>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<Address>()
                .map_err(|error| format!("{item:?} is not an e-mail address ({error})"))
        })
        .collect()
}

/// The e-mail sender of the dispatcher: one SMTP transport (a connection
/// per message), the sender's mailbox.
#[derive(Clone)]
pub(super) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// A rendered message, as an e-mail row's body holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Rendered {
    pub subject: String,
    pub text: String,
}

impl Mailer {
    /// The mailer of the settings, or `None` when e-mail is off; the CA
    /// file is read now. `timeout` bounds each SMTP command.
    pub(super) fn new(options: &EmailOptions, timeout: Duration) -> Result<Option<Self>> {
        let (Some(url), Some(from)) = (&options.smtp_url, &options.from) else {
            return Ok(None);
        };
        let config = |reason: String| Error::Config {
            variable: "ALERT_SMTP_URL",
            reason,
        };
        let parameters = || -> Result<TlsParameters> {
            let mut builder = TlsParameters::builder(url.host.clone());
            if let Some(file) = &options.smtp_ca_file {
                let pem = std::fs::read(file).map_err(|error| Error::Config {
                    variable: "ALERT_SMTP_CA_FILE",
                    reason: format!("cannot read {}: {error}", file.display()),
                })?;
                let certificate = Certificate::from_pem(&pem).map_err(|error| Error::Config {
                    variable: "ALERT_SMTP_CA_FILE",
                    reason: format!("{} holds no usable certificate: {error}", file.display()),
                })?;
                builder = builder
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(certificate);
            }
            builder.build_rustls().map_err(|error| {
                config(format!("cannot set up TLS for {}: {error}", url.describe()))
            })
        };
        let tls = match url.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::Opportunistic => Tls::Opportunistic(parameters()?),
            SmtpSecurity::StartTls => Tls::Required(parameters()?),
            SmtpSecurity::Tls => Tls::Wrapper(parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host.clone())
            .port(url.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(user) = &url.user {
            let password = url
                .password
                .as_ref()
                .map(|password| password.expose().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Some(Self {
            transport: builder.build(),
            from: from.clone(),
            server: url.describe(),
        }))
    }

    /// Sends one outbox row: `recipients` comma-separated, `body` a
    /// [`Rendered`] message. The error says what failed, never the
    /// password.
    pub(super) async fn send(&self, recipients: &str, body: &str) -> Result<(), String> {
        let rendered: Rendered = serde_json::from_str(body)
            .map_err(|error| format!("the e-mail row's body is not a rendered message: {error}"))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(rendered.subject)
            .header(ContentType::TEXT_PLAIN);
        let mut any = false;
        for recipient in recipients
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let address: Address = recipient
                .parse()
                .map_err(|error| format!("recipient {recipient:?} is not an address: {error}"))?;
            builder = builder.to(Mailbox::new(None, address));
            any = true;
        }
        if !any {
            return Err("the e-mail row names no recipient".into());
        }
        let message = builder
            .body(rendered.text)
            .map_err(|error| format!("cannot build the e-mail: {error}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|error| format!("{}: {}", self.server, stoker_domain::error_chain(&error)))
    }
}

/// `stoker check`'s look at the SMTP server: connects as the dispatcher
/// would (TLS, STARTTLS, login) and says how, or why not. `None` when no
/// server is configured. Never shows the password.
pub async fn check_smtp(
    options: &EmailOptions,
    timeout: Duration,
) -> Option<Result<String, String>> {
    let url = options.smtp_url.as_ref()?;
    let mailer = match options
        .validate()
        .and_then(|()| Mailer::new(options, timeout))
    {
        Ok(Some(mailer)) => mailer,
        Ok(None) => return Some(Err("ALERT_EMAIL_FROM is not set".into())),
        Err(error) => return Some(Err(error.to_string())),
    };
    let how = match url.security {
        SmtpSecurity::Plain => "plain",
        SmtpSecurity::Opportunistic => "STARTTLS when offered",
        SmtpSecurity::StartTls => "STARTTLS",
        SmtpSecurity::Tls => "TLS",
    };
    let login = if url.user.is_some() {
        ", logged in"
    } else {
        ""
    };
    Some(match mailer.transport.test_connection().await {
        Ok(true) => Ok(format!("answers ({how}{login})")),
        Ok(false) => Err("the server did not answer NOOP".into()),
        Err(error) => Err(stoker_domain::error_chain(&error)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_say_how_to_connect() {
        let url = SmtpUrl::parse("smtp://alerts%40plant:p%40ss@mail.example.com:2525").unwrap();
        assert_eq!(url.host, "mail.example.com");
        assert_eq!(url.port, 2525);
        assert_eq!(url.security, SmtpSecurity::Opportunistic);
        assert_eq!(url.user.as_deref(), Some("alerts@plant"));
        assert_eq!(url.password.as_ref().unwrap().expose(), "p@ss");
        let shown = format!("{url:?}");
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );
        assert_eq!(shown, "smtp://alerts@plant@mail.example.com:2525");

        let url = SmtpUrl::parse("smtp://mail.example.com?tls=required").unwrap();
        assert_eq!((url.port, url.security), (587, SmtpSecurity::StartTls));
        assert!(url.user.is_none());
        let url = SmtpUrl::parse("smtps://u:pw@mail.example.com").unwrap();
        assert_eq!((url.port, url.security), (465, SmtpSecurity::Tls));
        let url = SmtpUrl::parse("smtp://127.0.0.1:25?tls=none").unwrap();
        assert_eq!(url.security, SmtpSecurity::Plain);
        assert_eq!(url.describe(), "smtp://127.0.0.1:25?tls=none");
    }

    #[test]
    fn bad_smtp_urls_are_refused_without_the_password() {
        for bad in [
            "http://u:hunter2@mail.example.com",
            "smtp://u:hunter2@mail.example.com?tls=maybe",
            "smtps://u:hunter2@mail.example.com?tls=none",
            "smtp://u:hunter2@mail.example.com/path",
            "smtp://u:hunter2@mail.example.com?starttls=1",
            "smtp://:hunter2@mail.example.com",
        ] {
            let error = SmtpUrl::parse(bad).unwrap_err();
            assert!(!error.contains("hunter2"), "{bad}: {error}");
        }
        assert!(SmtpUrl::parse("not a url").is_err());
    }

    #[test]
    fn recipients_per_severity() {
        let address = |text: &str| text.parse::<Address>().unwrap();
        let options = EmailOptions {
            to: vec![address("shift@example.com")],
            to_critical: Some(vec![
                address("chief@example.com"),
                address("shift@example.com"),
            ]),
            to_info: Some(vec![]),
            ..EmailOptions::default()
        };
        assert_eq!(
            options.recipients("warning"),
            &[address("shift@example.com")]
        );
        assert_eq!(options.recipients("critical").len(), 2);
        assert!(options.recipients("info").is_empty());
        let error = options.validate().unwrap_err().to_string();
        assert!(error.contains("ALERT_SMTP_URL"), "{error}");
        assert_eq!(
            parse_address_list(" a@example.com, ,b@example.com ")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_address_list("a@example.com,nobody").is_err());
        assert!(parse_mailbox("Stoker <alerts@example.com>").is_ok());
    }
}
