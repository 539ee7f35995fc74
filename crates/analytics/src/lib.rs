//! Alert rules evaluated on the InfluxDB history.
//!
//! This crate is where rule evaluation lives: it will read the history
//! through `stoker-timeseries` (batched InfluxQL, one query per group of
//! rules sharing a window), keep alerts and their event trail in Postgres
//! (schema `analytics`), and cache alert state in Redis. It holds no code
//! yet; the crate exists so the workspace layout shows the whole data flow
//! and nothing else grows alerting logic in the meantime.
