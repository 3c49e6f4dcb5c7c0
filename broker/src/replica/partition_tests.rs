//! One partition with its log, without a network: a leader and follower `Partition` in
//! temp dirs, driven by the calls the fetch handler and the fetcher make. Covers how the
//! partition wires the replication state machine (its own unit tests are in
//! `replication.rs`) to the log: the published high watermark, ISR proposals, leader
//! epochs, divergence detection and truncation, leadership checks and producer snapshots.

use std::sync::Arc;

use bytes::Bytes;
use klamm_config::{BrokerConfig, TopicConfig};
use klamm_protocol::records::RecordBatchBuilder;
use klamm_protocol::ErrorCode;
use klamm_raft::PartitionImage;

use super::partition::{LeaderFetchState, Partition};

fn config(min_isr: i32) -> Arc<TopicConfig> {
    let loaded = BrokerConfig::load(None, &[]).expect("default config");
    let mut c = TopicConfig::from_broker(&loaded.config);
    c.min_insync_replicas = min_isr;
    Arc::new(c)
}

fn image(leader: i32, leader_epoch: i32, partition_epoch: i32, isr: &[i32]) -> PartitionImage {
    PartitionImage { partition: 0, replicas: vec![1, 2, 3], isr: isr.to_vec(), leader, leader_epoch, partition_epoch, ..Default::default() }
}

fn open(dir: &tempfile::TempDir, node: i32, meta: &PartitionImage, min_isr: i32) -> Partition {
    Partition::open("t", [1; 16], 0, dir.path(), config(min_isr), node, meta, 0, i64::MAX, None).expect("open partition")
}

fn batch(records: usize) -> Bytes {
    let mut b = RecordBatchBuilder::new(0);
    for i in 0..records {
        b = b.record(1_000 + i as i64, None, Some(b"v"));
    }
    b.build()
}

/// Leader 1 and follower 2 of the partition in epoch 0 (ISR 1, 2, 3; min ISR 1), each in its
/// own temp dir (returned with them, to live as long as they do).
fn leader_and_follower() -> ([tempfile::TempDir; 2], Partition, Partition) {
    let dirs = [tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir")];
    let leader = open(&dirs[0], 1, &image(1, 0, 0, &[1, 2, 3]), 1);
    let follower = open(&dirs[1], 2, &image(1, 0, 0, &[1, 2, 3]), 1);
    (dirs, leader, follower)
}

/// The leader's side of a Fetch answer in `leader_epoch`.
fn answer(leader_epoch: i32, high_watermark: i64, log_start_offset: i64) -> LeaderFetchState {
    LeaderFetchState { leader_epoch, high_watermark, log_start_offset }
}

/// Everything `p` holds from `from` to its log end offset.
fn read_all(p: &Partition, from: i64) -> Bytes {
    let v = p.view();
    p.reader().read(from, usize::MAX >> 1, v.log_end_offset, true).expect("read").bytes
}

#[test]
fn high_watermark_is_the_minimum_over_the_isr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leader = open(&dir, 1, &image(1, 0, 0, &[1, 2, 3]), 2);
    leader.append_from_client(batch(5), 9, 10).expect("append");
    assert_eq!(leader.view().high_watermark, 0, "followers have not fetched");
    assert_eq!(leader.record_follower_fetch(2, 5, 0, 11), Ok(None));
    assert_eq!(leader.view().high_watermark, 0, "follower 3 is unknown");
    assert_eq!(leader.record_follower_fetch(3, 3, 0, 12), Ok(None));
    assert_eq!(leader.view().high_watermark, 3);
    assert_eq!(leader.record_follower_fetch(3, 5, 0, 13), Ok(None));
    assert_eq!(leader.view().high_watermark, 5);
    // Never backwards, even if a follower reports less (it truncated).
    assert_eq!(leader.record_follower_fetch(3, 4, 0, 14), Ok(None));
    assert_eq!(leader.view().high_watermark, 5);
}

#[test]
fn high_watermark_holds_while_the_isr_is_below_min_insync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leader = open(&dir, 1, &image(1, 0, 0, &[1]), 2);
    leader.append_from_client(batch(2), 9, 10).expect("append");
    assert_eq!(leader.view().high_watermark, 0, "ISR of 1 < min.insync.replicas 2 with 3 replicas");
    // Follower 2 catches up: the leader proposes adding it, and counts it at once.
    assert_eq!(leader.record_follower_fetch(2, 2, 0, 11), Ok(None));
    let proposal = leader.isr_proposal(12, 30_000).expect("expand proposal");
    assert_eq!((proposal.expected_partition_epoch, proposal.isr.clone()), (0, vec![1, 2]));
    // Committed: now 2 in sync, the high watermark moves.
    leader.apply_metadata(&image(1, 0, 1, &[1, 2]), 13);
    assert_eq!(leader.view().high_watermark, 2);
}

#[test]
fn a_lone_replica_commits_on_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = PartitionImage { partition: 0, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, ..Default::default() };
    let p = Partition::open("t", [1; 16], 0, dir.path(), config(2), 1, &meta, 0, i64::MAX, None).expect("open");
    p.append_from_client(batch(3), 9, 10).expect("append");
    assert_eq!(p.view().high_watermark, 3, "the whole ISR (all replicas) has it");
}

#[test]
fn only_the_leader_takes_client_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let follower = open(&dir, 2, &image(1, 0, 0, &[1, 2, 3]), 1);
    let err = follower.append_from_client(batch(1), 9, 10).expect_err("follower refuses produce");
    assert_eq!(err.code, ErrorCode::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(follower.record_follower_fetch(3, 0, -1, 10), Err(ErrorCode::NOT_LEADER_OR_FOLLOWER));
    let pos = follower.fetch_position().expect("follower fetches");
    assert_eq!((pos.leader, pos.leader_epoch, pos.fetch_offset, pos.last_fetched_epoch), (1, 0, 0, -1));
}

#[test]
fn follower_refuses_a_corrupt_batch_and_recovers_on_good_data() {
    let (_dirs, leader, follower) = leader_and_follower();
    leader.append_from_client(batch(2), 9, 10).expect("append");
    leader.append_from_client(batch(3), 9, 11).expect("append");
    let good = read_all(&leader, 0);
    // A flipped byte in the second batch's records: its CRC no longer matches. The
    // first batch is valid, but nothing of the answer is appended.
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    for attempt in 0..3 {
        let err = follower.append_as_follower(Bytes::from(bad.clone()), answer(0, 5, 0), 12 + attempt).expect_err("corrupt");
        assert_eq!(err.code, ErrorCode::CORRUPT_MESSAGE);
        assert!(err.message.as_deref().is_some_and(|m| m.contains("offset 2") && m.contains("crc mismatch")), "{:?}", err.message);
    }
    assert_eq!(follower.view().log_end_offset, 0, "nothing appended");
    let health = follower.follower_health();
    assert_eq!(health.corrupt_batches_from_leader, 3);
    assert!(health.failing.is_some(), "the partition is flagged");
    // A batch whose length field is impossible (below the minimum) is refused too.
    let mut garbage = good.to_vec();
    garbage[8..12].copy_from_slice(&3i32.to_be_bytes());
    assert_eq!(follower.append_as_follower(Bytes::from(garbage), answer(0, 5, 0), 15).expect_err("garbage").code, ErrorCode::CORRUPT_MESSAGE);
    // The leader serves good data again: appended, the flag cleared, the count kept.
    assert_eq!(follower.append_as_follower(good, answer(0, 5, 0), 16).expect("good data"), 5);
    assert_eq!(follower.view().high_watermark, 5);
    let health = follower.follower_health();
    assert_eq!((health.corrupt_batches_from_leader, health.failing), (4, None));
}

#[test]
fn follower_copies_and_truncates_a_diverging_suffix() {
    // Leader 1 in epoch 0 writes 3 records; follower 2 copies them.
    let (_dirs, leader, follower) = leader_and_follower();
    leader.append_from_client(batch(3), 9, 10).expect("append");
    let data = read_all(&leader, 0);
    assert_eq!(follower.append_as_follower(data.clone(), answer(0, 0, 0), 11).expect("copy"), 3);
    // Leader 1 writes 2 more in epoch 0 that follower 2 never gets...
    leader.append_from_client(batch(2), 9, 12).expect("append");
    let leader_suffix = read_all(&leader, 3);
    // ...then 2 becomes leader in epoch 1 and writes its own records at offsets 3..4.
    follower.apply_metadata(&image(2, 1, 1, &[2, 3]), 13);
    follower.append_from_client(batch(1), 9, 14).expect("append as new leader");
    assert_eq!(follower.view().log_end_offset, 4);
    // Old leader 1 becomes a follower of 2 and fetches with its last epoch 0 at offset 5.
    leader.apply_metadata(&image(2, 1, 2, &[2, 3]), 15);
    let pos = leader.fetch_position().expect("now a follower");
    assert_eq!((pos.fetch_offset, pos.last_fetched_epoch), (5, 0));
    let diverging = follower.record_follower_fetch(1, pos.fetch_offset, pos.last_fetched_epoch, 16).expect("fetch");
    assert_eq!(diverging, Some((0, 3)), "epoch 0 ended at offset 3 on the new leader");
    leader.truncate_diverging(0, 3).expect("truncate");
    assert_eq!(leader.view().log_end_offset, 3);
    assert_ne!(read_all(&leader, 0), Bytes::new());
    // Now it copies the new leader's epoch-1 record and both logs are identical.
    let pos = leader.fetch_position().expect("follower");
    assert_eq!(follower.record_follower_fetch(1, pos.fetch_offset, pos.last_fetched_epoch, 17), Ok(None));
    leader.append_as_follower(read_all(&follower, 3), answer(1, 4, 0), 18).expect("copy epoch 1");
    assert_eq!(read_all(&leader, 0), read_all(&follower, 0));
    assert_ne!(read_all(&leader, 3), leader_suffix, "the uncommitted suffix is gone");
    assert_eq!(leader.view().high_watermark, 4);
}

#[test]
fn follower_truncates_to_an_offset_without_epochs() {
    // A follower holding 5 records in batches of 2, 1 and 2 (offsets 0-1, 2, 3-4).
    let (_dirs, leader, follower) = leader_and_follower();
    for records in [2, 1, 2] {
        leader.append_from_client(batch(records), 9, 10).expect("append");
    }
    assert_eq!(follower.append_as_follower(read_all(&leader, 0), answer(0, 5, 0), 11).expect("copy"), 5);
    assert_eq!(follower.view().high_watermark, 5);

    // At or past the log end: nothing to do.
    assert_eq!(follower.truncate_to_offset(5).expect("no-op"), 5);
    assert_eq!(follower.truncate_to_offset(9).expect("no-op"), 5);
    assert_eq!(read_all(&follower, 0), read_all(&leader, 0));

    // Inside a batch: the whole straddling batch goes, and the high watermark follows
    // the log end down.
    assert_eq!(follower.truncate_to_offset(4).expect("truncate"), 3);
    let v = follower.view();
    assert_eq!((v.log_end_offset, v.high_watermark, v.last_stable_offset), (3, 3, 3));
    // At a batch boundary: exactly there.
    assert_eq!(follower.truncate_to_offset(2).expect("truncate"), 2);
    assert_eq!(follower.view().log_end_offset, 2);
    let pos = follower.fetch_position().expect("follower");
    assert_eq!((pos.fetch_offset, pos.last_fetched_epoch), (2, 0));

    // It fetches the rest again and both logs are identical.
    assert_eq!(follower.append_as_follower(read_all(&leader, 2), answer(0, 5, 0), 12).expect("copy again"), 5);
    assert_eq!(read_all(&follower, 0), read_all(&leader, 0));

    // A leader never truncates on request.
    let err = leader.truncate_to_offset(0).expect_err("leader refuses");
    assert_eq!(err.code, ErrorCode::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(leader.view().log_end_offset, 5);
}

#[test]
fn stale_follower_epoch_is_fenced_at_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let follower = open(&dir, 2, &image(1, 3, 0, &[1, 2, 3]), 1);
    let err = follower.append_as_follower(batch(1), answer(2, 0, 0), 10).expect_err("answer of an older epoch");
    assert_eq!(err.code, ErrorCode::FENCED_LEADER_EPOCH);
}

/// Producer state is rebuilt at open only from what is younger than
/// producer.id.expiration.ms: a retry right after a restart is still a duplicate,
/// one from a producer idle past the expiration is new data.
#[test]
fn producer_state_replay_keeps_only_unexpired_producers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let solo = PartitionImage { partition: 0, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, ..Default::default() };
    let idempotent = || RecordBatchBuilder::new(0).producer(7, 0, 0).record(1_000, None, Some(b"v")).build();
    let open_at = |now: i64, expiration: i64| {
        Partition::open("t", [1; 16], 0, dir.path(), config(1), 1, &solo, now, expiration, None).expect("open partition")
    };
    let p = open_at(0, i64::MAX);
    assert_eq!(p.append_from_client(idempotent(), 9, 1_000).expect("append").base_offset, 0);
    p.close();
    let p = open_at(2_000, 10_000);
    assert_eq!(p.append_from_client(idempotent(), 9, 2_000).expect("retry").base_offset, 0, "deduplicated");
    p.close();
    let p = open_at(1_000_000, 10_000);
    assert_eq!(p.append_from_client(idempotent(), 9, 1_000_000).expect("append").base_offset, 1, "producer 7 expired");
    assert_eq!(p.view().log_end_offset, 2);
}

/// A producer-state snapshot in the partition dir: producer 9 at epoch 3,
/// last sequence 4, as of `offset`.
fn plant_snapshot(dir: &std::path::Path, offset: i64) {
    use super::producer_snapshot;
    use super::producer_state::{IncomingBatch, ProducerStateTable};
    let mut table = ProducerStateTable::default();
    let batch = IncomingBatch { producer_id: 9, producer_epoch: 3, base_sequence: 0, last_offset_delta: 4, max_timestamp: 1_000, transactional: false };
    table.record(&batch, 0);
    let pending = producer_snapshot::write_pending(dir, &producer_snapshot::encode(offset, &table)).expect("write");
    producer_snapshot::install(dir, &pending).expect("install");
}

/// The partition in `dir` as its only replica (leader, node 1) at time 2 000.
fn reopen_solo(dir: &std::path::Path) -> Partition {
    let solo = PartitionImage { partition: 0, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, ..Default::default() };
    Partition::open("t", [1; 16], 0, dir, config(1), 1, &solo, 2_000, i64::MAX, None).expect("open partition")
}

/// A solo partition holding 3 records of no producer, closed.
fn closed_log_of_3() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = reopen_solo(dir.path());
    p.append_from_client(batch(3), 9, 1_000).expect("append");
    p.close();
    dir
}

fn producer_9(seq: i32) -> Bytes {
    RecordBatchBuilder::new(0).producer(9, 3, seq).record(1_000, None, Some(b"v")).build()
}

/// At open the producer state comes from the snapshot plus the batches after
/// it; the snapshot is not replayed from the log (producer 9 never wrote to
/// this log, yet is known with its last sequence).
#[test]
fn a_producer_snapshot_is_loaded_at_open() {
    let dir = closed_log_of_3();
    plant_snapshot(dir.path(), 3);
    let p = reopen_solo(dir.path());
    let err = p.append_from_client(producer_9(0), 9, 2_000).expect_err("known producer, sequence 0 after 4");
    assert_eq!(err.code, ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(p.append_from_client(producer_9(5), 9, 2_000).expect("next in sequence").base_offset, 3);
    // A clean close writes a snapshot at the log end that includes it.
    p.close();
    let (offset, table) = super::producer_snapshot::read(dir.path()).expect("snapshot at close");
    assert_eq!(offset, 4);
    assert_eq!(table.get(9).and_then(|e| e.batches.back()).map(|b| b.last_seq), Some(5));
}

/// A snapshot past the recovered log end (the tail it covered was lost) is
/// ignored and removed: the state is replayed from the log instead.
#[test]
fn a_snapshot_past_the_log_end_is_ignored() {
    let dir = closed_log_of_3();
    plant_snapshot(dir.path(), 100);
    let p = reopen_solo(dir.path());
    assert_eq!(p.append_from_client(producer_9(0), 9, 2_000).expect("unknown producer starts at 0").base_offset, 3);
    assert!(!dir.path().join(super::producer_snapshot::PRODUCER_SNAPSHOT).exists());
}

/// A follower truncating below its snapshot's offset deletes it: the batches
/// it describes are gone, and others may take their offsets.
#[test]
fn truncation_below_the_snapshot_removes_it() {
    let (dirs, leader, follower) = leader_and_follower();
    for records in [2, 1, 2] {
        leader.append_from_client(batch(records), 9, 10).expect("append");
    }
    // Tiny segments: the follower rolls after each batch it copies.
    let mut small = (*config(1)).clone();
    small.segment_bytes = 1;
    follower.set_config(Arc::new(small));
    for (from, to) in [(0, 2), (2, 3), (3, 5)] {
        let batch = leader.reader().read(from, usize::MAX >> 1, to, true).expect("read").bytes;
        assert_eq!(follower.append_as_follower(batch, answer(0, 5, 0), 11).expect("copy"), to);
    }
    // The maintenance tick snapshots a log that rolled since the last snapshot (here: none yet).
    follower.maintain(20, false, None);
    let snapshot = dirs[1].path().join(super::producer_snapshot::PRODUCER_SNAPSHOT);
    assert_eq!(super::producer_snapshot::read(dirs[1].path()).map(|(o, _)| o), Some(5));
    assert_eq!(follower.truncate_to_offset(5).expect("no-op"), 5);
    assert!(snapshot.exists(), "nothing below it was cut");
    assert_eq!(follower.truncate_to_offset(3).expect("truncate"), 3);
    assert!(!snapshot.exists(), "offsets 3-4 of the snapshot are gone");
    follower.maintain(30, false, None);
    assert_eq!(super::producer_snapshot::read(dirs[1].path()).map(|(o, _)| o), Some(3), "a new one at the new end");
}

/// A follower promoted to leader knows where its epoch began; its high
/// watermark reaches that offset only once the ISR has fetched it (until
/// then ListOffsets answers OFFSET_NOT_AVAILABLE).
#[test]
fn a_new_leader_reports_its_epoch_start_until_the_high_watermark_passes_it() {
    let (_dirs, leader, follower) = leader_and_follower();
    leader.append_from_client(batch(5), 9, 10).expect("append");
    // Copied, but the old leader's high watermark was still 0.
    assert_eq!(follower.append_as_follower(read_all(&leader, 0), answer(0, 0, 0), 11).expect("copy"), 5);
    assert_eq!(follower.view().leader_epoch_start_offset, -1, "not leader");
    follower.apply_metadata(&image(2, 1, 1, &[2, 3]), 12);
    let v = follower.view();
    assert_eq!((v.leader, v.leader_epoch_start_offset, v.high_watermark), (2, 5, 0));
    assert_eq!(follower.record_follower_fetch(3, 5, 1, 13), Ok(None));
    let v = follower.view();
    assert_eq!((v.leader_epoch_start_offset, v.high_watermark), (5, 5), "committed end known again");
    follower.apply_metadata(&image(3, 2, 2, &[2, 3]), 14);
    assert_eq!(follower.view().leader_epoch_start_offset, -1, "follower again");
}

#[test]
fn coordinator_appends_check_the_producer_epoch_not_sequences() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = PartitionImage { partition: 0, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, ..Default::default() };
    let p = Partition::open("t", [1; 16], 0, dir.path(), config(1), 1, &meta, 0, i64::MAX, None).expect("open");
    // A TxnOffsetCommit batch as the group coordinator writes it: base sequence 0 every time.
    let txn = |epoch: i16| RecordBatchBuilder::new(0).producer(9, epoch, 0).transactional(true).record(1_000, Some(b"k"), Some(b"v")).build();
    assert_eq!(p.append_from_coordinator(txn(1), 10).expect("append").base_offset, 0);
    assert_eq!(p.append_from_coordinator(txn(1), 10).expect("not a duplicate").base_offset, 1);
    assert_eq!(p.append_from_coordinator(txn(0), 10).expect_err("older epoch").code, ErrorCode::INVALID_PRODUCER_EPOCH);
    assert_eq!(p.view().high_watermark, 2);
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let follower = open(&follower_dir, 2, &image(1, 0, 0, &[1, 2, 3]), 1);
    assert_eq!(follower.append_from_coordinator(txn(1), 10).expect_err("follower").code, ErrorCode::NOT_LEADER_OR_FOLLOWER);
}
