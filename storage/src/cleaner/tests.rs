//! Compaction tests: semantics, crash safety (failpoints and a real
//! `kill -9`), and a proptest against an in-memory model.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bytes::Bytes;
use klamm_protocol::records::{
    build_end_txn_marker, iter_batches, EndTransactionMarker, RecordBatch, RecordBatchBuilder, TimestampType,
};
use proptest::prelude::*;

use crate::cleaner::{failpoint, Step};
use crate::{CompactionParams, Log, LogConfig, CLEANER_OFFSET_CHECKPOINT};

/// One record as read back: (offset, key, value, timestamp).
type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>, i64);

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 64,
        max_index_bytes: 4096,
        flush_on_roll: false,
        ..LogConfig::default()
    }
}

fn params() -> CompactionParams {
    CompactionParams {
        delete_retention_ms: 1000,
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionParams::default()
    }
}

fn open(dir: &Path) -> Log {
    Log::open(dir, config(), 0).expect("open log")
}

/// Appends one batch of (key, value) records, all with timestamp `ts`.
fn put(log: &mut Log, recs: &[(&str, Option<&str>)], ts: i64) -> i64 {
    let mut b = RecordBatchBuilder::new(0);
    for (k, v) in recs {
        b.push(ts, Some(k.as_bytes()), v.map(str::as_bytes), &[]);
    }
    let mut bytes = b.build().to_vec();
    log.append(&mut bytes, ts).expect("append").base_offset
}

/// Every batch of the log, CRC-checked, in order.
fn batches(log: &Log) -> Vec<RecordBatch> {
    let reader = log.reader();
    let mut out = Vec::new();
    let mut next = reader.log_start_offset();
    let end = reader.log_end_offset();
    while next < end {
        let r = reader.read(next, 1 << 20, end, true).expect("read");
        if r.bytes.is_empty() {
            break;
        }
        for b in iter_batches(r.bytes.clone()) {
            let b = b.expect("whole batch");
            b.validate().expect("valid batch");
            out.push(b);
        }
        assert!(r.next_offset > next, "reads make progress");
        next = r.next_offset;
    }
    let mut prev = -1;
    for b in &out {
        assert!(b.base_offset() > prev, "batch offsets increase");
        prev = b.last_offset();
    }
    out
}

fn records(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    for b in batches(log) {
        for r in b.records() {
            let r = r.expect("record");
            let ts = if b.timestamp_type() == TimestampType::LogAppendTime {
                b.max_timestamp()
            } else {
                r.timestamp(b.base_timestamp())
            };
            out.push((
                r.offset(b.base_offset()),
                r.key.as_deref().map(<[u8]>::to_vec),
                r.value.as_deref().map(<[u8]>::to_vec),
                ts,
            ));
        }
    }
    let offsets: Vec<i64> = out.iter().map(|r| r.0).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "record offsets increase: {offsets:?}");
    out
}

fn kv(recs: &[Rec]) -> Vec<(i64, String, Option<String>)> {
    recs.iter()
        .map(|(o, k, v, _)| {
            (
                *o,
                String::from_utf8_lossy(k.as_deref().unwrap_or(b"<null>")).into_owned(),
                v.as_deref().map(|v| String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect()
}

fn s(k: &str, v: Option<&str>, o: i64) -> (i64, String, Option<String>) {
    (o, k.to_owned(), v.map(str::to_owned))
}

#[test]
fn latest_value_per_key_survives_with_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    put(&mut log, &[("a", Some("a0")), ("b", Some("b0")), ("c", Some("c0"))], 10); // 0..3
    put(&mut log, &[("a", Some("a1"))], 11); // 3
    log.roll().unwrap();
    put(&mut log, &[("b", Some("b1")), ("a", Some("a2"))], 12); // 4, 5
    log.roll().unwrap();
    put(&mut log, &[("c", Some("c1")), ("a", Some("a3"))], 13); // active: 6, 7
    let before = records(&log);
    let size_before = log.size_bytes();

    let stats = log.compact(&params(), log.log_end_offset(), 100).unwrap();
    assert_eq!(stats.segments_scanned, 2);
    assert_eq!(stats.first_dirty_offset, 0);
    assert_eq!(stats.cleaned_up_to, 6);
    assert_eq!(stats.records_removed, 3);
    assert_eq!(stats.tombstones_removed, 0);
    assert!(stats.bytes_after < stats.bytes_before);
    assert!(log.size_bytes() < size_before);
    assert_eq!(log.cleaner_checkpoint(), 6);
    let after = records(&log);
    assert_eq!(
        kv(&after),
        vec![
            s("c", Some("c0"), 2), // c's later record is in the active segment
            s("b", Some("b1"), 4),
            s("a", Some("a2"), 5),
            s("c", Some("c1"), 6),
            s("a", Some("a3"), 7),
        ]
    );
    // Survivors are byte-identical records at the same offsets (timestamps too).
    for r in &after {
        assert!(before.contains(r), "{r:?} was in the log before");
    }
    assert_eq!(log.log_end_offset(), 8);
    // Reads at a removed offset land on the next surviving batch.
    let r = log.read(0, 1 << 20, 8, true).unwrap();
    assert_eq!(r.first_batch_offset, Some(0));
    // A second pass with nothing dirty changes nothing.
    let again = log.compact(&params(), log.log_end_offset(), 100).unwrap();
    assert_eq!((again.segments_cleaned, again.records_removed), (0, 0));
    assert_eq!(records(&log), after);
}

#[test]
fn batch_fields_are_preserved_and_unchanged_batches_copied_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let mut b = RecordBatchBuilder::new(0)
        .producer(42, 3, 100)
        .partition_leader_epoch(7)
        .timestamp_type(TimestampType::CreateTime);
    b.push(50, Some(b"x"), Some(b"x0"), &[("h", Some(b"hv"))]);
    b.push(60, Some(b"y"), Some(b"y0"), &[]);
    b.push(70, Some(b"z"), Some(b"z0"), &[]);
    let mut bytes = b.build().to_vec();
    log.append_as_leader(&mut bytes, 7, 0).unwrap(); // 0..3
    let untouched = put(&mut log, &[("w", Some("w0"))], 80); // 3
    put(&mut log, &[("x", Some("x1"))], 90); // 4
    log.roll().unwrap();
    put(&mut log, &[("z", Some("z1"))], 95); // active
    let before = batches(&log);
    log.compact(&params(), log.log_end_offset(), 1000).unwrap();
    let after = batches(&log);
    // x (offset 0) is superseded by offset 4; y and z survive in the same batch.
    let b0 = &after[0];
    assert_eq!(b0.base_offset(), 0);
    assert_eq!(b0.last_offset_delta(), 2);
    assert_eq!(b0.records_count(), 2);
    assert_eq!((b0.producer_id(), b0.producer_epoch(), b0.base_sequence()), (42, 3, 100));
    assert_eq!(b0.partition_leader_epoch(), 7);
    assert_eq!(b0.max_timestamp(), 70);
    assert!(!b0.has_delete_horizon());
    let recs: Vec<_> = b0.records().map(Result::unwrap).collect();
    assert_eq!(recs[0].offset_delta, 1);
    assert_eq!(recs[0].timestamp(b0.base_timestamp()), 60);
    assert_eq!(recs[1].offset_delta, 2);
    // The untouched batches are byte-for-byte copies.
    assert_eq!(after[1].as_bytes(), before[1].as_bytes());
    assert_eq!(after[1].base_offset(), untouched);
    assert_eq!(after[2].as_bytes(), before[2].as_bytes());
}

#[test]
fn tombstones_get_a_delete_horizon_and_are_removed_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    put(&mut log, &[("a", Some("a0")), ("b", Some("b0"))], 10); // 0, 1
    log.roll().unwrap();
    put(&mut log, &[("a", None)], 20); // 2: tombstone
    log.roll().unwrap();
    put(&mut log, &[("c", Some("c0"))], 30); // active
    let p = params(); // delete_retention_ms = 1000

    let st = log.compact(&p, log.log_end_offset(), 5_000).unwrap();
    assert_eq!((st.records_removed, st.tombstones_removed), (1, 0));
    assert_eq!(kv(&records(&log)), vec![s("b", Some("b0"), 1), s("a", None, 2), s("c", Some("c0"), 3)]);
    let tomb = batches(&log).into_iter().find(|b| b.base_offset() == 2).unwrap();
    assert!(tomb.has_delete_horizon());
    assert_eq!(tomb.base_timestamp(), 6_000);
    // The record's own timestamp is unchanged.
    assert_eq!(records(&log)[1].3, 20);

    // Nothing dirty, horizon not reached: the scheduler waits, a forced pass keeps it.
    assert!(!log.needs_compaction(&p, log.log_end_offset(), 5_999).unwrap());
    let st = log.compact(&p, log.log_end_offset(), 5_999).unwrap();
    assert_eq!(st.tombstones_removed, 0);
    assert_eq!(records(&log).len(), 3);

    // Horizon reached: the scheduler wants a pass, which removes the tombstone.
    assert!(log.needs_compaction(&p, log.log_end_offset(), 6_000).unwrap());
    let st = log.compact(&p, log.log_end_offset(), 6_000).unwrap();
    assert_eq!((st.records_removed, st.tombstones_removed), (1, 1));
    assert_eq!(st.segments_deleted, 1);
    assert_eq!(kv(&records(&log)), vec![s("b", Some("b0"), 1), s("c", Some("c0"), 3)]);
    assert!(!log.needs_compaction(&p, log.log_end_offset(), 100_000).unwrap());

    // Survives reopen (unclean: no close).
    drop(log);
    let log = open(dir.path());
    assert_eq!(kv(&records(&log)), vec![s("b", Some("b0"), 1), s("c", Some("c0"), 3)]);
}

#[test]
fn min_compaction_lag_and_upper_bound_stop_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    put(&mut log, &[("a", Some("a0"))], 100); // 0
    log.roll().unwrap();
    put(&mut log, &[("a", Some("a1"))], 200); // 1
    log.roll().unwrap();
    put(&mut log, &[("a", Some("a2"))], 900); // 2 (young)
    log.roll().unwrap();
    put(&mut log, &[("a", Some("a3"))], 300); // 3
    log.roll().unwrap();
    put(&mut log, &[("a", Some("a4"))], 400); // active

    // Upper bound 2: only segments ending at or below offset 2 are cleanable.
    let st = log.compact(&params(), 2, 1000).unwrap();
    assert_eq!(st.cleaned_up_to, 2);
    assert_eq!(kv(&records(&log)).iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 3, 4]);

    // Lag 500 at now=1000: segment 2 (ts 900) is too young, so the range
    // stops before it even though segment 3 is old.
    let lagged = CompactionParams {
        min_compaction_lag_ms: 500,
        ..params()
    };
    let st = log.compact(&lagged, i64::MAX, 1000).unwrap();
    assert_eq!(st.cleaned_up_to, 2);
    assert_eq!(st.records_removed, 0);
    assert_eq!(records(&log).len(), 4);

    // Later the segment is old enough; the active segment is still never cleaned.
    let st = log.compact(&lagged, i64::MAX, 2000).unwrap();
    assert_eq!(st.cleaned_up_to, 4);
    assert_eq!(kv(&records(&log)), vec![s("a", Some("a3"), 3), s("a", Some("a4"), 4)]);
}

#[test]
fn active_segment_is_never_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    for i in 0..5 {
        put(&mut log, &[("k", Some(&format!("v{i}")))], i);
    }
    let before = records(&log);
    let st = log.compact(&params(), i64::MAX, 10_000).unwrap();
    assert_eq!(st.segments_scanned, 0);
    assert_eq!(records(&log), before);
    assert!(!log.needs_compaction(&params(), i64::MAX, 10_000).unwrap());
}

#[test]
fn dirty_ratio_threshold_and_max_lag() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    for i in 0..4 {
        put(&mut log, &[("k", Some("0123456789"))], i);
        log.roll().unwrap();
    }
    put(&mut log, &[("k", Some("x"))], 10);
    let half = CompactionParams {
        min_cleanable_dirty_ratio: 0.5,
        ..params()
    };
    assert_eq!(log.dirty_ratio(&half, i64::MAX, 100), 1.0);
    assert!(log.needs_compaction(&half, i64::MAX, 100).unwrap());
    log.compact(&half, i64::MAX, 100).unwrap();
    assert_eq!(log.dirty_ratio(&half, i64::MAX, 100), 0.0);
    // One clean segment left; add one dirty segment of similar size: ratio ~0.5.
    put(&mut log, &[("k", Some("0123456789"))], 20);
    log.roll().unwrap();
    put(&mut log, &[("k", Some("0123456789"))], 21);
    log.roll().unwrap();
    put(&mut log, &[("k", Some("0123456789"))], 22);
    let ratio = log.dirty_ratio(&half, i64::MAX, 100);
    assert!(ratio > 0.6 && ratio < 1.0, "ratio {ratio}");
    let strict = CompactionParams {
        min_cleanable_dirty_ratio: 0.9,
        ..params()
    };
    assert!(!log.needs_compaction(&strict, i64::MAX, 100).unwrap());
    assert!(log.maybe_compact(&strict, i64::MAX, 100).unwrap().is_none());
    // max.compaction.lag.ms forces it once the first dirty batch is old enough.
    let forced = CompactionParams {
        max_compaction_lag_ms: Some(1000),
        ..strict.clone()
    };
    assert!(!log.needs_compaction(&forced, i64::MAX, 500).unwrap());
    assert!(log.needs_compaction(&forced, i64::MAX, 5000).unwrap());
    assert!(log.maybe_compact(&forced, i64::MAX, 5000).unwrap().is_some());
    assert!(!log.needs_compaction(&strict, i64::MAX, 5000).unwrap());
}

#[test]
fn last_batch_of_a_producer_is_kept_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let mut b = RecordBatchBuilder::new(0).producer(7, 2, 0).record(5, Some(b"a"), Some(b"1")).record(6, Some(b"b"), Some(b"1")).build().to_vec();
    log.append(&mut b, 0).unwrap(); // 0, 1 (pid 7, seq 0..1)
    let mut b = RecordBatchBuilder::new(0).producer(7, 2, 2).record(7, Some(b"a"), Some(b"2")).record(8, Some(b"b"), Some(b"2")).build().to_vec();
    log.append(&mut b, 0).unwrap(); // 2, 3 (pid 7, seq 2..3): last of pid 7
    let mut b = RecordBatchBuilder::new(0).producer(8, 0, 0).record(9, Some(b"c"), Some(b"1")).build().to_vec();
    log.append(&mut b, 0).unwrap(); // 4 (pid 8): last of pid 8
    put(&mut log, &[("a", Some("3")), ("b", Some("3")), ("c", Some("3"))], 10); // 5..8
    log.roll().unwrap();
    put(&mut log, &[("z", Some("z"))], 11);
    let st = log.compact(&params(), i64::MAX, 100).unwrap();
    assert_eq!(st.records_removed, 5);
    let bs = batches(&log);
    // Batch 0 (not pid 7's last) is gone; 2 and 4 stay as empty batches.
    let bases: Vec<i64> = bs.iter().map(RecordBatch::base_offset).collect();
    assert_eq!(bases, vec![2, 4, 5, 8]);
    for (b, pid, epoch, seq) in [(&bs[0], 7, 2, 2), (&bs[1], 8, 0, 0)] {
        assert_eq!(b.records_count(), 0);
        assert_eq!((b.producer_id(), b.producer_epoch(), b.base_sequence()), (pid, epoch, seq));
        assert_eq!(b.last_offset_delta(), if pid == 7 { 1 } else { 0 });
        assert_eq!(b.records().count(), 0);
    }
    assert_eq!(bs[0].max_timestamp(), 8);
    // A second pass leaves the empty batches alone.
    let st = log.compact(&params(), i64::MAX, 100).unwrap();
    assert_eq!(st.segments_cleaned, 0);
}

#[test]
fn control_batches_kept_and_transactions_respected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    put(&mut log, &[("a", Some("a0")), ("b", Some("b0"))], 1); // 0, 1
    // Committed transaction (pid 9): a=a1 at 2, marker at 3.
    let mut b = RecordBatchBuilder::new(0).producer(9, 0, 0).transactional(true).record(2, Some(b"a"), Some(b"a1")).build().to_vec();
    log.append(&mut b, 0).unwrap();
    let marker = |commit| EndTransactionMarker {
        commit,
        coordinator_epoch: 1,
    };
    let mut m = build_end_txn_marker(0, 9, 0, marker(true), 3).to_vec();
    log.append(&mut m, 0).unwrap(); // 3
    // Aborted transaction (pid 10): b=bx at 4, marker at 5.
    let mut b = RecordBatchBuilder::new(0).producer(10, 0, 0).transactional(true).record(4, Some(b"b"), Some(b"bx")).build().to_vec();
    log.append(&mut b, 0).unwrap();
    let mut m = build_end_txn_marker(0, 10, 0, marker(false), 5).to_vec();
    log.append(&mut m, 0).unwrap(); // 5
    log.roll().unwrap();
    put(&mut log, &[("z", Some("z"))], 6);
    let before = batches(&log);
    let st = log.compact(&params(), i64::MAX, 100).unwrap();
    // a0 superseded by the committed a1; the aborted bx is removed and does
    // not supersede b0.
    assert_eq!(st.records_removed, 2);
    let after = batches(&log);
    let recs = kv(&records(&log));
    assert!(recs.contains(&s("b", Some("b0"), 1)));
    assert!(recs.contains(&s("a", Some("a1"), 2)));
    assert!(!recs.iter().any(|r| r.0 == 0 || r.0 == 4));
    // Both markers are byte-for-byte copies.
    for base in [3, 5] {
        let old = before.iter().find(|b| b.base_offset() == base).unwrap();
        let new = after.iter().find(|b| b.base_offset() == base).unwrap();
        assert!(new.is_control());
        assert_eq!(old.as_bytes(), new.as_bytes());
    }
}

#[test]
fn reopen_after_compaction_reads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    for round in 0..8 {
        for k in 0..20 {
            if (k + round) % 3 == 0 {
                put(&mut log, &[(&format!("k{k}"), Some(&format!("v{round}-{k}")))], round * 100 + k);
            }
        }
        put(&mut log, &[(&format!("k{round}"), None)], round * 100 + 50);
        log.roll().unwrap();
    }
    put(&mut log, &[("last", Some("x"))], 1000);
    log.compact(&params(), i64::MAX, 2000).unwrap();
    let bytes: Vec<Bytes> = batches(&log).iter().map(|b| b.as_bytes().clone()).collect();
    let checkpoint = log.cleaner_checkpoint();
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    let log = open(dir.path());
    assert_eq!(batches(&log).iter().map(|b| b.as_bytes().clone()).collect::<Vec<_>>(), bytes);
    assert_eq!(log.cleaner_checkpoint(), checkpoint);
    assert_eq!(log.segment_base_offsets(), bases);
    drop(log); // unclean this time
    let log = open(dir.path());
    assert_eq!(batches(&log).iter().map(|b| b.as_bytes().clone()).collect::<Vec<_>>(), bytes);
    assert_eq!(log.cleaner_checkpoint(), checkpoint);
}

#[test]
fn corrupt_checkpoint_is_ignored_and_truncation_lowers_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    for i in 0..4 {
        put(&mut log, &[(&format!("k{i}"), Some("v"))], i);
        log.roll().unwrap();
    }
    put(&mut log, &[("k", Some("active"))], 10);
    log.compact(&params(), i64::MAX, 100).unwrap();
    assert_eq!(log.cleaner_checkpoint(), 4);
    log.truncate_to(2).unwrap();
    assert_eq!(log.cleaner_checkpoint(), 2);
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.cleaner_checkpoint(), 2);
    drop(log);
    let cp = dir.path().join(CLEANER_OFFSET_CHECKPOINT);
    let text = std::fs::read_to_string(&cp).unwrap().replace("\n2 ", "\n1 ");
    std::fs::write(&cp, text).unwrap();
    let log = open(dir.path());
    assert_eq!(log.cleaner_checkpoint(), log.log_start_offset());
}

#[test]
fn concurrent_readers_see_valid_data_during_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let keys = 30;
    for round in 0..8 {
        for k in 0..keys {
            put(&mut log, &[(&format!("k{k}"), Some(&format!("{round}")))], round);
        }
        log.roll().unwrap();
    }
    let reader = log.reader();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && reads < 1_000_000 {
                let end = reader.log_end_offset();
                let mut next = reader.log_start_offset();
                let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
                while next < end {
                    let r = reader.read(next, 512, end, true).expect("read");
                    if r.bytes.is_empty() {
                        break;
                    }
                    for b in iter_batches(r.bytes.clone()) {
                        let b = b.expect("whole batch");
                        b.validate().expect("valid batch");
                        for rec in b.records() {
                            let rec = rec.unwrap();
                            let v: i64 = std::str::from_utf8(rec.value.as_deref().unwrap()).unwrap().parse().unwrap();
                            let e = latest.entry(rec.key.unwrap().to_vec()).or_insert(v);
                            assert!(*e <= v, "values of a key never go back");
                            *e = v;
                        }
                    }
                    next = r.next_offset;
                }
                reads += 1;
            }
            reads
        })
    };
    for round in 8..20 {
        for k in (0..keys).step_by(round % 4 + 1) {
            put(&mut log, &[(&format!("k{k}"), Some(&format!("{round}")))], round as i64);
        }
        log.roll().unwrap();
        log.compact(&params(), i64::MAX, 100).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(handle.join().unwrap() > 0);
}

#[test]
fn undecodable_batches_are_kept_and_stop_tombstone_removal() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    // A batch claiming gzip (which the protocol crate cannot decode yet):
    // the cleaner cannot see its keys, so it must keep it verbatim.
    let mut fake = RecordBatchBuilder::new(0).record(1, Some(b"a"), Some(b"old")).build().to_vec();
    fake[22] |= 0x01;
    let crc = crc32c::crc32c(&fake[21..]);
    fake[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append(&mut fake, 0).unwrap(); // 0
    log.roll().unwrap();
    put(&mut log, &[("a", None)], 2); // 1
    put(&mut log, &[("b", Some("b"))], 3); // 2
    log.roll().unwrap();
    put(&mut log, &[("c", Some("c"))], 4); // active
    let fake_bytes = batches(&log)[0].as_bytes().clone();
    let st = log.compact(&params(), i64::MAX, 0).unwrap();
    assert_eq!(st.undecodable_batches, 1);
    let st = log.compact(&params(), i64::MAX, 10_000).unwrap();
    assert_eq!(st.tombstones_removed, 0, "a's older value may hide in the undecodable batch");
    let bs = batches(&log);
    assert_eq!(bs[0].as_bytes(), &fake_bytes);
    assert!(bs.iter().any(|b| b.base_offset() == 1 && b.has_delete_horizon()));
}

#[test]
fn log_append_time_batches_keep_their_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let mut b = RecordBatchBuilder::new(0)
        .timestamp_type(TimestampType::LogAppendTime)
        .record(5, Some(b"a"), Some(b"1"))
        .record(6, Some(b"b"), None)
        .build()
        .to_vec();
    klamm_protocol::records::set_log_append_time(&mut b, 1000).unwrap();
    log.append(&mut b, 0).unwrap(); // 0, 1
    put(&mut log, &[("a", Some("2"))], 7); // 2
    log.roll().unwrap();
    put(&mut log, &[("z", Some("z"))], 8);
    log.compact(&params(), i64::MAX, 50).unwrap();
    let b0 = &batches(&log)[0];
    assert_eq!(b0.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(b0.max_timestamp(), 1000);
    assert!(b0.has_delete_horizon());
    assert_eq!(b0.base_timestamp(), 1050);
    assert_eq!(b0.records_count(), 1);
    assert_eq!(b0.last_offset_delta(), 1);
    let r = b0.records().next().unwrap().unwrap();
    assert_eq!((r.offset(b0.base_offset()), r.timestamp(b0.base_timestamp())), (1, 6));
}

#[test]
fn offset_map_bound_limits_a_pass_and_the_next_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    put(&mut log, &[("k0", Some("a")), ("k1", Some("a"))], 1); // 0, 1
    log.roll().unwrap();
    put(&mut log, &[("k0", Some("b"))], 2); // 2
    log.roll().unwrap();
    put(&mut log, &[("k1", Some("b"))], 3); // 3
    log.roll().unwrap();
    put(&mut log, &[("z", Some("z"))], 4); // active
    let tiny = CompactionParams {
        max_offset_map_bytes: 1,
        ..params()
    };
    let st = log.compact(&tiny, i64::MAX, 100).unwrap();
    assert_eq!((st.cleaned_up_to, st.records_removed), (2, 0));
    let st = log.compact(&tiny, i64::MAX, 100).unwrap();
    assert_eq!((st.cleaned_up_to, st.records_removed), (3, 1));
    let st = log.compact(&tiny, i64::MAX, 100).unwrap();
    assert_eq!((st.cleaned_up_to, st.records_removed), (4, 1));
    assert_eq!(
        kv(&records(&log)),
        vec![s("k0", Some("b"), 2), s("k1", Some("b"), 3), s("z", Some("z"), 4)]
    );
    assert_eq!(log.segment_base_offsets()[0], 0, "the emptied first segment stays");
    assert_eq!(log.log_start_offset(), 0);
}

#[test]
fn invalid_params_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    for bad in [
        CompactionParams { delete_retention_ms: -1, ..params() },
        CompactionParams { min_cleanable_dirty_ratio: f64::NAN, ..params() },
        CompactionParams { min_cleanable_dirty_ratio: 1.5, ..params() },
        CompactionParams { max_compaction_lag_ms: Some(0), ..params() },
        CompactionParams { max_offset_map_bytes: 0, ..params() },
    ] {
        assert!(matches!(log.compact(&bad, i64::MAX, 0), Err(crate::Error::InvalidConfig(_))));
    }
}

#[test]
fn batches_larger_than_the_read_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let big = "x".repeat(5 << 20);
    put(&mut log, &[("small", Some("1"))], 1); // 0
    put(&mut log, &[("big", Some(&big))], 2); // 1
    put(&mut log, &[("big2", Some(&big))], 3); // 2
    log.roll().unwrap();
    put(&mut log, &[("big", Some("short"))], 4); // 3
    log.roll().unwrap();
    put(&mut log, &[("z", Some("z"))], 5);
    let st = log.compact(&params(), i64::MAX, 100).unwrap();
    assert_eq!(st.records_removed, 1);
    let recs = records(&log);
    assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 2, 3, 4]);
    assert_eq!(recs[1].2.as_deref().map(<[u8]>::len), Some(5 << 20));
}

#[test]
fn blocked_tombstone_removal_does_not_keep_asking_for_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let mut fake = RecordBatchBuilder::new(0).record(1, Some(b"a"), Some(b"old")).build().to_vec();
    fake[22] |= 0x01; // claims gzip: undecodable today
    let crc = crc32c::crc32c(&fake[21..]);
    fake[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append(&mut fake, 0).unwrap();
    put(&mut log, &[("a", None)], 2);
    log.roll().unwrap();
    put(&mut log, &[("z", Some("z"))], 3);
    log.compact(&params(), i64::MAX, 0).unwrap();
    assert!(log.needs_compaction(&params(), i64::MAX, 5_000).unwrap());
    let st = log.compact(&params(), i64::MAX, 5_000).unwrap();
    assert_eq!(st.tombstones_removed, 0);
    assert!(!log.needs_compaction(&params(), i64::MAX, 6_000).unwrap());
}

fn cleaned_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect()
}

#[test]
fn job_runs_beside_appends_and_is_discarded_when_the_log_changes() {
    fn build(dir: &Path) -> Log {
        let mut log = open(dir);
        for i in 0..4 {
            put(&mut log, &[("k", Some(&format!("v{i}"))), (&format!("u{i}"), Some("u"))], i);
            log.roll().unwrap();
        }
        put(&mut log, &[("active", Some("x"))], 10);
        log
    }
    fn handles_are_send<T: Send>(_: &T) {}

    // Appends (and a roll) while the job runs on another thread.
    let dir = tempfile::tempdir().unwrap();
    let mut log = build(dir.path());
    let job = log.begin_compaction(&params(), i64::MAX, 100).unwrap().unwrap();
    handles_are_send(&job);
    assert!(log.begin_compaction(&params(), i64::MAX, 100).unwrap().is_none(), "one job at a time");
    let worker = std::thread::spawn(move || job.run());
    for i in 0..20 {
        put(&mut log, &[("k", Some(&format!("late{i}")))], 20 + i);
        if i == 10 {
            log.roll().unwrap();
        }
    }
    let prepared = worker.join().unwrap().unwrap();
    assert_eq!(prepared.stats().records_removed, 3);
    let st = log.finish_compaction(prepared).unwrap();
    assert!(!st.aborted);
    assert_eq!(st.cleaned_up_to, 8);
    let recs = kv(&records(&log));
    assert_eq!(recs.iter().filter(|r| r.1 == "k").count(), 21, "k3 plus the 20 late values");
    assert_eq!(recs.last().unwrap(), &s("k", Some("late19"), 28));
    assert!(cleaned_files(dir.path()).is_empty());

    // Retention deletes a planned segment meanwhile: the output is discarded.
    let dir = tempfile::tempdir().unwrap();
    let mut log = build(dir.path());
    let before = records(&log);
    let prepared = log.begin_compaction(&params(), i64::MAX, 100).unwrap().unwrap().run().unwrap();
    assert!(!cleaned_files(dir.path()).is_empty());
    assert_eq!(log.delete_segments_before(2).unwrap(), 1);
    let st = log.finish_compaction(prepared).unwrap();
    assert!(st.aborted);
    assert!(cleaned_files(dir.path()).is_empty());
    assert_eq!(records(&log), before[2..].to_vec());
    assert_eq!(log.cleaner_checkpoint(), 2, "checkpoint only clamped by the new log start");

    // A truncation meanwhile: discarded too.
    let dir = tempfile::tempdir().unwrap();
    let mut log = build(dir.path());
    let prepared = log.begin_compaction(&params(), i64::MAX, 100).unwrap().unwrap().run().unwrap();
    log.truncate_to(7).unwrap();
    assert!(log.finish_compaction(prepared).unwrap().aborted);

    // A dropped job or output frees the slot and removes its files.
    let prepared = log.begin_compaction(&params(), i64::MAX, 100).unwrap().unwrap().run().unwrap();
    drop(prepared);
    assert!(cleaned_files(dir.path()).is_empty());
    let st = log.compact(&params(), i64::MAX, 100).unwrap();
    assert!(!st.aborted && st.records_removed > 0);
}

// ---------------------------------------------------------------------------
// Crash safety with failpoints

/// Builds the same log in `dir`: several segments with overwrites, deletes
/// and a producer, so one pass rewrites, deletes and keeps segments.
fn build_crash_log(dir: &Path) -> Log {
    let mut log = open(dir);
    for round in 0..6i64 {
        for k in 0..8i64 {
            if (k * 7 + round * 3) % 4 != 0 {
                put(&mut log, &[(&format!("k{k}"), Some(&format!("v{round}")))], round * 10 + k);
            }
        }
        if round % 2 == 1 {
            put(&mut log, &[(&format!("k{round}"), None)], round * 10 + 9);
        }
        log.roll().unwrap();
    }
    // A segment that becomes empty (all superseded) in the middle.
    put(&mut log, &[("k1", Some("tmp")), ("k2", Some("tmp"))], 70);
    log.roll().unwrap();
    put(&mut log, &[("k1", Some("final")), ("k2", Some("final"))], 80);
    log.roll().unwrap();
    put(&mut log, &[("active", Some("x"))], 90);
    log
}

#[test]
fn crash_at_every_step_of_the_swap_protocol_recovers() {
    let reference_dir = tempfile::tempdir().unwrap();
    let mut reference = build_crash_log(reference_dir.path());
    let before = records(&reference);
    let now = 500;
    reference.compact(&params(), i64::MAX, now).unwrap();
    let after = records(&reference);
    let after_bytes: Vec<Bytes> = batches(&reference).iter().map(|b| b.as_bytes().clone()).collect();
    assert!(after.len() < before.len());

    let mut crashes = 0;
    for step in STEPS {
        for nth in 0..8 {
            let dir = tempfile::tempdir().unwrap();
            let mut log = build_crash_log(dir.path());
            failpoint::arm(step, nth);
            let result = log.compact(&params(), i64::MAX, now);
            failpoint::disarm();
            assert!(nth > 0 || result.is_err(), "{step:?} is reached by this pass");
            if result.is_ok() {
                // The step is reached fewer than nth+1 times.
                assert_eq!(records(&log), after);
                continue;
            }
            crashes += 1;
            drop(log);
            let mut log = open(dir.path());
            let got = records(&log);
            // Every record is an original one; everything the complete pass
            // keeps is there; per key, values only go forward in offset order.
            for r in &got {
                assert!(before.contains(r), "{step:?}/{nth}: {r:?} not original");
            }
            for r in &after {
                assert!(got.contains(r), "{step:?}/{nth}: lost {r:?}");
            }
            // Finishing the pass gives exactly the uninterrupted result.
            log.compact(&params(), i64::MAX, now).unwrap();
            let finished: Vec<Bytes> = batches(&log).iter().map(|b| b.as_bytes().clone()).collect();
            assert_eq!(finished, after_bytes, "{step:?}/{nth}");
            let leftovers: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
        }
    }
    assert!(crashes >= STEPS.len(), "every step was exercised ({crashes} crashes)");
}

// ---------------------------------------------------------------------------
// A real kill -9

const KILL_DIR_ENV: &str = "KLAMM_CLEANER_KILL_DIR";
const KILL_KEYS: u64 = 24;

/// Keys iteration `i` writes (all of them in iteration 0).
fn keys_of_iteration(i: u64) -> Vec<u64> {
    (0..KILL_KEYS)
        .filter(|k| i == 0 || matches!((k.wrapping_mul(2654435761) ^ i.wrapping_mul(40503)) % 3, 0))
        .collect()
}

fn max_iteration(log: &Log) -> Option<u64> {
    records(log)
        .iter()
        .filter_map(|r| std::str::from_utf8(r.2.as_deref()?).ok()?.split(':').next()?.parse().ok())
        .max()
}

/// The child side of `kill9_during_compaction`: appends an iteration (one
/// batch updating some keys), rolls and compacts, in a bounded loop, until
/// the parent kills it.
#[test]
#[ignore = "helper run by kill9_during_compaction in a child process"]
fn kill9_child() {
    let Ok(dir) = std::env::var(KILL_DIR_ENV) else {
        return;
    };
    let mut log = open(Path::new(&dir));
    let first = max_iteration(&log).map_or(0, |m| m + 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let p = params();
    for next in first..first + 100_000 {
        if std::time::Instant::now() > deadline {
            break;
        }
        let mut b = RecordBatchBuilder::new(0);
        for k in keys_of_iteration(next) {
            b.push(next as i64, Some(format!("k{k}").as_bytes()), Some(format!("{next}:{k}").as_bytes()), &[]);
        }
        let mut bytes = b.build().to_vec();
        log.append(&mut bytes, next as i64).unwrap();
        log.roll().unwrap();
        log.compact(&p, i64::MAX, next as i64).unwrap();
    }
}

#[test]
fn kill9_during_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut max_seen = 0;
    let mut rounds_with_data = 0;
    for round in 0..8 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "cleaner::tests::kill9_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env(KILL_DIR_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = 30 + seed % 1200;
        std::thread::sleep(std::time::Duration::from_millis(delay));
        // Child::kill sends SIGKILL on unix.
        let _ = child.kill();
        let status = child.wait().unwrap();
        assert!(!status.success(), "child ran to completion before the kill");

        let log = open(dir.path());
        let recs = records(&log);
        let Some(m) = max_iteration(&log) else {
            continue; // killed before the first append landed
        };
        rounds_with_data += 1;
        eprintln!("round {round}: killed after {delay} ms at iteration {m}, {} records, {} segments", recs.len(), log.segment_count());
        assert!(m >= max_seen, "iterations never go back");
        max_seen = m;
        // For every key, the latest record holds the value of the last
        // iteration <= m that wrote it; and values per key only move forward.
        let mut latest: BTreeMap<String, (i64, u64)> = BTreeMap::new();
        for (o, k, v, _) in &recs {
            let k = String::from_utf8(k.clone().unwrap()).unwrap();
            let v = String::from_utf8(v.clone().expect("no tombstones written")).unwrap();
            let it: u64 = v.split(':').next().unwrap().parse().unwrap();
            if let Some(&(_, prev)) = latest.get(&k) {
                assert!(prev < it, "key {k}: value from {it} after {prev}");
            }
            latest.insert(k, (*o, it));
        }
        for key in 0..KILL_KEYS {
            let want = (0..=m).rev().find(|&i| keys_of_iteration(i).contains(&key)).unwrap();
            let got = latest.get(&format!("k{key}")).map(|&(_, it)| it);
            assert_eq!(got, Some(want), "round {round}: key k{key}");
        }
        drop(log);
    }
    assert!(rounds_with_data > 0 && max_seen > 0, "the child made progress");
}

// ---------------------------------------------------------------------------
// Model proptest

#[derive(Debug, Clone)]
enum Op {
    /// Append one batch of (key index, value or tombstone).
    Append(Vec<(u8, bool)>),
    Roll,
    /// Compact with `now` advanced by this much and an upper bound this far
    /// below the log end (0 = log end).
    Compact { advance: i64, below_end: i64 },
    /// Compact, failing (as a crash) at the `nth` time `STEPS[step]` is
    /// reached, then reopen.
    CrashCompact { advance: i64, step: usize, nth: u32 },
    /// truncate_to(log end - n).
    Truncate(i64),
    Reopen,
}

const STEPS: [Step; 7] = [
    Step::CleanedWritten,
    Step::SwapRenamed,
    Step::OldIndexesRemoved,
    Step::LogReplaced,
    Step::SegmentReopened,
    Step::EmptyLogRemoved,
    Step::BeforeCheckpoint,
];

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => proptest::collection::vec((0u8..6, proptest::bool::weighted(0.8)), 1..5).prop_map(Op::Append),
        2 => Just(Op::Roll),
        2 => (0i64..1500, prop_oneof![Just(0i64), 0i64..6]).prop_map(|(advance, below_end)| Op::Compact { advance, below_end }),
        1 => (0i64..1500, 0..STEPS.len(), 0u32..3).prop_map(|(advance, step, nth)| Op::CrashCompact { advance, step, nth }),
        1 => (1i64..4).prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
    ]
}

/// What must hold after any pass, finished or crashed: every record is an
/// original one, unchanged; every key's latest record is present, except a
/// tombstone dropped after its retention, and then no record of the key is.
fn check_invariants(after: &[Rec], original: &BTreeMap<i64, Rec>, now: i64) -> Result<(), TestCaseError> {
    for r in after {
        prop_assert_eq!(Some(r), original.get(&r.0), "not an original record");
    }
    let mut latest: BTreeMap<Vec<u8>, &Rec> = BTreeMap::new();
    for r in original.values() {
        latest.insert(r.1.clone().unwrap(), r);
    }
    for (key, r) in &latest {
        if !after.contains(r) {
            prop_assert!(r.2.is_none(), "latest value {:?} missing", r);
            prop_assert!(now - r.3 >= params().delete_retention_ms, "tombstone {:?} dropped early", r);
            prop_assert!(!after.iter().any(|a| a.1.as_ref() == Some(key)), "older record of a removed tombstone's key survives");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn compaction_matches_model(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        // Every record ever appended: offset -> (key, value, timestamp).
        let mut original: BTreeMap<i64, Rec> = BTreeMap::new();
        let mut now = 0i64;
        let mut serial = 0u64;
        for op in ops {
            match op {
                Op::Append(recs) => {
                    let mut b = RecordBatchBuilder::new(0);
                    for (k, live) in &recs {
                        serial += 1;
                        let value = live.then(|| format!("v{serial}"));
                        b.push(now, Some(format!("k{k}").as_bytes()), value.as_deref().map(str::as_bytes), &[]);
                    }
                    let mut bytes = b.build().to_vec();
                    let base = log.append(&mut bytes, now).unwrap().base_offset;
                    for (i, (k, live)) in recs.iter().enumerate() {
                        let value = live.then(|| format!("v{}", serial - recs.len() as u64 + 1 + i as u64));
                        original.insert(base + i as i64, (base + i as i64, Some(format!("k{k}").into_bytes()), value.map(String::into_bytes), now));
                    }
                    now += 1;
                }
                Op::Roll => log.roll().unwrap(),
                Op::Reopen => {
                    drop(log);
                    log = open(dir.path());
                }
                Op::Truncate(n) => {
                    log.truncate_to((log.log_end_offset() - n).max(0)).unwrap();
                    prop_assert!(log.cleaner_checkpoint() <= log.log_end_offset());
                    // Records compaction removed because of a now truncated
                    // later record are legitimately gone (a follower truncating
                    // to its leader would refetch them): the log as it is
                    // becomes the model's baseline.
                    original = records(&log).into_iter().map(|r| (r.0, r)).collect();
                }
                Op::CrashCompact { advance, step, nth } => {
                    now += advance;
                    failpoint::arm(STEPS[step], nth);
                    let result = log.compact(&params(), log.log_end_offset(), now);
                    failpoint::disarm();
                    if result.is_err() {
                        drop(log);
                        log = open(dir.path());
                    }
                    check_invariants(&records(&log), &original, now)?;
                }
                Op::Compact { advance, below_end } => {
                    now += advance;
                    let before = records(&log);
                    let bound = log.log_end_offset() - below_end;
                    let st = log.compact(&params(), bound, now).unwrap();
                    prop_assert!(st.cleaned_up_to <= bound.max(st.first_dirty_offset));
                    let after = records(&log);
                    check_invariants(&after, &original, now)?;
                    for r in &after {
                        prop_assert!(before.contains(r));
                    }
                    // Nothing below the cleaned offset has a later record of
                    // its key below that offset.
                    for r in after.iter().filter(|r| r.0 < st.cleaned_up_to) {
                        prop_assert!(!after.iter().any(|a| a.1 == r.1 && a.0 > r.0 && a.0 < st.cleaned_up_to), "{:?} is superseded", r);
                    }
                    // Above the cleaned range nothing changed.
                    let tail = |v: &[Rec]| v.iter().filter(|r| r.0 >= st.cleaned_up_to).cloned().collect::<Vec<_>>();
                    prop_assert_eq!(tail(&before), tail(&after));
                }
            }
        }
    }
}
