//! [`Log`]: the writer side of one partition's segmented log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use klamm_protocol::records::{set_base_offset, set_partition_leader_epoch, LOG_OVERHEAD};
use tracing::{info, warn};

use crate::batch_header::BatchHeader;
use crate::checkpoint::{read_checkpoint, sync_dir, write_checkpoint};
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::leader_epoch::{EpochEntry, LeaderEpochCache};
use crate::reader::{LogReader, LogShared, ReadResult};
use crate::flush::RolledFlush;
use crate::segment::Segment;

/// Marker file written by [`Log::close`]; its absence at open means the
/// previous run did not shut down cleanly and every segment is recovered.
pub const CLEAN_SHUTDOWN_MARKER: &str = ".klamm-clean-shutdown";
/// Checkpoint of the log start offset.
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";

/// What an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Base offset of the first appended batch.
    pub base_offset: i64,
    /// Last offset of the last appended batch.
    pub last_offset: i64,
    /// Largest batch max timestamp among the appended batches (-1 if none).
    pub max_timestamp: i64,
    /// Base offset of the (first) batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// Number of batches appended.
    pub batches: usize,
    /// Number of offsets consumed (sum of lastOffsetDelta + 1).
    pub offsets: u64,
    /// Bytes written.
    pub bytes: usize,
    /// Log start offset after the append.
    pub log_start_offset: i64,
}

/// Summary of the batches of one append.
struct Framing {
    batches: usize,
    offsets: u64,
    first_base: i64,
    last_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
}

/// Parses the headers of `buf`, which must be whole magic-2 batches back to
/// back: for the append functions whose callers did not parse the batches.
fn parse_headers(buf: &[u8]) -> Result<Vec<BatchHeader>> {
    let mut headers = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let h = BatchHeader::parse(&buf[at..])
            .map_err(|reason| Error::InvalidBatchFraming { position: at, reason })?;
        headers.push(h);
        at += h.size as usize;
    }
    Ok(headers)
}

/// Checks that `headers` (parsed by the caller) frame `buf` exactly: the
/// index and the segment walk the buffer by these sizes, so each size is
/// compared with the batch's own length field (cheap); the whole header is
/// compared in debug builds.
fn check_framing(buf: &[u8], headers: &[BatchHeader]) -> Result<()> {
    if buf.is_empty() || headers.is_empty() {
        return Err(Error::InvalidBatchFraming {
            position: 0,
            reason: "empty append",
        });
    }
    let mut at = 0usize;
    for h in headers {
        let bad = |reason| Error::InvalidBatchFraming { position: at, reason };
        let end = at
            .checked_add(h.size as usize)
            .filter(|&end| end <= buf.len())
            .ok_or_else(|| bad("batch extends past the buffer"))?;
        let length = buf
            .get(at + 8..at + 12)
            .map(|b| i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])));
        if length != Some(i64::from(h.size) - LOG_OVERHEAD as i64) {
            return Err(bad("batch header does not match the batch"));
        }
        debug_assert_eq!(BatchHeader::parse(&buf[at..]), Ok(*h), "header of the batch at {at}");
        at = end;
    }
    if at != buf.len() {
        return Err(Error::InvalidBatchFraming {
            position: at,
            reason: "bytes after the last batch",
        });
    }
    Ok(())
}

/// Sums up the batches of an append. With `min_base`, also checks that
/// base offsets are >= it and increasing.
fn summarize(headers: &[BatchHeader], min_base: Option<i64>) -> Result<Framing> {
    let mut f = Framing {
        batches: 0,
        offsets: 0,
        first_base: -1,
        last_offset: -1,
        max_timestamp: -1,
        offset_of_max_timestamp: -1,
    };
    let mut expected = min_base;
    for h in headers {
        if let Some(exp) = expected {
            if h.base_offset < exp {
                return Err(Error::NonMonotonicOffset {
                    offset: h.base_offset,
                    expected: exp,
                    log_end_offset: min_base.unwrap_or(exp),
                });
            }
            expected = Some(h.next_offset());
        }
        if f.batches == 0 {
            f.first_base = h.base_offset;
        }
        if h.max_timestamp > f.max_timestamp {
            f.max_timestamp = h.max_timestamp;
            f.offset_of_max_timestamp = h.base_offset;
        }
        f.batches += 1;
        f.offsets += h.last_offset_delta as u64 + 1;
        f.last_offset = h.last_offset();
    }
    Ok(f)
}

/// One partition's log: segments in a directory, appended by one owner.
///
/// `Log` is `Send` but meant to be owned by a single writer (the partition
/// task). Readers use [`Log::reader`], which needs no access to the `Log`.
#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Ordered by base offset; never empty; the last one is active.
    pub(crate) segments: Vec<Segment>,
    shared: Arc<LogShared>,
    pub(crate) log_start_offset: i64,
    pub(crate) log_end_offset: i64,
    /// The cleaner state as last persisted in `cleaner-offset-checkpoint`
    /// (first dirty offset not clamped; see `cleaner/mod.rs`).
    pub(crate) cleaner: crate::cleaner::CleanerCheckpoint,
    /// Set while a compaction job of this log is in flight.
    pub(crate) compaction_running: Arc<std::sync::atomic::AtomicBool>,
    /// Bumped by every truncation, so a compaction job that ran meanwhile
    /// can tell its output no longer fits.
    pub(crate) truncations: u64,
    epochs: LeaderEpochCache,
    unflushed_offsets: u64,
    last_flush_ms: i64,
    /// Segments rolled with `flush_on_roll` (or recovered at open) whose
    /// fsync the owner still has to run, off the append path
    /// ([`Log::take_rolled_flushes`]).
    pub(crate) rolled_flushes: Vec<RolledFlush>,
    /// Every offset below this is on disk (fsynced); see `flush.rs`.
    pub(crate) recovery_point: i64,
    /// The recovery point last written to `recovery-point-offset-checkpoint`.
    pub(crate) persisted_recovery_point: i64,
}

fn list_segment_bases(dir: &Path) -> Result<Vec<i64>> {
    let mut bases = Vec::new();
    let mut orphans = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(Error::io("list partition dir", dir))?;
    let mut index_files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list partition dir", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        let parsed = (stem.len() == 20)
            .then(|| stem.parse::<i64>().ok())
            .flatten();
        match (parsed, ext) {
            (Some(base), "log") => bases.push(base),
            (Some(base), "index" | "timeindex" | "txnindex") => index_files.push((base, entry.path())),
            (_, "tmp") => orphans.push(entry.path()),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            orphans.push(path);
        }
    }
    for path in orphans {
        warn!(path = %path.display(), "removing orphan file");
        std::fs::remove_file(&path).map_err(Error::io("remove orphan", &path))?;
    }
    Ok(bases)
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering it.
    ///
    /// Recovery validates every batch (framing, magic, CRC, increasing
    /// offsets) of the last segment, or of all segments when the clean
    /// shutdown marker is missing; truncates the log at the first bad byte
    /// (deleting later segments); and rebuilds the indexes of recovered
    /// segments and of any segment whose indexes are missing or fail their
    /// sanity checks. Bad disk data never panics.
    pub fn open(dir: impl Into<PathBuf>, config: LogConfig, now_ms: i64) -> Result<Log> {
        config.validate()?;
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(Error::io("create partition dir", &dir))?;
        let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
        let clean = marker.exists();
        // After a crash, the segments wholly below the recovery point were
        // fsynced before it and need no validation (Kafka's recovery point).
        let checkpointed_recovery_point = crate::flush::read_recovery_point(&dir);
        let checkpoint_start = match read_checkpoint(&dir.join(LOG_START_OFFSET_CHECKPOINT), 1) {
            Ok(Some(rows)) if rows.len() == 1 && rows[0][0] >= 0 => Some(rows[0][0]),
            Ok(_) => None,
            Err(e) => {
                warn!(error = %e, "ignoring unreadable log start offset checkpoint");
                None
            }
        };
        // A compaction interrupted by a crash leaves `.cleaned` / `.swap`
        // files; settle them first so the listing sees one file per segment.
        crate::cleaner::complete_interrupted_swaps(&dir)?;
        let bases = list_segment_bases(&dir)?;
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        let last = bases.len().saturating_sub(1);
        let mut cut_after: Option<usize> = None;
        // How many leading segments were opened without validation.
        let mut trusted_prefix = 0;
        // Segments validated here, whose transaction index is rebuilt.
        let mut recovered = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            if let Some(prev) = segments.last() {
                if base < prev.next_offset() {
                    warn!(base, previous_end = prev.next_offset(), "segment overlaps its predecessor");
                    cut_after = Some(i);
                    break;
                }
            }
            let flushed = checkpointed_recovery_point.is_some_and(|rp| bases.get(i + 1).is_some_and(|&next| next <= rp));
            let trusted = if (clean || flushed) && i != last {
                Segment::open_trusted(&dir, base)?
            } else {
                None
            };
            let seg = match trusted {
                Some(seg) => {
                    if trusted_prefix == i {
                        trusted_prefix += 1;
                    }
                    seg
                }
                None => {
                    recovered.push(i);
                    let (seg, stop) = Segment::recover(&dir, base, &config)?;
                    if stop.is_some() && i != last {
                        segments.push(seg);
                        cut_after = Some(i + 1);
                        break;
                    }
                    seg
                }
            };
            segments.push(seg);
        }
        if let Some(from) = cut_after {
            for &base in &bases[from..] {
                warn!(base, "deleting segment after the corruption point");
                for ext in ["log", "index", "timeindex", "txnindex"] {
                    let p = dir.join(crate::segment::file_name(base, ext));
                    if let Err(e) = std::fs::remove_file(&p) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            return Err(Error::io("delete segment file", &p)(e));
                        }
                    }
                }
            }
        }
        let mut log_start_offset = checkpoint_start
            .unwrap_or(0)
            .max(segments.first().map_or(0, Segment::base_offset));
        let recovered_end = segments.last().map_or(-1, Segment::next_offset);
        if recovered_end < log_start_offset {
            // No data at or above the log start offset survived.
            for seg in segments.drain(..) {
                seg.delete_files()?;
            }
            trusted_prefix = 0;
            recovered.clear();
        }
        if segments.is_empty() {
            segments.push(Segment::create(&dir, log_start_offset, &config)?);
        }
        log_start_offset = log_start_offset.max(segments[0].base_offset());
        let n = segments.len();
        for seg in &mut segments[..n - 1] {
            seg.seal(false)?;
        }
        segments[n - 1].unseal(&config)?;
        let log_end_offset = segments[n - 1].next_offset();

        let mut epochs = LeaderEpochCache::load(&dir);
        epochs.truncate_from_end(log_end_offset)?;
        epochs.truncate_from_start(log_start_offset)?;

        let shared = Arc::new(LogShared::new(
            Arc::new(segments.iter().map(|s| Arc::clone(&s.shared)).collect()),
            log_start_offset,
            log_end_offset,
        ));
        let cleaner = crate::cleaner::read_cleaner_checkpoint(&dir).unwrap_or(
            crate::cleaner::CleanerCheckpoint {
                first_dirty_offset: log_start_offset,
                min_delete_horizon: -1,
            },
        );
        // Sealed segments recovered here may exist only in the page cache (a
        // killed process loses nothing the kernel holds, a power loss does):
        // they are queued for the background flush, which moves the recovery
        // point over each in turn. The clean marker means all were flushed.
        let mut rolled_flushes = Vec::new();
        let recovery_point = if clean {
            log_end_offset
        } else {
            let trusted_end = trusted_prefix.min(n - 1);
            for seg in &segments[trusted_end..n - 1] {
                rolled_flushes.push(RolledFlush::of(seg, &dir, 0));
            }
            segments[trusted_end].base_offset()
        };
        let mut log = Log {
            dir,
            config,
            segments,
            shared,
            log_start_offset,
            log_end_offset,
            cleaner,
            compaction_running: Arc::default(),
            truncations: 0,
            epochs,
            unflushed_offsets: 0,
            last_flush_ms: now_ms,
            rolled_flushes,
            recovery_point,
            persisted_recovery_point: checkpointed_recovery_point.unwrap_or(-1),
        };
        for i in recovered.into_iter().filter(|&i| i < n) {
            log.rebuild_txn_index(i)?;
        }
        if log.persisted_recovery_point != recovery_point {
            log.write_recovery_point()?;
        }
        if checkpoint_start != Some(log_start_offset) {
            log.write_log_start_checkpoint()?;
        }
        // Recovery may have cut the log below the cleaner checkpoint; data
        // appended there later was never cleaned.
        log.lower_cleaner_checkpoint(log_end_offset)?;
        if clean {
            std::fs::remove_file(&marker).map_err(Error::io("remove clean marker", &marker))?;
            sync_dir(&log.dir)?;
        }
        info!(
            dir = %log.dir.display(),
            clean,
            segments = log.segments.len(),
            log_start_offset,
            log_end_offset,
            recovery_point = log.recovery_point,
            "opened log"
        );
        Ok(log)
    }

    fn write_log_start_checkpoint(&self) -> Result<()> {
        write_checkpoint(
            &self.dir.join(LOG_START_OFFSET_CHECKPOINT),
            &[self.log_start_offset.to_string()],
        )
    }

    pub(crate) fn publish_segments(&self) {
        self.shared.publish_segments(Arc::new(
            self.segments.iter().map(|s| Arc::clone(&s.shared)).collect(),
        ));
    }

    fn set_log_end_offset(&mut self, offset: i64) {
        self.log_end_offset = offset;
        self.shared.publish_log_end_offset(offset);
    }

    fn set_log_start_offset(&mut self, offset: i64) -> Result<()> {
        if offset == self.log_start_offset {
            return Ok(());
        }
        self.log_start_offset = offset;
        self.shared.publish_log_start_offset(offset);
        self.write_log_start_checkpoint()?;
        self.epochs.truncate_from_start(offset)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// A clonable, `Send + Sync` read handle.
    pub fn reader(&self) -> LogReader {
        LogReader::new(Arc::clone(&self.shared))
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// Offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }
    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(Segment::base_offset).collect()
    }

    /// Base offset of the active (last) segment.
    pub fn active_segment_base_offset(&self) -> i64 {
        self.segments.last().expect("log has a segment").base_offset()
    }

    /// How many truncations this log has had since it was opened: work
    /// prepared from the log before one may no longer fit it.
    pub fn truncation_count(&self) -> u64 {
        self.truncations
    }

    /// Appends one or more whole batches as leader: assigns offsets from the
    /// log end offset by rewriting each `baseOffset` in place (no
    /// re-encoding), then writes the buffer with one `pwrite`. The caller has
    /// validated the batches (CRC etc.); only framing and magic are checked here.
    pub fn append(&mut self, batches: &mut [u8], now_ms: i64) -> Result<AppendInfo> {
        let mut headers = parse_headers(batches)?;
        self.append_assigning(batches, &mut headers, None, now_ms)
    }

    /// Like [`Log::append`], also stamping `partitionLeaderEpoch` (not
    /// covered by the CRC) on every batch.
    pub fn append_as_leader(
        &mut self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let mut headers = parse_headers(batches)?;
        self.append_assigning(batches, &mut headers, Some(leader_epoch), now_ms)
    }

    /// [`Log::append_as_leader`] for a caller that parsed the batches
    /// already: `headers` has one [`BatchHeader::of`] per batch, in order.
    /// They are updated to what was written (assigned base offsets, the
    /// leader epoch).
    pub fn append_parsed_as_leader(
        &mut self,
        batches: &mut [u8],
        headers: &mut [BatchHeader],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append_assigning(batches, headers, Some(leader_epoch), now_ms)
    }

    fn append_assigning(
        &mut self,
        batches: &mut [u8],
        headers: &mut [BatchHeader],
        leader_epoch: Option<i32>,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        check_framing(batches, headers)?;
        let mut next = self.log_end_offset;
        let mut at = 0usize;
        for h in headers.iter_mut() {
            let buf = &mut batches[at..];
            set_base_offset(buf, next)
                .map_err(|source| Error::InvalidBatch { position: at, source })?;
            h.base_offset = next;
            if let Some(epoch) = leader_epoch {
                set_partition_leader_epoch(buf, epoch)
                    .map_err(|source| Error::InvalidBatch { position: at, source })?;
                h.partition_leader_epoch = epoch;
            }
            next = next
                .checked_add(i64::from(h.last_offset_delta) + 1)
                .ok_or(Error::InvalidOffset {
                    offset: next,
                    reason: "offset overflow",
                })?;
            at += h.size as usize;
        }
        self.write_batches(batches, headers, now_ms)
    }

    /// Appends batches keeping their own offsets (replication). The first
    /// base offset must be >= the log end offset and offsets must increase;
    /// gaps are allowed.
    pub fn append_as_follower(&mut self, batches: &[u8], now_ms: i64) -> Result<AppendInfo> {
        let headers = parse_headers(batches)?;
        self.append_parsed_as_follower(batches, &headers, now_ms)
    }

    /// [`Log::append_as_follower`] for a caller that parsed the batches
    /// already: `headers` has one [`BatchHeader::of`] per batch, in order.
    pub fn append_parsed_as_follower(
        &mut self,
        batches: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<AppendInfo> {
        check_framing(batches, headers)?;
        self.write_batches(batches, headers, now_ms)
    }

    /// Alias of [`Log::append_as_follower`].
    pub fn append_with_offsets(&mut self, batches: &[u8], now_ms: i64) -> Result<AppendInfo> {
        self.append_as_follower(batches, now_ms)
    }

    /// Writes batches whose framing was checked against `headers`.
    fn write_batches(&mut self, batches: &[u8], headers: &[BatchHeader], now_ms: i64) -> Result<AppendInfo> {
        let f = summarize(headers, Some(self.log_end_offset))?;
        self.maybe_roll(&f, batches.len() as u64, now_ms)?;
        let config = &self.config;
        let active = self.segments.last_mut().expect("log has a segment");
        assert!(f.first_base >= active.next_offset(), "append below the active segment end");
        assert!(f.first_base - active.base_offset() >= 0);
        active.append(batches, headers, now_ms, config)?;
        self.set_log_end_offset(f.last_offset + 1);

        for h in headers {
            if h.partition_leader_epoch > self.epochs.latest_epoch().unwrap_or(-1) {
                self.epochs.assign(h.partition_leader_epoch, h.base_offset)?;
            }
        }

        self.unflushed_offsets += f.offsets;
        let by_count = self
            .config
            .flush_messages
            .is_some_and(|n| self.unflushed_offsets >= n);
        let by_time = self
            .config
            .flush_ms
            .is_some_and(|ms| now_ms.saturating_sub(self.last_flush_ms) >= ms);
        if by_count || by_time {
            self.flush_at(now_ms)?;
        }
        Ok(AppendInfo {
            base_offset: f.first_base,
            last_offset: f.last_offset,
            max_timestamp: f.max_timestamp,
            offset_of_max_timestamp: f.offset_of_max_timestamp,
            batches: f.batches,
            offsets: f.offsets,
            bytes: batches.len(),
            log_start_offset: self.log_start_offset,
        })
    }

    fn maybe_roll(&mut self, f: &Framing, bytes: u64, now_ms: i64) -> Result<()> {
        let active = self.segments.last().expect("log has a segment");
        if active.is_empty() {
            if f.last_offset - active.base_offset() > i64::from(u32::MAX) {
                // An empty active segment too far below the append: replace it.
                let old = self.segments.pop().expect("log has a segment");
                old.delete_files()?;
                self.segments
                    .push(Segment::create(&self.dir, f.first_base, &self.config)?);
                self.publish_segments();
            }
            return Ok(());
        }
        if active.should_roll(bytes, f.batches, f.last_offset, now_ms, &self.config) {
            self.roll_at(f.first_base)?;
        }
        Ok(())
    }

    fn roll_at(&mut self, base_offset: i64) -> Result<()> {
        let active = self.segments.last_mut().expect("log has a segment");
        assert!(base_offset >= active.next_offset(), "roll below the active segment end");
        // The new segment first: if it cannot be created (a full disk), the
        // active one stays active and unsealed, so a later append after the
        // disk has room again simply rolls then. (Sealing first left a sealed
        // active segment behind, and the next append panicked.)
        let seg = Segment::create(&self.dir, base_offset, &self.config)?;
        if let Err(e) = active.seal(false) {
            let _ = seg.delete_files();
            return Err(e);
        }
        if self.config.flush_on_roll {
            self.rolled_flushes.push(RolledFlush::of(active, &self.dir, self.truncations));
        }
        self.segments.push(seg);
        self.publish_segments();
        info!(dir = %self.dir.display(), base_offset, "rolled segment");
        Ok(())
    }

    /// Starts a new segment at the log end offset (no-op if the active
    /// segment is empty).
    pub fn roll(&mut self) -> Result<()> {
        if self.segments.last().is_some_and(Segment::is_empty) {
            return Ok(());
        }
        self.roll_at(self.log_end_offset)
    }

    /// Reads whole batches; see [`LogReader::read`].
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        upper_bound_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult> {
        self.reader()
            .read(start_offset, max_bytes, upper_bound_offset, min_one_batch)
    }

    /// See [`LogReader::lookup_by_timestamp`].
    pub fn lookup_by_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        self.reader().lookup_by_timestamp(timestamp)
    }

    /// See [`LogReader::max_timestamp_offset`].
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        self.reader().max_timestamp_offset()
    }

    /// Removes every batch containing an offset >= `offset` (for a follower
    /// diverging from its leader). The new log end offset is `offset`, or
    /// the base of the batch that straddled it. Below the log start offset
    /// this is [`Log::truncate_fully_and_start_at`].
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        if offset >= self.log_end_offset {
            return Ok(());
        }
        self.truncations += 1;
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        let mut removed_any = false;
        while self.segments.len() > 1
            && self.segments.last().expect("non-empty").base_offset() > offset
        {
            let seg = self.segments.pop().expect("non-empty");
            seg.delete_files()?;
            removed_any = true;
        }
        if removed_any {
            self.publish_segments();
        }
        let config = self.config.clone();
        let active = self.segments.last_mut().expect("log has a segment");
        let removed_base = active.truncate_to(offset, &config)?;
        let new_end = removed_base.map_or(offset, |b| b.min(offset));
        assert!(new_end >= active.next_offset());
        crate::segment::write_lock(&active.shared.txn_index).truncate_to(new_end)?;
        if new_end < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        self.set_log_end_offset(new_end);
        self.lower_recovery_point(new_end)?;
        self.lower_cleaner_checkpoint(new_end)?;
        self.epochs.truncate_from_end(new_end)?;
        info!(dir = %self.dir.display(), offset, log_end_offset = new_end, "truncated log");
        Ok(())
    }

    /// Deletes every segment and starts an empty log at `offset` (log start
    /// offset = log end offset = `offset`); clears the leader-epoch cache.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(Error::InvalidOffset {
                offset,
                reason: "negative offset",
            });
        }
        self.truncations += 1;
        for seg in self.segments.drain(..) {
            seg.delete_files()?;
        }
        self.segments
            .push(Segment::create(&self.dir, offset, &self.config)?);
        self.publish_segments();
        self.set_log_end_offset(offset);
        self.log_start_offset = offset;
        self.shared.publish_log_start_offset(offset);
        self.write_log_start_checkpoint()?;
        // The new log is empty: nothing unflushed below `offset`.
        self.recovery_point = offset;
        self.write_recovery_point()?;
        self.lower_cleaner_checkpoint(offset)?;
        self.epochs.clear()?;
        info!(dir = %self.dir.display(), offset, "truncated fully");
        Ok(())
    }

    /// Deletes the oldest `count` segments (rolling first if that includes
    /// the active one) and moves the log start offset to the new first
    /// segment's base offset if that is higher.
    fn delete_oldest_segments(&mut self, count: usize) -> Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        if count >= self.segments.len() {
            self.roll()?;
        }
        let count = count.min(self.segments.len() - 1);
        // Publish the new log start before the shorter segment list, so a
        // reader that sees the new list also sees the new start.
        let first_base = self.segments[count].base_offset();
        if first_base > self.log_start_offset {
            self.set_log_start_offset(first_base)?;
        }
        for seg in self.segments.drain(..count) {
            seg.delete_files()?;
        }
        self.publish_segments();
        // What was below the first segment is gone, flushed or not.
        self.recovery_point = self.recovery_point.max(first_base);
        info!(dir = %self.dir.display(), count, log_start_offset = self.log_start_offset, "deleted segments");
        Ok(count)
    }

    /// Upper offset bound (exclusive) of segment `i`'s data.
    pub(crate) fn segment_end(&self, i: usize) -> i64 {
        self.segments
            .get(i + 1)
            .map_or(self.log_end_offset, Segment::base_offset)
    }

    /// Deletes the segments that hold only offsets below `offset` (never the
    /// active segment). Returns how many were deleted.
    pub fn delete_segments_before(&mut self, offset: i64) -> Result<usize> {
        let mut count = 0;
        while count + 1 < self.segments.len() && self.segment_end(count) <= offset {
            count += 1;
        }
        self.delete_oldest_segments(count)
    }

    /// Moves the log start offset up to `offset` (DeleteRecords), persists
    /// it, and deletes segments wholly below it. `offset` must be <= the log
    /// end offset; lower than the current start is a no-op.
    pub fn advance_log_start_offset(&mut self, offset: i64) -> Result<()> {
        if offset > self.log_end_offset {
            return Err(Error::OffsetAboveLogEnd {
                offset,
                log_end_offset: self.log_end_offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(());
        }
        self.set_log_start_offset(offset)?;
        self.delete_segments_before(offset)?;
        Ok(())
    }

    /// Retention by time and size; see [`Log::apply_retention_bounded`].
    pub fn apply_retention(
        &mut self,
        retention_ms: Option<i64>,
        retention_bytes: Option<u64>,
        now_ms: i64,
    ) -> Result<usize> {
        self.apply_retention_bounded(retention_ms, retention_bytes, now_ms, i64::MAX)
    }

    /// Deletes the oldest segments that are past `retention_ms` (the
    /// segment's max timestamp is older than `now_ms - retention_ms`) or that
    /// keep the log above `retention_bytes`, but only segments whose data is
    /// entirely below `high_watermark`. Deleting the active segment rolls
    /// first. Returns how many segments were deleted.
    pub fn apply_retention_bounded(
        &mut self,
        retention_ms: Option<i64>,
        retention_bytes: Option<u64>,
        now_ms: i64,
        high_watermark: i64,
    ) -> Result<usize> {
        let n = self.segments.len();
        // An empty sealed segment (compaction can leave the first segment
        // empty) is deletable: skipping it would block retention forever.
        let deletable = |log: &Log, i: usize| {
            (!log.segments[i].is_empty() || i + 1 < n) && log.segment_end(i) <= high_watermark
        };
        let mut count = 0;
        if let Some(ms) = retention_ms {
            while count < n
                && deletable(self, count)
                && now_ms.saturating_sub(self.segments[count].max_timestamp()) > ms
            {
                count += 1;
            }
        }
        if let Some(limit) = retention_bytes {
            let mut remaining: u64 = self.segments[count..].iter().map(Segment::size).sum();
            while count < n
                && deletable(self, count)
                && remaining.saturating_sub(self.segments[count].size()) >= limit
                && remaining > limit
            {
                remaining -= self.segments[count].size();
                count += 1;
            }
        }
        self.delete_oldest_segments(count)
    }

    /// fsyncs every segment written since the last flush (log and indexes).
    pub fn flush(&mut self) -> Result<()> {
        let now = self.last_flush_ms;
        self.flush_at(now)
    }

    /// The fsyncs of segments rolled since the last call (`flush_on_roll`), for
    /// the owner to run without holding the log; see [`RolledFlush`].
    /// ([`Log::flush`] and [`Log::close`] still flush every dirty segment.)
    pub fn take_rolled_flushes(&mut self) -> Vec<RolledFlush> {
        std::mem::take(&mut self.rolled_flushes)
    }

    /// The time-based half of the flush policy for quiet partitions: fsyncs
    /// when `flush_ms` has passed since the last flush and something is
    /// unflushed. (Appends check the same deadline, but a partition that
    /// stops receiving writes would otherwise never reach it.)
    pub fn flush_if_due(&mut self, now_ms: i64) -> Result<bool> {
        let due = self.config.flush_ms.is_some_and(|ms| now_ms.saturating_sub(self.last_flush_ms) >= ms);
        if due && self.segments.iter().any(|s| s.is_dirty()) {
            self.flush_at(now_ms)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Replaces the settings (a topic config change). Takes effect for the
    /// next append: a smaller `segment_bytes` rolls at the next append that
    /// would exceed it; existing segments are not rewritten.
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    fn flush_at(&mut self, now_ms: i64) -> Result<()> {
        for seg in self.segments.iter_mut().filter(|s| s.is_dirty()) {
            seg.flush()?;
        }
        self.unflushed_offsets = 0;
        self.last_flush_ms = now_ms;
        let end = self.log_end_offset;
        self.advance_recovery_point(end)
    }

    /// Flushes, trims the active segment's indexes and writes the clean
    /// shutdown marker, so the next open trusts the sealed segments' indexes.
    pub fn close(mut self) -> Result<()> {
        let active = self.segments.last_mut().expect("log has a segment");
        active.seal(false)?;
        for seg in &mut self.segments {
            seg.flush()?;
        }
        self.recovery_point = self.log_end_offset;
        self.write_recovery_point()?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_MARKER);
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(Error::io("write clean marker", &marker))?;
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// Deletes the partition directory and everything in it.
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(Error::io("delete partition dir", &dir))
    }

    /// Records that `epoch` starts at `start_offset` (ignored unless newer
    /// than the latest epoch). Appends also do this from batch headers.
    pub fn assign_epoch(&mut self, epoch: i32, start_offset: i64) -> Result<()> {
        self.epochs.assign(epoch, start_offset).map(|_| ())
    }

    /// OffsetsForLeaderEpoch: (largest epoch <= `epoch`, its end offset), or
    /// (-1, -1) when unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset)
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// The leader-epoch entries, oldest first.
    pub fn epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }
}
