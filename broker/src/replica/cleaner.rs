//! The log cleaner task: compacts partitions whose `cleanup.policy` includes
//! `compact` (Kafka's `log.cleaner.*` settings), one partition at a time on a
//! blocking thread, like Kafka's default single cleaner thread.
//!
//! Every `log.cleaner.backoff.ms` it asks each compacted partition whether it
//! is dirty enough (`min.cleanable.dirty.ratio`, `max.compaction.lag.ms`) and
//! compacts it up to its high watermark. The heavy part of a pass runs
//! without the partition's writer lock, so producers keep appending; see
//! [`super::partition::Partition::compact_if_dirty`]. What was removed is
//! added to [`CleanerTotals`] and logged. The task holds only the [`ReplicaManager`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use klamm_storage::CompactionStats;
use tokio::sync::watch;
use tracing::info;

use super::ReplicaManager;

/// Cumulative figures of every compaction pass since start (metrics).
#[derive(Debug, Default)]
pub struct CleanerTotals {
    pub passes: AtomicU64,
    pub segments_cleaned: AtomicU64,
    pub bytes_before: AtomicU64,
    pub bytes_after: AtomicU64,
    pub records_removed: AtomicU64,
    pub tombstones_removed: AtomicU64,
}

impl CleanerTotals {
    pub fn add(&self, stats: &CompactionStats) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.segments_cleaned.fetch_add(stats.segments_cleaned as u64, Ordering::Relaxed);
        self.bytes_before.fetch_add(stats.bytes_before, Ordering::Relaxed);
        self.bytes_after.fetch_add(stats.bytes_after, Ordering::Relaxed);
        self.records_removed.fetch_add(stats.records_removed, Ordering::Relaxed);
        self.tombstones_removed.fetch_add(stats.tombstones_removed, Ordering::Relaxed);
    }
}

/// Shortest pause between two scans, whatever `log.cleaner.backoff.ms` says.
const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// `enabled` is `log.cleaner.enable` (static).
pub async fn run(replicas: Arc<ReplicaManager>, enabled: bool, mut shutdown: watch::Receiver<bool>) {
    if !enabled {
        info!("log cleaner disabled (log.cleaner.enable=false)");
        return;
    }
    loop {
        // Read each time: log.cleaner.backoff.ms is a dynamic broker config.
        let backoff = replicas.effective_broker_config().log_cleaner_backoff_ms.max(0) as u64;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(backoff).max(MIN_BACKOFF)) => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return },
        }
        let partitions = replicas.all();
        let r = replicas.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for p in partitions {
                if !p.config().cleanup_policy.compact {
                    continue;
                }
                // The storage crate logs each pass with its figures. A panic
                // takes that partition offline, not the cleaner.
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.compact_if_dirty(crate::clock::now_ms()))) {
                    Ok(Some(stats)) => r.cleaner_totals.add(&stats),
                    Ok(None) => {}
                    Err(panic) => p.take_offline(format!("the log cleaner panicked: {}", super::panic_message(&*panic))),
                }
            }
        })
        .await;
    }
}
