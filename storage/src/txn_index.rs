//! The aborted-transaction index of a segment, `<base_offset>.txnindex`
//! (Kafka's `TransactionIndex`): one entry per transaction whose ABORT
//! marker lies in the segment, so a read_committed fetch can tell the
//! consumer which producers' records to drop (`aborted_transactions`).
//!
//! Entry (34 bytes, big-endian, Kafka's layout): `i16 version (0)`,
//! `i64 producer_id`, `i64 first_offset` (the transaction's first batch),
//! `i64 last_offset` (the ABORT marker), `i64 last_stable_offset` (the
//! partition's LSO once the transaction completed; informative: lookups here
//! scan every segment from the fetch offset on, which stays cheap because
//! the entries are kept in memory and aborts are rare).
//!
//! The entries are held in memory (loaded at open) and appended to the file
//! as markers are appended, in marker order, so truncation cuts the file at
//! an entry boundary. The file exists only once a segment has an entry.
//! The owner (the partition) appends entries: storage does not decode
//! markers on the append path. Log recovery rebuilds the index of every
//! segment it re-validates ([`Log::rebuild_txn_index`]), since a crash can
//! lose an entry written after its marker, or keep one whose marker was cut.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use klamm_protocol::records::EndTransactionMarker;
use tracing::warn;

use crate::error::{Error, Result};
use crate::log::Log;
use crate::segment::{read_lock, scan_batches, write_lock, SegmentShared};

/// Bytes of one entry.
pub(crate) const ENTRY_SIZE: usize = 34;
const VERSION: i16 = 0;

/// One aborted transaction of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
    /// The last stable offset once it was aborted.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut out = [0u8; ENTRY_SIZE];
        out[..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(i64::from_be_bytes);
        let version = i16::from_be_bytes(b.get(..2)?.try_into().ok()?);
        (version == VERSION).then_some(())?;
        Some(AbortedTxn { producer_id: i64_at(2)?, first_offset: i64_at(10)?, last_offset: i64_at(18)?, last_stable_offset: i64_at(26)? })
    }
}

/// A segment's entries and its file.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// An empty index for a new segment (removing a stale file of that name).
    pub fn create(path: PathBuf) -> Result<TxnIndex> {
        remove_if_exists(&path)?;
        Ok(TxnIndex { path, entries: Vec::new() })
    }

    /// Loads the index of a segment starting at `base_offset`; a missing file
    /// is an empty index. `Ok(None)`: the file is damaged (it must be rebuilt).
    pub fn load(path: PathBuf, base_offset: i64) -> Result<Option<TxnIndex>> {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(TxnIndex { path, entries: Vec::new() })),
            Err(e) => return Err(Error::io("read txn index", &path)(e)),
        };
        if bytes.len() % ENTRY_SIZE != 0 {
            warn!(path = %path.display(), len = bytes.len(), "transaction index is not a whole number of entries");
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(bytes.len() / ENTRY_SIZE);
        for chunk in bytes.chunks_exact(ENTRY_SIZE) {
            let sane = AbortedTxn::decode(chunk).filter(|e| {
                e.first_offset >= 0
                    && e.first_offset <= e.last_offset
                    && e.last_offset >= base_offset
                    && entries.last().is_none_or(|p: &AbortedTxn| p.last_offset < e.last_offset)
            });
            match sane {
                Some(e) => entries.push(e),
                None => {
                    warn!(path = %path.display(), "transaction index holds an invalid entry");
                    return Ok(None);
                }
            }
        }
        Ok(Some(TxnIndex { path, entries }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Appends an entry (markers come in offset order).
    pub fn append(&mut self, entry: AbortedTxn) -> Result<()> {
        if self.entries.last().is_some_and(|last| last.last_offset >= entry.last_offset) {
            return Err(Error::InvalidOffset { offset: entry.last_offset, reason: "transaction index entries must follow their markers' order" });
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(Error::io("open txn index", &self.path))?;
        file.write_all(&entry.encode()).map_err(Error::io("append txn index", &self.path))?;
        self.entries.push(entry);
        Ok(())
    }

    /// Drops the entries whose marker is at or above `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        let keep = self.entries.iter().take_while(|e| e.last_offset < offset).count();
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.rewrite()
    }

    /// Replaces every entry (a rebuild).
    pub fn replace(&mut self, entries: Vec<AbortedTxn>) -> Result<()> {
        if entries == self.entries && (entries.is_empty() || self.path.exists()) {
            return Ok(());
        }
        self.entries = entries;
        self.rewrite()
    }

    fn rewrite(&self) -> Result<()> {
        if self.entries.is_empty() {
            return remove_if_exists(&self.path);
        }
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| e.encode()).collect();
        std::fs::write(&self.path, bytes).map_err(Error::io("write txn index", &self.path))
    }

    /// fsyncs the file if there is one.
    pub fn sync(&self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        match std::fs::File::open(&self.path) {
            Ok(f) => f.sync_all().map_err(Error::io("fsync txn index", &self.path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("open txn index", &self.path)(e)),
        }
    }

    /// Adds the entries of transactions that overlap `[start, upper_bound)`.
    pub fn collect(&self, start: i64, upper_bound: i64, out: &mut Vec<AbortedTxn>) {
        out.extend(self.entries.iter().filter(|e| e.last_offset >= start && e.first_offset < upper_bound));
    }
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove txn index", path)(e)),
    }
}

/// What a header scan learns about one producer's transactional batches in
/// one segment, for finding where an aborted transaction began.
#[derive(Default, Clone, Copy)]
struct ProducerTrail {
    /// First transactional data batch after the producer's last marker here
    /// (or from the segment start when no marker was seen).
    open_since: Option<i64>,
    /// Whether a marker of the producer was seen in the segment.
    marker_seen: bool,
}

/// The batches of a segment that matter for the transaction index.
enum TxnEvent {
    Data { producer_id: i64, offset: i64 },
    Marker { producer_id: i64, offset: i64, abort: bool },
}

/// Walks a segment's batches in order and reports transactional data
/// batches and COMMIT/ABORT markers (reading the marker's record).
fn scan_txn_events(seg: &SegmentShared, mut visit: impl FnMut(TxnEvent)) -> Result<()> {
    let mut found = Vec::new();
    scan_batches(&seg.file, &seg.log_path, seg.base_offset, seg.committed(), false, |pos, h| {
        if h.is_transactional() {
            found.push((pos, *h));
        }
    })?;
    for (pos, h) in found {
        if !h.is_control() {
            visit(TxnEvent::Data { producer_id: h.producer_id, offset: h.base_offset });
            continue;
        }
        let Some(batch) = seg.read_batch(pos, &h)? else { continue };
        let marker = batch.records().next().and_then(|r| r.ok()).and_then(|r| EndTransactionMarker::from_record(&r).ok().flatten());
        if let Some(m) = marker {
            visit(TxnEvent::Marker { producer_id: h.producer_id, offset: h.base_offset, abort: !m.commit });
        }
    }
    Ok(())
}

/// After compaction rewrote `seg`: drops the entries whose ABORT marker the
/// cleaner removed (a consumer told of an aborted transaction waits for its
/// marker to stop dropping that producer's records).
pub(crate) fn drop_entries_without_markers(seg: &SegmentShared) -> Result<()> {
    let entries = read_lock(&seg.txn_index).entries().to_vec();
    let mut kept = Vec::with_capacity(entries.len());
    for e in entries {
        if seg.find_batch(e.last_offset, seg.committed())?.is_some_and(|(_, h)| h.base_offset == e.last_offset) {
            kept.push(e);
        }
    }
    write_lock(&seg.txn_index).replace(kept)
}

impl Log {
    /// Records an aborted transaction whose ABORT marker was just appended
    /// (in the segment holding `txn.last_offset`).
    pub fn append_aborted_txn(&mut self, txn: AbortedTxn) -> Result<()> {
        let i = self.segments.iter().rposition(|s| s.base_offset() <= txn.last_offset).ok_or(Error::InvalidOffset {
            offset: txn.last_offset,
            reason: "marker below the first segment",
        })?;
        let mut index = write_lock(&self.segments[i].shared.txn_index);
        index.append(txn)
    }

    /// Rebuilds the transaction index of segment `i` from its batches: each
    /// ABORT marker gets an entry; the transaction's first offset is its
    /// producer's first transactional batch after its previous marker,
    /// searched back through earlier segments when it began before this one.
    pub(crate) fn rebuild_txn_index(&mut self, i: usize) -> Result<()> {
        let seg = std::sync::Arc::clone(&self.segments[i].shared);
        let mut trails: HashMap<i64, ProducerTrail> = HashMap::new();
        // (producer, marker offset, first batch here, whether it may have begun earlier)
        let mut aborted: Vec<(i64, i64, Option<i64>, bool)> = Vec::new();
        scan_txn_events(&seg, |ev| match ev {
            TxnEvent::Data { producer_id, offset } => {
                trails.entry(producer_id).or_default().open_since.get_or_insert(offset);
            }
            TxnEvent::Marker { producer_id, offset, abort } => {
                let t = trails.entry(producer_id).or_default();
                if abort {
                    aborted.push((producer_id, offset, t.open_since, !t.marker_seen));
                }
                *t = ProducerTrail { open_since: None, marker_seen: true };
            }
        })?;
        // An entry that survived as written keeps its recorded LSO.
        let known = read_lock(&seg.txn_index).entries().to_vec();
        let mut entries = Vec::with_capacity(aborted.len());
        for (producer_id, marker, here, maybe_earlier) in aborted {
            let earlier = if maybe_earlier { self.txn_start_before(i, producer_id)? } else { None };
            let first_offset = earlier.or(here).unwrap_or(marker);
            let rebuilt = AbortedTxn { producer_id, first_offset, last_offset: marker, last_stable_offset: first_offset };
            let same = |e: &&AbortedTxn| (e.producer_id, e.first_offset, e.last_offset) == (producer_id, first_offset, marker);
            entries.push(known.iter().find(same).copied().unwrap_or(rebuilt));
        }
        let mut index = write_lock(&seg.txn_index);
        index.replace(entries)
    }

    /// Where the open transaction of `producer_id` that reaches into segment
    /// `i` began: its first transactional batch after its last marker in the
    /// segments before `i` (None if it has none there).
    fn txn_start_before(&self, i: usize, producer_id: i64) -> Result<Option<i64>> {
        let mut candidate = None;
        for j in (0..i).rev() {
            let mut trail = ProducerTrail::default();
            scan_txn_events(&self.segments[j].shared, |ev| match ev {
                TxnEvent::Data { producer_id: p, offset } if p == producer_id => {
                    trail.open_since.get_or_insert(offset);
                }
                TxnEvent::Marker { producer_id: p, .. } if p == producer_id => {
                    trail = ProducerTrail { open_since: None, marker_seen: true };
                }
                _ => {}
            })?;
            if trail.open_since.is_some() {
                candidate = trail.open_since;
            }
            if trail.marker_seen {
                break;
            }
        }
        Ok(candidate)
    }

    /// Every aborted transaction in the log's indexes, in marker order.
    pub fn aborted_txns(&self) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        for s in &self.segments {
            out.extend_from_slice(read_lock(&s.shared.txn_index).entries());
        }
        out
    }
}
