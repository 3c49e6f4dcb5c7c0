//! The crash-safe swap of compacted segments into the log, its recovery
//! on open, and the cleaner checkpoint (`cleaner-offset-checkpoint`).
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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use super::{CompactionStats, PreparedCompaction};
use crate::checkpoint::{read_checkpoint, sync_dir, write_checkpoint};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::segment::{file_name, Segment};

/// The cleaner checkpoint in the partition directory: the first dirty offset.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

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

pub(super) fn remove_if_exists(path: &Path) -> Result<()> {
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

impl Log {
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
        crate::txn_index::drop_entries_without_markers(&seg.shared)?;
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
