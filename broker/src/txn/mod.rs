//! The transaction coordinator (Kafka's `TransactionCoordinator`,
//! `TransactionStateManager`, `TransactionMarkerChannelManager`), persisted in
//! `__transaction_state`.
//!
//! - [`state`]: the pure state machine of one `__transaction_state`
//!   partition's transactional ids (InitProducerId, AddPartitionsToTxn,
//!   EndTxn, timeouts, expiry);
//! - [`persistence`]: Kafka's record formats in `__transaction_state` and the
//!   replay on load;
//! - [`markers`]: writing COMMIT/ABORT markers to partition leaders with
//!   WriteTxnMarkers;
//! - [`coordinator`]: the async owner, one task per hosted partition;
//! - which partition owns a transactional id: [`crate::group::hash`].

pub mod coordinator;
pub mod markers;
pub mod persistence;
pub mod state;

#[cfg(test)]
mod coordinator_tests;
#[cfg(test)]
mod tests;

pub use coordinator::TxnCoordinator;

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
