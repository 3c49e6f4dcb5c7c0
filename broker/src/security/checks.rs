//! What each served API must be allowed to do, checked before its handler runs — the one
//! place the request path consults the [`Authorizer`](super::authorizer::Authorizer)
//! (`handlers::handle` calls [`before`] and [`after`] when ACLs are on).
//!
//! The checks are Kafka's (`KafkaApis` / `ControllerApis`): a request-wide denial is answered
//! here with the API's error code; topics (or groups) the principal may not touch are taken
//! out of the request, and their entries are added to the handler's response with
//! TOPIC_AUTHORIZATION_FAILED (GROUP_...) afterwards, so handlers never see them. An API
//! without a check here is refused for anyone but super users (closing the connection), so a
//! newly served API is never open by default.

use klamm_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use klamm_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use klamm_protocol::messages::metadata_response::MetadataResponseTopic;
use klamm_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use klamm_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use klamm_protocol::messages::*;
use klamm_protocol::ErrorCode;

use super::authorizer::{op, resource, CLUSTER_NAME};
use crate::handlers::{Outcome, RequestContext};

/// Topics taken out of a request, by name, with their partitions.
type Denied = Vec<(String, Vec<i32>)>;

/// What the dispatcher does with a request.
pub enum Gate {
    /// Dispatch this (possibly narrowed) request, then pass the outcome to [`after`].
    Go(RequestKind, After),
    /// Answer without dispatching.
    Answer(Outcome),
}

/// What [`after`] adds to or removes from the handler's response.
pub enum After {
    Nothing,
    /// Entries with TOPIC_AUTHORIZATION_FAILED for these topics.
    DeniedTopics(Denied),
    /// Metadata: hide topics the principal may not DESCRIBE, add the denied ones, and fill
    /// the authorized-operations fields when asked.
    Metadata { denied: Vec<String>, topic_ops: bool, cluster_ops: bool },
    /// DescribeCluster: fill `cluster_authorized_operations`.
    ClusterOps,
    /// DescribeGroups: set errors and authorized operations per group.
    DescribeGroups { include_ops: bool },
    /// ListGroups / OffsetFetch: drop entries the principal may not DESCRIBE.
    FilterGroups,
    FilterOffsetFetchTopics,
    /// DescribeConfigs: results with *_AUTHORIZATION_FAILED for these (type, name) resources.
    DeniedConfigs(Vec<(i8, String)>),
    /// DescribeTransactions: TRANSACTIONAL_ID_AUTHORIZATION_FAILED entries for these ids.
    DeniedTransactionalIds(Vec<String>),
    /// ListTransactions: drop ids the principal may not DESCRIBE.
    FilterTransactionalIds,
}

/// The config APIs' resource type of a topic (ConfigResource.Type.TOPIC).
const CONFIG_TOPIC: i8 = 2;

/// The error of a config resource the principal may not touch.
fn config_denied(resource_type: i8) -> i16 {
    if resource_type == CONFIG_TOPIC { topic_failed() } else { ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code() }
}

fn topic_failed() -> i16 {
    ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()
}

fn can(ctx: &RequestContext, operation: i8, resource_type: i8, name: &str) -> bool {
    ctx.authorized(operation, resource_type, name)
}

fn cluster(ctx: &RequestContext, operation: i8) -> bool {
    can(ctx, operation, resource::CLUSTER, CLUSTER_NAME)
}

/// Removes the topics `keep` refuses from `topics`, returning them (name and partitions).
fn split_topics<T>(topics: &mut Vec<T>, name: impl Fn(&T) -> String, partitions: impl Fn(&T) -> Vec<i32>, keep: impl Fn(&str) -> bool) -> Denied {
    let mut denied = Vec::new();
    topics.retain(|t| {
        let n = name(t);
        if keep(&n) {
            true
        } else {
            denied.push((n, partitions(t)));
            false
        }
    });
    denied
}

/// Checks `request` before dispatch. Only called when the authorizer is on.
pub fn before(ctx: &RequestContext, request: RequestKind) -> Gate {
    let image = ctx.broker.metadata.image();
    let go = |r: RequestKind| Gate::Go(r, After::Nothing);
    let answer = |r: ResponseKind| Gate::Answer(Outcome::Respond(r));
    match request {
        r @ (RequestKind::ApiVersions(_) | RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_)) => go(r),
        // The ACL APIs check the cluster themselves (they also answer SECURITY_DISABLED).
        r @ (RequestKind::CreateAcls(_) | RequestKind::DescribeAcls(_) | RequestKind::DeleteAcls(_)) => go(r),
        RequestKind::Produce(mut r) => {
            if let Some(id) = &r.transactional_id {
                if !can(ctx, op::WRITE, resource::TRANSACTIONAL_ID, id) {
                    let code = ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code();
                    return answer(ResponseKind::Produce(ProduceResponse {
                        responses: r.topic_data.iter().map(|t| produce_topic(&t.name, t.partition_data.iter().map(|p| p.index).collect(), code)).collect(),
                        ..Default::default()
                    }));
                }
            }
            let denied = split_topics(&mut r.topic_data, |t| t.name.clone(), |t| t.partition_data.iter().map(|p| p.index).collect(), |n| can(ctx, op::WRITE, resource::TOPIC, n));
            if !denied.is_empty() && r.acks == 0 {
                return Gate::Answer(Outcome::Close("acks=0 produce to a topic the principal may not write"));
            }
            Gate::Go(RequestKind::Produce(r), After::DeniedTopics(denied))
        }
        RequestKind::Fetch(mut r) => {
            let replica = if ctx.api_version >= 15 { r.replica_state.replica_id } else { r.replica_id };
            if replica >= 0 {
                if !cluster(ctx, op::CLUSTER_ACTION) {
                    return answer(ResponseKind::Fetch(FetchResponse { error_code: ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code(), ..Default::default() }));
                }
                return go(RequestKind::Fetch(r));
            }
            let name_of = |t: &klamm_protocol::messages::fetch_request::FetchTopic| {
                if t.topic.is_empty() { image.topic_names_by_id.get(&t.topic_id.0).cloned().unwrap_or_default() } else { t.topic.clone() }
            };
            let denied = split_topics(&mut r.topics, name_of, |t| t.partitions.iter().map(|p| p.partition).collect(), |n| n.is_empty() || can(ctx, op::READ, resource::TOPIC, n));
            Gate::Go(RequestKind::Fetch(r), After::DeniedTopics(denied))
        }
        RequestKind::ListOffsets(mut r) => {
            let denied = split_topics(&mut r.topics, |t| t.name.clone(), |t| t.partitions.iter().map(|p| p.partition_index).collect(), |n| can(ctx, op::DESCRIBE, resource::TOPIC, n));
            Gate::Go(RequestKind::ListOffsets(r), After::DeniedTopics(denied))
        }
        RequestKind::Metadata(mut r) => {
            let mut denied = Vec::new();
            if let Some(topics) = r.topics.as_mut() {
                topics.retain(|t| match &t.name {
                    Some(n) if !can(ctx, op::DESCRIBE, resource::TOPIC, n) => {
                        denied.push(n.clone());
                        false
                    }
                    _ => true,
                });
                // Auto-creation needs CREATE on the cluster or on the topic (Kafka's rule).
                let may_create = |n: &str| cluster(ctx, op::CREATE) || can(ctx, op::CREATE, resource::TOPIC, n);
                if topics.iter().filter_map(|t| t.name.as_deref()).any(|n| !image.topics.contains_key(n) && !may_create(n)) {
                    r.allow_auto_topic_creation = false;
                }
            }
            let after = After::Metadata { denied, topic_ops: r.include_topic_authorized_operations, cluster_ops: r.include_cluster_authorized_operations };
            Gate::Go(RequestKind::Metadata(r), after)
        }
        RequestKind::DescribeCluster(r) => Gate::Go(RequestKind::DescribeCluster(r), After::ClusterOps),
        RequestKind::InitProducerId(r) => {
            let code = match &r.transactional_id {
                Some(id) if !can(ctx, op::WRITE, resource::TRANSACTIONAL_ID, id) => Some(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
                Some(_) => None,
                None if !ctx.broker.authorizer.may_write_idempotently(&image, &ctx.principal, ctx.peer.ip()) => Some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED),
                None => None,
            };
            match code {
                Some(code) => answer(ResponseKind::InitProducerId(InitProducerIdResponse { error_code: code.code(), producer_id: -1, producer_epoch: -1, ..Default::default() })),
                None => go(RequestKind::InitProducerId(r)),
            }
        }
        RequestKind::FindCoordinator(r) => {
            let resource_type = if r.key_type == 1 { resource::TRANSACTIONAL_ID } else { resource::GROUP };
            let keys: Vec<String> = if ctx.api_version >= 4 { r.coordinator_keys.clone() } else { vec![r.key.clone()] };
            let refused = keys.iter().any(|k| !can(ctx, op::DESCRIBE, resource_type, k));
            if !refused {
                return go(RequestKind::FindCoordinator(r));
            }
            let code = if resource_type == resource::GROUP { ErrorCode::GROUP_AUTHORIZATION_FAILED } else { ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED };
            // Answer the whole request with the denial when any key is refused; clients ask
            // for one key at a time.
            answer(ResponseKind::FindCoordinator(FindCoordinatorResponse {
                error_code: code.code(),
                node_id: -1,
                port: -1,
                coordinators: keys
                    .into_iter()
                    .map(|key| klamm_protocol::messages::find_coordinator_response::Coordinator { key, node_id: -1, port: -1, error_code: code.code(), ..Default::default() })
                    .collect(),
                ..Default::default()
            }))
        }
        RequestKind::JoinGroup(r) => group_gate(ctx, &r.group_id.clone(), RequestKind::JoinGroup(r), |c| ResponseKind::JoinGroup(JoinGroupResponse { error_code: c, generation_id: -1, ..Default::default() })),
        RequestKind::SyncGroup(r) => group_gate(ctx, &r.group_id.clone(), RequestKind::SyncGroup(r), |c| ResponseKind::SyncGroup(SyncGroupResponse { error_code: c, ..Default::default() })),
        RequestKind::Heartbeat(r) => group_gate(ctx, &r.group_id.clone(), RequestKind::Heartbeat(r), |c| ResponseKind::Heartbeat(HeartbeatResponse { error_code: c, ..Default::default() })),
        RequestKind::LeaveGroup(r) => group_gate(ctx, &r.group_id.clone(), RequestKind::LeaveGroup(r), |c| ResponseKind::LeaveGroup(LeaveGroupResponse { error_code: c, ..Default::default() })),
        RequestKind::OffsetCommit(mut r) => {
            if !can(ctx, op::READ, resource::GROUP, &r.group_id) {
                let code = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
                return answer(ResponseKind::OffsetCommit(OffsetCommitResponse {
                    topics: r.topics.iter().map(|t| commit_topic(&t.name, t.partitions.iter().map(|p| p.partition_index).collect(), code)).collect(),
                    ..Default::default()
                }));
            }
            let denied = split_topics(&mut r.topics, |t| t.name.clone(), |t| t.partitions.iter().map(|p| p.partition_index).collect(), |n| can(ctx, op::READ, resource::TOPIC, n));
            Gate::Go(RequestKind::OffsetCommit(r), After::DeniedTopics(denied))
        }
        RequestKind::OffsetFetch(r) => {
            let groups: Vec<String> = if ctx.api_version >= 8 { r.groups.iter().map(|g| g.group_id.clone()).collect() } else { vec![r.group_id.clone()] };
            if groups.iter().any(|g| !can(ctx, op::DESCRIBE, resource::GROUP, g)) {
                let code = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
                return answer(ResponseKind::OffsetFetch(OffsetFetchResponse {
                    error_code: code,
                    groups: groups
                        .into_iter()
                        .map(|group_id| klamm_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup { group_id, error_code: code, ..Default::default() })
                        .collect(),
                    ..Default::default()
                }));
            }
            Gate::Go(RequestKind::OffsetFetch(r), After::FilterOffsetFetchTopics)
        }
        RequestKind::DescribeGroups(r) => {
            let include_ops = r.include_authorized_operations;
            Gate::Go(RequestKind::DescribeGroups(r), After::DescribeGroups { include_ops })
        }
        RequestKind::ListGroups(r) => Gate::Go(RequestKind::ListGroups(r), After::FilterGroups),
        RequestKind::CreateTopics(mut r) => {
            let create_any = cluster(ctx, op::CREATE);
            let denied = split_topics(&mut r.topics, |t| t.name.clone(), |_| Vec::new(), |n| create_any || can(ctx, op::CREATE, resource::TOPIC, n));
            Gate::Go(RequestKind::CreateTopics(r), After::DeniedTopics(denied))
        }
        RequestKind::DeleteTopics(mut r) => {
            let denied = split_topics(&mut r.topic_names, |n| n.clone(), |_| Vec::new(), |n| can(ctx, op::DELETE, resource::TOPIC, n));
            let mut more = split_topics(
                &mut r.topics,
                |t| t.name.clone().or_else(|| image.topic_names_by_id.get(&t.topic_id.0).cloned()).unwrap_or_default(),
                |_| Vec::new(),
                |n| n.is_empty() || can(ctx, op::DELETE, resource::TOPIC, n),
            );
            more.extend(denied);
            Gate::Go(RequestKind::DeleteTopics(r), After::DeniedTopics(more))
        }
        RequestKind::OffsetForLeaderEpoch(mut r) => {
            if r.replica_id >= 0 {
                return admin_gate(ctx, op::CLUSTER_ACTION, RequestKind::OffsetForLeaderEpoch(r));
            }
            let denied = split_topics(&mut r.topics, |t| t.topic.clone(), |t| t.partitions.iter().map(|p| p.partition).collect(), |n| can(ctx, op::DESCRIBE, resource::TOPIC, n));
            Gate::Go(RequestKind::OffsetForLeaderEpoch(r), After::DeniedTopics(denied))
        }
        RequestKind::CreatePartitions(mut r) => {
            let denied = split_topics(&mut r.topics, |t| t.name.clone(), |_| Vec::new(), |n| can(ctx, op::ALTER, resource::TOPIC, n));
            Gate::Go(RequestKind::CreatePartitions(r), After::DeniedTopics(denied))
        }
        RequestKind::DeleteRecords(mut r) => {
            let denied = split_topics(&mut r.topics, |t| t.name.clone(), |t| t.partitions.iter().map(|p| p.partition_index).collect(), |n| can(ctx, op::DELETE, resource::TOPIC, n));
            Gate::Go(RequestKind::DeleteRecords(r), After::DeniedTopics(denied))
        }
        RequestKind::DescribeTopicPartitions(mut r) => {
            let denied = split_topics(&mut r.topics, |t| t.name.clone(), |_| Vec::new(), |n| can(ctx, op::DESCRIBE, resource::TOPIC, n));
            Gate::Go(RequestKind::DescribeTopicPartitions(r), After::DeniedTopics(denied))
        }
        RequestKind::DescribeConfigs(mut r) => {
            let denied = split_config_resources(ctx, op::DESCRIBE_CONFIGS, &mut r.resources, |c| (c.resource_type, c.resource_name.clone()));
            Gate::Go(RequestKind::DescribeConfigs(r), After::DeniedConfigs(denied))
        }
        RequestKind::AlterConfigs(mut r) => {
            let denied = split_config_resources(ctx, op::ALTER_CONFIGS, &mut r.resources, |c| (c.resource_type, c.resource_name.clone()));
            Gate::Go(RequestKind::AlterConfigs(r), After::DeniedConfigs(denied))
        }
        RequestKind::IncrementalAlterConfigs(mut r) => {
            let denied = split_config_resources(ctx, op::ALTER_CONFIGS, &mut r.resources, |c| (c.resource_type, c.resource_name.clone()));
            Gate::Go(RequestKind::IncrementalAlterConfigs(r), After::DeniedConfigs(denied))
        }
        RequestKind::DeleteGroups(mut r) => {
            let denied = split_topics(&mut r.groups_names, |g| g.clone(), |_| Vec::new(), |g| can(ctx, op::DELETE, resource::GROUP, g));
            Gate::Go(RequestKind::DeleteGroups(r), After::DeniedTopics(denied))
        }
        RequestKind::OffsetDelete(mut r) => {
            if !can(ctx, op::DELETE, resource::GROUP, &r.group_id) {
                return answer(ResponseKind::OffsetDelete(OffsetDeleteResponse { error_code: ErrorCode::GROUP_AUTHORIZATION_FAILED.code(), ..Default::default() }));
            }
            let denied = split_topics(&mut r.topics, |t| t.name.clone(), |t| t.partitions.iter().map(|p| p.partition_index).collect(), |n| can(ctx, op::READ, resource::TOPIC, n));
            Gate::Go(RequestKind::OffsetDelete(r), After::DeniedTopics(denied))
        }
        // Cluster-wide operations: Kafka answers CLUSTER_AUTHORIZATION_FAILED.
        RequestKind::ElectLeaders(r) => cluster_gate(ctx, op::ALTER, RequestKind::ElectLeaders(r), |code| {
            ResponseKind::ElectLeaders(ElectLeadersResponse { error_code: code, ..Default::default() })
        }),
        RequestKind::AlterPartitionReassignments(r) => cluster_gate(ctx, op::ALTER, RequestKind::AlterPartitionReassignments(r), |code| {
            ResponseKind::AlterPartitionReassignments(AlterPartitionReassignmentsResponse { error_code: code, error_message: Some(CLUSTER_DENIED.into()), ..Default::default() })
        }),
        RequestKind::ListPartitionReassignments(r) => cluster_gate(ctx, op::DESCRIBE, RequestKind::ListPartitionReassignments(r), |code| {
            ResponseKind::ListPartitionReassignments(ListPartitionReassignmentsResponse { error_code: code, error_message: Some(CLUSTER_DENIED.into()), ..Default::default() })
        }),
        RequestKind::DescribeQuorum(r) => cluster_gate(ctx, op::DESCRIBE, RequestKind::DescribeQuorum(r), |code| {
            ResponseKind::DescribeQuorum(DescribeQuorumResponse { error_code: code, error_message: Some(CLUSTER_DENIED.into()), ..Default::default() })
        }),
        RequestKind::DescribeUserScramCredentials(r) => cluster_gate(ctx, op::DESCRIBE, RequestKind::DescribeUserScramCredentials(r), |code| {
            ResponseKind::DescribeUserScramCredentials(DescribeUserScramCredentialsResponse { error_code: code, error_message: Some(CLUSTER_DENIED.into()), ..Default::default() })
        }),
        RequestKind::AlterUserScramCredentials(r) => {
            let users: Vec<String> = r.deletions.iter().map(|d| d.name.clone()).chain(r.upsertions.iter().map(|u| u.name.clone())).collect();
            cluster_gate(ctx, op::ALTER, RequestKind::AlterUserScramCredentials(r), |code| {
                let mut seen = std::collections::BTreeSet::new();
                ResponseKind::AlterUserScramCredentials(AlterUserScramCredentialsResponse {
                    results: users
                        .into_iter()
                        .filter(|u| seen.insert(u.clone()))
                        .map(|user| klamm_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult {
                            user,
                            error_code: code,
                            error_message: Some(CLUSTER_DENIED.into()),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
            })
        }
        // Transactions: Kafka's checks. The transactional id needs WRITE; the
        // topics, groups and partitions touched need what a plain request needs.
        RequestKind::AddPartitionsToTxn(r) => {
            if ctx.api_version >= 4 {
                // The batched form is broker to broker (verification).
                return cluster_gate(ctx, op::CLUSTER_ACTION, RequestKind::AddPartitionsToTxn(r), |code| {
                    ResponseKind::AddPartitionsToTxn(AddPartitionsToTxnResponse { error_code: code, ..Default::default() })
                });
            }
            let id_ok = can(ctx, op::WRITE, resource::TRANSACTIONAL_ID, &r.v3_and_below_transactional_id);
            let denied_topics: Vec<&str> = r.v3_and_below_topics.iter().map(|t| t.name.as_str()).filter(|t| !can(ctx, op::WRITE, resource::TOPIC, t)).collect();
            if id_ok && denied_topics.is_empty() {
                return go(RequestKind::AddPartitionsToTxn(r));
            }
            // A denied id fails every partition; a denied topic fails its
            // partitions and the rest are OPERATION_NOT_ATTEMPTED.
            let code_for = |topic: &str| {
                if !id_ok {
                    ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                } else if denied_topics.contains(&topic) {
                    ErrorCode::TOPIC_AUTHORIZATION_FAILED
                } else {
                    ErrorCode::OPERATION_NOT_ATTEMPTED
                }
            };
            use klamm_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult};
            let topic_results = r
                .v3_and_below_topics
                .iter()
                .map(|t| AddPartitionsToTxnTopicResult {
                    name: t.name.clone(),
                    results_by_partition: t
                        .partitions
                        .iter()
                        .map(|p| AddPartitionsToTxnPartitionResult { partition_index: *p, partition_error_code: code_for(&t.name).code(), ..Default::default() })
                        .collect(),
                    ..Default::default()
                })
                .collect();
            answer(ResponseKind::AddPartitionsToTxn(AddPartitionsToTxnResponse {
                results_by_transaction: vec![AddPartitionsToTxnResult { transactional_id: r.v3_and_below_transactional_id.clone(), topic_results, ..Default::default() }],
                ..Default::default()
            }))
        }
        RequestKind::AddOffsetsToTxn(r) => {
            let code = if !can(ctx, op::WRITE, resource::TRANSACTIONAL_ID, &r.transactional_id) {
                Some(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            } else if !can(ctx, op::READ, resource::GROUP, &r.group_id) {
                Some(ErrorCode::GROUP_AUTHORIZATION_FAILED)
            } else {
                None
            };
            match code {
                Some(code) => answer(ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse { error_code: code.code(), ..Default::default() })),
                None => go(RequestKind::AddOffsetsToTxn(r)),
            }
        }
        RequestKind::EndTxn(r) => {
            if can(ctx, op::WRITE, resource::TRANSACTIONAL_ID, &r.transactional_id) {
                go(RequestKind::EndTxn(r))
            } else {
                let code = ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code();
                answer(ResponseKind::EndTxn(EndTxnResponse { error_code: code, producer_id: -1, producer_epoch: -1, ..Default::default() }))
            }
        }
        RequestKind::TxnOffsetCommit(mut r) => {
            let whole = if !can(ctx, op::WRITE, resource::TRANSACTIONAL_ID, &r.transactional_id) {
                Some(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            } else if !can(ctx, op::READ, resource::GROUP, &r.group_id) {
                Some(ErrorCode::GROUP_AUTHORIZATION_FAILED)
            } else {
                None
            };
            use klamm_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
            let txn_topic = |name: &str, partitions: Vec<i32>, code: ErrorCode| TxnOffsetCommitResponseTopic {
                name: name.to_string(),
                partitions: partitions.into_iter().map(|p| TxnOffsetCommitResponsePartition { partition_index: p, error_code: code.code(), ..Default::default() }).collect(),
                ..Default::default()
            };
            if let Some(code) = whole {
                let topics = r.topics.iter().map(|t| txn_topic(&t.name, t.partitions.iter().map(|p| p.partition_index).collect(), code)).collect();
                return answer(ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse { topics, ..Default::default() }));
            }
            let denied = split_topics(&mut r.topics, |t| t.name.clone(), |t| t.partitions.iter().map(|p| p.partition_index).collect(), |t| can(ctx, op::READ, resource::TOPIC, t));
            if denied.is_empty() {
                return go(RequestKind::TxnOffsetCommit(r));
            }
            if r.topics.is_empty() {
                let topics = denied.into_iter().map(|(name, parts)| txn_topic(&name, parts, ErrorCode::TOPIC_AUTHORIZATION_FAILED)).collect();
                return answer(ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse { topics, ..Default::default() }));
            }
            Gate::Go(RequestKind::TxnOffsetCommit(r), After::DeniedTopics(denied))
        }
        RequestKind::WriteTxnMarkers(r) => cluster_gate(ctx, op::CLUSTER_ACTION, RequestKind::WriteTxnMarkers(r.clone()), |code| {
            ResponseKind::WriteTxnMarkers(crate::handlers::write_txn_markers::answer_every_partition(&r, ErrorCode::from(code)))
        }),
        RequestKind::DescribeProducers(mut r) => {
            let denied = split_topics(&mut r.topics, |t| t.name.clone(), |t| t.partition_indexes.clone(), |t| can(ctx, op::READ, resource::TOPIC, t));
            Gate::Go(RequestKind::DescribeProducers(r), After::DeniedTopics(denied))
        }
        RequestKind::DescribeTransactions(mut r) => {
            let mut denied_ids = Vec::new();
            r.transactional_ids.retain(|id| {
                let ok = can(ctx, op::DESCRIBE, resource::TRANSACTIONAL_ID, id);
                if !ok {
                    denied_ids.push(id.clone());
                }
                ok
            });
            Gate::Go(RequestKind::DescribeTransactions(r), After::DeniedTransactionalIds(denied_ids))
        }
        RequestKind::ListTransactions(r) => Gate::Go(RequestKind::ListTransactions(r), After::FilterTransactionalIds),
        other => {
            tracing::info!(api = ctx.api_key.name(), principal = %ctx.principal, "no authorization rule for this API; only super users may call it");
            admin_gate(ctx, i8::MAX, other)
        }
    }
}

/// Takes out the config resources the principal may not do `operation` (DESCRIBE_CONFIGS,
/// ALTER_CONFIGS) on — topics on the topic, brokers on the cluster — returning them as
/// (resource type, name).
fn split_config_resources<T>(ctx: &RequestContext, operation: i8, resources: &mut Vec<T>, key: impl Fn(&T) -> (i8, String)) -> Vec<(i8, String)> {
    let mut denied = Vec::new();
    resources.retain(|res| {
        let (resource_type, name) = key(res);
        let allowed = match resource_type {
            CONFIG_TOPIC => can(ctx, operation, resource::TOPIC, &name),
            _ => cluster(ctx, operation),
        };
        if !allowed {
            denied.push((resource_type, name));
        }
        allowed
    });
    denied
}

/// The APIs whose per-resource checks Klamm does not split yet: allowed with `operation` on
/// the cluster (ALTER for changes, DESCRIBE for reads; super users always), otherwise the
/// connection is closed rather than the request served.
fn admin_gate(ctx: &RequestContext, operation: i8, r: RequestKind) -> Gate {
    if operation != i8::MAX && cluster(ctx, operation) || ctx.broker.authorizer.is_super_user(&ctx.principal) {
        Gate::Go(r, After::Nothing)
    } else {
        tracing::info!(principal = %ctx.principal, "closing connection: request needs cluster-wide permission");
        Gate::Answer(Outcome::Close("not authorized"))
    }
}

const CLUSTER_DENIED: &str = "Cluster authorization failed.";

/// Dispatches `r` when the principal may do `operation` on the cluster, else answers it with
/// `denied(CLUSTER_AUTHORIZATION_FAILED)`.
fn cluster_gate(ctx: &RequestContext, operation: i8, r: RequestKind, denied: impl FnOnce(i16) -> ResponseKind) -> Gate {
    if cluster(ctx, operation) {
        Gate::Go(r, After::Nothing)
    } else {
        Gate::Answer(Outcome::Respond(denied(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code())))
    }
}

fn group_gate(ctx: &RequestContext, group: &str, r: RequestKind, denied: impl FnOnce(i16) -> ResponseKind) -> Gate {
    if can(ctx, op::READ, resource::GROUP, group) {
        Gate::Go(r, After::Nothing)
    } else {
        Gate::Answer(Outcome::Respond(denied(ErrorCode::GROUP_AUTHORIZATION_FAILED.code())))
    }
}

fn produce_topic(name: &str, partitions: Vec<i32>, code: i16) -> TopicProduceResponse {
    TopicProduceResponse {
        name: name.to_string(),
        partition_responses: partitions
            .into_iter()
            .map(|index| PartitionProduceResponse { index, error_code: code, base_offset: -1, log_append_time_ms: -1, log_start_offset: -1, ..Default::default() })
            .collect(),
        ..Default::default()
    }
}

fn commit_topic(name: &str, partitions: Vec<i32>, code: i16) -> OffsetCommitResponseTopic {
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
        (ResponseKind::DescribeTopicPartitions(mut r), After::DeniedTopics(d)) => {
            r.topics.extend(d.iter().map(|(n, _)| klamm_protocol::messages::describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic {
                name: Some(n.clone()),
                error_code: topic_failed(),
                ..Default::default()
            }));
            ResponseKind::DescribeTopicPartitions(r)
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
        (ResponseKind::Metadata(mut r), After::Metadata { denied, topic_ops, cluster_ops }) => {
            // Topics the principal may not see are left out (Kafka filters them likewise).
            r.topics.retain(|t| t.name.as_deref().is_none_or(|n| authz.authorize(&image, principal, host, op::DESCRIBE, resource::TOPIC, n)));
            r.topics.extend(denied.iter().map(|n| MetadataResponseTopic { name: Some(n.clone()), error_code: topic_failed(), topic_authorized_operations: i32::MIN, ..Default::default() }));
            if *topic_ops {
                for t in r.topics.iter_mut().filter(|t| t.error_code == 0) {
                    if let Some(n) = &t.name {
                        t.topic_authorized_operations = authz.authorized_operations(&image, principal, host, resource::TOPIC, n);
                    }
                }
            }
            if *cluster_ops {
                r.cluster_authorized_operations = authz.authorized_operations(&image, principal, host, resource::CLUSTER, CLUSTER_NAME);
            }
            ResponseKind::Metadata(r)
        }
        (ResponseKind::DescribeCluster(mut r), After::ClusterOps) => {
            r.cluster_authorized_operations = authz.authorized_operations(&image, principal, host, resource::CLUSTER, CLUSTER_NAME);
            ResponseKind::DescribeCluster(r)
        }
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
        (ResponseKind::OffsetFetch(mut r), After::FilterOffsetFetchTopics) => {
            let visible = |n: &str| authz.authorize(&image, principal, host, op::DESCRIBE, resource::TOPIC, n);
            r.topics.retain(|t| visible(&t.name));
            for g in r.groups.iter_mut() {
                g.topics.retain(|t| visible(&t.name));
            }
            ResponseKind::OffsetFetch(r)
        }
        (r, _) => r,
    }
}
