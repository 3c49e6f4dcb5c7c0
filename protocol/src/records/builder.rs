//! [`RecordBatchBuilder`], the one record-batch encoder (new batches,
//! uncompressed or with any codec, and re-encoded subsets of existing ones),
//! and control records (transaction markers).

use bytes::{Bytes, BytesMut};

use super::batch::{RecordBatch, TimestampType};
use super::compression::{compress, Compression};
use super::record::Record;
use super::varint::{write_varint, write_varlong};
use super::{RecordsError, CRC_START, CURRENT_MAGIC, LOG_OVERHEAD, RECORD_BATCH_OVERHEAD};

#[derive(Debug, Clone)]
struct PendingRecord {
    offset_delta: i32,
    /// Absolute; stored as a delta from the batch's base timestamp.
    timestamp: i64,
    attributes: i8,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

const CODEC_MASK: u16 = 0x07;
const TIMESTAMP_TYPE_MASK: u16 = 0x08;
const TRANSACTIONAL_MASK: u16 = 0x10;
const CONTROL_MASK: u16 = 0x20;
const DELETE_HORIZON_MASK: u16 = 0x40;

/// Builds one magic-2 batch with a correct CRC, uncompressed unless
/// [`RecordBatchBuilder::compression`] picks a codec. This is the project's
/// one record-batch encoder.
///
/// Used by tests, internal topics, the admin CLI and the log cleaner;
/// producers' batches are never re-encoded by the broker. Records get offset
/// deltas 0, 1, 2, ... unless [`RecordBatchBuilder::push_at`] gives one
/// explicitly (for gaps, as compaction leaves). `baseTimestamp` is the first
/// record's timestamp and `maxTimestamp` the largest (both -1 for an empty
/// batch) unless set explicitly.
///
/// [`RecordBatchBuilder::like`] starts from an existing batch, for
/// re-encoding a subset of its records (compaction: Kafka's
/// `MemoryRecords.filterTo`).
#[derive(Debug, Clone)]
pub struct RecordBatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// Attribute bits other than the codec (timestamp type, transactional,
    /// control, delete horizon, and any bit a source batch carried).
    attributes: u16,
    last_offset_delta: Option<i32>,
    base_timestamp: Option<i64>,
    max_timestamp: Option<i64>,
    compression: Compression,
    records: Vec<PendingRecord>,
}

impl RecordBatchBuilder {
    /// A non-idempotent, non-transactional CreateTime batch at `base_offset`.
    pub fn new(base_offset: i64) -> RecordBatchBuilder {
        RecordBatchBuilder {
            base_offset,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
            last_offset_delta: None,
            base_timestamp: None,
            max_timestamp: None,
            compression: Compression::None,
            records: Vec::new(),
        }
    }

    /// A builder for a batch replacing `orig` with some of its records: the
    /// same base offset, `lastOffsetDelta`, leader epoch, producer id, epoch
    /// and base sequence, and the same attributes (codec included) except
    /// the delete-horizon bit, which [`RecordBatchBuilder::delete_horizon`]
    /// sets. A LogAppendTime batch keeps its `maxTimestamp` (the append
    /// time). No records yet: add them with
    /// [`RecordBatchBuilder::push_record`]. Fails for an unassigned codec.
    pub fn like(orig: &RecordBatch) -> Result<RecordBatchBuilder, RecordsError> {
        let attributes = orig.attributes();
        let compression = attributes.compression()?;
        let max_timestamp = (attributes.timestamp_type() == TimestampType::LogAppendTime)
            .then(|| orig.max_timestamp());
        Ok(RecordBatchBuilder {
            base_offset: orig.base_offset(),
            partition_leader_epoch: orig.partition_leader_epoch(),
            producer_id: orig.producer_id(),
            producer_epoch: orig.producer_epoch(),
            base_sequence: orig.base_sequence(),
            attributes: attributes.0 & !(CODEC_MASK | DELETE_HORIZON_MASK),
            last_offset_delta: Some(orig.last_offset_delta()),
            base_timestamp: None,
            max_timestamp,
            compression,
            records: Vec::new(),
        })
    }

    /// Compresses the records section with `codec` (attributes bits 0-2).
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }

    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }
    /// Sets producer id, epoch and base sequence (idempotent producer).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }
    pub fn transactional(self, transactional: bool) -> Self {
        self.flag(TRANSACTIONAL_MASK, transactional)
    }
    pub fn control(self, control: bool) -> Self {
        self.flag(CONTROL_MASK, control)
    }
    pub fn timestamp_type(self, timestamp_type: TimestampType) -> Self {
        self.flag(TIMESTAMP_TYPE_MASK, timestamp_type == TimestampType::LogAppendTime)
    }
    /// KIP-534: sets attribute bit 6 and makes `baseTimestamp` the delete
    /// horizon; record timestamps stay what they are (their deltas are
    /// taken from the horizon).
    pub fn delete_horizon(self, horizon_ms: i64) -> Self {
        self.flag(DELETE_HORIZON_MASK, true).base_timestamp(horizon_ms)
    }
    /// Forces `baseTimestamp` (default: the first record's timestamp).
    pub fn base_timestamp(mut self, timestamp: i64) -> Self {
        self.base_timestamp = Some(timestamp);
        self
    }
    /// Forces `maxTimestamp` (default: the largest record timestamp).
    pub fn max_timestamp(mut self, timestamp: i64) -> Self {
        self.max_timestamp = Some(timestamp);
        self
    }
    /// Forces `lastOffsetDelta` (e.g. a compacted batch whose tail records
    /// were removed). Must be >= the largest record offset delta.
    pub fn last_offset_delta(mut self, delta: i32) -> Self {
        self.last_offset_delta = Some(delta);
        self
    }

    fn flag(mut self, mask: u16, on: bool) -> Self {
        if on {
            self.attributes |= mask;
        } else {
            self.attributes &= !mask;
        }
        self
    }

    /// Adds a record without headers (consuming form, for chaining).
    pub fn record(mut self, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        self.push(timestamp, key, value, &[]);
        self
    }

    /// Adds a record with headers (consuming form, for chaining).
    pub fn record_with_headers(
        mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Self {
        self.push(timestamp, key, value, headers);
        self
    }

    /// Adds a record at the next offset delta.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> &mut Self {
        let delta = self.records.last().map_or(0, |r| r.offset_delta + 1);
        self.push_at(delta, timestamp, key, value, headers)
    }

    /// Adds a record at an explicit offset delta (must exceed the previous one).
    pub fn push_at(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> &mut Self {
        self.push_pending(PendingRecord {
            offset_delta,
            timestamp,
            attributes: 0,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(Bytes::copy_from_slice)))
                .collect(),
        })
    }

    /// Adds a record decoded from another batch, keeping its offset delta,
    /// attributes, key, value and headers (moved, not copied); `timestamp`
    /// is its absolute timestamp ([`Record::timestamp`] with the source
    /// batch's base timestamp). Offset deltas must increase, as
    /// [`super::Records`] guarantees for the records of one batch.
    pub fn push_record(&mut self, timestamp: i64, record: Record) -> &mut Self {
        self.push_pending(PendingRecord {
            offset_delta: record.offset_delta,
            timestamp,
            attributes: record.attributes,
            key: record.key,
            value: record.value,
            headers: record.headers,
        })
    }

    fn push_pending(&mut self, record: PendingRecord) -> &mut Self {
        if let Some(last) = self.records.last() {
            assert!(record.offset_delta > last.offset_delta, "offset deltas must increase");
        }
        assert!(record.offset_delta >= 0, "offset delta must be non-negative");
        self.records.push(record);
        self
    }

    /// Number of records added so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch.
    pub fn build(&self) -> Bytes {
        let base_timestamp = self
            .base_timestamp
            .unwrap_or_else(|| self.records.first().map_or(-1, |r| r.timestamp));
        let max_timestamp = self
            .max_timestamp
            .unwrap_or_else(|| self.records.iter().map(|r| r.timestamp).max().unwrap_or(-1));
        let max_delta = self.records.last().map_or(0, |r| r.offset_delta);
        let last_offset_delta = self.last_offset_delta.unwrap_or(max_delta);
        assert!(last_offset_delta >= max_delta, "last offset delta below a record's delta");

        let mut body = Vec::with_capacity(64);
        let mut out = BytesMut::with_capacity(RECORD_BATCH_OVERHEAD + 64 * self.records.len());
        out.resize(RECORD_BATCH_OVERHEAD, 0);
        for r in &self.records {
            body.clear();
            body.push(r.attributes as u8);
            write_varlong(&mut body, r.timestamp.wrapping_sub(base_timestamp));
            write_varint(&mut body, r.offset_delta);
            write_nullable(&mut body, r.key.as_deref());
            write_nullable(&mut body, r.value.as_deref());
            write_varint(&mut body, len_i32(r.headers.len()));
            for (k, v) in &r.headers {
                write_varint(&mut body, len_i32(k.len()));
                body.extend_from_slice(k.as_bytes());
                write_nullable(&mut body, v.as_deref());
            }
            let mut len_prefix = Vec::with_capacity(5);
            write_varint(&mut len_prefix, len_i32(body.len()));
            out.extend_from_slice(&len_prefix);
            out.extend_from_slice(&body);
        }

        if self.compression != Compression::None {
            let compressed = compress(self.compression, &out[RECORD_BATCH_OVERHEAD..]);
            out.truncate(RECORD_BATCH_OVERHEAD);
            out.extend_from_slice(&compressed);
        }
        let attributes = (self.attributes & !CODEC_MASK) | self.compression.bits();
        let batch_length = len_i32(out.len() - LOG_OVERHEAD);
        let h = &mut out[..];
        h[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        h[8..12].copy_from_slice(&batch_length.to_be_bytes());
        h[12..16].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        h[16] = CURRENT_MAGIC as u8;
        h[21..23].copy_from_slice(&attributes.to_be_bytes());
        h[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
        h[27..35].copy_from_slice(&base_timestamp.to_be_bytes());
        h[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
        h[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        h[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        h[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        h[57..61].copy_from_slice(&len_i32(self.records.len()).to_be_bytes());
        let crc = crc32c::crc32c(&h[CRC_START..]);
        h[17..21].copy_from_slice(&crc.to_be_bytes());
        out.freeze()
    }
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).expect("record batch component larger than i32::MAX")
}

fn write_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, len_i32(b.len()));
            out.extend_from_slice(b);
        }
    }
}

/// Control record types (the `type` field of a control record key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    Abort,
    Commit,
    LeaderChange,
    SnapshotHeader,
    SnapshotFooter,
    KraftVersion,
    KraftVoters,
    /// A type this build does not know.
    Unknown(i16),
}

impl ControlRecordType {
    pub fn code(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::LeaderChange => 2,
            ControlRecordType::SnapshotHeader => 3,
            ControlRecordType::SnapshotFooter => 4,
            ControlRecordType::KraftVersion => 5,
            ControlRecordType::KraftVoters => 6,
            ControlRecordType::Unknown(code) => code,
        }
    }
    pub fn from_code(code: i16) -> ControlRecordType {
        match code {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            2 => ControlRecordType::LeaderChange,
            3 => ControlRecordType::SnapshotHeader,
            4 => ControlRecordType::SnapshotFooter,
            5 => ControlRecordType::KraftVersion,
            6 => ControlRecordType::KraftVoters,
            other => ControlRecordType::Unknown(other),
        }
    }
    /// Parses a control record key: `version i16, type i16`.
    pub fn parse_key(key: &[u8]) -> Result<ControlRecordType, RecordsError> {
        if key.len() < 4 {
            return Err(RecordsError::CorruptRecord {
                index: 0,
                reason: "control record key shorter than 4 bytes",
            });
        }
        Ok(ControlRecordType::from_code(i16::from_be_bytes([key[2], key[3]])))
    }
    /// Encodes a control record key (version 0).
    pub fn key_bytes(self) -> [u8; 4] {
        let code = self.code().to_be_bytes();
        [0, 0, code[0], code[1]]
    }
}

/// A COMMIT or ABORT marker: the single record of a transactional control batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTransactionMarker {
    /// `true` for COMMIT, `false` for ABORT.
    pub commit: bool,
    pub coordinator_epoch: i32,
}

impl EndTransactionMarker {
    /// Reads a marker from a control record; `None` if the record is another
    /// control type.
    pub fn from_record(record: &Record) -> Result<Option<EndTransactionMarker>, RecordsError> {
        let key = record.key.as_deref().unwrap_or(&[]);
        let commit = match ControlRecordType::parse_key(key)? {
            ControlRecordType::Commit => true,
            ControlRecordType::Abort => false,
            _ => return Ok(None),
        };
        let value = record.value.as_deref().unwrap_or(&[]);
        if value.len() < 6 {
            return Err(RecordsError::CorruptRecord {
                index: 0,
                reason: "transaction marker value shorter than 6 bytes",
            });
        }
        let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
        Ok(Some(EndTransactionMarker {
            commit,
            coordinator_epoch,
        }))
    }

    /// Encodes the marker value: `version i16 (0), coordinator_epoch i32`.
    pub fn value_bytes(self) -> [u8; 6] {
        let e = self.coordinator_epoch.to_be_bytes();
        [0, 0, e[0], e[1], e[2], e[3]]
    }
}

/// Builds a transactional control batch holding one COMMIT/ABORT marker.
pub fn build_end_txn_marker(
    base_offset: i64,
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTransactionMarker,
    timestamp: i64,
) -> Bytes {
    let kind = if marker.commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    RecordBatchBuilder::new(base_offset)
        .producer(producer_id, producer_epoch, -1)
        .transactional(true)
        .control(true)
        .record(timestamp, Some(&kind.key_bytes()), Some(&marker.value_bytes()))
        .build()
}
