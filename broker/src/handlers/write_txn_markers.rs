//! WriteTxnMarkers (key 27, v1): a transaction coordinator asks the leader
//! of each partition of a transaction to append its COMMIT or ABORT marker.
//! Version 1 (flexible) only, as Kafka 4 serves it (v0 was removed in 4.0;
//! v2, KIP-1228's transaction version field, is for transactions v2).
//!
//! Per partition, as Kafka's ReplicaManager answers: UNKNOWN_TOPIC_OR_PARTITION
//! for a partition the metadata does not know, NOT_LEADER_OR_FOLLOWER when
//! another broker leads it, NOT_ENOUGH_REPLICAS when the ISR is below
//! `min.insync.replicas`, INVALID_PRODUCER_EPOCH for a marker older than the
//! producer's epoch, TRANSACTION_COORDINATOR_FENCED for a coordinator epoch
//! older than the last marker's. The marker is appended as one control batch
//! (`Partition::append_txn_marker`) with acks=all semantics: the answer
//! waits until the high watermark passes every marker of the request (or
//! REQUEST_TIMED_OUT after [`MARKER_ACK_TIMEOUT`]).

use std::sync::Arc;
use std::time::Duration;

use klamm_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult, WriteTxnMarkersResponse,
};
use klamm_protocol::messages::WriteTxnMarkersRequest;
use klamm_protocol::records::EndTransactionMarker;
use klamm_protocol::ErrorCode;

use super::RequestContext;
use crate::replica::Partition;

/// How long the answer waits for the followers (Kafka's coordinator sends
/// markers with the request timeout, 30 s by default).
pub const MARKER_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Where an appended marker's answer sits, and what it waits for.
struct PendingMarker {
    at: (usize, usize, usize),
    partition: Arc<Partition>,
    required_offset: i64,
    leader_epoch: i32,
}

pub async fn handle(ctx: &RequestContext, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let now = crate::clock::now_ms();
    let mut pending = Vec::new();
    let mut markers = Vec::with_capacity(request.markers.len());
    for (m, marker) in request.markers.iter().enumerate() {
        let end = EndTransactionMarker { commit: marker.transaction_result, coordinator_epoch: marker.coordinator_epoch };
        let mut topics = Vec::with_capacity(marker.topics.len());
        for (t, topic) in marker.topics.iter().enumerate() {
            let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
            for (p, &index) in topic.partition_indexes.iter().enumerate() {
                let code = match append_one(ctx, &image, &topic.name, index, marker.producer_id, marker.producer_epoch, end, now) {
                    Ok((partition, result)) => {
                        pending.push(PendingMarker { at: (m, t, p), partition, required_offset: result.last_offset + 1, leader_epoch: result.leader_epoch });
                        ErrorCode::NONE
                    }
                    Err(code) => code,
                };
                partitions.push(WritableTxnMarkerPartitionResult { partition_index: index, error_code: code.code(), ..Default::default() });
            }
            topics.push(WritableTxnMarkerTopicResult { name: topic.name.clone(), partitions, ..Default::default() });
        }
        markers.push(WritableTxnMarkerResult { producer_id: marker.producer_id, topics, ..Default::default() });
    }
    let deadline = tokio::time::Instant::now() + MARKER_ACK_TIMEOUT;
    let waits = pending.iter().map(|p| p.partition.wait_for_high_watermark(p.required_offset, p.leader_epoch, deadline));
    let results = super::poll_many::join_all(waits).await;
    for (p, result) in pending.iter().zip(results) {
        let (m, t, i) = p.at;
        match result {
            Err(code) => markers[m].topics[t].partitions[i].error_code = code.code(),
            Ok(()) if p.partition.topic == crate::group::OFFSETS_TOPIC => {
                // The marker is durable: the group coordinator makes the
                // transaction's pending offsets committed (or drops them).
                let marker = &request.markers[m];
                broker.groups.complete_transaction(p.partition.index, marker.producer_id, marker.transaction_result).await;
            }
            Ok(()) => {}
        }
    }
    WriteTxnMarkersResponse { markers, ..Default::default() }
}

#[allow(clippy::too_many_arguments)]
fn append_one(
    ctx: &RequestContext,
    image: &klamm_raft::MetadataImage,
    topic: &str,
    index: i32,
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTransactionMarker,
    now: i64,
) -> Result<(Arc<Partition>, crate::replica::AppendResult), ErrorCode> {
    let local = super::led_partition(&ctx.broker, image, topic, index)?;
    let min_isr = local.config().min_insync_replicas;
    if (local.isr_len() as i64) < min_isr as i64 {
        return Err(ErrorCode::NOT_ENOUGH_REPLICAS);
    }
    let result = local.append_txn_marker(producer_id, producer_epoch, marker, now).map_err(|e| {
        tracing::debug!(topic, partition = index, producer_id, error = e.code.name(), message = e.message.as_deref().unwrap_or(""), "transaction marker refused");
        e.code
    })?;
    Ok((local, result))
}

/// The answer giving every partition of every marker in `request` the same
/// `code` (a refused request: the authorizer; fake leaders in tests).
pub fn answer_every_partition(request: &WriteTxnMarkersRequest, code: ErrorCode) -> WriteTxnMarkersResponse {
    let markers = request
        .markers
        .iter()
        .map(|m| WritableTxnMarkerResult {
            producer_id: m.producer_id,
            topics: m
                .topics
                .iter()
                .map(|t| WritableTxnMarkerTopicResult {
                    name: t.name.clone(),
                    partitions: t.partition_indexes.iter().map(|p| WritableTxnMarkerPartitionResult { partition_index: *p, error_code: code.code(), ..Default::default() }).collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    WriteTxnMarkersResponse { markers, ..Default::default() }
}
