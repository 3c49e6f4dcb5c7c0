//! One segment: a `.log` file of whole batches plus its `.index` and
//! `.timeindex`.
//!
//! A segment is split in two: [`SegmentShared`] (behind an `Arc`) is what
//! readers see — the file handle, the published end position and the
//! indexes — and [`Segment`] adds the writer's bookkeeping. Readers read only
//! below `committed`, which the writer stores (Release) after the bytes are
//! written and before adding index entries that point at them.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::{Bytes, BytesMut};
use klamm_protocol::records::RecordBatch;
use tracing::{debug, warn};

use crate::batch_header::{BatchHeader, HEADER_SIZE};
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::offset_index::OffsetIndex;
use crate::time_index::TimeIndex;
use crate::txn_index::TxnIndex;

/// `<base_offset as 20 digits>.<ext>`.
pub(crate) fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

pub(crate) fn read_lock<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub(crate) fn write_lock<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads up to `len` bytes at `pos`, stopping early only at end of file.
pub(crate) fn read_full(file: &File, path: &Path, pos: u64, len: usize) -> Result<Bytes> {
    let mut buf = BytesMut::zeroed(len);
    let mut done = 0usize;
    while done < len {
        match file.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path)(e)),
        }
    }
    buf.truncate(done);
    Ok(buf.freeze())
}

/// The part of a segment readers share.
#[derive(Debug)]
pub(crate) struct SegmentShared {
    pub base_offset: i64,
    pub log_path: PathBuf,
    pub file: File,
    /// `generation << 32 | committed`: `committed` is the end of the whole
    /// batches readers may read (positions fit in u32); `generation` is bumped
    /// by every truncation, in the same store that lowers `committed`, so a
    /// reader that loads both at once and re-checks the generation after its
    /// read can tell whether the bytes it read may have been replaced.
    state: AtomicU64,
    pub offset_index: RwLock<OffsetIndex>,
    pub time_index: RwLock<TimeIndex>,
    /// Aborted transactions whose ABORT marker is in this segment.
    pub txn_index: RwLock<TxnIndex>,
    max_timestamp: AtomicI64,
    offset_of_max_timestamp: AtomicI64,
}

impl SegmentShared {
    /// fsyncs the log file and msyncs both indexes (a segment's flush, also
    /// run by [`crate::RolledFlush`] without the log).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(Error::io("fsync segment", &self.log_path))?;
        read_lock(&self.offset_index).file().flush()?;
        read_lock(&self.time_index).file().flush()?;
        read_lock(&self.txn_index).sync()?;
        Ok(())
    }

    /// (generation, committed) read together; see the field doc.
    pub fn state(&self) -> (u64, u64) {
        let s = self.state.load(Ordering::SeqCst);
        (s >> 32, s & 0xffff_ffff)
    }
    /// Bytes of whole batches readers may read.
    pub fn committed(&self) -> u64 {
        self.state().1
    }
    /// Truncation counter; see the field doc.
    pub fn generation(&self) -> u64 {
        self.state().0
    }
    /// Writer: publishes a new end of whole batches (same generation).
    fn publish_committed(&self, committed: u64) {
        assert!(committed <= u64::from(u32::MAX), "segment position beyond u32");
        let generation = self.generation();
        self.state.store((generation << 32) | committed, Ordering::SeqCst);
    }
    /// Writer: lowers the end for a truncation, bumping the generation.
    fn publish_truncation(&self, committed: u64) {
        assert!(committed <= u64::from(u32::MAX), "segment position beyond u32");
        let generation = (self.generation() + 1) & 0xffff_ffff;
        self.state.store((generation << 32) | committed, Ordering::SeqCst);
    }
    /// Largest batch max timestamp in the segment and the base offset of the
    /// first batch that has it; `None` if no batch carries a timestamp.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let offset = self.offset_of_max_timestamp.load(Ordering::Acquire);
        let ts = self.max_timestamp.load(Ordering::Acquire);
        (ts >= 0 && offset >= 0).then_some((ts, offset))
    }

    /// Reads the header of the batch at `pos`, if a whole header lies below `end`.
    pub fn read_header(&self, pos: u64, end: u64) -> Result<Option<BatchHeader>> {
        if pos + HEADER_SIZE as u64 > end {
            return Ok(None);
        }
        let mut buf = [0u8; HEADER_SIZE];
        match self.file.read_exact_at(&mut buf, pos) {
            Ok(()) => {}
            // Concurrent truncation: treat as end of segment.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io("read batch header", &self.log_path)(e)),
        }
        match BatchHeader::parse(&buf) {
            Ok(h) if pos + u64::from(h.size) <= end => Ok(Some(h)),
            Ok(_) => Ok(None),
            Err(reason) => Err(Error::Corrupt {
                path: self.log_path.clone(),
                position: pos,
                reason: reason.to_owned(),
            }),
        }
    }

    /// Finds the first batch whose last offset is >= `target`, scanning from
    /// the offset index's floor entry; `None` if no such batch lies below `end`.
    pub fn find_batch(&self, target: i64, end: u64) -> Result<Option<(u64, BatchHeader)>> {
        let (_, pos) = read_lock(&self.offset_index).lookup(target);
        let mut pos = u64::from(pos);
        if pos >= end {
            // An index entry newer than our view of `committed`: scan from the start.
            pos = 0;
        }
        while let Some(h) = self.read_header(pos, end)? {
            if h.last_offset() >= target {
                return Ok(Some((pos, h)));
            }
            pos += u64::from(h.size);
        }
        Ok(None)
    }

    /// The end of the last whole batch that starts at or after `from` and ends
    /// at or before `limit` (both batch boundaries or positions inside the
    /// segment's readable part), or `from` if the first batch is longer.
    /// Walks headers from the offset index's floor entry, so a few header
    /// reads at most.
    pub fn batch_boundary_at_or_before(&self, from: u64, limit: u64) -> Result<u64> {
        let mut pos = read_lock(&self.offset_index).floor_position(limit).max(from);
        if pos > limit {
            pos = from;
        }
        while let Some(h) = self.read_header(pos, limit)? {
            pos += u64::from(h.size);
        }
        Ok(pos)
    }

    /// Reads the whole batch at `pos` as a [`RecordBatch`].
    pub fn read_batch(&self, pos: u64, header: &BatchHeader) -> Result<Option<RecordBatch>> {
        let bytes = read_full(&self.file, &self.log_path, pos, header.size as usize)?;
        Ok(RecordBatch::parse(bytes).ok().map(|(b, _)| b))
    }
}

/// Why a scan stopped before the end of the file.
pub(crate) type ScanStop = Option<String>;

/// Walks the batches of a log file from position 0 up to `file_len`, calling
/// `visit(position, header)` for each batch that passes the checks (framing,
/// magic, increasing offsets within u32 of `base_offset`, and with
/// `validate_crc` the CRC and header counts). Returns the end of the valid
/// prefix and why the scan stopped early, if it did. I/O errors are returned
/// as errors, never as "corruption".
pub(crate) fn scan_batches(
    file: &File,
    path: &Path,
    base_offset: i64,
    file_len: u64,
    validate_crc: bool,
    mut visit: impl FnMut(u64, &BatchHeader),
) -> Result<(u64, ScanStop)> {
    const CHUNK: usize = 4 << 20;
    let mut pos = 0u64;
    let mut expected_min = base_offset;
    let mut pending = 0usize;
    while pos < file_len {
        let want = CHUNK.max(pending).min((file_len - pos) as usize);
        let chunk = read_full(file, path, pos, want)?;
        if chunk.len() < want {
            return Ok((pos, Some("file shorter than its length".into())));
        }
        let mut at = 0usize;
        loop {
            let rest = &chunk[at..];
            if rest.is_empty() {
                break;
            }
            let here = pos + at as u64;
            if rest.len() < HEADER_SIZE {
                if here + rest.len() as u64 == file_len {
                    return Ok((here, Some("torn batch header at end of file".into())));
                }
                pending = HEADER_SIZE;
                break;
            }
            let h = match BatchHeader::parse(rest) {
                Ok(h) => h,
                Err(reason) => return Ok((here, Some(reason.to_owned()))),
            };
            if h.base_offset < expected_min {
                return Ok((here, Some(format!(
                    "batch base offset {} below expected {expected_min}",
                    h.base_offset
                ))));
            }
            if h.last_offset() - base_offset > i64::from(u32::MAX)
                || here + u64::from(h.size) > u64::from(u32::MAX)
            {
                return Ok((here, Some("batch beyond segment addressing range".into())));
            }
            if here + u64::from(h.size) > file_len {
                return Ok((here, Some("torn batch at end of file".into())));
            }
            if (h.size as usize) > rest.len() {
                pending = h.size as usize;
                break;
            }
            if validate_crc {
                let bytes = chunk.slice(at..at + h.size as usize);
                let checked = RecordBatch::parse(bytes).and_then(|(b, _)| b.validate_header());
                if let Err(e) = checked {
                    return Ok((here, Some(e.to_string())));
                }
            }
            visit(here, &h);
            expected_min = h.next_offset();
            at += h.size as usize;
        }
        pos += at as u64;
    }
    Ok((pos, None))
}

/// Writer-side state of one segment.
#[derive(Debug)]
pub(crate) struct Segment {
    pub shared: Arc<SegmentShared>,
    size: u64,
    next_offset: i64,
    bytes_since_index: u64,
    first_batch_time_ms: Option<i64>,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    dirty: bool,
    sealed: bool,
}

fn open_log_file(path: &Path, create_new: bool) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    if create_new {
        opts.create(true).truncate(true);
    }
    opts.open(path).map_err(Error::io("open segment", path))
}

impl Segment {
    fn from_parts(
        base_offset: i64,
        log_path: PathBuf,
        file: File,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
        txn_index: TxnIndex,
    ) -> Segment {
        Segment {
            shared: Arc::new(SegmentShared {
                base_offset,
                log_path,
                file,
                state: AtomicU64::new(0),
                offset_index: RwLock::new(offset_index),
                time_index: RwLock::new(time_index),
                txn_index: RwLock::new(txn_index),
                max_timestamp: AtomicI64::new(-1),
                offset_of_max_timestamp: AtomicI64::new(-1),
            }),
            size: 0,
            next_offset: base_offset,
            bytes_since_index: 0,
            first_batch_time_ms: None,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            dirty: false,
            sealed: false,
        }
    }

    /// Creates an empty active segment (replacing any files of that name).
    pub fn create(dir: &Path, base_offset: i64, config: &LogConfig) -> Result<Segment> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let file = open_log_file(&log_path, true)?;
        let oi = OffsetIndex::create(
            &dir.join(file_name(base_offset, "index")),
            base_offset,
            config.offset_index_entries(),
        )?;
        let ti = TimeIndex::create(
            &dir.join(file_name(base_offset, "timeindex")),
            base_offset,
            config.time_index_entries(),
        )?;
        let txn = TxnIndex::create(dir.join(file_name(base_offset, "txnindex")))?;
        debug!(base_offset, "created segment");
        Ok(Segment::from_parts(base_offset, log_path, file, oi, ti, txn))
    }

    /// Opens a sealed segment of a cleanly shut down log, trusting its
    /// indexes if they pass the sanity checks. `Ok(None)` means "recover it".
    pub fn open_trusted(dir: &Path, base_offset: i64) -> Result<Option<Segment>> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let file = open_log_file(&log_path, false)?;
        let file_len = file.metadata().map_err(Error::io("stat segment", &log_path))?.len();
        let index_path = dir.join(file_name(base_offset, "index"));
        let time_path = dir.join(file_name(base_offset, "timeindex"));
        if !index_path.exists() || !time_path.exists() || file_len > u64::from(u32::MAX) {
            return Ok(None);
        }
        let (oi, ti) = match (
            OffsetIndex::open_trimmed(&index_path, base_offset),
            TimeIndex::open_trimmed(&time_path, base_offset),
        ) {
            (Ok(oi), Ok(ti)) => (oi, ti),
            _ => return Ok(None),
        };
        if let Err(reason) = oi.sanity_check(file_len) {
            warn!(path = %index_path.display(), %reason, "offset index failed sanity check");
            return Ok(None);
        }
        // A damaged transaction index is rebuilt by recovering the segment.
        let Some(txn) = TxnIndex::load(dir.join(file_name(base_offset, "txnindex")), base_offset)? else {
            return Ok(None);
        };
        let mut seg = Segment::from_parts(base_offset, log_path, file, oi, ti, txn);
        seg.sealed = true;
        seg.size = file_len;
        seg.shared.publish_committed(file_len);
        // Walk the headers after the last index entry to find the end offset
        // and to check that the file ends on a batch boundary.
        let (start_offset, start_pos) = read_lock(&seg.shared.offset_index)
            .last_entry()
            .unwrap_or((base_offset, 0));
        let mut pos = u64::from(start_pos);
        let mut next = base_offset;
        let mut first = true;
        while pos < file_len {
            let h = match seg.shared.read_header(pos, file_len) {
                Ok(Some(h)) => h,
                _ => return Ok(None),
            };
            if (first && start_pos > 0 && h.base_offset != start_offset) || h.base_offset < next {
                return Ok(None);
            }
            first = false;
            next = h.next_offset();
            pos += u64::from(h.size);
        }
        seg.next_offset = next;
        if let Err(reason) = read_lock(&seg.shared.time_index).sanity_check(next) {
            warn!(base_offset, %reason, "time index failed sanity check");
            return Ok(None);
        }
        let last_time_entry = read_lock(&seg.shared.time_index).last_entry();
        if let Some((ts, off)) = last_time_entry {
            seg.set_max_timestamp(ts, off);
        }
        // Older segments are not indexed further; the interval counter is irrelevant.
        Ok(Some(seg))
    }

    /// Opens the segment's log, validates every batch, truncates a corrupt or
    /// torn tail, and rebuilds both indexes. Returns the segment (active
    /// capacity) and the reason it was truncated, if it was.
    pub fn recover(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
    ) -> Result<(Segment, ScanStop)> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let file = open_log_file(&log_path, false)?;
        let file_len = file.metadata().map_err(Error::io("stat segment", &log_path))?.len();
        let oi = OffsetIndex::create(
            &dir.join(file_name(base_offset, "index")),
            base_offset,
            config.offset_index_entries(),
        )?;
        let ti = TimeIndex::create(
            &dir.join(file_name(base_offset, "timeindex")),
            base_offset,
            config.time_index_entries(),
        )?;
        // Kept as it is (a compaction swap leaves it valid); log recovery
        // rebuilds it from the batches (`Log::rebuild_txn_index`).
        let txn_path = dir.join(file_name(base_offset, "txnindex"));
        let txn = match TxnIndex::load(txn_path.clone(), base_offset)? {
            Some(t) => t,
            None => TxnIndex::create(txn_path)?,
        };
        let mut seg = Segment::from_parts(base_offset, log_path, file, oi, ti, txn);
        let stop = seg.rebuild(file_len, true, config)?;
        if let Some(reason) = &stop {
            warn!(
                path = %seg.shared.log_path.display(),
                valid_bytes = seg.size,
                file_len,
                %reason,
                "truncating corrupt or torn segment tail"
            );
            seg.shared
                .file
                .set_len(seg.size)
                .map_err(Error::io("truncate segment", &seg.shared.log_path))?;
            seg.dirty = true;
        }
        // Like Kafka, a reopened segment ages from its first batch's timestamp.
        if let Some(ts) = seg.first_batch_max_timestamp()?.filter(|&ts| ts >= 0) {
            seg.first_batch_time_ms = Some(ts);
        }
        Ok((seg, stop))
    }

    fn first_batch_max_timestamp(&self) -> Result<Option<i64>> {
        Ok(self
            .shared
            .read_header(0, self.size)?
            .map(|h| h.max_timestamp))
    }

    /// Rebuilds indexes and bookkeeping by scanning `[0, len)`.
    fn rebuild(&mut self, len: u64, validate_crc: bool, config: &LogConfig) -> Result<ScanStop> {
        write_lock(&self.shared.offset_index).file_mut().truncate_entries(0);
        write_lock(&self.shared.time_index).file_mut().truncate_entries(0);
        self.next_offset = self.shared.base_offset;
        self.bytes_since_index = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.shared.max_timestamp.store(-1, Ordering::Release);
        self.shared.offset_of_max_timestamp.store(-1, Ordering::Release);
        let shared = Arc::clone(&self.shared);
        let mut headers = Vec::new();
        let (valid_end, stop) = scan_batches(
            &shared.file,
            &shared.log_path,
            shared.base_offset,
            len,
            validate_crc,
            |pos, h| headers.push((pos, *h)),
        )?;
        self.size = valid_end;
        self.shared.publish_committed(valid_end);
        for (pos, h) in headers {
            self.index_batch(pos, &h, config)?;
        }
        Ok(stop)
    }

    pub fn base_offset(&self) -> i64 {
        self.shared.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// Offset after the last batch (the base offset when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    fn set_max_timestamp(&mut self, ts: i64, offset: i64) {
        self.max_timestamp = ts;
        self.offset_of_max_timestamp = offset;
        self.shared.offset_of_max_timestamp.store(offset, Ordering::Release);
        self.shared.max_timestamp.store(ts, Ordering::Release);
    }

    /// Updates bookkeeping and indexes for the batch just written at `pos`.
    /// The bookkeeping is always updated; an error means only that an index
    /// entry could not be written (no room on disk for it).
    fn index_batch(&mut self, pos: u64, h: &BatchHeader, config: &LogConfig) -> Result<()> {
        if h.max_timestamp > self.max_timestamp {
            self.set_max_timestamp(h.max_timestamp, h.base_offset);
        }
        let index_due = self.bytes_since_index >= config.index_interval_bytes;
        if index_due {
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += u64::from(h.size);
        self.next_offset = h.next_offset();
        if index_due {
            let mut oi = write_lock(&self.shared.offset_index);
            if oi.file().free() > 0 {
                oi.append(h.base_offset, pos as u32)?;
            }
            drop(oi);
            let mut ti = write_lock(&self.shared.time_index);
            // Keep one slot for the entry written when the segment is sealed.
            if ti.file().free() > 1 {
                ti.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
            }
        }
        Ok(())
    }

    /// Whether appending `bytes` bytes in `batches` batches ending at
    /// `last_offset` needs a new segment first.
    pub fn should_roll(
        &self,
        bytes: u64,
        batches: usize,
        last_offset: i64,
        now_ms: i64,
        config: &LogConfig,
    ) -> bool {
        if self.is_empty() {
            return false;
        }
        let too_big = self.size + bytes > config.segment_bytes || self.size + bytes > u64::from(u32::MAX);
        let too_old = self
            .first_batch_time_ms
            .is_some_and(|t| now_ms.saturating_sub(t) >= config.segment_ms);
        let index_full = read_lock(&self.shared.offset_index).file().free() < batches
            || read_lock(&self.shared.time_index).file().free() < batches + 1;
        let offset_overflow = last_offset - self.base_offset() > i64::from(u32::MAX);
        too_big || too_old || index_full || offset_overflow
    }

    /// Appends pre-checked whole batches (one `pwrite`), then publishes the
    /// new end and indexes them; `headers` frame `buf` (checked by the log).
    ///
    /// Either the batches are appended or nothing is: index room is reserved
    /// on disk first (a full disk fails here, see `index_file.rs`), and a
    /// failed or short write is cut off again before the error is returned.
    pub fn append(&mut self, buf: &[u8], headers: &[BatchHeader], now_ms: i64, config: &LogConfig) -> Result<()> {
        assert!(!self.sealed, "append to a sealed segment");
        write_lock(&self.shared.offset_index).file_mut().reserve(headers.len())?;
        // One more for the entry written when the segment is sealed.
        write_lock(&self.shared.time_index).file_mut().reserve(headers.len() + 1)?;
        let pos = self.size;
        if let Err(e) = self.shared.file.write_all_at(buf, pos) {
            // Readers never look past `committed` (= pos); the cut keeps the
            // file ending on a batch boundary for the next append and a restart.
            if let Err(cut) = self.shared.file.set_len(pos) {
                warn!(path = %self.shared.log_path.display(), error = %cut, "cutting off a failed write failed; the next open recovers the segment");
            }
            return Err(Error::io("write segment", &self.shared.log_path)(e));
        }
        self.size += buf.len() as u64;
        self.dirty = true;
        if self.first_batch_time_ms.is_none() {
            self.first_batch_time_ms = Some(now_ms);
        }
        self.shared.publish_committed(self.size);
        let mut at = pos;
        for h in headers {
            if let Err(e) = self.index_batch(at, h, config) {
                // Room was reserved above, so this is a disk failing in some
                // other way. The batch is written and published; the indexes
                // are sparse, so a missing entry only lengthens a lookup's scan.
                warn!(path = %self.shared.log_path.display(), base_offset = h.base_offset, error = %e, "skipping an index entry that could not be written");
            }
            at += u64::from(h.size);
        }
        Ok(())
    }

    /// Removes every batch whose last offset is >= `offset`. Returns the
    /// base offset of the first removed batch, or `None` if nothing was removed.
    pub fn truncate_to(&mut self, offset: i64, config: &LogConfig) -> Result<Option<i64>> {
        self.unseal(config)?;
        let Some((pos, h)) = self.shared.find_batch(offset, self.size)? else {
            return Ok(None);
        };
        self.shared.publish_truncation(pos);
        self.shared
            .file
            .set_len(pos)
            .map_err(Error::io("truncate segment", &self.shared.log_path))?;
        self.dirty = true;
        let stop = self.rebuild(pos, false, config)?;
        if let Some(reason) = stop {
            // The prefix was valid before; a failure here is a disk problem.
            return Err(Error::Corrupt {
                path: self.shared.log_path.clone(),
                position: self.size,
                reason,
            });
        }
        if self.size == 0 {
            self.first_batch_time_ms = None;
        }
        Ok(Some(h.base_offset))
    }

    /// Writes the final time-index entry and trims both index files.
    pub fn seal(&mut self, flush: bool) -> Result<()> {
        if self.sealed {
            return Ok(());
        }
        {
            let mut ti = write_lock(&self.shared.time_index);
            if self.max_timestamp >= 0 {
                ti.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
            }
            let n = ti.entries();
            ti.file_mut().set_capacity(n)?;
        }
        {
            let mut oi = write_lock(&self.shared.offset_index);
            let n = oi.entries();
            oi.file_mut().set_capacity(n)?;
        }
        self.sealed = true;
        if flush {
            self.flush()?;
        }
        Ok(())
    }

    /// Re-extends the index files so the segment can take appends again.
    pub fn unseal(&mut self, config: &LogConfig) -> Result<()> {
        if !self.sealed {
            return Ok(());
        }
        {
            let mut oi = write_lock(&self.shared.offset_index);
            let capacity = config.offset_index_entries().max(oi.entries());
            oi.file_mut().set_capacity(capacity)?;
        }
        {
            let mut ti = write_lock(&self.shared.time_index);
            let capacity = config.time_index_entries().max(ti.entries() + 1);
            ti.file_mut().set_capacity(capacity)?;
        }
        self.sealed = false;
        // Resume indexing as if the last entry were just written.
        self.bytes_since_index = 0;
        Ok(())
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Notes that the segment's files were fsynced elsewhere (a
    /// [`crate::RolledFlush`] of this sealed segment).
    pub(crate) fn mark_flushed(&mut self) {
        self.dirty = false;
    }

    /// fsyncs the log and msyncs both indexes.
    pub fn flush(&mut self) -> Result<()> {
        self.shared.sync()?;
        self.dirty = false;
        Ok(())
    }

    /// Deletes the segment's files. Readers holding the `Arc` can still read
    /// the unlinked file.
    pub fn delete_files(&self) -> Result<()> {
        let paths = [
            self.shared.log_path.clone(),
            read_lock(&self.shared.offset_index).file().path().to_owned(),
            read_lock(&self.shared.time_index).file().path().to_owned(),
            read_lock(&self.shared.txn_index).path().to_owned(),
        ];
        for p in paths {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete segment file", &p)(e)),
            }
        }
        Ok(())
    }
}
