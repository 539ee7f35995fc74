//! The notification outbox against real servers on 127.0.0.1: Postgres (a
//! database per test), Mosquitto (a topic prefix per test, or a broker of
//! the test's own), and webhook receivers and SMTP servers (aiosmtpd,
//! installed by `scripts/smtp-server`) that each test starts on a free port.

mod email;
mod escalation;
mod flood;
mod mqtt;
mod outbox;
mod smtp;
mod support;
mod webhook;
