//! Producer-state snapshots: the idempotent-producer table of a partition as
//! of an offset, so a restart replays only the batches after it instead of
//! reading every segment written within `producer.id.expiration.ms` (a day
//! by default: at production rates, tens of gigabytes read at each start).
//!
//! Kafka writes `<offset>.snapshot` files at each segment roll and at clean
//! shutdown; Klamm keeps one file per partition, `producer-state-snapshot`,
//! rewritten by the maintenance tick after a roll and by a clean close.
//!
//! A snapshot at offset S describes exactly the batches below S. It is used
//! at open only if S is at most the recovered log end; a truncation below S
//! deletes it (data appended there later differs from what it describes),
//! and a snapshot taken before a truncation is never installed after it.
//!
//! Format (big-endian): `u16 version (1)`, `i64 offset`, `u32 producer
//! count`, then per producer `i64 id`, `i16 epoch`, `i64 last timestamp`,
//! `i64 first offset of the open transaction (-1: none)`, `i32 coordinator
//! epoch of the last marker (-1: none)` (these two since version 1; version 0
//! files, written before transactions, are still read), `u8 batch count (<= 5)` and per batch `i32 first seq`, `i32 last seq`,
//! `i64 first offset`, `i64 last offset`, `i64 max timestamp`; then a
//! CRC-32C of everything before it. Anything that does not parse, or fails
//! the CRC, is ignored (the state is then replayed from the log).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::producer_state::{BatchMetadata, ProducerEntry, ProducerStateTable, BATCHES_TO_RETAIN};

pub const PRODUCER_SNAPSHOT: &str = "producer-state-snapshot";
const VERSION: u16 = 1;
/// Snapshots written before transactions: no transaction fields.
const VERSION_0: u16 = 0;

/// Encodes the table as of `offset`.
pub fn encode(offset: i64, table: &ProducerStateTable) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + table.len() * (27 + BATCHES_TO_RETAIN * 32));
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&(table.len() as u32).to_be_bytes());
    for (id, entry) in table.iter() {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&entry.epoch.to_be_bytes());
        out.extend_from_slice(&entry.last_timestamp.to_be_bytes());
        out.extend_from_slice(&entry.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
        out.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
        out.push(entry.batches.len() as u8);
        for b in &entry.batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.first_offset.to_be_bytes());
            out.extend_from_slice(&b.last_offset.to_be_bytes());
            out.extend_from_slice(&b.max_timestamp.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Reads big-endian fields off a byte slice; None past its end.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

/// Decodes a snapshot: its offset and table, or None if it is damaged.
pub fn decode(bytes: &[u8]) -> Option<(i64, ProducerStateTable)> {
    let (body, crc) = bytes.split_last_chunk::<4>()?;
    if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
        return None;
    }
    let mut f = Fields(body);
    let version = f.take::<2>().map(u16::from_be_bytes)?;
    if version != VERSION && version != VERSION_0 {
        return None;
    }
    let offset = f.i64()?;
    let count = f.u32()?;
    let mut table = ProducerStateTable::default();
    for _ in 0..count {
        let id = f.i64()?;
        let epoch = f.i16()?;
        let last_timestamp = f.i64()?;
        let (txn_first, coordinator_epoch) = if version == VERSION_0 { (-1, -1) } else { (f.i64()?, f.i32()?) };
        let batches = f.u8()? as usize;
        if batches > BATCHES_TO_RETAIN {
            return None;
        }
        let mut entry = ProducerEntry {
            epoch,
            last_timestamp,
            current_txn_first_offset: (txn_first >= 0).then_some(txn_first),
            coordinator_epoch,
            ..Default::default()
        };
        for _ in 0..batches {
            entry.batches.push_back(BatchMetadata {
                first_seq: f.i32()?,
                last_seq: f.i32()?,
                first_offset: f.i64()?,
                last_offset: f.i64()?,
                max_timestamp: f.i64()?,
            });
        }
        table.insert(id, entry);
    }
    (f.0.is_empty() && offset >= 0).then_some((offset, table))
}

/// The snapshot in `dir`, if there is a readable one.
pub fn read(dir: &Path) -> Option<(i64, ProducerStateTable)> {
    let bytes = std::fs::read(dir.join(PRODUCER_SNAPSHOT)).ok()?;
    let decoded = decode(&bytes);
    if decoded.is_none() {
        tracing::warn!(dir = %dir.display(), "ignoring a damaged producer-state snapshot");
    }
    decoded
}

/// Writes `bytes` to a temporary file next to the snapshot and fsyncs it;
/// [`install`] then makes it the snapshot.
pub fn write_pending(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = dir.join(format!("{PRODUCER_SNAPSHOT}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(tmp)
}

/// Renames a pending snapshot into place (atomic). The caller fsyncs the
/// directory ([`sync_dir`]) to make the rename durable.
pub fn install(dir: &Path, pending: &Path) -> std::io::Result<()> {
    std::fs::rename(pending, dir.join(PRODUCER_SNAPSHOT))
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Deletes the snapshot (after a truncation below its offset).
pub fn remove(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(PRODUCER_SNAPSHOT)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::producer_state::IncomingBatch;

    fn table() -> ProducerStateTable {
        let mut t = ProducerStateTable::default();
        for (pid, n) in [(7i64, 8), (9, 1), (1 << 40, 3)] {
            for i in 0..n {
                let batch = IncomingBatch { producer_id: pid, producer_epoch: 2, base_sequence: i * 10, last_offset_delta: 9, max_timestamp: 1_000 + i as i64, transactional: false };
                t.record(&batch, pid % 1000 + i as i64 * 10);
            }
        }
        t
    }

    #[test]
    fn a_snapshot_round_trips() {
        let t = table();
        let (offset, back) = decode(&encode(42, &t)).expect("decodes");
        assert_eq!(offset, 42);
        assert_eq!(back.len(), 3);
        for (id, entry) in t.iter() {
            let got = back.get(id).expect("producer kept");
            assert_eq!((got.epoch, got.last_timestamp), (entry.epoch, entry.last_timestamp));
            assert_eq!(got.batches, entry.batches);
        }
        assert_eq!(back.get(7).unwrap().batches.len(), BATCHES_TO_RETAIN);
        let (_, empty) = decode(&encode(0, &ProducerStateTable::default())).expect("empty table");
        assert!(empty.is_empty());
    }

    #[test]
    fn open_transactions_and_coordinator_epochs_round_trip() {
        let mut t = table();
        let txn = IncomingBatch { producer_id: 5, producer_epoch: 1, base_sequence: 0, last_offset_delta: 0, max_timestamp: 7, transactional: true };
        t.record(&txn, 300);
        let done = IncomingBatch { producer_id: 6, ..txn };
        t.record(&done, 301);
        t.complete_txn(6, 1, klamm_protocol::records::EndTransactionMarker { commit: true, coordinator_epoch: 4 }, 302, 8);
        let (_, mut back) = decode(&encode(303, &t)).expect("decodes");
        assert_eq!(back.get(5).unwrap().current_txn_first_offset, Some(300));
        assert_eq!((back.get(6).unwrap().current_txn_first_offset, back.get(6).unwrap().coordinator_epoch), (None, 4));
        assert_eq!(back.get(7).unwrap().coordinator_epoch, -1);
        assert_eq!(back.ongoing_txns().collect::<Vec<_>>(), vec![(5, 300)]);
        assert_eq!(back.last_stable_offset(303), 300);
    }

    #[test]
    fn version_0_snapshots_are_still_read() {
        // Version 0: no transaction fields; one producer with one batch.
        let mut v0 = Vec::new();
        v0.extend_from_slice(&0u16.to_be_bytes());
        v0.extend_from_slice(&10i64.to_be_bytes());
        v0.extend_from_slice(&1u32.to_be_bytes());
        v0.extend_from_slice(&3i64.to_be_bytes());
        v0.extend_from_slice(&1i16.to_be_bytes());
        v0.extend_from_slice(&99i64.to_be_bytes());
        v0.push(1);
        for v in [0i32, 4] {
            v0.extend_from_slice(&v.to_be_bytes());
        }
        for v in [5i64, 9, 99] {
            v0.extend_from_slice(&v.to_be_bytes());
        }
        let crc = crc32c::crc32c(&v0);
        v0.extend_from_slice(&crc.to_be_bytes());
        let (offset, t) = decode(&v0).expect("version 0 decodes");
        let e = t.get(3).unwrap();
        assert_eq!((offset, e.epoch, e.last_timestamp, e.current_txn_first_offset, e.coordinator_epoch), (10, 1, 99, None, -1));
        assert_eq!(e.batches[0], BatchMetadata { first_seq: 0, last_seq: 4, first_offset: 5, last_offset: 9, max_timestamp: 99 });
    }

    #[test]
    fn damaged_or_short_snapshots_are_refused() {
        let bytes = encode(42, &table());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x04;
            assert!(decode(&damaged).is_none(), "flip at {at}");
        }
    }

    #[test]
    fn files_are_written_installed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_none());
        let pending = write_pending(dir.path(), &encode(5, &table())).unwrap();
        assert!(read(dir.path()).is_none(), "not installed yet");
        install(dir.path(), &pending).unwrap();
        assert_eq!(read(dir.path()).map(|(o, t)| (o, t.len())), Some((5, 3)));
        std::fs::write(dir.path().join(PRODUCER_SNAPSHOT), b"garbage").unwrap();
        assert!(read(dir.path()).is_none());
        remove(dir.path()).unwrap();
        remove(dir.path()).unwrap();
        assert!(!dir.path().join(PRODUCER_SNAPSHOT).exists());
    }
}
