//! Tests of the async coordinator over an in-memory log: parked joins,
//! concurrent groups, persistence across a restart, routing errors.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use klamm_protocol::ErrorCode;

use super::coordinator::GroupCoordinator;
use super::offsets::{CommitRequest, OffsetToCommit};
use super::persistence::{MemLog, OffsetsLog};
use super::state::{GroupConfig, GroupState, JoinRequest, LeavingMember, SyncRequest};

fn config() -> GroupConfig {
    GroupConfig { initial_rebalance_delay_ms: 0, ..GroupConfig::default() }
}

pub(super) async fn coordinator(log: Arc<MemLog>) -> GroupCoordinator {
    let c = GroupCoordinator::with_config(1, config(), 1, 600_000);
    c.host_partition(0, log as Arc<dyn OffsetsLog>);
    for _ in 0..100 {
        if c.check("x") == ErrorCode::NONE {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("shard did not load");
}

fn join(group: &str, member: &str) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        require_known_member_id: true,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 20_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
    }
}

fn sync(group: &str, member: &str, generation: i32, assignments: Vec<(String, Bytes)>) -> SyncRequest {
    SyncRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    }
}

async fn join_member(c: &GroupCoordinator, group: &str) -> String {
    let r = c.join(join(group, "")).await;
    assert_eq!(r.error, ErrorCode::MEMBER_ID_REQUIRED);
    r.member_id
}

#[tokio::test]
async fn rebalance_parks_joins_without_blocking_other_groups() {
    let log = Arc::new(MemLog::default());
    let c = Arc::new(coordinator(log.clone()).await);
    let a = join_member(&c, "g").await;
    let r = c.join(join("g", &a)).await;
    assert_eq!((r.error, r.generation_id), (ErrorCode::NONE, 1));
    let s = c.sync(sync("g", &a, 1, vec![(a.clone(), Bytes::from_static(b"A"))])).await;
    assert_eq!(s.assignment, Bytes::from_static(b"A"));

    // b joins: its JoinGroup parks until a rejoins.
    let b = join_member(&c, "g").await;
    let c2 = c.clone();
    let b2 = b.clone();
    let parked = tokio::spawn(async move { c2.join(join("g", &b2)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!parked.is_finished());
    // Meanwhile another group forms and the coordinator keeps answering.
    let o = join_member(&c, "other").await;
    assert_eq!(c.join(join("other", &o)).await.error, ErrorCode::NONE);
    assert_eq!(c.heartbeat("g", &a, None, 1).await, ErrorCode::REBALANCE_IN_PROGRESS);
    let ra = c.join(join("g", &a)).await;
    let rb = parked.await.unwrap();
    assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
    assert_eq!(ra.members.len(), 2);
    // The follower's sync parks until the leader's assignment is stored.
    let c3 = c.clone();
    let b3 = b.clone();
    let follower = tokio::spawn(async move { c3.sync(sync("g", &b3, 2, vec![])).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!follower.is_finished());
    let sa = c.sync(sync("g", &a, 2, vec![(a.clone(), Bytes::from_static(b"A2")), (b.clone(), Bytes::from_static(b"B2"))])).await;
    assert_eq!(sa.assignment, Bytes::from_static(b"A2"));
    assert_eq!(follower.await.unwrap().assignment, Bytes::from_static(b"B2"));
    let d = c.describe("g").await.unwrap();
    assert_eq!((d.state, d.members.len(), d.protocol.as_str()), (GroupState::Stable, 2, "range"));
    assert_eq!(d.members[1].assignment, Bytes::from_static(b"B2"));
    let (err, listed) = c.list().await;
    assert_eq!(err, ErrorCode::NONE);
    assert_eq!(listed.iter().map(|g| g.group_id.as_str()).collect::<Vec<_>>(), vec!["g", "other"]);
}

#[tokio::test]
async fn offsets_and_groups_survive_a_restart() {
    let log = Arc::new(MemLog::default());
    let c = coordinator(log.clone()).await;
    let a = join_member(&c, "g").await;
    c.join(join("g", &a)).await;
    c.sync(sync("g", &a, 1, vec![(a.clone(), Bytes::from_static(b"A"))])).await;
    let commit = |member: &str, generation, offset| CommitRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        offsets: vec![OffsetToCommit { topic: "t".into(), partition: 0, offset, leader_epoch: 4, metadata: Some("hello".into()) }],
    };
    assert_eq!(c.commit(commit(&a, 1, 17)).await, vec![ErrorCode::NONE]);
    // Standalone commits to another group.
    let mut solo = commit("", -1, 3);
    solo.group_id = "solo".into();
    assert_eq!(c.commit(solo).await, vec![ErrorCode::NONE]);
    // A failed append is not committed and maps to Kafka's error.
    *log.fail_with.lock().unwrap() = Some(ErrorCode::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(c.commit(commit(&a, 1, 99)).await, vec![ErrorCode::NOT_COORDINATOR]);
    *log.fail_with.lock().unwrap() = None;
    drop(c);

    let c = coordinator(log.clone()).await;
    let f = c.fetch("g", None).await.unwrap();
    let o = f[0].1[0].1.clone().unwrap();
    assert_eq!((o.offset, o.leader_epoch, o.metadata.as_str()), (17, 4, "hello"));
    assert_eq!(c.fetch("solo", None).await.unwrap()[0].1[0].1.as_ref().unwrap().offset, 3);
    // The member is still there (Stable) with its assignment.
    assert_eq!(c.heartbeat("g", &a, None, 1).await, ErrorCode::NONE);
    let s = c.sync(sync("g", &a, 1, vec![])).await;
    assert_eq!((s.error, s.assignment), (ErrorCode::NONE, Bytes::from_static(b"A")));
    // Leave, delete, restart: the group is gone.
    let (top, errs) = c.leave("g", vec![LeavingMember { member_id: a.clone(), group_instance_id: None }]).await;
    assert_eq!((top, errs), (ErrorCode::NONE, vec![ErrorCode::NONE]));
    assert_eq!(c.delete_group("g").await, ErrorCode::NONE);
    assert_eq!(c.delete_group("g").await, ErrorCode::GROUP_ID_NOT_FOUND);
    drop(c);
    let c = coordinator(log.clone()).await;
    assert_eq!(c.describe("g").await.unwrap().state, GroupState::Dead);
    assert!(c.fetch("g", None).await.unwrap().is_empty());
    assert_eq!(c.fetch("solo", None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn routing_errors() {
    // Two offsets partitions, only partition 0 hosted here.
    let c = GroupCoordinator::with_config(1, config(), 2, 600_000);
    let (here, there) = {
        let mut here = None;
        let mut there = None;
        for i in 0..100 {
            let g = format!("g{i}");
            if c.partition_for(&g) == 0 { here.get_or_insert(g) } else { there.get_or_insert(g) };
        }
        (here.unwrap(), there.unwrap())
    };
    assert_eq!(c.join(join(&here, "")).await.error, ErrorCode::NOT_COORDINATOR);
    c.host_partition(0, Arc::new(MemLog::default()));
    // Loading, or loaded already.
    let e = c.heartbeat(&here, "m", None, 1).await;
    assert!(e == ErrorCode::NONE || e == ErrorCode::UNKNOWN_MEMBER_ID, "{e:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(c.check(&here), ErrorCode::NONE);
    assert_eq!(c.check(&there), ErrorCode::NOT_COORDINATOR);
    assert_eq!(c.fetch(&there, None).await.unwrap_err(), ErrorCode::NOT_COORDINATOR);
    assert_eq!(c.commit(CommitRequest { group_id: there.clone(), generation_id: -1, member_id: String::new(), group_instance_id: None, retention_time_ms: -1, offsets: vec![] }).await, Vec::<ErrorCode>::new());
    // Losing leadership answers parked joins with NOT_COORDINATOR.
    let c = Arc::new(c);
    let c2 = c.clone();
    let here2 = here.clone();
    let m = join_member(&c, &here).await;
    let b = join_member(&c, &here).await;
    c.join(join(&here, &m)).await;
    // m is in CompletingRebalance; b joins and parks (m has not rejoined).
    let parked = tokio::spawn(async move { c2.join(join(&here2, &b)).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    c.release_partition(0);
    let r = parked.await.unwrap();
    assert_eq!(r.error, ErrorCode::NOT_COORDINATOR);
    assert_eq!(c.check(&here), ErrorCode::NOT_COORDINATOR);
}

/// A log whose replay takes a while, to observe COORDINATOR_LOAD_IN_PROGRESS.
struct SlowLog {
    inner: MemLog,
    delay: Duration,
}

impl OffsetsLog for SlowLog {
    fn append(&self, batch: Bytes) -> Result<i64, ErrorCode> {
        self.inner.append(batch)
    }
    fn start_offset(&self) -> i64 {
        self.inner.start_offset()
    }
    fn end_offset(&self) -> i64 {
        self.inner.end_offset()
    }
    fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, ErrorCode> {
        std::thread::sleep(self.delay);
        self.inner.read(offset, max_bytes)
    }
}

#[tokio::test]
async fn load_in_progress_until_replayed() {
    let inner = MemLog::default();
    let batch = super::persistence::build_batch(
        &[(
            super::persistence::offset_key("g", "t", 0),
            Some(super::persistence::offset_value(&super::offsets::CommittedOffset {
                offset: 8,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 1,
                expire_timestamp_ms: None,
                record_offset: -1,
            })),
        )],
        1,
    );
    inner.append(batch).unwrap();
    let c = GroupCoordinator::with_config(1, config(), 1, 600_000);
    c.host_partition(0, Arc::new(SlowLog { inner, delay: Duration::from_millis(300) }));
    assert_eq!(c.check("g"), ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(c.fetch("g", None).await.unwrap_err(), ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(c.join(join("g", "")).await.error, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(c.commit(CommitRequest { group_id: "g".into(), generation_id: -1, member_id: String::new(), group_instance_id: None, retention_time_ms: -1, offsets: vec![OffsetToCommit { topic: "t".into(), partition: 0, offset: 1, leader_epoch: -1, metadata: None }] }).await, vec![ErrorCode::COORDINATOR_LOAD_IN_PROGRESS]);
    // Kafka answers heartbeats blindly while loading.
    assert_eq!(c.heartbeat("g", "m", None, 1).await, ErrorCode::NONE);
    let (e, _) = c.list().await;
    assert_eq!(e, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(c.check("g"), ErrorCode::NONE);
    assert_eq!(c.fetch("g", None).await.unwrap()[0].1[0].1.as_ref().unwrap().offset, 8);
}

#[test]
fn append_errors_map_like_kafka() {
    use super::coordinator::{group_store_error, offset_store_error};
    assert_eq!(offset_store_error(ErrorCode::MESSAGE_TOO_LARGE), ErrorCode::INVALID_COMMIT_OFFSET_SIZE);
    assert_eq!(offset_store_error(ErrorCode::NOT_ENOUGH_REPLICAS), ErrorCode::COORDINATOR_NOT_AVAILABLE);
    assert_eq!(offset_store_error(ErrorCode::KAFKA_STORAGE_ERROR), ErrorCode::NOT_COORDINATOR);
    assert_eq!(group_store_error(ErrorCode::RECORD_LIST_TOO_LARGE), ErrorCode::UNKNOWN_SERVER_ERROR);
    assert_eq!(group_store_error(ErrorCode::REQUEST_TIMED_OUT), ErrorCode::REBALANCE_IN_PROGRESS);
    assert_eq!(group_store_error(ErrorCode::NOT_LEADER_OR_FOLLOWER), ErrorCode::NOT_COORDINATOR);
}
