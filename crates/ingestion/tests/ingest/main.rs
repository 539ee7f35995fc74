//! Ingestion against the real broker, InfluxDB, Redis and Postgres, each
//! isolated for the test (topic prefix, database, key prefix, database).

mod harness;
mod kinds;
mod outages;
mod readings;
mod sparkplug;
