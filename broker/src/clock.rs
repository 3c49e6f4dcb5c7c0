//! The broker's only source of wall-clock time.
//!
//! Everything below the broker (storage, raft) takes time as an argument, so
//! tests can drive it; this module is the one place that reads the system clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
