//! Where an MQTT broker is: `mqtt://[user:password@]host[:port]`.

/// A broker address read from a URL such as `MQTT_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or address.
    pub host: String,
    /// Port (1883 when the URL has none).
    pub port: u16,
    /// User name and password, when the URL has a user.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAddress")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl BrokerAddress {
    /// Reads `mqtt://` or `tcp://` URLs; `mqtts://` is refused (TLS is not
    /// supported yet). The error says what is wrong, without the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|error| error.to_string())?;
        match parsed.scheme() {
            "mqtt" | "tcp" => {}
            "mqtts" | "ssl" => {
                return Err("TLS (mqtts://) is not supported yet; use mqtt://".into());
            }
            other => return Err(format!("unknown scheme {other:?}; use mqtt://host:port")),
        }
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
            port: parsed.port().unwrap_or(1883),
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
        assert_eq!(BrokerAddress::parse("tcp://127.0.0.1").unwrap().port, 1883);
        assert!(
            BrokerAddress::parse("mqtts://host")
                .unwrap_err()
                .contains("TLS")
        );
        assert!(
            BrokerAddress::parse("http://host")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(BrokerAddress::parse("not a url").is_err());
    }
}
