//! OffsetDelete (key 47), v0: deletes committed offsets of partitions the
//! group does not consume (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use klamm_protocol::messages::offset_delete_response::{OffsetDeleteResponse, OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use klamm_protocol::messages::OffsetDeleteRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;

pub async fn handle(ctx: &RequestContext, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let image = ctx.broker.metadata.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut wanted = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in request.topics.iter().enumerate() {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            let known = image.partition(&t.name, p.partition_index).is_some();
            if known {
                wanted.push(crate::topic_partition::TopicPartition::new(t.name.clone(), p.partition_index));
                slots.push((ti, pi));
            }
            let code = if known { ErrorCode::NONE } else { ErrorCode::UNKNOWN_TOPIC_OR_PARTITION };
            partitions.push(OffsetDeleteResponsePartition { partition_index: p.partition_index, error_code: code.code(), ..Default::default() });
        }
        topics.push(OffsetDeleteResponseTopic { name: t.name.clone(), partitions, ..Default::default() });
    }
    let groups = &ctx.broker.groups;
    let result = if wanted.is_empty() {
        // Still report group-level problems (unknown group, not coordinator).
        match groups.delete_offsets(&request.group_id, Vec::new()).await {
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    } else {
        groups.delete_offsets(&request.group_id, wanted).await
    };
    match result {
        Ok(errors) => {
            for ((ti, pi), e) in slots.into_iter().zip(errors) {
                topics[ti].partitions[pi].error_code = e.code();
            }
            OffsetDeleteResponse { error_code: 0, throttle_time_ms: 0, topics, ..Default::default() }
        }
        Err(e) => OffsetDeleteResponse { error_code: e.code(), throttle_time_ms: 0, topics: Vec::new(), ..Default::default() },
    }
}
