//! The notification outbox against real servers on 127.0.0.1: Postgres (a
//! database per test), Mosquitto (a topic prefix per test, or a broker of
//! the test's own), and webhook receivers that each test starts on a free
//! port.

mod mqtt;
mod outbox;
mod support;
mod webhook;
