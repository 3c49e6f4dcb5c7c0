//! The recovery point: how flushes move it, how truncation lowers it, and
//! which segments [`Log::open`] validates after a crash because of it.

use std::path::Path;

use crate::flush::{read_recovery_point, RECOVERY_POINT_CHECKPOINT};
use crate::{Log, LogConfig};

fn batch(records: usize, value_len: usize) -> Vec<u8> {
    crate::tests::must_batch(records, value_len, 0)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 200,
        max_index_bytes: 4096,
        flush_on_roll: true,
        ..LogConfig::default()
    }
}

/// Appends 40 batches of 2 records (several segments of ~5 batches).
fn filled_log(dir: &Path) -> Log {
    let mut log = Log::open(dir, config(), 0).unwrap();
    for _ in 0..40 {
        log.append(&mut batch(2, 150), 0).unwrap();
    }
    assert!(log.segment_count() > 4);
    log
}

/// Runs the pending rolled flushes the way the partition's owner does.
fn run_rolled_flushes(log: &mut Log, how_many: usize) {
    let flushes = log.take_rolled_flushes();
    run_flushes(log, &flushes[..how_many.min(flushes.len())]);
}

fn run_flushes(log: &mut Log, flushes: &[crate::RolledFlush]) {
    for f in flushes {
        f.run().unwrap();
        log.rolled_flush_done(f).unwrap();
    }
}

/// Flips a CRC-covered byte in the middle of segment `base`'s first batch.
fn damage_first_batch(dir: &Path, base: i64) {
    let path = dir.join(format!("{base:020}.log"));
    let mut data = std::fs::read(&path).unwrap();
    data[40] ^= 0x10;
    std::fs::write(&path, &data).unwrap();
}

fn checkpointed(dir: &Path) -> Option<i64> {
    read_recovery_point(dir)
}

#[test]
fn rolled_flushes_move_and_persist_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled_log(dir.path());
    assert_eq!(log.recovery_point(), 0, "nothing fsynced yet");
    let bases = log.segment_base_offsets();
    run_rolled_flushes(&mut log, 2);
    assert_eq!(log.recovery_point(), bases[2]);
    assert_eq!(checkpointed(dir.path()), Some(bases[2]));
    // A later segment's flush cannot skip an unflushed one.
    let mut more = log.take_rolled_flushes();
    assert!(more.is_empty(), "handed out once");
    log.roll().unwrap();
    more = log.take_rolled_flushes();
    run_flushes(&mut log, &more);
    assert_eq!(log.recovery_point(), bases[2], "segments 2.. are still unflushed");
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), log.log_end_offset());
    assert_eq!(checkpointed(dir.path()), Some(log.log_end_offset()));
}

/// After a crash, segments wholly below the recovery point are opened
/// without reading them; the others are validated and cut at damage.
#[test]
fn a_crash_validates_only_segments_above_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled_log(dir.path());
    let bases = log.segment_base_offsets();
    let end = log.log_end_offset();
    run_rolled_flushes(&mut log, 2);
    drop(log); // crash: no clean-shutdown marker

    // Damage below the recovery point goes unread (it was fsynced; Kafka
    // trusts it too), so the log keeps its end.
    damage_first_batch(dir.path(), bases[0]);
    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.recovery_point(), bases[2], "recovered segments are not flushed yet");
    drop(log);

    // Damage above it is found: the log ends before the damaged batch.
    damage_first_batch(dir.path(), bases[3]);
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), bases[3]);
    assert_eq!(log.segment_base_offsets(), bases[..4].to_vec());
    // The recovered sealed segment (2) is queued for the background flush.
    let queued = log.take_rolled_flushes();
    assert_eq!(queued.iter().map(|f| f.base_offset()).collect::<Vec<_>>(), vec![bases[2]]);
    run_flushes(&mut log, &queued);
    assert_eq!(log.recovery_point(), bases[3]);
    drop(log);

    // Without the checkpoint every segment is validated again.
    std::fs::remove_file(dir.path().join(RECOVERY_POINT_CHECKPOINT)).unwrap();
    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), bases[0], "the damage in segment 0 is found now");
}

#[test]
fn a_clean_close_flushes_through_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled_log(dir.path());
    let end = log.log_end_offset();
    log.close().unwrap();
    assert_eq!(checkpointed(dir.path()), Some(end));
    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(log.recovery_point(), end);
}

/// A truncation below the persisted recovery point lowers the checkpoint at
/// once: data appended there later is not on disk. A flush taken before the
/// truncation does not move the recovery point afterwards.
#[test]
fn truncation_lowers_the_persisted_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled_log(dir.path());
    let bases = log.segment_base_offsets();
    let stale = log.take_rolled_flushes();
    log.flush().unwrap();
    assert_eq!(checkpointed(dir.path()), Some(log.log_end_offset()));

    let cut = bases[1] + 3;
    log.truncate_to(cut).unwrap();
    let new_end = log.log_end_offset();
    assert!(new_end <= cut);
    assert_eq!(log.recovery_point(), new_end);
    assert_eq!(checkpointed(dir.path()), Some(new_end));

    for _ in 0..20 {
        log.append(&mut batch(2, 150), 0).unwrap();
    }
    run_flushes(&mut log, &stale);
    assert_eq!(log.recovery_point(), new_end, "flushes from before the truncation prove nothing now");
    run_rolled_flushes(&mut log, usize::MAX);
    assert!(log.recovery_point() > new_end, "flushes after it do");

    log.truncate_to(0).unwrap();
    assert_eq!((log.recovery_point(), checkpointed(dir.path())), (0, Some(0)));
}

/// Retention deleting unflushed segments does not leave the recovery point
/// stuck below them.
#[test]
fn deleted_segments_do_not_hold_the_recovery_point_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled_log(dir.path());
    let flushes = log.take_rolled_flushes();
    let bases = log.segment_base_offsets();
    log.delete_segments_before(bases[2]).unwrap();
    assert_eq!(log.recovery_point(), bases[2]);
    run_flushes(&mut log, &flushes);
    assert_eq!(log.recovery_point(), *bases.last().unwrap());
}

/// Opening a log that has no checkpoint (written by an older version, or
/// lost) after a crash: every segment is validated, then queued for flush.
#[test]
fn no_checkpoint_means_full_recovery_then_flush() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled_log(dir.path());
    let bases = log.segment_base_offsets();
    drop(log);
    let _ = std::fs::remove_file(dir.path().join(RECOVERY_POINT_CHECKPOINT));
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(log.recovery_point(), 0);
    assert_eq!(log.take_rolled_flushes().len(), bases.len() - 1);
    drop(log);
    // The flushes were not run: the next crash recovery still reads all.
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    run_rolled_flushes(&mut log, usize::MAX);
    assert_eq!(log.recovery_point(), *bases.last().unwrap());
}

/// A damaged checkpoint is ignored (every segment validated), never a panic.
#[test]
fn a_damaged_checkpoint_means_full_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled_log(dir.path());
    run_rolled_flushes(&mut log, usize::MAX);
    let end = log.log_end_offset();
    let bases = log.segment_base_offsets();
    drop(log);
    for garbage in [&b"0\n1\nnot-a-number\n"[..], b"7\n", b"", b"0\n1\n-5\n"] {
        std::fs::write(dir.path().join(RECOVERY_POINT_CHECKPOINT), garbage).unwrap();
        let log = Log::open(dir.path(), config(), 0).unwrap();
        assert_eq!((log.log_end_offset(), log.recovery_point()), (end, bases[0]), "{garbage:?}");
        drop(log);
    }
}
