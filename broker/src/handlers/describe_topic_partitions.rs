//! DescribeTopicPartitions (key 75, v0, KIP-966): paginated topic and partition descriptions,
//! what Java's AdminClient `describeTopics` uses from Kafka 3.8 on (it falls back to Metadata
//! when a broker does not list the API) and `kafka-topics.sh --describe` with it.
//!
//! Kafka's rules (`DescribeTopicPartitionsRequestHandler`, `KRaftMetadataCache.
//! getTopicMetadataForDescribeTopicResponse`):
//! - no topics named = every topic; named topics are deduplicated; either way the answer is
//!   sorted by name and starts at the cursor's topic (at its partition index), skipping names
//!   before it;
//! - at most `min(response_partition_limit, 2000)` partitions are returned; when the limit
//!   cuts a topic, `next_cursor` names the first partition left out; when it is reached right
//!   at a topic boundary, `next_cursor` names the next topic at partition 0;
//! - a named topic that does not exist gets UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION
//!   for an invalid name); when listing every topic, one deleted meanwhile is just skipped;
//! - a cursor whose topic is not among the named topics, or with a negative partition index, is
//!   an invalid request: every named topic gets INVALID_REQUEST;
//! - partitions report leader (-1 and LEADER_NOT_AVAILABLE without one), leader epoch, replicas,
//!   ISR, offline replicas (broker fenced or unregistered) and empty eligible-leader lists
//!   (Klamm has no ELR, like Kafka with `eligible.leader.replicas.enable=false`).

use std::collections::BTreeSet;

use klamm_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponse, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use klamm_protocol::messages::DescribeTopicPartitionsRequest;
use klamm_protocol::{ErrorCode, Uuid};
use klamm_raft::{MetadataImage, PartitionImage, NO_LEADER};

use super::metadata::{offline_replicas, LocalOffline};
use super::RequestContext;
use crate::security::authorizer::{op, resource};
use crate::topics::{is_internal, validate_topic_name};

/// Kafka's `max.request.partition.size.limit` default: the most partitions one response holds.
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

/// The topic operations a principal may perform when no authorizer is configured, as Kafka
/// reports them (`AuthHelper.authorizedOperations` with every operation ACLs know for topics:
/// READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10,
/// ALTER_CONFIGS 11, as bits of a 32-bit field).
const ALL_TOPIC_OPERATIONS: i32 = (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

pub fn handle(ctx: &RequestContext, request: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    // Listing every topic shows only those the principal may DESCRIBE (Kafka filters before
    // paginating, so this cannot be left to `security::checks`, which handles named topics).
    let visible = |name: &str| ctx.authorized(op::DESCRIBE, resource::TOPIC, name);
    describe(&ctx.broker.metadata.image(), &LocalOffline::of(&ctx.broker), request, &visible)
}

/// The whole answer, a pure function of the image, this node's offline
/// replicas and which topics a listing of every topic may show (unit-tested below).
pub fn describe(image: &MetadataImage, local: &LocalOffline, request: DescribeTopicPartitionsRequest, visible: &dyn Fn(&str) -> bool) -> DescribeTopicPartitionsResponse {
    let all = request.topics.is_empty();
    let cursor = request.cursor;
    let cursor_topic = cursor.as_ref().map(|c| c.topic_name.as_str()).unwrap_or("");
    // Sorted and deduplicated, from the cursor's topic on.
    let names: BTreeSet<String> = if all {
        image.topics.keys().filter(|n| n.as_str() >= cursor_topic && visible(n)).cloned().collect()
    } else {
        request.topics.iter().map(|t| t.name.clone()).filter(|n| n.as_str() >= cursor_topic).collect()
    };
    if let Some(c) = &cursor {
        if (!all && !names.contains(&c.topic_name)) || c.partition_index < 0 {
            return invalid_request(&request.topics);
        }
    }

    let mut response = DescribeTopicPartitionsResponse::default();
    let mut remaining = request.response_partition_limit.min(MAX_PARTITIONS_PER_RESPONSE);
    for name in names {
        if remaining == 0 {
            // The previous topic ended exactly at the limit: continue with this one.
            response.next_cursor = Some(Cursor { topic_name: name, partition_index: 0, ..Default::default() });
            break;
        }
        if remaining < 0 {
            break;
        }
        let Some(topic) = image.topic(&name) else {
            if !all {
                let code = if validate_topic_name(&name).is_ok() {
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    ErrorCode::INVALID_TOPIC_EXCEPTION
                };
                response.topics.push(DescribeTopicPartitionsResponseTopic {
                    error_code: code.code(),
                    is_internal: is_internal(&name),
                    name: Some(name),
                    topic_id: Uuid::ZERO,
                    topic_authorized_operations: ALL_TOPIC_OPERATIONS,
                    ..Default::default()
                });
            }
            continue;
        };
        let start = if cursor.as_ref().is_some_and(|c| c.topic_name == name) {
            cursor.as_ref().map_or(0, |c| c.partition_index)
        } else {
            0
        };
        let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let end = count.min(start.saturating_add(remaining));
        let partitions: Vec<DescribeTopicPartitionsResponsePartition> =
            topic.partitions.range(start..end.max(start)).map(|(_, p)| describe_partition(image, &name, p, local)).collect();
        let taken = i32::try_from(partitions.len()).unwrap_or(i32::MAX);
        response.topics.push(DescribeTopicPartitionsResponseTopic {
            error_code: 0,
            name: Some(name.clone()),
            topic_id: Uuid(topic.topic_id),
            is_internal: is_internal(&name),
            partitions,
            topic_authorized_operations: ALL_TOPIC_OPERATIONS,
            ..Default::default()
        });
        if end < count {
            response.next_cursor = Some(Cursor { topic_name: name, partition_index: end, ..Default::default() });
            break;
        }
        remaining -= taken;
    }
    response
}

fn describe_partition(image: &MetadataImage, topic: &str, p: &PartitionImage, local: &LocalOffline) -> DescribeTopicPartitionsResponsePartition {
    let leader_known = p.leader != NO_LEADER && image.broker(p.leader).is_some() && !local.is_offline_leader(topic, p);
    DescribeTopicPartitionsResponsePartition {
        error_code: if leader_known { 0 } else { ErrorCode::LEADER_NOT_AVAILABLE.code() },
        partition_index: p.partition,
        leader_id: if leader_known { p.leader } else { NO_LEADER },
        leader_epoch: p.leader_epoch,
        replica_nodes: p.replicas.clone(),
        isr_nodes: p.isr.clone(),
        eligible_leader_replicas: Some(Vec::new()),
        last_known_elr: Some(Vec::new()),
        offline_replicas: offline_replicas(image, topic, p, local),
        ..Default::default()
    }
}

/// Kafka's error response for a bad cursor: every named topic with INVALID_REQUEST.
fn invalid_request(
    topics: &[klamm_protocol::messages::describe_topic_partitions_request::TopicRequest],
) -> DescribeTopicPartitionsResponse {
    let topics = topics
        .iter()
        .map(|t| DescribeTopicPartitionsResponseTopic {
            error_code: ErrorCode::INVALID_REQUEST.code(),
            name: Some(t.name.clone()),
            topic_id: Uuid::ZERO,
            ..Default::default()
        })
        .collect();
    DescribeTopicPartitionsResponse { topics, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use klamm_protocol::messages::describe_topic_partitions_request::{Cursor as RequestCursor, TopicRequest};
    use crate::test_images::{must_apply, must_image_with_brokers};
    use klamm_raft::{MetadataCommand, NewPartition};

    /// Brokers 1 and 2 (2 fenced), topics "a" (3 partitions on [1]), "b" (2 on [2, 1]), "c" (1 on [1]).
    fn image() -> MetadataImage {
        let mut img = must_image_with_brokers([1, 2]);
        for (i, (name, n, replicas)) in [("a", 3, vec![1]), ("b", 2, vec![2, 1]), ("c", 1, vec![1])].into_iter().enumerate() {
            let partitions = (0..n).map(|p| NewPartition { partition: p, replicas: replicas.clone() }).collect();
            must_apply(&mut img, &MetadataCommand::CreateTopic { name: name.into(), topic_id: [i as u8 + 1; 16], partitions, configs: Default::default() });
        }
        let epoch = img.broker(2).map(|b| b.epoch).unwrap_or_default();
        must_apply(&mut img, &MetadataCommand::FenceBroker { node_id: 2, epoch });
        img
    }

    fn request(topics: &[&str], limit: i32, cursor: Option<(&str, i32)>) -> DescribeTopicPartitionsRequest {
        DescribeTopicPartitionsRequest {
            topics: topics.iter().map(|n| TopicRequest { name: n.to_string(), ..Default::default() }).collect(),
            response_partition_limit: limit,
            cursor: cursor.map(|(t, p)| RequestCursor { topic_name: t.into(), partition_index: p, ..Default::default() }),
            ..Default::default()
        }
    }

    /// (topic, error, partition indexes) of each topic, and the next cursor.
    type Shape = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

    fn shape(r: &DescribeTopicPartitionsResponse) -> Shape {
        let topics = r
            .topics
            .iter()
            .map(|t| (t.name.clone().unwrap_or_default(), t.error_code, t.partitions.iter().map(|p| p.partition_index).collect()))
            .collect();
        (topics, r.next_cursor.as_ref().map(|c| (c.topic_name.clone(), c.partition_index)))
    }

    fn s(name: &str, code: ErrorCode, parts: &[i32]) -> (String, i16, Vec<i32>) {
        (name.to_string(), code.code(), parts.to_vec())
    }

    const OK: ErrorCode = ErrorCode::NONE;

    /// Every topic visible (no authorizer).
    const ALL: fn(&str) -> bool = |_| true;

    #[test]
    fn a_listing_of_every_topic_shows_only_visible_ones_and_paginates_over_them() {
        let img = image();
        let hide_b = |n: &str| n != "b";
        let r = describe(&img, &LocalOffline::none(1), request(&[], 2000, None), &hide_b);
        assert_eq!(shape(&r), (vec![s("a", OK, &[0, 1, 2]), s("c", OK, &[0])], None));
        // The limit counts visible partitions only, and the cursor never names a hidden topic.
        let r = describe(&img, &LocalOffline::none(1), request(&[], 3, None), &hide_b);
        assert_eq!(shape(&r), (vec![s("a", OK, &[0, 1, 2])], Some(("c".into(), 0))));
    }

    #[test]
    fn every_topic_sorted_and_paginated() {
        let img = image();
        let r = describe(&img, &LocalOffline::none(1), request(&[], 2000, None), &ALL);
        assert_eq!(shape(&r), (vec![s("a", OK, &[0, 1, 2]), s("b", OK, &[0, 1]), s("c", OK, &[0])], None));
        // A limit inside a topic: the cursor names the first partition left out.
        let r = describe(&img, &LocalOffline::none(1), request(&[], 4, None), &ALL);
        assert_eq!(shape(&r), (vec![s("a", OK, &[0, 1, 2]), s("b", OK, &[0])], Some(("b".into(), 1))));
        let r = describe(&img, &LocalOffline::none(1), request(&[], 4, Some(("b", 1))), &ALL);
        assert_eq!(shape(&r), (vec![s("b", OK, &[1]), s("c", OK, &[0])], None));
        // A limit at a topic boundary: the cursor names the next topic.
        let r = describe(&img, &LocalOffline::none(1), request(&[], 3, None), &ALL);
        assert_eq!(shape(&r), (vec![s("a", OK, &[0, 1, 2])], Some(("b".into(), 0))));
        // Limits above 2000 are capped; 0 returns nothing but where to start.
        let r = describe(&img, &LocalOffline::none(1), request(&[], i32::MAX, None), &ALL);
        assert_eq!(r.topics.len(), 3);
        let r = describe(&img, &LocalOffline::none(1), request(&[], 0, None), &ALL);
        assert_eq!(shape(&r), (vec![], Some(("a".into(), 0))));
        assert_eq!(shape(&describe(&img, &LocalOffline::none(1), request(&[], -5, None), &ALL)), (vec![], None));
        // A cursor past a topic's last partition yields it without partitions.
        let r = describe(&img, &LocalOffline::none(1), request(&[], 10, Some(("a", 7))), &ALL);
        assert_eq!(shape(&r), (vec![s("a", OK, &[]), s("b", OK, &[0, 1]), s("c", OK, &[0])], None));
    }

    #[test]
    fn named_topics() {
        let img = image();
        let r = describe(&img, &LocalOffline::none(1), request(&["c", "nope", "a", "c", "bad/name"], 2000, None), &ALL);
        let want = vec![
            s("a", OK, &[0, 1, 2]),
            s("bad/name", ErrorCode::INVALID_TOPIC_EXCEPTION, &[]),
            s("c", OK, &[0]),
            s("nope", ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, &[]),
        ];
        assert_eq!(shape(&r), (want, None));
        let r = describe(&img, &LocalOffline::none(1), request(&["c", "a"], 2, None), &ALL);
        assert_eq!(shape(&r), (vec![s("a", OK, &[0, 1])], Some(("a".into(), 2))));
        let r = describe(&img, &LocalOffline::none(1), request(&["c", "a"], 2, Some(("a", 2))), &ALL);
        assert_eq!(shape(&r), (vec![s("a", OK, &[2]), s("c", OK, &[0])], None));
        // The cursor's topic must be among the named ones, and its partition not negative.
        for (cursor, topics) in [(("b", 0), vec!["a", "c"]), (("a", -1), vec!["a"])] {
            let r = describe(&img, &LocalOffline::none(1), request(&topics, 2000, Some(cursor)), &ALL);
            assert_eq!(r.topics.len(), topics.len());
            assert!(r.topics.iter().all(|t| t.error_code == ErrorCode::INVALID_REQUEST.code() && t.partitions.is_empty()));
        }
    }

    #[test]
    fn partition_details() {
        let img = image();
        let r = describe(&img, &LocalOffline::none(1), request(&["b", "a"], 2000, None), &ALL);
        let a = &r.topics[0];
        assert_eq!(a.topic_id, Uuid([1; 16]));
        assert_eq!(a.topic_authorized_operations, ALL_TOPIC_OPERATIONS);
        let p = &a.partitions[0];
        assert_eq!((p.error_code, p.leader_id, p.leader_epoch), (0, 1, 0));
        assert_eq!((p.replica_nodes.clone(), p.isr_nodes.clone(), p.offline_replicas.clone()), (vec![1], vec![1], vec![]));
        assert_eq!((p.eligible_leader_replicas.clone(), p.last_known_elr.clone()), (Some(vec![]), Some(vec![])));
        // "b" was led by 2; fencing 2 moved it to 1 (epoch 1) and out of the ISR.
        let p = &r.topics[1].partitions[0];
        assert_eq!((p.error_code, p.leader_id, p.leader_epoch), (0, 1, 1));
        assert_eq!((p.replica_nodes.clone(), p.isr_nodes.clone(), p.offline_replicas.clone()), (vec![2, 1], vec![1], vec![2]));
    }

    #[test]
    fn a_replica_whose_log_failed_to_open_here_is_offline() {
        let img = image();
        let failed = [crate::topic_partition::TopicPartition::new("a", 0)].into_iter().collect();
        let r = describe(&img, &LocalOffline::new(1, failed), request(&["a"], 2000, None), &ALL);
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.leader_id), (ErrorCode::LEADER_NOT_AVAILABLE.code(), -1), "the leader cannot serve it");
        assert_eq!(p.offline_replicas, vec![1]);
        let p = &r.topics[0].partitions[1];
        assert_eq!((p.error_code, p.leader_id, p.offline_replicas.clone()), (0, 1, vec![]), "other partitions unaffected");
    }
}
