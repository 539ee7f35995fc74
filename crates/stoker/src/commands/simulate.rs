//! `simulate`: a boiler fleet publishing over MQTT.

use std::process::ExitCode;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::SimulateCommand;

pub(super) async fn run(args: SimulateCommand) -> anyhow::Result<ExitCode> {
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
