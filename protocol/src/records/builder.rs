//! [`RecordBatchBuilder`] (uncompressed or with any codec), and control
//! records (transaction markers).

use bytes::{Bytes, BytesMut};

use super::batch::TimestampType;
use super::compression::{compress, Compression};
use super::record::Record;
use super::varint::{write_varint, write_varlong};
use super::{RecordsError, CRC_START, CURRENT_MAGIC, LOG_OVERHEAD, RECORD_BATCH_OVERHEAD};

#[derive(Debug, Clone)]
struct PendingRecord {
    offset_delta: i32,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Builds one magic-2 batch with a correct CRC, uncompressed unless
/// [`RecordBatchBuilder::compression`] picks a codec.
///
/// Used by tests, internal topics and the admin CLI; producers' batches are
/// never re-encoded by the broker. Records get offset deltas 0, 1, 2, ...
/// unless [`RecordBatchBuilder::push_at`] gives one explicitly (for gaps, as
/// compaction leaves). `baseTimestamp` is the first record's timestamp and
/// `maxTimestamp` the largest (both -1 for an empty batch).
#[derive(Debug, Clone)]
pub struct RecordBatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    timestamp_type: TimestampType,
    last_offset_delta: Option<i32>,
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
            transactional: false,
            control: false,
            timestamp_type: TimestampType::CreateTime,
            last_offset_delta: None,
            compression: Compression::None,
            records: Vec::new(),
        }
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
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }
    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }
    /// Forces `lastOffsetDelta` (e.g. a compacted batch whose tail records
    /// were removed). Must be >= the largest record offset delta.
    pub fn last_offset_delta(mut self, delta: i32) -> Self {
        self.last_offset_delta = Some(delta);
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
        if let Some(last) = self.records.last() {
            assert!(offset_delta > last.offset_delta, "offset deltas must increase");
        }
        assert!(offset_delta >= 0, "offset delta must be non-negative");
        self.records.push(PendingRecord {
            offset_delta,
            timestamp,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(<[u8]>::to_vec)))
                .collect(),
        });
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
        let base_timestamp = self.records.first().map_or(-1, |r| r.timestamp);
        let max_timestamp = self.records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
        let max_delta = self.records.last().map_or(0, |r| r.offset_delta);
        let last_offset_delta = self.last_offset_delta.unwrap_or(max_delta);
        assert!(last_offset_delta >= max_delta, "last offset delta below a record's delta");

        let mut body = Vec::with_capacity(64);
        let mut out = BytesMut::with_capacity(RECORD_BATCH_OVERHEAD + 64 * self.records.len());
        out.resize(RECORD_BATCH_OVERHEAD, 0);
        for r in &self.records {
            body.clear();
            body.push(0); // record attributes
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
        let mut attributes: u16 = self.compression.bits();
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= 0x08;
        }
        if self.transactional {
            attributes |= 0x10;
        }
        if self.control {
            attributes |= 0x20;
        }
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
