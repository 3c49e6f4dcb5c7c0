//! Unit tests of the pure state machine ([`super::state`]) and of the
//! `__transaction_state` record formats ([`super::persistence`]), without I/O.

use crate::txn::state::Tp;
use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use klamm_protocol::ErrorCode;

use super::persistence::{self, decode_key, decode_value, key, value};
use super::state::*;
use crate::group::persistence::{build_batch, MemLog, OffsetsLog};

const T0: i64 = 1_000_000;

fn shard() -> TxnShard {
    TxnShard::new(TxnConfig { max_timeout_ms: 900_000, id_expiration_ms: 604_800_000 })
}

fn tps(list: &[(&str, i32)]) -> BTreeSet<Tp> {
    list.iter().map(|(t, p)| Tp::new(*t, *p)).collect()
}

/// Writes `t` successfully and returns what follows.
fn commit_write(s: &mut TxnShard, t: Transit) -> AfterWrite {
    s.write_done(&t, Ok(()))
}

/// InitProducerId through to a durable write: (producer id, epoch).
fn init(s: &mut TxnShard, id: &str, expected: Option<(i64, i16)>, fresh: i64) -> (i64, i16) {
    let t = match s.init_producer_id(id, 60_000, expected, None, T0) {
        InitDecision::NeedProducerId => match s.init_producer_id(id, 60_000, expected, Some(fresh), T0) {
            InitDecision::Write(t) => t,
            other => panic!("expected a write, got {other:?}"),
        },
        InitDecision::Write(t) => t,
        other => panic!("expected a write, got {other:?}"),
    };
    assert_eq!(t.kind, TransitKind::Init);
    let out = (t.rec.producer_id, t.rec.producer_epoch);
    assert_eq!(commit_write(s, t), AfterWrite::Nothing);
    out
}

fn add(s: &mut TxnShard, id: &str, pid: i64, epoch: i16, parts: &[(&str, i32)], now: i64) {
    match s.add_partitions(id, pid, epoch, &tps(parts), now) {
        Decision::Write(t) => {
            assert_eq!(t.rec.state, TxnState::Ongoing);
            commit_write(s, t);
        }
        other => panic!("expected a write, got {other:?}"),
    }
}

/// EndTxn through the Prepare* write; returns the marker job.
fn end(s: &mut TxnShard, id: &str, pid: i64, epoch: i16, commit: bool) -> MarkerJob {
    match s.end_txn(id, pid, epoch, commit, T0 + 10) {
        Decision::Write(t) => match commit_write(s, t) {
            AfterWrite::SendMarkers(job) => job,
            other => panic!("expected markers, got {other:?}"),
        },
        other => panic!("expected a write, got {other:?}"),
    }
}

fn complete(s: &mut TxnShard, job: &MarkerJob) {
    let t = s.markers_done(job, T0 + 20).expect("complete transit");
    assert_eq!(t.kind, TransitKind::Complete);
    assert!(t.rec.partitions.is_empty());
    commit_write(s, t);
}

fn state(s: &TxnShard, id: &str) -> TxnState {
    s.get(id).expect("known id").rec.state
}

#[test]
fn state_ids_and_names_are_kafkas() {
    let names = ["Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"];
    for (i, name) in names.iter().enumerate() {
        let s = TxnState::from_id(i as i8).expect("known id");
        assert_eq!(s.name(), *name);
        assert_eq!(s.id(), i as i8);
        assert_eq!(TxnState::from_name(name), Some(s));
    }
    assert_eq!(TxnState::from_id(8), None);
    assert_eq!(TxnState::from_id(-1), None);
    assert_eq!(TxnState::from_name("ongoing"), None);
}

#[test]
fn legal_transitions_are_kafkas() {
    use TxnState::*;
    let legal = [
        (Empty, Empty),
        (CompleteCommit, Empty),
        (CompleteAbort, Empty),
        (Empty, Ongoing),
        (Ongoing, Ongoing),
        (CompleteCommit, Ongoing),
        (CompleteAbort, Ongoing),
        (Ongoing, PrepareCommit),
        (Ongoing, PrepareAbort),
        (PrepareEpochFence, PrepareAbort),
        (PrepareCommit, CompleteCommit),
        (PrepareAbort, CompleteAbort),
        (Empty, Dead),
        (CompleteAbort, Dead),
        (CompleteCommit, Dead),
        (Ongoing, PrepareEpochFence),
    ];
    for from in TxnState::ALL {
        for to in TxnState::ALL {
            assert_eq!(to.can_follow(from), legal.contains(&(from, to)), "{from:?} -> {to:?}");
        }
    }
}

#[test]
fn new_transactional_id_gets_a_producer_id_at_epoch_zero() {
    let mut s = shard();
    assert_eq!(s.init_producer_id("t", 60_000, None, None, T0), InitDecision::NeedProducerId);
    assert!(s.get("t").is_none(), "nothing is kept without an id");
    assert_eq!(init(&mut s, "t", None, 7), (7, 0));
    let txn = s.get("t").unwrap();
    assert_eq!(txn.rec.state, TxnState::Empty);
    assert_eq!(txn.rec.timeout_ms, 60_000);
    assert!(txn.pending.is_none());
}

#[test]
fn timeout_above_the_maximum_is_refused() {
    let mut s = shard();
    assert_eq!(s.init_producer_id("t", 900_001, None, Some(1), T0), InitDecision::Reply(Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT)));
    assert_eq!(s.init_producer_id("t", 0, None, Some(1), T0), InitDecision::Reply(Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT)));
}

#[test]
fn init_again_bumps_the_epoch_and_fences_the_old_producer() {
    let mut s = shard();
    assert_eq!(init(&mut s, "t", None, 7), (7, 0));
    assert_eq!(init(&mut s, "t", None, 99), (7, 1));
    // The old producer (epoch 0) is fenced everywhere.
    assert_eq!(s.add_partitions("t", 7, 0, &tps(&[("a", 0)]), T0), Decision::Reply(ErrorCode::PRODUCER_FENCED));
    assert_eq!(s.end_txn("t", 7, 0, true, T0), Decision::Reply(ErrorCode::PRODUCER_FENCED));
    assert_eq!(s.verify("t", 7, 0, &[Tp::new("a", 0)]), Err(ErrorCode::PRODUCER_FENCED));
}

#[test]
fn pending_write_answers_concurrent_transactions() {
    let mut s = shard();
    init(&mut s, "t", None, 7);
    let InitDecision::Write(t) = s.init_producer_id("t", 60_000, None, None, T0) else { panic!("write") };
    assert_eq!(s.init_producer_id("t", 60_000, None, None, T0), InitDecision::Reply(Err(ErrorCode::CONCURRENT_TRANSACTIONS)));
    // The current epoch is still 0 until the write is durable.
    assert_eq!(s.add_partitions("t", 7, 0, &tps(&[("a", 0)]), T0), Decision::Reply(ErrorCode::CONCURRENT_TRANSACTIONS));
    commit_write(&mut s, t);
    assert_eq!(s.get("t").unwrap().rec.producer_epoch, 1);
}

#[test]
fn failed_write_leaves_the_state_and_clears_pending() {
    let mut s = shard();
    init(&mut s, "t", None, 7);
    let InitDecision::Write(t) = s.init_producer_id("t", 60_000, None, None, T0) else { panic!("write") };
    assert_eq!(s.write_done(&t, Err(ErrorCode::NOT_COORDINATOR)), AfterWrite::Nothing);
    let txn = s.get("t").unwrap();
    assert_eq!(txn.rec.producer_epoch, 0);
    assert!(txn.pending.is_none());
}

#[test]
fn kip360_bump_with_current_epoch_and_retry_with_last_epoch() {
    let mut s = shard();
    init(&mut s, "t", None, 7);
    assert_eq!(init(&mut s, "t", Some((7, 0)), 0), (7, 1));
    // The answer was lost: the producer retries with epoch 0 and gets epoch 1 again.
    assert_eq!(init(&mut s, "t", Some((7, 0)), 0), (7, 1));
    // Another producer id, or an epoch that is neither current nor last: fenced.
    assert_eq!(s.init_producer_id("t", 60_000, Some((8, 1)), None, T0), InitDecision::Reply(Err(ErrorCode::PRODUCER_FENCED)));
    assert_eq!(s.init_producer_id("t", 60_000, Some((7, 5)), None, T0), InitDecision::Reply(Err(ErrorCode::PRODUCER_FENCED)));
    assert_eq!(init(&mut s, "t", Some((7, 1)), 0), (7, 2));
}

#[test]
fn exhausted_epoch_rotates_to_a_new_producer_id() {
    let mut s = shard();
    init(&mut s, "t", None, 7);
    s.txns.get_mut("t").unwrap().rec.producer_epoch = i16::MAX - 1;
    assert_eq!(s.init_producer_id("t", 60_000, None, None, T0), InitDecision::NeedProducerId);
    assert_eq!(init(&mut s, "t", Some((7, i16::MAX - 1)), 8), (8, 0));
    let txn = s.get("t").unwrap();
    assert_eq!(txn.last_producer_id, 7);
    assert_eq!(txn.last_producer_epoch, i16::MAX - 1);
    // A retry with the old id and the exhausted epoch gets the new id back.
    assert_eq!(init(&mut s, "t", Some((7, i16::MAX - 1)), 0), (8, 0));
}

#[test]
fn transaction_commit_lifecycle() {
    let mut s = shard();
    let (pid, epoch) = init(&mut s, "t", None, 7);
    add(&mut s, "t", pid, epoch, &[("a", 0), ("a", 1)], T0 + 1);
    let txn = s.get("t").unwrap();
    assert_eq!(txn.rec.state, TxnState::Ongoing);
    assert_eq!(txn.rec.start_ms, T0 + 1);
    // Adding more keeps the start time; adding known ones writes nothing.
    add(&mut s, "t", pid, epoch, &[("b", 0)], T0 + 5);
    assert_eq!(s.get("t").unwrap().rec.start_ms, T0 + 1);
    assert_eq!(s.add_partitions("t", pid, epoch, &tps(&[("a", 1)]), T0 + 6), Decision::Reply(ErrorCode::NONE));
    assert_eq!(s.verify("t", pid, epoch, &[Tp::new("a", 1), Tp::new("c", 0)]), Ok(vec![ErrorCode::NONE, ErrorCode::INVALID_TXN_STATE]));

    let job = end(&mut s, "t", pid, epoch, true);
    assert_eq!(job.partitions, tps(&[("a", 0), ("a", 1), ("b", 0)]));
    assert!(job.commit);
    assert_eq!(state(&s, "t"), TxnState::PrepareCommit);
    // While the markers are out everything waits.
    assert_eq!(s.end_txn("t", pid, epoch, true, T0), Decision::Reply(ErrorCode::CONCURRENT_TRANSACTIONS));
    assert_eq!(s.add_partitions("t", pid, epoch, &tps(&[("a", 0)]), T0), Decision::Reply(ErrorCode::CONCURRENT_TRANSACTIONS));
    assert_eq!(s.init_producer_id("t", 60_000, None, None, T0), InitDecision::Reply(Err(ErrorCode::CONCURRENT_TRANSACTIONS)));
    assert_eq!(s.verify("t", pid, epoch, &[Tp::new("a", 0)]), Err(ErrorCode::CONCURRENT_TRANSACTIONS));
    complete(&mut s, &job);
    assert_eq!(state(&s, "t"), TxnState::CompleteCommit);
    assert!(s.get("t").unwrap().rec.partitions.is_empty());
    // A retried EndTxn succeeds; the opposite decision is an invalid state.
    assert_eq!(s.end_txn("t", pid, epoch, true, T0), Decision::Reply(ErrorCode::NONE));
    assert_eq!(s.end_txn("t", pid, epoch, false, T0), Decision::Reply(ErrorCode::INVALID_TXN_STATE));
    // The next transaction starts from CompleteCommit.
    add(&mut s, "t", pid, epoch, &[("a", 0)], T0 + 100);
    assert_eq!(s.get("t").unwrap().rec.start_ms, T0 + 100);
}

#[test]
fn abort_lifecycle_and_invalid_ends() {
    let mut s = shard();
    let (pid, epoch) = init(&mut s, "t", None, 7);
    assert_eq!(s.end_txn("t", pid, epoch, true, T0), Decision::Reply(ErrorCode::INVALID_TXN_STATE), "nothing to end");
    assert_eq!(s.end_txn("t", pid + 1, epoch, true, T0), Decision::Reply(ErrorCode::INVALID_PRODUCER_ID_MAPPING));
    assert_eq!(s.end_txn("nobody", pid, epoch, true, T0), Decision::Reply(ErrorCode::INVALID_PRODUCER_ID_MAPPING));
    add(&mut s, "t", pid, epoch, &[("a", 0)], T0);
    let job = end(&mut s, "t", pid, epoch, false);
    assert!(!job.commit);
    complete(&mut s, &job);
    assert_eq!(state(&s, "t"), TxnState::CompleteAbort);
    assert_eq!(s.end_txn("t", pid, epoch, false, T0), Decision::Reply(ErrorCode::NONE));
    assert_eq!(s.end_txn("t", pid, epoch, true, T0), Decision::Reply(ErrorCode::INVALID_TXN_STATE));
}

#[test]
fn prepare_states_answer_a_matching_end_with_concurrent_and_the_other_with_invalid_state() {
    let mut s = shard();
    let (pid, epoch) = init(&mut s, "t", None, 7);
    add(&mut s, "t", pid, epoch, &[("a", 0)], T0);
    let job = end(&mut s, "t", pid, epoch, true);
    // Reloaded without the pending state (a new coordinator before it resends).
    s.txns.get_mut("t").unwrap().pending = None;
    assert_eq!(s.end_txn("t", pid, epoch, true, T0), Decision::Reply(ErrorCode::CONCURRENT_TRANSACTIONS));
    assert_eq!(s.end_txn("t", pid, epoch, false, T0), Decision::Reply(ErrorCode::INVALID_TXN_STATE));
    assert_eq!(s.after_prepare("t"), AfterWrite::SendMarkers(job));
}

#[test]
fn add_partitions_errors() {
    let mut s = shard();
    assert_eq!(s.add_partitions("t", 1, 0, &tps(&[("a", 0)]), T0), Decision::Reply(ErrorCode::INVALID_PRODUCER_ID_MAPPING));
    let (pid, epoch) = init(&mut s, "t", None, 7);
    assert_eq!(s.add_partitions("t", pid + 1, epoch, &tps(&[("a", 0)]), T0), Decision::Reply(ErrorCode::INVALID_PRODUCER_ID_MAPPING));
    assert_eq!(s.add_partitions("t", pid, epoch + 1, &tps(&[("a", 0)]), T0), Decision::Reply(ErrorCode::PRODUCER_FENCED));
    assert_eq!(s.verify("x", pid, epoch, &[]), Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING));
    assert_eq!(s.verify("t", pid + 1, epoch, &[]), Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING));
    // Empty: no partition is in a transaction.
    assert_eq!(s.verify("t", pid, epoch, &[Tp::new("a", 0)]), Ok(vec![ErrorCode::INVALID_TXN_STATE]));
}

#[test]
fn init_during_an_ongoing_transaction_fences_and_aborts_it() {
    let mut s = shard();
    let (pid, epoch) = init(&mut s, "t", None, 7);
    add(&mut s, "t", pid, epoch, &[("a", 0)], T0);
    let InitDecision::Write(t) = s.init_producer_id("t", 60_000, None, None, T0 + 1) else { panic!("fence write") };
    assert_eq!(t.kind, TransitKind::EpochFence);
    assert_eq!(t.rec.state, TxnState::PrepareAbort);
    assert_eq!(t.rec.producer_epoch, epoch + 1);
    assert_eq!(s.get("t").unwrap().pending, Some(TxnState::PrepareEpochFence));
    let AfterWrite::SendMarkers(job) = commit_write(&mut s, t) else { panic!("markers") };
    assert!(!job.commit);
    assert_eq!(job.producer_epoch, epoch + 1, "markers carry the fenced epoch");
    // The old producer is fenced; the new one waits for the abort.
    assert_eq!(s.end_txn("t", pid, epoch, true, T0), Decision::Reply(ErrorCode::PRODUCER_FENCED));
    assert_eq!(s.init_producer_id("t", 60_000, None, None, T0), InitDecision::Reply(Err(ErrorCode::CONCURRENT_TRANSACTIONS)));
    complete(&mut s, &job);
    assert_eq!(state(&s, "t"), TxnState::CompleteAbort);
    // The retry bumps a second time.
    assert_eq!(init(&mut s, "t", None, 0), (pid, epoch + 2));
}

#[test]
fn failed_fence_write_does_not_bump_twice() {
    let mut s = shard();
    let (pid, epoch) = init(&mut s, "t", None, 7);
    add(&mut s, "t", pid, epoch, &[("a", 0)], T0);
    let InitDecision::Write(t) = s.init_producer_id("t", 60_000, None, None, T0) else { panic!("fence write") };
    s.write_done(&t, Err(ErrorCode::COORDINATOR_NOT_AVAILABLE));
    assert_eq!(state(&s, "t"), TxnState::Ongoing);
    assert_eq!(s.get("t").unwrap().rec.producer_epoch, epoch);
    let InitDecision::Write(t2) = s.init_producer_id("t", 60_000, None, None, T0) else { panic!("fence write") };
    assert_eq!(t2.rec.producer_epoch, epoch + 1, "the same epoch as the failed fence");
    commit_write(&mut s, t2);
    assert_eq!(s.get("t").unwrap().rec.producer_epoch, epoch + 1);
}

#[test]
fn timed_out_transactions_are_aborted_with_a_bumped_epoch() {
    let mut s = shard();
    let (pid, epoch) = init(&mut s, "t", None, 7);
    init(&mut s, "idle", None, 8);
    add(&mut s, "t", pid, epoch, &[("a", 0)], T0);
    assert!(s.timed_out(T0 + 60_000).is_empty(), "exactly at the timeout is not past it");
    assert_eq!(s.timed_out(T0 + 60_001), vec!["t".to_string()]);
    let t = s.abort_timed_out("t", T0 + 60_001).expect("abort");
    assert_eq!(t.kind, TransitKind::TimeoutAbort);
    assert_eq!(t.rec.producer_epoch, epoch + 1);
    assert!(s.timed_out(T0 + 60_001).is_empty(), "pending: not again");
    assert!(s.abort_timed_out("t", T0 + 60_001).is_none());
    let AfterWrite::SendMarkers(job) = commit_write(&mut s, t) else { panic!("markers") };
    complete(&mut s, &job);
    assert_eq!(state(&s, "t"), TxnState::CompleteAbort);
    // The producer that let it time out is fenced.
    assert_eq!(s.add_partitions("t", pid, epoch, &tps(&[("a", 0)]), T0), Decision::Reply(ErrorCode::PRODUCER_FENCED));
    assert_eq!(s.end_txn("t", pid, epoch, true, T0), Decision::Reply(ErrorCode::PRODUCER_FENCED));
}

#[test]
fn idle_transactional_ids_expire() {
    let mut s = TxnShard::new(TxnConfig { max_timeout_ms: 900_000, id_expiration_ms: 1000 });
    let (pid, epoch) = init(&mut s, "idle", None, 7);
    init(&mut s, "busy", None, 8);
    add(&mut s, "busy", 8, 0, &[("a", 0)], T0);
    assert!(s.expire(T0 + 999).is_empty());
    let expired = s.expire(T0 + 1000);
    assert_eq!(expired.len(), 1, "only the idle id, not the one with a transaction");
    let t = &expired[0];
    assert_eq!((t.transactional_id.as_str(), t.kind, t.rec.state), ("idle", TransitKind::Expire, TxnState::Dead));
    assert!(s.expire(T0 + 1000).is_empty(), "pending");
    assert_eq!(s.init_producer_id("idle", 60_000, None, None, T0), InitDecision::Reply(Err(ErrorCode::CONCURRENT_TRANSACTIONS)));
    commit_write(&mut s, t.clone());
    assert!(s.get("idle").is_none());
    assert_eq!(s.end_txn("idle", pid, epoch, true, T0), Decision::Reply(ErrorCode::INVALID_PRODUCER_ID_MAPPING));
}

#[test]
fn markers_done_for_a_stale_job_does_nothing() {
    let mut s = shard();
    let (pid, epoch) = init(&mut s, "t", None, 7);
    add(&mut s, "t", pid, epoch, &[("a", 0)], T0);
    let mut job = end(&mut s, "t", pid, epoch, true);
    job.producer_epoch += 1;
    assert!(s.markers_done(&job, T0).is_none());
    job.producer_epoch -= 1;
    job.commit = false;
    assert!(s.markers_done(&job, T0).is_none());
}

#[test]
fn list_and_describe_filters() {
    let mut s = shard();
    let (p1, e1) = init(&mut s, "a", None, 1);
    init(&mut s, "b", None, 2);
    add(&mut s, "a", p1, e1, &[("x", 0), ("y", 1)], T0);
    let v = s.view("a").unwrap();
    assert_eq!((v.state, v.producer_id, v.start_ms, v.partitions.len()), (TxnState::Ongoing, 1, T0, 2));
    assert!(s.view("nobody").is_none());
    let ids = |v: Vec<TxnView>| v.into_iter().map(|t| t.transactional_id).collect::<Vec<_>>();
    assert_eq!(ids(s.list(&[], &[], -1, T0)), ["a", "b"]);
    assert_eq!(ids(s.list(&[TxnState::Ongoing], &[], -1, T0)), ["a"]);
    assert_eq!(ids(s.list(&[], &[2], -1, T0)), ["b"]);
    assert_eq!(ids(s.list(&[TxnState::Ongoing], &[], 10, T0 + 11)), ["a"]);
    assert!(s.list(&[TxnState::Ongoing], &[], 10, T0 + 10).is_empty());
}

// ----- persistence -----

/// The bytes Kafka's `TransactionLog.valueToBytes` produces (value v0),
/// written out by hand field by field.
#[test]
fn value_v0_matches_kafkas_byte_layout() {
    let rec = TxnRecord {
        producer_id: 0x0102030405060708,
        producer_epoch: 3,
        timeout_ms: 60_000,
        state: TxnState::Ongoing,
        partitions: tps(&[("ab", 1), ("ab", 0), ("c", 7)]),
        last_update_ms: 1_700_000_000_123,
        start_ms: 1_700_000_000_000,
    };
    let mut want: Vec<u8> = vec![0, 0]; // version 0
    want.extend_from_slice(&0x0102030405060708i64.to_be_bytes());
    want.extend_from_slice(&3i16.to_be_bytes());
    want.extend_from_slice(&60_000i32.to_be_bytes());
    want.push(1); // Ongoing
    want.extend_from_slice(&2i32.to_be_bytes()); // two topics
    want.extend_from_slice(&[0, 2, b'a', b'b']);
    want.extend_from_slice(&2i32.to_be_bytes());
    want.extend_from_slice(&0i32.to_be_bytes());
    want.extend_from_slice(&1i32.to_be_bytes());
    want.extend_from_slice(&[0, 1, b'c']);
    want.extend_from_slice(&1i32.to_be_bytes());
    want.extend_from_slice(&7i32.to_be_bytes());
    want.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
    want.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    assert_eq!(&value(&rec)[..], &want[..]);
    assert_eq!(decode_value(&want), Some(rec));

    assert_eq!(&key("tx")[..], &[0, 0, 0, 2, b't', b'x']);
    assert_eq!(decode_key(&[0, 0, 0, 2, b't', b'x']).as_deref(), Some("tx"));
    assert_eq!(decode_key(&[0, 1, 0, 2, b't', b'x']), None, "unknown key version");
}

#[test]
fn empty_state_writes_null_partitions() {
    let rec = TxnRecord { producer_id: 5, producer_epoch: 0, timeout_ms: 1000, state: TxnState::Empty, partitions: BTreeSet::new(), last_update_ms: 1, start_ms: -1 };
    let v = value(&rec);
    assert_eq!(&v[2 + 8 + 2 + 4 + 1..2 + 8 + 2 + 4 + 1 + 4], &(-1i32).to_be_bytes());
    assert_eq!(decode_value(&v), Some(rec));
}

/// Value v1 (flexible), as Kafka writes it with transactions v2: compact
/// strings/arrays and tagged fields (here PreviousProducerId, tag 0).
#[test]
fn value_v1_is_read() {
    let mut v: Vec<u8> = vec![0, 1];
    v.extend_from_slice(&9i64.to_be_bytes());
    v.extend_from_slice(&4i16.to_be_bytes());
    v.extend_from_slice(&5000i32.to_be_bytes());
    v.push(2); // PrepareCommit
    v.push(2); // compact array: one topic
    v.extend_from_slice(&[2, b'z']); // compact string "z"
    v.push(3); // two partitions
    v.extend_from_slice(&4i32.to_be_bytes());
    v.extend_from_slice(&5i32.to_be_bytes());
    v.push(0); // topic's tagged fields
    v.extend_from_slice(&77i64.to_be_bytes());
    v.extend_from_slice(&66i64.to_be_bytes());
    v.extend_from_slice(&[1, 0, 8]); // one tagged field: tag 0, 8 bytes
    v.extend_from_slice(&3i64.to_be_bytes());
    let rec = decode_value(&v).expect("decodes");
    assert_eq!(rec.producer_id, 9);
    assert_eq!(rec.state, TxnState::PrepareCommit);
    assert_eq!(rec.partitions, tps(&[("z", 4), ("z", 5)]));
    assert_eq!((rec.last_update_ms, rec.start_ms), (77, 66));
}

#[test]
fn damaged_values_do_not_decode() {
    let rec = TxnRecord { producer_id: 5, producer_epoch: 0, timeout_ms: 1000, state: TxnState::Ongoing, partitions: tps(&[("a", 0)]), last_update_ms: 1, start_ms: 1 };
    let v = value(&rec);
    for cut in 0..v.len() {
        assert_eq!(decode_value(&v[..cut]), None, "cut at {cut}");
    }
    let mut bad = v.to_vec();
    bad[1] = 9; // unknown version
    assert_eq!(decode_value(&bad), None);
    let mut bad = v.to_vec();
    bad[2 + 8 + 2 + 4] = 42; // unknown state
    assert_eq!(decode_value(&bad), None);
}

#[test]
fn load_replays_the_last_record_per_id_and_tombstones() {
    let log = Arc::new(MemLog::default());
    let rec = |pid: i64, state: TxnState, parts: &[(&str, i32)]| TxnRecord {
        producer_id: pid,
        producer_epoch: 0,
        timeout_ms: 1000,
        state,
        partitions: tps(parts),
        last_update_ms: 1,
        start_ms: 1,
    };
    let put = |id: &str, r: Option<TxnRecord>| {
        let v = r.map(|r| value(&r));
        log.append(build_batch(&[(key(id), v)], 1)).unwrap();
    };
    put("a", Some(rec(1, TxnState::Empty, &[])));
    put("b", Some(rec(2, TxnState::Ongoing, &[("x", 0)])));
    put("a", Some(rec(1, TxnState::PrepareCommit, &[("y", 1)])));
    put("b", None);
    // A record with a key of another format is skipped.
    log.append(build_batch(&[(Bytes::from_static(&[0, 5, 0]), Some(Bytes::from_static(b"?")))], 1)).unwrap();
    let txns = persistence::load(&*log).unwrap();
    assert_eq!(txns.len(), 1);
    let a = &txns["a"];
    assert_eq!(a.rec.state, TxnState::PrepareCommit);
    assert_eq!(a.rec.partitions, tps(&[("y", 1)]));
    assert!(a.pending.is_none());
}
