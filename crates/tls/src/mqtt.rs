//! The MQTT links' TLS settings (`MQTT_CA_FILE`, `MQTT_CLIENT_CERT`,
//! `MQTT_CLIENT_KEY`), shared by ingestion, the alert publisher, the
//! simulator and `stoker check`.

use std::path::PathBuf;

use stoker_domain::BrokerAddress;

use crate::{ClientTls, Connector};

/// TLS for the broker connection, used when `MQTT_URL` is `mqtts://`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct MqttTlsOptions {
    /// PEM file of the certificate authority that signed the broker's certificate (mqtts:// only); unset: the system's trusted roots. The broker's certificate must be valid for the URL's host name.
    #[arg(id = "mqtt_ca_file", long = "mqtt-ca-file", env = "MQTT_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// PEM file of Stoker's client certificate, for brokers that require one (mqtts:// only; with MQTT_CLIENT_KEY).
    #[arg(
        id = "mqtt_client_cert",
        long = "mqtt-client-cert",
        env = "MQTT_CLIENT_CERT"
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM file of the client certificate's private key (never logged).
    #[arg(
        id = "mqtt_client_key",
        long = "mqtt-client-key",
        env = "MQTT_CLIENT_KEY"
    )]
    pub client_key: Option<PathBuf>,
}

impl MqttTlsOptions {
    /// The client TLS settings these options name.
    pub fn client_tls(&self) -> Result<ClientTls, String> {
        ClientTls::from_paths(
            self.ca_file.clone(),
            self.client_cert.clone(),
            self.client_key.clone(),
        )
    }

    /// Whether any TLS file is set.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }

    /// The connector for a broker: `None` for a plain `mqtt://` broker
    /// (TLS files set for one are an error: the operator meant TLS), the
    /// files read now for `mqtts://`. The error names the setting and the
    /// file, never a key's contents.
    pub fn connector_for(&self, broker: &BrokerAddress) -> Result<Option<Connector>, String> {
        if !broker.tls {
            if self.is_set() {
                return Err(
                    "MQTT_CA_FILE, MQTT_CLIENT_CERT or MQTT_CLIENT_KEY is set but MQTT_URL is not mqtts://: use mqtts://host:8883 for TLS"
                        .into(),
                );
            }
            return Ok(None);
        }
        let connector = self
            .client_tls()?
            .connector()
            .map_err(|error| error.to_string())?;
        Ok(Some(connector))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_need_an_mqtts_url() {
        let plain = BrokerAddress::parse("mqtt://127.0.0.1").unwrap();
        assert!(
            MqttTlsOptions::default()
                .connector_for(&plain)
                .unwrap()
                .is_none()
        );
        let with_ca = MqttTlsOptions {
            ca_file: Some("/etc/ca.pem".into()),
            ..MqttTlsOptions::default()
        };
        let error = with_ca.connector_for(&plain).unwrap_err();
        assert!(error.contains("mqtts://"), "{error}");
        let secure = BrokerAddress::parse("mqtts://127.0.0.1").unwrap();
        let error = with_ca.connector_for(&secure).unwrap_err();
        assert!(error.contains("/etc/ca.pem"), "{error}");
    }
}
