//! `simulate`: a boiler fleet publishing over MQTT.

use std::process::ExitCode;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::SimulateCommand;

pub(super) async fn run(args: SimulateCommand) -> anyhow::Result<ExitCode> {
    refuse_untrusted_broker(&args).await?;
    // The tunnel (an mqtts:// broker) lives until the simulation ends.
    let (mqtt, _tunnel) =
        stoker_ingestion::client_options_tls(&args.mqtt_url, &args.client_id, &args.mqtt_tls)?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        stop.cancel();
    });
    let summary = stoker_simulator::run(args.simulate, mqtt, shutdown)
        .await
        .context("simulation failed")?;
    println!(
        "published {} messages ({} readings) in {:.1} s",
        summary.messages,
        summary.readings,
        summary.elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// An `mqtts://` broker whose certificate this client refuses (another CA,
/// another name, expired) refuses it at every retry: the simulator says so
/// and stops instead of retrying until it is stopped. A broker that cannot
/// be reached yet is left to the simulator's reconnection, as over plain
/// MQTT.
async fn refuse_untrusted_broker(args: &SimulateCommand) -> anyhow::Result<()> {
    let Ok(address) = stoker_domain::BrokerAddress::parse(&args.mqtt_url) else {
        // client_options_tls names what is wrong with the URL.
        return Ok(());
    };
    let Some(connector) = args
        .mqtt_tls
        .connector_for(&address)
        .map_err(|reason| anyhow::anyhow!(reason))?
    else {
        return Ok(());
    };
    let host = address.host.trim_start_matches('[').trim_end_matches(']');
    let Ok(stream) = tokio::net::TcpStream::connect((host, address.port)).await else {
        return Ok(());
    };
    match connector.connect(&address.host, stream).await {
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => Err(anyhow::anyhow!(
            "the broker {}:{} is not trusted: {error} (MQTT_CA_FILE names the CA that signed its certificate, which must be valid for {})",
            address.host,
            address.port,
            address.host
        )),
        _ => Ok(()),
    }
}
