//! One partition hosted on this broker: coordinates its log, producer state,
//! replication state and the published [`PartitionView`].
//!
//! Writers (produce, follower appends, truncation, maintenance) take the
//! partition's state lock for the duration of one change (a synchronous write
//! to the page cache, no `.await` inside). Readers (fetch, list offsets) never
//! take it: they read the published view from a `watch` channel and read log
//! files below the published bound through a cloned [`LogReader`].
//!
//! The decisions of replication (roles, ISR, follower progress, the high
//! watermark, ISR proposals) are made by the pure state machine in
//! `replication.rs`; this file feeds it the log's offsets and carries out what
//! it decides. Every change of the view passes [`Partition::update_view`]
//! under the state lock (so views are published in the order the changes were
//! made, never a stale one after a newer one), which checks its invariants.
//!
//! **Offline.** A partition whose state can no longer be trusted is taken
//! offline on this node, as Kafka takes a failed log directory offline: when
//! code panicked while holding the state lock (a broken invariant, a bug),
//! or when an append failed after its bytes reached the log (the log, the
//! producer state and the view no longer agree). The open state is dropped
//! without a flush or a clean-shutdown marker (what was written stays in the
//! page cache and on disk; nothing acknowledged is lost), the reason is
//! logged once, every request answers KAFKA_STORAGE_ERROR, and the replica
//! manager moves the partition to its offline set, from where a retry opens
//! it again from disk (with recovery). A poisoned lock therefore costs one
//! partition one failed request, not a panic on every later request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};

use bytes::{Bytes, BytesMut};
use klamm_config::TopicConfig;
use klamm_protocol::records::{self, iter_batches, Compression, EndTransactionMarker, RecordBatch, RecordsError, TimestampType};
use klamm_protocol::ErrorCode;
use klamm_raft::{PartitionImage, NO_LEADER};
use klamm_storage::{CompactionStats, Log, LogReader};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::follower_health::{FollowerHealth, FollowerHealthReport};
use super::producer_snapshot;
use super::producer_state::{CompletedTxn, IncomingBatch, ProducerEntry, ProducerStateTable, SequenceCheck};
use super::replication::{ReplicationState, RoleChange};
pub use super::replication::IsrProposal;
use super::storage_adapter::{self, log_config};
use super::validation::{self, records_error_code, StoreAs};

/// What readers may see of a partition, published after every change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionView {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// The last stable offset: below it every transaction is decided and its
    /// marker replicated (at most the high watermark); read_committed
    /// consumers read up to here.
    pub last_stable_offset: i64,
    pub log_end_offset: i64,
    pub leader_epoch: i32,
    /// The leader this broker knows of (-1: none); equal to the node id when it leads.
    pub leader: i32,
    /// As leader: the log end offset when it became leader in `leader_epoch`
    /// (-1 otherwise). Until the high watermark reaches it, the leader does
    /// not know the committed end (ListOffsets answers OFFSET_NOT_AVAILABLE).
    pub leader_epoch_start_offset: i64,
}

/// A Kafka error for one partition, with an optional message for v8+ responses.
#[derive(Debug, Clone)]
pub struct PartitionError {
    pub code: ErrorCode,
    pub message: Option<String>,
    /// Produce v8+: (index of the record in its batch, why it was rejected).
    pub record_errors: Vec<(i32, String)>,
}

impl PartitionError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        PartitionError { code, message: Some(message.into()), record_errors: Vec::new() }
    }
    pub fn code(code: ErrorCode) -> Self {
        PartitionError { code, message: None, record_errors: Vec::new() }
    }
}

/// Where an acknowledged batch landed.
#[derive(Debug, Clone, Copy)]
pub struct AppendResult {
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The leader epoch the batch was written in (acks=all waits within it).
    pub leader_epoch: i32,
}

/// What a follower asks its leader for next (Fetch with a replica id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPosition {
    pub leader: i32,
    pub leader_epoch: i32,
    pub fetch_offset: i64,
    /// The latest epoch in this replica's leader-epoch cache, -1 if none.
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
}

/// What a leader's Fetch answer says of a partition besides its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderFetchState {
    /// The epoch the follower fetched in (a newer local epoch fences the answer).
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// A validated batch of a leader's answer; `end` is its end in the answer's bytes.
struct FetchedBatch {
    batch: RecordBatch,
    header: klamm_storage::BatchHeader,
    end: usize,
}

/// What kind of change of the view [`Partition::update_view`] checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ViewChange {
    /// Appends as leader, retention, DeleteRecords, compaction, a leader's new
    /// high watermark: offsets only move forward.
    Advance,
    /// A role change, a follower taking the leader's high watermark (a new
    /// leader's may lag the old one's) or a truncation (below the log start
    /// it restarts the log there): offsets may move back.
    Reset,
}

/// The partition's mutable state while its log is open (`None` in the lock
/// once closed or deleted).
struct OpenPartition {
    log: Log,
    producers: ProducerStateTable,
    replication: ReplicationState,
    /// Offset of the producer-state snapshot on disk (-1: none).
    snapshot_offset: i64,
}

impl OpenPartition {
    /// After a truncation to the log's new end (`everything`: the whole log
    /// was replaced): the snapshot on disk may describe batches that are gone.
    fn truncated(&mut self, dir: &Path, everything: bool) {
        if self.snapshot_offset >= 0 && (everything || self.snapshot_offset > self.log.log_end_offset()) {
            if let Err(e) = producer_snapshot::remove(dir) {
                warn!(dir = %dir.display(), error = %e, "removing a stale producer-state snapshot failed");
            }
            self.snapshot_offset = -1;
        }
    }
}

pub struct Partition {
    pub topic: String,
    pub topic_id: [u8; 16],
    pub index: i32,
    pub dir: PathBuf,
    /// This broker's id (a view whose leader it is describes its own leadership).
    node_id: i32,
    state: Mutex<Option<OpenPartition>>,
    /// Why the partition was taken offline on this node (set once; see the
    /// module doc). While set, the state lock holds `None`.
    offline: OnceLock<String>,
    /// Poked when the partition goes offline, so the replica manager's
    /// reconciler moves it to its offline set without waiting for a change
    /// of metadata.
    offline_signal: OnceLock<Arc<tokio::sync::Notify>>,
    follower_health: FollowerHealth,
    reader: LogReader,
    view: watch::Sender<PartitionView>,
    config: RwLock<Arc<TopicConfig>>,
    /// Bytes and messages in/out of this replica, for `/metrics` (relaxed atomics).
    pub metrics: crate::metrics::PartitionCounters,
}

impl Partition {
    /// Opens (recovering if needed) or creates the partition's log in `dir`
    /// and rebuilds producer state from it.
    pub fn open(
        topic: &str,
        topic_id: [u8; 16],
        index: i32,
        dir: &Path,
        config: Arc<TopicConfig>,
        node_id: i32,
        meta: &PartitionImage,
        now_ms: i64,
        producer_id_expiration_ms: i64,
        checkpointed_high_watermark: Option<i64>,
    ) -> Result<Partition, klamm_storage::Error> {
        let log = Log::open(dir, log_config(&config), now_ms)?;
        let reader = log.reader();
        // Producer state is rebuilt from the batch headers, but only from the segments
        // written within producer.id.expiration.ms: a producer seen only in older ones
        // would be expired at once, so reading them (all of the retention, perhaps
        // days of data) would only slow the start.
        // A snapshot (`producer_snapshot.rs`) saves replaying what it covers.
        let leo = log.log_end_offset();
        let (snapshot_offset, mut producers) = match producer_snapshot::read(dir) {
            Some((offset, table)) if offset <= leo => (offset, table),
            Some((offset, _)) => {
                warn!(topic, partition = index, snapshot_offset = offset, log_end_offset = leo, "producer-state snapshot is past the recovered log end; replaying instead");
                let _ = producer_snapshot::remove(dir);
                (-1, ProducerStateTable::default())
            }
            None => (-1, ProducerStateTable::default()),
        };
        let replay_from = reader.first_offset_possibly_since(now_ms.saturating_sub(producer_id_expiration_ms)).max(snapshot_offset);
        storage_adapter::replay_producer_state(&reader, replay_from, leo, &mut producers);
        producers.remove_expired(now_ms, producer_id_expiration_ms);
        // A lone replica has everything it wrote committed. A replica of a replicated
        // partition starts from its checkpointed high watermark (at most its log end) and
        // learns newer ones from the leader, or as leader from its followers' fetches.
        let high_watermark = if meta.replicas.len() <= 1 {
            leo
        } else {
            checkpointed_high_watermark.unwrap_or(0).clamp(log.log_start_offset(), leo)
        };
        let last_stable_offset = producers.last_stable_offset(high_watermark);
        let view = PartitionView {
            log_start_offset: log.log_start_offset(),
            high_watermark,
            last_stable_offset,
            log_end_offset: leo,
            leader_epoch: -1,
            leader: NO_LEADER,
            leader_epoch_start_offset: -1,
        };
        let replication = ReplicationState::new(node_id, leo);
        if leo > 0 {
            info!(topic, partition = index, log_end_offset = leo, producers = producers.len(), snapshot_offset, replayed_from = replay_from.min(leo), "partition loaded");
        }
        Ok(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            dir: dir.to_path_buf(),
            node_id,
            state: Mutex::new(Some(OpenPartition { log, producers, replication, snapshot_offset })),
            offline: OnceLock::new(),
            offline_signal: OnceLock::new(),
            follower_health: FollowerHealth::default(),
            reader,
            view: watch::channel(view).0,
            config: RwLock::new(config),
            metrics: Default::default(),
        })
        .map(|p| {
            p.apply_metadata(meta, now_ms);
            p
        })
    }

    pub fn view(&self) -> PartitionView {
        *self.view.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<PartitionView> {
        self.view.subscribe()
    }

    pub fn reader(&self) -> &LogReader {
        &self.reader
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        // Only whole `Arc`s are stored under this lock: a panic elsewhere
        // while it was held cannot have left it half-written.
        self.config.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn set_config(&self, config: Arc<TopicConfig>) {
        if let Some(w) = self.lock().as_mut() {
            if let Err(e) = w.log.set_config(log_config(&config)) {
                warn!(topic = %self.topic, partition = self.index, error = %e, "log settings rejected, keeping the old ones");
            }
        }
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// The partition's state, `None` once the log is closed or the partition
    /// is offline. Never panics: a lock poisoned by a panic of an earlier
    /// holder takes the partition offline (its state may be half-changed),
    /// and an offline partition's state is dropped here if it is still held.
    fn lock(&self) -> MutexGuard<'_, Option<OpenPartition>> {
        let mut guard = self.state.lock().unwrap_or_else(|poisoned| {
            // Offline first, then unpoisoned: `is_offline` sees one or the other.
            self.take_offline("a panic while holding the partition's state lock left its state unknown".to_string());
            self.state.clear_poison();
            poisoned.into_inner()
        });
        if guard.is_some() && self.offline.get().is_some() {
            // Dropped without a flush or a clean-shutdown marker: the next
            // open recovers the log from what is on disk.
            drop(guard.take());
        }
        guard
    }

    /// Takes the partition offline on this node (the first reason wins and
    /// is logged once; see the module doc). The open state is dropped by the
    /// next [`Partition::lock`], so this may be called with the lock held.
    /// Waiting fetches and acks=all produces are woken to see it.
    pub fn take_offline(&self, reason: String) {
        let reason_text = reason.clone();
        if self.offline.set(reason).is_err() {
            return;
        }
        error!(topic = %self.topic, partition = self.index, reason = %reason_text, "partition taken offline on this node: requests for it are answered KAFKA_STORAGE_ERROR until it is reopened from disk");
        self.view.send_modify(|_| {});
        if let Some(signal) = self.offline_signal.get() {
            signal.notify_one();
        }
    }

    /// Why the partition is offline on this node, if it is.
    pub fn offline_reason(&self) -> Option<&str> {
        self.offline.get().map(String::as_str)
    }

    /// Whether the partition is offline on this node: taken offline, or its
    /// state lock poisoned by a panic that no later locker has seen yet.
    /// Does not take the lock (callers may hold it).
    pub fn is_offline(&self) -> bool {
        self.offline.get().is_some() || self.state.is_poisoned()
    }

    /// Where [`Partition::take_offline`] reports to (the replica manager's
    /// reconciler); set once, after the open.
    pub fn set_offline_signal(&self, signal: Arc<tokio::sync::Notify>) {
        let _ = self.offline_signal.set(signal);
        if self.is_offline() {
            if let Some(signal) = self.offline_signal.get() {
                signal.notify_one();
            }
        }
    }

    /// Test hook: panics while holding the state lock, as a bug in any
    /// locked section would.
    #[cfg(test)]
    pub(crate) fn panic_under_state_lock(&self) {
        let _guard = self.lock();
        panic!("test hook: a bug while holding the partition's state lock");
    }

    /// Drops the open state of an offline partition now, and (for a lock
    /// poisoned by a panic no one has noticed yet) records why: the replica
    /// manager does this before it opens the partition's log again.
    pub fn release_offline_state(&self) {
        drop(self.lock());
    }

    /// The error for a request that finds no open state: KAFKA_STORAGE_ERROR
    /// when the partition is offline, else NOT_LEADER_OR_FOLLOWER (closed,
    /// deleted, or not opened yet).
    fn unavailable(&self) -> ErrorCode {
        if self.is_offline() {
            ErrorCode::KAFKA_STORAGE_ERROR
        } else {
            ErrorCode::NOT_LEADER_OR_FOLLOWER
        }
    }

    /// Publishes a change of the view (`change` returns whether it changed
    /// anything; readers wake only then) and checks the view's invariants:
    /// the high watermark never passes the log end offset, nor the last
    /// stable offset the high watermark; outside a truncation the log start
    /// offset never moves back; and while this broker leads in one epoch its
    /// high watermark never moves back. These are guaranteed by construction,
    /// so they are always checked (they are cheap). Only the first two hold
    /// for a [`ViewChange::Reset`]. Called under the state lock.
    fn update_view(&self, kind: ViewChange, change: impl FnOnce(&mut PartitionView) -> bool) {
        let node_id = self.node_id;
        self.view.send_if_modified(|v| {
            let before = *v;
            let changed = change(v);
            assert!(v.high_watermark <= v.log_end_offset, "{}-{}: high watermark {} past the log end offset {}", self.topic, self.index, v.high_watermark, v.log_end_offset);
            assert!(v.last_stable_offset <= v.high_watermark, "{}-{}: last stable offset {} past the high watermark {}", self.topic, self.index, v.last_stable_offset, v.high_watermark);
            if kind == ViewChange::Advance {
                assert!(v.log_start_offset >= before.log_start_offset, "{}-{}: log start offset moved back from {} to {}", self.topic, self.index, before.log_start_offset, v.log_start_offset);
                let same_leadership = before.leader == node_id && v.leader == node_id && before.leader_epoch == v.leader_epoch;
                assert!(!same_leadership || v.high_watermark >= before.high_watermark, "{}-{}: leader's high watermark moved back from {} to {}", self.topic, self.index, before.high_watermark, v.high_watermark);
            }
            changed
        });
    }

    /// Brings the replication state in line with the partition's entry in the metadata
    /// image (see [`ReplicationState::apply_metadata`]); becoming leader records the
    /// epoch's start offset in the leader-epoch cache.
    pub fn apply_metadata(&self, meta: &PartitionImage, now_ms: i64) {
        let mut guard = self.lock();
        let Some(w) = guard.as_mut() else { return };
        let leo = w.log.log_end_offset();
        match w.replication.apply_metadata(meta, leo, now_ms) {
            RoleChange::Unchanged => return,
            RoleChange::Stale => {
                warn!(
                    topic = %self.topic, partition = self.index,
                    leader_epoch = meta.leader_epoch, partition_epoch = meta.partition_epoch,
                    known_leader_epoch = w.replication.leader_epoch(),
                    "ignoring a metadata image older than the one applied"
                );
                return;
            }
            RoleChange::BecameLeader { leader_epoch, start_offset } => {
                if let Err(e) = w.log.assign_epoch(leader_epoch, start_offset) {
                    warn!(topic = %self.topic, partition = self.index, error = %e, "recording the leader epoch failed");
                }
                info!(topic = %self.topic, partition = self.index, leader_epoch, log_end_offset = leo, isr = ?meta.isr, "became leader");
            }
            RoleChange::Updated => {}
        }
        let hw = self.leader_high_watermark(w);
        let st = &w.replication;
        let (leader, leader_epoch, leader_epoch_start_offset) = (st.leader(), st.leader_epoch(), st.leader_epoch_start_offset());
        let producers = &mut w.producers;
        // A change of role or epoch: the previous high watermark may be a follower's.
        self.update_view(ViewChange::Reset, |v| {
            v.leader = leader;
            v.leader_epoch = leader_epoch;
            v.leader_epoch_start_offset = leader_epoch_start_offset;
            if let Some(hw) = hw {
                v.high_watermark = hw;
            }
            v.last_stable_offset = producers.last_stable_offset(v.high_watermark);
            true
        });
    }

    /// (bytes, segments) of the open log, for `/metrics` (takes the partition lock briefly;
    /// None once closed).
    pub fn log_stats(&self) -> Option<(u64, usize)> {
        self.lock().as_ref().map(|w| (w.log.size_bytes(), w.log.segment_count()))
    }

    /// The committed ISR size as this broker knows it.
    pub fn isr_len(&self) -> usize {
        self.lock().as_ref().map(|w| w.replication.isr_len()).unwrap_or(0)
    }

    /// Whether this broker leads the partition (by the metadata it applied).
    pub fn is_leader(&self) -> bool {
        self.lock().as_ref().is_some_and(|w| w.replication.is_leader())
    }

    /// As leader: the high watermark the ISR allows, if it is above the current one.
    /// `None` when it does not move (or this broker does not lead).
    fn leader_high_watermark(&self, w: &OpenPartition) -> Option<i64> {
        let current = self.view.borrow().high_watermark;
        let min_isr = self.config().min_insync_replicas.max(1) as usize;
        w.replication.high_watermark(w.log.log_end_offset(), current, min_isr)
    }

    /// Publishes a higher high watermark computed under the state lock (and
    /// the last stable offset it lets through).
    fn publish_high_watermark(&self, hw: Option<i64>, producers: &mut ProducerStateTable) {
        if let Some(hw) = hw {
            self.update_view(ViewChange::Advance, |v| {
                if hw > v.high_watermark {
                    v.high_watermark = hw;
                    v.last_stable_offset = producers.last_stable_offset(hw);
                    true
                } else {
                    false
                }
            });
        }
    }

    /// As leader, for a follower's Fetch: checks that `replica` may fetch in the epoch it
    /// names, then records its fetch offset as its log end offset and advances the high
    /// watermark. Returns the leader's diverging epoch `(epoch, end offset)` when the
    /// follower's last fetched epoch shows its log diverged (it must truncate first; its
    /// fetch offset then says nothing about what it holds).
    pub fn record_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        now_ms: i64,
    ) -> Result<Option<(i32, i64)>, ErrorCode> {
        let mut guard = self.lock();
        let w = guard.as_mut().ok_or_else(|| self.unavailable())?;
        w.replication.check_follower(replica)?;
        if last_fetched_epoch >= 0 {
            let (epoch, end) = w.log.end_offset_for_epoch(last_fetched_epoch);
            if epoch >= 0 && (end < fetch_offset || epoch < last_fetched_epoch) {
                return Ok(Some((epoch, end)));
            }
        }
        let leo = w.log.log_end_offset();
        if fetch_offset > leo || fetch_offset < w.log.log_start_offset() {
            return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
        }
        w.replication.record_follower_fetch(replica, fetch_offset, leo, now_ms);
        let hw = self.leader_high_watermark(w);
        self.publish_high_watermark(hw, &mut w.producers);
        drop(guard);
        Ok(None)
    }

    /// As leader: the ISR change the followers' progress calls for, if any (see
    /// [`ReplicationState::isr_proposal`]).
    pub fn isr_proposal(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrProposal> {
        let mut guard = self.lock();
        let w = guard.as_mut()?;
        let hw = self.view.borrow().high_watermark;
        w.replication.isr_proposal(now_ms, lag_max_ms, hw)
    }

    /// Forgets pending ISR additions after a proposal failed.
    pub fn clear_pending_isr(&self) {
        if let Some(w) = self.lock().as_mut() {
            w.replication.clear_pending_additions();
        }
    }

    /// As follower: where to fetch from next, or None when this broker leads or no
    /// leader is known.
    pub fn fetch_position(&self) -> Option<FetchPosition> {
        let guard = self.lock();
        let w = guard.as_ref()?;
        let (leader, leader_epoch) = w.replication.followed_leader()?;
        Some(FetchPosition {
            leader,
            leader_epoch,
            fetch_offset: w.log.log_end_offset(),
            last_fetched_epoch: w.log.latest_epoch().unwrap_or(-1),
            log_start_offset: w.log.log_start_offset(),
        })
    }

    /// As follower: appends the batches a leader returned (whole batches only; a partial
    /// batch at the end is left for the next fetch), keeping their offsets and leader
    /// epochs, then takes the leader's high watermark (capped by what this log holds) and
    /// log start offset. Returns the new log end offset.
    ///
    /// Every batch is validated first (structure and CRC, as Kafka checks batches of
    /// every origin): if one fails, nothing is appended, the partition is flagged and
    /// counted in [`Partition::follower_health`], the failure is logged once, and the
    /// answer is CORRUPT_MESSAGE (the fetcher backs off before asking again).
    pub fn append_as_follower(&self, records: Bytes, leader: LeaderFetchState, now_ms: i64) -> Result<i64, PartitionError> {
        // Outside the lock: CRCs of up to replica.fetch.max.bytes.
        let fetched = self.check_fetched(&records)?;
        let mut guard = self.lock();
        let w = guard.as_mut().ok_or_else(|| PartitionError::code(self.unavailable()))?;
        if w.replication.is_leader() || w.replication.leader_epoch() != leader.leader_epoch {
            return Err(PartitionError::code(ErrorCode::FENCED_LEADER_EPOCH));
        }
        let leo = w.log.log_end_offset();
        // Already here (a retried fetch) from the first batch below the log end on: the
        // log only takes offsets from its end.
        let new = fetched.iter().take_while(|f| f.batch.base_offset() >= leo).count();
        if new > 0 {
            let whole = fetched[new - 1].end;
            let headers: Vec<_> = fetched[..new].iter().map(|f| f.header).collect();
            let log_end_before = w.log.log_end_offset();
            w.log.append_parsed_as_follower(&records[..whole], &headers, now_ms).map_err(|e| self.failed_append(w, log_end_before, &e))?;
            for f in &fetched[..new] {
                if let Some(txn) = w.producers.replay(&f.batch) {
                    self.index_completed_txn(w, txn);
                }
            }
        }
        let leo = w.log.log_end_offset();
        if leader.log_start_offset > w.log.log_start_offset() && leader.log_start_offset <= leo {
            if let Err(e) = w.log.advance_log_start_offset(leader.log_start_offset) {
                warn!(topic = %self.topic, partition = self.index, error = %e, "following the leader's log start failed");
            }
        }
        let log_start = w.log.log_start_offset();
        let hw = leader.high_watermark.min(leo);
        let producers = &mut w.producers;
        self.update_view(ViewChange::Reset, |v| {
            v.log_end_offset = leo;
            v.log_start_offset = log_start;
            v.high_watermark = hw.max(log_start);
            v.last_stable_offset = producers.last_stable_offset(v.high_watermark).max(log_start);
            true
        });
        drop(guard);
        if !fetched.is_empty() {
            if let Some(failure) = self.follower_health.record_good() {
                info!(topic = %self.topic, partition = self.index, previous_failure = %failure, "the leader serves valid batches again");
            }
        }
        Ok(leo)
    }

    /// Splits a leader's answer into whole batches and validates each (a partial batch
    /// at the end is cut off by the leader's size limit and comes whole next time).
    fn check_fetched(&self, records: &Bytes) -> Result<Vec<FetchedBatch>, PartitionError> {
        let mut fetched = Vec::new();
        let mut iter = iter_batches(records.clone());
        while let Some(batch) = iter.next() {
            let checked = match batch {
                Ok(batch) => batch.validate_header().map_err(|e| format!("batch at offset {}: {e}", batch.base_offset())).and_then(|()| {
                    let header = klamm_storage::BatchHeader::of(&batch).map_err(|e| format!("batch at offset {}: {e}", batch.base_offset()))?;
                    Ok(FetchedBatch { batch, header, end: iter.position() })
                }),
                Err(RecordsError::Truncated { .. }) => break,
                Err(e) => Err(format!("unreadable batch at byte {} of the answer: {e}", iter.position())),
            };
            match checked {
                Ok(f) => fetched.push(f),
                Err(reason) => {
                    if self.follower_health.record_corrupt(&reason) {
                        warn!(topic = %self.topic, partition = self.index, %reason, "refusing a corrupt batch from the leader; nothing appended, will retry with back-off");
                    }
                    return Err(PartitionError::new(ErrorCode::CORRUPT_MESSAGE, reason));
                }
            }
        }
        Ok(fetched)
    }

    /// As follower: batches refused from the leader, and whether the partition is stuck
    /// on one (for operators and metrics).
    pub fn follower_health(&self) -> FollowerHealthReport {
        self.follower_health.report()
    }

    /// As follower: the leader said our log diverged after `(epoch, end_offset)`; truncates
    /// to where both logs agree: the end of that epoch here, capped by the leader's end of it.
    pub fn truncate_diverging(&self, epoch: i32, end_offset: i64) -> Result<i64, PartitionError> {
        self.truncate_as_follower(|w| {
            let (own_epoch, own_end) = w.log.end_offset_for_epoch(epoch);
            if own_epoch < 0 { end_offset } else { end_offset.min(own_end) }
        })
    }

    /// As follower: truncates the log to `offset` (no-op when it ends there or earlier),
    /// for when no epoch tells where the logs split, e.g. a replica ahead of the leader
    /// keeps only what the leader's high watermark covers. Returns the new log end offset.
    pub fn truncate_to_offset(&self, offset: i64) -> Result<i64, PartitionError> {
        self.truncate_as_follower(|_| offset)
    }

    /// Under the state lock and only while following: truncates to the offset that
    /// `target` picks from the log (NOT_LEADER_OR_FOLLOWER when leading or closed).
    fn truncate_as_follower(&self, target: impl FnOnce(&OpenPartition) -> i64) -> Result<i64, PartitionError> {
        let mut guard = self.lock();
        let w = guard.as_mut().ok_or_else(|| PartitionError::code(self.unavailable()))?;
        if w.replication.is_leader() {
            return Err(PartitionError::code(ErrorCode::NOT_LEADER_OR_FOLLOWER));
        }
        let target = target(w);
        self.truncate_locked(w, target)
    }

    /// As follower: our fetch offset is below the leader's log start; starts over there.
    pub fn restart_at(&self, offset: i64) -> Result<i64, PartitionError> {
        let mut guard = self.lock();
        let w = guard.as_mut().ok_or_else(|| PartitionError::code(self.unavailable()))?;
        if w.replication.is_leader() {
            return Err(PartitionError::code(ErrorCode::NOT_LEADER_OR_FOLLOWER));
        }
        w.log.truncate_fully_and_start_at(offset.max(0)).map_err(|e| PartitionError::new(ErrorCode::KAFKA_STORAGE_ERROR, e.to_string()))?;
        w.producers = ProducerStateTable::default();
        w.truncated(&self.dir, true);
        let leo = w.log.log_end_offset();
        self.update_view(ViewChange::Reset, |v| {
            v.log_start_offset = leo;
            v.log_end_offset = leo;
            v.high_watermark = leo;
            v.last_stable_offset = leo;
            true
        });
        drop(guard);
        Ok(leo)
    }

    fn truncate_locked(&self, w: &mut OpenPartition, target: i64) -> Result<i64, PartitionError> {
        let before = w.log.log_end_offset();
        if target < before {
            w.log.truncate_to(target.max(0)).map_err(|e| PartitionError::new(ErrorCode::KAFKA_STORAGE_ERROR, e.to_string()))?;
            w.producers.truncate_to(w.log.log_end_offset());
            w.truncated(&self.dir, false);
            warn!(topic = %self.topic, partition = self.index, from = before, to = w.log.log_end_offset(), "truncated a diverging log suffix");
        }
        let leo = w.log.log_end_offset();
        let log_start = w.log.log_start_offset();
        let producers = &mut w.producers;
        self.update_view(ViewChange::Reset, |v| {
            v.log_end_offset = leo;
            v.log_start_offset = log_start;
            v.high_watermark = v.high_watermark.min(leo);
            v.last_stable_offset = producers.last_stable_offset(v.high_watermark);
            true
        });
        Ok(leo)
    }

    /// As leader, for acks=all: waits until the high watermark reaches `required_offset`
    /// within `leader_epoch`, or `deadline`. Kafka's DelayedProduce answers.
    pub async fn wait_for_high_watermark(&self, required_offset: i64, leader_epoch: i32, deadline: tokio::time::Instant) -> Result<(), ErrorCode> {
        let mut rx = self.view.subscribe();
        loop {
            let v = *rx.borrow_and_update();
            if self.is_offline() {
                return Err(ErrorCode::KAFKA_STORAGE_ERROR);
            }
            if v.leader_epoch != leader_epoch || !self.is_leader() {
                return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
            }
            if v.high_watermark >= required_offset {
                let min_isr = self.config().min_insync_replicas.max(1) as usize;
                let isr = self.isr_len();
                return if isr < min_isr && isr < self.replica_count() { Err(ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND) } else { Ok(()) };
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
                Err(_) => return Err(ErrorCode::REQUEST_TIMED_OUT),
            }
        }
    }

    /// Appends a batch built by this broker's group coordinator (Kafka's
    /// `AppendOrigin.COORDINATOR`): a TxnOffsetCommit's transactional batch.
    /// Its records are the broker's own, so only the size is checked, and of
    /// the producer state only the epoch: Kafka's coordinator writes every such
    /// batch with base sequence 0 and does not check sequences for them.
    pub fn append_from_coordinator(&self, records: Bytes, now_ms: i64) -> Result<AppendResult, PartitionError> {
        let (batch, _) = RecordBatch::parse(records)
            .map_err(|e| PartitionError::new(records_error_code(&e), format!("invalid record batch: {e}")))?;
        let max = self.config().max_message_bytes as i64;
        if batch.size() as i64 > max {
            return Err(PartitionError::new(ErrorCode::MESSAGE_TOO_LARGE, format!("The record batch size {} bytes exceeds max.message.bytes {max}", batch.size())));
        }
        let incoming = IncomingBatch::from_header(&batch);
        let mut header = klamm_storage::BatchHeader::of(&batch).map_err(|e| PartitionError::new(ErrorCode::KAFKA_STORAGE_ERROR, e.to_string()))?;
        let mut bytes = BytesMut::from(batch.as_bytes().as_ref());
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| PartitionError::code(self.unavailable()))?;
        if !open.replication.is_leader() {
            return Err(PartitionError::code(ErrorCode::NOT_LEADER_OR_FOLLOWER));
        }
        if let Some(current) = open.producers.get(incoming.producer_id).map(|e| e.epoch).filter(|e| incoming.producer_epoch < *e) {
            return Err(PartitionError::new(
                ErrorCode::INVALID_PRODUCER_EPOCH,
                format!("Epoch of producer {} is {}, which is smaller than the last seen epoch {current}", incoming.producer_id, incoming.producer_epoch),
            ));
        }
        let leader_epoch = open.replication.leader_epoch();
        let info = self.append_stamped(open, &mut bytes, &mut header, leader_epoch, now_ms)?;
        open.producers.record(&incoming, info.base_offset);
        let log_start = self.publish_leader_append(open);
        Ok(AppendResult { base_offset: info.base_offset, last_offset: info.last_offset, log_append_time_ms: -1, log_start_offset: log_start, leader_epoch })
    }

    /// Writes one batch as leader in `leader_epoch` (offsets and epoch stamped by
    /// the log): the one write of client, coordinator and marker appends. A
    /// storage failure is logged and answered KAFKA_STORAGE_ERROR.
    fn append_stamped(&self, open: &mut OpenPartition, bytes: &mut BytesMut, header: &mut klamm_storage::BatchHeader, leader_epoch: i32, now_ms: i64) -> Result<klamm_storage::AppendInfo, PartitionError> {
        let log_end_before = open.log.log_end_offset();
        open.log.append_parsed_as_leader(bytes, std::slice::from_mut(header), leader_epoch, now_ms).map_err(|e| self.failed_append(open, log_end_before, &e))
    }

    /// The answer to a failed append (leader or follower). Storage appends
    /// either write nothing or fail only after the batch is in the log (a
    /// checkpoint or an fsync after it); in that second case the log holds
    /// a batch that producer state and the view do not know, so the
    /// partition is taken offline and reopened from disk (Kafka takes the log
    /// directory offline on any I/O error). Either way: KAFKA_STORAGE_ERROR.
    fn failed_append(&self, open: &OpenPartition, log_end_before: i64, e: &klamm_storage::Error) -> PartitionError {
        if open.log.log_end_offset() != log_end_before {
            self.take_offline(format!("an append failed after its batch was written: {e}"));
        } else {
            warn!(topic = %self.topic, partition = self.index, error = %e, "append failed; nothing was written");
        }
        PartitionError::new(ErrorCode::KAFKA_STORAGE_ERROR, e.to_string())
    }

    /// How many replicas the partition has.
    pub fn replica_count(&self) -> usize {
        self.lock().as_ref().map(|w| w.replication.replica_count()).unwrap_or(0)
    }

    /// Validates and appends one client batch (Produce v3+ carries exactly
    /// one) without a transaction check: for callers that vouch for
    /// transactional batches themselves (the group coordinator, tests).
    pub fn append_from_client(&self, records: Bytes, api_version: i16, now_ms: i64) -> Result<AppendResult, PartitionError> {
        self.append_from_client_checked(records, api_version, now_ms, None)
    }

    /// Validates and appends one client batch. With `txn_guard` (Produce),
    /// a transactional batch is appended only into its producer's open
    /// transaction or, if it opens one, with the guard of a verification
    /// that no marker has ended since (0: none); else INVALID_TXN_STATE.
    pub fn append_from_client_checked(&self, records: Bytes, api_version: i16, now_ms: i64, txn_guard: Option<u64>) -> Result<AppendResult, PartitionError> {
        let config = self.config();
        let (batch, rest) = RecordBatch::parse(records)
            .map_err(|e| PartitionError::new(records_error_code(&e), format!("invalid record batch: {e}")))?;
        if !rest.is_empty() {
            return Err(PartitionError::new(ErrorCode::INVALID_RECORD, "Produce requests must carry exactly one record batch per partition"));
        }
        if batch.size() as i64 > config.max_message_bytes as i64 {
            return Err(PartitionError::new(
                ErrorCode::MESSAGE_TOO_LARGE,
                format!("The record batch size {} bytes exceeds max.message.bytes {}", batch.size(), config.max_message_bytes),
            ));
        }
        batch.validate_header().map_err(|e| PartitionError::new(records_error_code(&e), e.to_string()))?;
        if batch.compression().ok() == Some(Compression::Zstd) && api_version < 7 {
            return Err(PartitionError::new(ErrorCode::UNSUPPORTED_COMPRESSION_TYPE, "ZStandard compression needs Produce v7 or later"));
        }
        if batch.is_control() {
            return Err(PartitionError::new(ErrorCode::INVALID_RECORD, "Clients may not write control batches"));
        }
        if batch.is_transactional() && batch.producer_id() < 0 {
            return Err(PartitionError::new(ErrorCode::INVALID_RECORD, "Transactional batches must carry a producer id"));
        }
        if batch.records_count() == 0 {
            return Err(PartitionError::new(ErrorCode::INVALID_RECORD, "Record batch must contain at least one record"));
        }
        let store_as = validation::validate_records(&batch, &config, now_ms, &self.topic, self.index)?;
        let batch = match store_as {
            StoreAs::AsProduced => batch,
            StoreAs::Recompressed(codec) => {
                let bytes = records::recompress_batch(&batch, codec, validation::inflate_limit(&config))
                    .map_err(|e| PartitionError::new(records_error_code(&e), e.to_string()))?;
                let (recompressed, _) = RecordBatch::parse(bytes)
                    .map_err(|e| PartitionError::new(ErrorCode::KAFKA_STORAGE_ERROR, format!("recompressed batch unreadable: {e}")))?;
                recompressed
            }
        };
        let incoming = IncomingBatch::from_header(&batch);
        let mut header = klamm_storage::BatchHeader::of(&batch)
            .map_err(|e| PartitionError::new(ErrorCode::KAFKA_STORAGE_ERROR, e.to_string()))?;
        let log_append_time = config.message_timestamp_type == klamm_config::TimestampType::LogAppendTime;
        let client_timestamp_type = batch.timestamp_type();
        drop(rest);
        // The batch is stamped (base offset, leader epoch, maybe append time)
        // before it is written. When the request's buffer is ours alone, that
        // happens in place; otherwise (several partitions in one request share
        // it) on one copy. The records themselves are never re-encoded.
        let mut bytes = match batch.into_bytes().try_into_mut() {
            Ok(unique) => unique,
            Err(shared) => BytesMut::from(shared.as_ref()),
        };

        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| PartitionError::code(self.unavailable()))?;
        if !open.replication.is_leader() {
            return Err(PartitionError::code(ErrorCode::NOT_LEADER_OR_FOLLOWER));
        }
        let leader_epoch = open.replication.leader_epoch();
        match open.producers.check(&incoming) {
            SequenceCheck::Accept if incoming.transactional && txn_guard.is_some_and(|g| !open.producers.may_append_transactional(incoming.producer_id, incoming.producer_epoch, g)) => {
                return Err(PartitionError::new(ErrorCode::INVALID_TXN_STATE, "Record was not part of an ongoing transaction"));
            }
            SequenceCheck::Accept => {}
            SequenceCheck::Duplicate(previous) => {
                return Ok(AppendResult {
                    base_offset: previous.first_offset,
                    last_offset: previous.last_offset,
                    log_append_time_ms: -1,
                    log_start_offset: open.log.log_start_offset(),
                    leader_epoch,
                })
            }
            SequenceCheck::Reject(code, message) => return Err(PartitionError::new(code, message)),
        }

        let append_time = if log_append_time && client_timestamp_type != TimestampType::LogAppendTime {
            records::set_log_append_time(&mut bytes, now_ms).map_err(|e| PartitionError::new(ErrorCode::INVALID_RECORD, e.to_string()))?;
            header.set_log_append_time(now_ms);
            now_ms
        } else if log_append_time {
            now_ms
        } else {
            -1
        };
        let info = self.append_stamped(open, &mut bytes, &mut header, leader_epoch, now_ms)?;
        open.producers.record(&incoming, info.base_offset);
        let log_start = self.publish_leader_append(open);
        drop(guard);
        Ok(AppendResult { base_offset: info.base_offset, last_offset: info.last_offset, log_append_time_ms: append_time, log_start_offset: log_start, leader_epoch })
    }

    /// After a leader's append: publishes the new log end offset, log start
    /// offset, high watermark and last stable offset. Returns the log start.
    fn publish_leader_append(&self, open: &mut OpenPartition) -> i64 {
        let leo = open.log.log_end_offset();
        let log_start = open.log.log_start_offset();
        let hw = self.leader_high_watermark(open);
        let producers = &mut open.producers;
        self.update_view(ViewChange::Advance, |v| {
            v.log_end_offset = leo;
            v.log_start_offset = log_start;
            if let Some(hw) = hw {
                v.high_watermark = v.high_watermark.max(hw);
            }
            v.last_stable_offset = producers.last_stable_offset(v.high_watermark);
            true
        });
        log_start
    }

    /// Adds an aborted transaction to the log's transaction index (leaders
    /// and followers alike, right after its marker was appended). Its last
    /// stable offset is Kafka's: the first offset of the oldest transaction
    /// still open, else the offset after the marker.
    fn index_completed_txn(&self, w: &mut OpenPartition, txn: CompletedTxn) {
        if !txn.aborted {
            return;
        }
        let last_stable_offset = w.producers.ongoing_txns().next().map_or(txn.last_offset + 1, |(_, first)| first);
        let entry = klamm_storage::AbortedTxn { producer_id: txn.producer_id, first_offset: txn.first_offset, last_offset: txn.last_offset, last_stable_offset };
        if let Err(e) = w.log.append_aborted_txn(entry) {
            warn!(topic = %self.topic, partition = self.index, error = %e, "recording an aborted transaction failed");
        }
    }

    /// As leader, for WriteTxnMarkers: appends the COMMIT/ABORT marker of
    /// `producer_id`'s transaction (a control batch of one record) after
    /// checking its producer epoch and coordinator epoch, and ends the
    /// transaction. The caller waits for the high watermark to pass it.
    pub fn append_txn_marker(&self, producer_id: i64, producer_epoch: i16, marker: EndTransactionMarker, now_ms: i64) -> Result<AppendResult, PartitionError> {
        let batch = records::build_end_txn_marker(0, producer_id, producer_epoch, marker, now_ms);
        let (parsed, _) = RecordBatch::parse(batch.clone()).map_err(|e| PartitionError::new(ErrorCode::KAFKA_STORAGE_ERROR, e.to_string()))?;
        let mut header = klamm_storage::BatchHeader::of(&parsed).map_err(|e| PartitionError::new(ErrorCode::KAFKA_STORAGE_ERROR, e.to_string()))?;
        let mut bytes = BytesMut::from(batch.as_ref());
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| PartitionError::code(self.unavailable()))?;
        if !open.replication.is_leader() {
            return Err(PartitionError::code(ErrorCode::NOT_LEADER_OR_FOLLOWER));
        }
        open.producers.check_marker(producer_id, producer_epoch, marker.coordinator_epoch).map_err(|(code, message)| PartitionError::new(code, message))?;
        let leader_epoch = open.replication.leader_epoch();
        let info = self.append_stamped(open, &mut bytes, &mut header, leader_epoch, now_ms)?;
        let txn = open.producers.complete_txn(producer_id, producer_epoch, marker, info.base_offset, now_ms);
        self.index_completed_txn(open, txn);
        let log_start = self.publish_leader_append(open);
        drop(guard);
        Ok(AppendResult { base_offset: info.base_offset, last_offset: info.last_offset, log_append_time_ms: -1, log_start_offset: log_start, leader_epoch })
    }

    /// KIP-890: when a transactional batch of `producer_id` at
    /// `producer_epoch` would start a transaction here (only then does the
    /// leader ask the coordinator whether the partition is part of it),
    /// starts a verification and returns its guard, which the append must
    /// present ([`Partition::append_from_client_checked`]). None: no
    /// verification needed (or the log is closed).
    pub fn begin_txn_verification(&self, producer_id: i64, producer_epoch: i16) -> Option<u64> {
        let mut guard = self.lock();
        let open = guard.as_mut()?;
        let now_ms = crate::clock::now_ms();
        (!open.producers.in_transaction(producer_id, producer_epoch)).then(|| open.producers.start_verification(producer_id, now_ms))
    }

    /// DescribeProducers: the state of every producer known here.
    pub fn producer_states(&self) -> Option<Vec<(i64, ProducerEntry)>> {
        let guard = self.lock();
        guard.as_ref().map(|open| open.producers.iter().map(|(id, e)| (id, e.clone())).collect())
    }

    /// OffsetsForLeaderEpoch: the largest epoch <= `epoch` this log knows and the offset where
    /// it ended (the log end offset for the latest epoch), or (-1, -1) when none is known.
    /// None when the log is closed.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let guard = self.lock();
        guard.as_ref().map(|w| w.log.end_offset_for_epoch(epoch))
    }

    /// Publishes a new log start offset to readers (wakes them only if it moved).
    fn publish_log_start_offset(&self, log_start: i64) {
        self.update_view(ViewChange::Advance, |v| {
            let changed = v.log_start_offset != log_start;
            v.log_start_offset = log_start;
            changed
        });
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1: the high
    /// watermark) and returns the new log start offset (low watermark).
    pub fn delete_records(&self, offset: i64) -> Result<i64, ErrorCode> {
        if !self.config().cleanup_policy.delete {
            return Err(ErrorCode::POLICY_VIOLATION);
        }
        let mut guard = self.lock();
        let open = guard.as_mut().ok_or_else(|| self.unavailable())?;
        if !open.replication.is_leader() {
            return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
        }
        let high_watermark = self.view.borrow().high_watermark;
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
        }
        if let Err(e) = open.log.advance_log_start_offset(target) {
            warn!(topic = %self.topic, partition = self.index, error = %e, "DeleteRecords failed");
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
        let log_start = open.log.log_start_offset();
        self.publish_log_start_offset(log_start);
        drop(guard);
        Ok(log_start)
    }

    /// One compaction pass if the log is dirty enough (compacted topics;
    /// called by the cleaner task on a blocking thread). The offset map and
    /// the rewritten segments are built without the state lock, so appends
    /// continue; only planning and the final swap take it.
    pub fn compact_if_dirty(&self, now_ms: i64) -> Option<CompactionStats> {
        let params = storage_adapter::compaction_params(&self.config());
        // Never past what consumers may read (the last stable offset once
        // transactions exist).
        let upper_bound = self.view.borrow().last_stable_offset;
        let job = {
            let guard = self.lock();
            let open = guard.as_ref()?;
            match open.log.needs_compaction(&params, upper_bound, now_ms) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    warn!(topic = %self.topic, partition = self.index, error = %e, "cleaner could not assess the log");
                    return None;
                }
            }
            match open.log.begin_compaction(&params, upper_bound, now_ms) {
                Ok(Some(job)) => job,
                Ok(None) => return None,
                Err(e) => {
                    warn!(topic = %self.topic, partition = self.index, error = %e, "cleaner could not plan a pass");
                    return None;
                }
            }
        };
        let prepared = match job.run() {
            Ok(p) => p,
            Err(e) => {
                warn!(topic = %self.topic, partition = self.index, error = %e, "compaction pass failed");
                return None;
            }
        };
        let mut guard = self.lock();
        let open = guard.as_mut()?;
        let stats = match open.log.finish_compaction(prepared) {
            Ok(s) => s,
            Err(e) => {
                warn!(topic = %self.topic, partition = self.index, error = %e, "finishing compaction failed");
                return None;
            }
        };
        let log_start = open.log.log_start_offset();
        self.publish_log_start_offset(log_start);
        drop(guard);
        (!stats.aborted).then_some(stats)
    }

    /// Periodic work: retention (when
    /// `run_retention`), the time-based flush, the fsync of rolled segments
    /// and the recovery point, a producer-state snapshot after a roll (file
    /// writes without the state lock), and with `expire_producers_idle_ms`
    /// the expiry of idle producer ids. Returns the segments retention deleted.
    pub fn maintain(&self, now_ms: i64, run_retention: bool, expire_producers_idle_ms: Option<i64>) -> usize {
        let config = self.config();
        let mut guard = self.lock();
        let Some(open) = guard.as_mut() else { return 0 };
        let mut deleted = 0;
        if run_retention && config.cleanup_policy.delete {
            let retention_ms = (config.retention_ms >= 0).then_some(config.retention_ms);
            let retention_bytes = (config.retention_bytes >= 0).then_some(config.retention_bytes as u64);
            // Never past the last stable offset: a segment holding the first
            // batch of an open transaction stays (read_committed consumers
            // and the aborted-transaction index need it).
            let last_stable_offset = self.view.borrow().last_stable_offset;
            match open.log.apply_retention_bounded(retention_ms, retention_bytes, now_ms, last_stable_offset) {
                Ok(n) => deleted = n,
                Err(e) => warn!(topic = %self.topic, partition = self.index, error = %e, "retention failed"),
            }
        }
        if let Err(e) = open.log.flush_if_due(now_ms) {
            warn!(topic = %self.topic, partition = self.index, error = %e, "flush failed");
        }
        let rolled_flushes = open.log.take_rolled_flushes();
        if let Some(expiration_ms) = expire_producers_idle_ms {
            let expired = open.producers.remove_expired(now_ms, expiration_ms);
            if expired > 0 {
                debug!(topic = %self.topic, partition = self.index, expired, "expired idle producer ids");
            }
        }
        let log_start = open.log.log_start_offset();
        // A producer-state snapshot after each roll (as Kafka), written below
        // without the lock. A log whose only segment starts at its log start
        // has not rolled: a snapshot would cover nothing a replay would not
        // (and a fresh topic of 1 000 partitions wrote 1 000 of them, each
        // with a directory fsync, on its first tick).
        let active_base = open.log.active_segment_base_offset();
        let rolled_since_snapshot = active_base > open.snapshot_offset && active_base > log_start;
        let snapshot = rolled_since_snapshot.then(|| (open.log.log_end_offset(), open.producers.clone(), open.log.truncation_count()));
        self.publish_log_start_offset(log_start);
        drop(guard);
        // Outside the state lock: appends go on while rolled segments reach the disk.
        let mut flushed = Vec::with_capacity(rolled_flushes.len());
        for flush in rolled_flushes {
            match flush.run() {
                Ok(()) => flushed.push(flush),
                // The recovery point stays below this segment (and so below
                // the later ones too, which still get their fsync).
                Err(e) => warn!(topic = %self.topic, partition = self.index, base_offset = flush.base_offset(), error = %e, "flushing a rolled segment failed"),
            }
        }
        if !flushed.is_empty() {
            let mut guard = self.lock();
            if let Some(open) = guard.as_mut() {
                for flush in &flushed {
                    if let Err(e) = open.log.rolled_flush_done(flush) {
                        warn!(topic = %self.topic, partition = self.index, error = %e, "writing the recovery point failed");
                    }
                }
            }
        }
        if let Some((offset, producers, truncations)) = snapshot {
            if let Err(e) = self.write_producer_snapshot(offset, &producers, truncations) {
                warn!(topic = %self.topic, partition = self.index, error = %e, "writing the producer-state snapshot failed");
            }
        }
        deleted
    }

    /// Writes the producer state as of `offset` (taken under the state lock
    /// after `truncations` truncations) and installs it unless the log was
    /// truncated meanwhile. Only the rename runs under the lock.
    fn write_producer_snapshot(&self, offset: i64, producers: &ProducerStateTable, truncations: u64) -> std::io::Result<()> {
        let pending = producer_snapshot::write_pending(&self.dir, &producer_snapshot::encode(offset, producers))?;
        let mut guard = self.lock();
        match guard.as_mut() {
            Some(open) if open.log.truncation_count() == truncations => {
                producer_snapshot::install(&self.dir, &pending)?;
                open.snapshot_offset = offset;
            }
            _ => {
                drop(guard);
                return std::fs::remove_file(&pending);
            }
        }
        drop(guard);
        producer_snapshot::sync_dir(&self.dir)
    }

    /// Flushes and closes the log cleanly; further appends fail.
    pub fn close(&self) {
        let open = self.lock().take();
        if let Some(w) = open {
            // The next start then replays nothing (the log's close fsyncs the directory).
            let snapshot = producer_snapshot::encode(w.log.log_end_offset(), &w.producers);
            if let Err(e) = producer_snapshot::write_pending(&self.dir, &snapshot).and_then(|p| producer_snapshot::install(&self.dir, &p)) {
                warn!(topic = %self.topic, partition = self.index, error = %e, "writing the producer-state snapshot failed");
            }
            if let Err(e) = w.log.close() {
                warn!(topic = %self.topic, partition = self.index, error = %e, "closing log failed");
            }
        }
    }

    /// Closes the log and removes the partition directory (topic deleted).
    pub fn delete(&self) {
        let open = self.lock().take();
        if let Some(w) = open {
            if let Err(e) = w.log.delete() {
                warn!(topic = %self.topic, partition = self.index, error = %e, "deleting log failed");
            }
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            warn!(dir = %self.dir.display(), error = %e, "removing partition directory failed");
        }
    }
}
