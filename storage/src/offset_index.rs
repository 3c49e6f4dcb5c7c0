//! Sparse offset index (`.index`): maps offsets to byte positions in the
//! segment's `.log` file.
//!
//! Entry layout (8 bytes, big-endian): `relative_offset u32` (batch base
//! offset minus segment base offset) then `position u32` (byte position of
//! that batch in the `.log`). Relative offsets strictly increase. One entry is
//! written per `index_interval_bytes` of log; the first batch of a segment
//! (position 0) needs no entry. A lookup returns the greatest entry whose
//! offset is <= the target, from which a scan of batch headers finds the
//! batch that contains the target.

use std::path::Path;

use crate::error::Result;
use crate::index_file::IndexFile;

pub(crate) const ENTRY_SIZE: usize = 8;

#[derive(Debug)]
pub(crate) struct OffsetIndex {
    file: IndexFile,
    base_offset: i64,
}

impl OffsetIndex {
    pub fn create(path: &Path, base_offset: i64, capacity: usize) -> Result<OffsetIndex> {
        Ok(OffsetIndex {
            file: IndexFile::create(path, ENTRY_SIZE, capacity)?,
            base_offset,
        })
    }

    pub fn open_trimmed(path: &Path, base_offset: i64) -> Result<OffsetIndex> {
        Ok(OffsetIndex {
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

    /// Entry `i` as (absolute offset, position).
    pub fn entry(&self, i: usize) -> (i64, u32) {
        let e = self.file.entry(i);
        let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        (self.base_offset + i64::from(rel), pos)
    }

    pub fn last_entry(&self) -> Option<(i64, u32)> {
        self.entries().checked_sub(1).map(|i| self.entry(i))
    }

    /// Appends (offset, position). Offsets and positions must increase.
    /// Fails only if the disk has no room for the entry (nothing written).
    pub fn append(&mut self, offset: i64, position: u32) -> Result<()> {
        let rel = offset - self.base_offset;
        assert!((0..=i64::from(u32::MAX)).contains(&rel), "relative offset out of range");
        if let Some((last_offset, last_pos)) = self.last_entry() {
            assert!(offset > last_offset, "offset index offsets must increase");
            assert!(position > last_pos, "offset index positions must increase");
        }
        let mut e = [0u8; ENTRY_SIZE];
        e[..4].copy_from_slice(&(rel as u32).to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.file.push(&e)
    }

    /// Index of the greatest entry with offset <= `target`, if any.
    fn floor_slot(&self, target: i64) -> Option<usize> {
        // Binary search on the mmap: first entry with offset > target.
        let (mut lo, mut hi) = (0usize, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).0 <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// (offset, position) to start scanning from for `target`: the greatest
    /// entry with offset <= target, or (base_offset, 0).
    pub fn lookup(&self, target: i64) -> (i64, u32) {
        self.floor_slot(target)
            .map_or((self.base_offset, 0), |i| self.entry(i))
    }

    /// The greatest entry's position that is <= `position` (entries grow in
    /// position as in offset), or 0: where to start walking batch headers to
    /// find the batch boundary at or before a byte position.
    pub fn floor_position(&self, position: u64) -> u64 {
        let (mut lo, mut hi) = (0usize, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if u64::from(self.entry(mid).1) <= position {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map_or(0, |i| u64::from(self.entry(i).1))
    }

    /// Checks the invariants of a loaded index against its log size.
    pub fn sanity_check(&self, log_size: u64) -> Result<(), String> {
        let mut prev: Option<(i64, u32)> = None;
        for i in 0..self.entries() {
            let (off, pos) = self.entry(i);
            if u64::from(pos) >= log_size {
                return Err(format!("entry {i} position {pos} beyond log size {log_size}"));
            }
            if let Some((po, pp)) = prev {
                if off <= po || pos <= pp {
                    return Err(format!("entry {i} does not increase"));
                }
            }
            prev = Some((off, pos));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::create(&dir.path().join("x.index"), 100, 16).unwrap();
        assert_eq!(idx.lookup(150), (100, 0));
        idx.append(110, 4096).unwrap();
        idx.append(120, 8200).unwrap();
        idx.append(135, 12300).unwrap();
        assert_eq!(idx.lookup(99), (100, 0));
        assert_eq!(idx.lookup(109), (100, 0));
        assert_eq!(idx.lookup(110), (110, 4096));
        assert_eq!(idx.lookup(134), (120, 8200));
        assert_eq!(idx.lookup(1 << 40), (135, 12300));
        idx.file_mut().truncate_entries(0);
        assert_eq!(idx.entries(), 0);
        idx.append(101, 10).unwrap();
        assert_eq!(idx.sanity_check(11), Ok(()));
        assert!(idx.sanity_check(10).is_err());
        assert_eq!(idx.file().free(), 15);
    }

    #[test]
    fn trim_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.index");
        let mut idx = OffsetIndex::create(&path, 0, 1000).unwrap();
        for i in 1..=10u32 {
            idx.append(i64::from(i) * 3, i * 100).unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8000);
        idx.file_mut().set_capacity(10).unwrap();
        idx.file().flush().unwrap();
        drop(idx);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
        let idx = OffsetIndex::open_trimmed(&path, 0).unwrap();
        assert_eq!(idx.entries(), 10);
        assert_eq!(idx.lookup(16), (15, 500));
        let mut idx = idx;
        idx.file_mut().truncate_entries(0);
        idx.file_mut().set_capacity(0).unwrap();
        assert_eq!(idx.lookup(16), (0, 0));
    }
}
