//! Committed offsets of a group: OffsetCommit validation, OffsetFetch,
//! OffsetDelete and retention, as Kafka's `GroupCoordinator`
//! (`handleCommitOffsets`, `handleFetchOffsets`, `handleDeleteOffsets`) and
//! `GroupMetadata.removeExpiredOffsets` do it. Synchronous and deterministic,
//! like [`super::state`]; writing the records is the coordinator's job, which
//! calls [`Shard::apply_commit`] only after the append succeeded.

use crate::topic_partition::TopicPartition;
use std::collections::BTreeMap;

use klamm_protocol::ErrorCode;

use super::state::{Group, GroupState, Shard, UNKNOWN_MEMBER_ID};

/// One committed offset (OffsetCommit value v3, or v1 with an expire timestamp).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only for offsets loaded from old (v1) records.
    pub expire_timestamp_ms: Option<i64>,
    /// Offset of the commit record in `__consumer_offsets` (-1 before it is
    /// written). Kafka keeps it so that a transactional commit completing
    /// later never replaces a newer plain commit (`replayEndTransactionMarker`).
    pub record_offset: i64,
}

/// One partition of an OffsetCommit.
#[derive(Clone, Debug)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Clone, Debug)]
pub struct CommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2-4 `retention_time_ms` (-1 = broker default): an
    /// explicit retention gives the offset an expire timestamp (value v1).
    pub retention_time_ms: i64,
    pub offsets: Vec<OffsetToCommit>,
}

/// What an OffsetCommit turned into: an error per request partition (NONE for
/// the accepted ones) and the offsets to write, then apply.
#[derive(Clone, Debug, Default)]
pub struct CommitPlan {
    pub errors: Vec<ErrorCode>,
    /// Index into the request and the value to store.
    pub accepted: Vec<(usize, CommittedOffset)>,
}

impl CommitPlan {
    /// Stamps each accepted value with the offset its record got: the batch
    /// holds the accepted partitions' records in order from `base_offset`.
    pub fn set_record_offsets(&mut self, base_offset: i64) {
        for (k, (_, v)) in self.accepted.iter_mut().enumerate() {
            v.record_offset = base_offset + k as i64;
        }
    }
}

impl Shard {
    /// Kafka's `handleCommitOffsets` up to the append: checks generation and
    /// membership, metadata size; creates the (Empty) group for a standalone
    /// commit. Nothing is committed until [`Shard::apply_commit`].
    pub fn prepare_commit(&mut self, req: &CommitRequest, now_ms: i64) -> CommitPlan {
        let all = |e: ErrorCode| CommitPlan { errors: vec![e; req.offsets.len()], accepted: Vec::new() };
        if let Err(e) = self.group_for_commit(req, now_ms) {
            return all(e);
        }
        let group = self.groups.get_mut(&req.group_id).expect("exists");
        if let Some(e) = validate_offset_commit(group, req.generation_id, &req.member_id, req.group_instance_id.as_deref()) {
            return all(e);
        }
        match group.state {
            GroupState::Empty => {}
            GroupState::Stable | GroupState::PreparingRebalance => {
                // A commit counts as a heartbeat.
                if let Some(m) = group.members.iter_mut().find(|m| m.member_id == req.member_id) {
                    m.last_heartbeat_ms = now_ms;
                }
            }
            GroupState::CompletingRebalance => return all(ErrorCode::REBALANCE_IN_PROGRESS),
            GroupState::Dead => return all(ErrorCode::COORDINATOR_NOT_AVAILABLE),
        }
        self.plan_offsets(req, now_ms)
    }

    /// The group a commit (plain or transactional) goes to: an unknown group
    /// is created (a "simple" group, Empty) for a commit without generation,
    /// as from a consumer not using Kafka's group management; with a
    /// generation it is ILLEGAL_GENERATION.
    pub(super) fn group_for_commit(&mut self, req: &CommitRequest, now_ms: i64) -> Result<(), ErrorCode> {
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                return Err(ErrorCode::ILLEGAL_GENERATION);
            }
            self.groups.insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        Ok(())
    }

    /// The per-partition part of a commit (plain or transactional): metadata
    /// size, and the value to store for each accepted partition.
    pub(super) fn plan_offsets(&self, req: &CommitRequest, now_ms: i64) -> CommitPlan {
        let mut plan = CommitPlan { errors: Vec::with_capacity(req.offsets.len()), accepted: Vec::new() };
        for (i, o) in req.offsets.iter().enumerate() {
            let metadata = o.metadata.clone().unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                plan.errors.push(ErrorCode::OFFSET_METADATA_TOO_LARGE);
                continue;
            }
            plan.errors.push(ErrorCode::NONE);
            plan.accepted.push((
                i,
                CommittedOffset {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                    expire_timestamp_ms: (req.retention_time_ms >= 0).then(|| now_ms.saturating_add(req.retention_time_ms)),
                    record_offset: -1,
                },
            ));
        }
        plan
    }

    /// Makes written offsets visible.
    pub fn apply_commit(&mut self, req: &CommitRequest, plan: &CommitPlan) {
        let Some(group) = self.groups.get_mut(&req.group_id) else { return };
        for (i, value) in &plan.accepted {
            let o = &req.offsets[*i];
            group.offsets.insert(TopicPartition::new(o.topic.clone(), o.partition), value.clone());
        }
    }

    /// OffsetFetch for one group: `None` topics = every committed partition.
    /// Partitions without a commit come back as `None`.
    pub fn fetch_offsets(&self, group_id: &str, topics: Option<&[(String, Vec<i32>)]>) -> Vec<(String, Vec<(i32, Option<CommittedOffset>)>)> {
        let group = self.groups.get(group_id).filter(|g| !g.is(GroupState::Dead));
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(t, parts)| {
                    let ps = parts
                        .iter()
                        .map(|p| (*p, group.and_then(|g| g.offsets.get(&TopicPartition::new(t.clone(), *p)).cloned())))
                        .collect();
                    (t.clone(), ps)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> = BTreeMap::new();
                if let Some(g) = group {
                    for (TopicPartition { topic: t, partition: p }, o) in &g.offsets {
                        by_topic.entry(t.clone()).or_default().push((*p, Some(o.clone())));
                    }
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// Kafka's `handleDeleteOffsets`: a group-level error, or an error per
    /// partition; the removed partitions need tombstones.
    pub fn delete_offsets(&mut self, group_id: &str, partitions: &[TopicPartition]) -> Result<(Vec<ErrorCode>, Vec<TopicPartition>), ErrorCode> {
        let Some(group) = self.groups.get_mut(group_id) else { return Err(ErrorCode::GROUP_ID_NOT_FOUND) };
        let mut errors = Vec::with_capacity(partitions.len());
        let mut removed = Vec::new();
        let consumer_with_members = group.protocol_type.as_deref() == Some("consumer");
        for TopicPartition { topic: t, partition: p } in partitions {
            let code = match group.state {
                GroupState::Dead => return Err(ErrorCode::GROUP_ID_NOT_FOUND),
                GroupState::Empty => ErrorCode::NONE,
                GroupState::PreparingRebalance | GroupState::CompletingRebalance | GroupState::Stable => {
                    if !consumer_with_members {
                        return Err(ErrorCode::NON_EMPTY_GROUP);
                    }
                    if group.is_subscribed_to_topic(t) {
                        ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC
                    } else {
                        ErrorCode::NONE
                    }
                }
            };
            // Kafka writes the tombstone when a committed or a pending
            // transactional offset exists; it removes both.
            if code == ErrorCode::NONE {
                let committed = group.offsets.remove(&TopicPartition::new(t.clone(), *p)).is_some();
                let pending = super::txn_offsets::drop_pending(&mut self.pending_txn, group_id, t, *p);
                if committed || pending {
                    removed.push(TopicPartition::new(t.clone(), *p));
                }
            }
            errors.push(code);
        }
        Ok((errors, removed))
    }

    /// Kafka's offset retention (`cleanupGroupMetadata` /
    /// `removeExpiredOffsets`). Returns, per group, the expired partitions
    /// and whether the group itself is now gone (needs a group tombstone).
    pub fn expire_offsets(&mut self, now_ms: i64) -> Vec<(String, Vec<TopicPartition>, bool)> {
        let retention = self.config.offsets_retention_ms;
        let mut out = Vec::new();
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        let pending = &self.pending_txn;
        for id in ids {
            let group = self.groups.get_mut(&id).expect("exists");
            let expired: Vec<TopicPartition> = {
                let expired_by = |o: &CommittedOffset, base: i64| match o.expire_timestamp_ms {
                    Some(e) => now_ms >= e,
                    None => now_ms - base >= retention,
                };
                match (&group.protocol_type, group.state) {
                    (Some(_), GroupState::Empty) => {
                        let base = group.state_timestamp_ms;
                        group.offsets.iter().filter(|(_, o)| expired_by(o, base)).map(|(k, _)| k.clone()).collect()
                    }
                    (Some(pt), GroupState::Stable) if pt == "consumer" => match group.subscribed_topics() {
                        Some(subscribed) => group
                            .offsets
                            .iter()
                            .filter(|(TopicPartition { topic: t, .. }, o)| !subscribed.contains(t) && expired_by(o, o.commit_timestamp_ms))
                            .map(|(k, _)| k.clone())
                            .collect(),
                        None => Vec::new(),
                    },
                    (None, _) => group.offsets.iter().filter(|(_, o)| expired_by(o, o.commit_timestamp_ms)).map(|(k, _)| k.clone()).collect(),
                    _ => Vec::new(),
                }
            };
            // An offset with a pending transactional commit does not expire
            // yet (Kafka's `cleanupExpiredOffsets`).
            let expired: Vec<TopicPartition> =
                expired.into_iter().filter(|tp| !super::txn_offsets::is_pending(pending, &id, &tp.topic, tp.partition)).collect();
            for k in &expired {
                group.offsets.remove(k);
            }
            let gone = group.is(GroupState::Empty)
                && group.members.is_empty()
                && group.pending_members.is_empty()
                && group.offsets.is_empty()
                && !super::txn_offsets::group_has_pending(pending, &id);
            if gone {
                group.state = GroupState::Dead;
                self.groups.remove(&id);
            }
            if !expired.is_empty() || gone {
                out.push((id, expired, gone));
            }
        }
        out
    }
}

/// Kafka's `validateOffsetCommit` (non-transactional).
fn validate_offset_commit(group: &Group, generation_id: i32, member_id: &str, group_instance_id: Option<&str>) -> Option<ErrorCode> {
    if group.is(GroupState::Dead) {
        Some(ErrorCode::COORDINATOR_NOT_AVAILABLE)
    } else if generation_id >= 0 || member_id != UNKNOWN_MEMBER_ID || group_instance_id.is_some() {
        let fenced = group_instance_id.is_some_and(|i| matches!(group.static_members.get(i), Some(cur) if cur != member_id));
        if fenced {
            Some(ErrorCode::FENCED_INSTANCE_ID)
        } else if !group.has(member_id) {
            Some(ErrorCode::UNKNOWN_MEMBER_ID)
        } else if generation_id != group.generation_id {
            Some(ErrorCode::ILLEGAL_GENERATION)
        } else {
            None
        }
    } else if !group.is(GroupState::Empty) {
        // When the group is non-empty, only members can commit offsets.
        Some(ErrorCode::UNKNOWN_MEMBER_ID)
    } else {
        None
    }
}
