//! Individual records inside a batch and the [`Records`] iterator.

use bytes::Bytes;

use super::batch::RecordBatch;
use super::compression::{decompress_bounded, Compression};
use super::varint::{read_varint, read_varlong};
use super::RecordsError;

/// The uncompressed records section of `batch`: sliced zero-copy when the
/// batch is uncompressed, decompressed with an output limit of `max_bytes`
/// otherwise.
///
/// A compressed batch declaring zero records with an *empty* section has no
/// records (Kafka's own readers never look at the section of an empty
/// batch); every codec's framing is non-empty, so any other empty section is
/// reported as corrupt by the codec.
pub(crate) fn records_section(batch: &RecordBatch, max_bytes: usize) -> Result<Bytes, RecordsError> {
    let payload = batch.records_payload();
    match batch.compression()? {
        Compression::None => Ok(payload),
        _ if payload.is_empty() && batch.records_count() == 0 => Ok(payload),
        codec => decompress_bounded(codec, payload, max_bytes),
    }
}

/// One record, with key, value and header values sliced zero-copy from the
/// batch bytes (header keys are copied into `String`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Record attributes byte (unused by Kafka; 0).
    pub attributes: i8,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// `None` for a null key.
    pub key: Option<Bytes>,
    /// `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Header key and (nullable) value pairs, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl Record {
    /// Absolute offset given the batch's base offset.
    pub fn offset(&self, base_offset: i64) -> i64 {
        base_offset.wrapping_add(i64::from(self.offset_delta))
    }
    /// Absolute timestamp given the batch's base timestamp (CreateTime).
    pub fn timestamp(&self, base_timestamp: i64) -> i64 {
        base_timestamp.wrapping_add(self.timestamp_delta)
    }
}

/// Iterator over the records of one batch; see [`RecordBatch::records`].
///
/// Checks as it goes that each record's length fits, that its fields fill
/// exactly that length, that offset deltas strictly increase within
/// `0..=lastOffsetDelta`, and that the record count matches the header with
/// no trailing bytes. The first error ends the iteration.
#[derive(Debug, Clone)]
pub struct Records {
    payload: Bytes,
    pos: usize,
    index: i32,
    count: i32,
    last_offset_delta: i32,
    previous_delta: Option<i32>,
    pending_error: Option<RecordsError>,
    done: bool,
}

impl Records {
    pub(crate) fn new(batch: &RecordBatch) -> Records {
        Records::new_bounded(batch, usize::MAX)
    }

    /// Like [`Records::new`], decompressing with an output limit of
    /// `max_bytes` (ignored for uncompressed batches).
    pub(crate) fn new_bounded(batch: &RecordBatch, max_bytes: usize) -> Records {
        let (payload, pending_error) = match records_section(batch, max_bytes) {
            Ok(payload) => (payload, None),
            Err(e) => (Bytes::new(), Some(e)),
        };
        Records::from_section(payload, batch, pending_error)
    }

    /// Iterates an already decompressed records section of `batch`.
    pub(crate) fn from_section(
        payload: Bytes,
        batch: &RecordBatch,
        pending_error: Option<RecordsError>,
    ) -> Records {
        Records {
            payload,
            pos: 0,
            index: 0,
            count: batch.records_count(),
            last_offset_delta: batch.last_offset_delta(),
            previous_delta: None,
            pending_error,
            done: false,
        }
    }

    fn corrupt(&self, reason: &'static str) -> RecordsError {
        RecordsError::CorruptRecord {
            index: self.index,
            reason,
        }
    }

    fn next_record(&mut self) -> Result<Record, RecordsError> {
        let buf = &self.payload[..];
        let mut pos = self.pos;
        let length = read_varint(buf, &mut pos).map_err(|_| self.corrupt("bad length varint"))?;
        if length < 0 {
            return Err(self.corrupt("negative record length"));
        }
        let end = pos
            .checked_add(length as usize)
            .filter(|&end| end <= buf.len())
            .ok_or_else(|| self.corrupt("record length exceeds batch"))?;
        let body = &buf[..end];
        let attributes = *body.get(pos).ok_or_else(|| self.corrupt("missing attributes"))? as i8;
        pos += 1;
        let timestamp_delta =
            read_varlong(body, &mut pos).map_err(|_| self.corrupt("bad timestamp delta"))?;
        let offset_delta =
            read_varint(body, &mut pos).map_err(|_| self.corrupt("bad offset delta"))?;
        let key = self.read_nullable(body, &mut pos, "bad key")?;
        let value = self.read_nullable(body, &mut pos, "bad value")?;
        let header_count =
            read_varint(body, &mut pos).map_err(|_| self.corrupt("bad header count"))?;
        if header_count < 0 {
            return Err(self.corrupt("negative header count"));
        }
        // Each header takes at least two bytes; refuse absurd counts before allocating.
        if header_count as usize > (end - pos) / 2 {
            return Err(self.corrupt("header count exceeds record"));
        }
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let key_len =
                read_varint(body, &mut pos).map_err(|_| self.corrupt("bad header key length"))?;
            if key_len < 0 || pos + key_len as usize > end {
                return Err(self.corrupt("bad header key length"));
            }
            let key = std::str::from_utf8(&body[pos..pos + key_len as usize])
                .map_err(|_| self.corrupt("header key is not UTF-8"))?
                .to_owned();
            pos += key_len as usize;
            let value = self.read_nullable(body, &mut pos, "bad header value")?;
            headers.push((key, value));
        }
        if pos != end {
            return Err(self.corrupt("record length does not match its fields"));
        }
        if offset_delta < 0 || offset_delta > self.last_offset_delta {
            return Err(self.corrupt("offset delta outside the batch"));
        }
        if let Some(previous) = self.previous_delta {
            if offset_delta <= previous {
                return Err(self.corrupt("offset deltas not increasing"));
            }
        }
        self.previous_delta = Some(offset_delta);
        self.pos = end;
        Ok(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    }

    fn read_nullable(
        &self,
        body: &[u8],
        pos: &mut usize,
        reason: &'static str,
    ) -> Result<Option<Bytes>, RecordsError> {
        let len = read_varint(body, pos).map_err(|_| self.corrupt(reason))?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || *pos + len as usize > body.len() {
            return Err(self.corrupt(reason));
        }
        let slice = self.payload.slice(*pos..*pos + len as usize);
        *pos += len as usize;
        Ok(Some(slice))
    }
}

impl Iterator for Records {
    type Item = Result<Record, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            return Some(Err(e));
        }
        if self.index >= self.count.max(0) {
            self.done = true;
            if self.pos != self.payload.len() {
                return Some(Err(RecordsError::InvalidRecordCount(format!(
                    "{} trailing bytes after {} records",
                    self.payload.len() - self.pos,
                    self.count
                ))));
            }
            return None;
        }
        if self.pos >= self.payload.len() {
            self.done = true;
            return Some(Err(RecordsError::InvalidRecordCount(format!(
                "header says {} records, batch holds {}",
                self.count, self.index
            ))));
        }
        match self.next_record() {
            Ok(record) => {
                self.index += 1;
                Some(Ok(record))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
