//! The seam between broker types and `klamm-storage`: topic config → log
//! config, and rebuilding producer state by replaying batch headers.

use klamm_config::TopicConfig;
use klamm_protocol::records::iter_batches;
use klamm_storage::{CompactionParams, LogConfig, LogReader};
use tracing::warn;

use super::producer_state::ProducerStateTable;

/// Maps a resolved topic config onto the log's settings. Kafka's "never"
/// (Long.MAX_VALUE) for the flush settings becomes `None`.
pub fn log_config(config: &TopicConfig) -> LogConfig {
    LogConfig {
        segment_bytes: config.segment_bytes.max(61) as u64,
        segment_ms: config.segment_ms.max(1),
        index_interval_bytes: config.index_interval_bytes.max(1) as u64,
        max_index_bytes: config.segment_index_bytes.max(48) as u64,
        flush_messages: if config.flush_messages <= 0 || config.flush_messages == i64::MAX { None } else { Some(config.flush_messages as u64) },
        flush_ms: if config.flush_ms < 0 || config.flush_ms == i64::MAX { None } else { Some(config.flush_ms) },
        flush_on_roll: true,
    }
}

/// Maps a resolved topic config onto the cleaner's settings. Kafka's
/// "never" (Long.MAX_VALUE) for max.compaction.lag.ms becomes `None`; a
/// compressed batch may inflate up to max.message.bytes (at least 1 MiB) when
/// the cleaner reads it.
pub fn compaction_params(config: &TopicConfig) -> CompactionParams {
    CompactionParams {
        delete_retention_ms: config.delete_retention_ms.max(0),
        min_compaction_lag_ms: config.min_compaction_lag_ms.max(0),
        max_compaction_lag_ms: (config.max_compaction_lag_ms > 0 && config.max_compaction_lag_ms != i64::MAX)
            .then_some(config.max_compaction_lag_ms),
        min_cleanable_dirty_ratio: config.min_cleanable_dirty_ratio.clamp(0.0, 1.0),
        max_decompressed_batch_bytes: usize::try_from(config.max_message_bytes.max(1 << 20)).unwrap_or(usize::MAX),
        ..CompactionParams::default()
    }
}

/// How much log one replay step reads.
const REPLAY_CHUNK_BYTES: usize = 8 << 20;

/// Rebuilds idempotent-producer state from the batch headers of the log.
pub fn replay_producer_state(reader: &LogReader, start: i64, end: i64, producers: &mut ProducerStateTable) {
    let mut offset = start;
    // Each step returns at least one batch, so this ends within (end - start) steps.
    while offset < end {
        let chunk = match reader.read(offset, REPLAY_CHUNK_BYTES, end, true) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, offset, "reading log for producer state failed");
                return;
            }
        };
        if chunk.bytes.is_empty() {
            return;
        }
        let mut next = offset;
        for batch in iter_batches(chunk.bytes) {
            let Ok(batch) = batch else { break };
            producers.replay(&batch);
            next = batch.next_offset();
        }
        if next <= offset {
            return;
        }
        offset = next;
    }
}
