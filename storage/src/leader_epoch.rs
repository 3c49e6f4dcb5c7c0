//! Leader-epoch cache: the offset at which each leader epoch started, kept
//! in `leader-epoch-checkpoint` in the partition directory.
//!
//! Entries have strictly increasing epochs and start offsets. The log
//! assigns an entry whenever it appends a batch whose partition leader epoch
//! is larger than the latest one, and trims entries when it truncates.

use std::path::{Path, PathBuf};

use tracing::warn;

use crate::checkpoint::{read_checkpoint, write_checkpoint};
use crate::error::Result;

/// File name of the checkpoint in the partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// Epoch and offset meaning "undefined" in OffsetsForLeaderEpoch answers.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One (epoch, start offset) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint (a missing or unreadable file means an empty cache).
    pub fn load(dir: &Path) -> LeaderEpochCache {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let entries = match read_checkpoint(&path, 2) {
            Ok(Some(rows)) => {
                let mut entries: Vec<EpochEntry> = Vec::with_capacity(rows.len());
                for r in rows {
                    let (Ok(epoch), start_offset) = (i32::try_from(r[0]), r[1]) else {
                        continue;
                    };
                    let ordered = match entries.last() {
                        None => true,
                        Some(l) => epoch > l.epoch && start_offset > l.start_offset,
                    };
                    if epoch >= 0 && start_offset >= 0 && ordered {
                        entries.push(EpochEntry { epoch, start_offset });
                    }
                }
                entries
            }
            Ok(None) => Vec::new(),
            Err(e) => {
                warn!(error = %e, "ignoring unreadable leader epoch checkpoint");
                Vec::new()
            }
        };
        LeaderEpochCache { path, entries }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    fn persist(&self) -> Result<()> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset))
            .collect();
        write_checkpoint(&self.path, &lines)
    }

    /// Records that `epoch` starts at `start_offset`. Ignored unless `epoch`
    /// is newer than the latest epoch; entries at or after `start_offset`
    /// (from a truncated-away history) are replaced.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool> {
        if epoch < 0 || self.latest_epoch().is_some_and(|l| epoch <= l) {
            return Ok(false);
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry { epoch, start_offset });
        self.persist()?;
        Ok(true)
    }

    /// Kafka's `endOffsetFor`: the end offset of `epoch` = the start offset
    /// of the next larger epoch, or `log_end_offset` for the latest. Returns
    /// (largest epoch <= requested, end offset), or the undefined pair.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        if epoch == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(epoch) {
            return (epoch, log_end_offset);
        }
        let higher = self.entries.iter().position(|e| e.epoch > epoch);
        match higher {
            None => (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
            Some(0) => (epoch, self.entries[0].start_offset),
            Some(i) => (self.entries[i - 1].epoch, self.entries[i].start_offset),
        }
    }

    /// Drops entries starting at or after `end_offset` (log truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Drops entries wholly below `start_offset` (log start advanced); the
    /// epoch covering `start_offset` is kept with its start moved up.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<()> {
        let below = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        if below == 0 {
            return Ok(());
        }
        let keep = self.entries[below - 1];
        if below == 1 && keep.start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..below);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: keep.epoch,
                start_offset,
            },
        );
        self.persist()
    }

    /// Removes every entry.
    pub fn clear(&mut self) -> Result<()> {
        if self.entries.is_empty() && !self.path.exists() {
            return Ok(());
        }
        self.entries.clear();
        self.persist()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_end_offsets_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path());
        assert_eq!(c.end_offset_for(0, 10), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
        assert!(c.assign(1, 0).unwrap());
        assert!(!c.assign(1, 5).unwrap());
        assert!(c.assign(3, 10).unwrap());
        assert!(c.assign(5, 20).unwrap());
        assert!(!c.assign(4, 25).unwrap());
        assert_eq!(c.end_offset_for(5, 30), (5, 30));
        assert_eq!(c.end_offset_for(3, 30), (3, 20));
        assert_eq!(c.end_offset_for(4, 30), (3, 20));
        assert_eq!(c.end_offset_for(2, 30), (1, 10));
        assert_eq!(c.end_offset_for(0, 30), (0, 0));
        assert_eq!(c.end_offset_for(9, 30), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));

        let reloaded = LeaderEpochCache::load(dir.path());
        assert_eq!(reloaded.entries(), c.entries());

        c.truncate_from_end(20).unwrap();
        assert_eq!(c.latest_epoch(), Some(3));
        c.truncate_from_start(12).unwrap();
        assert_eq!(
            c.entries(),
            &[EpochEntry { epoch: 3, start_offset: 12 }]
        );
        // A newer epoch starting below existing entries replaces them.
        assert!(c.assign(7, 11).unwrap());
        assert_eq!(c.entries(), &[EpochEntry { epoch: 7, start_offset: 11 }]);
        c.clear().unwrap();
        assert!(LeaderEpochCache::load(dir.path()).entries().is_empty());
    }
}
