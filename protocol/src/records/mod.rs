//! Record batch v2 (magic 2): a zero-copy view, a builder, the in-place
//! stamping the broker does on append, and the compression codecs.
//!
//! # Layout
//!
//! A batch is a 61-byte header followed by the records
//! (docs/kafka-compatibility.md section 5):
//!
//! ```text
//! 0  baseOffset i64         12 partitionLeaderEpoch i32   21 attributes i16
//! 8  batchLength i32        16 magic i8                   23 lastOffsetDelta i32
//!                           17 crc u32 (CRC-32C of 21..)  27 baseTimestamp i64
//! 35 maxTimestamp i64       43 producerId i64             51 producerEpoch i16
//! 53 baseSequence i32       57 recordsCount i32           61 records...
//! ```
//!
//! `baseOffset` and `partitionLeaderEpoch` are outside the CRC, so the log can
//! stamp them in place ([`set_base_offset`], [`set_partition_leader_epoch`])
//! without re-encoding. [`set_log_append_time`] changes CRC-covered bytes and
//! therefore recomputes the CRC.
//!
//! # Example
//!
//! ```
//! use klamm_protocol::records::{RecordBatch, RecordBatchBuilder};
//!
//! let bytes = RecordBatchBuilder::new(0)
//!     .record(1_000, Some(b"k"), Some(b"v"))
//!     .record(1_001, None, Some(b"w"))
//!     .build();
//! let (batch, rest) = RecordBatch::parse(bytes).unwrap();
//! assert!(rest.is_empty());
//! batch.validate().unwrap();
//! assert_eq!(batch.last_offset(), 1);
//! let values: Vec<_> = batch.records().map(|r| r.unwrap().value.unwrap()).collect();
//! assert_eq!(values, vec![&b"v"[..], &b"w"[..]]);
//! ```
//!
//! # Compression
//!
//! The records section of a batch may be compressed (attributes bits 0-2);
//! `compression/` owns the codecs and their framing choices.
//! [`RecordBatch::records`] decompresses transparently; untrusted batches go
//! through [`RecordBatch::records_bounded`], which refuses decompression
//! bombs. [`recompress_batch`] re-encodes a batch for a topic whose
//! `compression.type` differs from the producer's codec.
//!
//! All types are plain data (`Send + Sync`); nothing here does I/O.

mod batch;
mod builder;
mod compression;
mod recompress;
mod record;
mod varint;

#[cfg(test)]
mod codec_tests;
#[cfg(test)]
mod tests;

pub use batch::{
    iter_batches, set_base_offset, set_log_append_time, set_partition_leader_epoch, Attributes,
    BatchIter, RecordBatch, TimestampType,
};
pub use builder::{
    build_end_txn_marker, ControlRecordType, EndTransactionMarker, RecordBatchBuilder,
};
pub use compression::{compress, decompress, decompress_bounded, Compression};
pub use recompress::recompress_batch;
pub use record::{Record, RecordSummaries, RecordSummary, Records};

/// Bytes before `partitionLeaderEpoch`: baseOffset + batchLength (`Records.LOG_OVERHEAD`).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the batch header before the first record (`RECORD_BATCH_OVERHEAD`).
pub const RECORD_BATCH_OVERHEAD: usize = 61;
/// Smallest legal `batchLength` value (header without the log overhead).
pub const MIN_BATCH_LENGTH: i32 = (RECORD_BATCH_OVERHEAD - LOG_OVERHEAD) as i32;
/// The only magic value this crate understands.
pub const CURRENT_MAGIC: i8 = 2;
/// Offset of the first CRC-covered byte (attributes).
pub const CRC_START: usize = 21;

/// Why a buffer is not a valid record batch.
///
/// The broker maps [`RecordsError::InvalidMagic`] to `INVALID_RECORD` (87),
/// [`RecordsError::UnsupportedCompression`] to `UNSUPPORTED_COMPRESSION_TYPE`
/// (76) when appropriate, and everything else to `CORRUPT_MESSAGE` (2); see
/// [`RecordsError::is_corrupt`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The buffer ends before the batch does.
    #[error("truncated batch at buffer position {position}: need {needed} bytes, have {available}")]
    Truncated { position: usize, needed: usize, available: usize },
    /// The magic byte is not 2 (legacy message set or garbage).
    #[error("unsupported record batch magic {0}")]
    InvalidMagic(i8),
    /// `batchLength` is smaller than the fixed header or does not match the buffer.
    #[error("invalid batch length {0}")]
    InvalidBatchLength(i32),
    /// The stored CRC does not match the CRC-32C of bytes 21..end.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    /// recordsCount / lastOffsetDelta / record offset deltas are inconsistent.
    #[error("invalid record count: {0}")]
    InvalidRecordCount(String),
    /// A record inside the batch is malformed.
    #[error("corrupt record {index}: {reason}")]
    CorruptRecord { index: i32, reason: &'static str },
    /// A varint is longer than allowed or runs past the end of the buffer.
    #[error("invalid varint")]
    InvalidVarint,
    /// Compression codec bits 5..7 are not assigned.
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    /// The codec is valid but not (yet) supported by this build.
    #[error("unsupported compression {0:?}")]
    UnsupportedCompression(Compression),
    /// A compressed batch inflates past the allowed size (a decompression bomb,
    /// or simply more than the caller is willing to hold).
    #[error("decompressed records exceed {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    /// The compressed records section is not a valid stream of its codec
    /// (bad magic, truncated, checksum mismatch, invalid data).
    #[error("corrupt {codec:?} stream: {reason}")]
    CorruptCompressed { codec: Compression, reason: String },
}

impl RecordsError {
    /// True for errors that mean "the bytes are damaged" (Kafka's CORRUPT_MESSAGE),
    /// false for invalid-but-intact input (wrong magic, unsupported codec).
    ///
    /// [`RecordsError::CorruptCompressed`] is damage; so is
    /// [`RecordsError::DecompressedTooLarge`], since no legitimate producer
    /// sends a batch that inflates past the broker's limit.
    pub fn is_corrupt(&self) -> bool {
        !matches!(
            self,
            RecordsError::InvalidMagic(_) | RecordsError::UnsupportedCompression(_)
        )
    }
}
