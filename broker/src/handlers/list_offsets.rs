//! ListOffsets (key 2): earliest, latest, by timestamp, max timestamp.

use klamm_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse};
use klamm_protocol::messages::ListOffsetsRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

pub fn handle(ctx: &RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let read_committed = request.isolation_level == 1;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse { partition_index: p.partition_index, timestamp: -1, offset: -1, leader_epoch: -1, ..Default::default() };
                    let code = lookup(ctx, &image, &t.name, &p, read_committed, &mut r);
                    r.error_code = code.code();
                    r
                })
                .collect();
            ListOffsetsTopicResponse { name: t.name, partitions, ..Default::default() }
        })
        .collect();
    ListOffsetsResponse { throttle_time_ms: 0, topics, ..Default::default() }
}

fn lookup(
    ctx: &RequestContext,
    image: &klamm_raft::MetadataImage,
    topic: &str,
    p: &klamm_protocol::messages::list_offsets_request::ListOffsetsPartition,
    read_committed: bool,
    out: &mut ListOffsetsPartitionResponse,
) -> ErrorCode {
    let broker = &ctx.broker;
    let Some(meta) = image.partition(topic, p.partition_index) else {
        return ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
    };
    if meta.leader != broker.node_id {
        return ErrorCode::NOT_LEADER_OR_FOLLOWER;
    }
    let Some(local) = broker.replicas.get(topic, p.partition_index) else {
        return ErrorCode::NOT_LEADER_OR_FOLLOWER;
    };
    let view = local.view();
    if p.current_leader_epoch >= 0 {
        if p.current_leader_epoch < view.leader_epoch {
            return ErrorCode::FENCED_LEADER_EPOCH;
        }
        if p.current_leader_epoch > view.leader_epoch {
            return ErrorCode::UNKNOWN_LEADER_EPOCH;
        }
    }
    out.leader_epoch = view.leader_epoch;
    let visible_end = if read_committed { view.last_stable_offset } else { view.high_watermark };
    match p.timestamp {
        LATEST => {
            out.offset = visible_end;
        }
        EARLIEST | EARLIEST_LOCAL => {
            out.offset = view.log_start_offset;
        }
        LATEST_TIERED => {
            // No tiered storage: nothing is tiered.
            out.offset = -1;
        }
        MAX_TIMESTAMP if ctx.api_version >= 7 => match local.reader().max_timestamp_offset().map(|found| found.filter(|(offset, _)| *offset < visible_end)) {
            Ok(Some((offset, ts))) => {
                out.offset = offset;
                out.timestamp = ts;
            }
            Ok(None) => {}
            Err(_) => return ErrorCode::KAFKA_STORAGE_ERROR,
        },
        ts if ts >= 0 => match local.reader().lookup_by_timestamp(ts).map(|found| found.filter(|(offset, _)| *offset < visible_end)) {
            Ok(Some((offset, found_ts))) => {
                out.offset = offset;
                out.timestamp = found_ts;
            }
            Ok(None) => {}
            Err(_) => return ErrorCode::KAFKA_STORAGE_ERROR,
        },
        _ => return ErrorCode::INVALID_REQUEST,
    }
    ErrorCode::NONE
}
