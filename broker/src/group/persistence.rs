//! Group metadata and committed offsets as records of `__consumer_offsets`,
//! in Kafka's formats (AK `group-coordinator/src/main/resources/common/message/
//! OffsetCommitKey.json`, `OffsetCommitValue.json`, `GroupMetadataKey.json`,
//! `GroupMetadataValue.json`), classic (non-flexible) encoding:
//!
//! - key version 0/1: offset commit key `group string, topic string, partition int32`
//!   (Kafka writes version 1);
//! - key version 2: group metadata key `group string`;
//! - offset commit value v3: `offset int64, leader_epoch int32, metadata string, commit_timestamp int64`,
//!   or v1 (`offset, metadata, commit_timestamp, expire_timestamp`) for an
//!   OffsetCommit v2-4 with an explicit retention time, as Kafka does (v0-v3 are read);
//! - group metadata value v3: `protocol_type string, generation int32, protocol nullable string,
//!   leader nullable string, current_state_timestamp int64, members [member_id string,
//!   group_instance_id nullable string, client_id string, client_host string, rebalance_timeout int32,
//!   session_timeout int32, subscription bytes, assignment bytes]` (v0-v2 are read too);
//! - a null value is a tombstone (deleted group / deleted offset);
//! - TxnOffsetCommit writes offset commit records in a transactional batch of
//!   the producer (producer id and epoch, base sequence 0 as Kafka's
//!   coordinator writes them); the transaction's COMMIT/ABORT control batch
//!   later decides them ([`super::txn_offsets`]).
//!
//! The log itself is behind [`OffsetsLog`] so the coordinator can be tested
//! over [`MemLog`].

use crate::topic_partition::TopicPartition;
use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};
use klamm_protocol::records::{iter_batches, EndTransactionMarker, RecordBatch, RecordBatchBuilder};
use klamm_protocol::ErrorCode;

use super::offsets::CommittedOffset;
use super::state::{Group, GroupState, Member};
use super::txn_offsets::{self, PendingOffsets};

/// The single-partition log a coordinator shard writes and replays.
pub trait OffsetsLog: Send + Sync {
    /// Appends one record batch; returns its base offset once it is durable
    /// as acks=-1 requires, or the Kafka error of the failed append.
    fn append(&self, batch: Bytes) -> Result<i64, ErrorCode>;
    /// First offset of the log.
    fn start_offset(&self) -> i64;
    /// Offset after the last committed record.
    fn end_offset(&self) -> i64;
    /// Whole batches from `offset` (up to about `max_bytes`, at least one);
    /// empty at the end.
    fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, ErrorCode>;
}

/// An in-memory log (tests).
#[derive(Default)]
pub struct MemLog {
    pub batches: Mutex<Vec<(i64, Bytes)>>,
    /// When set, appends fail with this error.
    pub fail_with: Mutex<Option<ErrorCode>>,
}

impl OffsetsLog for MemLog {
    fn append(&self, batch: Bytes) -> Result<i64, ErrorCode> {
        if let Some(e) = *self.fail_with.lock().unwrap() {
            return Err(e);
        }
        let mut batches = self.batches.lock().unwrap();
        let base = batches.last().map(|(o, b)| o + count_records(b)).unwrap_or(0);
        let mut buf = BytesMut::from(&batch[..]);
        klamm_protocol::records::set_base_offset(&mut buf, base).map_err(|_| ErrorCode::CORRUPT_MESSAGE)?;
        batches.push((base, buf.freeze()));
        Ok(base)
    }
    fn start_offset(&self) -> i64 {
        0
    }
    fn end_offset(&self) -> i64 {
        let batches = self.batches.lock().unwrap();
        batches.last().map(|(o, b)| o + count_records(b)).unwrap_or(0)
    }
    fn read(&self, offset: i64, _max_bytes: usize) -> Result<Bytes, ErrorCode> {
        let batches = self.batches.lock().unwrap();
        let mut out = BytesMut::new();
        for (base, b) in batches.iter() {
            if base + count_records(b) > offset {
                out.extend_from_slice(b);
            }
        }
        Ok(out.freeze())
    }
}

fn count_records(batch: &Bytes) -> i64 {
    iter_batches(batch.clone()).filter_map(Result::ok).map(|b| b.last_offset_delta() as i64 + 1).sum()
}

// ----- primitive encoding (classic) -----

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}
fn put_opt_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}
fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

/// A bounds-checked reader of classic-encoded fields (also used by `txn::persistence`).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    pub(crate) fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    pub(crate) fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        Some(Some(String::from_utf8(self.take(len as usize)?.to_vec()).ok()?))
    }
    fn str(&mut self) -> Option<String> {
        self.opt_str()?
    }
    fn bytes(&mut self) -> Option<Bytes> {
        let len = self.i32()?;
        if len < 0 {
            return Some(Bytes::new());
        }
        Some(Bytes::copy_from_slice(self.take(len as usize)?))
    }
}

// ----- keys and values -----

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

pub fn offset_value(o: &CommittedOffset) -> Bytes {
    let mut b = BytesMut::new();
    if let Some(expire) = o.expire_timestamp_ms {
        // Kafka keeps value v1 for offsets with an explicit retention.
        b.put_i16(1);
        b.put_i64(o.offset);
        put_str(&mut b, &o.metadata);
        b.put_i64(o.commit_timestamp_ms);
        b.put_i64(expire);
        return b.freeze();
    }
    b.put_i16(3);
    b.put_i64(o.offset);
    b.put_i32(o.leader_epoch);
    put_str(&mut b, &o.metadata);
    b.put_i64(o.commit_timestamp_ms);
    b.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(2);
    put_str(&mut b, group);
    b.freeze()
}

/// Group metadata value v3 of `group` with `assignment` (member id -> bytes).
pub fn group_value(group: &Group, assignment: &[(String, Bytes)]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_str(&mut b, group.protocol_type.as_deref().unwrap_or(""));
    b.put_i32(group.generation_id);
    put_opt_str(&mut b, group.protocol_name.as_deref());
    put_opt_str(&mut b, group.leader_id.as_deref());
    b.put_i64(group.state_timestamp_ms);
    let protocol = group.protocol_name.clone().unwrap_or_default();
    b.put_i32(group.members.len() as i32);
    for m in &group.members {
        put_str(&mut b, &m.member_id);
        put_opt_str(&mut b, m.group_instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        let subscription = m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, v)| v.clone()).unwrap_or_default();
        put_bytes(&mut b, &subscription);
        let a = assignment.iter().find(|(id, _)| *id == m.member_id).map(|(_, a)| a.clone()).unwrap_or_default();
        put_bytes(&mut b, &a);
    }
    b.freeze()
}

/// A decoded group metadata value.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// One decoded record of `__consumer_offsets`.
#[derive(Clone, Debug, PartialEq)]
pub enum LogRecord {
    Offset { group: String, topic: String, partition: i32, value: Option<CommittedOffset> },
    Group { group: String, value: Option<GroupValue> },
}

pub fn decode_offset_value(v: &[u8]) -> Option<CommittedOffset> {
    let mut r = Reader::new(v);
    let version = r.i16()?;
    match version {
        0 => Some(CommittedOffset {
            offset: r.i64()?,
            leader_epoch: -1,
            metadata: r.str()?,
            commit_timestamp_ms: r.i64()?,
            expire_timestamp_ms: None,
            record_offset: -1,
        }),
        1 => {
            let offset = r.i64()?;
            let metadata = r.str()?;
            let commit = r.i64()?;
            let expire = r.i64()?;
            Some(CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata,
                commit_timestamp_ms: commit,
                expire_timestamp_ms: (expire >= 0).then_some(expire),
                record_offset: -1,
            })
        }
        2 => Some(CommittedOffset {
            offset: r.i64()?,
            leader_epoch: -1,
            metadata: r.str()?,
            commit_timestamp_ms: r.i64()?,
            expire_timestamp_ms: None,
            record_offset: -1,
        }),
        3 => Some(CommittedOffset {
            offset: r.i64()?,
            leader_epoch: r.i32()?,
            metadata: r.str()?,
            commit_timestamp_ms: r.i64()?,
            expire_timestamp_ms: None,
            record_offset: -1,
        }),
        _ => None,
    }
}

pub fn decode_group_value(v: &[u8]) -> Option<GroupValue> {
    let mut r = Reader::new(v);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.opt_str()?;
    let leader = r.opt_str()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let n = r.i32()?;
    let mut members = Vec::new();
    for _ in 0..n.max(0) {
        let member_id = r.str()?;
        let group_instance_id = if version >= 3 { r.opt_str()? } else { None };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout: if rebalance_timeout < 0 { session_timeout } else { rebalance_timeout },
            session_timeout,
            subscription,
            assignment,
        });
    }
    Some(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp, members })
}

pub fn decode_record(key: &[u8], value: Option<&[u8]>) -> Option<LogRecord> {
    let mut r = Reader::new(key);
    match r.i16()? {
        0 | 1 => {
            let group = r.str()?;
            let topic = r.str()?;
            let partition = r.i32()?;
            let value = match value {
                Some(v) => Some(decode_offset_value(v)?),
                None => None,
            };
            Some(LogRecord::Offset { group, topic, partition, value })
        }
        2 => {
            let group = r.str()?;
            let value = match value {
                Some(v) => Some(decode_group_value(v)?),
                None => None,
            };
            Some(LogRecord::Group { group, value })
        }
        _ => None,
    }
}

/// One batch with the given (key, value) records, timestamps `now_ms`.
pub fn build_batch(records: &[(Bytes, Option<Bytes>)], now_ms: i64) -> Bytes {
    let mut b = RecordBatchBuilder::new(0);
    for (k, v) in records {
        b.push(now_ms, Some(k), v.as_deref(), &[]);
    }
    b.build()
}

/// One transactional batch of `producer_id` with the given records. Kafka's
/// coordinator writes these with base sequence 0; the partition checks only
/// the producer epoch of coordinator writes, not sequences.
pub fn build_txn_batch(records: &[(Bytes, Option<Bytes>)], now_ms: i64, producer_id: i64, producer_epoch: i16) -> Bytes {
    let mut b = RecordBatchBuilder::new(0).producer(producer_id, producer_epoch, 0).transactional(true);
    for (k, v) in records {
        b.push(now_ms, Some(k), v.as_deref(), &[]);
    }
    b.build()
}

/// The COMMIT (true) or ABORT (false) decision of a transactional control
/// batch, None for other control batches or an unreadable marker.
fn end_marker(batch: &RecordBatch) -> Option<bool> {
    if !batch.is_transactional() {
        return None;
    }
    let record = batch.records().next()?.ok()?;
    EndTransactionMarker::from_record(&record).ok().flatten().map(|m| m.commit)
}

/// What loading an offsets partition yields.
#[derive(Debug, Default)]
pub struct Loaded {
    pub groups: BTreeMap<String, Group>,
    /// Transactional offsets whose marker was not in the log yet.
    pub pending: PendingOffsets,
}

/// Replays a whole offsets partition into groups (Kafka's `loadGroupsAndOffsets`).
/// Groups with members come back Stable (their sessions restart at `now_ms`),
/// the others Empty; offsets without a group record make an Empty group.
/// Transactional offset commits stay pending until their producer's marker,
/// which commits or drops them (Kafka's `replayEndTransactionMarker`).
pub fn load(log: &dyn OffsetsLog, now_ms: i64) -> Result<Loaded, ErrorCode> {
    let mut offsets: BTreeMap<String, BTreeMap<TopicPartition, CommittedOffset>> = BTreeMap::new();
    let mut pending = PendingOffsets::new();
    let mut groups: BTreeMap<String, GroupValue> = BTreeMap::new();
    let mut removed_groups: std::collections::BTreeSet<String> = Default::default();
    let mut pos = log.start_offset();
    let end = log.end_offset();
    while pos < end {
        let bytes = log.read(pos, 1 << 20)?;
        if bytes.is_empty() {
            break;
        }
        let mut advanced = false;
        for batch in iter_batches(bytes) {
            let Ok(batch) = batch else { break };
            let next = batch.next_offset();
            if next <= pos {
                continue;
            }
            if batch.is_control() {
                if let Some(commit) = end_marker(&batch) {
                    for (group, tp, v) in txn_offsets::take_completed(&mut pending, batch.producer_id(), commit) {
                        txn_offsets::materialize(offsets.entry(group).or_default(), tp, v);
                    }
                }
            } else {
                let base = batch.base_offset();
                let txn_producer = (batch.is_transactional() && batch.producer_id() >= 0).then(|| batch.producer_id());
                for rec in batch.records() {
                    let Ok(rec) = rec else { break };
                    if rec.offset(base) < pos {
                        continue;
                    }
                    let Some(key) = rec.key.as_deref() else { continue };
                    match decode_record(key, rec.value.as_deref()) {
                        Some(LogRecord::Offset { group, topic, partition, value: Some(mut v) }) => {
                            v.record_offset = rec.offset(base);
                            let into = match txn_producer {
                                Some(pid) => pending.entry(pid).or_default().entry(group).or_default(),
                                None => offsets.entry(group).or_default(),
                            };
                            into.insert(TopicPartition::new(topic, partition), v);
                        }
                        Some(LogRecord::Offset { group, topic, partition, value: None }) => {
                            txn_offsets::drop_pending(&mut pending, &group, &topic, partition);
                            if let Some(o) = offsets.get_mut(&group) {
                                o.remove(&TopicPartition::new(topic, partition));
                            }
                        }
                        Some(LogRecord::Group { group, value: Some(v) }) => {
                            removed_groups.remove(&group);
                            groups.insert(group, v);
                        }
                        Some(LogRecord::Group { group, value: None }) => {
                            groups.remove(&group);
                            removed_groups.insert(group);
                        }
                        None => {}
                    }
                }
            }
            pos = next;
            advanced = true;
        }
        if !advanced {
            break;
        }
    }
    let mut out = BTreeMap::new();
    for (id, v) in groups {
        let mut g = Group::new(&id, now_ms);
        g.protocol_type = (!v.protocol_type.is_empty()).then(|| v.protocol_type.clone());
        g.generation_id = v.generation;
        g.protocol_name = v.protocol.clone();
        g.leader_id = v.leader.clone();
        g.state_timestamp_ms = if v.current_state_timestamp >= 0 { v.current_state_timestamp } else { now_ms };
        let protocol = v.protocol.clone().unwrap_or_default();
        for m in v.members {
            if let Some(i) = &m.group_instance_id {
                g.static_members.insert(i.clone(), m.member_id.clone());
            }
            g.members.push(Member {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout,
                rebalance_timeout_ms: m.rebalance_timeout,
                protocol_type: v.protocol_type.clone(),
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                last_heartbeat_ms: now_ms,
            });
        }
        if g.members.is_empty() {
            g.state = GroupState::Empty;
            g.leader_id = None;
        } else {
            g.state = GroupState::Stable;
            if g.leader_id.as_deref().map_or(true, |l| !g.has(l)) {
                g.leader_id = g.members.first().map(|m| m.member_id.clone());
            }
        }
        g.offsets = offsets.remove(&id).unwrap_or_default();
        out.insert(id, g);
    }
    for (id, o) in offsets {
        if o.is_empty() {
            continue;
        }
        let mut g = Group::new(&id, now_ms);
        g.offsets = o;
        out.insert(id, g);
    }
    // A group known only from open transactions exists as a simple group, as
    // Kafka creates one when it replays a transactional offset commit.
    for groups in pending.values() {
        for id in groups.keys() {
            out.entry(id.clone()).or_insert_with(|| Group::new(id, now_ms));
        }
    }
    Ok(Loaded { groups: out, pending })
}
