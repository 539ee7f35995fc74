//! The Sparkplug B payload types, generated at build time from
//! `proto/sparkplug_b.proto` (package `org.eclipse.tahu.protobuf`) by
//! prost-build. [`Payload`] decodes with `prost::Message::decode` and
//! encodes with `encode_to_vec`; a metric's `datatype` is a [`DataType`]
//! number.
//!
//! Only this crate reads or writes these bytes: the rest of Stoker gets
//! readings, events and ready-made messages from [`crate::Host`] and
//! [`crate::messages`].

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/org.eclipse.tahu.protobuf.rs"));
