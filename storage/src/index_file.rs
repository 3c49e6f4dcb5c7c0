//! A memory-mapped, preallocated file of fixed-size entries: the common part
//! of [`crate::offset_index`] and [`crate::time_index`].
//!
//! The file is preallocated to `capacity * entry_size` bytes while the
//! segment is active, and trimmed to exactly `entries * entry_size` when the
//! segment is sealed or the log is closed, so the number of entries of a
//! trimmed index is its length divided by the entry size.
//!
//! Two costs grow with the number of partitions and are kept flat here:
//!
//! - **File descriptors.** The file is closed as soon as it is mapped (a
//!   mapping stays valid without its descriptor, as Kafka keeps only the
//!   map); a resize reopens it by path. A partition then holds one
//!   descriptor (its active `.log`), not three.
//! - **Read-ahead of holes.** The preallocated tail is a sparse hole. The
//!   first write to a page of it faults, and with the kernel's default mmap
//!   read-ahead the fault "reads" (zero-fills) the whole read-ahead window
//!   around it: `read_ahead_kb` is 8 MiB on the reference VM, so every index
//!   of every partition cost megabytes of page clearing for a few bytes of
//!   entries, which made produce to 1 000 partitions 60x more expensive per
//!   byte than to one. `MADV_RANDOM` turns fault read-ahead off for the
//!   mapping: a fault brings in the one page it touches. Lookups are binary
//!   searches, random access anyway.
//!
//! A write through the map into a hole needs a block from the filesystem at
//! fault time; on a full disk (or a full tmpfs) the kernel has no error code
//! to return from a store instruction and sends SIGBUS, which kills the whole
//! broker. So the map is never written where the file has no blocks: before
//! an entry lands beyond the allocated prefix, the next chunk of the file is
//! allocated through the descriptor (`fallocate(2)`, or zeros written with
//! `pwrite` where the filesystem has no `fallocate`), and a full disk comes
//! back as ENOSPC on that call. Chunks grow with the index (one page, then
//! doubling up to [`MAX_CHUNK`]), so a partition with little data allocates
//! a page per index and a busy one makes a system call per megabyte of index,
//! not per entry; nothing is zero-filled up front (which would bring back the
//! cost the `MADV_RANDOM` note above is about).
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::{Advice, MmapMut};

use crate::error::{Error, Result};

/// The first chunk allocated behind an empty index: one page.
const FIRST_CHUNK: u64 = 4096;
/// The largest chunk allocated at once (chunks double up to this).
const MAX_CHUNK: u64 = 1 << 20;

pub(crate) struct IndexFile {
    path: PathBuf,
    mmap: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
    capacity: usize,
    /// Bytes from the start of the file known to have blocks behind them
    /// (written or allocated); the map is written only below this.
    allocated: u64,
}

impl std::fmt::Debug for IndexFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexFile")
            .field("path", &self.path)
            .field("entries", &self.entries)
            .field("capacity", &self.capacity)
            .field("allocated", &self.allocated)
            .finish()
    }
}

fn map(file: &File, path: &Path, len: usize) -> Result<Option<MmapMut>> {
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the file belongs to this partition's log, which is owned by one
    // `Log` (the partition directory is not shared with other processes or
    // other `Log` values). The mapping is never used after the file is
    // resized: `set_capacity` drops it before `set_len` and maps again after,
    // and the length mapped is the file length we just set.
    let mmap = unsafe { MmapMut::map_mut(file) }.map_err(Error::io("mmap", path))?;
    // No read-ahead on faults: see the module doc. Only advice; a kernel
    // that refuses it loses speed, not correctness.
    if let Err(e) = mmap.advise(Advice::Random) {
        tracing::debug!(path = %path.display(), error = %e, "madvise(MADV_RANDOM) on an index failed");
    }
    Ok(Some(mmap))
}

/// Gives `[offset, offset + len)` of `file` blocks on disk without changing
/// its length: `fallocate(2)` (which on ext4/xfs allocates unwritten extents
/// without zeroing anything), or, where the filesystem does not support it,
/// zeros written through the descriptor. Either way a full disk is an error
/// here instead of a SIGBUS later.
fn allocate(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), offset, len) {
        Ok(()) => return Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {}
        Err(e) => return Err(e.into()),
    }
    // The range lies in the hole past the last entry written, so writing
    // zeros there overwrites nothing.
    const ZEROS: [u8; FIRST_CHUNK as usize] = [0; FIRST_CHUNK as usize];
    let mut at = offset;
    while at < offset + len {
        let n = (offset + len - at).min(FIRST_CHUNK) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

impl IndexFile {
    /// Creates (or empties) the index at `path`, preallocated for `capacity` entries.
    pub fn create(path: &Path, entry_size: usize, capacity: usize) -> Result<IndexFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(Error::io("create index", path))?;
        let len = capacity * entry_size;
        file.set_len(len as u64).map_err(Error::io("preallocate index", path))?;
        let mmap = map(&file, path, len)?;
        Ok(IndexFile {
            path: path.to_owned(),
            mmap,
            entry_size,
            entries: 0,
            capacity,
            // A new sparse file: nothing behind it yet.
            allocated: 0,
        })
    }

    /// Opens a trimmed index, taking every entry in the file as written.
    /// The caller sanity-checks the entries.
    pub fn open_trimmed(path: &Path, entry_size: usize) -> Result<IndexFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(Error::io("open index", path))?;
        let len = file.metadata().map_err(Error::io("stat index", path))?.len();
        if len % entry_size as u64 != 0 || len > i32::MAX as u64 {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                position: len,
                reason: format!("index length {len} is not a multiple of {entry_size}"),
            });
        }
        let entries = (len / entry_size as u64) as usize;
        let mmap = map(&file, path, len as usize)?;
        Ok(IndexFile {
            path: path.to_owned(),
            mmap,
            entry_size,
            entries,
            capacity: entries,
            // Every byte of a trimmed index was written (or is within the
            // last written block), so it is backed by blocks.
            allocated: len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn entries(&self) -> usize {
        self.entries
    }
    pub fn free(&self) -> usize {
        self.capacity - self.entries
    }

    /// Changes the file size to `capacity` entries (preallocate or trim).
    ///
    /// Failure-atomic: on an error (a full disk failing the flush, the
    /// resize or the new mapping) the index keeps its old mapping, length
    /// and capacity, so the caller may go on appending or try again. (Taking
    /// the mapping first left an index with capacity and no mapping, and the
    /// next append panicked.)
    pub fn set_capacity(&mut self, capacity: usize) -> Result<()> {
        assert!(capacity >= self.entries, "index capacity below its entry count");
        if capacity == self.capacity {
            return Ok(());
        }
        if let Some(mmap) = &self.mmap {
            mmap.flush().map_err(Error::io("flush index", &self.path))?;
        }
        let old_len = (self.capacity * self.entry_size) as u64;
        let len = capacity * self.entry_size;
        // The descriptor was closed after mapping; a resize is rare (roll, close).
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(Error::io("open index", &self.path))?;
        file.set_len(len as u64).map_err(Error::io("resize index", &self.path))?;
        match map(&file, &self.path, len) {
            Ok(mmap) => {
                self.mmap = mmap;
                self.capacity = capacity;
                // A shrink cut the allocated prefix; a growth added a hole.
                self.allocated = self.allocated.min(len as u64);
                Ok(())
            }
            Err(e) => {
                // The old mapping must not reach past the end of the file.
                let _ = file.set_len(old_len);
                Err(e)
            }
        }
    }

    /// Entry `i` (< entries()).
    pub fn entry(&self, i: usize) -> &[u8] {
        assert!(i < self.entries, "index entry out of bounds");
        let mmap = self.mmap.as_ref().expect("an index with entries is mapped");
        &mmap[i * self.entry_size..(i + 1) * self.entry_size]
    }

    /// Appends one entry; the caller checks `free() > 0`. Fails (with
    /// nothing written) if the file has no blocks for it and the disk has
    /// none to give; see the module doc.
    pub fn push(&mut self, entry: &[u8]) -> Result<()> {
        assert_eq!(entry.len(), self.entry_size);
        assert!(self.entries < self.capacity, "index is full");
        self.reserve(1)?;
        let at = self.entries * self.entry_size;
        let mmap = self.mmap.as_mut().expect("an index with capacity is mapped");
        mmap[at..at + self.entry_size].copy_from_slice(entry);
        self.entries += 1;
        Ok(())
    }

    /// Makes sure the next `n` entries (at most up to the capacity) have
    /// blocks behind them, allocating the next chunk of the file if not, so
    /// that writing them through the map cannot fault on a full disk. A
    /// segment reserves before it writes a batch, so a full disk fails the
    /// append before anything of it is on disk.
    pub fn reserve(&mut self, n: usize) -> Result<()> {
        let end = ((self.entries + n).min(self.capacity) * self.entry_size) as u64;
        if end <= self.allocated {
            return Ok(());
        }
        let len = (self.capacity * self.entry_size) as u64;
        let chunk = self.allocated.clamp(FIRST_CHUNK, MAX_CHUNK);
        let target = end.max(self.allocated + chunk).next_multiple_of(FIRST_CHUNK).min(len);
        // The descriptor was closed after mapping (see the module doc); an
        // allocation happens once per chunk, not per entry.
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(Error::io("open index", &self.path))?;
        allocate(&file, self.allocated, target - self.allocated).map_err(Error::io("allocate index", &self.path))?;
        self.allocated = target;
        Ok(())
    }

    /// Keeps the first `n` entries.
    pub fn truncate_entries(&mut self, n: usize) {
        self.entries = self.entries.min(n);
    }

    /// Writes dirty pages to disk (msync).
    pub fn flush(&self) -> Result<()> {
        if let Some(mmap) = &self.mmap {
            mmap.flush().map_err(Error::io("flush index", &self.path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// Bytes of disk blocks behind the file (st_blocks is in 512-byte units).
    fn allocated_on_disk(path: &Path) -> u64 {
        std::fs::metadata(path).expect("stat").blocks() * 512
    }

    #[test]
    fn blocks_are_allocated_in_growing_chunks_before_entries_are_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.index");
        let mut idx = IndexFile::create(&path, 8, 100_000).expect("create");
        // Preallocated in length only: nothing zero-filled or allocated up front.
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 800_000);
        assert_eq!(allocated_on_disk(&path), 0);
        idx.push(&[1; 8]).expect("push");
        assert_eq!(idx.allocated, FIRST_CHUNK, "the first entry brings one page");
        assert!(allocated_on_disk(&path) >= FIRST_CHUNK);
        // Chunks double: 4 KiB, 8 KiB, 16 KiB, ... up to MAX_CHUNK.
        for i in 1..1_000u64 {
            idx.push(&i.to_be_bytes()).expect("push");
            assert!(idx.allocated >= (idx.entries() * 8) as u64, "every written entry has blocks");
        }
        assert_eq!(idx.allocated, 2 * FIRST_CHUNK, "8 000 bytes of entries in two pages");
        idx.reserve(10_000).expect("reserve");
        assert_eq!(idx.allocated, 22 * FIRST_CHUNK, "a reservation past the next chunk takes what it needs (88 000 bytes, in whole pages)");
        idx.reserve(10_000).expect("reserve");
        assert_eq!(idx.allocated, 22 * FIRST_CHUNK, "nothing to do when the room is there");
        idx.reserve(100_000).expect("reserve");
        assert_eq!(idx.allocated, 800_000, "never past the file's length");
        assert!(allocated_on_disk(&path) >= 800_000);
        assert_eq!(idx.entry(999), &999u64.to_be_bytes());
    }

    #[test]
    fn trimming_and_growing_again_keeps_track_of_what_is_allocated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.index");
        let mut idx = IndexFile::create(&path, 12, 10_000).expect("create");
        for i in 0..10u8 {
            idx.push(&[i; 12]).expect("push");
        }
        idx.set_capacity(10).expect("trim");
        assert_eq!(idx.allocated, 120);
        idx.set_capacity(10_000).expect("grow");
        assert_eq!(idx.allocated, 120, "the grown tail is a hole again");
        idx.push(&[10; 12]).expect("push into the grown tail");
        assert_eq!(idx.allocated, 2 * FIRST_CHUNK, "a chunk past where the trimmed file ended, to a page boundary");
        assert_eq!(idx.entry(10), &[10; 12]);
        assert_eq!(idx.entry(9), &[9; 12], "entries written before the trim are kept");
    }
}
