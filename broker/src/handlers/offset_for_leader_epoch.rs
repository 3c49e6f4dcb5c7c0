//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch on this partition's leader.
//!
//! Consumers use it after a leader change to check that their position still exists on the new
//! leader (KIP-320: librdkafka >= 2.1 and Java validate a position that carries a leader epoch);
//! followers use it to find where their log diverged (KIP-101). The answer for epoch `e` is the
//! largest epoch `<= e` this log knows and the offset where it ended: the start offset of the next
//! larger epoch, or the log end offset for the latest one (`Partition::end_offset_for_epoch`).
//!
//! Per partition, in Kafka's order (`Partition.lastOffsetForLeaderEpoch`, `getLocalLog`):
//! unknown topic or partition → UNKNOWN_TOPIC_OR_PARTITION; not hosted here →
//! NOT_LEADER_OR_FOLLOWER; `current_leader_epoch` older than the partition's → FENCED_LEADER_EPOCH,
//! newer → UNKNOWN_LEADER_EPOCH (-1 skips the check); not the leader → NOT_LEADER_OR_FOLLOWER.
//!
//! `replica_id` (v3+: -2 debug, -1 consumer, >= 0 a follower) does not change the answer: since
//! KIP-392 Kafka always passes `fetchOnlyFromLeader = true` here, so only the leader answers,
//! for followers and consumers alike; the field only selected the authorization check (cluster
//! action vs. topic describe), and Klamm has no authorization yet.

use klamm_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use klamm_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};
use klamm_protocol::messages::OffsetForLeaderEpochRequest;
use klamm_protocol::ErrorCode;
use klamm_raft::MetadataImage;

use super::RequestContext;
use crate::replica::PartitionView;
use crate::server::Broker;

/// Kafka's `UNDEFINED_EPOCH` / `UNDEFINED_EPOCH_OFFSET`.
const UNDEFINED: (i32, i64) = (-1, -1);

pub fn handle(ctx: &RequestContext, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| answer(broker, &image, &t.topic, p)).collect();
            OffsetForLeaderTopicResult { topic: t.topic, partitions, ..Default::default() }
        })
        .collect();
    OffsetForLeaderEpochResponse { throttle_time_ms: 0, topics, ..Default::default() }
}

fn answer(broker: &Broker, image: &MetadataImage, topic: &str, p: &OffsetForLeaderPartition) -> EpochEndOffset {
    let mut out = EpochEndOffset { partition: p.partition, leader_epoch: UNDEFINED.0, end_offset: UNDEFINED.1, ..Default::default() };
    match lookup(broker, image, topic, p) {
        Ok((epoch, offset)) => {
            out.leader_epoch = epoch;
            out.end_offset = offset;
        }
        Err(code) => out.error_code = code.code(),
    }
    out
}

fn lookup(broker: &Broker, image: &MetadataImage, topic: &str, p: &OffsetForLeaderPartition) -> Result<(i32, i64), ErrorCode> {
    let meta = image.partition(topic, p.partition).ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
    let local = broker.replicas.lookup(topic, p.partition)?;
    let view = local.view();
    check_current_leader_epoch(p.current_leader_epoch, view.leader_epoch)?;
    if meta.leader != broker.node_id {
        return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
    }
    // None: the log was closed under us (partition being deleted or moved away).
    let found = local.end_offset_for_epoch(p.leader_epoch).ok_or(ErrorCode::NOT_LEADER_OR_FOLLOWER)?;
    Ok(fill_current_epoch(found, p.leader_epoch, &view))
}

/// Kafka's `Partition.checkCurrentLeaderEpoch`: -1 (or any negative) means "no check".
fn check_current_leader_epoch(requested: i32, current: i32) -> Result<(), ErrorCode> {
    if requested < 0 || requested == current {
        Ok(())
    } else if requested < current {
        Err(ErrorCode::FENCED_LEADER_EPOCH)
    } else {
        Err(ErrorCode::UNKNOWN_LEADER_EPOCH)
    }
}

/// A leader records the start of its epoch in the epoch cache when it is elected, before any
/// record of that epoch is written (`Partition::apply_metadata`, as Kafka does), so the cache
/// normally answers every epoch up to the current one. Should that record be missing (writing
/// the cache failed), an epoch between the cache's latest entry and the current leader epoch
/// still ends at the log end offset (nothing was written in it here) instead of being unknown:
/// a consumer whose position carries the current epoch (ListOffsets returns it) would take
/// "no such epoch" for log truncation after the next leader change and reset its position, as
/// librdkafka does. (Kafka's cache would name the largest epoch with an entry, with the same
/// end offset; the offset is what clients compare.)
fn fill_current_epoch(found: (i32, i64), requested: i32, view: &PartitionView) -> (i32, i64) {
    if found == UNDEFINED && requested >= 0 && requested <= view.leader_epoch {
        (requested, view.log_end_offset)
    } else {
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_leader_epoch_fencing() {
        assert_eq!(check_current_leader_epoch(-1, 5), Ok(()));
        assert_eq!(check_current_leader_epoch(5, 5), Ok(()));
        assert_eq!(check_current_leader_epoch(4, 5), Err(ErrorCode::FENCED_LEADER_EPOCH));
        assert_eq!(check_current_leader_epoch(6, 5), Err(ErrorCode::UNKNOWN_LEADER_EPOCH));
    }

    #[test]
    fn an_epoch_without_records_ends_at_the_log_end() {
        let view = PartitionView { log_end_offset: 42, leader_epoch: 3, ..Default::default() };
        assert_eq!(fill_current_epoch((1, 17), 1, &view), (1, 17), "a known epoch keeps its answer");
        assert_eq!(fill_current_epoch(UNDEFINED, 3, &view), (3, 42));
        assert_eq!(fill_current_epoch(UNDEFINED, 2, &view), (2, 42));
        assert_eq!(fill_current_epoch(UNDEFINED, 4, &view), UNDEFINED, "a future epoch stays unknown");
        assert_eq!(fill_current_epoch(UNDEFINED, -1, &view), UNDEFINED);
    }
}
