//! TxnOffsetCommit (key 28), v0-4: a transactional producer commits a
//! consumer group's offsets inside its transaction (`sendOffsetsToTransaction`).
//! As Kafka's `KafkaApis.handleTxnOffsetCommitRequest`: partitions of unknown
//! topics or partitions get UNKNOWN_TOPIC_OR_PARTITION, the rest go to the
//! group's coordinator, which validates group, generation and member (v3+,
//! KIP-447), writes the offsets as the producer's transactional batch and
//! keeps them pending until the transaction's marker arrives
//! ([`crate::group::txn_offsets`]). The answer waits for the write to be
//! replicated, as for OffsetCommit. v0-1 clients get COORDINATOR_NOT_AVAILABLE
//! instead of COORDINATOR_LOAD_IN_PROGRESS (producers before Kafka 2.0 did not
//! retry the latter, KAFKA-7296).

use klamm_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use klamm_protocol::messages::TxnOffsetCommitRequest;
use klamm_protocol::ErrorCode;

use super::offset_commit::wait_for_replication;
use super::RequestContext;
use crate::group::offsets::{CommitRequest, OffsetToCommit};
use crate::group::txn_offsets::TxnCommitRequest;

pub async fn handle(ctx: &RequestContext, request: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let v = ctx.api_version;
    let image = ctx.broker.metadata.image();
    let group_error = request.group_id.is_empty().then_some(ErrorCode::INVALID_GROUP_ID);
    // Response skeleton in request order; `slots` maps each offset to commit to its cell.
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::with_capacity(request.topics.len());
    let mut offsets = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in request.topics.iter().enumerate() {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            let code = if image.partition(&t.name, p.partition_index).is_none() {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            } else if let Some(e) = group_error {
                e
            } else {
                offsets.push(OffsetToCommit {
                    topic: t.name.clone(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if v >= 2 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.clone(),
                });
                slots.push((ti, pi));
                ErrorCode::NONE
            };
            partitions.push(TxnOffsetCommitResponsePartition { partition_index: p.partition_index, error_code: code.code(), ..Default::default() });
        }
        topics.push(TxnOffsetCommitResponseTopic { name: t.name.clone(), partitions, ..Default::default() });
    }
    if !offsets.is_empty() {
        let req = TxnCommitRequest {
            producer_id: request.producer_id,
            producer_epoch: request.producer_epoch,
            commit: CommitRequest {
                group_id: request.group_id.clone(),
                // Before v3 the producer names no member: the coordinator
                // does not check membership (Kafka's defaults -1, "", null).
                generation_id: if v >= 3 { request.generation_id } else { -1 },
                member_id: if v >= 3 { request.member_id.clone() } else { String::new() },
                group_instance_id: if v >= 3 { request.group_instance_id.clone() } else { None },
                retention_time_ms: -1,
                offsets,
            },
        };
        let mut errors = ctx.broker.groups.txn_commit(req).await;
        if errors.contains(&ErrorCode::NONE) {
            if let Err(code) = wait_for_replication(ctx, &request.group_id).await {
                for e in errors.iter_mut().filter(|e| **e == ErrorCode::NONE) {
                    *e = code;
                }
            }
        }
        for ((ti, pi), e) in slots.into_iter().zip(errors) {
            let e = if v < 2 && e == ErrorCode::COORDINATOR_LOAD_IN_PROGRESS { ErrorCode::COORDINATOR_NOT_AVAILABLE } else { e };
            topics[ti].partitions[pi].error_code = e.code();
        }
    }
    TxnOffsetCommitResponse { throttle_time_ms: 0, topics, ..Default::default() }
}
