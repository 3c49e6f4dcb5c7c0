//! OffsetFetch (key 9), v0-9: one group (v0-7, all partitions when topics is
//! null from v2) or several groups (v8+). Partitions without a committed
//! offset come back as offset -1 with no error, as in Kafka.
//! With `require_stable` (v7+; librdkafka sets it for isolation.level
//! read_committed) a partition holding a pending transactional offset answers
//! UNSTABLE_OFFSET_COMMIT with offset -1, and the consumer retries (KIP-447).

use klamm_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use klamm_protocol::messages::OffsetFetchRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;
use crate::group::coordinator::FetchedOffsets;

pub async fn handle(ctx: &RequestContext, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let v = ctx.api_version;
    let groups = &ctx.broker.groups;
    let require_stable = v >= 7 && request.require_stable;
    if v >= 8 {
        let mut out = Vec::with_capacity(request.groups.len());
        for g in request.groups {
            let topics = g.topics.map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect::<Vec<_>>());
            let (error, fetched) = match groups.fetch_stable(&g.group_id, topics, require_stable).await {
                Ok(f) => (ErrorCode::NONE, f),
                Err(e) => (e, Vec::new()),
            };
            out.push(OffsetFetchResponseGroup {
                group_id: g.group_id,
                error_code: error.code(),
                topics: fetched
                    .into_iter()
                    .map(|(name, parts)| OffsetFetchResponseTopics {
                        name,
                        partitions: parts
                            .into_iter()
                            .map(|(p, o, e)| {
                                let (offset, epoch, metadata) = split(o);
                                OffsetFetchResponsePartitions {
                                    partition_index: p,
                                    committed_offset: offset,
                                    committed_leader_epoch: epoch,
                                    metadata: Some(metadata),
                                    error_code: e.code(),
                                    ..Default::default()
                                }
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
        }
        return OffsetFetchResponse { groups: out, ..Default::default() };
    }
    // v0-1 carry no null "all topics" form.
    let topics = request.topics.map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect::<Vec<_>>());
    let requested = topics.clone();
    let (error, fetched): (ErrorCode, FetchedOffsets) = match groups.fetch_stable(&request.group_id, topics, require_stable).await {
        Ok(f) => (ErrorCode::NONE, f),
        Err(e) => (e, Vec::new()),
    };
    if error != ErrorCode::NONE && v < 2 {
        // No top-level error before v2: every requested partition carries it.
        let topics = requested
            .unwrap_or_default()
            .into_iter()
            .map(|(name, parts)| OffsetFetchResponseTopic {
                name,
                partitions: parts
                    .into_iter()
                    .map(|p| OffsetFetchResponsePartition {
                        partition_index: p,
                        committed_offset: -1,
                        committed_leader_epoch: -1,
                        metadata: Some(String::new()),
                        error_code: error.code(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        return OffsetFetchResponse { topics, ..Default::default() };
    }
    OffsetFetchResponse {
        throttle_time_ms: 0,
        error_code: error.code(),
        topics: fetched
            .into_iter()
            .map(|(name, parts)| OffsetFetchResponseTopic {
                name,
                partitions: parts
                    .into_iter()
                    .map(|(p, o, e)| {
                        let (offset, epoch, metadata) = split(o);
                        OffsetFetchResponsePartition {
                            partition_index: p,
                            committed_offset: offset,
                            committed_leader_epoch: epoch,
                            metadata: Some(metadata),
                            error_code: e.code(),
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn split(o: Option<crate::group::offsets::CommittedOffset>) -> (i64, i32, String) {
    match o {
        Some(o) => (o.offset, o.leader_epoch, o.metadata),
        None => (-1, -1, String::new()),
    }
}
