//! Log compaction (Kafka's log cleaner, `cleanup.policy=compact`).
//!
//! # API
//!
//! [`Log::needs_compaction`] / [`Log::dirty_ratio`] are the scheduler's cheap
//! checks. [`Log::compact`] runs a pass holding `&mut Log`. To keep appending
//! during the heavy part, split it: [`Log::begin_compaction`] (`&self`,
//! snapshot, no I/O) → [`CompactionJob::run`] (any thread; reads the
//! snapshot's segments and writes `.cleaned` files, borrows nothing) →
//! [`Log::finish_compaction`] (`&mut self`; swaps, rebuilds indexes, writes
//! the checkpoint). If the log was truncated or lost a planned segment to
//! retention in between, finish discards the output (`stats.aborted`).
//!
//! # What a pass does
//!
//! A pass works on whole sealed segments:
//!
//! 1. **Cleanable range.** Segments `[0, end)` where `end` is the first
//!    segment that is the active one, ends above the caller's upper bound
//!    (high watermark / last stable offset), or — from the first dirty
//!    segment on — holds a batch younger than `min_compaction_lag_ms`
//!    (KIP-58). Segments wholly below the cleaner checkpoint (the first dirty
//!    offset) are *clean*, the rest of the range *dirty*.
//! 2. **Producer scan.** Batch headers of the whole log give the last batch
//!    of every producer id, and COMMIT/ABORT markers give each transactional
//!    batch's fate.
//! 3. **Offset map.** key → largest offset over the dirty segments, from
//!    non-transactional and committed transactional data records (aborted
//!    or still-open ones never supersede anything). The map is bounded by
//!    `max_offset_map_bytes`: when full, the pass stops at that segment.
//! 4. **Rewrite.** Every segment of the range, oldest first, is filtered:
//!    a record is dropped when a later record with the same key exists
//!    (`offset < map[key]`), when it belongs to an aborted transaction, or
//!    when it is a tombstone whose batch's delete horizon has passed.
//!    Records without a key are kept. Surviving records keep their offsets:
//!    batches are re-encoded with the same base offset, `lastOffsetDelta`,
//!    leader epoch, producer id/epoch/base sequence, attributes and codec.
//!    A batch that loses nothing is copied byte for byte; control batches
//!    always are. A batch that loses everything is dropped, except that the
//!    last batch of a producer id is kept as an empty batch (records count 0)
//!    so idempotent producer state can still be rebuilt from the log.
//!    A segment whose content does not change is not rewritten.
//! 5. **Checkpoint.** The first dirty offset becomes the end of the range.
//!
//! # Tombstones: delete horizon (KIP-534)
//!
//! The first pass that keeps a tombstone in a batch without a delete horizon
//! rewrites that batch with attribute bit 6 set and `baseTimestamp =
//! deleteHorizonMs = now + delete_retention_ms` (record timestamp deltas are
//! re-based so record timestamps are unchanged). A later pass with `now >=
//! deleteHorizonMs` removes the batch's tombstones. Because a tombstone only
//! gets a horizon in a pass that also removed every older record of its key,
//! removing it later cannot resurrect an older value. Batches the cleaner
//! cannot decode (unsupported codec, over the decompression bound, corrupt)
//! are kept verbatim and their keys are unknown, so after the first one in a
//! pass no further tombstone is removed in that pass.
//!
//! # Crash safety (the swap protocol)
//!
//! For each rewritten segment `<base>`:
//!
//! 1. write `<base>.log.cleaned`, fsync it;
//! 2. rename it to `<base>.log.swap`, fsync the directory — **commit point**;
//! 3. unlink `<base>.index` and `<base>.timeindex` (they describe the old
//!    content; unlinking instead of truncating keeps the mmaps of readers
//!    still holding the old segment valid);
//! 4. rename `<base>.log.swap` over `<base>.log` (atomic replace), fsync the
//!    directory;
//! 5. rebuild both indexes from the new file, seal and fsync them, and
//!    publish the new segment list to readers.
//!
//! A segment (other than the first) left with no batch is instead deleted:
//! unlink `<base>.log` (commit point), then its indexes. [`Log::open`] first
//! calls [`complete_interrupted_swaps`]: `*.cleaned` files are deleted (roll
//! back), a `<base>.log.swap` is completed (old indexes unlinked, renamed
//! over `<base>.log`; the missing indexes make recovery rebuild them). So a
//! crash at any point leaves each segment with either its old or its new
//! content. Segments are processed oldest first, which keeps any mix valid:
//! a record is only removed when a newer record of its key exists in a later
//! position, and a tombstone's older values sit in earlier segments, which
//! are swapped before the tombstone's own segment. The checkpoint is written
//! last; a crash before it just makes the next pass redo the work.
//!
//! Readers ([`crate::LogReader`]) snapshot the segment list; a reader holding
//! an old segment keeps reading its (unlinked or replaced) file through the
//! open file handle and mmaps until it drops it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use klamm_protocol::records::{
    Compression, EndTransactionMarker, Record, RecordBatch, RecordBatchBuilder, RecordsError,
};
use tracing::{info, warn};

use crate::batch_header::{BatchHeader, HEADER_SIZE};
use crate::checkpoint::{read_checkpoint, sync_dir, write_checkpoint};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::segment::{file_name, read_full, Segment, SegmentShared};

/// The cleaner checkpoint in the partition directory: the first dirty offset.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// Settings of a compaction pass (Kafka's topic-level names in the docs).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionParams {
    /// `delete.retention.ms`: how long tombstones stay readable after the
    /// cleaner first retains them (default 1 day).
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: segments holding a batch younger than this
    /// (by batch max timestamp) are not compacted yet (default 0).
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: [`Log::needs_compaction`] answers yes,
    /// whatever the dirty ratio, once the first dirty segment's first batch
    /// is older than this. `None` = never forced (Kafka's default).
    pub max_compaction_lag_ms: Option<i64>,
    /// `min.cleanable.dirty.ratio` (default 0.5).
    pub min_cleanable_dirty_ratio: f64,
    /// Largest decompressed records section the cleaner decodes; bigger
    /// batches are kept verbatim (decompression-bomb guard; default 64 MiB).
    pub max_decompressed_batch_bytes: usize,
    /// Approximate memory for the key → offset map (`log.cleaner.dedupe.buffer.size`;
    /// default 128 MiB). When full, the pass cleans only up to the segment
    /// where it filled (the map may overshoot by one segment's keys).
    pub max_offset_map_bytes: usize,
}

impl Default for CompactionParams {
    fn default() -> Self {
        CompactionParams {
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: None,
            min_cleanable_dirty_ratio: 0.5,
            max_decompressed_batch_bytes: 64 << 20,
            max_offset_map_bytes: 128 << 20,
        }
    }
}

impl CompactionParams {
    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidConfig(format!("compaction: {what}")));
        if self.delete_retention_ms < 0 {
            return bad("delete_retention_ms must be >= 0");
        }
        if self.min_compaction_lag_ms < 0 {
            return bad("min_compaction_lag_ms must be >= 0");
        }
        if self.max_compaction_lag_ms.is_some_and(|ms| ms <= 0) {
            return bad("max_compaction_lag_ms must be > 0");
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return bad("min_cleanable_dirty_ratio must be in 0..=1");
        }
        if self.max_decompressed_batch_bytes == 0 || self.max_offset_map_bytes == 0 {
            return bad("memory bounds must be > 0");
        }
        Ok(())
    }
}

/// What a compaction pass did (the broker exports these as metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Segments read and filtered (the whole cleanable range).
    pub segments_scanned: usize,
    /// Segments whose content changed (rewritten or deleted).
    pub segments_cleaned: usize,
    /// Segments deleted because nothing in them survived.
    pub segments_deleted: usize,
    /// Bytes of the scanned segments before and after the pass.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Records removed (superseded, aborted, or expired tombstones).
    pub records_removed: u64,
    /// Of `records_removed`, how many were tombstones.
    pub tombstones_removed: u64,
    /// Batches dropped entirely.
    pub batches_removed: u64,
    /// Batches kept verbatim because they could not be decoded.
    pub undecodable_batches: u64,
    /// The log changed (truncation, retention) while the job ran, so its
    /// output was discarded; nothing was changed.
    pub aborted: bool,
    /// Distinct keys in the offset map.
    pub keys_in_map: usize,
    /// First dirty offset before the pass.
    pub first_dirty_offset: i64,
    /// First dirty offset after the pass (the new checkpoint).
    pub cleaned_up_to: i64,
}

// ---------------------------------------------------------------------------
// Checkpoint

/// The persisted cleaner state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    /// Offsets below it have been compacted.
    pub first_dirty_offset: i64,
    /// Earliest delete horizon of a batch still holding tombstones after the
    /// last pass (-1: none), so the scheduler knows when a pass would remove
    /// tombstones even though nothing is dirty.
    pub min_delete_horizon: i64,
}

fn checkpoint_crc(cp: CleanerCheckpoint) -> i64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&cp.first_dirty_offset.to_be_bytes());
    bytes[8..].copy_from_slice(&cp.min_delete_horizon.to_be_bytes());
    i64::from(crc32c::crc32c(&bytes))
}

/// Reads the cleaner checkpoint (`first_dirty min_delete_horizon crc32c`);
/// `None` when missing or unreadable: then the whole log counts as dirty,
/// which is always safe, just more work.
pub(crate) fn read_cleaner_checkpoint(dir: &Path) -> Option<CleanerCheckpoint> {
    match read_checkpoint(&dir.join(CLEANER_OFFSET_CHECKPOINT), 3) {
        Ok(Some(rows)) if rows.len() == 1 => {
            let cp = CleanerCheckpoint {
                first_dirty_offset: rows[0][0],
                min_delete_horizon: rows[0][1],
            };
            if cp.first_dirty_offset >= 0 && rows[0][2] == checkpoint_crc(cp) {
                return Some(cp);
            }
            warn!(dir = %dir.display(), "ignoring cleaner checkpoint with a bad checksum");
            None
        }
        Ok(_) => None,
        Err(e) => {
            warn!(error = %e, "ignoring unreadable cleaner checkpoint");
            None
        }
    }
}

pub(crate) fn write_cleaner_checkpoint(dir: &Path, cp: CleanerCheckpoint) -> Result<()> {
    write_checkpoint(
        &dir.join(CLEANER_OFFSET_CHECKPOINT),
        &[format!(
            "{} {} {}",
            cp.first_dirty_offset,
            cp.min_delete_horizon,
            checkpoint_crc(cp)
        )],
    )
}

// ---------------------------------------------------------------------------
// Recovery of interrupted swaps

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove file", path)(e)),
    }
}

/// Settles what an interrupted compaction left behind (see the module doc):
/// deletes `*.cleaned` files and completes every `<base>.log.swap`.
pub(crate) fn complete_interrupted_swaps(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(Error::io("list partition dir", dir))?;
    let mut swaps = Vec::new();
    let mut changed = false;
    for entry in entries {
        let entry = entry.map_err(Error::io("list partition dir", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".cleaned") {
            warn!(path = %entry.path().display(), "removing unfinished compaction output");
            remove_if_exists(&entry.path())?;
            changed = true;
        } else if let Some(stem) = name.strip_suffix(".log.swap") {
            match stem.parse::<i64>() {
                Ok(base) if stem.len() == 20 && base >= 0 => swaps.push(base),
                _ => {
                    remove_if_exists(&entry.path())?;
                    changed = true;
                }
            }
        } else if name.ends_with(".swap") {
            // This version only swaps `.log` files; anything else is foreign.
            remove_if_exists(&entry.path())?;
            changed = true;
        }
    }
    for base in swaps {
        warn!(base, "completing an interrupted compaction swap");
        remove_if_exists(&dir.join(file_name(base, "index")))?;
        remove_if_exists(&dir.join(file_name(base, "timeindex")))?;
        let swap = dir.join(format!("{}.swap", file_name(base, "log")));
        let log = dir.join(file_name(base, "log"));
        std::fs::rename(&swap, &log).map_err(Error::io("rename swap file", &swap))?;
        changed = true;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Test failpoints: make a pass stop (as if the process died) after a step.

/// Steps of the swap protocol after which a test can stop a pass.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    CleanedWritten,
    SwapRenamed,
    OldIndexesRemoved,
    LogReplaced,
    SegmentReopened,
    EmptyLogRemoved,
    BeforeCheckpoint,
}

#[cfg(test)]
pub(crate) mod failpoint {
    use std::cell::Cell;

    use super::Step;

    thread_local! {
        static ARMED: Cell<Option<(Step, u32)>> = const { Cell::new(None) };
    }

    /// Fails the `nth` (0-based) time `step` is reached on this thread.
    pub(crate) fn arm(step: Step, nth: u32) {
        ARMED.with(|a| a.set(Some((step, nth))));
    }
    pub(crate) fn disarm() {
        ARMED.with(|a| a.set(None));
    }
    pub(crate) fn fires(step: Step) -> bool {
        ARMED.with(|a| match a.get() {
            Some((s, 0)) if s == step => {
                a.set(None);
                true
            }
            Some((s, n)) if s == step => {
                a.set(Some((s, n - 1)));
                false
            }
            _ => false,
        })
    }
}

#[cfg(test)]
macro_rules! failpoint {
    ($step:ident, $dir:expr) => {
        if failpoint::fires(Step::$step) {
            return Err(Error::Io {
                op: "failpoint",
                path: $dir.to_path_buf(),
                source: std::io::Error::other(concat!("injected crash after ", stringify!($step))),
            });
        }
    };
}
#[cfg(not(test))]
macro_rules! failpoint {
    ($step:ident, $dir:expr) => {};
}

// ---------------------------------------------------------------------------
// Reading batches

fn corrupt(shared: &SegmentShared, position: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        path: shared.log_path.clone(),
        position,
        reason: reason.into(),
    }
}

/// Calls `f` for every batch in `[0, size)` of a sealed segment, reading in
/// chunks. `f` returns `false` to stop. Damage is an error: the cleaner never
/// rewrites a segment it cannot read entirely.
fn for_each_batch(
    shared: &SegmentShared,
    size: u64,
    mut f: impl FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    const CHUNK: usize = 4 << 20;
    let mut pos = 0u64;
    while pos < size {
        let want = CHUNK.min((size - pos) as usize);
        let chunk = read_full(&shared.file, &shared.log_path, pos, want)?;
        let mut at = 0usize;
        while chunk.len() - at >= HEADER_SIZE {
            let h = BatchHeader::parse(&chunk[at..]).map_err(|r| corrupt(shared, pos + at as u64, r))?;
            let end = at + h.size as usize;
            if end > chunk.len() {
                break;
            }
            let (batch, _) = RecordBatch::parse(chunk.slice(at..end))
                .map_err(|e| corrupt(shared, pos + at as u64, e.to_string()))?;
            if !f(batch)? {
                return Ok(());
            }
            at = end;
        }
        if at == 0 {
            // One batch larger than the chunk: read it on its own.
            let h = match chunk.get(..HEADER_SIZE).map(BatchHeader::parse) {
                Some(Ok(h)) if pos + u64::from(h.size) <= size => h,
                _ => return Err(corrupt(shared, pos, "torn batch in a sealed segment")),
            };
            let whole = read_full(&shared.file, &shared.log_path, pos, h.size as usize)?;
            if whole.len() != h.size as usize {
                return Err(corrupt(shared, pos, "segment shorter than its size"));
            }
            let (batch, _) = RecordBatch::parse(whole).map_err(|e| corrupt(shared, pos, e.to_string()))?;
            if !f(batch)? {
                return Ok(());
            }
            at = h.size as usize;
        }
        pos += at as u64;
    }
    Ok(())
}

/// Decodes a batch's records after checking its header (CRC included),
/// decompressing with an output bound of `max_bytes`.
fn decode_records(batch: &RecordBatch, max_bytes: usize) -> Result<Vec<Record>, RecordsError> {
    batch.validate_header()?;
    batch.records_bounded(max_bytes).collect()
}

/// Re-encodes `orig` keeping only `kept` (each record at its original
/// offset and timestamp), with the batch's own codec. With `horizon`, sets
/// the delete-horizon bit and bases timestamps on it.
fn encode_retained(orig: &RecordBatch, kept: Vec<Record>, horizon: Option<i64>) -> Result<Bytes, RecordsError> {
    let mut builder = RecordBatchBuilder::like(orig)?;
    if let Some(h) = horizon {
        builder = builder.delete_horizon(h);
    }
    for r in kept {
        builder.push_record(r.timestamp(orig.base_timestamp()), r);
    }
    Ok(builder.build())
}

/// An empty batch standing in for `orig` (records count 0, no codec), as
/// Kafka writes for the last batch of a producer whose records all went.
fn encode_empty(orig: &RecordBatch) -> Result<Bytes, RecordsError> {
    Ok(RecordBatchBuilder::like(orig)?
        .compression(Compression::None)
        .base_timestamp(orig.max_timestamp())
        .max_timestamp(orig.max_timestamp())
        .build())
}

// ---------------------------------------------------------------------------
// Producers, transactions and the offset map

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Committed,
    Aborted,
    /// No marker yet (only possible above the last stable offset).
    Open,
}

#[derive(Debug, Default)]
struct Producers {
    /// Base offset of the last batch of each producer id in the whole log.
    last_batch: HashMap<i64, i64>,
    /// (marker offset, commit?) per producer id, in offset order.
    markers: HashMap<i64, Vec<(i64, bool)>>,
}

impl Producers {
    /// Walks the batch headers of every segment. The last one is the
    /// active segment, which may be truncated meanwhile (the job runs beside
    /// the writer): a read problem there just ends the scan, which is
    /// conservative (a producer's last batch kept needlessly; a transaction
    /// looks open, so it neither supersedes nor is removed).
    fn scan(segments: &[(Arc<SegmentShared>, u64)]) -> Result<Producers> {
        let mut p = Producers::default();
        for (n, (shared, end)) in segments.iter().enumerate() {
            let (shared, end) = (shared, *end);
            let active = n + 1 == segments.len();
            let mut pos = 0u64;
            loop {
                let h = match shared.read_header(pos, end) {
                    Ok(Some(h)) => h,
                    Ok(None) => break,
                    Err(_) if active => break,
                    Err(e) => return Err(e),
                };
                if h.producer_id >= 0 {
                    p.last_batch.insert(h.producer_id, h.base_offset);
                    if h.is_control() && h.is_transactional() {
                        let marker = shared
                            .read_batch(pos, &h)?
                            .and_then(|b| b.records().next())
                            .and_then(|r| r.ok())
                            .and_then(|r| EndTransactionMarker::from_record(&r).ok().flatten());
                        if let Some(m) = marker {
                            p.markers
                                .entry(h.producer_id)
                                .or_default()
                                .push((h.base_offset, m.commit));
                        }
                    }
                }
                pos += u64::from(h.size);
            }
            if pos != end && !active {
                return Err(corrupt(shared, pos, "unreadable batch header"));
            }
        }
        Ok(p)
    }

    /// A transactional data batch's fate: the next marker of its producer.
    fn fate(&self, producer_id: i64, offset: i64) -> Fate {
        let Some(markers) = self.markers.get(&producer_id) else {
            return Fate::Open;
        };
        let i = markers.partition_point(|&(o, _)| o <= offset);
        match markers.get(i) {
            Some(&(_, true)) => Fate::Committed,
            Some(&(_, false)) => Fate::Aborted,
            None => Fate::Open,
        }
    }
}

/// Per-entry overhead assumed for the map's memory accounting.
const MAP_ENTRY_OVERHEAD: usize = 48;

#[derive(Debug, Default)]
struct OffsetMap {
    map: HashMap<Box<[u8]>, i64>,
    bytes: usize,
}

impl OffsetMap {
    fn put(&mut self, key: &[u8], offset: i64) {
        match self.map.get_mut(key) {
            // Committed transactions are applied at their marker, so offsets
            // can arrive out of order: keep the largest.
            Some(o) => *o = (*o).max(offset),
            None => {
                self.bytes += key.len() + MAP_ENTRY_OVERHEAD;
                self.map.insert(key.into(), offset);
            }
        }
    }
    fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(key).copied()
    }

    /// Adds the keys of the records at offsets >= `from` in one segment.
    fn add_segment(
        &mut self,
        shared: &SegmentShared,
        size: u64,
        from: i64,
        producers: &Producers,
        max_decompressed: usize,
    ) -> Result<()> {
        for_each_batch(shared, size, |batch| {
            if batch.is_control() || batch.last_offset() < from {
                return Ok(true);
            }
            if batch.is_transactional() && producers.fate(batch.producer_id(), batch.base_offset()) != Fate::Committed {
                return Ok(true);
            }
            // An undecodable batch adds nothing: its records never supersede.
            let Ok(records) = decode_records(&batch, max_decompressed) else {
                return Ok(true);
            };
            for r in records {
                let offset = r.offset(batch.base_offset());
                if let (Some(key), true) = (r.key.as_deref(), offset >= from) {
                    self.put(key, offset);
                }
            }
            Ok(true)
        })
    }
}

// ---------------------------------------------------------------------------
// Filtering batches

enum Decision {
    Keep,
    Drop,
    Rewrite(Bytes),
}

#[derive(Default)]
struct Removed {
    records: u64,
    tombstones: u64,
    undecodable: u64,
}

struct Filter<'a> {
    map: &'a OffsetMap,
    producers: &'a Producers,
    params: &'a CompactionParams,
    now_ms: i64,
    /// Cleared at the first undecodable batch; see the module doc.
    tombstone_removal: bool,
    /// Earliest delete horizon among output batches still holding tombstones.
    min_horizon: Option<i64>,
}

impl Filter<'_> {
    fn decide(&mut self, batch: &RecordBatch, removed: &mut Removed) -> Decision {
        if batch.is_control() {
            return Decision::Keep;
        }
        let records = match decode_records(batch, self.params.max_decompressed_batch_bytes) {
            Ok(r) => r,
            Err(e) => {
                if self.tombstone_removal {
                    warn!(offset = batch.base_offset(), error = %e, "cleaner keeps an undecodable batch verbatim");
                }
                self.tombstone_removal = false;
                removed.undecodable += 1;
                return Decision::Keep;
            }
        };
        let base = batch.base_offset();
        let aborted = batch.is_transactional()
            && self.producers.fate(batch.producer_id(), base) == Fate::Aborted;
        let horizon = batch.has_delete_horizon().then(|| batch.base_timestamp());
        let total = records.len();
        let mut kept = Vec::with_capacity(total);
        let mut kept_tombstone = false;
        for r in records {
            let offset = r.offset(base);
            let tombstone = r.key.is_some() && r.value.is_none();
            let superseded = r
                .key
                .as_deref()
                .and_then(|k| self.map.get(k))
                .is_some_and(|latest| latest > offset);
            let expired = tombstone
                && self.tombstone_removal
                && horizon.is_some_and(|h| self.now_ms >= h);
            if aborted || superseded || expired {
                removed.records += 1;
                removed.tombstones += u64::from(tombstone);
            } else {
                kept_tombstone |= tombstone;
                kept.push(r);
            }
        }
        if kept_tombstone {
            // A horizon already passed here means removal is blocked (see
            // `tombstone_removal`); recording it would make the scheduler
            // ask for a pass that cannot make progress, again and again.
            // A horizon this pass assigns is always recorded, even when
            // delete.retention.ms is 0 (h == now): the next pass removes it.
            let h = horizon.unwrap_or_else(|| self.now_ms.saturating_add(self.params.delete_retention_ms));
            if horizon.is_none() || h > self.now_ms {
                self.min_horizon = Some(self.min_horizon.map_or(h, |m| m.min(h)));
            }
        }
        if kept.len() == total && (!kept_tombstone || horizon.is_some()) {
            return Decision::Keep;
        }
        if kept.is_empty() {
            let pid = batch.producer_id();
            if pid >= 0 && self.producers.last_batch.get(&pid) == Some(&base) {
                return match encode_empty(batch) {
                    Ok(bytes) => Decision::Rewrite(bytes),
                    // Cannot happen for a batch that decoded; keeping it is safe.
                    Err(_) => Decision::Keep,
                };
            }
            return Decision::Drop;
        }
        let horizon = horizon.or_else(|| {
            kept_tombstone.then(|| self.now_ms.saturating_add(self.params.delete_retention_ms))
        });
        match encode_retained(batch, kept, horizon) {
            Ok(bytes) => Decision::Rewrite(bytes),
            // Cannot happen for a batch that decoded; keeping it is safe.
            Err(_) => Decision::Keep,
        }
    }
}

// ---------------------------------------------------------------------------
// The Log API

/// The cleanable range of a log at some moment.
#[derive(Debug, Clone, Copy)]
struct Cleanable {
    first_dirty: i64,
    /// Index of the first dirty segment in the range, if any.
    first_dirty_seg: Option<usize>,
    /// Segments `[0, end_seg)` are cleanable.
    end_seg: usize,
    clean_bytes: u64,
    dirty_bytes: u64,
}

impl Log {
    /// The cleaner checkpoint: offsets below it have been compacted (clamped
    /// to the current log start and end).
    pub fn cleaner_checkpoint(&self) -> i64 {
        self.cleaner
            .first_dirty_offset
            .clamp(self.log_start_offset, self.log_end_offset)
    }

    /// Lowers the cleaner checkpoint to `offset` (after a truncation) and
    /// persists it: data appended again below the old checkpoint was never
    /// cleaned, and treating it as clean would let a tombstone there get a
    /// delete horizon without its older values having been removed.
    pub(crate) fn lower_cleaner_checkpoint(&mut self, offset: i64) -> Result<()> {
        if self.cleaner.first_dirty_offset > offset {
            self.cleaner.first_dirty_offset = offset;
            // Without a file (never compacted) the default on open is the
            // log start offset, which is already safe: no file to create.
            if self.dir.join(CLEANER_OFFSET_CHECKPOINT).exists() {
                write_cleaner_checkpoint(&self.dir, self.cleaner)?;
            }
        }
        Ok(())
    }

    fn cleanable(&self, params: &CompactionParams, upper_bound_offset: i64, now_ms: i64) -> Cleanable {
        let first_dirty = self.cleaner_checkpoint();
        let mut c = Cleanable {
            first_dirty,
            first_dirty_seg: None,
            end_seg: 0,
            clean_bytes: 0,
            dirty_bytes: 0,
        };
        let young = now_ms.saturating_sub(params.min_compaction_lag_ms);
        // The last segment is the active one: never cleaned.
        for i in 0..self.segments.len() - 1 {
            let seg = &self.segments[i];
            let end = self.segment_end(i);
            if end > upper_bound_offset {
                break;
            }
            if end > first_dirty {
                if params.min_compaction_lag_ms > 0 && seg.max_timestamp() > young {
                    break;
                }
                c.first_dirty_seg.get_or_insert(i);
                c.dirty_bytes += seg.size();
            } else {
                c.clean_bytes += seg.size();
            }
            c.end_seg = i + 1;
        }
        c
    }

    /// dirty bytes / (clean + dirty bytes) over the cleanable range (0 when
    /// the range is empty). Cheap: no I/O.
    pub fn dirty_ratio(&self, params: &CompactionParams, upper_bound_offset: i64, now_ms: i64) -> f64 {
        let c = self.cleanable(params, upper_bound_offset, now_ms);
        let total = c.clean_bytes + c.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            c.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether the scheduler should run [`Log::compact`]: something in the
    /// cleanable range is dirty, and the dirty ratio reaches
    /// `min_cleanable_dirty_ratio` or the first dirty batch is older than
    /// `max_compaction_lag_ms` (reads one batch header).
    pub fn needs_compaction(&self, params: &CompactionParams, upper_bound_offset: i64, now_ms: i64) -> Result<bool> {
        let c = self.cleanable(params, upper_bound_offset, now_ms);
        let horizon = self.cleaner.min_delete_horizon;
        if horizon >= 0 && now_ms >= horizon && c.end_seg > 0 {
            return Ok(true);
        }
        let Some(first) = c.first_dirty_seg else {
            return Ok(false);
        };
        if c.dirty_bytes == 0 {
            return Ok(false);
        }
        let ratio = c.dirty_bytes as f64 / (c.clean_bytes + c.dirty_bytes) as f64;
        if ratio >= params.min_cleanable_dirty_ratio {
            return Ok(true);
        }
        if let Some(max_lag) = params.max_compaction_lag_ms {
            let seg = &self.segments[first];
            if let Some(h) = seg.shared.read_header(0, seg.size())? {
                if h.max_timestamp >= 0 && now_ms.saturating_sub(h.max_timestamp) > max_lag {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// [`Log::needs_compaction`], then [`Log::compact`] if it says so.
    pub fn maybe_compact(
        &mut self,
        params: &CompactionParams,
        upper_bound_offset: i64,
        now_ms: i64,
    ) -> Result<Option<CompactionStats>> {
        if !self.needs_compaction(params, upper_bound_offset, now_ms)? {
            return Ok(None);
        }
        self.compact(params, upper_bound_offset, now_ms).map(Some)
    }

    /// Runs one compaction pass (see the module doc of `cleaner.rs` and
    /// FORMAT.md) over the sealed segments whose data lies below
    /// `upper_bound_offset` (pass the high watermark, or the last stable
    /// offset for transactional topics). Does not look at the dirty ratio:
    /// that is [`Log::needs_compaction`]'s job. Concurrent [`crate::LogReader`]s
    /// stay valid throughout. On error the log is still valid on disk; the
    /// in-memory segment list may be stale for the segment being swapped,
    /// so reopen the log after an I/O error.
    ///
    /// This is [`Log::begin_compaction`] + [`CompactionJob::run`] +
    /// [`Log::finish_compaction`] in one call, holding `&mut self`
    /// throughout; use the three steps to keep appending while the heavy
    /// part runs.
    pub fn compact(&mut self, params: &CompactionParams, upper_bound_offset: i64, now_ms: i64) -> Result<CompactionStats> {
        match self.begin_compaction(params, upper_bound_offset, now_ms)? {
            Some(job) => {
                let prepared = job.run()?;
                self.finish_compaction(prepared)
            }
            None => {
                let first_dirty = self.cleaner_checkpoint();
                Ok(CompactionStats {
                    first_dirty_offset: first_dirty,
                    cleaned_up_to: first_dirty,
                    ..CompactionStats::default()
                })
            }
        }
    }

    /// Step 1 of a pass: snapshots what to clean (cheap, no I/O). `None`
    /// when nothing is cleanable or a job of this log is still in flight
    /// (one at a time: two jobs would write the same `.cleaned` files).
    /// The job holds only shared segment handles, so the log can keep
    /// taking appends, retention and truncation while it runs; see
    /// [`Log::finish_compaction`] for what happens then.
    pub fn begin_compaction(
        &self,
        params: &CompactionParams,
        upper_bound_offset: i64,
        now_ms: i64,
    ) -> Result<Option<CompactionJob>> {
        params.validate()?;
        let c = self.cleanable(params, upper_bound_offset, now_ms);
        if c.end_seg == 0 {
            return Ok(None);
        }
        if self.compaction_running.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        let guard = JobGuard(Arc::clone(&self.compaction_running));
        Ok(Some(CompactionJob {
            dir: self.dir.clone(),
            params: params.clone(),
            now_ms,
            segments: self
                .segments
                .iter()
                .map(|s| (Arc::clone(&s.shared), s.size()))
                .collect(),
            log_end_offset: self.log_end_offset,
            first_dirty: c.first_dirty,
            first_dirty_seg: c.first_dirty_seg.unwrap_or(c.end_seg),
            end_seg: c.end_seg,
            truncations: self.truncations,
            guard,
        }))
    }

    /// Step 3 of a pass: swaps the cleaned segments in (oldest first, see
    /// "Crash safety") and writes the checkpoint. Quick: renames, fsyncs and
    /// an index rebuild per rewritten segment.
    ///
    /// If the log was truncated since [`Log::begin_compaction`], or one of
    /// the job's segments is gone or moved (retention deleted segments), the
    /// job's output no longer fits the log: it is discarded and the returned
    /// stats say `aborted` (the next pass redoes the work).
    pub fn finish_compaction(&mut self, mut prepared: PreparedCompaction) -> Result<CompactionStats> {
        let fits = prepared.truncations == self.truncations
            && prepared.planned.len() < self.segments.len()
            && prepared
                .planned
                .iter()
                .zip(&self.segments)
                .all(|(p, s)| Arc::ptr_eq(p, &s.shared));
        if !fits {
            info!(dir = %self.dir.display(), "log changed under a compaction job; discarding its output");
            // Dropping `prepared` removes its files; report that nothing changed.
            let first_dirty = self.cleaner_checkpoint();
            return Ok(CompactionStats {
                aborted: true,
                first_dirty_offset: first_dirty,
                cleaned_up_to: first_dirty,
                ..CompactionStats::default()
            });
        }
        // Taken as `Outputs` so that after an error the files not swapped in
        // yet are removed when it drops.
        let mut outputs = std::mem::take(&mut prepared.outputs);
        let mut deleted = 0usize;
        while !outputs.0.is_empty() {
            let out = &outputs.0[0];
            // Earlier deletions shift the positions.
            let i = out.position - deleted;
            let base = self.segments[i].base_offset();
            if out.delete {
                // Nothing survived: drop the segment; its offset range becomes
                // a gap after the previous segment (allowed, like a
                // follower's copy of a compacted log). The first segment is
                // never deleted (the log start offset must not move).
                remove_if_exists(&out.cleaned)?;
                let seg = self.segments.remove(i);
                self.publish_segments();
                remove_if_exists(&seg.shared.log_path)?;
                failpoint!(EmptyLogRemoved, self.dir);
                seg.delete_files()?;
                sync_dir(&self.dir)?;
                deleted += 1;
                prepared.stats.segments_deleted += 1;
                outputs.0.remove(0);
                continue;
            }
            let swap = self.dir.join(format!("{}.swap", file_name(base, "log")));
            std::fs::rename(&out.cleaned, &swap).map_err(Error::io("rename cleaned segment", &swap))?;
            outputs.0.remove(0);
            sync_dir(&self.dir)?;
            failpoint!(SwapRenamed, self.dir);
            self.replace_with_swap(i, &swap)?;
        }
        failpoint!(BeforeCheckpoint, self.dir);
        let stats = std::mem::take(&mut prepared.stats);
        self.cleaner = CleanerCheckpoint {
            first_dirty_offset: stats.cleaned_up_to,
            min_delete_horizon: prepared.min_horizon.unwrap_or(-1),
        };
        write_cleaner_checkpoint(&self.dir, self.cleaner)?;
        info!(
            dir = %self.dir.display(),
            segments = stats.segments_scanned,
            cleaned = stats.segments_cleaned,
            bytes_before = stats.bytes_before,
            bytes_after = stats.bytes_after,
            records_removed = stats.records_removed,
            tombstones_removed = stats.tombstones_removed,
            cleaned_up_to = stats.cleaned_up_to,
            "compacted log"
        );
        Ok(stats)
    }

    /// Steps 3-5 of the swap protocol for segment `i`.
    fn replace_with_swap(&mut self, i: usize, swap: &PathBuf) -> Result<()> {
        let base = self.segments[i].base_offset();
        // Unlink, never truncate: readers may still have the old indexes mapped.
        remove_if_exists(&self.dir.join(file_name(base, "index")))?;
        remove_if_exists(&self.dir.join(file_name(base, "timeindex")))?;
        failpoint!(OldIndexesRemoved, self.dir);
        let log_path = self.dir.join(file_name(base, "log"));
        std::fs::rename(swap, &log_path).map_err(Error::io("rename swap file", &log_path))?;
        sync_dir(&self.dir)?;
        failpoint!(LogReplaced, self.dir);
        let (mut seg, stop) = Segment::recover(&self.dir, base, &self.config)?;
        if let Some(reason) = stop {
            // We wrote and fsynced this file a moment ago: a disk problem.
            return Err(Error::Corrupt {
                path: log_path,
                position: seg.size(),
                reason,
            });
        }
        seg.seal(true)?;
        sync_dir(&self.dir)?;
        failpoint!(SegmentReopened, self.dir);
        // The old segment's files are gone; readers holding its Arc keep
        // reading the unlinked file through its open handle.
        self.segments[i] = seg;
        self.publish_segments();
        Ok(())
    }
}

/// Clears the log's "job in flight" flag when the job (or its prepared
/// output) is finished or dropped.
#[derive(Debug)]
struct JobGuard(Arc<AtomicBool>);

impl Drop for JobGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The heavy part of a compaction pass, detached from the [`Log`]: from
/// [`Log::begin_compaction`], run with [`CompactionJob::run`] (on any
/// thread), applied with [`Log::finish_compaction`].
#[derive(Debug)]
pub struct CompactionJob {
    dir: PathBuf,
    params: CompactionParams,
    now_ms: i64,
    /// Every segment at begin (the last one active) and its size then.
    segments: Vec<(Arc<SegmentShared>, u64)>,
    log_end_offset: i64,
    first_dirty: i64,
    first_dirty_seg: usize,
    end_seg: usize,
    truncations: u64,
    guard: JobGuard,
}

/// One segment's compaction output, not yet swapped in.
#[derive(Debug)]
struct Output {
    /// Index of the source segment in the job's snapshot.
    position: usize,
    cleaned: PathBuf,
    /// Nothing survived and the segment is not the first: delete it.
    delete: bool,
}

/// `.cleaned` files not swapped in yet; deleted if dropped unused.
#[derive(Debug, Default)]
struct Outputs(Vec<Output>);

impl Drop for Outputs {
    fn drop(&mut self) {
        for out in &self.0 {
            if let Err(e) = remove_if_exists(&out.cleaned) {
                warn!(error = %e, "could not remove unused compaction output");
            }
        }
    }
}

/// A finished [`CompactionJob`]: cleaned segment files waiting for
/// [`Log::finish_compaction`]. Dropping it deletes them.
#[derive(Debug)]
pub struct PreparedCompaction {
    /// The job's segments `[0, end)`, to check they are still the log's.
    planned: Vec<Arc<SegmentShared>>,
    outputs: Outputs,
    stats: CompactionStats,
    min_horizon: Option<i64>,
    truncations: u64,
    _guard: JobGuard,
}

impl PreparedCompaction {
    /// The statistics the pass will report if it is applied.
    pub fn stats(&self) -> &CompactionStats {
        &self.stats
    }
}

impl CompactionJob {
    /// Step 2 of a pass: builds the offset map and writes a `.cleaned` file
    /// for every segment whose content changes. Reads only the job's
    /// snapshot of segments; touches nothing the log or its readers use.
    pub fn run(self) -> Result<PreparedCompaction> {
        let mut stats = CompactionStats {
            first_dirty_offset: self.first_dirty,
            cleaned_up_to: self.first_dirty,
            ..CompactionStats::default()
        };
        let producers = Producers::scan(&self.segments)?;
        let mut map = OffsetMap::default();
        // With nothing dirty the pass still runs over the clean segments, to
        // drop tombstones whose delete horizon has passed.
        let mut end_seg = self.end_seg;
        for i in self.first_dirty_seg..self.end_seg {
            if i > self.first_dirty_seg && map.bytes >= self.params.max_offset_map_bytes {
                end_seg = i;
                break;
            }
            let (shared, size) = &self.segments[i];
            map.add_segment(shared, *size, self.first_dirty, &producers, self.params.max_decompressed_batch_bytes)?;
        }
        // `end_seg` < the segment count: the active segment is never in range.
        let end_offset = self
            .segments
            .get(end_seg)
            .map_or(self.log_end_offset, |(s, _)| s.base_offset)
            .max(self.first_dirty);
        stats.keys_in_map = map.map.len();
        let mut filter = Filter {
            map: &map,
            producers: &producers,
            params: &self.params,
            now_ms: self.now_ms,
            tombstone_removal: true,
            min_horizon: None,
        };
        let mut outputs = Outputs::default();
        for i in 0..end_seg {
            if let Some(out) = self.clean_segment(i, &mut filter, &mut stats)? {
                outputs.0.push(out);
            }
        }
        stats.cleaned_up_to = end_offset;
        let min_horizon = filter.min_horizon;
        Ok(PreparedCompaction {
            planned: self.segments[..end_seg].iter().map(|(s, _)| Arc::clone(s)).collect(),
            outputs,
            stats,
            min_horizon,
            truncations: self.truncations,
            _guard: self.guard,
        })
    }

    /// Filters snapshot segment `i` into a `.cleaned` file if it changes.
    fn clean_segment(&self, i: usize, filter: &mut Filter<'_>, stats: &mut CompactionStats) -> Result<Option<Output>> {
        let (shared, size) = &self.segments[i];
        let (shared, size) = (Arc::clone(shared), *size);
        let base = shared.base_offset;
        stats.segments_scanned += 1;
        stats.bytes_before += size;

        // Dry run: stop at the first batch that would change, so unchanged
        // segments (most of the clean part) cost a read and no write.
        let tombstone_removal = filter.tombstone_removal;
        let mut changes = false;
        let mut dry = Removed::default();
        for_each_batch(&shared, size, |batch| {
            changes = !matches!(filter.decide(&batch, &mut dry), Decision::Keep);
            Ok(!changes)
        })?;
        if !changes {
            stats.bytes_after += size;
            stats.undecodable_batches += dry.undecodable;
            return Ok(None);
        }
        filter.tombstone_removal = tombstone_removal;

        let cleaned = self.dir.join(format!("{}.cleaned", file_name(base, "log")));
        // Registered first so an error below removes the partial file.
        let mut pending = Outputs(vec![Output {
            position: i,
            cleaned: cleaned.clone(),
            delete: false,
        }]);
        let file = File::create(&cleaned).map_err(Error::io("create cleaned segment", &cleaned))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut written = 0u64;
        for_each_batch(&shared, size, |batch| {
            let mut removed = Removed::default();
            let bytes = match filter.decide(&batch, &mut removed) {
                Decision::Keep => Some(batch.into_bytes()),
                Decision::Rewrite(b) => Some(b),
                Decision::Drop => {
                    stats.batches_removed += 1;
                    None
                }
            };
            stats.records_removed += removed.records;
            stats.tombstones_removed += removed.tombstones;
            stats.undecodable_batches += removed.undecodable;
            if let Some(b) = bytes {
                out.write_all(&b).map_err(Error::io("write cleaned segment", &cleaned))?;
                written += b.len() as u64;
            }
            Ok(true)
        })?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io("write cleaned segment", &cleaned)(e.into_error()))?;
        file.sync_all().map_err(Error::io("fsync cleaned segment", &cleaned))?;
        drop(file);
        failpoint!(CleanedWritten, self.dir);
        stats.segments_cleaned += 1;
        stats.bytes_after += written;
        let mut output = pending.0.pop().expect("registered above");
        output.delete = written == 0 && i > 0;
        Ok(Some(output))
    }
}
