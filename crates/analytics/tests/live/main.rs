//! The evaluation loop on real data written to InfluxDB, with alerts in the
//! real Postgres and states mirrored to the real Redis.

mod alarms;
mod gateways;
mod harness;
mod kinds;
mod kpis;
mod leadership;
mod rollup;
mod rules;
mod suppression;
