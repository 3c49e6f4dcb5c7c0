//! Checks a producer's batch against its topic's configuration before it is
//! appended, as Kafka's log validator does for magic-2 batches.
//!
//! What is checked, per record (one walk over the records, decompressing a
//! compressed batch once, bounded by the topic's `max.message.bytes` so that a
//! small batch cannot inflate into an arbitrary allocation):
//! - the records parse and their count matches the header;
//! - on a compacted topic every record has a key (Kafka rejects keyless
//!   records there: INVALID_RECORD with a per-record error);
//! - with CreateTime, every record timestamp lies within
//!   `[now - message.timestamp.before.max.ms, now + message.timestamp.after.max.ms]`
//!   (INVALID_TIMESTAMP with a per-record error).
//!
//! The outcome also says whether the stored batch must use another codec than
//! the producer's (`compression.type` other than `producer`).

use klamm_config::{CompressionType, TimestampType as TopicTimestampType, TopicConfig};
use klamm_protocol::records::{Compression, RecordBatch, RecordsError};
use klamm_protocol::ErrorCode;

use super::partition::PartitionError;

/// At most this many per-record errors are reported (Kafka lists every bad
/// record; a cap keeps a response to a huge bad batch small).
const MAX_RECORD_ERRORS: usize = 100;

/// What to do with a valid batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAs {
    /// Store the producer's bytes (only offsets and epochs get stamped).
    AsProduced,
    /// Re-encode the records with this codec first (the topic asks for it).
    Recompressed(Compression),
}

/// The codec a topic's `compression.type` asks for, if it is not `producer`.
pub fn target_codec(config: &TopicConfig) -> Option<Compression> {
    match config.compression_type {
        CompressionType::Producer => None,
        CompressionType::Uncompressed => Some(Compression::None),
        CompressionType::Gzip => Some(Compression::Gzip),
        CompressionType::Snappy => Some(Compression::Snappy),
        CompressionType::Lz4 => Some(Compression::Lz4),
        CompressionType::Zstd => Some(Compression::Zstd),
    }
}

/// How far a produced compressed batch may inflate: max.message.bytes, the
/// limit an uncompressed batch of the same records would have had.
pub fn inflate_limit(config: &TopicConfig) -> usize {
    usize::try_from(config.max_message_bytes.max(0)).unwrap_or(usize::MAX)
}

/// Maps a records-layer error to the Kafka error a producer gets.
pub fn records_error_code(e: &RecordsError) -> ErrorCode {
    match e {
        RecordsError::CrcMismatch { .. } => ErrorCode::CORRUPT_MESSAGE,
        RecordsError::UnknownCompression(_) | RecordsError::UnsupportedCompression(_) => ErrorCode::UNSUPPORTED_COMPRESSION_TYPE,
        _ => ErrorCode::INVALID_RECORD,
    }
}

/// Validates `batch` (its header already checked) for partition `partition`
/// of `topic`, configured by `config`.
pub fn validate_records(
    batch: &RecordBatch,
    config: &TopicConfig,
    now_ms: i64,
    topic: &str,
    partition: i32,
) -> Result<StoreAs, PartitionError> {
    let codec = batch.compression().map_err(|e| PartitionError::new(records_error_code(&e), e.to_string()))?;
    let compacted = config.cleanup_policy.compact;
    let timestamp_bounds = (config.message_timestamp_type == TopicTimestampType::CreateTime).then(|| {
        (
            now_ms.saturating_sub(config.message_timestamp_before_max_ms),
            now_ms.saturating_add(config.message_timestamp_after_max_ms),
        )
    });
    let inflate_limit = inflate_limit(config);

    let mut keyless: Vec<i32> = Vec::new();
    let mut bad_timestamps: Vec<(i32, i64)> = Vec::new();
    let mut seen = 0i32;
    let base_timestamp = batch.base_timestamp();
    for (index, record) in batch.records_bounded(inflate_limit).summaries().enumerate() {
        let record = record.map_err(|e| match e {
            RecordsError::DecompressedTooLarge { limit } => PartitionError::new(
                ErrorCode::MESSAGE_TOO_LARGE,
                format!("The decompressed records exceed max.message.bytes {limit}"),
            ),
            other => PartitionError::new(records_error_code(&other), other.to_string()),
        })?;
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        seen = seen.saturating_add(1);
        if compacted && !record.has_key && keyless.len() < MAX_RECORD_ERRORS {
            keyless.push(index);
        }
        if let Some((low, high)) = timestamp_bounds {
            let timestamp = record.timestamp(base_timestamp);
            if (timestamp < low || timestamp > high) && bad_timestamps.len() < MAX_RECORD_ERRORS {
                bad_timestamps.push((index, timestamp));
            }
        }
    }
    if seen != batch.records_count() {
        return Err(PartitionError::new(
            ErrorCode::INVALID_RECORD,
            format!("header says {} records, found {seen}", batch.records_count()),
        ));
    }
    if !keyless.is_empty() {
        let message = format!("Compacted topic cannot accept message without key in topic partition {topic}-{partition}.");
        let mut error = PartitionError::new(ErrorCode::INVALID_RECORD, message.clone());
        error.record_errors = keyless.into_iter().map(|i| (i, message.clone())).collect();
        return Err(error);
    }
    if !bad_timestamps.is_empty() {
        let (low, high) = timestamp_bounds.unwrap_or((i64::MIN, i64::MAX));
        let mut error = PartitionError::new(
            ErrorCode::INVALID_TIMESTAMP,
            format!("One or more records have been rejected due to invalid timestamp (allowed range [{low}, {high}])"),
        );
        error.record_errors = bad_timestamps
            .into_iter()
            .map(|(i, ts)| {
                (i, format!("Timestamp {ts} of message with offset {i} is out of range. The timestamp should be within [{low}, {high}]"))
            })
            .collect();
        return Err(error);
    }
    Ok(match target_codec(config) {
        Some(target) if target != codec => StoreAs::Recompressed(target),
        _ => StoreAs::AsProduced,
    })
}
