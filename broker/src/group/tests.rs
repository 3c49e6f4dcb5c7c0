//! Unit tests of the group state machine, offsets and record formats
//! (no tokio: every input carries its time).

use crate::topic_partition::TopicPartition;
use bytes::{BufMut, Bytes, BytesMut};
use klamm_protocol::ErrorCode;

use super::hash::{java_string_hashcode, kafka_abs, partition_for};
use super::offsets::{CommitRequest, OffsetToCommit};
use super::persistence::{self, LogRecord, MemLog, OffsetsLog};
use super::state::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn config(delay: i32) -> GroupConfig {
    GroupConfig { initial_rebalance_delay_ms: delay, ..GroupConfig::default() }
}

pub(super) fn shard(delay: i32) -> Shard {
    let mut s = Shard::new(config(delay));
    let mut n = 0;
    s.id_gen = Box::new(move || {
        n += 1;
        format!("u{n}")
    });
    s
}

fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.freeze()
}

pub(super) fn protos(names: &[&str]) -> Vec<(String, Bytes)> {
    names.iter().map(|n| (n.to_string(), subscription(&["t"]))).collect()
}

pub(super) fn jreq(member: &str, instance: Option<&str>, protocols: Vec<(String, Bytes)>, require_known: bool) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member.into(),
        group_instance_id: instance.map(String::from),
        require_known_member_id: require_known,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols,
    }
}

pub(super) fn join_of(fx: &[Effect], waiter: Waiter) -> Option<JoinResult> {
    fx.iter().find_map(|e| match e {
        Effect::Join(w, r) if *w == waiter => Some(r.clone()),
        _ => None,
    })
}

fn sync_of(fx: &[Effect], waiter: Waiter) -> Option<SyncResult> {
    fx.iter().find_map(|e| match e {
        Effect::Sync(w, r) if *w == waiter => Some(r.clone()),
        _ => None,
    })
}

pub(super) fn sreq(member: &str, generation: i32, assignments: Vec<(&str, &[u8])>) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments.into_iter().map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a))).collect(),
    }
}

fn state(s: &Shard) -> GroupState {
    s.group("g").unwrap().state
}

/// A joined member (v3-style join, no MEMBER_ID_REQUIRED) in a 0-delay shard.
fn join_direct(s: &mut Shard, waiter: Waiter, now: i64) -> Vec<Effect> {
    s.join(jreq("", None, protos(&["range"]), false), waiter, now)
}

/// One member, Stable at generation 1; returns its member id.
pub(super) fn stable_one(s: &mut Shard) -> String {
    let fx = join_direct(s, 1, 0);
    let r = join_of(&fx, 1).unwrap();
    assert_eq!(r.error, ErrorCode::NONE);
    let fx = s.sync(sreq(&r.member_id, 1, vec![(&r.member_id, b"A")]), 2, 0);
    assert!(matches!(fx[0], Effect::StoreGroup { reason: StoreReason::Assignment, .. }));
    let fx = s.assignment_stored("g", 1, ErrorCode::NONE, 0);
    assert_eq!(sync_of(&fx, 2).unwrap().assignment, Bytes::from_static(b"A"));
    assert_eq!(state(s), GroupState::Stable);
    r.member_id
}

/// Two members, Stable at generation 2; returns (leader, follower).
pub(super) fn stable_two(s: &mut Shard) -> (String, String) {
    let a = stable_one(s);
    // B joins: rebalance; A must rejoin.
    let fx = join_direct(s, 10, 100);
    assert!(fx.is_empty());
    assert_eq!(state(s), GroupState::PreparingRebalance);
    assert_eq!(s.heartbeat("g", &a, None, 1, 100), ErrorCode::REBALANCE_IN_PROGRESS);
    let fx = s.join(jreq(&a, None, protos(&["range"]), false), 11, 200);
    let ra = join_of(&fx, 11).unwrap();
    let rb = join_of(&fx, 10).unwrap();
    assert_eq!(ra.generation_id, 2);
    assert_eq!(ra.leader_id, a);
    assert_eq!(ra.members.len(), 2);
    assert!(rb.members.is_empty());
    assert_eq!(state(s), GroupState::CompletingRebalance);
    let b = rb.member_id;
    // Follower syncs first and waits for the leader.
    let fx = s.sync(sreq(&b, 2, vec![]), 12, 300);
    assert!(fx.is_empty());
    let fx = s.sync(sreq(&a, 2, vec![(&a, b"A2"), (&b, b"B2")]), 13, 300);
    assert_eq!(fx.len(), 1);
    let fx = s.assignment_stored("g", 2, ErrorCode::NONE, 300);
    assert_eq!(sync_of(&fx, 12).unwrap().assignment, Bytes::from_static(b"B2"));
    assert_eq!(sync_of(&fx, 13).unwrap().assignment, Bytes::from_static(b"A2"));
    assert_eq!(state(s), GroupState::Stable);
    (a, b)
}

// ----- hashing -----

#[test]
fn group_hash_matches_java() {
    assert_eq!(java_string_hashcode(""), 0);
    assert_eq!(java_string_hashcode("a"), 97);
    assert_eq!(java_string_hashcode("hello"), 99162322);
    // A surrogate pair hashes as two UTF-16 units.
    assert_eq!(java_string_hashcode("\u{1F600}"), 1772899);
    // Overflow wraps like Java ints: "polygenelubricants".hashCode() == Integer.MIN_VALUE.
    assert_eq!(java_string_hashcode("polygenelubricants"), i32::MIN);
    assert_eq!(kafka_abs(i32::MIN), 0);
    assert_eq!(kafka_abs(-1), i32::MAX);
    assert_eq!(partition_for("polygenelubricants", 50), 0);
    assert_eq!(partition_for("hello", 50), 99162322 % 50);
}

// ----- JoinGroup -----

#[test]
fn first_join_v4_requires_member_id_then_completes() {
    let mut s = shard(0);
    let fx = s.join(jreq("", None, protos(&["range"]), true), 1, 0);
    let r = join_of(&fx, 1).unwrap();
    assert_eq!(r.error, ErrorCode::MEMBER_ID_REQUIRED);
    assert_eq!(r.member_id, "c-u1");
    assert_eq!(state(&s), GroupState::Empty);
    assert!(s.group("g").unwrap().pending_members.contains_key("c-u1"));
    let fx = s.join(jreq("c-u1", None, protos(&["range"]), true), 2, 10);
    let r = join_of(&fx, 2).unwrap();
    assert_eq!(r.error, ErrorCode::NONE);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader_id, "c-u1");
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(state(&s), GroupState::CompletingRebalance);
}

#[test]
fn join_errors() {
    let mut s = shard(0);
    let mut r = jreq("", None, protos(&["range"]), true);
    r.group_id = String::new();
    assert_eq!(join_of(&s.join(r, 1, 0), 1).unwrap().error, ErrorCode::INVALID_GROUP_ID);
    let mut r = jreq("", None, protos(&["range"]), true);
    r.session_timeout_ms = 5999;
    assert_eq!(join_of(&s.join(r, 1, 0), 1).unwrap().error, ErrorCode::INVALID_SESSION_TIMEOUT);
    let mut r = jreq("", None, protos(&["range"]), true);
    r.session_timeout_ms = 1_800_001;
    assert_eq!(join_of(&s.join(r, 1, 0), 1).unwrap().error, ErrorCode::INVALID_SESSION_TIMEOUT);
    // Unknown member id on a group that does not exist.
    let r = jreq("nobody", None, protos(&["range"]), true);
    assert_eq!(join_of(&s.join(r, 1, 0), 1).unwrap().error, ErrorCode::UNKNOWN_MEMBER_ID);
    // Empty protocol list / empty protocol type on a new group.
    let r = jreq("", None, vec![], false);
    assert_eq!(join_of(&s.join(r, 1, 0), 1).unwrap().error, ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    let mut r = jreq("", None, protos(&["range"]), false);
    r.protocol_type = String::new();
    assert_eq!(join_of(&s.join(r, 1, 0), 1).unwrap().error, ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    assert!(s.group("g").is_none(), "rejected first joins leave no group behind");
    // Protocol type / protocol mismatch with an existing group.
    stable_one(&mut s);
    let mut r = jreq("", None, protos(&["range"]), false);
    r.protocol_type = "connect".into();
    assert_eq!(join_of(&s.join(r, 1, 0), 1).unwrap().error, ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    let r = jreq("", None, protos(&["roundrobin"]), false);
    assert_eq!(join_of(&s.join(r, 1, 0), 1).unwrap().error, ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    // Unknown member id on an existing group.
    let r = jreq("ghost", None, protos(&["range"]), false);
    assert_eq!(join_of(&s.join(r, 1, 0), 1).unwrap().error, ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(state(&s), GroupState::Stable, "bad joins do not disturb the group");
}

#[test]
fn group_max_size_reached() {
    let mut s = Shard::new(GroupConfig { max_size: 1, initial_rebalance_delay_ms: 0, ..GroupConfig::default() });
    let fx = join_direct(&mut s, 1, 0);
    let r = join_of(&fx, 1).unwrap();
    assert_eq!(r.error, ErrorCode::NONE);
    let fx = join_direct(&mut s, 2, 0);
    assert_eq!(join_of(&fx, 2).unwrap().error, ErrorCode::GROUP_MAX_SIZE_REACHED);
    assert_eq!(s.group("g").unwrap().members.len(), 1);
}

#[test]
fn protocol_selection_by_votes() {
    let mut s = shard(1000);
    s.join(jreq("", None, protos(&["range", "roundrobin", "sticky"]), false), 1, 0);
    s.join(jreq("", None, protos(&["roundrobin", "range"]), false), 2, 0);
    s.join(jreq("", None, protos(&["sticky", "roundrobin"]), false), 3, 0);
    // Candidates: roundrobin only (range lacks member 3, sticky lacks member 2).
    let fx = s.tick(1000);
    let fx = if fx.is_empty() { s.tick(40_000) } else { fx };
    let r = join_of(&fx, 1).unwrap();
    assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
    // A newcomer must support the group's common protocol.
    let fx = s.join(jreq("", None, protos(&["sticky"]), false), 4, 50_000);
    assert_eq!(join_of(&fx, 4).unwrap().error, ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
}

#[test]
fn protocol_selection_majority_and_tie() {
    let mut g = Group::new("g", 0);
    let m = |id: &str, p: &[&str]| Member {
        member_id: id.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "h".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protos(p),
        assignment: Bytes::new(),
        awaiting_join: None,
        awaiting_sync: None,
        is_new: false,
        last_heartbeat_ms: 0,
    };
    g.members = vec![m("a", &["range", "rr"]), m("b", &["rr", "range"]), m("c", &["rr", "range"])];
    g.leader_id = Some("a".into());
    assert_eq!(g.select_protocol().as_deref(), Some("rr"));
    g.members.pop();
    // 1:1 tie: the leader's preference wins.
    assert_eq!(g.select_protocol().as_deref(), Some("range"));
}

#[test]
fn initial_rebalance_delay_waits_for_more_members() {
    let mut s = shard(3000);
    let fx = join_direct(&mut s, 1, 0);
    assert!(fx.is_empty());
    assert_eq!(state(&s), GroupState::PreparingRebalance);
    assert_eq!(s.next_deadline(), Some(3000));
    let fx = join_direct(&mut s, 2, 1000);
    assert!(fx.is_empty(), "the initial delay holds even when everyone joined");
    // The delay is extended once because a member was added.
    assert!(s.tick(3000).is_empty());
    assert_eq!(s.next_deadline(), Some(6000));
    let fx = s.tick(6000);
    let r1 = join_of(&fx, 1).unwrap();
    let r2 = join_of(&fx, 2).unwrap();
    assert_eq!(r1.generation_id, 1);
    assert_eq!(r1.members.len() + r2.members.len(), 2);
    assert_eq!(state(&s), GroupState::CompletingRebalance);
}

#[test]
fn rejoin_in_stable_and_completing() {
    let mut s = shard(0);
    let (a, b) = stable_two(&mut s);
    // Follower rejoining with the same metadata in Stable gets the current generation.
    let fx = s.join(jreq(&b, None, protos(&["range"]), false), 20, 400);
    let r = join_of(&fx, 20).unwrap();
    assert_eq!((r.error, r.generation_id, r.members.len()), (ErrorCode::NONE, 2, 0));
    assert_eq!(state(&s), GroupState::Stable);
    // Follower with changed metadata forces a rebalance.
    let mut changed = protos(&["range"]);
    changed[0].1 = subscription(&["t", "u"]);
    let fx = s.join(jreq(&b, None, changed.clone(), false), 21, 500);
    assert!(fx.is_empty());
    assert_eq!(state(&s), GroupState::PreparingRebalance);
    let fx = s.join(jreq(&a, None, protos(&["range"]), false), 22, 600);
    assert_eq!(join_of(&fx, 22).unwrap().generation_id, 3);
    assert_eq!(state(&s), GroupState::CompletingRebalance);
    // A member that missed its response rejoins in CompletingRebalance.
    let fx = s.join(jreq(&b, None, changed, false), 23, 700);
    let r = join_of(&fx, 23).unwrap();
    assert_eq!((r.error, r.generation_id), (ErrorCode::NONE, 3));
    // The leader rejoining in CompletingRebalance with new metadata: parked syncs get REBALANCE_IN_PROGRESS.
    let fx = s.sync(sreq(&b, 3, vec![]), 24, 700);
    assert!(fx.is_empty());
    let mut changed_a = protos(&["range"]);
    changed_a[0].1 = subscription(&["x"]);
    let fx = s.join(jreq(&a, None, changed_a, false), 25, 800);
    assert_eq!(sync_of(&fx, 24).unwrap().error, ErrorCode::REBALANCE_IN_PROGRESS);
    assert_eq!(state(&s), GroupState::PreparingRebalance);
}

#[test]
fn leader_rejoin_in_stable_triggers_rebalance() {
    let mut s = shard(0);
    let (a, b) = stable_two(&mut s);
    let fx = s.join(jreq(&a, None, protos(&["range"]), false), 30, 400);
    assert!(fx.is_empty());
    assert_eq!(state(&s), GroupState::PreparingRebalance);
    // Commits are still accepted while preparing.
    let plan = s.prepare_commit(&commit(&b, 2, 5), 450);
    assert_eq!(plan.errors, vec![ErrorCode::NONE]);
    let fx = s.join(jreq(&b, None, protos(&["range"]), false), 31, 500);
    assert_eq!(join_of(&fx, 30).unwrap().generation_id, 3);
    assert_eq!(join_of(&fx, 31).unwrap().generation_id, 3);
}

// ----- SyncGroup -----

#[test]
fn sync_errors() {
    let mut s = shard(0);
    let e = |fx: Vec<Effect>, w| sync_of(&fx, w).unwrap().error;
    assert_eq!(e(s.sync(sreq("m", 1, vec![]), 1, 0), 1), ErrorCode::UNKNOWN_MEMBER_ID);
    let mut r = sreq("m", 1, vec![]);
    r.group_id = String::new();
    assert_eq!(e(s.sync(r, 1, 0), 1), ErrorCode::INVALID_GROUP_ID);
    let (a, b) = stable_two(&mut s);
    assert_eq!(e(s.sync(sreq("ghost", 2, vec![]), 1, 0), 1), ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(e(s.sync(sreq(&a, 1, vec![]), 1, 0), 1), ErrorCode::ILLEGAL_GENERATION);
    let mut r = sreq(&a, 2, vec![]);
    r.protocol_name = Some("roundrobin".into());
    assert_eq!(e(s.sync(r, 1, 0), 1), ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    let mut r = sreq(&a, 2, vec![]);
    r.protocol_type = Some("connect".into());
    assert_eq!(e(s.sync(r, 1, 0), 1), ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    let mut r = sreq(&a, 2, vec![]);
    r.protocol_type = Some("consumer".into());
    r.protocol_name = Some("range".into());
    assert_eq!(e(s.sync(r, 1, 0), 1), ErrorCode::NONE, "Stable returns the current assignment");
    // PreparingRebalance -> REBALANCE_IN_PROGRESS.
    s.join(jreq(&a, None, protos(&["range"]), false), 2, 400);
    assert_eq!(e(s.sync(sreq(&b, 2, vec![]), 3, 400), 3), ErrorCode::REBALANCE_IN_PROGRESS);
    // Everyone leaves: Empty -> UNKNOWN_MEMBER_ID for an old generation member? (member unknown)
    let (_, _, _) = s.leave("g", &[LeavingMember { member_id: a.clone(), group_instance_id: None }, LeavingMember { member_id: b.clone(), group_instance_id: None }], 500);
    assert_eq!(state(&s), GroupState::Empty);
    assert_eq!(e(s.sync(sreq(&a, 3, vec![]), 4, 500), 4), ErrorCode::UNKNOWN_MEMBER_ID);
}

#[test]
fn sync_store_failure_rebalances() {
    let mut s = shard(0);
    let fx = join_direct(&mut s, 1, 0);
    let m = join_of(&fx, 1).unwrap().member_id;
    s.sync(sreq(&m, 1, vec![(&m, b"A")]), 2, 0);
    let fx = s.assignment_stored("g", 1, ErrorCode::UNKNOWN_SERVER_ERROR, 0);
    assert_eq!(sync_of(&fx, 2).unwrap().error, ErrorCode::UNKNOWN_SERVER_ERROR);
    assert_eq!(state(&s), GroupState::PreparingRebalance);
    // A stale store result is ignored.
    assert!(s.assignment_stored("g", 1, ErrorCode::NONE, 0).is_empty());
}

#[test]
fn leader_fills_missing_assignments_and_ignores_unknown() {
    let mut s = shard(0);
    let fx = join_direct(&mut s, 1, 0);
    let m = join_of(&fx, 1).unwrap().member_id;
    s.sync(sreq(&m, 1, vec![("stranger", b"X")]), 2, 0);
    assert_eq!(s.assignment_to_store("g"), vec![(m.clone(), Bytes::new())]);
    let fx = s.assignment_stored("g", 1, ErrorCode::NONE, 0);
    assert_eq!(sync_of(&fx, 2).unwrap().assignment, Bytes::new());
}

#[test]
fn members_that_never_sync_are_removed() {
    let mut s = shard(0);
    let a = stable_one(&mut s);
    join_direct(&mut s, 10, 100);
    let fx = s.join(jreq(&a, None, protos(&["range"]), false), 11, 100);
    let b = join_of(&fx, 10).unwrap().member_id;
    s.sync(sreq(&a, 2, vec![(&a, b"A"), (&b, b"B")]), 12, 100);
    s.assignment_stored("g", 2, ErrorCode::NONE, 100);
    assert_eq!(state(&s), GroupState::Stable);
    // b keeps heartbeating but never syncs: removed after the rebalance timeout.
    for t in [5000, 14_000, 23_000] {
        assert_eq!(s.heartbeat("g", &b, None, 2, t), ErrorCode::NONE);
        assert_eq!(s.heartbeat("g", &a, None, 2, t), ErrorCode::NONE);
    }
    s.tick(100 + REBALANCE as i64);
    assert!(!s.group("g").unwrap().has(&b));
    assert_eq!(state(&s), GroupState::PreparingRebalance);
}

// ----- Heartbeat -----

#[test]
fn heartbeat_errors_and_states() {
    let mut s = shard(0);
    assert_eq!(s.heartbeat("", "m", None, 1, 0), ErrorCode::INVALID_GROUP_ID);
    assert_eq!(s.heartbeat("g", "m", None, 1, 0), ErrorCode::UNKNOWN_MEMBER_ID);
    let fx = s.join(jreq("", Some("i1"), protos(&["range"]), false), 1, 0);
    let m = join_of(&fx, 1).unwrap().member_id;
    assert_eq!(state(&s), GroupState::CompletingRebalance);
    assert_eq!(s.heartbeat("g", &m, None, 1, 0), ErrorCode::NONE);
    assert_eq!(s.heartbeat("g", "ghost", None, 1, 0), ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(s.heartbeat("g", &m, None, 7, 0), ErrorCode::ILLEGAL_GENERATION);
    assert_eq!(s.heartbeat("g", "other", Some("i1"), 1, 0), ErrorCode::FENCED_INSTANCE_ID);
    s.sync(sreq(&m, 1, vec![]), 2, 0);
    s.assignment_stored("g", 1, ErrorCode::NONE, 0);
    assert_eq!(s.heartbeat("g", &m, Some("i1"), 1, 0), ErrorCode::NONE);
    // Static member leaves by instance id: Empty.
    let (top, errs, _) = s.leave("g", &[LeavingMember { member_id: String::new(), group_instance_id: Some("i1".into()) }], 10);
    assert_eq!((top, errs), (ErrorCode::NONE, vec![ErrorCode::NONE]));
    assert_eq!(state(&s), GroupState::Empty);
    assert_eq!(s.heartbeat("g", &m, None, 2, 0), ErrorCode::UNKNOWN_MEMBER_ID);
}

#[test]
fn session_expiry_removes_member_and_rebalances() {
    let mut s = shard(0);
    let (a, b) = stable_two(&mut s);
    // a heartbeats, b goes silent.
    assert_eq!(s.heartbeat("g", &a, None, 2, 9000), ErrorCode::NONE);
    assert_eq!(s.next_deadline(), Some(300 + SESSION as i64));
    s.tick(300 + SESSION as i64);
    assert!(!s.group("g").unwrap().has(&b));
    assert_eq!(state(&s), GroupState::PreparingRebalance);
    assert_eq!(s.heartbeat("g", &a, None, 2, 10_400), ErrorCode::REBALANCE_IN_PROGRESS);
    let fx = s.join(jreq(&a, None, protos(&["range"]), false), 40, 10_500);
    let r = join_of(&fx, 40).unwrap();
    assert_eq!((r.generation_id, r.members.len()), (3, 1));
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut s = shard(0);
    let (a, b) = stable_two(&mut s);
    s.join(jreq(&b, None, protos(&["range"]), false), 50, 1000);
    // b (follower) rejoined: no, b's metadata is unchanged so it got an answer; make a rejoin instead.
    let fx = s.join(jreq(&a, None, protos(&["range"]), false), 51, 1000);
    assert!(fx.is_empty());
    assert_eq!(state(&s), GroupState::PreparingRebalance);
    // b keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
    for t in [2000, 8000, 14_000, 20_000, 26_000] {
        assert_eq!(s.heartbeat("g", &b, None, 2, t), ErrorCode::REBALANCE_IN_PROGRESS);
    }
    assert_eq!(s.next_deadline(), Some(1000 + REBALANCE as i64));
    let fx = s.tick(1000 + REBALANCE as i64);
    let r = join_of(&fx, 51).unwrap();
    assert_eq!((r.generation_id, r.members.len(), r.leader_id.as_str()), (3, 1, a.as_str()));
    assert!(!s.group("g").unwrap().has(&b));
}

#[test]
fn leader_elected_among_rejoined_members() {
    let mut s = shard(0);
    let (a, b) = stable_two(&mut s);
    let mut changed = protos(&["range"]);
    changed[0].1 = subscription(&["zz"]);
    // The follower changes metadata and rejoins; the leader never does.
    s.join(jreq(&b, None, changed, false), 60, 1000);
    let fx = s.tick(1000 + REBALANCE as i64);
    let r = join_of(&fx, 60).unwrap();
    assert_eq!(r.leader_id, b);
    assert!(!s.group("g").unwrap().has(&a));
}

#[test]
fn pending_member_expires() {
    let mut s = shard(0);
    let fx = s.join(jreq("", None, protos(&["range"]), true), 1, 0);
    let id = join_of(&fx, 1).unwrap().member_id;
    assert_eq!(s.next_deadline(), Some(SESSION as i64));
    s.tick(SESSION as i64);
    assert!(s.group("g").unwrap().pending_members.is_empty());
    // The pending id is no longer accepted.
    let fx = s.join(jreq(&id, None, protos(&["range"]), true), 2, SESSION as i64 + 1);
    assert_eq!(join_of(&fx, 2).unwrap().error, ErrorCode::UNKNOWN_MEMBER_ID);
}

#[test]
fn new_member_join_times_out() {
    // Kafka's NewMemberJoinTimeoutMs (5 min): with a 10 min rebalance timeout,
    // a new member stuck in a rebalance is dropped after 5 min.
    let mut s = shard(0);
    let mut r = jreq("", None, protos(&["range"]), false);
    r.rebalance_timeout_ms = 600_000;
    let fx = s.join(r.clone(), 1, 0);
    let a = join_of(&fx, 1).unwrap().member_id;
    s.sync(sreq(&a, 1, vec![]), 2, 0);
    s.assignment_stored("g", 1, ErrorCode::NONE, 0);
    // A newcomer joins; `a` keeps heartbeating but never rejoins.
    let fx = s.join(r, 3, 1000);
    assert!(fx.is_empty());
    let mut t = 1000;
    let mut expired = None;
    while t < 400_000 {
        t += 5000;
        assert_eq!(s.heartbeat("g", &a, None, 1, t), ErrorCode::REBALANCE_IN_PROGRESS);
        let fx = s.tick(t);
        if let Some(r) = join_of(&fx, 3) {
            expired = Some((t, r));
            break;
        }
    }
    let (at, r) = expired.expect("the new member timed out");
    assert_eq!(r.error, ErrorCode::UNKNOWN_MEMBER_ID);
    assert!((301_000..=306_000).contains(&at), "expired at {at}");
    assert_eq!(s.group("g").unwrap().members.len(), 1);
}

#[test]
fn join_completes_with_the_newcomer_when_old_members_are_silent() {
    let mut s = shard(0);
    let (a, _b) = stable_two(&mut s);
    // A third member joins; the others never rejoin, and nobody heartbeats.
    join_direct(&mut s, 70, 1000);
    let _ = a;
    let fx = s.tick(1000 + REBALANCE as i64);
    // The join completed with only the new member.
    let r = join_of(&fx, 70).unwrap();
    assert_eq!((r.error, r.members.len()), (ErrorCode::NONE, 1));
}

// ----- LeaveGroup -----

#[test]
fn leave_group_single_and_batched() {
    let mut s = shard(0);
    let (top, errs, _) = s.leave("g", &[LeavingMember { member_id: "x".into(), group_instance_id: None }], 0);
    assert_eq!((top, errs), (ErrorCode::NONE, vec![ErrorCode::UNKNOWN_MEMBER_ID]));
    let (top, _, _) = s.leave("", &[], 0);
    assert_eq!(top, ErrorCode::INVALID_GROUP_ID);
    let (a, b) = stable_two(&mut s);
    let (top, errs, _) = s.leave(
        "g",
        &[
            LeavingMember { member_id: b.clone(), group_instance_id: None },
            LeavingMember { member_id: "ghost".into(), group_instance_id: None },
            LeavingMember { member_id: String::new(), group_instance_id: Some("nope".into()) },
        ],
        1000,
    );
    assert_eq!(top, ErrorCode::NONE);
    assert_eq!(errs, vec![ErrorCode::NONE, ErrorCode::UNKNOWN_MEMBER_ID, ErrorCode::UNKNOWN_MEMBER_ID]);
    assert_eq!(state(&s), GroupState::PreparingRebalance);
    let (_, errs, fx) = s.leave("g", &[LeavingMember { member_id: a.clone(), group_instance_id: None }], 1100);
    assert_eq!(errs, vec![ErrorCode::NONE]);
    assert_eq!(state(&s), GroupState::Empty);
    assert_eq!(s.group("g").unwrap().generation_id, 3);
    assert!(fx.iter().any(|e| matches!(e, Effect::StoreGroup { reason: StoreReason::Plain, generation_id: 3, .. })));
}

#[test]
fn leave_answers_parked_join_and_pending_member() {
    let mut s = shard(3000);
    join_direct(&mut s, 1, 0);
    let m = s.group("g").unwrap().members[0].member_id.clone();
    let (_, errs, fx) = s.leave("g", &[LeavingMember { member_id: m, group_instance_id: None }], 10);
    assert_eq!(errs, vec![ErrorCode::NONE]);
    assert_eq!(join_of(&fx, 1).unwrap().error, ErrorCode::UNKNOWN_MEMBER_ID);
    let fx = s.join(jreq("", None, protos(&["range"]), true), 2, 20);
    let id = join_of(&fx, 2).unwrap().member_id;
    let (_, errs, _) = s.leave("g", &[LeavingMember { member_id: id, group_instance_id: None }], 30);
    assert_eq!(errs, vec![ErrorCode::NONE]);
    assert!(s.group("g").unwrap().pending_members.is_empty());
}

// ----- static membership (KIP-345) -----

#[test]
fn static_member_rejoin_keeps_assignment_without_rebalance() {
    let mut s = shard(0);
    let fx = s.join(jreq("", Some("i1"), protos(&["range"]), true), 1, 0);
    let r = join_of(&fx, 1).unwrap();
    assert_eq!(r.error, ErrorCode::NONE, "static members skip MEMBER_ID_REQUIRED");
    assert_eq!(r.member_id, "i1-u1");
    let old = r.member_id;
    s.sync(sreq(&old, 1, vec![(&old, b"A")]), 2, 0);
    s.assignment_stored("g", 1, ErrorCode::NONE, 0);
    // Restart: joins again with an empty member id and the same instance id.
    let fx = s.join(jreq("", Some("i1"), protos(&["range"]), true), 3, 1000);
    let r = join_of(&fx, 3).unwrap();
    assert_eq!(r.error, ErrorCode::NONE);
    assert_eq!(r.generation_id, 1);
    assert_ne!(r.member_id, old);
    assert_eq!(r.leader_id, old, "the old leader id, so the member does not reassign");
    assert!(fx.iter().any(|e| matches!(e, Effect::StoreGroup { reason: StoreReason::Plain, .. })));
    assert_eq!(state(&s), GroupState::Stable);
    let new = r.member_id;
    let mut sr = sreq(&new, 1, vec![]);
    sr.group_instance_id = Some("i1".into());
    let fx = s.sync(sr, 4, 1000);
    assert_eq!(sync_of(&fx, 4).unwrap().assignment, Bytes::from_static(b"A"));
    // The old incarnation is fenced.
    assert_eq!(s.heartbeat("g", &old, Some("i1"), 1, 1000), ErrorCode::FENCED_INSTANCE_ID);
    let plan = s.prepare_commit(&CommitRequest { group_instance_id: Some("i1".into()), ..commit(&old, 1, 1) }, 1000);
    assert_eq!(plan.errors, vec![ErrorCode::FENCED_INSTANCE_ID]);
    let mut sr = sreq(&old, 1, vec![]);
    sr.group_instance_id = Some("i1".into());
    assert_eq!(sync_of(&s.sync(sr, 5, 1000), 5).unwrap().error, ErrorCode::FENCED_INSTANCE_ID);
    let fx = s.join(jreq(&old, Some("i1"), protos(&["range"]), true), 6, 1000);
    assert_eq!(join_of(&fx, 6).unwrap().error, ErrorCode::FENCED_INSTANCE_ID);
    let (_, errs, _) = s.leave("g", &[LeavingMember { member_id: old, group_instance_id: Some("i1".into()) }], 1000);
    assert_eq!(errs, vec![ErrorCode::FENCED_INSTANCE_ID]);
    // Unknown instance id with a member id: UNKNOWN_MEMBER_ID.
    let fx = s.join(jreq(&new, Some("i9"), protos(&["range"]), true), 7, 1000);
    assert_eq!(join_of(&fx, 7).unwrap().error, ErrorCode::UNKNOWN_MEMBER_ID);
}

#[test]
fn static_member_rejoin_with_new_protocol_rebalances() {
    let mut s = shard(0);
    let fx = s.join(jreq("", Some("i1"), protos(&["range"]), true), 1, 0);
    let m = join_of(&fx, 1).unwrap().member_id;
    s.sync(sreq(&m, 1, vec![]), 2, 0);
    s.assignment_stored("g", 1, ErrorCode::NONE, 0);
    // A protocol the group cannot use is refused outright.
    let fx = s.join(jreq("", Some("i1"), protos(&["roundrobin"]), true), 9, 10);
    assert_eq!(join_of(&fx, 9).unwrap().error, ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    let fx = s.join(jreq("", Some("i1"), protos(&["roundrobin", "range"]), true), 3, 10);
    // Alone in the group, the rebalance completes at once with the new protocol.
    let r = join_of(&fx, 3).unwrap();
    assert_eq!((r.generation_id, r.protocol_name.as_deref()), (2, Some("roundrobin")));
}

#[test]
fn static_member_replaced_while_waiting_is_fenced() {
    let mut s = shard(3000);
    s.join(jreq("", Some("i1"), protos(&["range"]), true), 1, 0);
    assert_eq!(state(&s), GroupState::PreparingRebalance);
    // A duplicate instance joins while the first still waits for its join response.
    let fx = s.join(jreq("", Some("i1"), protos(&["range"]), true), 2, 10);
    assert_eq!(join_of(&fx, 1).unwrap().error, ErrorCode::FENCED_INSTANCE_ID);
    let fx = s.tick(3000);
    let r = join_of(&fx, 2).unwrap();
    assert_eq!((r.error, r.generation_id), (ErrorCode::NONE, 1));
    assert_eq!(s.group("g").unwrap().members.len(), 1);
    // In CompletingRebalance, another restart forces a rebalance, fencing the parked sync.
    let cur = r.member_id;
    let mut sr = sreq(&cur, 1, vec![]);
    sr.group_instance_id = Some("i1".into());
    // Not the leader? It is the only member, so it is the leader: sync parks until the store.
    let fx = s.sync(sr, 3, 20);
    assert!(matches!(fx[0], Effect::StoreGroup { .. }));
    let fx = s.join(jreq("", Some("i1"), protos(&["range"]), true), 4, 30);
    assert_eq!(sync_of(&fx, 3).unwrap().error, ErrorCode::FENCED_INSTANCE_ID);
    // The stale store result is ignored.
    assert!(s.assignment_stored("g", 1, ErrorCode::NONE, 40).iter().all(|e| !matches!(e, Effect::Sync(3, _))));
}

#[test]
fn static_member_not_removed_when_not_rejoining() {
    let mut s = shard(0);
    let fx = s.join(jreq("", Some("i1"), protos(&["range"]), false), 1, 0);
    let a = join_of(&fx, 1).unwrap().member_id;
    s.sync(sreq(&a, 1, vec![]), 2, 0);
    s.assignment_stored("g", 1, ErrorCode::NONE, 0);
    // A dynamic member joins; the static member does not rejoin within the rebalance timeout.
    join_direct(&mut s, 3, 100);
    for t in (1000..REBALANCE as i64).step_by(5000) {
        s.heartbeat("g", &a, Some("i1"), 1, t);
    }
    let fx = s.tick(100 + REBALANCE as i64);
    let r = join_of(&fx, 3).unwrap();
    assert_eq!(r.error, ErrorCode::NONE);
    assert!(s.group("g").unwrap().has(&a), "static members survive a missed rejoin");
}

// ----- offsets -----

fn commit(member: &str, generation: i32, offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        offsets: vec![OffsetToCommit { topic: "t".into(), partition: 0, offset, leader_epoch: -1, metadata: Some("meta".into()) }],
    }
}

#[test]
fn commit_by_members_and_errors() {
    let mut s = shard(0);
    // Unknown group with a generation: ILLEGAL_GENERATION.
    assert_eq!(s.prepare_commit(&commit("m", 1, 5), 0).errors, vec![ErrorCode::ILLEGAL_GENERATION]);
    let (a, _b) = stable_two(&mut s);
    let req = commit(&a, 2, 42);
    let plan = s.prepare_commit(&req, 1000);
    assert_eq!(plan.errors, vec![ErrorCode::NONE]);
    assert!(s.fetch_offsets("g", None).is_empty(), "nothing visible before the append");
    s.apply_commit(&req, &plan);
    let f = s.fetch_offsets("g", Some(&[("t".to_string(), vec![0, 1])]));
    let o = f[0].1[0].1.clone().unwrap();
    assert_eq!((o.offset, o.metadata.as_str(), o.commit_timestamp_ms), (42, "meta", 1000));
    assert!(f[0].1[1].1.is_none());
    assert_eq!(s.prepare_commit(&commit(&a, 1, 5), 0).errors, vec![ErrorCode::ILLEGAL_GENERATION]);
    assert_eq!(s.prepare_commit(&commit("ghost", 2, 5), 0).errors, vec![ErrorCode::UNKNOWN_MEMBER_ID]);
    // A standalone commit to a group with members is refused.
    assert_eq!(s.prepare_commit(&commit("", -1, 5), 0).errors, vec![ErrorCode::UNKNOWN_MEMBER_ID]);
    // Metadata over offset.metadata.max.bytes.
    let mut big = commit(&a, 2, 5);
    big.offsets[0].metadata = Some("x".repeat(4097));
    big.offsets.push(OffsetToCommit { topic: "t".into(), partition: 1, offset: 7, leader_epoch: 3, metadata: None });
    let plan = s.prepare_commit(&big, 0);
    assert_eq!(plan.errors, vec![ErrorCode::OFFSET_METADATA_TOO_LARGE, ErrorCode::NONE]);
    assert_eq!(plan.accepted.len(), 1);
    // CompletingRebalance: REBALANCE_IN_PROGRESS.
    s.join(jreq(&a, None, protos(&["range"]), false), 80, 100);
    let fx = s.join(jreq(&_b, None, protos(&["range"]), false), 81, 100);
    assert!(join_of(&fx, 81).is_some());
    assert_eq!(s.prepare_commit(&commit(&a, 3, 5), 0).errors, vec![ErrorCode::REBALANCE_IN_PROGRESS]);
}

#[test]
fn standalone_commit_creates_empty_group() {
    let mut s = shard(0);
    let req = commit("", -1, 9);
    let plan = s.prepare_commit(&req, 5);
    assert_eq!(plan.errors, vec![ErrorCode::NONE]);
    s.apply_commit(&req, &plan);
    assert_eq!(state(&s), GroupState::Empty);
    let all = s.fetch_offsets("g", None);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1[0].1.as_ref().unwrap().offset, 9);
    // Empty group + member id: UNKNOWN_MEMBER_ID.
    assert_eq!(s.prepare_commit(&commit("m", -1, 9), 5).errors, vec![ErrorCode::UNKNOWN_MEMBER_ID]);
}

#[test]
fn offset_delete_rules() {
    let mut s = shard(0);
    assert_eq!(s.delete_offsets("g", &[TopicPartition::new("t", 0)]).unwrap_err(), ErrorCode::GROUP_ID_NOT_FOUND);
    let (a, _) = stable_two(&mut s);
    for (t, p) in [("t", 0), ("other", 0)] {
        let mut req = commit(&a, 2, 1);
        req.offsets[0].topic = t.into();
        req.offsets[0].partition = p;
        let plan = s.prepare_commit(&req, 0);
        s.apply_commit(&req, &plan);
    }
    let (errs, removed) = s.delete_offsets("g", &[TopicPartition::new("t", 0), TopicPartition::new("other", 0)]).unwrap();
    assert_eq!(errs, vec![ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC, ErrorCode::NONE]);
    assert_eq!(removed, vec![TopicPartition::new("other", 0)]);
    assert_eq!(s.fetch_offsets("g", None).len(), 1);
}

#[test]
fn delete_group_rules() {
    let mut s = shard(0);
    assert_eq!(s.delete_group("g").unwrap_err(), ErrorCode::GROUP_ID_NOT_FOUND);
    let (a, b) = stable_two(&mut s);
    assert_eq!(s.delete_group("g").unwrap_err(), ErrorCode::NON_EMPTY_GROUP);
    let req = commit(&a, 2, 3);
    let plan = s.prepare_commit(&req, 0);
    s.apply_commit(&req, &plan);
    s.leave("g", &[LeavingMember { member_id: a, group_instance_id: None }, LeavingMember { member_id: b, group_instance_id: None }], 10);
    assert_eq!(s.delete_group("g").unwrap(), vec![TopicPartition::new("t", 0)]);
    assert!(s.group("g").is_none());
}

#[test]
fn offsets_retention_for_empty_groups() {
    let mut s = Shard::new(GroupConfig { offsets_retention_ms: 1000, initial_rebalance_delay_ms: 0, ..GroupConfig::default() });
    let fx = join_direct(&mut s, 1, 0);
    let m = join_of(&fx, 1).unwrap().member_id;
    s.sync(sreq(&m, 1, vec![]), 2, 0);
    s.assignment_stored("g", 1, ErrorCode::NONE, 0);
    let req = commit(&m, 1, 3);
    let plan = s.prepare_commit(&req, 0);
    s.apply_commit(&req, &plan);
    // Stable consumer group subscribed to "t": not expired.
    assert!(s.expire_offsets(10_000).is_empty());
    s.leave("g", &[LeavingMember { member_id: m, group_instance_id: None }], 20_000);
    assert_eq!(state(&s), GroupState::Empty);
    assert!(s.expire_offsets(20_500).is_empty(), "retention counts from when the group became empty");
    let out = s.expire_offsets(21_000);
    assert_eq!(out, vec![("g".to_string(), vec![TopicPartition::new("t", 0)], true)]);
    assert!(s.group("g").is_none());
    // Standalone commits expire by commit time.
    let req = commit("", -1, 1);
    let plan = s.prepare_commit(&req, 30_000);
    s.apply_commit(&req, &plan);
    assert!(s.expire_offsets(30_999).is_empty());
    assert_eq!(s.expire_offsets(31_000).len(), 1);
    // An explicit retention (OffsetCommit v2-4) gives an expire timestamp,
    // stored as value v1.
    let (a, _) = {
        let mut s2 = shard(0);
        let ab = stable_two(&mut s2);
        s = s2;
        ab
    };
    let mut req = commit(&a, 2, 4);
    req.retention_time_ms = 500;
    let plan = s.prepare_commit(&req, 40_000);
    assert_eq!(plan.accepted[0].1.expire_timestamp_ms, Some(40_500));
    let v = persistence::offset_value(&plan.accepted[0].1);
    assert_eq!(&v[..2], &[0, 1]);
    assert_eq!(persistence::decode_offset_value(&v), Some(plan.accepted[0].1.clone()));
    s.apply_commit(&req, &plan);
    assert!(s.expire_offsets(40_499).is_empty());
}

// ----- record formats and loading -----

#[test]
fn record_formats_match_kafka() {
    // OffsetCommitKey v1: int16 version, group, topic, int32 partition.
    let k = persistence::offset_key("g", "t", 3);
    assert_eq!(&k[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
    let k = persistence::group_key("g");
    assert_eq!(&k[..], &[0, 2, 0, 1, b'g']);
    let o = super::offsets::CommittedOffset { offset: 5, leader_epoch: 2, metadata: "m".into(), commit_timestamp_ms: 7, expire_timestamp_ms: None, record_offset: -1 };
    let v = persistence::offset_value(&o);
    assert_eq!(&v[..], &[0, 3, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 2, 0, 1, b'm', 0, 0, 0, 0, 0, 0, 0, 7]);
    assert_eq!(persistence::decode_offset_value(&v), Some(o));
    // Offset value v1 (with expire timestamp) decodes too.
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i64(9);
    b.put_i16(0);
    b.put_i64(100);
    b.put_i64(200);
    let o1 = persistence::decode_offset_value(&b).unwrap();
    assert_eq!((o1.offset, o1.expire_timestamp_ms), (9, Some(200)));
}

#[test]
fn group_value_round_trip_and_load() {
    let mut s = shard(0);
    let (a, b) = stable_two(&mut s);
    let g = s.group("g").unwrap().clone();
    let v = persistence::group_value(&g, &s.assignment_to_store("g"));
    let d = persistence::decode_group_value(&v).unwrap();
    assert_eq!((d.protocol_type.as_str(), d.generation, d.protocol.as_deref(), d.leader.as_deref()), ("consumer", 2, Some("range"), Some(a.as_str())));
    assert_eq!(d.members.len(), 2);
    assert_eq!(d.members[1].assignment, Bytes::from_static(b"B2"));
    assert_eq!(d.members[1].subscription, subscription(&["t"]));

    let log = MemLog::default();
    let o = |off| super::offsets::CommittedOffset { offset: off, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 1, expire_timestamp_ms: None, record_offset: -1 };
    log.append(persistence::build_batch(&[(persistence::group_key("g"), Some(v.clone()))], 1)).unwrap();
    log.append(persistence::build_batch(
        &[
            (persistence::offset_key("g", "t", 0), Some(persistence::offset_value(&o(5)))),
            (persistence::offset_key("g", "t", 1), Some(persistence::offset_value(&o(6)))),
            (persistence::offset_key("solo", "t", 0), Some(persistence::offset_value(&o(7)))),
            (persistence::offset_key("gone", "t", 0), Some(persistence::offset_value(&o(8)))),
            (persistence::group_key("gone"), Some(persistence::group_value(&Group::new("gone", 0), &[]))),
        ],
        2,
    ))
    .unwrap();
    // Tombstones: an offset, and a group with its offset.
    log.append(persistence::build_batch(
        &[
            (persistence::offset_key("g", "t", 1), None),
            (persistence::offset_key("gone", "t", 0), None),
            (persistence::group_key("gone"), None),
        ],
        3,
    ))
    .unwrap();
    assert_eq!(log.end_offset(), 9);
    let groups = persistence::load(&log, 50).unwrap().groups;
    assert_eq!(groups.keys().cloned().collect::<Vec<_>>(), vec!["g".to_string(), "solo".to_string()]);
    let g = &groups["g"];
    assert_eq!((g.state, g.generation_id, g.members.len()), (GroupState::Stable, 2, 2));
    assert_eq!(g.member(&b).unwrap().assignment, Bytes::from_static(b"B2"));
    assert_eq!(g.offsets.len(), 1);
    assert_eq!(groups["solo"].state, GroupState::Empty);
    // Decoding of keys.
    assert!(matches!(persistence::decode_record(&persistence::group_key("x"), None), Some(LogRecord::Group { value: None, .. })));
    // A reloaded shard serves the members: heartbeat and sync return the stored assignment.
    let mut s2 = shard(0);
    s2.groups = groups;
    assert_eq!(s2.heartbeat("g", &b, None, 2, 60), ErrorCode::NONE);
    let fx = s2.sync(sreq(&b, 2, vec![]), 1, 60);
    assert_eq!(sync_of(&fx, 1).unwrap().assignment, Bytes::from_static(b"B2"));
}

#[test]
fn subscription_topics_parse() {
    assert_eq!(parse_subscription_topics(&subscription(&["a", "bb"])), Some(vec!["a".to_string(), "bb".to_string()]));
    assert_eq!(parse_subscription_topics(&[0, 1]), None);
}

#[test]
fn many_groups_are_independent() {
    let mut s = shard(0);
    for i in 0..50 {
        let mut r = jreq("", None, protos(&["range"]), false);
        r.group_id = format!("g{i}");
        let fx = s.join(r, i, 0);
        assert_eq!(join_of(&fx, i).unwrap().error, ErrorCode::NONE);
    }
    // A bad request to one group leaves the others alone.
    let mut r = jreq("ghost", None, protos(&["range"]), false);
    r.group_id = "g3".into();
    assert_eq!(join_of(&s.join(r, 99, 0), 99).unwrap().error, ErrorCode::UNKNOWN_MEMBER_ID);
    assert!(s.groups.values().all(|g| g.state == GroupState::CompletingRebalance));
}
