//! `stoker influx setup|rollup`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use stoker_domain::EpochMillis;
use stoker_timeseries::rollup::{MINUTE_MS, floor_minute};
use stoker_timeseries::{Influx, InfluxOptions};

use crate::cli::InfluxCommand;

/// Minutes re-rolled per query by `stoker influx rollup`.
const CHUNK_MINUTES: i64 = 60;

pub(super) async fn run(command: InfluxCommand) -> anyhow::Result<ExitCode> {
    match command {
        InfluxCommand::Setup { influx } => {
            let connection = connect(&influx).await?;
            let report = connection
                .setup()
                .await
                .with_context(|| format!("setting up InfluxDB database {:?}", influx.bucket))?;
            println!(
                "InfluxDB {} at {}: database {:?} ready\n  raw readings: measurement readings, policy {:?}, kept {}\n  rollup: measurement readings_1m, policy {:?}, kept {}",
                connection.version(),
                stoker_domain::redact_url(&influx.url),
                report.database,
                report.raw_policy,
                shown(report.raw_retention),
                report.rollup_policy,
                shown(report.rollup_retention),
            );
            Ok(ExitCode::SUCCESS)
        }
        InfluxCommand::Rollup { influx, from, to } => {
            let from = time("--from", &from)?;
            let to = match to {
                Some(text) => time("--to", &text)?,
                None => EpochMillis::now(),
            };
            if from >= to {
                anyhow::bail!("--from ({from}) must be before --to ({to})");
            }
            let connection = connect(&influx).await?;
            let (mut start, end) = (floor_minute(from), floor_minute(to));
            let minutes = (end.as_millis() - start.as_millis()) / MINUTE_MS;
            eprintln!("rolling up {minutes} minutes, {start} to {end}, into readings_1m");
            let (mut points, mut readings) = (0, 0);
            while start < end {
                let stop = start.plus_millis(CHUNK_MINUTES * MINUTE_MS).min(end);
                let report = connection
                    .roll_up(start, stop)
                    .await
                    .with_context(|| format!("rolling up {start} to {stop}"))?;
                points += report.points;
                readings += report.readings;
                eprintln!("  through {stop}: {points} points from {readings} readings");
                start = stop;
            }
            println!("rolled up {minutes} minutes: {points} points from {readings} readings");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn connect(options: &InfluxOptions) -> anyhow::Result<Influx> {
    Influx::connect(options).await.with_context(|| {
        format!(
            "connecting to InfluxDB (INFLUX_URL={})",
            stoker_domain::redact_url(&options.url)
        )
    })
}

fn time(flag: &str, text: &str) -> anyhow::Result<EpochMillis> {
    let parsed = match text.parse::<i64>() {
        Ok(millis) => EpochMillis::from_millis(millis),
        Err(_) => EpochMillis::parse_rfc3339(text),
    };
    parsed.map_err(|_| {
        anyhow::anyhow!(
            "{flag} {text:?} is neither RFC 3339 (2026-11-22T10:00:00Z) nor epoch milliseconds"
        )
    })
}

/// A retention for people: `30 days`, `36 hours`, or `forever`
/// (humantime's own form, for the rest).
pub(crate) fn shown(keep: Option<Duration>) -> String {
    match keep.map(|keep| keep.as_secs()) {
        None => "forever".to_owned(),
        Some(secs) if secs % 86_400 == 0 => format!("{} days", secs / 86_400),
        Some(secs) if secs % 3_600 == 0 => format!("{} hours", secs / 3_600),
        Some(secs) => humantime::format_duration(Duration::from_secs(secs)).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retentions_read_as_written() {
        assert_eq!(shown(Some(Duration::from_secs(730 * 86_400))), "730 days");
        assert_eq!(shown(Some(Duration::from_secs(36 * 3_600))), "36 hours");
        assert_eq!(shown(Some(Duration::from_secs(5_400))), "1h 30m");
        assert_eq!(shown(None), "forever");
    }
}
