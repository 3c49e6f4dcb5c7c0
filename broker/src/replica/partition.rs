//! One partition hosted on this broker: its log, producer state and the
//! published [`PartitionView`].
//!
//! Writers (produce) take the partition's writer lock for the duration of one
//! append (a synchronous write to the page cache, no `.await` inside). Readers
//! (fetch, list offsets) never take it: they read the published view from a
//! `watch` channel and read log files below the published bound through a
//! cloned [`LogReader`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::{Bytes, BytesMut};
use klamm_config::TopicConfig;
use klamm_protocol::records::{self, Compression, RecordBatch, TimestampType};
use klamm_protocol::ErrorCode;
use klamm_storage::{CompactionStats, Log, LogReader};
use tokio::sync::watch;
use tracing::{info, warn};

use super::producer_state::{IncomingBatch, ProducerStateTable, SequenceCheck};
use super::storage_adapter::{self, log_config};
use super::validation::{self, records_error_code, StoreAs};

/// What readers may see of a partition, published after every change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionView {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// Equals the high watermark until transactions exist.
    pub last_stable_offset: i64,
    pub log_end_offset: i64,
    pub leader_epoch: i32,
}

/// A Kafka error for one partition, with an optional message for v8+ responses.
#[derive(Debug, Clone)]
pub struct PartitionError {
    pub code: ErrorCode,
    pub message: Option<String>,
    /// Produce v8+: (index of the record in its batch, why it was rejected).
    pub record_errors: Vec<(i32, String)>,
}

impl PartitionError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        PartitionError { code, message: Some(message.into()), record_errors: Vec::new() }
    }
    pub fn code(code: ErrorCode) -> Self {
        PartitionError { code, message: None, record_errors: Vec::new() }
    }
}

/// Where an acknowledged batch landed.
#[derive(Debug, Clone, Copy)]
pub struct AppendResult {
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

struct Writer {
    log: Log,
    producers: ProducerStateTable,
    isr: Vec<i32>,
}

pub struct Partition {
    pub topic: String,
    pub topic_id: [u8; 16],
    pub index: i32,
    pub dir: PathBuf,
    writer: Mutex<Option<Writer>>,
    reader: LogReader,
    view: watch::Sender<PartitionView>,
    config: RwLock<Arc<TopicConfig>>,
}

impl Partition {
    /// Opens (recovering if needed) or creates the partition's log in `dir`
    /// and rebuilds producer state from it.
    pub fn open(
        topic: &str,
        topic_id: [u8; 16],
        index: i32,
        dir: &Path,
        config: Arc<TopicConfig>,
        isr: Vec<i32>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<Partition, klamm_storage::Error> {
        let log = Log::open(dir, log_config(&config), now_ms)?;
        let reader = log.reader();
        let mut producers = ProducerStateTable::default();
        storage_adapter::replay_producer_state(&reader, log.log_start_offset(), log.log_end_offset(), &mut producers);
        let leo = log.log_end_offset();
        let view = PartitionView {
            log_start_offset: log.log_start_offset(),
            high_watermark: leo,
            last_stable_offset: leo,
            log_end_offset: leo,
            leader_epoch,
        };
        if leo > 0 {
            info!(topic, partition = index, log_end_offset = leo, producers = producers.len(), "partition loaded");
        }
        Ok(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            dir: dir.to_path_buf(),
            writer: Mutex::new(Some(Writer { log, producers, isr })),
            reader,
            view: watch::channel(view).0,
            config: RwLock::new(config),
        })
    }

    pub fn view(&self) -> PartitionView {
        *self.view.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<PartitionView> {
        self.view.subscribe()
    }

    pub fn reader(&self) -> &LogReader {
        &self.reader
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        self.config.read().expect("config lock poisoned").clone()
    }

    pub fn set_config(&self, config: Arc<TopicConfig>) {
        if let Some(w) = self.writer.lock().expect("writer lock poisoned").as_mut() {
            if let Err(e) = w.log.set_config(log_config(&config)) {
                warn!(topic = %self.topic, partition = self.index, error = %e, "log settings rejected, keeping the old ones");
            }
        }
        *self.config.write().expect("config lock poisoned") = config;
    }

    pub fn set_leadership(&self, leader_epoch: i32, isr: Vec<i32>) {
        let mut guard = self.writer.lock().expect("writer lock poisoned");
        if let Some(w) = guard.as_mut() {
            w.isr = isr;
        }
        self.view.send_modify(|v| v.leader_epoch = leader_epoch);
    }

    pub fn isr_len(&self) -> usize {
        self.writer.lock().expect("writer lock poisoned").as_ref().map(|w| w.isr.len()).unwrap_or(0)
    }

    /// Validates and appends one client batch (Produce v3+ carries exactly one).
    pub fn append_from_client(&self, records: Bytes, api_version: i16, now_ms: i64) -> Result<AppendResult, PartitionError> {
        let config = self.config();
        let (batch, rest) = RecordBatch::parse(records)
            .map_err(|e| PartitionError::new(records_error_code(&e), format!("invalid record batch: {e}")))?;
        if !rest.is_empty() {
            return Err(PartitionError::new(ErrorCode::INVALID_RECORD, "Produce requests must carry exactly one record batch per partition"));
        }
        if batch.size() as i64 > config.max_message_bytes as i64 {
            return Err(PartitionError::new(
                ErrorCode::MESSAGE_TOO_LARGE,
                format!("The record batch size {} bytes exceeds max.message.bytes {}", batch.size(), config.max_message_bytes),
            ));
        }
        batch.validate_header().map_err(|e| PartitionError::new(records_error_code(&e), e.to_string()))?;
        if batch.compression().ok() == Some(Compression::Zstd) && api_version < 7 {
            return Err(PartitionError::new(ErrorCode::UNSUPPORTED_COMPRESSION_TYPE, "ZStandard compression needs Produce v7 or later"));
        }
        if batch.is_control() {
            return Err(PartitionError::new(ErrorCode::INVALID_RECORD, "Clients may not write control batches"));
        }
        if batch.is_transactional() {
            return Err(PartitionError::new(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND, "Transactions are not supported yet"));
        }
        if batch.records_count() == 0 {
            return Err(PartitionError::new(ErrorCode::INVALID_RECORD, "Record batch must contain at least one record"));
        }
        let store_as = validation::validate_records(&batch, &config, now_ms, &self.topic, self.index)?;
        let batch = match store_as {
            StoreAs::AsProduced => batch,
            StoreAs::Recompressed(codec) => {
                let bytes = records::recompress_batch(&batch, codec, validation::inflate_limit(&config))
                    .map_err(|e| PartitionError::new(records_error_code(&e), e.to_string()))?;
                let (recompressed, _) = RecordBatch::parse(bytes)
                    .map_err(|e| PartitionError::new(ErrorCode::KAFKA_STORAGE_ERROR, format!("recompressed batch unreadable: {e}")))?;
                recompressed
            }
        };
        let incoming = IncomingBatch {
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            base_sequence: batch.base_sequence(),
            last_offset_delta: batch.last_offset_delta(),
            max_timestamp: batch.max_timestamp(),
        };
        let log_append_time = config.message_timestamp_type == klamm_config::TimestampType::LogAppendTime;
        let client_timestamp_type = batch.timestamp_type();
        drop(rest);
        // The batch is stamped (base offset, leader epoch, maybe append time)
        // before it is written. When the request's buffer is ours alone, that
        // happens in place; otherwise (several partitions in one request share
        // it) on one copy. The records themselves are never re-encoded.
        let mut bytes = match batch.into_bytes().try_into_mut() {
            Ok(unique) => unique,
            Err(shared) => BytesMut::from(shared.as_ref()),
        };

        let mut guard = self.writer.lock().expect("writer lock poisoned");
        let writer = guard.as_mut().ok_or_else(|| PartitionError::code(ErrorCode::NOT_LEADER_OR_FOLLOWER))?;
        match writer.producers.check(&incoming) {
            SequenceCheck::Accept => {}
            SequenceCheck::Duplicate(previous) => {
                return Ok(AppendResult {
                    base_offset: previous.first_offset,
                    last_offset: previous.last_offset,
                    log_append_time_ms: -1,
                    log_start_offset: writer.log.log_start_offset(),
                })
            }
            SequenceCheck::Reject(code, message) => return Err(PartitionError::new(code, message)),
        }

        let leader_epoch = self.view.borrow().leader_epoch;
        let append_time = if log_append_time && client_timestamp_type != TimestampType::LogAppendTime {
            records::set_log_append_time(&mut bytes, now_ms).map_err(|e| PartitionError::new(ErrorCode::INVALID_RECORD, e.to_string()))?;
            now_ms
        } else if log_append_time {
            now_ms
        } else {
            -1
        };
        let info = writer.log.append_as_leader(&mut bytes, leader_epoch, now_ms).map_err(|e| {
            warn!(topic = %self.topic, partition = self.index, error = %e, "append failed");
            PartitionError::new(ErrorCode::KAFKA_STORAGE_ERROR, e.to_string())
        })?;
        writer.producers.record(&incoming, info.base_offset);
        let leo = writer.log.log_end_offset();
        let log_start = writer.log.log_start_offset();
        let single_replica = writer.isr.len() <= 1;
        drop(guard);
        self.view.send_modify(|v| {
            v.log_end_offset = leo;
            v.log_start_offset = log_start;
            if single_replica {
                v.high_watermark = leo;
                v.last_stable_offset = leo;
            }
        });
        Ok(AppendResult { base_offset: info.base_offset, last_offset: info.last_offset, log_append_time_ms: append_time, log_start_offset: log_start })
    }

    /// OffsetsForLeaderEpoch: the largest epoch <= `epoch` this log knows and the offset where
    /// it ended (the log end offset for the latest epoch), or (-1, -1) when none is known.
    /// None when the log is closed.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let guard = self.writer.lock().expect("writer lock poisoned");
        guard.as_ref().map(|w| w.log.end_offset_for_epoch(epoch))
    }

    /// Publishes a new log start offset to readers (wakes them only if it moved).
    fn publish_log_start_offset(&self, log_start: i64) {
        self.view.send_if_modified(|v| {
            let changed = v.log_start_offset != log_start;
            v.log_start_offset = log_start;
            changed
        });
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1: the high
    /// watermark) and returns the new log start offset (low watermark).
    pub fn delete_records(&self, offset: i64) -> Result<i64, ErrorCode> {
        if !self.config().cleanup_policy.delete {
            return Err(ErrorCode::POLICY_VIOLATION);
        }
        let mut guard = self.writer.lock().expect("writer lock poisoned");
        let writer = guard.as_mut().ok_or(ErrorCode::NOT_LEADER_OR_FOLLOWER)?;
        let high_watermark = self.view.borrow().high_watermark;
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
        }
        if let Err(e) = writer.log.advance_log_start_offset(target) {
            warn!(topic = %self.topic, partition = self.index, error = %e, "DeleteRecords failed");
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
        let log_start = writer.log.log_start_offset();
        drop(guard);
        self.publish_log_start_offset(log_start);
        Ok(log_start)
    }

    /// One compaction pass if the log is dirty enough (compacted topics;
    /// called by the cleaner task on a blocking thread). The offset map and
    /// the rewritten segments are built without the writer lock, so appends
    /// continue; only planning and the final swap take it.
    pub fn compact_if_dirty(&self, now_ms: i64) -> Option<CompactionStats> {
        let params = storage_adapter::compaction_params(&self.config());
        // Never past what consumers may read (the last stable offset once
        // transactions exist).
        let upper_bound = self.view.borrow().last_stable_offset;
        let job = {
            let guard = self.writer.lock().expect("writer lock poisoned");
            let writer = guard.as_ref()?;
            match writer.log.needs_compaction(&params, upper_bound, now_ms) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    warn!(topic = %self.topic, partition = self.index, error = %e, "cleaner could not assess the log");
                    return None;
                }
            }
            match writer.log.begin_compaction(&params, upper_bound, now_ms) {
                Ok(Some(job)) => job,
                Ok(None) => return None,
                Err(e) => {
                    warn!(topic = %self.topic, partition = self.index, error = %e, "cleaner could not plan a pass");
                    return None;
                }
            }
        };
        let prepared = match job.run() {
            Ok(p) => p,
            Err(e) => {
                warn!(topic = %self.topic, partition = self.index, error = %e, "compaction pass failed");
                return None;
            }
        };
        let mut guard = self.writer.lock().expect("writer lock poisoned");
        let writer = guard.as_mut()?;
        let stats = match writer.log.finish_compaction(prepared) {
            Ok(s) => s,
            Err(e) => {
                warn!(topic = %self.topic, partition = self.index, error = %e, "finishing compaction failed");
                return None;
            }
        };
        let log_start = writer.log.log_start_offset();
        drop(guard);
        self.publish_log_start_offset(log_start);
        (!stats.aborted).then_some(stats)
    }

    /// Runs retention and the time-based flush policy; called periodically.
    /// Returns how many segments retention deleted.
    pub fn maintain(&self, now_ms: i64, run_retention: bool) -> usize {
        let config = self.config();
        let mut guard = self.writer.lock().expect("writer lock poisoned");
        let Some(writer) = guard.as_mut() else { return 0 };
        let mut deleted = 0;
        if run_retention && config.cleanup_policy.delete {
            let retention_ms = (config.retention_ms >= 0).then_some(config.retention_ms);
            let retention_bytes = (config.retention_bytes >= 0).then_some(config.retention_bytes as u64);
            let high_watermark = self.view.borrow().high_watermark;
            match writer.log.apply_retention_bounded(retention_ms, retention_bytes, now_ms, high_watermark) {
                Ok(n) => deleted = n,
                Err(e) => warn!(topic = %self.topic, partition = self.index, error = %e, "retention failed"),
            }
        }
        if let Err(e) = writer.log.flush_if_due(now_ms) {
            warn!(topic = %self.topic, partition = self.index, error = %e, "flush failed");
        }
        let log_start = writer.log.log_start_offset();
        drop(guard);
        self.publish_log_start_offset(log_start);
        deleted
    }

    /// Flushes and closes the log cleanly; further appends fail.
    pub fn close(&self) {
        let writer = self.writer.lock().expect("writer lock poisoned").take();
        if let Some(w) = writer {
            if let Err(e) = w.log.close() {
                warn!(topic = %self.topic, partition = self.index, error = %e, "closing log failed");
            }
        }
    }

    /// Closes the log and removes the partition directory (topic deleted).
    pub fn delete(&self) {
        let writer = self.writer.lock().expect("writer lock poisoned").take();
        if let Some(w) = writer {
            if let Err(e) = w.log.delete() {
                warn!(topic = %self.topic, partition = self.index, error = %e, "deleting log failed");
            }
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            warn!(dir = %self.dir.display(), error = %e, "removing partition directory failed");
        }
    }
}
