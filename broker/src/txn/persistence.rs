//! Transactions as records of `__transaction_state`, in Kafka's format
//! (AK `transaction-coordinator/src/main/resources/common/message/
//! TransactionLogKey.json` and `TransactionLogValue.json`, written by
//! `TransactionLog.scala`), each prefixed with its int16 version:
//!
//! - key v0: `transactional_id string`;
//! - value v0 (what Kafka writes without transactions v2, and what Klamm
//!   writes): `producer_id int64, producer_epoch int16, transaction_timeout_ms
//!   int32, transaction_status int8, transaction_partitions nullable
//!   [topic string, partition_ids [int32]], last_update_timestamp_ms int64,
//!   start_timestamp_ms int64`; the partitions are null in state Empty;
//! - value v1 is the same fields in the flexible encoding (compact strings and
//!   arrays, tagged fields: previous/next producer id, client transaction
//!   version, which Klamm reads and ignores);
//! - a null value is a tombstone (an expired transactional id).
//!
//! The log is reached through [`TxnLog`]: reads as the group coordinator's
//! [`OffsetsLog`], appends that complete only once durable (acks=-1).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use klamm_protocol::records::iter_batches;
use klamm_protocol::ErrorCode;

use super::state::{Tp, Txn, TxnRecord, TxnState};
use crate::group::persistence::{OffsetsLog, Reader};

pub type AppendFuture = Pin<Box<dyn Future<Output = Result<i64, ErrorCode>> + Send>>;

/// The `__transaction_state` partition a coordinator shard owns.
pub trait TxnLog: Send + Sync {
    /// Appends one batch; the future completes once the high watermark passed it.
    fn append(&self, batch: Bytes) -> AppendFuture;
    /// The log for the replay on load.
    fn reader(&self) -> &dyn OffsetsLog;
}

/// A [`TxnLog`] over any [`OffsetsLog`] whose append is durable when it returns
/// (tests: `MemLog`).
pub struct SyncLog(pub Arc<dyn OffsetsLog>);

impl TxnLog for SyncLog {
    fn append(&self, batch: Bytes) -> AppendFuture {
        let result = self.0.append(batch);
        Box::pin(async move { result })
    }
    fn reader(&self) -> &dyn OffsetsLog {
        &*self.0
    }
}

pub fn key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b.freeze()
}

/// Value v0 of `rec`.
pub fn value(rec: &TxnRecord) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(0);
    b.put_i64(rec.producer_id);
    b.put_i16(rec.producer_epoch);
    b.put_i32(rec.timeout_ms);
    b.put_i8(rec.state.id());
    if rec.state == TxnState::Empty {
        b.put_i32(-1);
    } else {
        let by_topic = group_by_topic(&rec.partitions);
        b.put_i32(by_topic.len() as i32);
        for (topic, partitions) in by_topic {
            put_str(&mut b, topic);
            b.put_i32(partitions.len() as i32);
            for p in partitions {
                b.put_i32(p);
            }
        }
    }
    b.put_i64(rec.last_update_ms);
    b.put_i64(rec.start_ms);
    b.freeze()
}

pub fn group_by_topic(partitions: &BTreeSet<Tp>) -> BTreeMap<&str, Vec<i32>> {
    let mut out: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        out.entry(tp.topic.as_str()).or_default().push(tp.partition);
    }
    out
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

/// The flexible (compact) fields of value v1, on the group coordinator's
/// bounds-checked [`Reader`].
impl Reader<'_> {
    fn i8(&mut self) -> Option<i8> {
        Some(self.take(1)?[0] as i8)
    }
    fn uvarint(&mut self) -> Option<u32> {
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            v |= ((b & 0x7f) as u32) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn string(&mut self, compact: bool) -> Option<String> {
        let len = if compact { (self.uvarint()? as usize).checked_sub(1)? } else { usize::try_from(self.i16()?).ok()? };
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    /// Array length; None inside Some for a null array.
    fn array_len(&mut self, compact: bool) -> Option<Option<usize>> {
        if compact {
            let n = self.uvarint()? as usize;
            return Some(n.checked_sub(1));
        }
        let n = self.i32()?;
        Some(usize::try_from(n).ok())
    }
    fn skip_tagged_fields(&mut self) -> Option<()> {
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let len = self.uvarint()? as usize;
            self.take(len)?;
        }
        Some(())
    }
}

/// The transactional id of a key; None for another key version or a damaged key.
pub fn decode_key(key: &[u8]) -> Option<String> {
    let mut r = Reader::new(key);
    if r.i16()? != 0 {
        return None;
    }
    r.string(false)
}

/// A value v0 or v1; None when it does not decode.
pub fn decode_value(value: &[u8]) -> Option<TxnRecord> {
    let mut r = Reader::new(value);
    let version = r.i16()?;
    let compact = match version {
        0 => false,
        1 => true,
        _ => return None,
    };
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let state = TxnState::from_id(r.i8()?)?;
    let mut partitions = BTreeSet::new();
    if let Some(n) = r.array_len(compact)? {
        for _ in 0..n {
            let topic = r.string(compact)?;
            let count = r.array_len(compact)?.unwrap_or(0);
            for _ in 0..count {
                partitions.insert(Tp::new(topic.clone(), r.i32()?));
            }
            if compact {
                r.skip_tagged_fields()?;
            }
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    if compact {
        r.skip_tagged_fields()?;
    }
    if state == TxnState::Empty {
        partitions.clear();
    }
    Some(TxnRecord { producer_id, producer_epoch, timeout_ms, state, partitions, last_update_ms, start_ms })
}

/// Replays a whole `__transaction_state` partition (Kafka's
/// `loadTransactionMetadata`): the last record of each transactional id wins,
/// a tombstone removes it. Records that do not decode are skipped with a warning.
pub fn load(log: &dyn OffsetsLog) -> Result<BTreeMap<String, Txn>, ErrorCode> {
    let mut out: BTreeMap<String, Txn> = BTreeMap::new();
    let mut pos = log.start_offset();
    let end = log.end_offset();
    while pos < end {
        let bytes = log.read(pos, 1 << 20)?;
        let before = pos;
        for batch in iter_batches(bytes) {
            let Ok(batch) = batch else { break };
            let next = batch.next_offset();
            if next <= pos {
                continue;
            }
            let base = batch.base_offset();
            for rec in batch.records().filter_map(Result::ok) {
                if batch.is_control() || rec.offset(base) < pos {
                    continue;
                }
                let Some(id) = rec.key.as_deref().and_then(decode_key) else { continue };
                match rec.value.as_deref() {
                    None => {
                        out.remove(&id);
                    }
                    Some(v) => match decode_value(v) {
                        Some(r) => {
                            out.insert(id.clone(), Txn::loaded(id, r));
                        }
                        None => tracing::warn!(transactional_id = %id, "undecodable __transaction_state value skipped"),
                    },
                }
            }
            pos = next;
        }
        if pos == before {
            break;
        }
    }
    Ok(out)
}
