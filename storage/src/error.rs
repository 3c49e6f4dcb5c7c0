//! [`Error`]: everything the storage crate can fail with, with path and
//! offset context.

use std::path::PathBuf;

use klamm_protocol::records::RecordsError;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Storage errors.
///
/// `OffsetBelowLogStart` / `OffsetAboveLogEnd` are API errors the broker maps
/// to `OFFSET_OUT_OF_RANGE`; `InvalidBatch` maps to `CORRUPT_MESSAGE` /
/// `INVALID_RECORD`; `Io` is fatal for the log directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("offset {offset} is below the log start offset {log_start_offset}")]
    OffsetBelowLogStart { offset: i64, log_start_offset: i64 },
    #[error("offset {offset} is above the log end offset {log_end_offset}")]
    OffsetAboveLogEnd { offset: i64, log_end_offset: i64 },
    #[error("invalid batch at byte {position} of the appended buffer: {source}")]
    InvalidBatch {
        position: usize,
        #[source]
        source: RecordsError,
    },
    #[error("invalid batch at byte {position} of the appended buffer: {reason}")]
    InvalidBatchFraming { position: usize, reason: &'static str },
    #[error("batch base offset {offset} is below the expected offset {expected} (log end offset {log_end_offset})")]
    NonMonotonicOffset {
        offset: i64,
        expected: i64,
        log_end_offset: i64,
    },
    #[error("invalid offset {offset}: {reason}")]
    InvalidOffset { offset: i64, reason: &'static str },
    #[error("invalid log config: {0}")]
    InvalidConfig(String),
    #[error("{path} was truncated while a read of it was pending")]
    Truncated { path: PathBuf },
    #[error("corrupt {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// True if the process (EMFILE) or the system (ENFILE) has no file
    /// descriptor left: every further open fails the same way until some
    /// are closed or the limit is raised.
    pub fn is_out_of_file_descriptors(&self) -> bool {
        // EMFILE = 24, ENFILE = 23 on Linux.
        matches!(self, Error::Io { source, .. } if matches!(source.raw_os_error(), Some(23 | 24)))
    }

    /// True for the two offset-out-of-range variants.
    pub fn is_offset_out_of_range(&self) -> bool {
        matches!(
            self,
            Error::OffsetBelowLogStart { .. } | Error::OffsetAboveLogEnd { .. }
        )
    }
}
