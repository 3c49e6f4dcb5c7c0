//! OffsetCommit (key 8), v0-9. Partitions of unknown topics get
//! UNKNOWN_TOPIC_OR_PARTITION; the rest go to the group's coordinator, which
//! answers once the offsets are written to `__consumer_offsets`. As in Kafka
//! (acks=-1 for offset commits), the answer then waits until that partition's
//! high watermark passes the write, so a commit acknowledged to the client
//! survives the coordinator's failover.

use klamm_protocol::messages::offset_commit_response::{OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use klamm_protocol::messages::OffsetCommitRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;
use crate::group::offsets::{CommitRequest, OffsetToCommit};
use crate::group::OFFSETS_TOPIC;

/// Kafka's `offsets.commit.timeout.ms` default: how long a commit waits for replication.
const OFFSETS_COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(5000);

pub async fn handle(ctx: &RequestContext, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let v = ctx.api_version;
    let image = ctx.broker.metadata.image();
    // Response skeleton in request order; `slots` maps each committed offset to its cell.
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::with_capacity(request.topics.len());
    let mut offsets = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in request.topics.iter().enumerate() {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            let known = image.partition(&t.name, p.partition_index).is_some();
            let code = if known { ErrorCode::NONE } else { ErrorCode::UNKNOWN_TOPIC_OR_PARTITION };
            if known {
                offsets.push(OffsetToCommit {
                    topic: t.name.clone(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.clone(),
                });
                slots.push((ti, pi));
            }
            partitions.push(OffsetCommitResponsePartition { partition_index: p.partition_index, error_code: code.code(), ..Default::default() });
        }
        topics.push(OffsetCommitResponseTopic { name: t.name.clone(), partitions, ..Default::default() });
    }
    if !offsets.is_empty() {
        let req = CommitRequest {
            group_id: request.group_id.clone(),
            // v0 has neither generation nor member: a standalone commit.
            generation_id: if v >= 1 { request.generation_id_or_member_epoch } else { -1 },
            member_id: if v >= 1 { request.member_id.clone() } else { String::new() },
            group_instance_id: if v >= 7 { request.group_instance_id.clone() } else { None },
            retention_time_ms: if (2..=4).contains(&v) { request.retention_time_ms } else { -1 },
            offsets,
        };
        let group_id = req.group_id.clone();
        let mut errors = ctx.broker.groups.commit(req).await;
        if errors.iter().any(|e| *e == ErrorCode::NONE) {
            if let Err(code) = wait_for_replication(ctx, &group_id).await {
                for e in errors.iter_mut().filter(|e| **e == ErrorCode::NONE) {
                    *e = code;
                }
            }
        }
        for ((ti, pi), e) in slots.into_iter().zip(errors) {
            topics[ti].partitions[pi].error_code = e.code();
        }
    }
    OffsetCommitResponse { throttle_time_ms: 0, topics, ..Default::default() }
}

/// Waits until the group's `__consumer_offsets` partition has replicated everything written
/// so far (its log end offset now is at or past the commit just appended). Errors are
/// Kafka's mapping for a failed offset store.
pub(crate) async fn wait_for_replication(ctx: &RequestContext, group_id: &str) -> Result<(), ErrorCode> {
    let broker = &ctx.broker;
    let partition = broker.groups.partition_for(group_id);
    let Some(local) = broker.replicas.get(OFFSETS_TOPIC, partition) else {
        return Err(ErrorCode::NOT_COORDINATOR);
    };
    let view = local.view();
    if view.high_watermark >= view.log_end_offset {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + OFFSETS_COMMIT_TIMEOUT;
    local.wait_for_high_watermark(view.log_end_offset, view.leader_epoch, deadline).await.map_err(|e| match e {
        ErrorCode::NOT_LEADER_OR_FOLLOWER => ErrorCode::NOT_COORDINATOR,
        _ => ErrorCode::COORDINATOR_NOT_AVAILABLE,
    })
}
