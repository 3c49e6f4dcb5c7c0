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
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::{Advice, MmapMut};

use crate::error::{Error, Result};

pub(crate) struct IndexFile {
    path: PathBuf,
    mmap: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
    capacity: usize,
}

impl std::fmt::Debug for IndexFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexFile")
            .field("path", &self.path)
            .field("entries", &self.entries)
            .field("capacity", &self.capacity)
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

    /// Appends one entry; the caller checks `free() > 0`.
    pub fn push(&mut self, entry: &[u8]) {
        assert_eq!(entry.len(), self.entry_size);
        assert!(self.entries < self.capacity, "index is full");
        let at = self.entries * self.entry_size;
        let mmap = self.mmap.as_mut().expect("an index with capacity is mapped");
        mmap[at..at + self.entry_size].copy_from_slice(entry);
        self.entries += 1;
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
