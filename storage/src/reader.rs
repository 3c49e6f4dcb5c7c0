//! [`LogReader`]: lock-free-for-the-writer reads of a partition log.
//!
//! A reader holds an `Arc` to the log's shared state. Each call takes a
//! snapshot of the segment list (an `Arc<Vec<..>>` cloned under a read lock
//! that is held only for the clone), then reads with positional reads
//! (`pread`) below each segment's published end, so it never sees bytes that
//! are not fully written and never waits for the writer's append.

use std::fs::File;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use klamm_protocol::records::{Compression, RecordBatch, TimestampType};

use crate::batch_header::{BatchHeader, HEADER_SIZE};
use crate::error::{Error, Result};
use crate::segment::{read_full, read_lock, write_lock, SegmentShared};

pub(crate) type SegmentList = Arc<Vec<Arc<SegmentShared>>>;

/// State the writer publishes to readers.
#[derive(Debug)]
pub(crate) struct LogShared {
    segments: RwLock<SegmentList>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
}

impl LogShared {
    pub fn new(segments: SegmentList, log_start_offset: i64, log_end_offset: i64) -> LogShared {
        LogShared {
            segments: RwLock::new(segments),
            log_start_offset: AtomicI64::new(log_start_offset),
            log_end_offset: AtomicI64::new(log_end_offset),
        }
    }
    pub fn publish_segments(&self, segments: SegmentList) {
        *write_lock(&self.segments) = segments;
    }
    pub fn publish_log_end_offset(&self, offset: i64) {
        self.log_end_offset.store(offset, Ordering::Release);
    }
    pub fn publish_log_start_offset(&self, offset: i64) {
        self.log_start_offset.store(offset, Ordering::Release);
    }
    fn snapshot(&self) -> SegmentList {
        Arc::clone(&read_lock(&self.segments))
    }
}

/// The outcome of [`LogReader::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, ready to send without re-encoding. Empty when nothing
    /// is readable below the bound.
    pub bytes: Bytes,
    /// Base offset of the first returned batch (may be below the requested
    /// offset: the batch containing it is returned whole).
    pub first_batch_offset: Option<i64>,
    /// Offset after the last returned batch, or the requested offset when empty.
    pub next_offset: i64,
    /// Log start offset when the read began.
    pub log_start_offset: i64,
    /// Log end offset when the read began.
    pub log_end_offset: i64,
}

/// Whole batches in one segment file, found by [`LogReader::read_region`]:
/// what a fetch response carries, to be sent straight from the file.
///
/// The region keeps its segment's file open, so retention or compaction
/// removing the segment meanwhile does not affect it. A truncation that
/// shortens the file before the bytes are sent does: [`FileRegion::read`]
/// then fails, and a `sendfile` comes up short (the caller must close the
/// connection, as Kafka does when a log shrinks under a send).
#[derive(Debug, Clone)]
pub struct FileRegion {
    segment: Arc<SegmentShared>,
    position: u64,
    len: usize,
    generation: u64,
    first_batch_offset: i64,
    log_start_offset: i64,
}

impl FileRegion {
    /// The segment file.
    pub fn file(&self) -> &File {
        &self.segment.file
    }
    /// Where the batches start in the file.
    pub fn position(&self) -> u64 {
        self.position
    }
    /// Bytes of whole batches.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Always false: a region holds at least one batch.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Base offset of the first batch.
    pub fn first_batch_offset(&self) -> i64 {
        self.first_batch_offset
    }
    /// Reads the region into memory (for a transport that cannot send from a
    /// file). Fails if the segment was truncated since the region was found.
    pub fn read(&self) -> Result<Bytes> {
        let bytes = read_full(&self.segment.file, &self.segment.log_path, self.position, self.len)?;
        if bytes.len() != self.len || self.segment.generation() != self.generation {
            return Err(Error::Truncated { path: self.segment.log_path.clone() });
        }
        Ok(bytes)
    }
}

/// A cheap, clonable, `Send + Sync` handle for reading a log while its
/// writer appends. Obtain one with [`crate::Log::reader`].
#[derive(Debug, Clone)]
pub struct LogReader {
    shared: Arc<LogShared>,
}

impl LogReader {
    pub(crate) fn new(shared: Arc<LogShared>) -> LogReader {
        LogReader { shared }
    }

    pub fn log_start_offset(&self) -> i64 {
        self.shared.log_start_offset.load(Ordering::Acquire)
    }
    pub fn log_end_offset(&self) -> i64 {
        self.shared.log_end_offset.load(Ordering::Acquire)
    }

    /// Reads whole batches starting with the one that contains `start_offset`
    /// into memory: [`LogReader::read_region`], then [`FileRegion::read`].
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        upper_bound_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult> {
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        let empty = ReadResult {
            bytes: Bytes::new(),
            first_batch_offset: None,
            next_offset: start_offset,
            log_start_offset,
            log_end_offset,
        };
        let Some(region) = self.read_region(start_offset, max_bytes, upper_bound_offset, min_one_batch)? else {
            return Ok(empty);
        };
        let Ok(bytes) = region.read() else {
            // Truncated while we read: report nothing; the caller retries with fresh state.
            return Ok(empty);
        };
        let (_, next_offset) = whole_batches(&bytes, i64::MAX);
        Ok(ReadResult {
            bytes,
            first_batch_offset: Some(region.first_batch_offset),
            next_offset,
            log_start_offset: region.log_start_offset,
            log_end_offset,
        })
    }

    /// Finds the whole batches to return for a read starting with the batch
    /// that contains `start_offset`, without reading them: a [`FileRegion`]
    /// of one segment file, sent as it is (`sendfile`) or read with
    /// [`FileRegion::read`].
    ///
    /// - Batches whose last offset is >= `upper_bound_offset` (high watermark
    ///   for consumers, log end offset for followers) are not included.
    /// - At most `max_bytes` are included, except that with `min_one_batch`
    ///   the first batch is included whole even if larger (KIP-74).
    /// - One call covers one segment.
    /// - `start_offset` below the log start offset or above the log end
    ///   offset fails with [`Error::OffsetBelowLogStart`] /
    ///   [`Error::OffsetAboveLogEnd`]; `start_offset == log_end_offset`, or a
    ///   truncation racing with the call, gives `None`.
    pub fn read_region(
        &self,
        start_offset: i64,
        max_bytes: usize,
        upper_bound_offset: i64,
        min_one_batch: bool,
    ) -> Result<Option<FileRegion>> {
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        if start_offset < log_start_offset {
            return Err(Error::OffsetBelowLogStart {
                offset: start_offset,
                log_start_offset,
            });
        }
        if start_offset > log_end_offset {
            return Err(Error::OffsetAboveLogEnd {
                offset: start_offset,
                log_end_offset,
            });
        }
        let bound = upper_bound_offset.min(log_end_offset);
        if start_offset >= bound {
            return Ok(None);
        }
        let segments = self.shared.snapshot();
        // The writer publishes a higher log start before dropping segments.
        let log_start_offset = self.log_start_offset();
        if start_offset < log_start_offset {
            return Err(Error::OffsetBelowLogStart {
                offset: start_offset,
                log_start_offset,
            });
        }
        let first = segments
            .partition_point(|s| s.base_offset <= start_offset)
            .saturating_sub(1);
        for seg in &segments[first..] {
            if seg.base_offset >= bound {
                break;
            }
            let (generation, committed) = seg.state();
            let raced = || seg.generation() != generation;
            let found = match seg.find_batch(start_offset, committed) {
                // A truncation raced with us: report nothing rather than an error.
                Err(_) if raced() => return Ok(None),
                other => other?,
            };
            let Some((pos, header)) = found else {
                continue;
            };
            if header.last_offset() >= bound {
                return Ok(None);
            }
            let first_size = header.size as usize;
            if first_size > max_bytes && !min_one_batch {
                return Ok(None);
            }
            // Where the batches below the bound end in this segment.
            let below_bound_end = match seg.find_batch(bound, committed) {
                Err(_) if raced() => return Ok(None),
                other => other?.map_or(committed, |(p, _)| p),
            };
            let limit = below_bound_end.min(pos + max_bytes.max(first_size) as u64);
            let end = if limit == below_bound_end {
                limit
            } else {
                match seg.batch_boundary_at_or_before(pos, limit) {
                    Err(_) if raced() => return Ok(None),
                    other => other?.max(pos + first_size as u64),
                }
            };
            if raced() {
                return Ok(None);
            }
            return Ok(Some(FileRegion {
                segment: Arc::clone(seg),
                position: pos,
                len: (end - pos) as usize,
                generation,
                first_batch_offset: header.base_offset,
                log_start_offset,
            }));
        }
        Ok(None)
    }

    /// The aborted transactions that overlap `[start, upper_bound)` (their
    /// ABORT marker at or after `start`, their first batch below
    /// `upper_bound`), ordered by marker: what a read_committed fetch from
    /// `start` returns as `aborted_transactions`. Segments whose markers all
    /// lie below `start` are skipped; the later ones are all looked at, since
    /// a transaction that began below the bound may end far above it.
    pub fn collect_aborted(&self, start: i64, upper_bound: i64) -> Vec<crate::AbortedTxn> {
        let segments = self.shared.snapshot();
        let first = segments.partition_point(|s| s.base_offset <= start).saturating_sub(1);
        let mut out = Vec::new();
        for s in &segments[first..] {
            crate::segment::read_lock(&s.txn_index).collect(start, upper_bound, &mut out);
        }
        out
    }

    /// Base offset of the first segment that may hold a batch with a max
    /// timestamp >= `timestamp` (its own max timestamp is at least that, or
    /// unknown), never below the log start offset; the log end offset if no
    /// segment qualifies. Everything before it is older than `timestamp`.
    pub fn first_offset_possibly_since(&self, timestamp: i64) -> i64 {
        let log_start = self.log_start_offset();
        let segments = self.shared.snapshot();
        segments
            .iter()
            .find(|s| s.max_timestamp().map_or(true, |(max, _)| max >= timestamp))
            .map_or(self.log_end_offset(), |s| s.base_offset.max(log_start))
    }

    /// Finds the first record with timestamp >= `timestamp` (ListOffsets by
    /// time): the first batch whose max timestamp is >= `timestamp`, then
    /// the first record in it at or after that time. Returns (offset,
    /// record timestamp). For LogAppendTime batches every record has the
    /// batch's max timestamp; for compressed batches (not decoded yet) the
    /// batch base offset and max timestamp are returned.
    pub fn lookup_by_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let log_start_offset = self.log_start_offset();
        let segments = self.shared.snapshot();
        for seg in segments.iter() {
            match seg.max_timestamp() {
                Some((max, _)) if max >= timestamp => {}
                _ => continue,
            }
            let committed = seg.committed();
            let scan_from = read_lock(&seg.time_index)
                .lookup(timestamp)
                .unwrap_or(seg.base_offset);
            let Some((mut pos, _)) = seg.find_batch(scan_from, committed)? else {
                continue;
            };
            while let Some(h) = seg.read_header(pos, committed)? {
                if h.max_timestamp >= timestamp && h.last_offset() >= log_start_offset {
                    if let Some((offset, ts)) = record_at_or_after(seg, pos, &h, timestamp)? {
                        return Ok(Some((offset.max(log_start_offset), ts)));
                    }
                }
                pos += u64::from(h.size);
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp in the log (ListOffsets -3):
    /// (offset, timestamp), the earliest such record on ties; `None` if no
    /// batch carries a timestamp.
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        let segments = self.shared.snapshot();
        let mut best: Option<(&Arc<SegmentShared>, i64, i64)> = None;
        for seg in segments.iter() {
            if let Some((ts, offset)) = seg.max_timestamp() {
                if ts > best.map_or(-1, |(_, b, _)| b) {
                    best = Some((seg, ts, offset));
                }
            }
        }
        let Some((seg, ts, batch_offset)) = best else {
            return Ok(None);
        };
        let committed = seg.committed();
        let Some((pos, h)) = seg.find_batch(batch_offset, committed)? else {
            return Ok(Some((batch_offset, ts)));
        };
        Ok(record_at_or_after(seg, pos, &h, ts)?.or(Some((batch_offset, ts))))
    }
}

/// Length of the prefix of `chunk` made of whole batches whose last offset
/// is below `bound`, and the offset after the last of them.
fn whole_batches(chunk: &[u8], bound: i64) -> (usize, i64) {
    let mut at = 0usize;
    let mut next = 0i64;
    while chunk.len() - at >= HEADER_SIZE {
        let Ok(h) = BatchHeader::parse(&chunk[at..]) else {
            break;
        };
        if h.last_offset() >= bound || at + h.size as usize > chunk.len() {
            break;
        }
        at += h.size as usize;
        next = h.next_offset();
    }
    (at, next)
}

/// Within the batch at `pos`, the first record with timestamp >= `timestamp`.
fn record_at_or_after(
    seg: &SegmentShared,
    pos: u64,
    h: &BatchHeader,
    timestamp: i64,
) -> Result<Option<(i64, i64)>> {
    let Some(batch) = seg.read_batch(pos, h)? else {
        return Ok(None);
    };
    Ok(Some(first_record_at_or_after(&batch, timestamp)))
}

fn first_record_at_or_after(batch: &RecordBatch, timestamp: i64) -> (i64, i64) {
    let fallback = (batch.base_offset(), batch.max_timestamp());
    if batch.compression() != Ok(Compression::None) {
        return fallback;
    }
    let log_append = batch.timestamp_type() == TimestampType::LogAppendTime;
    for record in batch.records() {
        let Ok(record) = record else {
            return fallback;
        };
        let ts = if log_append {
            batch.max_timestamp()
        } else {
            record.timestamp(batch.base_timestamp())
        };
        if ts >= timestamp {
            return (record.offset(batch.base_offset()), ts);
        }
    }
    fallback
}
