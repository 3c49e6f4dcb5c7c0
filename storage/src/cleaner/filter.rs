//! The per-batch compaction rule: which records of a batch survive
//! (superseded keys, aborted transactions, expired tombstones, KIP-534
//! delete horizons), and the re-encoded batch when some do not.

use bytes::Bytes;
use klamm_protocol::records::{Compression, Record, RecordBatch, RecordBatchBuilder, RecordsError};
use tracing::warn;

use super::offset_map::{Fate, OffsetMap, Producers};
use super::CompactionParams;

/// Decodes a batch's records after checking its header (CRC included),
/// decompressing with an output bound of `max_bytes`.
pub(super) fn decode_records(batch: &RecordBatch, max_bytes: usize) -> Result<Vec<Record>, RecordsError> {
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
// Filtering batches

pub(super) enum Decision {
    Keep,
    Drop,
    Rewrite(Bytes),
}

#[derive(Default)]
pub(super) struct Removed {
    pub(super) records: u64,
    pub(super) tombstones: u64,
    pub(super) undecodable: u64,
}

pub(super) struct Filter<'a> {
    pub(super) map: &'a OffsetMap,
    pub(super) producers: &'a Producers,
    pub(super) params: &'a CompactionParams,
    pub(super) now_ms: i64,
    /// Cleared at the first undecodable batch; see the module doc.
    pub(super) tombstone_removal: bool,
    /// Earliest delete horizon among output batches still holding tombstones.
    pub(super) min_horizon: Option<i64>,
}

impl Filter<'_> {
    /// A transaction marker whose transaction has no record left (its
    /// aborted data removed, or its committed data superseded) goes like a
    /// tombstone (Kafka's rule): the first pass gives it a delete horizon
    /// `delete.retention.ms` ahead, so consumers that read the data still see
    /// the marker, and a pass after the horizon removes it. Other control
    /// batches are kept byte for byte.
    fn decide_marker(&mut self, batch: &RecordBatch, removed: &mut Removed) -> Decision {
        if !batch.is_transactional() || !self.producers.marker_removable(batch.producer_id(), batch.base_offset()) {
            return Decision::Keep;
        }
        if batch.has_delete_horizon() {
            let horizon = batch.base_timestamp();
            if self.tombstone_removal && self.now_ms >= horizon {
                removed.records += batch.records_count().max(0) as u64;
                return Decision::Drop;
            }
            if horizon > self.now_ms {
                self.min_horizon = Some(self.min_horizon.map_or(horizon, |m| m.min(horizon)));
            }
            return Decision::Keep;
        }
        let Ok(records) = decode_records(batch, self.params.max_decompressed_batch_bytes) else {
            return Decision::Keep;
        };
        let horizon = self.now_ms.saturating_add(self.params.delete_retention_ms);
        self.min_horizon = Some(self.min_horizon.map_or(horizon, |m| m.min(horizon)));
        match encode_retained(batch, records, Some(horizon)) {
            Ok(bytes) => Decision::Rewrite(bytes),
            Err(_) => Decision::Keep,
        }
    }

    pub(super) fn decide(&mut self, batch: &RecordBatch, removed: &mut Removed) -> Decision {
        if batch.is_control() {
            return self.decide_marker(batch, removed);
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
