//! Where an MQTT broker is: `mqtt://[user:password@]host[:port]`, or
//! `mqtts://` for TLS.

/// A broker address read from a URL such as `MQTT_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or address.
    pub host: String,
    /// Port (1883 when the URL has none, 8883 with TLS).
    pub port: u16,
    /// Whether the connection is TLS (`mqtts://`, `ssl://`).
    pub tls: bool,
    /// User name and password, when the URL has a user.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAddress")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl BrokerAddress {
    /// Reads `mqtt://` or `tcp://` URLs (plain TCP), and `mqtts://` or
    /// `ssl://` (TLS). The error says what is wrong, without the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|error| error.to_string())?;
        let tls = match parsed.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "unknown scheme {other:?}; use mqtt://host:port or mqtts://host:port"
                ));
            }
        };
        let host = parsed
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| "no host".to_owned())?;
        let credentials = (!parsed.username().is_empty()).then(|| {
            (
                parsed.username().to_owned(),
                parsed.password().unwrap_or_default().to_owned(),
            )
        });
        Ok(Self {
            host: host.to_owned(),
            port: parsed.port().unwrap_or(if tls { 8883 } else { 1883 }),
            tls,
            credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_with_defaults_and_credentials() {
        let address = BrokerAddress::parse("mqtt://alice:pw@broker.example:1884").unwrap();
        assert_eq!(address.host, "broker.example");
        assert_eq!(address.port, 1884);
        assert_eq!(address.credentials, Some(("alice".into(), "pw".into())));
        assert!(!format!("{address:?}").contains("pw"));
        assert!(!address.tls);
        assert_eq!(BrokerAddress::parse("tcp://127.0.0.1").unwrap().port, 1883);
        let secure = BrokerAddress::parse("mqtts://host").unwrap();
        assert_eq!((secure.port, secure.tls), (8883, true));
        let secure = BrokerAddress::parse("ssl://u:pw@host:9883").unwrap();
        assert_eq!((secure.port, secure.tls), (9883, true));
        assert!(
            BrokerAddress::parse("http://host")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(BrokerAddress::parse("not a url").is_err());
    }
}
