//! Offsets committed inside a transaction (TxnOffsetCommit, KIP-98, with the
//! member checks of KIP-447), kept as Kafka's `OffsetMetadataManager` keeps
//! them: pending per producer id until the transaction's marker reaches the
//! offsets partition. A COMMIT marker turns them into committed offsets
//! (unless a plain commit written later in the log exists: the newer record
//! wins), an ABORT marker drops them. A tombstone for a partition removes its
//! pending offsets too.
//!
//! Synchronous, like [`super::offsets`]: the live coordinator and the replay
//! on load ([`super::persistence::load`]) share [`PendingOffsets`] and the
//! functions below.

use crate::topic_partition::TopicPartition;
use std::collections::BTreeMap;

use klamm_protocol::ErrorCode;

use super::offsets::{CommitPlan, CommitRequest, CommittedOffset};
use super::state::{Group, GroupState, Shard, UNKNOWN_MEMBER_ID};

/// Offsets of open transactions: producer id → group → (topic, partition).
pub type PendingOffsets = BTreeMap<i64, BTreeMap<String, BTreeMap<TopicPartition, CommittedOffset>>>;

/// Offsets per topic as OffsetFetch answers them: per partition the committed
/// offset (if any) and the partition's error (UNSTABLE_OFFSET_COMMIT).
pub type StableOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>, ErrorCode)>)>;

/// A TxnOffsetCommit: the commit and the producer whose transaction it joins.
/// `commit.retention_time_ms` is always -1 (TxnOffsetCommit has none).
#[derive(Clone, Debug)]
pub struct TxnCommitRequest {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: CommitRequest,
}

impl Shard {
    /// Kafka's `validateTransactionalOffsetCommit` and `commitTransactionalOffset`
    /// up to the append (unknown groups as in [`Shard::group_for_commit`]).
    pub fn prepare_txn_commit(&mut self, req: &TxnCommitRequest, now_ms: i64) -> CommitPlan {
        let c = &req.commit;
        let all = |e: ErrorCode| CommitPlan { errors: vec![e; c.offsets.len()], accepted: Vec::new() };
        if let Err(e) = self.group_for_commit(c, now_ms) {
            return all(e);
        }
        let group = self.groups.get(&c.group_id).expect("exists");
        if let Some(e) = validate_txn_offset_commit(group, c.generation_id, &c.member_id, c.group_instance_id.as_deref()) {
            return all(e);
        }
        self.plan_offsets(c, now_ms)
    }

    /// Records written transactional offsets as pending for the producer
    /// (values carry their record offsets, [`CommitPlan::set_record_offsets`]).
    pub fn apply_txn_commit(&mut self, req: &TxnCommitRequest, plan: &CommitPlan) {
        let by_group = self.pending_txn.entry(req.producer_id).or_default().entry(req.commit.group_id.clone()).or_default();
        for (i, value) in &plan.accepted {
            let o = &req.commit.offsets[*i];
            by_group.insert(TopicPartition::new(o.topic.clone(), o.partition), value.clone());
        }
    }

    /// The marker of `producer_id`'s transaction was written to this offsets
    /// partition: its pending offsets become committed (`commit`) or are
    /// dropped. Returns how many offsets became committed.
    pub fn complete_transaction(&mut self, producer_id: i64, commit: bool, now_ms: i64) -> usize {
        let mut applied = 0;
        for (group_id, tp, value) in take_completed(&mut self.pending_txn, producer_id, commit) {
            // The group may have gone meanwhile; offsets live on without one
            // (a "simple" group), as in Kafka.
            let group = self.groups.entry(group_id.clone()).or_insert_with(|| Group::new(&group_id, now_ms));
            if materialize(&mut group.offsets, tp, value) {
                applied += 1;
            }
        }
        applied
    }

    /// OffsetFetch with `require_stable` (v7+): a partition with a pending
    /// transactional offset answers UNSTABLE_OFFSET_COMMIT (offset -1) so the
    /// consumer retries once the transaction is over.
    pub fn fetch_offsets_stable(&self, group_id: &str, topics: Option<&[(String, Vec<i32>)]>, require_stable: bool) -> StableOffsets {
        self.fetch_offsets(group_id, topics)
            .into_iter()
            .map(|(topic, parts)| {
                let parts = parts
                    .into_iter()
                    .map(|(p, o)| {
                        if require_stable && is_pending(&self.pending_txn, group_id, &topic, p) {
                            (p, None, ErrorCode::UNSTABLE_OFFSET_COMMIT)
                        } else {
                            (p, o, ErrorCode::NONE)
                        }
                    })
                    .collect();
                (topic, parts)
            })
            .collect()
    }

    /// Removes every pending offset of `group_id` (the group is deleted) and
    /// returns the partitions, which need tombstones too.
    pub fn drop_pending_of_group(&mut self, group_id: &str) -> Vec<TopicPartition> {
        let mut out = Vec::new();
        for groups in self.pending_txn.values_mut() {
            if let Some(tps) = groups.remove(group_id) {
                out.extend(tps.into_keys());
            }
        }
        self.pending_txn.retain(|_, groups| !groups.is_empty());
        out.sort();
        out.dedup();
        out
    }
}

/// Whether some open transaction holds an offset of `group_id` for the partition.
pub fn is_pending(pending: &PendingOffsets, group_id: &str, topic: &str, partition: i32) -> bool {
    pending.values().any(|groups| groups.get(group_id).is_some_and(|tps| tps.contains_key(&TopicPartition::new(topic, partition))))
}

/// Whether some open transaction holds offsets of `group_id`.
pub fn group_has_pending(pending: &PendingOffsets, group_id: &str) -> bool {
    pending.values().any(|groups| groups.contains_key(group_id))
}

/// A tombstone for the partition: drops its pending offsets of every
/// producer. Returns whether there were any.
pub fn drop_pending(pending: &mut PendingOffsets, group_id: &str, topic: &str, partition: i32) -> bool {
    let key = TopicPartition::new(topic, partition);
    let mut dropped = false;
    for groups in pending.values_mut() {
        if let Some(tps) = groups.get_mut(group_id) {
            dropped |= tps.remove(&key).is_some();
            if tps.is_empty() {
                groups.remove(group_id);
            }
        }
    }
    pending.retain(|_, groups| !groups.is_empty());
    dropped
}

/// Ends `producer_id`'s transaction in `pending`: the offsets to commit
/// (none for an abort), as (group, (topic, partition), value).
pub fn take_completed(pending: &mut PendingOffsets, producer_id: i64, commit: bool) -> Vec<(String, TopicPartition, CommittedOffset)> {
    let Some(groups) = pending.remove(&producer_id) else { return Vec::new() };
    if !commit {
        return Vec::new();
    }
    groups.into_iter().flat_map(|(g, tps)| tps.into_iter().map(move |(tp, v)| (g.clone(), tp, v))).collect()
}

/// Makes a committed transactional offset the partition's offset unless the
/// current one was written later in the log (Kafka compares record offsets so
/// that compaction of `__consumer_offsets` cannot change the outcome).
/// Returns whether it was applied.
pub fn materialize(committed: &mut BTreeMap<TopicPartition, CommittedOffset>, tp: TopicPartition, value: CommittedOffset) -> bool {
    match committed.get(&tp) {
        Some(current) if current.record_offset >= value.record_offset => false,
        _ => {
            committed.insert(tp, value);
            true
        }
    }
}

/// Kafka's `ClassicGroup.validateOffsetCommit` for a transactional commit:
/// member and generation are checked when the request names them (v3+,
/// KIP-447); the group's rebalance state is not, and old producers (no member
/// fields) may always commit.
fn validate_txn_offset_commit(group: &Group, generation_id: i32, member_id: &str, group_instance_id: Option<&str>) -> Option<ErrorCode> {
    if group.is(GroupState::Dead) {
        return Some(ErrorCode::COORDINATOR_NOT_AVAILABLE);
    }
    if generation_id < 0 && group.is(GroupState::Empty) {
        return None;
    }
    if generation_id >= 0 || member_id != UNKNOWN_MEMBER_ID || group_instance_id.is_some() {
        if let Some(instance) = group_instance_id {
            match group.static_members.get(instance) {
                None => return Some(ErrorCode::UNKNOWN_MEMBER_ID),
                Some(current) if current != member_id => return Some(ErrorCode::FENCED_INSTANCE_ID),
                Some(_) => {}
            }
        }
        if !group.has(member_id) {
            return Some(ErrorCode::UNKNOWN_MEMBER_ID);
        }
        if generation_id != group.generation_id {
            return Some(ErrorCode::ILLEGAL_GENERATION);
        }
    }
    None
}
