//! klamm-protocol: the sans-IO Kafka wire codec.
//!
//! `Bytes` in, typed values out; no tokio, no I/O.
//! (Module layout is filled in by the codec work; see ARCHITECTURE.md.)

pub mod records;
