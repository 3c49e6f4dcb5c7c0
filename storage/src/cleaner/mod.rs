//! Log compaction (Kafka's log cleaner, `cleanup.policy=compact`): the
//! pass itself, its settings and statistics, and the scheduler's checks.
//!
//! Parts live in submodules: `offset_map` (producer scan and the key →
//! latest offset map), `filter` (the per-batch decision and re-encoding
//! through the protocol crate's batch builder), `job` (the detached heavy
//! part of a pass), `swap` (the crash-safe `.cleaned` → `.swap` segment swap
//! and the cleaner checkpoint) and `failpoint` (test-only crash injection).
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
//! # Crash safety
//!
//! Rewritten segments are swapped in through `<base>.log.cleaned` →
//! `<base>.log.swap` → `<base>.log`; the protocol and its recovery are
//! described in `swap.rs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use klamm_protocol::records::RecordBatch;

use crate::batch_header::{BatchHeader, HEADER_SIZE};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::segment::{read_full, SegmentShared};

#[macro_use]
pub(crate) mod failpoint;
mod filter;
mod job;
mod offset_map;
mod swap;
#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use failpoint::Step;
use job::JobGuard;
pub use job::{CompactionJob, PreparedCompaction};
pub use swap::CLEANER_OFFSET_CHECKPOINT;
pub(crate) use swap::{complete_interrupted_swaps, read_cleaner_checkpoint, CleanerCheckpoint};
use swap::write_cleaner_checkpoint;

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

    /// Runs one compaction pass (see the module doc of `cleaner/mod.rs` and
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
}
