//! The few batch header fields storage needs, read from a plain byte slice
//! (no allocation) when scanning segment files, and handed to the append
//! functions by callers that parsed the batch already, so an append does
//! not parse it again.

use klamm_protocol::records::{
    RecordBatch, CURRENT_MAGIC, LOG_OVERHEAD, MIN_BATCH_LENGTH, RECORD_BATCH_OVERHEAD,
};

use crate::error::Error;

/// Header fields of one batch as laid out on disk.
///
/// Outside this crate it is built only from a batch's bytes
/// ([`BatchHeader::of`]) and changed only along with them
/// ([`BatchHeader::set_log_append_time`]); the append functions check that
/// it frames the bytes they are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub(crate) base_offset: i64,
    /// Whole batch size: 12 + batchLength.
    pub(crate) size: u32,
    pub(crate) partition_leader_epoch: i32,
    pub(crate) last_offset_delta: i32,
    pub(crate) max_timestamp: i64,
    pub(crate) records_count: i32,
    /// Batch attributes (codec, timestamp type, transactional, control,
    /// delete horizon); the cleaner needs them without decoding records.
    pub(crate) attributes: u16,
    /// Producer id (-1 when not idempotent); the cleaner keeps the last batch
    /// of every producer so producer state can be rebuilt.
    pub(crate) producer_id: i64,
}

/// Bytes needed to parse a [`BatchHeader`].
pub(crate) const HEADER_SIZE: usize = RECORD_BATCH_OVERHEAD;

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (needs [`HEADER_SIZE`] bytes).
    /// Checks magic, the minimum length and that offsets do not overflow;
    /// not the CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, &'static str> {
        if buf.len() < HEADER_SIZE {
            return Err("short batch header");
        }
        if buf[16] as i8 != CURRENT_MAGIC {
            return Err("magic is not 2");
        }
        let batch_length = i32_at(buf, 8);
        if batch_length < MIN_BATCH_LENGTH {
            return Err("batch length below minimum");
        }
        let base_offset = i64_at(buf, 0);
        let last_offset_delta = i32_at(buf, 23);
        if last_offset_delta < 0 {
            return Err("negative last offset delta");
        }
        if base_offset < 0 || base_offset.checked_add(i64::from(last_offset_delta) + 1).is_none() {
            return Err("offset out of range");
        }
        Ok(BatchHeader {
            base_offset,
            size: LOG_OVERHEAD as u32 + batch_length as u32,
            partition_leader_epoch: i32_at(buf, 12),
            last_offset_delta,
            max_timestamp: i64_at(buf, 35),
            records_count: i32_at(buf, 57),
            attributes: u16::from_be_bytes([buf[21], buf[22]]),
            producer_id: i64_at(buf, 43),
        })
    }

    /// The header of a batch the caller has parsed: what
    /// [`crate::Log::append_parsed_as_leader`] and
    /// [`crate::Log::append_parsed_as_follower`] take. Checks what the log
    /// relies on (magic, length, offsets in range), not the CRC.
    pub fn of(batch: &RecordBatch) -> Result<BatchHeader, Error> {
        let invalid = |reason| Error::InvalidBatchFraming { position: 0, reason };
        let header = BatchHeader::parse(batch.as_bytes()).map_err(invalid)?;
        if header.size as usize != batch.size() {
            return Err(invalid("batch length does not match the batch"));
        }
        Ok(header)
    }

    /// Mirrors `records::set_log_append_time` done on the batch's bytes:
    /// the max timestamp becomes `timestamp`, the timestamp type
    /// LogAppendTime.
    pub fn set_log_append_time(&mut self, timestamp: i64) {
        self.max_timestamp = timestamp;
        self.attributes |= 0x08;
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
}
