//! ListPartitionReassignments (key 46, v0): the reassignments still running, from the image.
//!
//! As Kafka's controller answers (`ReplicationControlManager.listPartitionReassignments`):
//! null topics = every partition being reassigned; named topics list only their named
//! partitions that are being reassigned; unknown topics and partitions are silently left out,
//! as are topics with nothing to list. Each entry carries `replicas` (the target followed by the
//! replicas being removed), `adding_replicas` and `removing_replicas`.

use klamm_protocol::messages::list_partition_reassignments_response::ListPartitionReassignmentsResponse;
use klamm_protocol::messages::ListPartitionReassignmentsRequest;

use super::RequestContext;
use crate::controller::reassignment::ongoing;

pub fn handle(ctx: &RequestContext, request: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let image = ctx.broker.metadata.image();
    let topics = match request.topics {
        None => image.topics.values().filter_map(|t| ongoing(t, None)).collect(),
        Some(topics) => topics
            .iter()
            .filter_map(|requested| image.topic(&requested.name).and_then(|t| ongoing(t, Some(&requested.partition_indexes))))
            .collect(),
    };
    ListPartitionReassignmentsResponse { throttle_time_ms: 0, error_code: 0, error_message: None, topics, ..Default::default() }
}
