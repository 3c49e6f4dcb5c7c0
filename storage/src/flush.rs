//! What is known to be on disk: the background fsync of rolled segments and
//! the recovery point.
//!
//! The recovery point is an offset below which every byte of the log was
//! fsynced. It is persisted in `recovery-point-offset-checkpoint`, so that
//! [`Log::open`] after a crash (no clean-shutdown marker) validates only the
//! segments at or above it, as Kafka does, instead of reading the whole log:
//! days of retained data would otherwise be re-read and re-checksummed on
//! every restart after `kill -9`.
//!
//! Only whole segments are trusted, so the checkpoint is rewritten only when
//! the recovery point passes a segment boundary (a roll's flush, or a flush
//! policy flush that covers a rolled segment), never per append. It is
//! lowered, and written at once, when a truncation cuts below the persisted
//! value: data later appended there is not flushed, and must not be trusted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;

use crate::checkpoint::{read_checkpoint, sync_dir, write_checkpoint};
use crate::error::Result;
use crate::log::Log;
use crate::segment::{Segment, SegmentShared};

/// Checkpoint of the recovery point (one line: the offset).
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";

/// The recovery point persisted in `dir`, or None (missing or unreadable:
/// then every segment is validated after a crash).
pub(crate) fn read_recovery_point(dir: &Path) -> Option<i64> {
    match read_checkpoint(&dir.join(RECOVERY_POINT_CHECKPOINT), 1) {
        Ok(Some(rows)) if rows.len() == 1 && rows[0][0] >= 0 => Some(rows[0][0]),
        Ok(_) => None,
        Err(e) => {
            warn!(error = %e, "ignoring unreadable recovery point checkpoint");
            None
        }
    }
}

/// The fsync of a rolled segment (its log, both indexes and the directory
/// entry of the new one), run by the log's owner without holding the log: a
/// 1 GiB segment takes seconds to reach the disk, and Kafka too flushes a
/// rolled segment in the background. Until it has run, a power loss can lose
/// the segment's tail, which recovery detects (the segment is above the
/// recovery point) and truncates. Once run, [`Log::rolled_flush_done`] moves
/// the recovery point over the segment.
#[derive(Debug)]
pub struct RolledFlush {
    segment: Arc<SegmentShared>,
    dir: PathBuf,
    /// The log's truncation count when the segment was sealed: a truncation
    /// meanwhile may have reopened and rewritten it after the fsync.
    truncations: u64,
}

impl RolledFlush {
    pub(crate) fn of(segment: &Segment, dir: &Path, truncations: u64) -> RolledFlush {
        RolledFlush { segment: Arc::clone(&segment.shared), dir: dir.to_owned(), truncations }
    }

    /// Base offset of the rolled segment.
    pub fn base_offset(&self) -> i64 {
        self.segment.base_offset
    }

    /// fsyncs the segment's files and its directory. Harmless if the segment
    /// was deleted or replaced meanwhile.
    pub fn run(&self) -> Result<()> {
        self.segment.sync()?;
        sync_dir(&self.dir)
    }
}

impl Log {
    /// Every offset below this is on disk.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Records that `flush` ran successfully: if everything before its
    /// segment is flushed, the recovery point moves to the segment's end
    /// (persisted). A segment that compaction replaced meanwhile counts as
    /// flushed (the cleaner fsyncs its output), as does one deleted by
    /// retention or compaction; one that a truncation may have reopened
    /// does not.
    pub fn rolled_flush_done(&mut self, flush: &RolledFlush) -> Result<()> {
        let base = flush.segment.base_offset;
        if flush.truncations != self.truncations || base > self.recovery_point {
            return Ok(());
        }
        let Some(end) = self.segments.iter().map(Segment::base_offset).find(|&b| b > base) else {
            return Ok(()); // the active segment: not sealed now
        };
        if let Some(seg) = self.segments.iter_mut().find(|s| Arc::ptr_eq(&s.shared, &flush.segment)) {
            seg.mark_flushed();
        }
        self.advance_recovery_point(end)
    }

    /// Raises the recovery point to `offset` (everything below it was just
    /// fsynced), persisting it when that trusts another segment.
    pub(crate) fn advance_recovery_point(&mut self, offset: i64) -> Result<()> {
        if offset <= self.recovery_point {
            return Ok(());
        }
        self.recovery_point = offset;
        // Segments are ordered by base offset: look at the first one above the
        // persisted point (a flush per append must not walk every segment).
        let persisted = self.persisted_recovery_point;
        let first_above = self.segments.partition_point(|s| s.base_offset() <= persisted).max(1);
        let passes_a_segment = self.segments.get(first_above).is_some_and(|s| s.base_offset() <= offset);
        if passes_a_segment {
            self.write_recovery_point()?;
        }
        Ok(())
    }

    /// Lowers the recovery point to `offset` after a truncation; persisted
    /// at once if the checkpoint was above it.
    pub(crate) fn lower_recovery_point(&mut self, offset: i64) -> Result<()> {
        self.recovery_point = self.recovery_point.min(offset);
        if self.persisted_recovery_point > offset {
            self.write_recovery_point()?;
        }
        Ok(())
    }

    pub(crate) fn write_recovery_point(&mut self) -> Result<()> {
        write_checkpoint(&self.dir.join(RECOVERY_POINT_CHECKPOINT), &[self.recovery_point.to_string()])?;
        self.persisted_recovery_point = self.recovery_point;
        Ok(())
    }
}
