//! Whether a follower partition takes its leader's data: batches that fail
//! validation (CRC, structure) are counted and flag the partition until the
//! leader serves good data again, so an operator (and the future metrics
//! endpoint, through [`FollowerHealth::report`]) sees a follower that is stuck
//! instead of one that silently retries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The counters and flag of one partition; cheap to update from the fetcher.
#[derive(Debug, Default)]
pub struct FollowerHealth {
    corrupt_batches: AtomicU64,
    /// The failure the partition is stuck on, `None` while it is healthy.
    failure: Mutex<Option<String>>,
}

/// What [`FollowerHealth::report`] shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerHealthReport {
    /// Batches from the leader refused since start (one per refused answer).
    pub corrupt_batches_from_leader: u64,
    /// Why the last answer was refused, while no good one followed.
    pub failing: Option<String>,
}

impl FollowerHealth {
    /// Counts a refused batch and flags the partition. True when `reason`
    /// differs from the failure already flagged, so the caller logs each
    /// distinct failure once, not every retry.
    pub fn record_corrupt(&self, reason: &str) -> bool {
        self.corrupt_batches.fetch_add(1, Ordering::Relaxed);
        let mut failure = self.failure.lock().expect("health lock poisoned");
        if failure.as_deref() == Some(reason) {
            return false;
        }
        *failure = Some(reason.to_string());
        true
    }

    /// Clears the flag after good data was appended; returns the failure it
    /// had, if any, so the caller can log the recovery.
    pub fn record_good(&self) -> Option<String> {
        self.failure.lock().expect("health lock poisoned").take()
    }

    pub fn report(&self) -> FollowerHealthReport {
        FollowerHealthReport {
            corrupt_batches_from_leader: self.corrupt_batches.load(Ordering::Relaxed),
            failing: self.failure.lock().expect("health lock poisoned").clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_distinct_failure_is_reported_once_and_good_data_clears_the_flag() {
        let health = FollowerHealth::default();
        assert!(health.record_corrupt("CRC mismatch at 0"));
        assert!(!health.record_corrupt("CRC mismatch at 0"), "the same failure again");
        assert!(health.record_corrupt("bad magic at 0"), "a different failure");
        assert_eq!(health.report(), FollowerHealthReport { corrupt_batches_from_leader: 3, failing: Some("bad magic at 0".into()) });
        assert_eq!(health.record_good().as_deref(), Some("bad magic at 0"));
        assert_eq!(health.record_good(), None);
        assert_eq!(health.report(), FollowerHealthReport { corrupt_batches_from_leader: 3, failing: None });
        assert!(health.record_corrupt("CRC mismatch at 0"), "a failure after recovery is news again");
    }
}
