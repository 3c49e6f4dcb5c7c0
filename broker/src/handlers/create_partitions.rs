//! CreatePartitions (key 37): grow a topic's partition count.

use klamm_protocol::messages::create_partitions_response::{CreatePartitionsResponse, CreatePartitionsTopicResult};
use klamm_protocol::messages::CreatePartitionsRequest;
use klamm_protocol::ErrorCode;
use klamm_raft::{MetadataCommand, NewPartition};

use super::RequestContext;
use crate::controller::placement::{place_replicas, validate_assignment};

pub async fn handle(ctx: &RequestContext, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        // An empty list is treated like null (automatic placement): some
        // codecs default the nullable array to empty rather than null.
        let assignment = t.assignments.filter(|a| !a.is_empty()).map(|a| a.into_iter().map(|x| x.broker_ids).collect());
        let outcome = grow(ctx, &t.name, t.count, assignment, request.validate_only).await;
        let (code, message) = match outcome {
            Ok(()) => (ErrorCode::NONE, None),
            Err((c, m)) => (c, Some(m)),
        };
        results.push(CreatePartitionsTopicResult { name: t.name, error_code: code.code(), error_message: message, ..Default::default() });
    }
    CreatePartitionsResponse { throttle_time_ms: 0, results, ..Default::default() }
}

async fn grow(
    ctx: &RequestContext,
    name: &str,
    count: i32,
    assignment: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<(), (ErrorCode, String)> {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let topic = image
        .topic(name)
        .ok_or_else(|| (ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, format!("The topic '{name}' does not exist.")))?;
    let current = topic.partitions.len() as i32;
    if count < current {
        return Err((ErrorCode::INVALID_PARTITIONS, format!("Topic currently has {current} partitions, which is higher than the requested {count}.")));
    }
    if count == current {
        return Err((ErrorCode::INVALID_PARTITIONS, format!("Topic already has {current} partitions.")));
    }
    let rf = topic.partitions.values().next().map(|p| p.replicas.len() as i16).unwrap_or(1);
    let added = count - current;
    let new_partitions: Vec<NewPartition> = match assignment {
        Some(a) => {
            if a.len() as i32 != added {
                return Err((ErrorCode::INVALID_REPLICA_ASSIGNMENT, format!("Increasing the number of partitions by {added} but {} assignments provided.", a.len())));
            }
            validate_assignment(&image, &a)?;
            a.into_iter().enumerate().map(|(i, r)| NewPartition { partition: current + i as i32, replicas: r }).collect()
        }
        None => place_replicas(&image, current, added, rf)?,
    };
    if validate_only {
        return Ok(());
    }
    let topic_id = topic.topic_id;
    broker.apply_metadata(MetadataCommand::CreatePartitions { topic_id, expected_count: current, new_partitions }).await
}
