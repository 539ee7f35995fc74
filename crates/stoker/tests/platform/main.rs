//! The real `stoker` binary, as an operator runs it, against the real
//! services: each test points it at its own databases, key prefix, topic
//! prefix and spool through the environment.

mod analytics;
mod binary;
mod faults;
mod helpers;
mod scale;
