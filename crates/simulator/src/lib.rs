//! A simulated fleet of boiler houses publishing telemetry over MQTT, so
//! that demos and benchmarks look like a real plant (`stoker simulate`).
//!
//! Each site (`boiler-house-1`, `boiler-house-2`, …) has boilers with ten
//! sensors each (`b1_steam_pressure`, `b1_flue_temp`, …). A small process
//! model drives them: steam demand wanders slowly, the burner load follows
//! it, and pressure, temperatures, flows, drum level and flue O2 follow the
//! burner through first-order lags, with sensor noise on top. Every reading
//! is finite and inside its sensor's valid range. Each tick, every site
//! publishes all its readings in one message to
//! `{topic_prefix}sites/{site}/telemetry`:
//! `{"ts": 1732269600000, "values": {"b1_steam_pressure": 10.43, …}}`.
//! With `--faults`, some of the first site's sensors misbehave on a fixed
//! schedule ([`fault_plan`]), so that alert rules have something to catch.
//!
//! Layout:
//! - `args`: [`SimulateArgs`], the clap options of `stoker simulate`;
//! - `fleet`: the sensor catalogue and [`fleet`], the sites a run publishes;
//! - `signal`: the process model behind the readings;
//! - `faults`: the faults `--faults` injects, and when;
//! - `payload`: the message body, written into one buffer per message;
//! - `seeding`: creating the sites and sensors through Stoker's HTTP API;
//! - `run`: [`run`], the publishing loop and the MQTT event loop.
//!
//! # Example
//!
//! ```no_run
//! use stoker_simulator::{SimulateArgs, run};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn example() -> stoker_simulator::Result<()> {
//! let args = SimulateArgs {
//!     sites: 10,
//!     rate: 0.2,
//!     messages: Some(100),
//!     ..SimulateArgs::default()
//! };
//! let mqtt = rumqttc::MqttOptions::new("stoker-simulator", "127.0.0.1", 1883);
//! let summary = run(args, mqtt, CancellationToken::new()).await?;
//! assert_eq!(summary.messages, 100);
//! # Ok(())
//! # }
//! ```

mod args;
mod error;
mod faults;
mod fleet;
mod names;
mod payload;
mod run;
mod seeding;
mod signal;

pub use args::SimulateArgs;
pub use error::{Error, Result};
pub use faults::{FaultKind, FaultSpec, fault_plan};
pub use fleet::{SensorSpec, SignalSpec, SiteSpec, fleet};
pub use run::{Summary, run};
