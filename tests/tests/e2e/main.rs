//! The end-to-end tests, one module per area, linked into one test binary.
//!
//! Each module used to be a test target of its own, and each such binary linked the
//! whole broker, librdkafka and the `kafka-protocol` oracle again: ten copies of
//! the same code on disk and ten links per build. One binary keeps the build
//! small; nextest still runs every test in its own process.

mod common;

mod admin_oracle;
mod cluster;
mod follower_corrupt_batch;
mod rdkafka_admin;
mod rdkafka_produce_consume;
mod rdkafka_transactions;
mod replica_fetch_wire;
mod replication;
mod transactions_wire;
mod txn_partition;
mod wire_oracle;
