//! The consumer-group coordinator (classic protocol), persisted in
//! `__consumer_offsets`.
//!
//! - [`state`]: the pure group state machine (JoinGroup, SyncGroup, Heartbeat,
//!   LeaveGroup, timers) of one offsets partition's groups;
//! - [`offsets`]: committed offsets (commit, fetch, delete, retention);
//! - [`txn_offsets`]: offsets committed in transactions (TxnOffsetCommit),
//!   pending until the transaction's marker;
//! - [`persistence`]: Kafka's record formats in `__consumer_offsets`, the
//!   [`persistence::OffsetsLog`] trait and the replay on load;
//! - [`hash`]: which offsets partition owns a group;
//! - [`coordinator`]: the async owner, one task per hosted offsets partition.

pub mod coordinator;
pub mod hash;
pub mod offsets;
pub mod persistence;
pub mod state;
pub mod txn_offsets;

#[cfg(test)]
mod coordinator_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;

pub use coordinator::GroupCoordinator;

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
