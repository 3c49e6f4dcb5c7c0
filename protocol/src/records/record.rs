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

    /// Parses and checks the record at `pos` without copying or slicing
    /// anything, and moves past it.
    fn parse_next(&mut self) -> Result<Layout, RecordsError> {
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
        let key = self.nullable_range(body, &mut pos, "bad key")?;
        let value = self.nullable_range(body, &mut pos, "bad value")?;
        let header_count =
            read_varint(body, &mut pos).map_err(|_| self.corrupt("bad header count"))?;
        if header_count < 0 {
            return Err(self.corrupt("negative header count"));
        }
        // Each header takes at least two bytes; refuse absurd counts before anyone allocates.
        if header_count as usize > (end - pos) / 2 {
            return Err(self.corrupt("header count exceeds record"));
        }
        let headers_at = pos;
        for _ in 0..header_count {
            let (key_at, key_end) = self.header_key_range(body, &mut pos)?;
            std::str::from_utf8(&body[key_at..key_end]).map_err(|_| self.corrupt("header key is not UTF-8"))?;
            self.nullable_range(body, &mut pos, "bad header value")?;
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
        Ok(Layout {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers_at,
            header_count,
        })
    }

    fn next_record(&mut self) -> Result<Record, RecordsError> {
        let layout = self.parse_next()?;
        let slice = |range: Option<(usize, usize)>| range.map(|(from, to)| self.payload.slice(from..to));
        let mut headers = Vec::with_capacity(layout.header_count as usize);
        let body = &self.payload[..];
        let mut pos = layout.headers_at;
        for _ in 0..layout.header_count {
            // Checked by parse_next; these reads cannot fail.
            let (key_at, key_end) = self.header_key_range(body, &mut pos)?;
            let key = String::from_utf8_lossy(&body[key_at..key_end]).into_owned();
            let value = self.nullable_range(body, &mut pos, "bad header value")?;
            headers.push((key, slice(value)));
        }
        Ok(Record {
            attributes: layout.attributes,
            timestamp_delta: layout.timestamp_delta,
            offset_delta: layout.offset_delta,
            key: slice(layout.key),
            value: slice(layout.value),
            headers,
        })
    }

    /// The (start, end) of a header key at `pos`, moving past it.
    fn header_key_range(&self, body: &[u8], pos: &mut usize) -> Result<(usize, usize), RecordsError> {
        let key_len = read_varint(body, pos).map_err(|_| self.corrupt("bad header key length"))?;
        if key_len < 0 || *pos + key_len as usize > body.len() {
            return Err(self.corrupt("bad header key length"));
        }
        let at = *pos;
        *pos += key_len as usize;
        Ok((at, *pos))
    }

    /// The (start, end) of nullable bytes at `pos` (None for null), moving past them.
    fn nullable_range(
        &self,
        body: &[u8],
        pos: &mut usize,
        reason: &'static str,
    ) -> Result<Option<(usize, usize)>, RecordsError> {
        let len = read_varint(body, pos).map_err(|_| self.corrupt(reason))?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || *pos + len as usize > body.len() {
            return Err(self.corrupt(reason));
        }
        let at = *pos;
        *pos += len as usize;
        Ok(Some((at, *pos)))
    }

    /// One step of the iteration: the count, trailing-bytes and first-error
    /// rules around `parse`.
    fn step<T>(&mut self, parse: impl FnOnce(&mut Records) -> Result<T, RecordsError>) -> Option<Result<T, RecordsError>> {
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
        match parse(self) {
            Ok(item) => {
                self.index += 1;
                Some(Ok(item))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// The same walk with the same checks, yielding only what validation
    /// needs of each record: no slices, no allocation (the broker walks every
    /// produced record once, so this is on the produce hot path).
    pub fn summaries(self) -> RecordSummaries {
        RecordSummaries { records: self }
    }
}

/// Where one checked record's fields lie in the records section.
struct Layout {
    attributes: i8,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
    headers_at: usize,
    header_count: i32,
}

/// What [`Records::summaries`] yields per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSummary {
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// False for a null key.
    pub has_key: bool,
}

impl RecordSummary {
    /// Absolute timestamp given the batch's base timestamp (CreateTime).
    pub fn timestamp(&self, base_timestamp: i64) -> i64 {
        base_timestamp.wrapping_add(self.timestamp_delta)
    }
}

/// Iterator of [`RecordSummary`]; see [`Records::summaries`].
#[derive(Debug, Clone)]
pub struct RecordSummaries {
    records: Records,
}

impl Iterator for RecordSummaries {
    type Item = Result<RecordSummary, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.records.step(|r| {
            r.parse_next().map(|l| RecordSummary {
                timestamp_delta: l.timestamp_delta,
                offset_delta: l.offset_delta,
                has_key: l.key.is_some(),
            })
        })
    }
}

impl Iterator for Records {
    type Item = Result<Record, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(Records::next_record)
    }
}
