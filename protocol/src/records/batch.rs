//! [`RecordBatch`]: a zero-copy view of one magic-2 batch, batch iteration
//! over a buffer, and in-place stamping helpers.

use bytes::Bytes;

use super::compression::Compression;
use super::record::Records;
use super::{
    RecordsError, CRC_START, CURRENT_MAGIC, LOG_OVERHEAD, MIN_BATCH_LENGTH, RECORD_BATCH_OVERHEAD,
};

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const TIMESTAMP_TYPE_MASK: u16 = 0x08;
const TRANSACTIONAL_MASK: u16 = 0x10;
const CONTROL_MASK: u16 = 0x20;
const DELETE_HORIZON_MASK: u16 = 0x40;

/// Timestamp type (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The 16-bit attributes field of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attributes(pub u16);

impl Attributes {
    /// Compression codec; errors for the unassigned codecs 5-7.
    pub fn compression(self) -> Result<Compression, RecordsError> {
        Compression::from_bits((self.0 & 0x07) as u8)
    }
    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & TIMESTAMP_TYPE_MASK != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(self) -> bool {
        self.0 & TRANSACTIONAL_MASK != 0
    }
    pub fn is_control(self) -> bool {
        self.0 & CONTROL_MASK != 0
    }
    pub fn has_delete_horizon(self) -> bool {
        self.0 & DELETE_HORIZON_MASK != 0
    }
}

#[inline]
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
#[inline]
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
#[inline]
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads the total size (12 + batchLength) of the batch at the start of
/// `buf`, checking only that the length field is sane. `position` is used for
/// error context.
fn framed_size(buf: &[u8], position: usize) -> Result<usize, RecordsError> {
    if buf.len() < LOG_OVERHEAD {
        return Err(RecordsError::Truncated {
            position,
            needed: LOG_OVERHEAD,
            available: buf.len(),
        });
    }
    let batch_length = be_i32(buf, BATCH_LENGTH);
    if batch_length < MIN_BATCH_LENGTH {
        // A legacy message set has a smaller minimum; report it by magic when we can.
        if let Some(&magic) = buf.get(MAGIC) {
            if magic as i8 != CURRENT_MAGIC {
                return Err(RecordsError::InvalidMagic(magic as i8));
            }
        }
        return Err(RecordsError::InvalidBatchLength(batch_length));
    }
    // batch_length >= 49 > 0, so the cast is lossless.
    Ok(LOG_OVERHEAD + batch_length as usize)
}

/// A zero-copy view of one record batch (magic 2).
///
/// Construct with [`RecordBatch::parse`]; accessors read the header fields
/// directly from the underlying [`Bytes`]. `parse` only checks framing
/// (length fits); call [`RecordBatch::validate`] before trusting contents.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

impl std::fmt::Debug for RecordBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("last_offset_delta", &self.last_offset_delta())
            .field("records_count", &self.records_count())
            .field("size", &self.size())
            .field("magic", &self.magic())
            .finish()
    }
}

impl RecordBatch {
    /// Splits the first batch off `bytes`, returning it and the remaining bytes.
    ///
    /// Fails with [`RecordsError::Truncated`] if the buffer is shorter than the
    /// batch claims, and [`RecordsError::InvalidBatchLength`] /
    /// [`RecordsError::InvalidMagic`] if the length field is below the minimum.
    pub fn parse(mut bytes: Bytes) -> Result<(RecordBatch, Bytes), RecordsError> {
        let size = framed_size(&bytes, 0)?;
        if bytes.len() < size {
            return Err(RecordsError::Truncated {
                position: 0,
                needed: size,
                available: bytes.len(),
            });
        }
        let batch = bytes.split_to(size);
        Ok((RecordBatch { bytes: batch }, bytes))
    }

    /// The raw bytes of this batch (exactly [`RecordBatch::size`] long).
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// Consumes the view, returning its bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    pub fn base_offset(&self) -> i64 {
        be_i64(&self.bytes, BASE_OFFSET)
    }
    pub fn batch_length(&self) -> i32 {
        be_i32(&self.bytes, BATCH_LENGTH)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(&self.bytes, PARTITION_LEADER_EPOCH)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC] as i8
    }
    pub fn crc(&self) -> u32 {
        be_i32(&self.bytes, CRC) as u32
    }
    pub fn attributes(&self) -> Attributes {
        Attributes(be_i16(&self.bytes, ATTRIBUTES) as u16)
    }
    pub fn compression(&self) -> Result<Compression, RecordsError> {
        self.attributes().compression()
    }
    pub fn timestamp_type(&self) -> TimestampType {
        self.attributes().timestamp_type()
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes().is_transactional()
    }
    pub fn is_control(&self) -> bool {
        self.attributes().is_control()
    }
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes().has_delete_horizon()
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(&self.bytes, LAST_OFFSET_DELTA)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(&self.bytes, BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(&self.bytes, MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(&self.bytes, PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(&self.bytes, PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(&self.bytes, BASE_SEQUENCE)
    }
    pub fn records_count(&self) -> i32 {
        be_i32(&self.bytes, RECORDS_COUNT)
    }
    /// Offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset().wrapping_add(i64::from(self.last_offset_delta()))
    }
    /// Offset following this batch: `last_offset + 1`.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }
    /// Total size on the wire / disk: `12 + batch_length`.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    /// The CRC-32C of bytes 21..end, as it should be stored.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[CRC_START..])
    }
    /// The (possibly compressed) records section: everything after recordsCount.
    pub fn records_payload(&self) -> Bytes {
        self.bytes.slice(RECORD_BATCH_OVERHEAD..)
    }

    /// Checks magic, length, CRC, attributes and counts; for uncompressed
    /// batches also walks every record.
    ///
    /// The magic check comes first so that a legacy message set yields
    /// [`RecordsError::InvalidMagic`] rather than a CRC error.
    pub fn validate(&self) -> Result<(), RecordsError> {
        self.validate_header()?;
        if self.compression()? == Compression::None {
            let mut seen = 0i32;
            for record in self.records() {
                record?;
                seen += 1;
            }
            // `Records` already enforces the count; keep the pair check explicit.
            if seen != self.records_count() {
                return Err(RecordsError::InvalidRecordCount(format!(
                    "header says {} records, found {seen}",
                    self.records_count()
                )));
            }
        }
        Ok(())
    }

    /// Like [`RecordBatch::validate`] but without walking the records: magic,
    /// length, CRC, codec bits and header counts. Cheap enough for recovery of
    /// every batch of a segment.
    pub fn validate_header(&self) -> Result<(), RecordsError> {
        if self.magic() != CURRENT_MAGIC {
            return Err(RecordsError::InvalidMagic(self.magic()));
        }
        let batch_length = self.batch_length();
        if batch_length < MIN_BATCH_LENGTH
            || LOG_OVERHEAD + batch_length as usize != self.bytes.len()
        {
            return Err(RecordsError::InvalidBatchLength(batch_length));
        }
        let computed = self.compute_crc();
        if computed != self.crc() {
            return Err(RecordsError::CrcMismatch {
                stored: self.crc(),
                computed,
            });
        }
        self.compression()?;
        let count = self.records_count();
        let last_delta = self.last_offset_delta();
        if count < 0 {
            return Err(RecordsError::InvalidRecordCount(format!(
                "negative records count {count}"
            )));
        }
        if last_delta < 0 {
            return Err(RecordsError::InvalidRecordCount(format!(
                "negative last offset delta {last_delta}"
            )));
        }
        if i64::from(count) > i64::from(last_delta) + 1 {
            return Err(RecordsError::InvalidRecordCount(format!(
                "{count} records do not fit in last offset delta {last_delta}"
            )));
        }
        if self.compression()? == Compression::None {
            // Every uncompressed record needs at least 7 bytes (length, attributes,
            // timestamp delta, offset delta, key len, value len, header count).
            let payload = self.bytes.len() - RECORD_BATCH_OVERHEAD;
            if i64::from(count) * 7 > payload as i64 {
                return Err(RecordsError::InvalidRecordCount(format!(
                    "{count} records cannot fit in {payload} bytes"
                )));
            }
        }
        Ok(())
    }

    /// Iterates the records. Uncompressed batches are sliced zero-copy;
    /// compressed ones are decompressed in full first (without a size limit:
    /// use [`RecordBatch::records_bounded`] for untrusted input). A codec
    /// error is the single item.
    pub fn records(&self) -> Records {
        Records::new(self)
    }

    /// Like [`RecordBatch::records`], but a compressed batch whose records
    /// inflate past `max_bytes` yields [`RecordsError::DecompressedTooLarge`]
    /// (as the single item) without that much ever being allocated. This is
    /// how the broker validates a produced compressed batch.
    pub fn records_bounded(&self, max_bytes: usize) -> Records {
        Records::new_bounded(self, max_bytes)
    }
}

/// Iterator over the batches in a buffer (a fetch response, a segment file).
///
/// Yields `Ok(batch)` for each whole batch. A short final batch yields one
/// `Err(RecordsError::Truncated { .. })` and ends the iteration; a batch
/// whose length field is impossible yields that error and ends too. Batches
/// are *not* validated: call [`RecordBatch::validate`] as needed.
/// [`BatchIter::position`] gives the byte position of the next batch, which
/// is the valid-prefix length after the iteration stopped.
#[derive(Debug, Clone)]
pub struct BatchIter {
    rest: Bytes,
    position: usize,
    done: bool,
}

/// Iterates the batches in `bytes`; see [`BatchIter`].
pub fn iter_batches(bytes: Bytes) -> BatchIter {
    BatchIter {
        rest: bytes,
        position: 0,
        done: false,
    }
}

impl BatchIter {
    /// Byte position (from the start of the buffer) of the next unread batch.
    pub fn position(&self) -> usize {
        self.position
    }
    /// The bytes not consumed yet.
    pub fn remaining(&self) -> &Bytes {
        &self.rest
    }
}

impl Iterator for BatchIter {
    type Item = Result<RecordBatch, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        let size = match framed_size(&self.rest, self.position) {
            Ok(size) => size,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        if self.rest.len() < size {
            self.done = true;
            return Some(Err(RecordsError::Truncated {
                position: self.position,
                needed: size,
                available: self.rest.len(),
            }));
        }
        let bytes = self.rest.split_to(size);
        self.position += size;
        Some(Ok(RecordBatch { bytes }))
    }
}

fn check_header_len(buf: &[u8]) -> Result<(), RecordsError> {
    if buf.len() < RECORD_BATCH_OVERHEAD {
        return Err(RecordsError::Truncated {
            position: 0,
            needed: RECORD_BATCH_OVERHEAD,
            available: buf.len(),
        });
    }
    Ok(())
}

/// Overwrites `baseOffset` of the batch at the start of `buf`. The CRC does
/// not cover it, so nothing else changes.
pub fn set_base_offset(buf: &mut [u8], offset: i64) -> Result<(), RecordsError> {
    check_header_len(buf)?;
    buf[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&offset.to_be_bytes());
    Ok(())
}

/// Overwrites `partitionLeaderEpoch` of the batch at the start of `buf`
/// (not CRC-covered).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) -> Result<(), RecordsError> {
    check_header_len(buf)?;
    buf[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Stamps LogAppendTime: sets `maxTimestamp = timestamp`, sets attribute
/// bit 3, and recomputes the CRC over the batch (which must be exactly
/// `12 + batchLength` bytes at the start of `buf`).
pub fn set_log_append_time(buf: &mut [u8], timestamp: i64) -> Result<(), RecordsError> {
    check_header_len(buf)?;
    let size = framed_size(buf, 0)?;
    if buf.len() < size {
        return Err(RecordsError::Truncated {
            position: 0,
            needed: size,
            available: buf.len(),
        });
    }
    buf[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&timestamp.to_be_bytes());
    let attributes = be_i16(buf, ATTRIBUTES) as u16 | TIMESTAMP_TYPE_MASK;
    buf[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&buf[CRC_START..size]);
    buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}
