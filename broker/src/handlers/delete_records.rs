//! DeleteRecords (key 21): moves partitions' log start offsets forward on
//! demand (`kafka-delete-records`, AdminClient.deleteRecords).
//!
//! Kafka's rules: offset -1 means "up to the high watermark"; an offset above
//! the high watermark is OFFSET_OUT_OF_RANGE; an offset at or below the current
//! log start offset changes nothing; a topic whose cleanup.policy does not
//! include `delete` refuses with POLICY_VIOLATION. The answer carries the new
//! low watermark (log start offset). Segments wholly below it are deleted; the
//! rest of the records below it become unreadable at once.

use klamm_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult};
use klamm_protocol::messages::DeleteRecordsRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;

pub async fn handle(ctx: &RequestContext, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let result = match image.partition(&topic.name, p.partition_index) {
                None => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                Some(meta) if meta.leader != broker.node_id => Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
                Some(_) => broker.replicas.lookup(&topic.name, p.partition_index).and_then(|local| local.delete_records(p.offset)),
            };
            let (low_watermark, error_code) = match result {
                Ok(low) => (low, ErrorCode::NONE),
                Err(code) => (-1, code),
            };
            partitions.push(DeleteRecordsPartitionResult {
                partition_index: p.partition_index,
                low_watermark,
                error_code: error_code.code(),
                ..Default::default()
            });
        }
        topics.push(DeleteRecordsTopicResult { name: topic.name, partitions, ..Default::default() });
    }
    DeleteRecordsResponse { throttle_time_ms: 0, topics, ..Default::default() }
}
