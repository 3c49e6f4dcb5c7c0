//! AlterPartitionReassignments (key 45, v0): start, replace or cancel partition reassignments
//! (`kafka-reassign-partitions.sh`, AdminClient `alterPartitionReassignments`).
//!
//! Each partition becomes one `ReassignPartition` command (see [`crate::controller::reassignment`] and the
//! raft crate for what it does); the answer per partition is Kafka's: NONE once the
//! reassignment is *recorded* (its data movement goes on in the background and shows in
//! ListPartitionReassignments until it completes), UNKNOWN_TOPIC_OR_PARTITION,
//! INVALID_REPLICA_ASSIGNMENT (empty target, a broker twice, an unregistered broker, or a
//! cancel that would need an unclean election), NO_REASSIGNMENT_IN_PROGRESS (a cancel with
//! nothing to cancel). A command computed from an image that changed before it committed is
//! recomputed (a few times); `timeout_ms` bounds the wait for the commits.
//!
//! v1 (`allow_replication_factor_change`, Kafka 4.1+) is not served: the codec's message
//! definitions predate it, and v0 clients may change the replication factor freely.

use klamm_protocol::messages::alter_partition_reassignments_response::{
    AlterPartitionReassignmentsResponse, ReassignablePartitionResponse, ReassignableTopicResponse,
};
use klamm_protocol::messages::AlterPartitionReassignmentsRequest;
use klamm_protocol::ErrorCode;
use klamm_raft::MetadataCommand;
use tokio::time::{Duration, Instant};
use tracing::info;

use super::{propose_partition_change, RequestContext};


pub async fn handle(ctx: &RequestContext, request: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
    let deadline = Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let (code, message) = reassign(ctx, &topic.name, p.partition_index, p.replicas.as_deref(), deadline).await;
            partitions.push(ReassignablePartitionResponse {
                partition_index: p.partition_index,
                error_code: code.code(),
                error_message: message,
                ..Default::default()
            });
        }
        responses.push(ReassignableTopicResponse { name: topic.name, partitions, ..Default::default() });
    }
    AlterPartitionReassignmentsResponse { throttle_time_ms: 0, error_code: 0, error_message: None, responses, ..Default::default() }
}

async fn reassign(
    ctx: &RequestContext,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    deadline: Instant,
) -> (ErrorCode, Option<String>) {
    let build = |image: &klamm_raft::MetadataImage| {
        let t = image.topic(topic).ok_or_else(|| (ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, format!("Unable to find a topic named {topic}.")))?;
        let p = t
            .partitions
            .get(&partition)
            .ok_or_else(|| (ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, format!("Unable to find partition {topic}:{partition}.")))?;
        Ok(MetadataCommand::ReassignPartition {
            topic_id: t.topic_id,
            partition,
            expected_partition_epoch: p.partition_epoch,
            target: target.map(<[i32]>::to_vec),
        })
    };
    let timeout = "the reassignment was not recorded within the timeout";
    match propose_partition_change(ctx, topic, partition, "reassignment", timeout, deadline, build).await {
        Ok(_) => {
            info!(topic, partition, ?target, "partition reassignment altered");
            (ErrorCode::NONE, None)
        }
        Err(error) => error,
    }
}
