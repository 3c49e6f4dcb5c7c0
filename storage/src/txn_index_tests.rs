//! Tests of the aborted-transaction index: appends, lookups, truncation,
//! deletion with its segment, and the rebuild by recovery.

use std::path::Path;

use klamm_protocol::records::{build_end_txn_marker, EndTransactionMarker, RecordBatchBuilder};

use crate::{AbortedTxn, Log, LogConfig};

fn config() -> LogConfig {
    LogConfig { segment_bytes: 400, index_interval_bytes: 100, max_index_bytes: 4096, flush_on_roll: false, ..LogConfig::default() }
}

fn txn_batch(log: &mut Log, pid: i64, seq: i32) -> i64 {
    let mut b = RecordBatchBuilder::new(0).producer(pid, 0, seq).transactional(true).record(1, Some(b"k"), Some(&[7u8; 60])).build().to_vec();
    log.append(&mut b, 1).unwrap().base_offset
}

fn plain_batch(log: &mut Log) -> i64 {
    let mut b = RecordBatchBuilder::new(0).record(1, Some(b"k"), Some(&[1u8; 60])).build().to_vec();
    log.append(&mut b, 1).unwrap().base_offset
}

fn marker(log: &mut Log, pid: i64, commit: bool) -> i64 {
    let mut b = build_end_txn_marker(0, pid, 0, EndTransactionMarker { commit, coordinator_epoch: 3 }, 1).to_vec();
    log.append(&mut b, 1).unwrap().base_offset
}

fn txn_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "txnindex")).collect();
    files.sort();
    files
}

/// Producer 1 aborts a transaction spanning segments; producer 2 commits;
/// producer 1 aborts a second one inside the last segment. Returns the
/// entries the owner appended.
fn write_history(log: &mut Log) -> Vec<AbortedTxn> {
    let first1 = txn_batch(log, 1, 0);
    txn_batch(log, 2, 0);
    for i in 0..6 {
        plain_batch(log);
        txn_batch(log, 1, 1 + i);
    }
    marker(log, 2, true);
    let m1 = marker(log, 1, false);
    let e1 = AbortedTxn { producer_id: 1, first_offset: first1, last_offset: m1, last_stable_offset: m1 + 1 };
    log.append_aborted_txn(e1).unwrap();
    let first2 = txn_batch(log, 1, 7);
    let m2 = marker(log, 1, false);
    let e2 = AbortedTxn { producer_id: 1, first_offset: first2, last_offset: m2, last_stable_offset: m2 + 1 };
    log.append_aborted_txn(e2).unwrap();
    vec![e1, e2]
}

#[test]
fn entries_are_found_by_overlap_and_survive_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let entries = write_history(&mut log);
    assert!(log.segment_count() > 2, "the history spans segments");
    let reader = log.reader();
    assert_eq!(reader.collect_aborted(0, log.log_end_offset()), entries);
    // A fetch starting after the first abort's marker sees only the second.
    assert_eq!(reader.collect_aborted(entries[0].last_offset + 1, log.log_end_offset()), vec![entries[1]]);
    // An upper bound at the second transaction's start leaves it out.
    assert_eq!(reader.collect_aborted(0, entries[1].first_offset), vec![entries[0]]);
    assert_eq!(reader.collect_aborted(entries[0].first_offset + 1, entries[0].first_offset + 2), vec![entries[0]]);
    log.close().unwrap();
    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(log.aborted_txns(), entries);
}

#[test]
fn recovery_rebuilds_missing_and_damaged_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let entries = write_history(&mut log);
    log.close().unwrap();
    for f in txn_files(dir.path()) {
        std::fs::write(&f, b"garbage").unwrap();
    }
    // A clean shutdown trusts sealed segments, but not a damaged index.
    let log = Log::open(dir.path(), config(), 0).unwrap();
    let rebuilt = log.aborted_txns();
    let key = |e: &AbortedTxn| (e.producer_id, e.first_offset, e.last_offset);
    assert_eq!(rebuilt.iter().map(key).collect::<Vec<_>>(), entries.iter().map(key).collect::<Vec<_>>());
    drop(log);
    // After a crash (no clean marker) the recovered segments' indexes are
    // rebuilt even when their files are gone; the first transaction began
    // segments before its marker.
    for f in txn_files(dir.path()) {
        std::fs::remove_file(f).unwrap();
    }
    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(log.aborted_txns().iter().map(key).collect::<Vec<_>>(), entries.iter().map(key).collect::<Vec<_>>());
}

#[test]
fn truncation_and_retention_take_entries_with_their_markers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let entries = write_history(&mut log);
    // Cut the second marker off: its entry goes, the first stays.
    log.truncate_to(entries[1].last_offset).unwrap();
    assert_eq!(log.aborted_txns(), vec![entries[0]]);
    log.close().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(log.aborted_txns(), vec![entries[0]]);
    // Deleting every segment up to past the first marker deletes its file.
    log.roll().unwrap();
    let end = log.log_end_offset();
    log.advance_log_start_offset(end).unwrap();
    assert!(log.aborted_txns().is_empty());
    assert!(txn_files(dir.path()).is_empty());
}

#[test]
fn entries_out_of_marker_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let entries = write_history(&mut log);
    assert!(log.append_aborted_txn(entries[0]).is_err());
}

#[test]
fn compaction_removes_an_emptied_abort_marker_after_the_delete_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let keyed = |log: &mut Log, pid: i64, seq: i32, key: &[u8]| {
        let mut b = RecordBatchBuilder::new(0).producer(pid, 0, seq).transactional(true).record(1, Some(key), Some(b"v")).build().to_vec();
        log.append(&mut b, 1).unwrap().base_offset
    };
    let first = keyed(&mut log, 10, 0, b"b"); // 0
    let abort = marker(&mut log, 10, false); // 1
    log.append_aborted_txn(AbortedTxn { producer_id: 10, first_offset: first, last_offset: abort, last_stable_offset: abort + 1 }).unwrap();
    keyed(&mut log, 10, 1, b"c"); // 2
    let commit = marker(&mut log, 10, true); // 3: producer 10's last batch
    log.roll().unwrap();
    plain_batch(&mut log); // active segment
    let params = crate::CompactionParams { delete_retention_ms: 1000, min_cleanable_dirty_ratio: 0.0, ..crate::CompactionParams::default() };
    let bases = |log: &Log| {
        let r = log.reader();
        let (mut out, mut next) = (Vec::new(), 0);
        while next < log.log_end_offset() {
            let read = r.read(next, 1 << 20, log.log_end_offset(), true).unwrap();
            out.extend(klamm_protocol::records::iter_batches(read.bytes).map(|b| b.unwrap()).map(|b| (b.base_offset(), b.has_delete_horizon())));
            next = read.next_offset;
        }
        out
    };
    // Pass 1: the aborted record goes; its marker saw data, so it stays as is.
    let upper = log.log_end_offset();
    log.compact(&params, upper, 100).unwrap();
    assert_eq!(bases(&log), vec![(1, false), (2, false), (3, false), (4, false)]);
    // Pass 2: the marker's transaction is empty: it gets a delete horizon.
    log.compact(&params, upper, 200).unwrap();
    assert_eq!(bases(&log), vec![(1, true), (2, false), (3, false), (4, false)]);
    assert!(!log.needs_compaction(&params, upper, 1_199).unwrap());
    assert!(log.needs_compaction(&params, upper, 1_200).unwrap());
    assert_eq!(log.reader().collect_aborted(0, upper).len(), 1);
    // Past the horizon it goes, with its index entry; the commit marker of
    // the producer's last transaction (which has data) stays.
    log.compact(&params, upper, 1_200).unwrap();
    assert_eq!(bases(&log), vec![(2, false), (commit, false), (4, false)]);
    assert!(log.reader().collect_aborted(0, upper).is_empty());
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert!(log.aborted_txns().is_empty());
}
