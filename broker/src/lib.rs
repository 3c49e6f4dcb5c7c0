//! klamm-broker: the Kafka-compatible server.
//!
//! - [`net`]: listeners and connections (framing, headers, ordered replies);
//! - [`handlers`]: one module per Kafka API, plus the registry of served versions;
//! - [`replica`]: the partitions hosted here (log, producer state, high watermark);
//! - [`server`]: start-up, shared state, shutdown;
//! - [`producer_ids`]: producer-id blocks for idempotent producers;
//! - [`topics`]: topic-name rules and replica placement used by the admin APIs;
//! - [`clock`]: the only place that reads wall-clock time.
//!
//! Metadata (topics, partitions, configs, brokers) lives in the Raft-backed
//! image of `klamm-raft`; handlers read immutable snapshots of it and change it
//! only by proposing commands.

pub mod clock;
pub mod group;
pub mod handlers;
pub mod net;
pub mod producer_ids;
pub mod replica;
pub mod server;
pub mod topics;
