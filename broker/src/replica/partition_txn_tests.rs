//! Transactions on one partition, without a network: transactional appends,
//! markers (`Partition::append_txn_marker`), the last stable offset, the
//! aborted-transaction index on a leader and on a follower that copies its
//! log, and producer state with open transactions across a restart.

use std::sync::Arc;

use bytes::Bytes;
use klamm_config::{BrokerConfig, TopicConfig};
use klamm_protocol::records::{EndTransactionMarker, RecordBatchBuilder};
use klamm_protocol::ErrorCode;
use klamm_raft::PartitionImage;
use klamm_storage::AbortedTxn;

use super::partition::{LeaderFetchState, Partition};

fn config(segment_bytes: i32) -> Arc<TopicConfig> {
    let loaded = BrokerConfig::load(None, &[]).expect("default config");
    let mut c = TopicConfig::from_broker(&loaded.config);
    c.min_insync_replicas = 1;
    c.segment_bytes = segment_bytes;
    Arc::new(c)
}

fn image(replicas: &[i32]) -> PartitionImage {
    PartitionImage { partition: 0, replicas: replicas.to_vec(), isr: replicas.to_vec(), leader: 1, leader_epoch: 0, partition_epoch: 0, ..Default::default() }
}

fn open_with(dir: &tempfile::TempDir, node: i32, replicas: &[i32], config: Arc<TopicConfig>) -> Partition {
    Partition::open("t", [1; 16], 0, dir.path(), config, node, &image(replicas), 0, i64::MAX, None).expect("open partition")
}

/// A lone replica (its high watermark is its log end offset).
fn lone(dir: &tempfile::TempDir) -> Partition {
    open_with(dir, 1, &[1], config(1 << 20))
}

fn txn(pid: i64, epoch: i16, seq: i32, records: usize) -> Bytes {
    let mut b = RecordBatchBuilder::new(0).producer(pid, epoch, seq).transactional(true);
    for i in 0..records {
        b = b.record(1_000 + i as i64, Some(b"k"), Some(b"v"));
    }
    b.build()
}

fn plain(records: usize) -> Bytes {
    let mut b = RecordBatchBuilder::new(0);
    for i in 0..records {
        b = b.record(1_000 + i as i64, None, Some(b"v"));
    }
    b.build()
}

fn end(commit: bool, coordinator_epoch: i32) -> EndTransactionMarker {
    EndTransactionMarker { commit, coordinator_epoch }
}

#[test]
fn open_transactions_hold_the_last_stable_offset_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = lone(&dir);
    p.append_from_client(plain(2), 9, 10).unwrap(); // 0-1
    p.append_from_client(txn(7, 0, 0, 2), 9, 10).unwrap(); // 2-3
    p.append_from_client(txn(8, 0, 0, 1), 9, 10).unwrap(); // 4
    let v = p.view();
    assert_eq!((v.high_watermark, v.last_stable_offset), (5, 2));
    assert!(p.begin_txn_verification(7, 0).is_none(), "producer 7's transaction is open here");
    assert!(p.begin_txn_verification(7, 1).is_some() && p.begin_txn_verification(9, 0).is_some());
    let m = p.append_txn_marker(7, 0, end(false, 1), 11).unwrap();
    assert_eq!(m.base_offset, 5);
    assert_eq!(p.view().last_stable_offset, 4, "producer 8 is still open");
    p.append_txn_marker(8, 0, end(true, 1), 12).unwrap();
    assert_eq!(p.view().last_stable_offset, 7);
    assert_eq!(p.reader().collect_aborted(0, 7), vec![AbortedTxn { producer_id: 7, first_offset: 2, last_offset: 5, last_stable_offset: 4 }]);
    // A plain write of a producer inside its transaction is refused.
    p.append_from_client(txn(9, 0, 0, 1), 9, 13).unwrap();
    let mut b = RecordBatchBuilder::new(0).producer(9, 0, 1).record(1, None, Some(b"x")).build();
    let err = p.append_from_client(std::mem::take(&mut b), 9, 13).unwrap_err();
    assert_eq!(err.code, ErrorCode::INVALID_TXN_STATE);
}

#[test]
fn a_transactional_batch_needs_its_open_transaction_or_a_live_verification() {
    let dir = tempfile::tempdir().unwrap();
    let p = lone(&dir);
    // Verified, then a marker ends the (empty) transaction before the batch
    // arrives: the batch must not open a transaction the coordinator ended.
    let g = p.begin_txn_verification(7, 0).expect("no transaction open");
    p.append_txn_marker(7, 0, end(false, 0), 10).unwrap();
    let err = p.append_from_client_checked(txn(7, 0, 0, 1), 9, 11, Some(g)).unwrap_err();
    assert_eq!(err.code, ErrorCode::INVALID_TXN_STATE);
    // Without any verification either.
    assert_eq!(p.append_from_client_checked(txn(7, 0, 0, 1), 9, 11, Some(0)).unwrap_err().code, ErrorCode::INVALID_TXN_STATE);
    // A live verification opens it; later batches need none.
    let g = p.begin_txn_verification(7, 0).expect("no transaction open");
    p.append_from_client_checked(txn(7, 0, 0, 1), 9, 12, Some(g)).unwrap();
    assert!(p.begin_txn_verification(7, 0).is_none());
    p.append_from_client_checked(txn(7, 0, 1, 1), 9, 12, Some(0)).unwrap();
    // Plain batches are not concerned.
    p.append_from_client_checked(plain(1), 9, 12, Some(0)).unwrap();
}

#[test]
fn markers_are_checked_against_producer_and_coordinator_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let p = lone(&dir);
    p.append_from_client(txn(7, 3, 0, 1), 9, 10).unwrap();
    assert_eq!(p.append_txn_marker(7, 2, end(true, 5), 11).unwrap_err().code, ErrorCode::INVALID_PRODUCER_EPOCH);
    p.append_txn_marker(7, 3, end(true, 5), 11).unwrap();
    assert_eq!(p.append_txn_marker(7, 3, end(false, 4), 12).unwrap_err().code, ErrorCode::TRANSACTION_COORDINATOR_FENCED);
    let states = p.producer_states().unwrap();
    let (_, e) = states.iter().find(|(id, _)| *id == 7).unwrap();
    assert_eq!((e.coordinator_epoch, e.current_txn_first_offset), (5, None));
    // A follower takes no markers.
    let dir2 = tempfile::tempdir().unwrap();
    let follower = open_with(&dir2, 2, &[1, 2], config(1 << 20));
    assert_eq!(follower.append_txn_marker(7, 3, end(true, 5), 11).unwrap_err().code, ErrorCode::NOT_LEADER_OR_FOLLOWER);
}

#[test]
fn a_marker_counts_once_the_high_watermark_passes_it_and_followers_rebuild_everything() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let leader = open_with(&dirs[0], 1, &[1, 2], config(1 << 20));
    let follower = open_with(&dirs[1], 2, &[1, 2], config(1 << 20));
    leader.append_from_client(txn(7, 0, 0, 3), 9, 10).unwrap(); // 0-2
    leader.append_from_client(plain(1), 9, 10).unwrap(); // 3
    leader.append_txn_marker(7, 0, end(false, 2), 11).unwrap(); // 4
    leader.append_from_client(txn(8, 0, 0, 1), 9, 12).unwrap(); // 5
    assert_eq!(leader.record_follower_fetch(2, 4, -1, 12), Ok(None));
    let v = leader.view();
    assert_eq!((v.high_watermark, v.last_stable_offset), (4, 0), "the marker at 4 is not replicated yet");
    // The follower copies everything and takes the high watermark.
    let data = leader.reader().read(0, 1 << 20, leader.view().log_end_offset, true).unwrap().bytes;
    follower.append_as_follower(data, LeaderFetchState { leader_epoch: 0, high_watermark: 4, log_start_offset: 0 }, 13).unwrap();
    assert_eq!(follower.view().last_stable_offset, 0);
    assert_eq!(leader.record_follower_fetch(2, 6, -1, 13), Ok(None));
    let v = leader.view();
    assert_eq!((v.high_watermark, v.last_stable_offset), (6, 5), "producer 8 is still open");
    follower.append_as_follower(Bytes::new(), LeaderFetchState { leader_epoch: 0, high_watermark: 6, log_start_offset: 0 }, 14).unwrap();
    assert_eq!(follower.view().last_stable_offset, 5);
    assert_eq!(follower.reader().collect_aborted(0, 6), leader.reader().collect_aborted(0, 6));
    assert_eq!(follower.reader().collect_aborted(0, 6).len(), 1);
    let f = follower.producer_states().unwrap();
    assert_eq!(f.iter().find(|(id, _)| *id == 8).unwrap().1.current_txn_first_offset, Some(5));
    assert_eq!(f.iter().find(|(id, _)| *id == 7).unwrap().1.coordinator_epoch, 2);
}

#[test]
fn open_transactions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let p = lone(&dir);
    p.append_from_client(plain(1), 9, 10).unwrap();
    p.append_from_client(txn(7, 0, 0, 2), 9, 10).unwrap();
    p.close();
    let p = lone(&dir);
    assert_eq!(p.view().last_stable_offset, 1, "from the snapshot");
    p.append_txn_marker(7, 0, end(true, 0), 11).unwrap();
    assert_eq!(p.view().last_stable_offset, 4);
    p.append_from_client(txn(8, 0, 0, 1), 9, 12).unwrap();
    // Without a clean close the state is replayed from the log.
    drop(p);
    std::fs::remove_file(dir.path().join(super::producer_snapshot::PRODUCER_SNAPSHOT)).ok();
    let p = lone(&dir);
    assert_eq!(p.view().last_stable_offset, 4, "producer 8's transaction is open again");
    assert!(p.begin_txn_verification(8, 0).is_none());
}

#[test]
fn retention_stops_at_the_first_offset_of_an_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = (*config(200)).clone();
    c.retention_ms = 0;
    let p = open_with(&dir, 1, &[1], Arc::new(c));
    p.append_from_client(plain(1), 9, 10).unwrap(); // 0
    p.append_from_client(txn(7, 0, 0, 1), 9, 10).unwrap(); // 1
    for _ in 0..6 {
        p.append_from_client(plain(1), 9, 10).unwrap();
    }
    assert!(p.reader().collect_aborted(0, 10).is_empty());
    p.maintain(1_000_000, true, None);
    assert!(p.view().log_start_offset <= 1, "the segment holding offset 1 stays: {:?}", p.view());
    p.append_txn_marker(7, 0, end(false, 0), 11).unwrap();
    p.append_from_client(plain(1), 9, 12).unwrap();
    p.maintain(1_000_000, true, None);
    assert!(p.view().log_start_offset > 1, "once decided, retention goes on: {:?}", p.view());
}
