//! The socket to the broker: where it is (`MQTT_URL`), TCP or TLS, the
//! CONNECT handshake, and whole packets read and written over it.

use std::time::Duration;

use bytes::BytesMut;
use rumqttc::{ConnAck, Connect, ConnectReturnCode, Packet};
use stoker_tls::{MaybeTls, MqttTlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::{CONNECT_TIMEOUT, MqttOptions, SessionError};
use crate::{Error, Result};

/// Largest packet read from the broker. Large enough that an oversized
/// payload arrives and is refused with a count, instead of breaking the
/// connection (and being redelivered for ever).
const MAX_INCOMING_PACKET: usize = 16 * 1024 * 1024;

/// Where the broker is and how to reach it: plain TCP, or TLS with the
/// connector `MQTT_CA_FILE` and the client certificate settings make.
#[derive(Debug, Clone)]
pub(crate) struct Broker {
    pub(crate) host: String,
    pub(crate) port: u16,
    tls: Option<stoker_tls::Connector>,
}

impl Broker {
    /// The broker of `MQTT_URL`, its TLS files read now (an error names
    /// the one that cannot be used).
    pub(crate) fn new(options: &MqttOptions) -> Result<Self> {
        let invalid = |reason: String| invalid_url(&options.url, reason);
        let address = stoker_domain::BrokerAddress::parse(&options.url).map_err(invalid)?;
        let tls = options.tls.connector_for(&address).map_err(invalid)?;
        Ok(Self {
            host: address.host,
            port: address.port,
            tls,
        })
    }
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// rumqttc options for a broker URL and client id. Also used by the
/// simulator and `stoker check`.
pub fn client_options(url: &str, client_id: &str) -> Result<rumqttc::MqttOptions> {
    let address =
        stoker_domain::BrokerAddress::parse(url).map_err(|reason| invalid_url(url, reason))?;
    Ok(rumqttc_options(
        client_id,
        &address,
        address.host.clone(),
        address.port,
    ))
}

/// rumqttc options for the broker of `url`, for clients built on rumqttc
/// (the simulator): for an `mqtts://` broker, through a TLS tunnel
/// ([`stoker_tls::tunnel::Tunnel`], to keep while the client runs), as
/// rumqttc's own TLS would bring a second, vulnerable, rustls-webpki.
/// Needs a Tokio runtime.
pub fn client_options_tls(
    url: &str,
    client_id: &str,
    tls: &MqttTlsOptions,
) -> Result<(rumqttc::MqttOptions, Option<stoker_tls::tunnel::Tunnel>)> {
    let address =
        stoker_domain::BrokerAddress::parse(url).map_err(|reason| invalid_url(url, reason))?;
    let Some(connector) = tls
        .connector_for(&address)
        .map_err(|reason| invalid_url(url, reason))?
    else {
        return Ok((
            rumqttc_options(client_id, &address, address.host.clone(), address.port),
            None,
        ));
    };
    let tunnel =
        stoker_tls::tunnel::Tunnel::open("MQTT", address.host.clone(), address.port, connector)
            .map_err(|error| invalid_url(url, format!("cannot open the TLS tunnel: {error}")))?;
    let mut options = rumqttc_options(client_id, &address, tunnel.path().display().to_string(), 0);
    options.set_transport(rumqttc::Transport::unix());
    Ok((options, Some(tunnel)))
}

fn invalid_url(url: &str, reason: String) -> Error {
    Error::InvalidMqttUrl {
        url: stoker_domain::redact_url(url),
        reason,
    }
}

/// rumqttc options reaching `host:port` (or a Unix socket's path in
/// `host`) as the broker's user.
fn rumqttc_options(
    client_id: &str,
    address: &stoker_domain::BrokerAddress,
    host: String,
    port: u16,
) -> rumqttc::MqttOptions {
    let mut options = rumqttc::MqttOptions::new(client_id, host, port);
    if let Some((user, password)) = &address.credentials {
        options.set_credentials(user.clone(), password.clone());
    }
    options
        .set_keep_alive(Duration::from_secs(30))
        // Large enough that an oversized payload arrives and is refused
        // with a count, instead of breaking the connection (and being
        // redelivered for ever).
        .set_max_packet_size(16 * 1024 * 1024, 1024 * 1024);
    options
}

/// Opens a connection to the broker: TCP, the TLS handshake for an
/// `mqtts://` broker (its certificate verified for the URL's host),
/// CONNECT, CONNACK (refused unless successful), each step within
/// [`CONNECT_TIMEOUT`]. The one place a socket to the broker is opened,
/// for ingestion's connection and the Sparkplug host's alike.
pub(crate) async fn open(
    broker: &Broker,
    connect: Connect,
) -> std::result::Result<(PacketReader, PacketWriter, ConnAck), SessionError> {
    let stream = connect_stream(broker).await?;
    handshake(stream, connect).await
}

/// The socket to the broker: TCP, then TLS for an `mqtts://` broker.
async fn connect_stream(broker: &Broker) -> std::result::Result<MaybeTls<TcpStream>, SessionError> {
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((broker.host.as_str(), broker.port)),
    )
    .await
    .map_err(|_| SessionError::Timeout(CONNECT_TIMEOUT))??;
    stream.set_nodelay(true)?;
    Ok(match &broker.tls {
        None => MaybeTls::Plain(stream),
        Some(connector) => MaybeTls::Tls(Box::new(
            tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(&broker.host, stream))
                .await
                .map_err(|_| SessionError::Timeout(CONNECT_TIMEOUT))?
                .map_err(SessionError::Tls)?,
        )),
    })
}

/// CONNECT and CONNACK over a connected socket.
async fn handshake(
    stream: MaybeTls<TcpStream>,
    connect: Connect,
) -> std::result::Result<(PacketReader, PacketWriter, ConnAck), SessionError> {
    let (read, write) = tokio::io::split(stream);
    let mut reader = PacketReader {
        read,
        buffer: BytesMut::with_capacity(64 * 1024),
    };
    let mut writer = PacketWriter { write };
    writer.send(&Packet::Connect(connect)).await?;
    let connack = match tokio::time::timeout(CONNECT_TIMEOUT, reader.next())
        .await
        .map_err(|_| SessionError::Timeout(CONNECT_TIMEOUT))??
    {
        Packet::ConnAck(connack) => connack,
        _ => return Err(SessionError::Unexpected("a packet other than CONNACK")),
    };
    if connack.code != ConnectReturnCode::Success {
        return Err(SessionError::Refused(connack.code));
    }
    Ok((reader, writer, connack))
}

/// `stoker check`: connects as ingestion would (a clean session of
/// `client_id`), and says how: plain TCP, or the TLS version and when
/// the broker's certificate expires. The error says why it could not
/// (a certificate not valid for the host, an unknown issuer, a refused
/// login).
pub async fn probe(options: &MqttOptions, client_id: &str) -> Result<String, String> {
    let broker = Broker::new(options).map_err(|error| error.to_string())?;
    let mqtt = client_options(&options.url, client_id).map_err(|error| error.to_string())?;
    let stream = connect_stream(&broker)
        .await
        .map_err(|error| error.to_string())?;
    let link = match &stream {
        MaybeTls::Plain(_) => "plain TCP, no TLS".to_owned(),
        MaybeTls::Tls(tls) => stoker_tls::certificate::describe(tls.get_ref().1),
    };
    let mut connect = Connect::new(client_id);
    connect.clean_session = true;
    connect.keep_alive = 30;
    connect.login = mqtt.credentials();
    let (_reader, mut writer, _) = handshake(stream, connect)
        .await
        .map_err(|error| error.to_string())?;
    let _ = writer.send(&Packet::Disconnect).await;
    writer.close().await;
    Ok(format!("broker accepted a connection ({link})"))
}

pub(crate) fn encode(
    packet: &Packet,
    buffer: &mut BytesMut,
) -> std::result::Result<(), SessionError> {
    packet
        .write(buffer, usize::MAX)
        .map(drop)
        .map_err(SessionError::Protocol)
}

/// Writes packets to the socket.
pub(crate) struct PacketWriter {
    write: WriteHalf<MaybeTls<TcpStream>>,
}

impl PacketWriter {
    /// Encodes and writes one packet.
    pub(crate) async fn send(&mut self, packet: &Packet) -> std::result::Result<(), SessionError> {
        let mut buffer = BytesMut::new();
        encode(packet, &mut buffer)?;
        self.send_encoded(&buffer).await
    }

    /// Writes packets already encoded (many in one socket write).
    pub(crate) async fn send_encoded(
        &mut self,
        bytes: &[u8],
    ) -> std::result::Result<(), SessionError> {
        self.write.write_all(bytes).await?;
        Ok(())
    }

    /// Shuts the socket down after what was written.
    pub(crate) async fn close(&mut self) {
        let _ = self.write.shutdown().await;
    }
}

/// Reads whole packets from the socket.
pub(crate) struct PacketReader {
    read: ReadHalf<MaybeTls<TcpStream>>,
    buffer: BytesMut,
}

impl PacketReader {
    /// The next packet. Cancel-safe: what was read stays in the buffer.
    pub(crate) async fn next(&mut self) -> std::result::Result<Packet, SessionError> {
        loop {
            match Packet::read(&mut self.buffer, MAX_INCOMING_PACKET) {
                Ok(packet) => return Ok(packet),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(needed)) => {
                    self.buffer.reserve(needed.max(16 * 1024));
                }
                Err(error) => return Err(SessionError::Protocol(error)),
            }
            if self.read.read_buf(&mut self.buffer).await? == 0 {
                return Err(SessionError::Closed);
            }
        }
    }
}
