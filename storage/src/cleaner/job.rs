//! The heavy part of a compaction pass, detached from the [`Log`]: builds
//! the offset map and writes a `.cleaned` file per changed segment, reading
//! only a snapshot of segment handles.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::warn;

use super::filter::{Decision, Filter, Removed};
use super::offset_map::{OffsetMap, Producers};
use super::swap::remove_if_exists;
use super::{for_each_batch, CompactionParams, CompactionStats};
use crate::error::{Error, Result};
#[cfg(doc)]
use crate::log::Log;
use crate::segment::{file_name, SegmentShared};

/// Clears the log's "job in flight" flag when the job (or its prepared
/// output) is finished or dropped.
#[derive(Debug)]
pub(super) struct JobGuard(pub(super) Arc<AtomicBool>);

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
    pub(super) dir: PathBuf,
    pub(super) params: CompactionParams,
    pub(super) now_ms: i64,
    /// Every segment at begin (the last one active) and its size then.
    pub(super) segments: Vec<(Arc<SegmentShared>, u64)>,
    pub(super) log_end_offset: i64,
    pub(super) first_dirty: i64,
    pub(super) first_dirty_seg: usize,
    pub(super) end_seg: usize,
    pub(super) truncations: u64,
    pub(super) guard: JobGuard,
}

/// One segment's compaction output, not yet swapped in.
#[derive(Debug)]
pub(super) struct Output {
    /// Index of the source segment in the job's snapshot.
    pub(super) position: usize,
    pub(super) cleaned: PathBuf,
    /// Nothing survived and the segment is not the first: delete it.
    pub(super) delete: bool,
}

/// `.cleaned` files not swapped in yet; deleted if dropped unused.
#[derive(Debug, Default)]
pub(super) struct Outputs(pub(super) Vec<Output>);

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
    pub(super) planned: Vec<Arc<SegmentShared>>,
    pub(super) outputs: Outputs,
    pub(super) stats: CompactionStats,
    pub(super) min_horizon: Option<i64>,
    pub(super) truncations: u64,
    pub(super) _guard: JobGuard,
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

