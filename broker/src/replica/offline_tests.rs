//! A partition taken offline on this node (see `partition.rs`, "Offline"): a
//! panic while its state lock is held must not turn every later request for
//! it into another panic. Driven through the calls the handlers and the
//! background tasks make, with the test hook that panics under the lock.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use klamm_config::{BrokerConfig, Defaults, TopicConfig};
use klamm_protocol::records::RecordBatchBuilder;
use klamm_protocol::ErrorCode;
use klamm_raft::{MetadataCommand, MetadataImage, NewPartition, PartitionImage};
use klamm_storage::CLEAN_SHUTDOWN_MARKER;

use super::partition::Partition;
use super::ReplicaManager;

fn config() -> Arc<TopicConfig> {
    let loaded = BrokerConfig::load(None, &[]).expect("default config");
    Arc::new(TopicConfig::from_broker(&loaded.config))
}

/// This node (1) alone leads the partition in epoch 0.
fn sole_leader() -> PartitionImage {
    PartitionImage { partition: 0, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 0, partition_epoch: 0, ..Default::default() }
}

fn open(dir: &std::path::Path) -> Partition {
    Partition::open("t", [1; 16], 0, dir, config(), 1, &sole_leader(), 0, i64::MAX, None).expect("open partition")
}

fn batch(records: usize) -> Bytes {
    let mut b = RecordBatchBuilder::new(0);
    for i in 0..records {
        b = b.record(1_000 + i as i64, None, Some(b"v"));
    }
    b.build()
}

fn poison(p: &Partition) {
    let panicked = catch_unwind(AssertUnwindSafe(|| p.panic_under_state_lock()));
    assert!(panicked.is_err(), "the hook panics");
}

#[test]
fn a_panic_under_the_state_lock_takes_the_partition_offline_instead_of_cascading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    p.append_from_client(batch(3), 9, 10).expect("append before the failure");
    assert!(!p.is_offline());

    poison(&p);

    // Every entry point answers (KAFKA_STORAGE_ERROR where it answers a
    // client) instead of panicking on the poisoned lock.
    assert!(p.is_offline(), "a poisoned lock counts as offline before anyone locks it again");
    let err = p.append_from_client(batch(1), 9, 11).expect_err("no append while offline");
    assert_eq!(err.code, ErrorCode::KAFKA_STORAGE_ERROR);
    assert!(p.offline_reason().is_some_and(|r| r.contains("panic")), "reason: {:?}", p.offline_reason());
    assert_eq!(p.record_follower_fetch(2, 0, -1, 12), Err(ErrorCode::KAFKA_STORAGE_ERROR));
    assert_eq!(p.delete_records(1), Err(ErrorCode::KAFKA_STORAGE_ERROR));
    assert!(!p.is_leader());
    assert_eq!(p.isr_len(), 0);
    assert_eq!(p.log_stats(), None);
    assert_eq!(p.end_offset_for_epoch(0), None);
    assert_eq!(p.maintain(13, true, Some(1)), 0);
    assert!(p.compact_if_dirty(14).is_none());
    p.apply_metadata(&sole_leader(), 15);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    assert_eq!(rt.block_on(p.wait_for_high_watermark(4, 0, deadline)), Err(ErrorCode::KAFKA_STORAGE_ERROR), "an acks=all wait ends at once");

    // Closing does not pretend the state was clean: no clean-shutdown marker,
    // so the next open recovers the log.
    p.close();
    assert!(!dir.path().join(CLEAN_SHUTDOWN_MARKER).exists());
    drop(p);

    // Nothing acknowledged before the failure is lost.
    let reopened = open(dir.path());
    assert!(!reopened.is_offline());
    assert_eq!(reopened.view().log_end_offset, 3);
    let read = reopened.reader().read(0, 1 << 20, 3, true).expect("read");
    assert_eq!(read.bytes.len(), batch(3).len(), "the acknowledged batch is intact");
    reopened.append_from_client(batch(2), 9, 20).expect("append after the reopen");
    assert_eq!(reopened.view().log_end_offset, 5);
    reopened.close();
}

#[test]
fn a_waiting_acks_all_produce_is_woken_when_the_partition_goes_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = PartitionImage { replicas: vec![1, 2], isr: vec![1, 2], ..sole_leader() };
    let p = Arc::new(Partition::open("t", [1; 16], 0, dir.path(), config(), 1, &image, 0, i64::MAX, None).expect("open"));
    p.append_from_client(batch(1), 9, 10).expect("append");
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let waited = rt.block_on(async {
        let waiter = p.clone();
        // The follower never fetches, so only the failure can end this wait early.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let wait = tokio::spawn(async move { waiter.wait_for_high_watermark(1, 0, deadline).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        poison(&p);
        // The poisoned lock is noticed by the next locker; a maintenance tick is one.
        p.maintain(11, false, None);
        tokio::time::timeout(Duration::from_secs(5), wait).await
    });
    assert_eq!(waited.expect("woken, not timed out").expect("task"), Err(ErrorCode::KAFKA_STORAGE_ERROR));
}

#[test]
fn the_replica_manager_answers_storage_error_and_reopens_the_partition_from_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = BrokerConfig::from_map(Defaults::Embedded, BTreeMap::new()).expect("embedded profile");
    let mut image = MetadataImage::default();
    let create = MetadataCommand::CreateTopic {
        name: "t".into(),
        topic_id: [7; 16],
        partitions: vec![NewPartition { partition: 0, replicas: vec![1] }, NewPartition { partition: 1, replicas: vec![1] }],
        configs: BTreeMap::new(),
    };
    assert!(image.apply(1, &create).is_applied());
    let replicas = ReplicaManager::open(1, dir.path().to_path_buf(), loaded, &image);
    let p0 = replicas.lookup("t", 0).expect("t-0 open");
    p0.append_from_client(batch(4), 9, 10).expect("append");
    let signal = replicas.offline_signal.clone();

    poison(&p0);
    drop(p0);

    // Before any reconcile pass: the failed partition answers KAFKA_STORAGE_ERROR
    // and counts as offline; its neighbour serves on.
    assert_eq!(replicas.lookup("t", 0).err(), Some(ErrorCode::KAFKA_STORAGE_ERROR));
    assert!(replicas.is_offline("t", 0));
    let p1 = replicas.lookup("t", 1).expect("t-1 unaffected");
    p1.append_from_client(batch(1), 9, 11).expect("t-1 still takes appends");

    // The partition poked the reconciler (a stored permit: the task need not be waiting yet).
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let poked = rt.block_on(async { tokio::time::timeout(Duration::from_secs(1), signal.notified()).await });
    assert!(poked.is_ok(), "the reconciler is woken");

    // A pass moves it to the offline set (Metadata's offline replicas, the gauge) ...
    replicas.reconcile(&image);
    let offline = replicas.offline_partitions();
    assert_eq!(offline.len(), 1);
    assert_eq!((offline[0].0.topic.as_str(), offline[0].0.partition), ("t", 0));
    assert!(offline[0].1.error.contains("panic"));
    assert!(replicas.get("t", 0).is_none());
    assert_eq!(replicas.lookup("t", 0).err(), Some(ErrorCode::KAFKA_STORAGE_ERROR));

    // ... and once the retry back-off (1 s) has passed, a pass reopens it from disk.
    std::thread::sleep(Duration::from_millis(1_100));
    replicas.reconcile(&image);
    assert!(!replicas.has_offline_partitions(), "{:?}", replicas.offline_partitions());
    let reopened = replicas.lookup("t", 0).expect("t-0 reopened");
    assert_eq!(reopened.view().log_end_offset, 4, "nothing acknowledged was lost");
    reopened.append_from_client(batch(1), 9, 12).expect("appends again");
    assert_eq!(reopened.view().log_end_offset, 5);
    replicas.close_all();
}
