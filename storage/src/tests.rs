//! Log-level tests: offsets, reads, rolls, timestamps, truncation,
//! retention, recovery, plus a model proptest and a crash proptest.

use std::path::Path;

use bytes::Bytes;
use klamm_protocol::records::{iter_batches, RecordBatch, RecordBatchBuilder};
use proptest::prelude::*;

use crate::{BatchHeader, Error, Log, LogConfig, LogReader};

pub(crate) fn must_batch(records: usize, value_len: usize, first_ts: i64) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(0);
    let value = vec![b'x'; value_len];
    for i in 0..records {
        b.push(first_ts + i as i64, None, Some(&value), &[]);
    }
    b.build().to_vec()
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 200,
        max_index_bytes: 4096,
        flush_on_roll: false,
        ..LogConfig::default()
    }
}

fn must_open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, 0).expect("open log")
}

/// Every batch readable from `from`, as (base, last, bytes), checking CRCs.
fn must_read_all(reader: &LogReader, from: i64, max_bytes: usize) -> Vec<(i64, i64, Bytes)> {
    let mut out = Vec::new();
    let mut next = from;
    let end = reader.log_end_offset();
    while next < end {
        let r = reader.read(next, max_bytes, end, true).expect("read");
        if r.bytes.is_empty() {
            break;
        }
        for b in iter_batches(r.bytes.clone()) {
            let b = b.expect("whole batches");
            b.validate().expect("valid batch");
            out.push((b.base_offset(), b.last_offset(), b.as_bytes().clone()));
        }
        assert!(r.next_offset > next);
        next = r.next_offset;
    }
    out
}

#[test]
fn append_assigns_offsets_and_reads_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), LogConfig::default());
    let mut sizes = Vec::new();
    for i in 0..3 {
        let mut b = must_batch(3, 10, 100 * i);
        sizes.push(b.len());
        let info = log.append(&mut b, 0).unwrap();
        assert_eq!(info.base_offset, 3 * i);
        assert_eq!(info.last_offset, 3 * i + 2);
        assert_eq!(RecordBatch::parse(Bytes::from(b)).unwrap().0.base_offset(), 3 * i);
    }
    assert_eq!(log.log_end_offset(), 9);
    let r = log.read(4, 1 << 20, 9, true).unwrap();
    assert_eq!(r.first_batch_offset, Some(3));
    assert_eq!(r.next_offset, 9);
    assert_eq!(r.bytes.len(), sizes[1] + sizes[2]);
    assert_eq!(r.log_end_offset, 9);

    // Upper bound excludes a batch whose last offset is >= the bound.
    let r = log.read(0, 1 << 20, 5, true).unwrap();
    assert_eq!((r.first_batch_offset, r.next_offset), (Some(0), 3));
    let r = log.read(0, 1 << 20, 6, true).unwrap();
    assert_eq!(r.next_offset, 6);
    let r = log.read(3, 1 << 20, 5, true).unwrap();
    assert!(r.bytes.is_empty());
    assert_eq!(r.next_offset, 3);

    // KIP-74: first batch whole even when larger than max_bytes.
    let r = log.read(0, 10, 9, true).unwrap();
    assert_eq!(r.bytes.len(), sizes[0]);
    let r = log.read(0, 10, 9, false).unwrap();
    assert!(r.bytes.is_empty());
    let r = log.read(0, sizes[0] + sizes[1] / 2, 9, false).unwrap();
    assert_eq!(r.bytes.len(), sizes[0]);

    // Out of range.
    assert!(matches!(
        log.read(10, 100, 100, true),
        Err(Error::OffsetAboveLogEnd { offset: 10, log_end_offset: 9 })
    ));
    assert!(log.read(9, 100, 100, true).unwrap().bytes.is_empty());
    log.advance_log_start_offset(4).unwrap();
    let e = log.read(3, 100, 100, true).unwrap_err();
    assert!(matches!(e, Error::OffsetBelowLogStart { offset: 3, log_start_offset: 4 }));
    assert!(e.is_offset_out_of_range());
    // Start offset in the middle of a batch returns that whole batch.
    assert_eq!(log.read(4, 100, 100, true).unwrap().first_batch_offset, Some(3));
}

#[test]
fn multi_batch_append_stamps_epoch_and_tracks_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), LogConfig::default());
    let mut buf = must_batch(2, 5, 1);
    buf.extend(must_batch(3, 5, 2));
    let info = log.append_as_leader(&mut buf, 4, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset, info.batches, info.offsets), (0, 4, 2, 5));
    let batches: Vec<_> = iter_batches(Bytes::from(buf)).map(|b| b.unwrap()).collect();
    assert_eq!(batches[1].base_offset(), 2);
    assert!(batches.iter().all(|b| b.partition_leader_epoch() == 4 && b.validate().is_ok()));
    let mut b = must_batch(1, 5, 3);
    log.append_as_leader(&mut b, 6, 0).unwrap();
    assert_eq!(log.latest_epoch(), Some(6));
    assert_eq!(log.end_offset_for_epoch(4), (4, 5));
    assert_eq!(log.end_offset_for_epoch(5), (4, 5));
    assert_eq!(log.end_offset_for_epoch(6), (6, 6));
    log.truncate_to(5).unwrap();
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(log.end_offset_for_epoch(4), (4, 5));
    // Garbage is rejected without writing.
    let mut junk = vec![0u8; 70];
    assert!(log.append(&mut junk, 0).is_err());
    assert!(log.append(&mut [], 0).is_err());
    let mut cut = must_batch(1, 5, 3);
    cut.pop();
    assert!(log.append(&mut cut, 0).is_err());
    assert_eq!(log.log_end_offset(), 5);
}

#[test]
fn parsed_appends_take_the_callers_headers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), small_config());
    log.append(&mut must_batch(1, 5, 1), 0).unwrap(); // offset 0
    let bytes = RecordBatchBuilder::new(0).record(5, None, Some(b"a")).record(9, None, Some(b"b")).build();
    let (batch, _) = RecordBatch::parse(bytes.clone()).unwrap();
    let mut headers = [BatchHeader::of(&batch).unwrap()];
    let mut buf = bytes.to_vec();
    let info = log.append_parsed_as_leader(&mut buf, &mut headers, 3, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset, info.max_timestamp), (1, 2, 9));
    // The headers now describe what was written.
    assert_eq!(Ok(headers[0]), BatchHeader::parse(&buf));
    assert_eq!(log.latest_epoch(), Some(3));

    // Headers that do not frame the bytes are refused; nothing is written.
    let (longer, _) = RecordBatch::parse(RecordBatchBuilder::new(0).record(1, None, Some(b"a longer value")).build()).unwrap();
    let mut wrong = [BatchHeader::of(&longer).unwrap()];
    let mut buf = bytes.to_vec();
    assert!(matches!(
        log.append_parsed_as_leader(&mut buf, &mut wrong, 3, 0),
        Err(Error::InvalidBatchFraming { .. })
    ));
    assert!(log.append_parsed_as_leader(&mut buf, &mut [], 3, 0).is_err());
    let mut two = buf.clone();
    two.extend_from_slice(&bytes);
    let mut one = [BatchHeader::of(&batch).unwrap()];
    assert!(log.append_parsed_as_leader(&mut two, &mut one, 3, 0).is_err());
    assert_eq!(log.log_end_offset(), 3);

    let copy = RecordBatchBuilder::new(10).partition_leader_epoch(4).record(1, None, Some(b"c")).build();
    let (parsed, _) = RecordBatch::parse(copy.clone()).unwrap();
    let info = log.append_parsed_as_follower(&copy, &[BatchHeader::of(&parsed).unwrap()], 0).unwrap();
    assert_eq!((info.base_offset, log.log_end_offset()), (10, 11));
    assert_eq!(log.latest_epoch(), Some(4));
    let read = must_read_all(&log.reader(), 0, 1 << 20);
    assert_eq!(read.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), vec![(0, 0), (1, 2), (10, 10)]);
}

#[test]
fn follower_append_keeps_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), small_config());
    let b = RecordBatchBuilder::new(0).record(1, None, Some(b"a")).build();
    log.append_as_follower(&b, 0).unwrap();
    let gap = RecordBatchBuilder::new(10).partition_leader_epoch(2).record(1, None, Some(b"b")).build();
    log.append_with_offsets(&gap, 0).unwrap();
    assert_eq!(log.log_end_offset(), 11);
    assert_eq!(log.epoch_entries()[0].start_offset, 10);
    let below = RecordBatchBuilder::new(5).record(1, None, Some(b"c")).build();
    assert!(matches!(
        log.append_as_follower(&below, 0),
        Err(Error::NonMonotonicOffset { offset: 5, .. })
    ));
    // Reading an offset in the gap returns the next batch.
    assert_eq!(log.read(3, 1000, 11, true).unwrap().first_batch_offset, Some(10));
    // A huge jump rolls to a segment based at the new offset.
    let far = RecordBatchBuilder::new(1 << 33).record(1, None, Some(b"d")).build();
    log.append_as_follower(&far, 0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 1 << 33]);
    assert_eq!(log.read(11, 1000, i64::MAX, true).unwrap().first_batch_offset, Some(1 << 33));
}

#[test]
fn rolls_by_size_time_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(&dir.path().join("size"), small_config());
    for _ in 0..20 {
        log.append(&mut must_batch(2, 300, 0), 0).unwrap();
    }
    assert!(log.segment_count() > 3);
    assert!(log.segment_base_offsets().windows(2).all(|w| w[0] < w[1]));
    let all = must_read_all(&log.reader(), 0, 300);
    assert_eq!(all.len(), 20);
    assert!(all.iter().enumerate().all(|(i, b)| b.0 == 2 * i as i64));

    let config = LogConfig { segment_ms: 1000, ..small_config() };
    let mut log = must_open(&dir.path().join("time"), config);
    log.append(&mut must_batch(1, 1, 0), 0).unwrap();
    log.append(&mut must_batch(1, 1, 0), 999).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&mut must_batch(1, 1, 0), 1000).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);

    let config = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 0,
        max_index_bytes: 48,
        ..small_config()
    };
    let mut log = must_open(&dir.path().join("index"), config);
    for _ in 0..20 {
        log.append(&mut must_batch(1, 1, 0), 0).unwrap();
    }
    // 48-byte indexes hold 6 offset entries; one entry per batch.
    assert_eq!(log.segment_base_offsets(), vec![0, 6, 12, 18]);
    assert_eq!(must_read_all(&log.reader(), 0, 1 << 20).len(), 20);
}

/// A roll whose new segment cannot be created (a full disk; here a directory
/// in the way of the new `.log` file) fails that append and changes nothing:
/// the active segment stays active and unsealed, so a smaller append that
/// needs no roll still lands in it (sealing first made that append panic),
/// and once the obstacle is gone the log rolls and goes on with every
/// acknowledged batch readable.
#[test]
fn a_roll_that_cannot_create_its_segment_fails_the_append_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), small_config()); // 2048-byte segments
    log.append(&mut must_batch(1, 1000, 0), 0).unwrap();
    // The next batch does not fit: a roll to a segment at offset 1.
    let blocker = dir.path().join(format!("{:020}.log", 1));
    std::fs::create_dir(&blocker).unwrap();
    for now in [1, 2] {
        assert!(log.append(&mut must_batch(1, 1500, 0), now).is_err(), "the roll cannot create its segment");
        assert_eq!(log.segment_base_offsets(), vec![0]);
        assert_eq!(log.log_end_offset(), 1);
    }
    // A batch that fits needs no roll and goes into the still-active segment.
    assert_eq!(log.append(&mut must_batch(1, 10, 0), 3).unwrap().base_offset, 1);
    std::fs::remove_dir(&blocker).unwrap();
    let rolled = log.append(&mut must_batch(1, 1500, 0), 4).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, rolled.base_offset]);
    let all = must_read_all(&log.reader(), 0, 1 << 20);
    assert_eq!(all.iter().map(|b| b.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    // Closed and reopened, the same.
    log.close().unwrap();
    let log = must_open(dir.path(), small_config());
    assert_eq!(must_read_all(&log.reader(), 0, 1 << 20).len(), 3);
}

#[test]
fn timestamp_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), small_config());
    // batch i has records with timestamps 1000*i + 0..4 (offsets 5i..5i+4)
    for i in 0..30 {
        log.append(&mut must_batch(5, 20, 1000 * i), 0).unwrap();
    }
    assert!(log.segment_count() > 1);
    assert_eq!(log.lookup_by_timestamp(0).unwrap(), Some((0, 0)));
    assert_eq!(log.lookup_by_timestamp(2003).unwrap(), Some((13, 2003)));
    assert_eq!(log.lookup_by_timestamp(2005).unwrap(), Some((15, 3000)));
    assert_eq!(log.lookup_by_timestamp(17_002).unwrap(), Some((87, 17_002)));
    assert_eq!(log.lookup_by_timestamp(29_004).unwrap(), Some((149, 29_004)));
    assert_eq!(log.lookup_by_timestamp(29_005).unwrap(), None);
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((149, 29_004)));
    // An out-of-order batch: max timestamp in the middle of the log.
    let mut b = RecordBatchBuilder::new(0)
        .record(5, None, Some(b"a"))
        .record(99_999, None, Some(b"b"))
        .record(6, None, Some(b"c"))
        .build()
        .to_vec();
    log.append(&mut b, 0).unwrap();
    log.append(&mut must_batch(1, 1, 50_000), 0).unwrap();
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((151, 99_999)));
    assert_eq!(log.lookup_by_timestamp(60_000).unwrap(), Some((151, 99_999)));
    // Survives a clean reopen (sealed segments' max comes from the time index).
    log.close().unwrap();
    let log = must_open(dir.path(), small_config());
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((151, 99_999)));
    assert_eq!(log.lookup_by_timestamp(2003).unwrap(), Some((13, 2003)));
}

#[test]
fn truncation() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), small_config());
    for _ in 0..20 {
        log.append(&mut must_batch(3, 100, 0), 0).unwrap();
    }
    let segments = log.segment_count();
    assert!(segments > 3);
    log.truncate_to(31).unwrap(); // straddles batch 30..32
    assert_eq!(log.log_end_offset(), 30);
    assert!(log.segment_count() < segments);
    let all = must_read_all(&log.reader(), 0, 1000);
    assert_eq!(all.last().unwrap().1, 29);
    log.truncate_to(9).unwrap(); // boundary
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(log.append(&mut must_batch(1, 1, 0), 0).unwrap().base_offset, 9);
    log.truncate_to(100).unwrap(); // no-op
    assert_eq!(log.log_end_offset(), 10);
    log.close().unwrap();
    let mut log = must_open(dir.path(), small_config());
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(must_read_all(&log.reader(), 0, 1000).len(), 4);

    log.truncate_fully_and_start_at(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(log.append(&mut must_batch(1, 1, 0), 0).unwrap().base_offset, 500);
    drop(log);
    let log = must_open(dir.path(), small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 501));
}

#[test]
fn retention_and_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), small_config());
    for i in 0..20 {
        log.append(&mut must_batch(2, 100, i * 1000), 0).unwrap();
    }
    let n = log.segment_count();
    let size = log.size_bytes();
    // Size: keep at most half.
    let deleted = log.apply_retention(None, Some(size / 2), 0).unwrap();
    assert!(deleted > 0 && log.size_bytes() <= size / 2 + 2048);
    assert!(log.size_bytes() >= size / 2);
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    // High-watermark bound: nothing above it goes.
    let before = log.segment_count();
    assert_eq!(log.apply_retention_bounded(Some(0), None, 1 << 40, log.log_start_offset()).unwrap(), 0);
    assert_eq!(log.segment_count(), before);
    // Time: everything expired, including the active segment (rolls first).
    let deleted = log.apply_retention(Some(1), None, 1 << 40).unwrap();
    assert!(deleted >= 1 && deleted < n);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 40);
    assert_eq!(log.log_end_offset(), 40);
    assert!(log.read(39, 100, 100, true).is_err());
    log.append(&mut must_batch(1, 1, 0), 0).unwrap();
    drop(log);
    let log = must_open(dir.path(), small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 41));
}

#[test]
fn delete_segments_before_and_advance() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), small_config());
    for _ in 0..20 {
        log.append(&mut must_batch(2, 300, 0), 0).unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 4);
    let deleted = log.delete_segments_before(bases[2]).unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(log.log_start_offset(), bases[2]);
    log.advance_log_start_offset(bases[3] + 1).unwrap();
    assert_eq!(log.segment_base_offsets()[0], bases[3]);
    assert_eq!(log.log_start_offset(), bases[3] + 1);
    assert!(log.advance_log_start_offset(1000).is_err());
    log.close().unwrap();
    let log = must_open(dir.path(), small_config());
    assert_eq!(log.log_start_offset(), bases[3] + 1);
    let dirpath = log.dir().to_owned();
    log.delete().unwrap();
    assert!(!dirpath.exists());
}

#[test]
fn recovery_clean_unclean_and_damaged_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), small_config());
    for _ in 0..30 {
        log.append(&mut must_batch(2, 100, 0), 0).unwrap();
    }
    let expected = must_read_all(&log.reader(), 0, 4096);
    log.close().unwrap();
    assert!(dir.path().join(crate::CLEAN_SHUTDOWN_MARKER).exists());
    let log = must_open(dir.path(), small_config());
    assert!(!dir.path().join(crate::CLEAN_SHUTDOWN_MARKER).exists());
    assert_eq!(must_read_all(&log.reader(), 0, 4096), expected);
    let bases = log.segment_base_offsets();
    log.close().unwrap();

    // Damage indexes of a sealed segment after a clean shutdown.
    let idx = dir.path().join(format!("{:020}.index", bases[1]));
    std::fs::write(&idx, [0xffu8; 16]).unwrap();
    std::fs::remove_file(dir.path().join(format!("{:020}.timeindex", bases[2]))).unwrap();
    std::fs::write(dir.path().join(format!("{:020}.index", bases[3])), [1u8; 7]).unwrap();
    let log = must_open(dir.path(), small_config());
    assert_eq!(must_read_all(&log.reader(), 0, 4096), expected);
    for (i, b) in expected.iter().enumerate() {
        let r = log.read(b.0 + 1, 1, i64::MAX, true).unwrap();
        assert_eq!(r.first_batch_offset, Some(b.0), "batch {i}");
    }
    // Unclean (no close): everything re-validated.
    drop(log);
    let mut log = must_open(dir.path(), small_config());
    assert_eq!(must_read_all(&log.reader(), 0, 4096), expected);
    // Torn tail.
    log.append(&mut must_batch(2, 100, 0), 0).unwrap();
    let last = *log.segment_base_offsets().last().unwrap();
    drop(log);
    let path = dir.path().join(format!("{last:020}.log"));
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 5).unwrap();
    let log = must_open(dir.path(), small_config());
    assert_eq!(must_read_all(&log.reader(), 0, 4096), expected);
    // A garbage log start checkpoint is ignored.
    drop(log);
    std::fs::write(dir.path().join(crate::LOG_START_OFFSET_CHECKPOINT), "junk").unwrap();
    std::fs::write(dir.path().join(crate::LEADER_EPOCH_CHECKPOINT), "0\n9\n1").unwrap();
    let log = must_open(dir.path(), small_config());
    assert_eq!(log.log_start_offset(), 0);
}

#[test]
fn garbage_segment_files_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{:020}.log", 0)), vec![0xabu8; 5000]).unwrap();
    std::fs::write(dir.path().join(format!("{:020}.index", 0)), vec![0xcdu8; 33]).unwrap();
    std::fs::write(dir.path().join(format!("{:020}.timeindex", 7)), vec![1u8; 3]).unwrap();
    std::fs::write(dir.path().join(format!("{:020}.log", 100)), vec![0u8; 100]).unwrap();
    let mut log = must_open(dir.path(), small_config());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.segment_count(), 1);
    log.append(&mut must_batch(1, 1, 0), 0).unwrap();
    assert_eq!(must_read_all(&log.reader(), 0, 100).len(), 1);
}

#[test]
fn concurrent_reader_sees_only_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 64 * 1024, ..small_config() };
    let mut log = must_open(dir.path(), config);
    let reader = log.reader();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut next = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let end = reader.log_end_offset();
                if next >= end {
                    std::thread::yield_now();
                    continue;
                }
                let r = reader.read(next, 8192, end, true).unwrap();
                for b in iter_batches(r.bytes.clone()) {
                    let b = b.unwrap();
                    b.validate().unwrap();
                    assert!(b.last_offset() < end);
                }
                if !r.bytes.is_empty() {
                    assert_eq!(r.first_batch_offset, Some(next));
                    next = r.next_offset;
                }
                reads += 1;
            }
            (reads, next)
        })
    };
    for i in 0..2000 {
        log.append(&mut must_batch(1 + i % 5, 50, i as i64), i as i64).unwrap();
    }
    let end = log.log_end_offset();
    while log.reader().log_end_offset() != end {}
    std::thread::sleep(std::time::Duration::from_millis(20));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, _) = handle.join().unwrap();
    assert!(reads > 0);
}

#[test]
fn flush_policy_and_config_validation() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { flush_messages: Some(2), flush_ms: Some(10), ..small_config() };
    let mut log = must_open(dir.path(), config);
    for i in 0..5 {
        log.append(&mut must_batch(1, 1, 0), i * 7).unwrap();
    }
    log.flush().unwrap();
    let timed = LogConfig { flush_ms: Some(100), ..small_config() };
    let mut quiet = must_open(&dir.path().join("quiet"), timed);
    quiet.append(&mut must_batch(1, 1, 0), 10).unwrap();
    assert!(!quiet.flush_if_due(50).unwrap());
    assert!(quiet.flush_if_due(100).unwrap());
    assert!(!quiet.flush_if_due(500).unwrap()); // nothing dirty
    let smaller = LogConfig { segment_bytes: 100, ..small_config() };
    log.set_config(smaller).unwrap();
    let segments = log.segment_count();
    log.append(&mut must_batch(1, 100, 0), 61).unwrap();
    assert_eq!(log.segment_count(), segments + 1);
    let bad = LogConfig { segment_bytes: 10, ..LogConfig::default() };
    assert!(log.set_config(bad.clone()).is_err());
    assert!(matches!(Log::open(dir.path().join("x"), bad, 0), Err(Error::InvalidConfig(_))));
}

// ---------------------------------------------------------------------------
// Model test: random appends / rolls / truncations / reopens vs a Vec.

#[derive(Debug, Clone)]
enum Op {
    Append { batches: usize, records: usize, value_len: usize },
    Roll,
    Truncate { permille: u32 },
    Reopen { clean: bool },
    Read { permille: u32, max_bytes: usize },
    AdvanceStart { permille: u32 },
    RetainBytes { bytes: u64 },
    FlushRolled,
    FlushAll,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..3, 1usize..4, 0usize..150).prop_map(|(batches, records, value_len)| Op::Append { batches, records, value_len }),
        1 => Just(Op::Roll),
        1 => (0u32..1000).prop_map(|permille| Op::Truncate { permille }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        2 => (0u32..1000, 1usize..600).prop_map(|(permille, max_bytes)| Op::Read { permille, max_bytes }),
        1 => (0u32..1000).prop_map(|permille| Op::AdvanceStart { permille }),
        1 => (0u64..3000).prop_map(|bytes| Op::RetainBytes { bytes }),
        1 => Just(Op::FlushRolled),
        1 => Just(Op::FlushAll),
    ]
}

fn model_config() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 100,
        max_index_bytes: 96,
        flush_on_roll: true,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Some(must_open(dir.path(), model_config()));
        let mut model: Vec<(i64, i64, Vec<u8>)> = Vec::new();
        let mut leo = 0i64;
        let mut log_start = 0i64;
        for op in ops {
            let l = log.as_mut().unwrap();
            match op {
                Op::Append { batches, records, value_len } => {
                    let mut buf = Vec::new();
                    for _ in 0..batches {
                        buf.extend(must_batch(records, value_len, leo));
                    }
                    let info = l.append(&mut buf, 0).unwrap();
                    prop_assert_eq!(info.base_offset, leo);
                    for b in iter_batches(Bytes::from(buf)) {
                        let b = b.unwrap();
                        model.push((b.base_offset(), b.last_offset(), b.as_bytes().to_vec()));
                    }
                    leo = info.last_offset + 1;
                }
                Op::Roll => l.roll().unwrap(),
                Op::FlushRolled => {
                    for f in l.take_rolled_flushes() {
                        f.run().unwrap();
                        l.rolled_flush_done(&f).unwrap();
                    }
                }
                Op::FlushAll => l.flush().unwrap(),
                Op::Truncate { permille } => {
                    let target = leo * i64::from(permille) / 1000;
                    l.truncate_to(target).unwrap();
                    if target < leo {
                        let keep = model.iter().take_while(|b| b.1 < target).count();
                        let removed_base = model.get(keep).map_or(target, |b| b.0);
                        let new_end = target.min(removed_base);
                        if target < log_start || new_end < log_start {
                            model.clear();
                            log_start = target;
                            leo = target;
                        } else {
                            model.truncate(keep);
                            leo = new_end;
                        }
                    }
                }
                Op::Reopen { clean } => {
                    let old = log.take().unwrap();
                    if clean { old.close().unwrap() } else { drop(old) }
                    log = Some(must_open(dir.path(), model_config()));
                }
                Op::AdvanceStart { permille } => {
                    let target = log_start + (leo - log_start) * i64::from(permille) / 1000;
                    l.advance_log_start_offset(target).unwrap();
                    log_start = target;
                }
                Op::RetainBytes { bytes } => {
                    l.apply_retention(None, Some(bytes), 0).unwrap();
                    let new_start = l.log_start_offset();
                    prop_assert!(new_start >= log_start && new_start <= leo);
                    prop_assert!(new_start == log_start || new_start == leo || model.iter().any(|b| b.0 == new_start));
                    log_start = new_start;
                }
                Op::Read { permille, max_bytes } => {
                    if leo > log_start {
                        let target = log_start + (leo - 1 - log_start) * i64::from(permille) / 1000;
                        let r = l.read(target, max_bytes, leo, true).unwrap();
                        let i = model.iter().position(|b| b.1 >= target).unwrap();
                        prop_assert_eq!(r.first_batch_offset, Some(model[i].0));
                        prop_assert_eq!(&r.bytes[..model[i].2.len()], &model[i].2[..]);
                        prop_assert!(r.bytes.len() <= max_bytes.max(model[i].2.len()));
                    }
                }
            }
            let l = log.as_ref().unwrap();
            prop_assert_eq!(l.log_end_offset(), leo);
            prop_assert_eq!(l.log_start_offset(), log_start);
            let persisted = crate::flush::read_recovery_point(dir.path()).unwrap_or(-1);
            prop_assert!(persisted <= l.recovery_point() && l.recovery_point() <= leo,
                "checkpoint {} <= recovery point {} <= log end {}", persisted, l.recovery_point(), leo);
            if log_start > 0 {
                prop_assert!(l.read(log_start - 1, 10, leo, true).unwrap_err().is_offset_out_of_range());
            }
            let got = must_read_all(&l.reader(), log_start, 512);
            let visible: Vec<_> = model.iter().filter(|b| b.1 >= log_start).collect();
            prop_assert_eq!(got.len(), visible.len());
            for (g, m) in got.iter().zip(visible) {
                prop_assert_eq!((g.0, g.1), (m.0, m.1));
                prop_assert_eq!(&g.2[..], &m.2[..]);
            }
        }
    }

    #[test]
    fn crash_leaves_valid_prefix(
        sizes in proptest::collection::vec((1usize..4, 0usize..200), 1..25),
        cut in any::<prop::sample::Index>(),
        flip in any::<bool>(),
        bit in 0u8..8,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = must_open(dir.path(), model_config());
        let mut written: Vec<(i64, i64, Vec<u8>)> = Vec::new();
        for (records, value_len) in sizes {
            let mut b = must_batch(records, value_len, 0);
            let info = log.append(&mut b, 0).unwrap();
            written.push((info.base_offset, info.last_offset, b));
        }
        let last_base = *log.segment_base_offsets().last().unwrap();
        drop(log); // unclean
        let path = dir.path().join(format!("{last_base:020}.log"));
        let data = std::fs::read(&path).unwrap();
        // Batches of the last segment and their end positions.
        let first_in_last = written.iter().position(|b| b.0 >= last_base).unwrap();
        let mut ends = Vec::new();
        let mut pos = 0usize;
        for b in &written[first_in_last..] {
            ends.push((pos, pos + b.2.len()));
            pos += b.2.len();
        }
        prop_assert_eq!(pos, data.len());
        let intact_in_last;
        if data.is_empty() {
            intact_in_last = 0;
        } else if flip {
            let mut at = cut.index(data.len());
            // baseOffset (0..8) and partitionLeaderEpoch (12..16) are outside the
            // CRC by design; damage there is not detectable, so aim elsewhere.
            let (start, _) = *ends.iter().find(|(s, e)| *s <= at && at < *e).unwrap();
            let rel = at - start;
            if rel < 8 || (12..16).contains(&rel) {
                at = start + 16;
            }
            let mut damaged = data.clone();
            damaged[at] ^= 1 << bit;
            std::fs::write(&path, &damaged).unwrap();
            intact_in_last = ends.iter().take_while(|(_, e)| *e <= at).count();
        } else {
            let at = cut.index(data.len());
            std::fs::write(&path, &data[..at]).unwrap();
            intact_in_last = ends.iter().take_while(|(_, e)| *e <= at).count();
        }
        let log = must_open(dir.path(), model_config());
        let got = must_read_all(&log.reader(), 0, 4096);
        let expected = &written[..first_in_last + intact_in_last];
        prop_assert_eq!(got.len(), expected.len());
        for (g, w) in got.iter().zip(expected) {
            prop_assert_eq!(&g.2[..], &w.2[..]);
        }
        prop_assert_eq!(log.log_end_offset(), expected.last().map_or(0, |b| b.1 + 1));
    }
}

/// Throughput check: `cargo test -p klamm-storage --release -- --ignored --nocapture throughput`.
#[test]
#[ignore]
fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), LogConfig::default());
    let template = must_batch(64, 1000, 0); // ~64 KiB of 1 KiB records
    let n = 16_000; // ~1 GiB
    let mut buf = template.clone();
    let start = std::time::Instant::now();
    for _ in 0..n {
        buf.copy_from_slice(&template);
        log.append(&mut buf, 0).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = (template.len() * n) as f64;
    println!("append: {:.0} MB/s ({} batches of {} B, {} segments)", bytes / secs / 1e6, n, template.len(), log.segment_count());
    // Baseline: the same bytes with plain pwrite to a fresh file.
    let raw = std::fs::File::create(dir.path().join("raw")).unwrap();
    let start = std::time::Instant::now();
    for i in 0..n {
        std::os::unix::fs::FileExt::write_all_at(&raw, &template, (i * template.len()) as u64).unwrap();
    }
    println!("raw pwrite baseline: {:.0} MB/s", bytes / start.elapsed().as_secs_f64() / 1e6);
    let reader = log.reader();
    let start = std::time::Instant::now();
    let mut next = 0;
    let mut read = 0usize;
    let end = log.log_end_offset();
    while next < end {
        let r = reader.read(next, 1 << 20, end, true).unwrap();
        read += r.bytes.len();
        next = r.next_offset;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("read: {:.0} MB/s (1 MiB fetches)", read as f64 / secs / 1e6);
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    send_sync_clone::<LogReader>();
    send::<Log>();
}

#[test]
fn reader_racing_truncation_and_retention_sees_only_valid_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 16 * 1024, ..small_config() };
    let mut log = must_open(dir.path(), config);
    let reader = log.reader();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut i = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (start, end) = (reader.log_start_offset(), reader.log_end_offset());
                if end <= start {
                    continue;
                }
                i = (i * 7919 + 13) % 1_000_003;
                let target = start + i % (end - start);
                match reader.read(target, 4096, end, true) {
                    Ok(r) => {
                        let mut prev = -1;
                        for b in iter_batches(r.bytes.clone()) {
                            let b = b.expect("whole batches");
                            b.validate().expect("never a torn or mixed batch");
                            assert!(b.base_offset() > prev);
                            prev = b.last_offset();
                        }
                        reads += 1;
                    }
                    Err(e) => assert!(e.is_offset_out_of_range(), "{e}"),
                }
            }
            reads
        })
    };
    for round in 0..300i64 {
        for _ in 0..5 {
            log.append(&mut must_batch(3, 200 + (round % 7) as usize * 50, round), round).unwrap();
        }
        if round % 3 == 0 {
            let leo = log.log_end_offset();
            log.truncate_to(leo - 4).unwrap();
        }
        if round % 50 == 49 {
            log.apply_retention(None, Some(64 * 1024), round).unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(handle.join().unwrap() > 0);
}

/// A region found for a fetch stays readable when retention deletes its
/// segment, and refuses to read (rather than hand out other bytes) after a
/// truncation below it; its bytes are the ones `read` returns, cut at whole
/// batches with the index's help on a multi-segment, densely indexed log.
#[test]
fn file_regions_survive_deletion_and_notice_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), small_config());
    for i in 0..40 {
        let mut b = must_batch(2, 60, i);
        log.append(&mut b, 0).unwrap();
    }
    let reader = log.reader();
    let end = log.log_end_offset();
    for (from, max_bytes) in [(0i64, 1usize), (0, 300), (7, 500), (20, 1000), (33, 150), (79, 10_000)] {
        let region = reader.read_region(from, max_bytes, end, true).unwrap().expect("data");
        let read = reader.read(from, max_bytes, end, true).unwrap();
        assert_eq!(region.read().unwrap(), read.bytes, "from {from}, max {max_bytes}");
        assert_eq!(region.first_batch_offset(), read.first_batch_offset.unwrap());
    }
    // Retention deletes the first segments; a region found before still reads.
    let early = reader.read_region(0, 10_000, end, true).unwrap().expect("data");
    let expected = early.read().unwrap();
    assert!(log.apply_retention(None, Some(2048), 0).unwrap() > 0);
    assert_eq!(early.read().unwrap(), expected);
    // A truncation below a region's end makes it refuse to read.
    let late = reader.read_region(70, 10_000, end, true).unwrap().expect("data");
    log.truncate_to(72).unwrap();
    assert!(matches!(late.read(), Err(Error::Truncated { .. })));
}

#[test]
fn first_offset_possibly_since_skips_older_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), small_config());
    for i in 0..40 {
        let mut b = must_batch(2, 60, 1_000 * i);
        log.append(&mut b, 0).unwrap();
    }
    let reader = log.reader();
    assert_eq!(reader.first_offset_possibly_since(0), 0);
    assert_eq!(reader.first_offset_possibly_since(i64::MAX), log.log_end_offset());
    // Batch i (offsets 2i, 2i+1) has timestamps 1000i, 1000i+1: the answer is the base
    // of the segment holding batch 30, at or below offset 60 and above the previous ones.
    let from = reader.first_offset_possibly_since(30_000);
    assert!(from <= 60 && from > 0, "{from}");
    // Everything before it is older; the batch with timestamp 30000 is at or after it.
    let before = reader.read(0, 1 << 20, from, true).unwrap();
    let older: Vec<i64> = klamm_protocol::records::iter_batches(before.bytes).map(|b| b.unwrap().max_timestamp()).collect();
    assert!(!older.is_empty() && older.iter().all(|&ts| ts < 30_000), "{older:?}");
    log.advance_log_start_offset(70).unwrap();
    assert_eq!(reader.first_offset_possibly_since(0), 70, "never below the log start");
}

/// With flush_on_roll, rolling does not fsync on the append path: each rolled
/// segment's flush is handed to the owner once, and runs (also after the
/// segment was deleted by retention).
#[test]
fn rolled_segments_are_flushed_by_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = must_open(dir.path(), LogConfig { flush_on_roll: true, ..small_config() });
    for i in 0..40 {
        let mut b = must_batch(2, 60, i);
        log.append(&mut b, 0).unwrap();
    }
    let segments = log.segments.len();
    assert!(segments > 2);
    let flushes = log.take_rolled_flushes();
    assert_eq!(flushes.len(), segments - 1, "one per rolled segment");
    assert!(log.take_rolled_flushes().is_empty(), "handed out once");
    assert_eq!(flushes[0].base_offset(), 0);
    assert!(log.apply_retention(None, Some(2048), 0).unwrap() > 0);
    for f in &flushes {
        f.run().unwrap();
    }
    let mut off = LogConfig { flush_on_roll: false, ..small_config() };
    off.segment_bytes = 2048;
    log.set_config(off).unwrap();
    for i in 0..20 {
        let mut b = must_batch(2, 60, i);
        log.append(&mut b, 0).unwrap();
    }
    assert!(log.take_rolled_flushes().is_empty(), "nothing without flush_on_roll");
}
