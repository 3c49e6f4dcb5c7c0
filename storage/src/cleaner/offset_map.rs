//! What supersedes what: the producer scan (each producer's last batch,
//! the fate of transactional batches) and the key → latest offset map built
//! over the dirty segments.

use std::collections::HashMap;
use std::sync::Arc;

use klamm_protocol::records::EndTransactionMarker;

use super::filter::decode_records;
use super::{corrupt, for_each_batch};
use crate::error::Result;
use crate::segment::SegmentShared;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Committed,
    Aborted,
    /// No marker yet (only possible above the last stable offset).
    Open,
}

#[derive(Debug, Default)]
pub(super) struct Producers {
    /// Base offset of the last batch of each producer id in the whole log.
    pub(super) last_batch: HashMap<i64, i64>,
    /// (marker offset, commit?, whether its transaction still has records
    /// in the log) per producer id, in offset order.
    markers: HashMap<i64, Vec<(i64, bool, bool)>>,
}

impl Producers {
    /// Walks the batch headers of every segment. The last one is the
    /// active segment, which may be truncated meanwhile (the job runs beside
    /// the writer): a read problem there just ends the scan, which is
    /// conservative (a producer's last batch kept needlessly; a transaction
    /// looks open, so it neither supersedes nor is removed).
    pub(super) fn scan(segments: &[(Arc<SegmentShared>, u64)]) -> Result<Producers> {
        let mut p = Producers::default();
        // Producers with transactional records since their last marker.
        let mut with_data: std::collections::HashSet<i64> = std::collections::HashSet::new();
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
                    if h.is_transactional() && !h.is_control() && h.records_count > 0 {
                        with_data.insert(h.producer_id);
                    }
                    if h.is_control() && h.is_transactional() {
                        let marker = shared
                            .read_batch(pos, &h)?
                            .and_then(|b| b.records().next())
                            .and_then(|r| r.ok())
                            .and_then(|r| EndTransactionMarker::from_record(&r).ok().flatten());
                        if let Some(m) = marker {
                            let has_data = with_data.remove(&h.producer_id);
                            p.markers
                                .entry(h.producer_id)
                                .or_default()
                                .push((h.base_offset, m.commit, has_data));
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
    pub(super) fn fate(&self, producer_id: i64, offset: i64) -> Fate {
        let Some(markers) = self.markers.get(&producer_id) else {
            return Fate::Open;
        };
        let i = markers.partition_point(|&(o, _, _)| o <= offset);
        match markers.get(i) {
            Some(&(_, true, _)) => Fate::Committed,
            Some(&(_, false, _)) => Fate::Aborted,
            None => Fate::Open,
        }
    }

    /// Whether the marker at `offset` may go: its transaction has no record
    /// left in the log and it is not its producer's last batch (which keeps
    /// the producer's state rebuildable).
    pub(super) fn marker_removable(&self, producer_id: i64, offset: i64) -> bool {
        let Some(markers) = self.markers.get(&producer_id) else { return false };
        let last = self.last_batch.get(&producer_id) == Some(&offset);
        markers.binary_search_by_key(&offset, |&(o, _, _)| o).is_ok_and(|i| !markers[i].2) && !last
    }
}

/// Per-entry overhead assumed for the map's memory accounting.
const MAP_ENTRY_OVERHEAD: usize = 48;

#[derive(Debug, Default)]
pub(super) struct OffsetMap {
    pub(super) map: HashMap<Box<[u8]>, i64>,
    pub(super) bytes: usize,
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
    pub(super) fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(key).copied()
    }

    /// Adds the keys of the records at offsets >= `from` in one segment.
    pub(super) fn add_segment(
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
