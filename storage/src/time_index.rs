//! Time index (`.timeindex`): maps timestamps to offsets within a segment.
//!
//! Entry layout (12 bytes, big-endian): `timestamp i64` then
//! `relative_offset u32`. An entry (T, O) says: T is the largest
//! `maxTimestamp` of all batches up to that point in the segment, first
//! reached by the batch whose base offset is O; so every batch before O has a
//! max timestamp < T. Timestamps strictly increase and offsets never
//! decrease. Entries are added together with offset-index entries, and once
//! more when the segment is sealed, so the last entry holds the segment's max
//! timestamp.

use std::path::Path;

use crate::error::Result;
use crate::index_file::IndexFile;

pub(crate) const ENTRY_SIZE: usize = 12;

#[derive(Debug)]
pub(crate) struct TimeIndex {
    file: IndexFile,
    base_offset: i64,
}

impl TimeIndex {
    pub fn create(path: &Path, base_offset: i64, capacity: usize) -> Result<TimeIndex> {
        Ok(TimeIndex {
            file: IndexFile::create(path, ENTRY_SIZE, capacity)?,
            base_offset,
        })
    }

    pub fn open_trimmed(path: &Path, base_offset: i64) -> Result<TimeIndex> {
        Ok(TimeIndex {
            file: IndexFile::open_trimmed(path, ENTRY_SIZE)?,
            base_offset,
        })
    }

    pub fn file(&self) -> &IndexFile {
        &self.file
    }
    pub fn file_mut(&mut self) -> &mut IndexFile {
        &mut self.file
    }
    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    /// Entry `i` as (timestamp, absolute offset).
    pub fn entry(&self, i: usize) -> (i64, i64) {
        let e = self.file.entry(i);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&e[..8]);
        let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        (i64::from_be_bytes(ts), self.base_offset + i64::from(rel))
    }

    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries().checked_sub(1).map(|i| self.entry(i))
    }

    /// Appends (timestamp, offset) if the timestamp is larger than the last
    /// entry's and there is room. Returns whether it was written; fails
    /// only if the disk has no room for the entry (nothing written).
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> Result<bool> {
        if timestamp < 0 || self.file.free() == 0 {
            return Ok(false);
        }
        if let Some((last_ts, last_off)) = self.last_entry() {
            if timestamp <= last_ts {
                return Ok(false);
            }
            assert!(offset >= last_off, "time index offsets must not decrease");
        }
        let rel = offset - self.base_offset;
        assert!((0..=i64::from(u32::MAX)).contains(&rel), "relative offset out of range");
        let mut e = [0u8; ENTRY_SIZE];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&(rel as u32).to_be_bytes());
        self.file.push(&e)?;
        Ok(true)
    }

    /// The offset to start scanning from for the first batch with
    /// max timestamp >= `timestamp`: the offset of the greatest entry with a
    /// smaller timestamp, or `None` for "from the segment start".
    pub fn lookup(&self, timestamp: i64) -> Option<i64> {
        let (mut lo, mut hi) = (0usize, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).0 < timestamp {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map(|i| self.entry(i).1)
    }

    /// Checks ordering, and that offsets are below `next_offset`.
    pub fn sanity_check(&self, next_offset: i64) -> Result<(), String> {
        let mut prev: Option<(i64, i64)> = None;
        for i in 0..self.entries() {
            let (ts, off) = self.entry(i);
            if off >= next_offset.max(self.base_offset + 1) {
                return Err(format!("entry {i} offset {off} beyond segment end {next_offset}"));
            }
            if let Some((pts, poff)) = prev {
                if ts <= pts || off < poff {
                    return Err(format!("entry {i} out of order"));
                }
            }
            prev = Some((ts, off));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_lookup_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TimeIndex::create(&dir.path().join("t.timeindex"), 50, 8).unwrap();
        assert_eq!(t.lookup(10), None);
        assert!(t.maybe_append(100, 50).unwrap());
        assert!(!t.maybe_append(100, 55).unwrap());
        assert!(t.maybe_append(200, 60).unwrap());
        assert!(t.maybe_append(300, 70).unwrap());
        assert_eq!(t.lookup(100), None);
        assert_eq!(t.lookup(101), Some(50));
        assert_eq!(t.lookup(250), Some(60));
        assert_eq!(t.lookup(10_000), Some(70));
        assert_eq!(t.last_entry(), Some((300, 70)));
        assert_eq!(t.sanity_check(71), Ok(()));
        assert!(t.sanity_check(70).is_err());
    }
}
