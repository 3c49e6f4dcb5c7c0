//! ElectLeaders (key 43, v0-2): preferred (0) and unclean (1) leader elections on request
//! (`kafka-leader-election.sh`, AdminClient `electLeaders`).
//!
//! The election rules live in [`crate::controller::leader_balance`]; this handler picks the partitions,
//! proposes one `ChangePartition` per election and reports per partition as Kafka's controller
//! does: NONE, ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE,
//! ELIGIBLE_LEADERS_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION. `topic_partitions` null means
//! every partition of every topic, and then partitions that already have the desired leader are
//! left out of the answer (Kafka's `ReplicationControlManager.electLeaders`). Results keep the
//! request's order.
//!
//! A command computed from an image that changed before it committed is rejected with a stale
//! partition epoch; the election is then recomputed from the newer image (a few times). Waiting
//! for the commits is bounded by `timeout_ms`: a partition not settled by then gets
//! REQUEST_TIMED_OUT (its election may still commit, as with Kafka's timeouts).

use klamm_protocol::messages::elect_leaders_response::{ElectLeadersResponse, PartitionResult, ReplicaElectionResult};
use klamm_protocol::messages::ElectLeadersRequest;
use klamm_protocol::ErrorCode;
use tokio::time::{Duration, Instant};
use tracing::info;

use super::{propose_partition_change, RequestContext};
use crate::controller::leader_balance::{elect, ElectionType};

pub async fn handle(ctx: &RequestContext, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let image = ctx.broker.metadata.image();
    let all = request.topic_partitions.is_none();
    let targets: Vec<(String, Vec<i32>)> = match request.topic_partitions {
        Some(topics) => topics.into_iter().map(|t| (t.topic, t.partitions)).collect(),
        None => image.topics.values().map(|t| (t.name.clone(), t.partitions.keys().copied().collect())).collect(),
    };
    // v0 has no election type field: it always meant preferred.
    let kind = if ctx.api_version == 0 { Some(ElectionType::Preferred) } else { ElectionType::from_wire(request.election_type) };
    let Some(kind) = kind else {
        let message = format!("unknown election type {}", request.election_type);
        let results = targets
            .into_iter()
            .map(|(topic, partitions)| ReplicaElectionResult {
                topic,
                partition_result: partitions.into_iter().map(|p| result(p, ErrorCode::INVALID_REQUEST, Some(message.clone()))).collect(),
                ..Default::default()
            })
            .collect();
        return ElectLeadersResponse { error_code: ErrorCode::INVALID_REQUEST.code(), replica_election_results: results, ..Default::default() };
    };

    let deadline = Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut results = Vec::with_capacity(targets.len());
    for (topic, partitions) in targets {
        let mut partition_result = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let (code, message) = run_election(ctx, &topic, partition, kind, deadline).await;
            if all && code == ErrorCode::ELECTION_NOT_NEEDED {
                continue;
            }
            partition_result.push(result(partition, code, message));
        }
        results.push(ReplicaElectionResult { topic, partition_result, ..Default::default() });
    }
    ElectLeadersResponse { throttle_time_ms: 0, error_code: 0, replica_election_results: results, ..Default::default() }
}

fn result(partition_id: i32, code: ErrorCode, error_message: Option<String>) -> PartitionResult {
    PartitionResult { partition_id, error_code: code.code(), error_message, ..Default::default() }
}

/// Elects `topic`-`partition` and waits for the change to be applied here.
async fn run_election(
    ctx: &RequestContext,
    topic: &str,
    partition: i32,
    kind: ElectionType,
    deadline: Instant,
) -> (ErrorCode, Option<String>) {
    let build = |image: &klamm_raft::MetadataImage| elect(image, topic, partition, kind);
    let timeout = "the election did not complete within the timeout";
    match propose_partition_change(ctx, topic, partition, "election", timeout, deadline, build).await {
        Ok(info) => {
            info!(topic, partition, ?kind, leader_epoch = info.leader_epoch, "leader elected on request");
            (ErrorCode::NONE, None)
        }
        Err(error) => error,
    }
}
