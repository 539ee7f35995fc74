//! The API over real HTTP, against real Postgres, InfluxDB and Redis: one
//! module per feature; `helpers` starts the app and names its requests.

mod alarm_states;
mod alerts;
mod audit;
mod dashboard;
mod gateways;
mod health;
mod helpers;
mod history;
mod history_days;
mod influx_write;
mod keys;
mod kinds;
mod kpis;
mod latest;
mod methods;
mod openapi;
mod preview;
mod rule_kinds;
mod rules;
mod security;
mod site_keys;
mod sites;
mod suppression;
mod telemetry;
