//! [`LogConfig`]: per-partition log settings (Kafka's topic-level names in docs).

use crate::error::{Error, Result};

/// Settings for one partition log. Defaults follow Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this (default 1 GiB).
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this (default 7 days).
    pub segment_ms: i64,
    /// `index.interval.bytes`: bytes of log between offset-index entries (default 4096).
    pub index_interval_bytes: u64,
    /// `segment.index.bytes`: preallocated size of each index file (default 10 MiB).
    pub max_index_bytes: u64,
    /// `flush.messages`: fsync after this many records; `None` = never (default).
    pub flush_messages: Option<u64>,
    /// `flush.ms`: fsync when this long has passed since the last fsync, checked on
    /// append; `None` = never (default).
    pub flush_ms: Option<i64>,
    /// Fsync a segment when it is rolled (Kafka does this in the background; default true).
    pub flush_on_roll: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            max_index_bytes: 10 << 20,
            flush_messages: None,
            flush_ms: None,
            flush_on_roll: true,
        }
    }
}

impl LogConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.segment_bytes < 61 || self.segment_bytes > i32::MAX as u64 {
            return Err(Error::InvalidConfig(format!(
                "segment_bytes {} must be in 61..=2147483647",
                self.segment_bytes
            )));
        }
        if self.max_index_bytes < 12 * 4 || self.max_index_bytes > i32::MAX as u64 {
            return Err(Error::InvalidConfig(format!(
                "max_index_bytes {} must be in 48..=2147483647",
                self.max_index_bytes
            )));
        }
        if self.segment_ms <= 0 {
            return Err(Error::InvalidConfig(format!(
                "segment_ms {} must be positive",
                self.segment_ms
            )));
        }
        if self.flush_messages == Some(0) {
            return Err(Error::InvalidConfig("flush_messages must be >= 1".into()));
        }
        Ok(())
    }

    /// Offset index capacity in entries.
    pub(crate) fn offset_index_entries(&self) -> usize {
        (self.max_index_bytes / crate::offset_index::ENTRY_SIZE as u64) as usize
    }
    /// Time index capacity in entries.
    pub(crate) fn time_index_entries(&self) -> usize {
        (self.max_index_bytes / crate::time_index::ENTRY_SIZE as u64) as usize
    }
}
