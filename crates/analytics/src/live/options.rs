//! [`EvaluationOptions`]: how and how often the evaluation loop runs.

use std::time::Duration;

/// How and how often rules are evaluated.
#[derive(Debug, Clone, clap::Args)]
pub struct EvaluationOptions {
    /// How often every enabled rule is evaluated: ticks are multiples of
    /// this since the epoch, and a rule's windows are read up to the tick.
    #[arg(
        id = "analytics_interval",
        long = "analytics-interval",
        env = "ANALYTICS_INTERVAL",
        default_value = "10s",
        value_parser = parse_interval
    )]
    pub interval: Duration,
    /// How long after a tick its evaluation starts, so that readings
    /// timestamped just before the tick have been stored. A reading stored
    /// later than this is seen by later ticks and by backtests, not by the
    /// tick it belonged to.
    #[arg(
        id = "analytics_grace",
        long = "analytics-grace",
        env = "ANALYTICS_GRACE",
        default_value = "2s",
        value_parser = humantime::parse_duration
    )]
    pub grace: Duration,
}

impl Default for EvaluationOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            grace: Duration::from_secs(2),
        }
    }
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if interval < Duration::from_secs(1) || interval.subsec_nanos() != 0 {
        return Err("the interval must be at least 1s, in whole seconds".into());
    }
    Ok(interval)
}
