//! klamm-storage: the synchronous, segmented, append-only log of one
//! partition (no tokio; time always comes in as a `now_ms` argument).
//!
//! # What it owns
//!
//! A partition directory holding:
//!
//! - segments `<base_offset, 20 digits>.log`: record batches (magic 2) back
//!   to back, exactly as producers/leaders sent them, with `baseOffset` and
//!   `partitionLeaderEpoch` stamped in place on append (never re-encoded);
//! - a sparse offset index `<base>.index` per segment: 8-byte entries
//!   `relative_offset u32 BE | position u32 BE`, one per
//!   `index_interval_bytes` of log, relative offset = batch base offset −
//!   segment base offset;
//! - a time index `<base>.timeindex` per segment: 12-byte entries
//!   `timestamp i64 BE | relative_offset u32 BE`;
//! - an aborted-transaction index `<base>.txnindex` per segment that holds
//!   ABORT markers (Kafka's 34-byte entries; `txn_index.rs`), kept in
//!   memory, appended by the owner ([`Log::append_aborted_txn`]), truncated
//!   and deleted with its segment, rebuilt by recovery;
//! - `log-start-offset-checkpoint`, `recovery-point-offset-checkpoint` and
//!   `leader-epoch-checkpoint` (text: version `0`, entry count, one entry
//!   per line);
//! - `.klamm-clean-shutdown`, written by [`Log::close`] and removed by
//!   [`Log::open`];
//! - `cleaner-offset-checkpoint` (compacted topics): the log cleaner's first
//!   dirty offset and earliest pending delete horizon, with a CRC-32C.
//!
//! Index files are memory-mapped and preallocated to
//! `max_index_bytes` while their segment is active, and trimmed to their
//! entries when the segment is rolled or the log closed. See `FORMAT.md` in
//! the crate for the full description.
//!
//! # Recovery
//!
//! [`Log::open`] validates every batch (framing, magic, CRC-32C, increasing
//! offsets) of the last segment, or, if the clean shutdown marker is
//! missing, of every segment not wholly below the recovery point (the
//! offset below which everything was fsynced; see `flush.rs`), truncates at the first bad byte (deleting any later
//! segments), and rebuilds indexes that were recovered, missing or
//! inconsistent. It never panics on bad disk data.
//!
//! # Compaction
//!
//! [`Log::compact`] is Kafka's log cleaner for `cleanup.policy=compact`: it
//! keeps the latest record per key (offsets unchanged) in the sealed
//! segments below a caller-given bound, honours `min.compaction.lag.ms`,
//! removes tombstones `delete.retention.ms` after first cleaning them
//! (KIP-534 delete horizon), removes aborted transactional data, and keeps
//! control batches and each producer's last batch. [`Log::needs_compaction`]
//! and [`Log::dirty_ratio`] are the cheap scheduler checks. Rewritten
//! segments are swapped in through `<base>.log.cleaned` → `<base>.log.swap` →
//! `<base>.log`, and [`Log::open`] completes or rolls back an interrupted
//! swap, so a crash leaves every segment with its old or its new content.
//! See `cleaner/` and FORMAT.md.
//!
//! # Thread safety
//!
//! [`Log`] has one owner (the partition's writer) and takes `&mut self` for
//! every change. [`LogReader`] (from [`Log::reader`]) is `Clone + Send +
//! Sync` and reads without the writer: it snapshots the segment list (an
//! `Arc` cloned under a briefly held lock) and reads with `pread` below each
//! segment's published end, which the writer advances only after the bytes
//! are written. A truncation bumps a per-segment generation in the same
//! atomic store that lowers the end; a read that overlaps a truncation
//! returns nothing rather than bytes that may have been replaced. Segment
//! files deleted by retention or replaced by compaction stay readable by
//! readers that still hold them (unix unlink semantics).
//!
//! # Flush policy
//!
//! Like Kafka, the default is to never fsync on append: durability comes
//! from replication plus the OS page cache. `flush_messages` /
//! `flush_ms` in [`LogConfig`] make append fsync once that many records, or
//! that much time, has accumulated since the last flush; [`Log::flush`]
//! fsyncs on demand. Rolled segments are fsynced when `flush_on_roll` is set
//! (default), not on the append that rolls but by the log's owner in the
//! background ([`Log::take_rolled_flushes`], as Kafka flushes a rolled
//! segment asynchronously), and [`Log::close`] flushes everything. Checkpoint files are
//! always written atomically and fsynced.
//!
//! # Example
//!
//! ```
//! use klamm_protocol::records::RecordBatchBuilder;
//! use klamm_storage::{Log, LogConfig};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut log = Log::open(dir.path().join("topic-0"), LogConfig::default(), 0).unwrap();
//! let mut batch = RecordBatchBuilder::new(0).record(5, None, Some(b"hello")).build().to_vec();
//! let info = log.append(&mut batch, 10).unwrap();
//! assert_eq!((info.base_offset, log.log_end_offset()), (0, 1));
//! let reader = log.reader();
//! let read = reader.read(0, 1 << 20, log.log_end_offset(), true).unwrap();
//! assert_eq!(&read.bytes[..], &batch[..]);
//! log.close().unwrap();
//! ```

mod batch_header;
mod checkpoint;
mod cleaner;
mod config;
mod error;
mod flush;
mod index_file;
mod leader_epoch;
mod log;
mod offset_index;
mod reader;
mod segment;
mod time_index;
mod txn_index;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod flush_tests;
#[cfg(test)]
mod txn_index_tests;

pub use batch_header::BatchHeader;
pub use cleaner::{
    CompactionJob, CompactionParams, CompactionStats, PreparedCompaction, CLEANER_OFFSET_CHECKPOINT,
};
pub use config::LogConfig;
pub use error::{Error, Result};
pub use leader_epoch::{EpochEntry, LEADER_EPOCH_CHECKPOINT, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
pub use flush::{RolledFlush, RECOVERY_POINT_CHECKPOINT};
pub use log::{AppendInfo, Log, CLEAN_SHUTDOWN_MARKER, LOG_START_OFFSET_CHECKPOINT};
pub use reader::{FileRegion, LogReader, ReadResult};
pub use txn_index::AbortedTxn;
