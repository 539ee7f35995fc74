//! The outbox's settings: where notifications go and how hard to try.

use std::fmt;
use std::time::Duration;

use stoker_domain::{Secret, SiteSlug, parse_duration};
use url::Url;

use super::email::EmailOptions;
use super::flood::FloodOptions;
use super::{Error, Result};

/// Where alert notifications go and how their delivery is retried.
///
/// `Debug` shows neither the webhook secret nor the webhooks' paths and
/// queries (services such as chat webhooks carry a token there).
#[derive(Clone, clap::Args)]
pub struct NotifyOptions {
    /// Webhook URLs (http:// or https://), comma-separated, that receive every alert transition as a JSON POST signed with ALERT_WEBHOOK_SECRET (see the X-Stoker-Signature header). None by default (empty): alerts are then announced on MQTT only.
    // `::std::vec::Vec` makes clap parse the whole list as one value, so
    // that an empty ALERT_WEBHOOKS means none.
    #[arg(
        id = "notify_webhooks",
        long = "alert-webhooks",
        env = "ALERT_WEBHOOKS",
        value_name = "URLS",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_webhook_list,
        hide_env_values = true
    )]
    pub webhooks: ::std::vec::Vec<Url>,

    /// Key of the HMAC-SHA256 signature on every webhook request (its UTF-8 bytes); receivers verify the X-Stoker-Signature header with it. Required when ALERT_WEBHOOKS is set.
    #[arg(
        id = "notify_webhook_secret",
        long = "alert-webhook-secret",
        env = "ALERT_WEBHOOK_SECRET",
        value_name = "SECRET",
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub webhook_secret: Option<Secret>,

    /// Attempts per notification and destination before it is given up and recorded as failed (analytics.notifications.failed_at, last_error).
    #[arg(
        id = "notify_max_attempts",
        long = "alert-notify-max-attempts",
        env = "ALERT_NOTIFY_MAX_ATTEMPTS",
        value_name = "N",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub max_attempts: u32,

    /// Wait before the first retry of a failed delivery; each further retry waits twice as long (up to ALERT_NOTIFY_BACKOFF_MAX), less a random part of up to half, so that receivers coming back are not hit by every retry at once.
    #[arg(
        id = "notify_backoff",
        long = "alert-notify-backoff",
        env = "ALERT_NOTIFY_BACKOFF",
        value_name = "DURATION",
        default_value = "5s",
        value_parser = parse_positive_duration
    )]
    pub backoff: Duration,

    /// Longest wait between two attempts of a delivery.
    #[arg(
        id = "notify_backoff_max",
        long = "alert-notify-backoff-max",
        env = "ALERT_NOTIFY_BACKOFF_MAX",
        value_name = "DURATION",
        default_value = "5m",
        value_parser = parse_positive_duration
    )]
    pub backoff_max: Duration,

    /// Longest one attempt may take: a webhook's whole request and answer, or the broker's acknowledgement of an MQTT publish. Past it the attempt counts as failed.
    #[arg(
        id = "notify_timeout",
        long = "alert-notify-timeout",
        env = "ALERT_NOTIFY_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_positive_duration
    )]
    pub timeout: Duration,

    /// Prefix of the MQTT topic alerts are published on: {prefix}alerts/{site}. Empty by default; set it like MQTT_TOPIC_PREFIX (e.g. "plant-a/") when the broker is shared with other systems.
    #[arg(
        id = "notify_topic_prefix",
        long = "alert-mqtt-topic-prefix",
        env = "ALERT_MQTT_TOPIC_PREFIX",
        value_name = "PREFIX",
        default_value = "",
        value_parser = parse_topic_prefix
    )]
    pub topic_prefix: String,

    /// The e-mail channel and the escalation targets.
    #[command(flatten)]
    pub email: EmailOptions,

    /// Alarm floods and their digests.
    #[command(flatten)]
    pub flood: FloodOptions,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            webhook_secret: None,
            max_attempts: 8,
            backoff: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            topic_prefix: String::new(),
            email: EmailOptions::default(),
            flood: FloodOptions::default(),
        }
    }
}

impl fmt::Debug for NotifyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let webhooks: Vec<String> = self.webhooks.iter().map(redact_webhook).collect();
        f.debug_struct("NotifyOptions")
            .field("webhooks", &webhooks)
            .field("webhook_secret", &self.webhook_secret)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("backoff_max", &self.backoff_max)
            .field("timeout", &self.timeout)
            .field("topic_prefix", &self.topic_prefix)
            .field("email", &self.email)
            .field("flood", &self.flood)
            .finish()
    }
}

impl NotifyOptions {
    /// The MQTT topic of a site's alerts: `{prefix}alerts/{site}`.
    pub fn topic(&self, site: &SiteSlug) -> String {
        format!("{}alerts/{site}", self.topic_prefix)
    }

    /// The MQTT topic of a site's escalations: `{prefix}alerts/{site}/escalations`.
    pub fn escalation_topic(&self, site: &SiteSlug) -> String {
        format!("{}alerts/{site}/escalations", self.topic_prefix)
    }

    /// The MQTT topic of a site's flood digests: `{prefix}alerts/{site}/digest`.
    pub fn digest_topic(&self, site: &SiteSlug) -> String {
        format!("{}alerts/{site}/digest", self.topic_prefix)
    }

    /// Checks what the command line cannot check on its own: settings
    /// built in code, and settings that depend on each other (webhooks need
    /// a secret). [`Dispatcher::new`](super::Dispatcher::new) calls it, so
    /// a bad setting stops the process at start.
    pub fn validate(&self) -> Result<()> {
        let invalid =
            |variable: &'static str, reason: String| Err(Error::Config { variable, reason });
        if !self.webhooks.is_empty()
            && self
                .webhook_secret
                .as_ref()
                .is_none_or(|secret| secret.is_empty())
        {
            return invalid(
                "ALERT_WEBHOOK_SECRET",
                "it is required when ALERT_WEBHOOKS is set: webhook requests are signed with it"
                    .into(),
            );
        }
        for url in &self.webhooks {
            if let Err(reason) = check_webhook_url(url) {
                return invalid("ALERT_WEBHOOKS", reason);
            }
        }
        if !(1..=1000).contains(&self.max_attempts) {
            return invalid(
                "ALERT_NOTIFY_MAX_ATTEMPTS",
                format!("{} is not between 1 and 1000", self.max_attempts),
            );
        }
        for (variable, value) in [
            ("ALERT_NOTIFY_BACKOFF", self.backoff),
            ("ALERT_NOTIFY_BACKOFF_MAX", self.backoff_max),
            ("ALERT_NOTIFY_TIMEOUT", self.timeout),
        ] {
            if value.is_zero() {
                return invalid(variable, "it must be longer than zero".into());
            }
        }
        if self.backoff_max < self.backoff {
            return invalid(
                "ALERT_NOTIFY_BACKOFF_MAX",
                format!(
                    "{:?} is shorter than ALERT_NOTIFY_BACKOFF ({:?})",
                    self.backoff_max, self.backoff
                ),
            );
        }
        if let Err(reason) = parse_topic_prefix(&self.topic_prefix) {
            return invalid("ALERT_MQTT_TOPIC_PREFIX", reason);
        }
        for (variable, value) in [
            ("ALERT_FLOOD_WINDOW", self.flood.window),
            ("ALERT_DIGEST_EVERY", self.flood.digest_every),
        ] {
            if value < Duration::from_secs(1) {
                return invalid(variable, "it must be at least 1s".into());
            }
        }
        self.email.validate()
    }

    /// The wait before the next attempt after `attempts` failed ones:
    /// `backoff` doubled per earlier failure, at most `backoff_max`, less a
    /// random part of up to half (`jitter` in `0.0..1.0` picks it).
    pub(super) fn retry_delay(&self, attempts: u32, jitter: f64) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        let full = self
            .backoff
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max);
        full.mul_f64(1.0 - 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// A webhook URL as logs and `Debug` show it: scheme, host and port, with
/// the path and query (which may hold a token) and any password left out.
pub(super) fn redact_webhook(url: &Url) -> String {
    let origin = url.origin().ascii_serialization();
    let has_more = url.path() != "/" || url.query().is_some();
    if has_more {
        format!("{origin}/…")
    } else {
        origin
    }
}

/// The same check for settings parsed and built in code.
fn check_webhook_url(url: &Url) -> Result<(), String> {
    let shown = redact_webhook(url);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{shown} uses scheme {:?}: webhooks must be http:// or https:// URLs",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown} has no host"));
    }
    Ok(())
}

/// A comma-separated list of webhook URLs; blanks between commas are
/// ignored, so an empty text is an empty list.
fn parse_webhook_list(text: &str) -> Result<Vec<Url>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(parse_webhook_url)
        .collect()
}

fn parse_webhook_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| {
        // The text may hold a token; show where it goes wrong, not all of it.
        let head: String = text.chars().take(40).collect();
        let ellipsis = if text.chars().count() > 40 { "…" } else { "" };
        format!("{head:?}{ellipsis} is not a URL ({error}): expected e.g. https://hooks.example.com/stoker")
    })?;
    check_webhook_url(&url)?;
    Ok(url)
}

fn parse_secret(text: &str) -> Result<Secret, String> {
    if text.is_empty() {
        return Err("the webhook secret must not be empty".into());
    }
    Ok(Secret::new(text))
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() {
        return Err("it must be longer than zero".into());
    }
    Ok(duration)
}

fn parse_topic_prefix(text: &str) -> Result<String, String> {
    if text.contains(['+', '#', '\0']) {
        return Err(format!(
            "{text:?} holds an MQTT wildcard (+ or #) or a NUL character, which topics to publish on may not"
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        notify: NotifyOptions,
    }

    fn parse(arguments: &[&str]) -> std::result::Result<NotifyOptions, String> {
        Command::try_parse_from(std::iter::once("stoker").chain(arguments.iter().copied()))
            .map(|command| command.notify)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn the_arguments_are_consistent() {
        use clap::CommandFactory;
        Command::command().debug_assert();
    }

    #[test]
    fn defaults_need_no_webhook() {
        let options = parse(&[]).unwrap();
        assert!(options.webhooks.is_empty());
        assert_eq!(options.max_attempts, 8);
        assert_eq!(options.backoff, Duration::from_secs(5));
        assert_eq!(options.backoff_max, Duration::from_secs(300));
        assert_eq!(options.timeout, Duration::from_secs(10));
        options.validate().unwrap();
        let site = SiteSlug::parse("boiler-house-1").unwrap();
        assert_eq!(options.topic(&site), "alerts/boiler-house-1");
    }

    #[test]
    fn webhooks_are_a_comma_separated_list_with_a_secret() {
        let options = parse(&[
            "--alert-webhooks",
            "https://hooks.example.com/a?token=t0k3n, http://10.0.0.5:8080",
            "--alert-webhook-secret",
            "hunter2",
            "--alert-mqtt-topic-prefix",
            "plant-a/",
        ])
        .unwrap();
        assert_eq!(options.webhooks.len(), 2);
        assert_eq!(options.webhooks[1].as_str(), "http://10.0.0.5:8080/");
        options.validate().unwrap();
        let site = SiteSlug::parse("bh1").unwrap();
        assert_eq!(options.topic(&site), "plant-a/alerts/bh1");
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("t0k3n"), "{shown}");
        assert!(shown.contains("https://hooks.example.com/…"), "{shown}");
    }

    #[test]
    fn an_empty_list_means_no_webhook() {
        for empty in ["", " ", ",", " , "] {
            let options = parse(&["--alert-webhooks", empty]).unwrap();
            assert!(options.webhooks.is_empty(), "{empty:?}");
            options.validate().unwrap();
        }
        let options = parse(&[
            "--alert-webhooks",
            "https://a.example,,https://b.example,",
            "--alert-webhook-secret",
            "s",
        ])
        .unwrap();
        assert_eq!(options.webhooks.len(), 2);
    }

    #[test]
    fn a_bad_webhook_url_is_named() {
        let error = parse(&[
            "--alert-webhooks",
            "https://ok.example.com,ftp://files.example.com/drop",
            "--alert-webhook-secret",
            "s",
        ])
        .unwrap_err();
        assert!(error.contains("ftp://files.example.com"), "{error}");
        assert!(error.contains("http:// or https://"), "{error}");
        let error = parse(&[
            "--alert-webhooks",
            "not a url",
            "--alert-webhook-secret",
            "s",
        ])
        .unwrap_err();
        assert!(error.contains("\"not a url\" is not a URL"), "{error}");
    }

    #[test]
    fn webhooks_without_a_secret_are_refused() {
        let error = parse(&["--alert-webhooks", "https://hooks.example.com"])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "ALERT_WEBHOOK_SECRET is invalid: it is required when ALERT_WEBHOOKS is set: \
             webhook requests are signed with it"
        );
        let error = parse(&[
            "--alert-webhooks",
            "https://hooks.example.com",
            "--alert-webhook-secret",
            "",
        ])
        .unwrap_err();
        assert!(error.contains("must not be empty"), "{error}");
        let built = NotifyOptions {
            webhooks: vec![Url::parse("https://hooks.example.com").unwrap()],
            ..NotifyOptions::default()
        };
        let error = built.validate().unwrap_err().to_string();
        assert!(error.contains("ALERT_WEBHOOK_SECRET"), "{error}");
    }

    #[test]
    fn other_settings_are_checked() {
        assert!(parse(&["--alert-notify-max-attempts", "0"]).is_err());
        assert!(parse(&["--alert-notify-backoff", "0s"]).is_err());
        assert!(parse(&["--alert-notify-timeout", "soon"]).is_err());
        assert!(parse(&["--alert-mqtt-topic-prefix", "plant/#/"]).is_err());
        let error = parse(&[
            "--alert-notify-backoff",
            "10s",
            "--alert-notify-backoff-max",
            "1s",
        ])
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
        assert!(error.contains("ALERT_NOTIFY_BACKOFF_MAX"), "{error}");
    }

    #[test]
    fn retries_back_off_within_bounds() {
        let options = NotifyOptions {
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            ..NotifyOptions::default()
        };
        for attempts in 1..=40 {
            let full = Duration::from_secs(1u64 << (attempts - 1).min(20)).min(options.backoff_max);
            for jitter in [0.0, 0.25, 0.5, 0.999, 1.0] {
                let delay = options.retry_delay(attempts, jitter);
                assert!(delay <= full, "{attempts} {jitter}: {delay:?} > {full:?}");
                assert!(
                    delay >= full / 2,
                    "{attempts} {jitter}: {delay:?} < {full:?}/2"
                );
                assert!(delay <= options.backoff_max);
            }
        }
        assert_eq!(options.retry_delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(options.retry_delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(options.retry_delay(30, 0.0), Duration::from_secs(300));
        assert_eq!(options.retry_delay(u32::MAX, 1.0), Duration::from_secs(150));
    }

    #[test]
    fn webhooks_are_shown_without_path_or_password() {
        let url = Url::parse("https://user:pw@hooks.example.com:8443/services/T0/B0/x").unwrap();
        assert_eq!(redact_webhook(&url), "https://hooks.example.com:8443/…");
        let url = Url::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(redact_webhook(&url), "http://127.0.0.1:9000");
    }
}
