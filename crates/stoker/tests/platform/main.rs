//! The real `stoker` binary, as an operator runs it, against the real
//! services: each test points it at its own databases, key prefix, topic
//! prefix and spool through the environment.

mod analytics;
mod apikeys;
mod binary;
mod dependencies;
mod faults;
mod helpers;
mod https;
mod mqtt_acl;
mod mqtt_tls;
mod outages;
mod postgres_tls;
mod scale;
mod secrets;
mod sparkplug;
