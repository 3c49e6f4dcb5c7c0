//! klamm-broker: the Kafka-compatible server.
//!
//! - [`http`]: the HTTP/1.1 server shared by the ops routes (`/metrics`, `/health`, `/ready`,
//!   the ops page) and the schema registry;
//! - [`metrics`]: what the data path counts (relaxed atomics) and the `/metrics` scrape;
//! - [`net`]: listeners and connections (framing, headers, ordered replies);
//! - [`handlers`]: one module per Kafka API, plus the registry of served versions;
//! - [`replica`]: the partitions hosted here (log, producer state, high watermark);
//! - [`security`], authentication (TLS listeners, client certificates, SASL PLAIN/SCRAM)
//!   that the connection runs before any request reaches a handler;
//! - [`server`]: start-up by `process.roles`, shared state, shutdown;
//! - [`metadata`]: the metadata source (quorum voter or follower of the controllers);
//! - [`controller`]: what runs only on the active controller: broker fencing, leader
//!   election, the leader rebalance, reassignment completion; and replica placement;
//! - [`producer_ids`]: producer-id blocks for idempotent producers;
//! - [`txn`]: the transaction coordinator, persisted in `__transaction_state`;
//! - [`registry`]: the schema registry (REST API, `_schemas` store, compatibility, validation);
//! - [`topics`]: topic-name rules and rejection-to-error-code mapping used by the admin APIs;
//! - [`clock`]: the only place that reads wall-clock time.
//!
//! Metadata (topics, partitions, configs, brokers) lives in the Raft-backed
//! image of `klamm-raft`; handlers read immutable snapshots of it and change it
//! only by proposing commands, through [`metadata::MetadataSource`] whether this
//! node votes or follows the controllers.

pub mod clock;
pub mod controller;
pub mod coordinator_shards;
pub mod group;
pub mod handlers;
pub mod http;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod producer_ids;
pub mod registry;
pub mod replica;
pub mod security;
pub mod server;
#[cfg(test)]
mod test_images;
pub mod topic_partition;
pub mod topics;
pub mod txn;
