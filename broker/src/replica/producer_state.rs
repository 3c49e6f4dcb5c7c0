//! Idempotent-producer state of one partition (Kafka's ProducerStateManager).
//!
//! For every producer id that wrote to the partition we keep its epoch and the
//! metadata of its last [`BATCHES_TO_RETAIN`] batches. A batch is checked
//! before it is appended:
//! - a retry of one of the retained batches (same epoch, same first and last
//!   sequence) is a duplicate and is answered with the offsets it got the
//!   first time, without appending again;
//! - an older epoch is fenced (INVALID_PRODUCER_EPOCH);
//! - a newer epoch must start at sequence 0, unless we know nothing of the
//!   producer (its state may have been removed by retention);
//! - within an epoch the first sequence must follow the last one
//!   (wrapping at i32::MAX), else OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! Transactions (Kafka's ProducerAppendInfo): a producer's first
//! transactional batch opens its transaction at that batch's offset; a
//! COMMIT/ABORT marker ends it, if its producer epoch is not older than the
//! producer's (INVALID_PRODUCER_EPOCH) and its coordinator epoch not older
//! than the last marker's (TRANSACTION_COORDINATOR_FENCED). A
//! non-transactional batch during an open transaction is INVALID_TXN_STATE.
//! The first unstable offset is the smallest first offset of the open
//! transactions and of completed ones whose marker the high watermark has not
//! passed yet; the last stable offset (LSO) is the smaller of it and the high
//! watermark ([`ProducerStateTable::last_stable_offset`]). Producers with an
//! open transaction never expire.
//!
//! The state is rebuilt after a restart from the last snapshot
//! (`producer_snapshot.rs`) and the batch headers written after it
//! ([`ProducerStateTable::replay`]), so retries that straddle a restart are
//! still deduplicated.

use std::collections::{HashMap, VecDeque};

use std::collections::BTreeMap;

use klamm_protocol::records::{EndTransactionMarker, RecordBatch};
use klamm_protocol::ErrorCode;

/// Kafka keeps the last five batches per producer (`NUM_BATCHES_TO_RETAIN`),
/// which is why clients cap in-flight requests at five with idempotence.
pub const BATCHES_TO_RETAIN: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Clone, Debug)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    pub last_timestamp: i64,
    /// First offset of the producer's open transaction on this partition.
    pub current_txn_first_offset: Option<i64>,
    /// Coordinator epoch of the producer's last marker (-1: none yet).
    pub coordinator_epoch: i32,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry { epoch: 0, batches: VecDeque::new(), last_timestamp: 0, current_txn_first_offset: None, coordinator_epoch: -1 }
    }
}

impl ProducerEntry {
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }
}

/// The header fields of an incoming batch that producer checks look at.
#[derive(Clone, Copy, Debug)]
pub struct IncomingBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub transactional: bool,
}

impl IncomingBatch {
    /// The producer fields of `batch`'s header.
    pub fn from_header(batch: &RecordBatch) -> Self {
        IncomingBatch {
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            base_sequence: batch.base_sequence(),
            last_offset_delta: batch.last_offset_delta(),
            max_timestamp: batch.max_timestamp(),
            transactional: batch.is_transactional(),
        }
    }

    pub fn last_sequence(&self) -> i32 {
        // Sequences wrap to 0 after i32::MAX.
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
}

/// The outcome of checking a batch against the producer state.
#[derive(Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Accept,
    /// Already appended: answer with these offsets, append nothing.
    Duplicate(BatchMetadata),
    Reject(ErrorCode, String),
}

/// A transaction ended by a marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

#[derive(Default, Debug, Clone)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset → producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Completed transactions whose marker the high watermark has not passed
    /// yet (in marker order): they still hold the LSO back.
    unreplicated: VecDeque<CompletedTxn>,
    /// KIP-890 verification guards: producer id → (the guard of its
    /// verification in flight, when it started). A marker clears it, so a
    /// batch verified before a marker ended the transaction cannot open a
    /// new one; expiry drops guards of verifications never followed up.
    verifying: HashMap<i64, (u64, i64)>,
    /// Last guard handed out (guards start at 1; 0 stands for "none").
    last_guard: u64,
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq as i64 == last_seq as i64 + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

impl ProducerStateTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer and its state (for snapshots).
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(&id, e)| (id, e))
    }

    /// Sets a producer's state (loading a snapshot).
    pub fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        if let Some(first) = self.producers.remove(&producer_id).and_then(|old| old.current_txn_first_offset) {
            self.ongoing.remove(&first);
        }
        if let Some(first) = entry.current_txn_first_offset {
            self.ongoing.insert(first, producer_id);
        }
        self.producers.insert(producer_id, entry);
    }

    /// Whether `producer_id` has an open transaction at `producer_epoch`.
    pub fn in_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.producers.get(&producer_id).is_some_and(|e| e.epoch == producer_epoch && e.current_txn_first_offset.is_some())
    }

    /// Starts a verification of `producer_id`'s next transaction with its
    /// coordinator; the guard must still match when the batch is appended.
    pub fn start_verification(&mut self, producer_id: i64, now_ms: i64) -> u64 {
        self.last_guard += 1;
        self.verifying.insert(producer_id, (self.last_guard, now_ms));
        self.last_guard
    }

    /// Whether a transactional batch of `producer_id` checked with `guard`
    /// may be appended: its transaction is open, or the verification that
    /// gave `guard` is still the producer's and no marker came since.
    pub fn may_append_transactional(&self, producer_id: i64, producer_epoch: i16, guard: u64) -> bool {
        self.in_transaction(producer_id, producer_epoch) || (guard != 0 && self.verifying.get(&producer_id).is_some_and(|&(g, _)| g == guard))
    }

    /// The open transactions: (producer id, first offset), oldest first.
    pub fn ongoing_txns(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ongoing.iter().map(|(&first, &pid)| (pid, first))
    }

    /// Forgets the completed transactions whose marker is below
    /// `high_watermark`, then returns the last stable offset: the smallest
    /// first offset of open or not yet replicated transactions, at most the
    /// high watermark.
    pub fn last_stable_offset(&mut self, high_watermark: i64) -> i64 {
        while self.unreplicated.front().is_some_and(|t| t.last_offset < high_watermark) {
            self.unreplicated.pop_front();
        }
        let unstable = self.ongoing.keys().next().copied().into_iter().chain(self.unreplicated.iter().map(|t| t.first_offset)).min();
        unstable.map_or(high_watermark, |u| u.min(high_watermark))
    }

    /// Checks a COMMIT/ABORT marker from a coordinator before it is appended.
    pub fn check_marker(&self, producer_id: i64, producer_epoch: i16, coordinator_epoch: i32) -> Result<(), (ErrorCode, String)> {
        let Some(entry) = self.producers.get(&producer_id) else { return Ok(()) };
        if producer_epoch < entry.epoch {
            return Err((
                ErrorCode::INVALID_PRODUCER_EPOCH,
                format!("Epoch of producer {producer_id} in the transaction marker is {producer_epoch}, which is smaller than the last seen epoch {}", entry.epoch),
            ));
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err((
                ErrorCode::TRANSACTION_COORDINATOR_FENCED,
                format!("Invalid coordinator epoch for producer {producer_id}: {coordinator_epoch} (zombie), {} (current)", entry.coordinator_epoch),
            ));
        }
        Ok(())
    }

    /// Ends the producer's transaction with the marker appended at `offset`
    /// (checked by [`Self::check_marker`] when it came from a coordinator).
    pub fn complete_txn(&mut self, producer_id: i64, producer_epoch: i16, marker: EndTransactionMarker, offset: i64, timestamp: i64) -> CompletedTxn {
        let entry = self.producers.entry(producer_id).or_default();
        if producer_epoch != entry.epoch {
            entry.epoch = producer_epoch;
            entry.batches.clear();
        }
        let first_offset = entry.current_txn_first_offset.take().unwrap_or(offset);
        self.verifying.remove(&producer_id);
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        if self.ongoing.get(&first_offset) == Some(&producer_id) {
            self.ongoing.remove(&first_offset);
        }
        let txn = CompletedTxn { producer_id, first_offset, last_offset: offset, aborted: !marker.commit };
        self.unreplicated.push_back(txn);
        txn
    }

    /// Checks a batch from a client. Batches without a producer id are not
    /// idempotent and always accepted.
    pub fn check(&self, batch: &IncomingBatch) -> SequenceCheck {
        if batch.producer_id < 0 {
            return SequenceCheck::Accept;
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // Unknown producer: accept any sequence (its state may have been
            // removed by retention), as Kafka does since KIP-360.
            return SequenceCheck::Accept;
        };
        if batch.producer_epoch < entry.epoch {
            return SequenceCheck::Reject(
                ErrorCode::INVALID_PRODUCER_EPOCH,
                format!(
                    "Epoch of producer {} is {}, which is smaller than the last seen epoch {}",
                    batch.producer_id, batch.producer_epoch, entry.epoch
                ),
            );
        }
        if !batch.transactional && entry.current_txn_first_offset.is_some() && batch.producer_epoch == entry.epoch {
            return SequenceCheck::Reject(
                ErrorCode::INVALID_TXN_STATE,
                format!("Expected transactional write from producer {} at epoch {}", batch.producer_id, batch.producer_epoch),
            );
        }
        if batch.producer_epoch == entry.epoch {
            let last_seq = batch.last_sequence();
            if let Some(dup) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == batch.base_sequence && b.last_seq == last_seq)
            {
                return SequenceCheck::Duplicate(*dup);
            }
            match entry.last_seq() {
                Some(last) if !in_sequence(last, batch.base_sequence) => SequenceCheck::Reject(
                    ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
                    format!(
                        "Out of order sequence number for producer {} at epoch {}: {} (incoming seq. number), {} (current end sequence number)",
                        batch.producer_id, batch.producer_epoch, batch.base_sequence, last
                    ),
                ),
                _ => SequenceCheck::Accept,
            }
        } else if batch.base_sequence != 0 {
            SequenceCheck::Reject(
                ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
                format!(
                    "Invalid sequence number for new epoch of producer {}: {} (request epoch), {} (seq. number), {} (current producer epoch)",
                    batch.producer_id, batch.producer_epoch, batch.base_sequence, entry.epoch
                ),
            )
        } else {
            SequenceCheck::Accept
        }
    }

    /// Records an appended batch (from a client append or a log replay).
    pub fn record(&mut self, batch: &IncomingBatch, first_offset: i64) {
        if batch.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: batch.base_sequence,
            last_seq: batch.last_sequence(),
            first_offset,
            last_offset: first_offset + batch.last_offset_delta as i64,
            max_timestamp: batch.max_timestamp,
        });
        while entry.batches.len() > BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
        entry.last_timestamp = entry.last_timestamp.max(batch.max_timestamp);
        if batch.transactional && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(first_offset);
            self.ongoing.insert(first_offset, batch.producer_id);
            // The open transaction stands for the verification from now on.
            self.verifying.remove(&batch.producer_id);
        }
    }

    /// Replays a batch already in the log (read back after a restart, or
    /// copied from the leader by a follower): data batches of idempotent
    /// producers and COMMIT/ABORT markers carry producer state; others are
    /// skipped. Returns the transaction a marker completed.
    pub fn replay(&mut self, batch: &RecordBatch) -> Option<CompletedTxn> {
        if batch.producer_id() < 0 {
            return None;
        }
        if !batch.is_control() {
            self.record(&IncomingBatch::from_header(batch), batch.base_offset());
            return None;
        }
        let marker = end_txn_marker(batch)?;
        Some(self.complete_txn(batch.producer_id(), batch.producer_epoch(), marker, batch.base_offset(), batch.max_timestamp()))
    }

    /// Forgets producers idle for `expiration_ms` or longer
    /// (`producer.id.expiration.ms`): those whose last batch's timestamp is
    /// that far before `now_ms`, as Kafka expires producer ids. A producer that
    /// writes again after that is unknown and starts over (KIP-360), so the
    /// table does not grow with every producer that ever wrote. Returns how
    /// many were removed.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.verifying.retain(|_, &mut (_, started)| now_ms.saturating_sub(started) < expiration_ms);
        let before = self.producers.len();
        self.producers.retain(|_, e| e.current_txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// Forgets everything at or above `offset` (after a log truncation) by
    /// dropping producers whose retained batches reach that far; they are
    /// re-learned from the next batch, which is then accepted as unknown.
    ///
    /// Transactions: one opened at or above `offset` is forgotten; one whose
    /// marker was cut off is open again (truncation happens above the high
    /// watermark, so its marker is still among the unreplicated ones).
    pub fn truncate_to(&mut self, offset: i64) {
        self.ongoing.retain(|&first, _| first < offset);
        while self.unreplicated.back().is_some_and(|t| t.last_offset >= offset) {
            let t = self.unreplicated.pop_back().expect("checked");
            if t.first_offset < offset {
                self.ongoing.insert(t.first_offset, t.producer_id);
            }
        }
        let ongoing: HashMap<i64, i64> = self.ongoing.iter().map(|(&first, &pid)| (pid, first)).collect();
        self.producers.retain(|pid, e| {
            e.batches.retain(|b| b.last_offset < offset);
            e.current_txn_first_offset = ongoing.get(pid).copied();
            !e.batches.is_empty() || e.current_txn_first_offset.is_some()
        });
    }
}

/// The COMMIT/ABORT marker of a transactional control batch, if it is one.
pub fn end_txn_marker(batch: &RecordBatch) -> Option<EndTransactionMarker> {
    if !batch.is_control() || !batch.is_transactional() {
        return None;
    }
    let record = batch.records().next()?.ok()?;
    EndTransactionMarker::from_record(&record).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, n: i32) -> IncomingBatch {
        IncomingBatch { producer_id: pid, producer_epoch: epoch, base_sequence: seq, last_offset_delta: n - 1, max_timestamp: 0, transactional: false }
    }

    fn txn(pid: i64, epoch: i16, seq: i32, n: i32) -> IncomingBatch {
        IncomingBatch { transactional: true, ..batch(pid, epoch, seq, n) }
    }

    fn marker(commit: bool, coordinator_epoch: i32) -> EndTransactionMarker {
        EndTransactionMarker { commit, coordinator_epoch }
    }

    #[test]
    fn transactions_hold_the_lso_until_their_marker_is_replicated() {
        let mut t = ProducerStateTable::default();
        t.record(&batch(9, 0, 0, 2), 0); // idempotent, no transaction
        t.record(&txn(1, 0, 0, 2), 2);
        t.record(&txn(2, 0, 0, 1), 4);
        t.record(&txn(1, 0, 2, 1), 5);
        assert_eq!(t.get(1).unwrap().current_txn_first_offset, Some(2));
        assert_eq!(t.last_stable_offset(6), 2);
        assert_eq!(t.ongoing_txns().collect::<Vec<_>>(), vec![(1, 2), (2, 4)]);
        let done = t.complete_txn(1, 0, marker(false, 3), 6, 0);
        assert_eq!(done, CompletedTxn { producer_id: 1, first_offset: 2, last_offset: 6, aborted: true });
        // Ended, but the marker is not replicated yet.
        assert_eq!(t.last_stable_offset(6), 2);
        assert_eq!(t.last_stable_offset(7), 4, "producer 2 still open");
        t.complete_txn(2, 0, marker(true, 3), 7, 0);
        assert_eq!(t.last_stable_offset(7), 4);
        assert_eq!(t.last_stable_offset(8), 8);
        assert_eq!(t.get(1).unwrap().coordinator_epoch, 3);
    }

    #[test]
    fn markers_are_checked_for_producer_and_coordinator_epochs() {
        let mut t = ProducerStateTable::default();
        t.record(&txn(1, 2, 0, 1), 0);
        assert_eq!(t.check_marker(1, 1, 0).unwrap_err().0, ErrorCode::INVALID_PRODUCER_EPOCH);
        assert!(t.check_marker(1, 2, 0).is_ok());
        t.complete_txn(1, 2, marker(true, 5), 1, 0);
        assert_eq!(t.check_marker(1, 2, 4).unwrap_err().0, ErrorCode::TRANSACTION_COORDINATOR_FENCED);
        assert!(t.check_marker(1, 3, 5).is_ok(), "a bumped epoch with the same coordinator");
        assert!(t.check_marker(77, 0, 0).is_ok(), "unknown producers take any marker");
    }

    #[test]
    fn plain_writes_inside_a_transaction_are_refused() {
        let mut t = ProducerStateTable::default();
        t.record(&txn(1, 0, 0, 1), 0);
        assert!(matches!(t.check(&batch(1, 0, 1, 1)), SequenceCheck::Reject(ErrorCode::INVALID_TXN_STATE, _)));
        assert_eq!(t.check(&txn(1, 0, 1, 1)), SequenceCheck::Accept);
    }

    #[test]
    fn truncating_a_marker_reopens_its_transaction() {
        let mut t = ProducerStateTable::default();
        t.record(&txn(1, 0, 0, 1), 0);
        t.complete_txn(1, 0, marker(false, 0), 1, 0);
        t.record(&txn(2, 0, 0, 1), 2);
        t.truncate_to(1);
        assert_eq!(t.get(1).unwrap().current_txn_first_offset, Some(0));
        assert!(t.get(2).is_none());
        assert_eq!(t.ongoing_txns().collect::<Vec<_>>(), vec![(1, 0)]);
        assert_eq!(t.last_stable_offset(1), 0);
    }

    #[test]
    fn a_marker_invalidates_a_verification_in_flight() {
        let mut t = ProducerStateTable::default();
        let g = t.start_verification(1, 0);
        assert!(t.may_append_transactional(1, 0, g));
        assert!(!t.may_append_transactional(1, 0, 0), "no guard, no open transaction");
        t.complete_txn(1, 0, marker(false, 0), 0, 0);
        assert!(!t.may_append_transactional(1, 0, g), "the marker ended what was verified");
        let g2 = t.start_verification(1, 0);
        assert!(!t.may_append_transactional(1, 0, g), "an older guard");
        t.record(&txn(1, 0, 0, 1), 1);
        assert!(t.may_append_transactional(1, 0, 0) && t.may_append_transactional(1, 0, g2), "open now");
        let g3 = t.start_verification(2, 100);
        t.remove_expired(100 + 49, 50);
        assert!(t.may_append_transactional(2, 0, g3));
        t.remove_expired(100 + 50, 50);
        assert!(!t.may_append_transactional(2, 0, g3), "a verification never followed up expires");
    }

    #[test]
    fn open_transactions_do_not_expire() {
        let mut t = ProducerStateTable::default();
        t.record(&txn(1, 0, 0, 1), 0);
        t.record(&batch(2, 0, 0, 1), 1);
        assert_eq!(t.remove_expired(1_000_000, 10), 1);
        assert!(t.get(1).is_some());
    }

    #[test]
    fn non_idempotent_batches_always_accepted() {
        let t = ProducerStateTable::default();
        assert_eq!(t.check(&batch(-1, -1, -1, 3)), SequenceCheck::Accept);
    }

    #[test]
    fn in_order_batches_accepted_and_retry_deduplicated() {
        let mut t = ProducerStateTable::default();
        let b0 = batch(7, 0, 0, 10);
        assert_eq!(t.check(&b0), SequenceCheck::Accept);
        t.record(&b0, 100);
        let b1 = batch(7, 0, 10, 5);
        assert_eq!(t.check(&b1), SequenceCheck::Accept);
        t.record(&b1, 110);
        match t.check(&b0) {
            SequenceCheck::Duplicate(m) => assert_eq!((m.first_offset, m.last_offset), (100, 109)),
            other => panic!("expected duplicate, got {other:?}"),
        }
        match t.check(&b1) {
            SequenceCheck::Duplicate(m) => assert_eq!((m.first_offset, m.last_offset), (110, 114)),
            other => panic!("expected duplicate, got {other:?}"),
        }
    }

    #[test]
    fn gap_is_out_of_order() {
        let mut t = ProducerStateTable::default();
        t.record(&batch(7, 0, 0, 10), 0);
        match t.check(&batch(7, 0, 11, 1)) {
            SequenceCheck::Reject(code, _) => assert_eq!(code, ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_last_five_batches_are_deduplicated() {
        let mut t = ProducerStateTable::default();
        for i in 0..7 {
            t.record(&batch(1, 0, i, 1), i as i64);
        }
        // Batch 0 and 1 fell out of the window: a retry of them is out of order now.
        assert!(matches!(t.check(&batch(1, 0, 1, 1)), SequenceCheck::Reject(..)));
        assert!(matches!(t.check(&batch(1, 0, 2, 1)), SequenceCheck::Duplicate(_)));
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut t = ProducerStateTable::default();
        t.record(&batch(1, 3, 0, 5), 0);
        assert!(matches!(t.check(&batch(1, 2, 5, 1)), SequenceCheck::Reject(c, _) if c == ErrorCode::INVALID_PRODUCER_EPOCH));
        assert!(matches!(t.check(&batch(1, 4, 5, 1)), SequenceCheck::Reject(c, _) if c == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
        assert_eq!(t.check(&batch(1, 4, 0, 1)), SequenceCheck::Accept);
    }

    #[test]
    fn unknown_producer_accepts_any_sequence() {
        let t = ProducerStateTable::default();
        assert_eq!(t.check(&batch(9, 0, 42, 1)), SequenceCheck::Accept);
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut t = ProducerStateTable::default();
        let b = batch(1, 0, i32::MAX - 1, 2);
        assert_eq!(b.last_sequence(), i32::MAX);
        t.record(&b, 0);
        assert_eq!(t.check(&batch(1, 0, 0, 1)), SequenceCheck::Accept);
        let wrapping = batch(1, 0, i32::MAX, 3);
        assert_eq!(wrapping.last_sequence(), 1);
    }

    #[test]
    fn truncation_forgets_batches_above() {
        let mut t = ProducerStateTable::default();
        t.record(&batch(1, 0, 0, 5), 0);
        t.record(&batch(1, 0, 5, 5), 5);
        t.truncate_to(5);
        assert_eq!(t.get(1).unwrap().batches.len(), 1);
        t.truncate_to(0);
        assert!(t.get(1).is_none());
    }

    #[test]
    fn idle_producers_expire_and_start_over() {
        let mut t = ProducerStateTable::default();
        let batch = |pid: i64, seq: i32, ts: i64| IncomingBatch { producer_id: pid, producer_epoch: 0, base_sequence: seq, last_offset_delta: 0, max_timestamp: ts, transactional: false };
        t.record(&batch(1, 0, 1_000), 0);
        t.record(&batch(2, 0, 5_000), 1);
        assert_eq!(t.remove_expired(1_000 + 9_999, 10_000), 0, "idle just under the limit");
        assert_eq!(t.remove_expired(11_000, 10_000), 1, "producer 1 idle for exactly the limit");
        assert!(t.get(1).is_none() && t.get(2).is_some());
        // An expired producer continuing its sequence is unknown, hence accepted.
        assert_eq!(t.check(&batch(1, 7, 20_000)), SequenceCheck::Accept);
        // A live one is still checked.
        assert!(matches!(t.check(&batch(2, 7, 20_000)), SequenceCheck::Reject(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER, _)));
    }
}
