//! Tests of transactional offset commits: the pure rules (validation, pending
//! offsets, markers, the record-offset ordering, require_stable, tombstones,
//! retention), the replay on load, and the async coordinator over an
//! in-memory log.

use crate::topic_partition::TopicPartition;
use std::sync::Arc;

use bytes::Bytes;
use klamm_protocol::records::{build_end_txn_marker, iter_batches, EndTransactionMarker};
use klamm_protocol::ErrorCode;

use super::coordinator::GroupCoordinator;
use super::coordinator_tests::coordinator;
use super::offsets::{CommitRequest, CommittedOffset, OffsetToCommit};
use super::persistence::{self, MemLog, OffsetsLog};
use super::state::{GroupConfig, GroupState, Shard};
use super::tests::{jreq, join_of, protos, shard, sreq, stable_one, stable_two};
use super::txn_offsets::TxnCommitRequest;

const PID: i64 = 7;

fn txn(member: &str, generation: i32, instance: Option<&str>, offsets: &[(&str, i32, i64)]) -> TxnCommitRequest {
    TxnCommitRequest {
        producer_id: PID,
        producer_epoch: 0,
        commit: CommitRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: instance.map(String::from),
            retention_time_ms: -1,
            offsets: offsets
                .iter()
                .map(|(t, p, o)| OffsetToCommit { topic: t.to_string(), partition: *p, offset: *o, leader_epoch: -1, metadata: Some("m".into()) })
                .collect(),
        },
    }
}

/// Prepares and applies a transactional commit as if its batch got `base_offset`.
fn txn_commit_at(s: &mut Shard, req: &TxnCommitRequest, base_offset: i64) -> Vec<ErrorCode> {
    let mut plan = s.prepare_txn_commit(req, 100);
    if !plan.accepted.is_empty() {
        plan.set_record_offsets(base_offset);
        s.apply_txn_commit(req, &plan);
    }
    plan.errors
}

/// Prepares and applies a plain commit as if its batch got `base_offset`.
fn plain_commit_at(s: &mut Shard, partition: i32, offset: i64, base_offset: i64) {
    let req = CommitRequest {
        group_id: "g".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_time_ms: -1,
        offsets: vec![OffsetToCommit { topic: "t".into(), partition, offset, leader_epoch: -1, metadata: None }],
    };
    let mut plan = s.prepare_commit(&req, 100);
    assert_eq!(plan.errors, vec![ErrorCode::NONE]);
    plan.set_record_offsets(base_offset);
    s.apply_commit(&req, &plan);
}

fn committed(s: &Shard, partition: i32) -> Option<i64> {
    s.group("g").and_then(|g| g.offsets.get(&TopicPartition::new("t", partition)).map(|o| o.offset))
}

fn stable_fetch(s: &Shard, partitions: Vec<i32>) -> Vec<(i32, Option<i64>, ErrorCode)> {
    let topics = [("t".to_string(), partitions)];
    let f = s.fetch_offsets_stable("g", Some(&topics), true);
    f[0].1.iter().map(|(p, o, e)| (*p, o.as_ref().map(|o| o.offset), *e)).collect()
}

#[test]
fn pending_until_commit_marker_then_visible() {
    let mut s = shard(0);
    assert_eq!(txn_commit_at(&mut s, &txn("", -1, None, &[("t", 0, 10), ("t", 1, 20)]), 5), vec![ErrorCode::NONE; 2]);
    assert_eq!(committed(&s, 0), None, "pending offsets are not committed offsets");
    assert_eq!(s.group("g").unwrap().state, GroupState::Empty, "a simple group exists for the commit");
    // require_stable: UNSTABLE_OFFSET_COMMIT for the pending partitions only.
    assert_eq!(
        stable_fetch(&s, vec![0, 1, 2]),
        vec![(0, None, ErrorCode::UNSTABLE_OFFSET_COMMIT), (1, None, ErrorCode::UNSTABLE_OFFSET_COMMIT), (2, None, ErrorCode::NONE)]
    );
    // Without require_stable, the last committed (here none) comes back without error.
    let plain = s.fetch_offsets_stable("g", Some(&[("t".to_string(), vec![0])]), false);
    assert_eq!(plain[0].1, vec![(0, None, ErrorCode::NONE)]);
    // A marker of another producer changes nothing.
    assert_eq!(s.complete_transaction(PID + 1, true, 200), 0);
    assert_eq!(s.complete_transaction(PID, true, 200), 2);
    assert_eq!((committed(&s, 0), committed(&s, 1)), (Some(10), Some(20)));
    assert_eq!(stable_fetch(&s, vec![0, 1]), vec![(0, Some(10), ErrorCode::NONE), (1, Some(20), ErrorCode::NONE)]);
    assert!(s.pending_txn.is_empty());
    // A second marker for the same producer finds nothing pending.
    assert_eq!(s.complete_transaction(PID, true, 300), 0);
}

#[test]
fn abort_marker_drops_pending_offsets() {
    let mut s = shard(0);
    plain_commit_at(&mut s, 0, 3, 0);
    txn_commit_at(&mut s, &txn("", -1, None, &[("t", 0, 10)]), 1);
    assert_eq!(s.complete_transaction(PID, false, 200), 0);
    assert_eq!(committed(&s, 0), Some(3), "the committed offset before the transaction stays");
    assert_eq!(stable_fetch(&s, vec![0]), vec![(0, Some(3), ErrorCode::NONE)]);
    assert!(s.pending_txn.is_empty());
}

#[test]
fn newer_record_wins_between_plain_and_transactional_commits() {
    // Transactional commit at record offset 5, then a plain commit at 6: the
    // COMMIT marker must not overwrite the newer plain commit.
    let mut s = shard(0);
    txn_commit_at(&mut s, &txn("", -1, None, &[("t", 0, 10)]), 5);
    plain_commit_at(&mut s, 0, 50, 6);
    s.complete_transaction(PID, true, 200);
    assert_eq!(committed(&s, 0), Some(50));
    // Plain commit first, then the transactional one: the transaction wins.
    let mut s = shard(0);
    plain_commit_at(&mut s, 0, 50, 5);
    txn_commit_at(&mut s, &txn("", -1, None, &[("t", 0, 10)]), 6);
    s.complete_transaction(PID, true, 200);
    assert_eq!(committed(&s, 0), Some(10));
}

#[test]
fn kip447_member_checks() {
    let mut s = shard(0);
    // Unknown group with a generation: ILLEGAL_GENERATION, and no group is made.
    assert_eq!(txn_commit_at(&mut s, &txn("m", 1, None, &[("t", 0, 1)]), 0), vec![ErrorCode::ILLEGAL_GENERATION]);
    assert!(s.group("g").is_none());
    let (a, _b) = stable_two(&mut s);
    assert_eq!(txn_commit_at(&mut s, &txn(&a, 2, None, &[("t", 0, 1)]), 0), vec![ErrorCode::NONE]);
    assert_eq!(txn_commit_at(&mut s, &txn(&a, 1, None, &[("t", 0, 1)]), 0), vec![ErrorCode::ILLEGAL_GENERATION]);
    assert_eq!(txn_commit_at(&mut s, &txn("ghost", 2, None, &[("t", 0, 1)]), 0), vec![ErrorCode::UNKNOWN_MEMBER_ID]);
    // A producer before KIP-447 (v0-2) names no member: accepted even though
    // the group has members (unlike a plain commit).
    assert_eq!(txn_commit_at(&mut s, &txn("", -1, None, &[("t", 0, 1)]), 0), vec![ErrorCode::NONE]);
    // Metadata over offset.metadata.max.bytes, per partition.
    let mut big = txn(&a, 2, None, &[("t", 0, 1), ("t", 1, 2)]);
    big.commit.offsets[0].metadata = Some("x".repeat(4097));
    assert_eq!(txn_commit_at(&mut s, &big, 0), vec![ErrorCode::OFFSET_METADATA_TOO_LARGE, ErrorCode::NONE]);
    // The group's rebalance state is not checked: a member of the current
    // generation may commit while the group completes a rebalance.
    s.join(jreq("", None, protos(&["range"]), false), 50, 1000);
    assert_eq!(s.group("g").unwrap().state, GroupState::PreparingRebalance);
    assert_eq!(txn_commit_at(&mut s, &txn(&a, 2, None, &[("t", 0, 1)]), 0), vec![ErrorCode::NONE]);
}

#[test]
fn kip447_static_member_fencing() {
    let mut s = shard(0);
    let fx = s.join(jreq("", Some("i1"), protos(&["range"]), true), 1, 0);
    let member = join_of(&fx, 1).unwrap().member_id;
    s.sync(sreq(&member, 1, vec![(&member, b"A")]), 2, 0);
    s.assignment_stored("g", 1, ErrorCode::NONE, 0);
    assert_eq!(txn_commit_at(&mut s, &txn(&member, 1, Some("i1"), &[("t", 0, 1)]), 0), vec![ErrorCode::NONE]);
    assert_eq!(txn_commit_at(&mut s, &txn("other", 1, Some("i1"), &[("t", 0, 1)]), 0), vec![ErrorCode::FENCED_INSTANCE_ID]);
    assert_eq!(txn_commit_at(&mut s, &txn(&member, 1, Some("i2"), &[("t", 0, 1)]), 0), vec![ErrorCode::UNKNOWN_MEMBER_ID]);
}

#[test]
fn offset_delete_and_group_delete_drop_pending() {
    let mut s = shard(0);
    txn_commit_at(&mut s, &txn("", -1, None, &[("t", 0, 10), ("t", 1, 11)]), 0);
    // OffsetDelete of a partition with only a pending offset: tombstone, pending gone.
    let (errors, removed) = s.delete_offsets("g", &[TopicPartition::new("t", 0)]).unwrap();
    assert_eq!((errors, removed), (vec![ErrorCode::NONE], vec![TopicPartition::new("t", 0)]));
    assert_eq!(stable_fetch(&s, vec![0, 1]), vec![(0, None, ErrorCode::NONE), (1, None, ErrorCode::UNSTABLE_OFFSET_COMMIT)]);
    // Group deletion reports the pending partitions too.
    s.delete_group("g").unwrap();
    assert_eq!(s.drop_pending_of_group("g"), vec![TopicPartition::new("t", 1)]);
    assert!(s.pending_txn.is_empty());
    // A later COMMIT marker brings nothing back.
    assert_eq!(s.complete_transaction(PID, true, 500), 0);
}

#[test]
fn retention_keeps_offsets_with_pending_transactions() {
    let mut s = Shard::new(GroupConfig { offsets_retention_ms: 1000, ..GroupConfig::default() });
    plain_commit_at(&mut s, 0, 3, 0);
    txn_commit_at(&mut s, &txn("", -1, None, &[("t", 0, 10)]), 1);
    assert!(s.expire_offsets(10_000).is_empty(), "a pending transactional offset holds the partition and the group");
    s.complete_transaction(PID, false, 10_000);
    let expired = s.expire_offsets(20_000);
    assert_eq!(expired, vec![("g".to_string(), vec![TopicPartition::new("t", 0)], true)]);
}

// ----- replay on load -----

fn offset_record(group: &str, partition: i32, offset: i64) -> (Bytes, Option<Bytes>) {
    let value = CommittedOffset { offset, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 1, expire_timestamp_ms: None, record_offset: -1 };
    (persistence::offset_key(group, "t", partition), Some(persistence::offset_value(&value)))
}

fn marker(pid: i64, commit: bool) -> Bytes {
    build_end_txn_marker(0, pid, 0, EndTransactionMarker { commit, coordinator_epoch: 3 }, 1)
}

#[test]
fn load_replays_transactional_commits_and_markers() {
    let log = MemLog::default();
    log.append(persistence::build_batch(&[offset_record("g", 0, 1), offset_record("g", 1, 1), offset_record("g", 2, 1)], 1)).unwrap();
    // Producer 7 commits, producer 8 aborts, producer 9 stays open.
    log.append(persistence::build_txn_batch(&[offset_record("g", 0, 70)], 1, 7, 0)).unwrap();
    log.append(persistence::build_txn_batch(&[offset_record("g", 1, 80)], 1, 8, 0)).unwrap();
    log.append(persistence::build_txn_batch(&[offset_record("g", 2, 90), offset_record("h", 0, 91)], 1, 9, 0)).unwrap();
    // A plain commit written after producer 7's: it wins over the COMMIT marker.
    log.append(persistence::build_txn_batch(&[offset_record("g", 3, 71)], 1, 7, 0)).unwrap();
    log.append(persistence::build_batch(&[offset_record("g", 3, 5)], 1)).unwrap();
    log.append(marker(7, true)).unwrap();
    log.append(marker(8, false)).unwrap();
    // A tombstone drops pending offsets of the partition (producer 9's g-2 stays).
    log.append(persistence::build_txn_batch(&[offset_record("g", 4, 92)], 1, 9, 0)).unwrap();
    log.append(persistence::build_batch(&[(persistence::offset_key("g", "t", 4), None)], 1)).unwrap();
    let loaded = persistence::load(&log, 50).unwrap();
    let g = &loaded.groups["g"];
    let get = |p: i32| g.offsets.get(&TopicPartition::new("t", p)).map(|o| o.offset);
    assert_eq!((get(0), get(1), get(2), get(3), get(4)), (Some(70), Some(1), Some(1), Some(5), None));
    assert_eq!(g.offsets[&TopicPartition::new("t", 0)].record_offset, 3, "record offsets come from the log");
    // Producer 9 is still open: pending in g and in h (a group known only from it).
    assert_eq!(loaded.pending.keys().copied().collect::<Vec<_>>(), vec![9]);
    assert_eq!(loaded.pending[&9]["g"].keys().cloned().collect::<Vec<_>>(), vec![TopicPartition::new("t", 2)]);
    assert!(loaded.groups.contains_key("h"));
    let mut s = shard(0);
    s.groups = loaded.groups;
    s.pending_txn = loaded.pending;
    assert_eq!(stable_fetch(&s, vec![2]), vec![(2, None, ErrorCode::UNSTABLE_OFFSET_COMMIT)]);
    s.complete_transaction(9, true, 60);
    assert_eq!(stable_fetch(&s, vec![2]), vec![(2, Some(90), ErrorCode::NONE)]);
}

// ----- the async coordinator -----

async fn fetched(c: &GroupCoordinator, require_stable: bool) -> (Option<i64>, ErrorCode) {
    let f = c.fetch_stable("g", Some(vec![("t".to_string(), vec![0])]), require_stable).await.unwrap();
    let (_, o, e) = &f[0].1[0];
    (o.as_ref().map(|o| o.offset), *e)
}

#[tokio::test]
async fn coordinator_writes_transactional_batches_and_survives_restart() {
    let log = Arc::new(MemLog::default());
    let c = coordinator(log.clone()).await;
    assert_eq!(c.txn_commit(txn("", -1, None, &[("t", 0, 10)])).await, vec![ErrorCode::NONE]);
    // The batch is the producer's transactional batch, base sequence 0.
    {
        let batches = log.batches.lock().unwrap();
        let batch = iter_batches(batches[0].1.clone()).next().unwrap().unwrap();
        assert!(batch.is_transactional() && !batch.is_control());
        assert_eq!((batch.producer_id(), batch.producer_epoch(), batch.base_sequence()), (PID, 0, 0));
    }
    assert_eq!(fetched(&c, true).await, (None, ErrorCode::UNSTABLE_OFFSET_COMMIT));
    assert_eq!(fetched(&c, false).await, (None, ErrorCode::NONE));
    // Failover before the marker: the new coordinator still holds it pending.
    drop(c);
    let c = coordinator(log.clone()).await;
    assert_eq!(fetched(&c, true).await, (None, ErrorCode::UNSTABLE_OFFSET_COMMIT));
    // The marker is appended by the partition leader, then reported.
    log.append(marker(PID, true)).unwrap();
    c.complete_transaction(0, PID, true).await;
    assert_eq!(fetched(&c, true).await, (Some(10), ErrorCode::NONE));
    // A marker for a partition not hosted here is ignored.
    c.complete_transaction(5, PID, true).await;
    // Restart after the marker: replay gives the same committed offset.
    drop(c);
    let c = coordinator(log.clone()).await;
    assert_eq!(fetched(&c, true).await, (Some(10), ErrorCode::NONE));
}

#[tokio::test]
async fn coordinator_txn_commit_errors() {
    let log = Arc::new(MemLog::default());
    let c = coordinator(log.clone()).await;
    // Not the coordinator of a group on an unhosted partition.
    let c2 = GroupCoordinator::with_config(1, GroupConfig::default(), 1, 600_000);
    assert_eq!(c2.txn_commit(txn("", -1, None, &[("t", 0, 1)])).await, vec![ErrorCode::NOT_COORDINATOR]);
    // A failed write maps like Kafka's and leaves nothing pending (nor a group).
    *log.fail_with.lock().unwrap() = Some(ErrorCode::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(c.txn_commit(txn("", -1, None, &[("t", 0, 1)])).await, vec![ErrorCode::NOT_COORDINATOR]);
    *log.fail_with.lock().unwrap() = None;
    assert_eq!(fetched(&c, true).await, (None, ErrorCode::NONE));
    assert_eq!(c.describe("g").await.unwrap().state, GroupState::Dead);
}

#[test]
fn stable_one_member_commits_transactionally() {
    let mut s = shard(0);
    let a = stable_one(&mut s);
    assert_eq!(txn_commit_at(&mut s, &txn(&a, 1, None, &[("t", 0, 4)]), 9), vec![ErrorCode::NONE]);
    assert_eq!(s.pending_txn[&PID]["g"][&TopicPartition::new("t", 0)].record_offset, 9);
    s.complete_transaction(PID, true, 10);
    assert_eq!(committed(&s, 0), Some(4));
}
