//! What [`after`] does: completes a handler's response with the entries [`super::before`]
//! took out of its request (refused topics, groups, keys, answered with Kafka's
//! *_AUTHORIZATION_FAILED codes), hides what the principal may not see, and fills the
//! authorized-operations fields.

use klamm_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use klamm_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use klamm_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use klamm_protocol::messages::offset_fetch_response::{OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics};
use klamm_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use klamm_protocol::messages::*;
use klamm_protocol::ErrorCode;

use super::per_key::{refused_coordinator, refused_group, refused_partition, GroupFate};
use super::{can, config_denied, topic_failed, After};
use crate::handlers::{Outcome, RequestContext};
use crate::security::authorizer::{op, resource, CLUSTER_NAME};

pub(super) fn produce_topic(name: &str, partitions: Vec<i32>, code: i16) -> TopicProduceResponse {
    TopicProduceResponse {
        name: name.to_string(),
        partition_responses: partitions
            .into_iter()
            .map(|index| PartitionProduceResponse { index, error_code: code, base_offset: -1, log_append_time_ms: -1, log_start_offset: -1, ..Default::default() })
            .collect(),
        ..Default::default()
    }
}

pub(super) fn commit_topic(name: &str, partitions: Vec<i32>, code: i16) -> OffsetCommitResponseTopic {
    OffsetCommitResponseTopic {
        name: name.to_string(),
        partitions: partitions.into_iter().map(|partition_index| OffsetCommitResponsePartition { partition_index, error_code: code, ..Default::default() }).collect(),
        ..Default::default()
    }
}

/// Completes the handler's response with what [`before`] took out.
pub fn after(ctx: &RequestContext, outcome: Outcome, after: After) -> Outcome {
    if matches!(after, After::Nothing) {
        return outcome;
    }
    match outcome {
        Outcome::Respond(r) => Outcome::Respond(complete(ctx, r, &after)),
        Outcome::RespondFromFiles(r, regions) => Outcome::RespondFromFiles(complete(ctx, r, &after), regions),
        Outcome::Deferred(pending) => {
            let ctx = ctx.clone();
            Outcome::Deferred(Box::pin(async move {
                let r = pending.await;
                complete(&ctx, r, &after)
            }))
        }
        other => other,
    }
}

fn complete(ctx: &RequestContext, response: ResponseKind, after: &After) -> ResponseKind {
    let image = ctx.broker.metadata.image();
    let authz = &ctx.broker.authorizer;
    let (principal, host) = (ctx.principal.as_str(), ctx.peer.ip());
    match (response, after) {
        (ResponseKind::Produce(mut r), After::DeniedTopics(d)) => {
            r.responses.extend(d.iter().map(|(n, p)| produce_topic(n, p.clone(), topic_failed())));
            ResponseKind::Produce(r)
        }
        (ResponseKind::Fetch(mut r), After::DeniedTopics(d)) => {
            r.responses.extend(d.iter().map(|(n, p)| FetchableTopicResponse {
                topic: n.clone(),
                topic_id: klamm_protocol::Uuid(image.topics.get(n).map_or([0; 16], |t| t.topic_id)),
                partitions: p
                    .iter()
                    .map(|&partition_index| PartitionData { partition_index, error_code: topic_failed(), high_watermark: -1, last_stable_offset: -1, log_start_offset: -1, ..Default::default() })
                    .collect(),
                ..Default::default()
            }));
            ResponseKind::Fetch(r)
        }
        (ResponseKind::ListOffsets(mut r), After::DeniedTopics(d)) => {
            r.topics.extend(d.iter().map(|(n, p)| ListOffsetsTopicResponse {
                name: n.clone(),
                partitions: p
                    .iter()
                    .map(|&partition_index| ListOffsetsPartitionResponse { partition_index, error_code: topic_failed(), timestamp: -1, offset: -1, leader_epoch: -1, ..Default::default() })
                    .collect(),
                ..Default::default()
            }));
            ResponseKind::ListOffsets(r)
        }
        (ResponseKind::TxnOffsetCommit(mut r), After::DeniedTopics(d)) => {
            use klamm_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
            r.topics.extend(d.iter().map(|(n, p)| TxnOffsetCommitResponseTopic {
                name: n.clone(),
                partitions: p.iter().map(|&partition_index| TxnOffsetCommitResponsePartition { partition_index, error_code: topic_failed(), ..Default::default() }).collect(),
                ..Default::default()
            }));
            ResponseKind::TxnOffsetCommit(r)
        }
        (ResponseKind::DescribeProducers(mut r), After::DeniedTopics(d)) => {
            use klamm_protocol::messages::describe_producers_response::{PartitionResponse, TopicResponse};
            r.topics.extend(d.iter().map(|(n, p)| TopicResponse {
                name: n.clone(),
                partitions: p
                    .iter()
                    .map(|&partition_index| PartitionResponse { partition_index, error_code: topic_failed(), error_message: Some("Authorization failed.".into()), ..Default::default() })
                    .collect(),
                ..Default::default()
            }));
            ResponseKind::DescribeProducers(r)
        }
        (ResponseKind::DescribeTransactions(mut r), After::DeniedTransactionalIds(ids)) => {
            use klamm_protocol::messages::describe_transactions_response::TransactionState;
            let code = ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code();
            r.transaction_states.extend(ids.iter().map(|id| TransactionState {
                error_code: code,
                transactional_id: id.clone(),
                producer_id: -1,
                producer_epoch: -1,
                transaction_start_time_ms: -1,
                ..Default::default()
            }));
            ResponseKind::DescribeTransactions(r)
        }
        (ResponseKind::ListTransactions(mut r), After::FilterTransactionalIds) => {
            r.transaction_states.retain(|t| can(ctx, op::DESCRIBE, resource::TRANSACTIONAL_ID, &t.transactional_id));
            ResponseKind::ListTransactions(r)
        }
        (ResponseKind::OffsetCommit(mut r), After::DeniedTopics(d)) => {
            r.topics.extend(d.iter().map(|(n, p)| commit_topic(n, p.clone(), topic_failed())));
            ResponseKind::OffsetCommit(r)
        }
        (ResponseKind::CreateTopics(mut r), After::DeniedTopics(d)) => {
            r.topics.extend(d.iter().map(|(n, _)| klamm_protocol::messages::create_topics_response::CreatableTopicResult {
                name: n.clone(),
                error_code: topic_failed(),
                error_message: Some("Authorization failed.".into()),
                num_partitions: -1,
                replication_factor: -1,
                ..Default::default()
            }));
            ResponseKind::CreateTopics(r)
        }
        (ResponseKind::DeleteTopics(mut r), After::DeniedTopics(d)) => {
            r.responses.extend(d.iter().map(|(n, _)| klamm_protocol::messages::delete_topics_response::DeletableTopicResult {
                name: Some(n.clone()),
                topic_id: klamm_protocol::Uuid(image.topics.get(n).map_or([0; 16], |t| t.topic_id)),
                error_code: topic_failed(),
                error_message: Some("Authorization failed.".into()),
                ..Default::default()
            }));
            ResponseKind::DeleteTopics(r)
        }
        (ResponseKind::OffsetForLeaderEpoch(mut r), After::DeniedTopics(d)) => {
            r.topics.extend(d.iter().map(|(n, p)| klamm_protocol::messages::offset_for_leader_epoch_response::OffsetForLeaderTopicResult {
                topic: n.clone(),
                partitions: p
                    .iter()
                    .map(|&partition| klamm_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset {
                        partition,
                        error_code: topic_failed(),
                        leader_epoch: -1,
                        end_offset: -1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }));
            ResponseKind::OffsetForLeaderEpoch(r)
        }
        (ResponseKind::CreatePartitions(mut r), After::DeniedTopics(d)) => {
            r.results.extend(d.iter().map(|(n, _)| klamm_protocol::messages::create_partitions_response::CreatePartitionsTopicResult {
                name: n.clone(),
                error_code: topic_failed(),
                error_message: Some("Authorization failed.".into()),
                ..Default::default()
            }));
            ResponseKind::CreatePartitions(r)
        }
        (ResponseKind::DeleteRecords(mut r), After::DeniedTopics(d)) => {
            r.topics.extend(d.iter().map(|(n, p)| klamm_protocol::messages::delete_records_response::DeleteRecordsTopicResult {
                name: n.clone(),
                partitions: p
                    .iter()
                    .map(|&partition_index| klamm_protocol::messages::delete_records_response::DeleteRecordsPartitionResult {
                        partition_index,
                        low_watermark: -1,
                        error_code: topic_failed(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }));
            ResponseKind::DeleteRecords(r)
        }
        (ResponseKind::AlterConfigs(mut r), After::DeniedConfigs(d)) => {
            r.responses.extend(d.iter().map(|(resource_type, name)| klamm_protocol::messages::alter_configs_response::AlterConfigsResourceResponse {
                error_code: config_denied(*resource_type),
                error_message: Some("Authorization failed.".into()),
                resource_type: *resource_type,
                resource_name: name.clone(),
                ..Default::default()
            }));
            ResponseKind::AlterConfigs(r)
        }
        (ResponseKind::IncrementalAlterConfigs(mut r), After::DeniedConfigs(d)) => {
            r.responses.extend(d.iter().map(|(resource_type, name)| klamm_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse {
                error_code: config_denied(*resource_type),
                error_message: Some("Authorization failed.".into()),
                resource_type: *resource_type,
                resource_name: name.clone(),
                ..Default::default()
            }));
            ResponseKind::IncrementalAlterConfigs(r)
        }
        (ResponseKind::DeleteGroups(mut r), After::DeniedTopics(d)) => {
            r.results.extend(d.iter().map(|(group_id, _)| klamm_protocol::messages::delete_groups_response::DeletableGroupResult {
                group_id: group_id.clone(),
                error_code: ErrorCode::GROUP_AUTHORIZATION_FAILED.code(),
                ..Default::default()
            }));
            ResponseKind::DeleteGroups(r)
        }
        (ResponseKind::OffsetDelete(mut r), After::DeniedTopics(d)) => {
            r.topics.extend(d.iter().map(|(n, p)| klamm_protocol::messages::offset_delete_response::OffsetDeleteResponseTopic {
                name: n.clone(),
                partitions: p
                    .iter()
                    .map(|&partition_index| klamm_protocol::messages::offset_delete_response::OffsetDeleteResponsePartition {
                        partition_index,
                        error_code: topic_failed(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }));
            ResponseKind::OffsetDelete(r)
        }
        (ResponseKind::DescribeConfigs(mut r), After::DeniedConfigs(d)) => {
            r.results.extend(d.iter().map(|(resource_type, name)| klamm_protocol::messages::describe_configs_response::DescribeConfigsResult {
                error_code: config_denied(*resource_type),
                error_message: Some("Authorization failed.".into()),
                resource_type: *resource_type,
                resource_name: name.clone(),
                ..Default::default()
            }));
            ResponseKind::DescribeConfigs(r)
        }
        (ResponseKind::Metadata(mut r), After::Metadata { denied, none_left, topic_ops, cluster_ops }) => {
            if *none_left {
                r.topics.clear();
            }
            // Topics the principal may not see are left out (Kafka filters them likewise).
            r.topics.retain(|t| t.name.as_deref().is_none_or(|n| authz.authorize(&image, principal, host, op::DESCRIBE, resource::TOPIC, n)));
            if *topic_ops {
                for t in r.topics.iter_mut() {
                    if let Some(n) = &t.name {
                        t.topic_authorized_operations = authz.authorized_operations(&image, principal, host, resource::TOPIC, n);
                    }
                }
            }
            r.topics.extend(denied.iter().cloned());
            if *cluster_ops {
                r.cluster_authorized_operations = cluster_operations(ctx);
            }
            ResponseKind::Metadata(r)
        }
        (ResponseKind::DescribeCluster(mut r), After::ClusterOps { include }) => {
            r.cluster_authorized_operations = if *include { cluster_operations(ctx) } else { i32::MIN };
            ResponseKind::DescribeCluster(r)
        }
        (ResponseKind::FindCoordinator(r), After::FindCoordinator { .. }) => ResponseKind::FindCoordinator(find_coordinator(r, after)),
        (ResponseKind::OffsetFetch(r), After::OffsetFetch(fates)) => ResponseKind::OffsetFetch(offset_fetch(ctx, r, fates)),
        (ResponseKind::DescribeTopicPartitions(r), After::DescribeTopicPartitions(denied)) => ResponseKind::DescribeTopicPartitions(describe_topic_partitions(ctx, r, denied)),
        (ResponseKind::DescribeGroups(mut r), After::DescribeGroups { include_ops }) => {
            for g in r.groups.iter_mut() {
                if !authz.authorize(&image, principal, host, op::DESCRIBE, resource::GROUP, &g.group_id) {
                    *g = klamm_protocol::messages::describe_groups_response::DescribedGroup {
                        group_id: std::mem::take(&mut g.group_id),
                        error_code: ErrorCode::GROUP_AUTHORIZATION_FAILED.code(),
                        authorized_operations: i32::MIN,
                        ..Default::default()
                    };
                } else if *include_ops {
                    g.authorized_operations = authz.authorized_operations(&image, principal, host, resource::GROUP, &g.group_id);
                }
            }
            ResponseKind::DescribeGroups(r)
        }
        (ResponseKind::ListGroups(mut r), After::FilterGroups) => {
            if !authz.authorize(&image, principal, host, op::DESCRIBE, resource::CLUSTER, CLUSTER_NAME) {
                r.groups.retain(|g| authz.authorize(&image, principal, host, op::DESCRIBE, resource::GROUP, &g.group_id));
            }
            ResponseKind::ListGroups(r)
        }
        (r, _) => r,
    }
}

/// `cluster_authorized_operations` when asked: Kafka reports them only to principals that
/// may DESCRIBE the cluster, and 0 to the others.
fn cluster_operations(ctx: &RequestContext) -> i32 {
    let authz = &ctx.broker.authorizer;
    let image = ctx.broker.metadata.image();
    if authz.authorize(&image, &ctx.principal, ctx.peer.ip(), op::DESCRIBE, resource::CLUSTER, CLUSTER_NAME) {
        authz.authorized_operations(&image, &ctx.principal, ctx.peer.ip(), resource::CLUSTER, CLUSTER_NAME)
    } else {
        0
    }
}

/// FindCoordinator v4+: the handler's coordinators and the refused keys, in the request's order.
pub(super) fn find_coordinator(mut r: FindCoordinatorResponse, after: &After) -> FindCoordinatorResponse {
    let After::FindCoordinator { keys, denied, code } = after else { return r };
    let mut answered = std::mem::take(&mut r.coordinators).into_iter();
    for key in keys {
        if denied.contains(key) {
            r.coordinators.push(refused_coordinator(key.clone(), *code));
        } else if let Some(c) = answered.next() {
            r.coordinators.push(c);
        }
    }
    r.coordinators.extend(answered);
    r
}

/// OffsetFetch: refused groups and topics back in place. A named topic without DESCRIBE gets
/// TOPIC_AUTHORIZATION_FAILED on each requested partition, unless the group itself failed
/// (Kafka then answers only the group's error); the "all topics" form leaves such topics out.
pub(super) fn offset_fetch(ctx: &RequestContext, mut r: OffsetFetchResponse, fates: &[GroupFate]) -> OffsetFetchResponse {
    let visible = |n: &str| can(ctx, op::DESCRIBE, resource::TOPIC, n);
    let code = topic_failed();
    if ctx.api_version < 8 {
        if let Some(GroupFate::Allowed { all_topics, denied }) = fates.first() {
            if *all_topics {
                r.topics.retain(|t| visible(&t.name));
            } else if r.error_code == 0 {
                r.topics.extend(denied.iter().map(|(name, parts)| OffsetFetchResponseTopic {
                    name: name.clone(),
                    partitions: parts.iter().map(|&p| refused_partition(p, code)).collect(),
                    ..Default::default()
                }));
            }
        }
        return r;
    }
    let mut answered = std::mem::take(&mut r.groups).into_iter();
    for fate in fates {
        match fate {
            GroupFate::Denied(group_id) => r.groups.push(refused_group(group_id.clone())),
            GroupFate::Allowed { all_topics, denied } => {
                let Some(mut g) = answered.next() else { continue };
                if *all_topics {
                    g.topics.retain(|t| visible(&t.name));
                } else if g.error_code == 0 {
                    g.topics.extend(denied.iter().map(|(name, parts)| OffsetFetchResponseTopics {
                        name: name.clone(),
                        partitions: parts
                            .iter()
                            .map(|&partition_index| OffsetFetchResponsePartitions {
                                partition_index,
                                committed_offset: -1,
                                committed_leader_epoch: -1,
                                metadata: Some(String::new()),
                                error_code: code,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    }));
                }
                r.groups.push(g);
            }
        }
    }
    r.groups.extend(answered);
    r
}

/// DescribeTopicPartitions: the principal's operations on each topic described, then the
/// named topics it may not DESCRIBE.
pub(super) fn describe_topic_partitions(ctx: &RequestContext, mut r: DescribeTopicPartitionsResponse, denied: &[String]) -> DescribeTopicPartitionsResponse {
    let authz = &ctx.broker.authorizer;
    let image = ctx.broker.metadata.image();
    for t in r.topics.iter_mut() {
        if let Some(n) = &t.name {
            t.topic_authorized_operations = authz.authorized_operations(&image, &ctx.principal, ctx.peer.ip(), resource::TOPIC, n);
        }
    }
    r.topics.extend(denied.iter().map(|n| klamm_protocol::messages::describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic {
        name: Some(n.clone()),
        error_code: topic_failed(),
        topic_authorized_operations: i32::MIN,
        ..Default::default()
    }));
    r
}
