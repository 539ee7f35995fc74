//! The options of `stoker simulate` and the checks that `run` repeats for
//! callers that build them in code rather than through clap.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::names::{MAX_SENSORS_PER_SITE, is_identifier, site_slug};

/// The cycle the fault plan (`faults`) is written for: `--fault-cycle`
/// scales every time in it by `fault_cycle / 8 min`.
pub(crate) const DEFAULT_FAULT_CYCLE: Duration = Duration::from_secs(480);
/// Below a second the faults would be over in a few hundred milliseconds,
/// too short for any alert rule to tell them from noise.
pub(crate) const MIN_FAULT_CYCLE: Duration = Duration::from_secs(1);

/// The highest rate a site may publish at. Timestamps are whole
/// milliseconds and InfluxDB identifies a point by its tags and timestamp,
/// so two messages of one site within the same millisecond would overwrite
/// each other's readings.
pub(crate) const MAX_RATE_PER_SITE: f64 = 1000.0;

/// Options of `stoker simulate`: a fleet of boiler houses publishing
/// telemetry over MQTT.
#[derive(clap::Args, Clone)]
pub struct SimulateArgs {
    /// Number of sites (boiler houses) to simulate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub sites: u32,

    /// Sensors per site. Each boiler has 10 sensors, so 12 means all of
    /// boiler 1 and the first 2 of boiler 2.
    #[arg(
        long,
        default_value_t = 12,
        value_parser = clap::value_parser!(u32).range(1..=MAX_SENSORS_PER_SITE as i64)
    )]
    pub sensors: u32,

    /// Messages per second per site; each message carries all of the site's
    /// readings. Fractions are allowed (0.2 is one message every 5 s).
    #[arg(long, default_value_t = 1.0, value_parser = parse_rate)]
    pub rate: f64,

    /// How long to publish, e.g. "60s" or "5m". Default: until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many messages in total (all sites together), for
    /// bounded benchmark runs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: Option<u64>,

    /// MQTT QoS: 0 (at most once) or 1 (at least once, every message
    /// acknowledged by the broker before the run ends).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,

    /// Site slug prefix: sites are named PREFIX-1, PREFIX-2, …
    #[arg(long, default_value = "boiler-house", value_parser = parse_site_prefix)]
    pub site_prefix: String,

    /// Create the fleet's sites and sensors through Stoker's HTTP API at this
    /// base URL before publishing, e.g. http://127.0.0.1:8080. Existing
    /// sites and sensors are left as they are.
    #[arg(long, value_name = "URL")]
    pub seed_api: Option<String>,

    /// API key (scope admin) sent as a bearer token when seeding through
    /// --seed-api.
    #[arg(long, env = "STOKER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Prefix prepended to every MQTT topic, for isolated test runs, e.g.
    /// "test-42/".
    #[arg(long, env = "MQTT_TOPIC_PREFIX", default_value = "", value_parser = parse_topic_prefix)]
    pub topic_prefix: String,

    /// Random seed, for reproducible signals. Default: a random one, logged
    /// at start so a run can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Inject sensor faults into the first site's boiler 1, so that alert
    /// rules fire and clear: the flue O2 sticks, the feedwater temperature
    /// drifts, the flue temperature spikes, the feedwater flow falls silent,
    /// and the steam pressure goes through an overpressure episode. The
    /// schedule repeats every --fault-cycle and does not depend on --seed;
    /// each fault's start and end is logged.
    #[arg(long)]
    pub faults: bool,

    /// Length of the fault schedule, which repeats from the start of the
    /// run. Every start, duration and period in it scales with the cycle,
    /// the faulty values do not; cycles much shorter than the default are
    /// for tests.
    #[arg(
        long,
        default_value = "8m",
        value_parser = parse_fault_cycle,
        requires = "faults"
    )]
    pub fault_cycle: Duration,

    /// Also publish each boiler's digital signals in its site's messages:
    /// `b{n}_burner_on` (boolean) and `b{n}_sequencer` (state: off, purge,
    /// ignition, firing, lockout), following the burner model (a low-fire
    /// cut-out and restart through purge and ignition, every seventh
    /// ignition failing into a lockout). Seeding registers them with their
    /// kinds.
    #[arg(long)]
    pub digital: bool,
}

// Written by hand rather than derived so that the API key never reaches a
// log line.
impl std::fmt::Debug for SimulateArgs {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SimulateArgs")
            .field("sites", &self.sites)
            .field("sensors", &self.sensors)
            .field("rate", &self.rate)
            .field("duration", &self.duration)
            .field("messages", &self.messages)
            .field("qos", &self.qos)
            .field("site_prefix", &self.site_prefix)
            .field("seed_api", &self.seed_api)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("topic_prefix", &self.topic_prefix)
            .field("seed", &self.seed)
            .field("faults", &self.faults)
            .field("fault_cycle", &self.fault_cycle)
            .field("digital", &self.digital)
            .finish()
    }
}

impl Default for SimulateArgs {
    /// The same defaults as the command line.
    fn default() -> Self {
        Self {
            sites: 1,
            sensors: 12,
            rate: 1.0,
            duration: None,
            messages: None,
            qos: 1,
            site_prefix: "boiler-house".to_owned(),
            seed_api: None,
            api_key: None,
            topic_prefix: String::new(),
            seed: None,
            faults: false,
            fault_cycle: DEFAULT_FAULT_CYCLE,
            digital: false,
        }
    }
}

impl SimulateArgs {
    /// Repeats clap's checks, because library callers can fill the fields
    /// with anything.
    pub(crate) fn validate(&self) -> Result<()> {
        check_rate(self.rate)?;
        if self.sites == 0 {
            return Err(Error::NoSites);
        }
        if self.sensors == 0 || self.sensors > MAX_SENSORS_PER_SITE {
            return Err(Error::InvalidSensorCount {
                sensors: self.sensors,
                max: MAX_SENSORS_PER_SITE,
            });
        }
        if self.qos > 1 {
            return Err(Error::InvalidQos { qos: self.qos });
        }
        if self.messages == Some(0) {
            return Err(Error::NoMessages);
        }
        // The longest slug is the one of the last site.
        let longest_slug = site_slug(&self.site_prefix, self.sites);
        if !is_identifier(&longest_slug) {
            return Err(Error::InvalidSitePrefix {
                prefix: self.site_prefix.clone(),
            });
        }
        if !is_topic_prefix(&self.topic_prefix) {
            return Err(Error::InvalidTopicPrefix {
                prefix: self.topic_prefix.clone(),
            });
        }
        check_fault_cycle(self.fault_cycle)
    }
}

/// Parses `--rate`: a finite number of messages per second per site in
/// (0, 1000].
pub(crate) fn parse_rate(text: &str) -> std::result::Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of messages per second"))?;
    check_rate(rate).map_err(|error| error.to_string())?;
    Ok(rate)
}

fn check_rate(rate: f64) -> Result<()> {
    // Written so that NaN fails too.
    if rate > 0.0 && rate <= MAX_RATE_PER_SITE {
        Ok(())
    } else {
        Err(Error::InvalidRate { rate })
    }
}

/// Parses `--fault-cycle`: a duration of at least a second, e.g. "8m".
fn parse_fault_cycle(text: &str) -> std::result::Result<Duration, String> {
    let cycle = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    check_fault_cycle(cycle).map_err(|error| error.to_string())?;
    Ok(cycle)
}

fn check_fault_cycle(cycle: Duration) -> Result<()> {
    if cycle >= MIN_FAULT_CYCLE {
        Ok(())
    } else {
        Err(Error::InvalidFaultCycle { cycle })
    }
}

fn parse_site_prefix(text: &str) -> std::result::Result<String, String> {
    // `-1` stands in for the site number; the length of larger numbers is
    // checked once the number of sites is known.
    if is_identifier(&format!("{text}-1")) {
        Ok(text.to_owned())
    } else {
        Err(Error::InvalidSitePrefix {
            prefix: text.to_owned(),
        }
        .to_string())
    }
}

fn parse_topic_prefix(text: &str) -> std::result::Result<String, String> {
    if is_topic_prefix(text) {
        Ok(text.to_owned())
    } else {
        Err(Error::InvalidTopicPrefix {
            prefix: text.to_owned(),
        }
        .to_string())
    }
}

/// Wildcards are not allowed in the topic a message is published to, and
/// the MQTT specification forbids NUL anywhere in a topic.
fn is_topic_prefix(prefix: &str) -> bool {
    !prefix.contains(['+', '#', '\0']) && prefix.len() < 1024
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Command {
        #[command(flatten)]
        simulate: SimulateArgs,
    }

    fn parse(arguments: &[&str]) -> std::result::Result<SimulateArgs, clap::Error> {
        Command::try_parse_from(std::iter::once("simulate").chain(arguments.iter().copied()))
            .map(|command| command.simulate)
    }

    #[test]
    fn rate_accepts_fractions_and_rejects_zero_negative_and_non_numbers() {
        assert_eq!(parse_rate("0.2"), Ok(0.2));
        assert_eq!(parse_rate("50"), Ok(50.0));
        assert_eq!(parse_rate("1000"), Ok(1000.0));
        for bad in ["0", "-1", "0.0", "NaN", "inf", "1000.5", "fast", ""] {
            let error = parse_rate(bad).expect_err(bad);
            assert!(
                error.contains("rate") || error.contains("number"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn command_line_defaults_match_the_default_value() {
        let parsed = parse(&[]).unwrap();
        let default = SimulateArgs::default();
        assert_eq!(parsed.sites, default.sites);
        assert_eq!(parsed.sensors, default.sensors);
        assert_eq!(parsed.rate, default.rate);
        assert_eq!(parsed.duration, None);
        assert_eq!(parsed.messages, None);
        assert_eq!(parsed.qos, 1);
        assert_eq!(parsed.site_prefix, "boiler-house");
        assert_eq!(parsed.seed, None);
        assert!(!parsed.faults);
        assert_eq!(parsed.fault_cycle, default.fault_cycle);
        parsed.validate().unwrap();
    }

    #[test]
    fn command_line_parses_every_option() {
        let parsed = parse(&[
            "--sites",
            "100",
            "--sensors",
            "25",
            "--rate",
            "0.5",
            "--duration",
            "5m",
            "--messages",
            "1000",
            "--qos",
            "0",
            "--site-prefix",
            "plant",
            "--seed-api",
            "http://127.0.0.1:8080",
            "--topic-prefix",
            "test-1/",
            "--seed",
            "42",
            "--faults",
            "--fault-cycle",
            "90s",
        ])
        .unwrap();
        assert_eq!(parsed.sites, 100);
        assert_eq!(parsed.sensors, 25);
        assert_eq!(parsed.rate, 0.5);
        assert_eq!(parsed.duration, Some(Duration::from_secs(300)));
        assert_eq!(parsed.messages, Some(1000));
        assert_eq!(parsed.qos, 0);
        assert_eq!(parsed.site_prefix, "plant");
        assert_eq!(parsed.seed_api.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(parsed.topic_prefix, "test-1/");
        assert_eq!(parsed.seed, Some(42));
        assert!(parsed.faults);
        assert_eq!(parsed.fault_cycle, Duration::from_secs(90));
        parsed.validate().unwrap();
    }

    #[test]
    fn command_line_rejects_bad_values() {
        for arguments in [
            &["--rate", "0"][..],
            &["--rate", "-2"],
            &["--sites", "0"],
            &["--sensors", "0"],
            &["--sensors", "1001"],
            &["--qos", "2"],
            &["--messages", "0"],
            &["--duration", "soon"],
            &["--site-prefix", "Boiler House"],
            &["--site-prefix", "-x"],
            &["--topic-prefix", "a/#/"],
            &["--faults", "--fault-cycle", "500ms"],
            &["--faults", "--fault-cycle", "often"],
            // A cycle without faults is a mistake worth pointing out.
            &["--fault-cycle", "1m"],
        ] {
            assert!(parse(arguments).is_err(), "{arguments:?} was accepted");
        }
    }

    #[test]
    fn validate_catches_what_code_can_set() {
        let bad = [
            SimulateArgs {
                rate: 0.0,
                ..SimulateArgs::default()
            },
            SimulateArgs {
                rate: f64::NAN,
                ..SimulateArgs::default()
            },
            SimulateArgs {
                sites: 0,
                ..SimulateArgs::default()
            },
            SimulateArgs {
                sensors: MAX_SENSORS_PER_SITE + 1,
                ..SimulateArgs::default()
            },
            SimulateArgs {
                qos: 2,
                ..SimulateArgs::default()
            },
            SimulateArgs {
                messages: Some(0),
                ..SimulateArgs::default()
            },
            SimulateArgs {
                site_prefix: "a".repeat(62),
                ..SimulateArgs::default()
            },
            SimulateArgs {
                topic_prefix: "+/".to_owned(),
                ..SimulateArgs::default()
            },
            SimulateArgs {
                faults: true,
                fault_cycle: Duration::from_millis(999),
                ..SimulateArgs::default()
            },
        ];
        for args in bad {
            assert!(args.validate().is_err(), "{args:?} was accepted");
        }
    }

    #[test]
    fn debug_output_hides_the_api_key() {
        let args = SimulateArgs {
            api_key: Some("sk-very-secret".to_owned()),
            ..SimulateArgs::default()
        };
        let printed = format!("{args:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}
