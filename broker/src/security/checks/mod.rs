//! What each served API must be allowed to do, checked before its handler runs — the one
//! place the request path consults the [`Authorizer`](super::authorizer::Authorizer)
//! (`handlers::handle` calls [`before`] and [`after`] when ACLs are on).
//!
//! The checks are Kafka's (`KafkaApis` / `ControllerApis`): a request-wide denial is answered
//! here with the API's error code; topics (or groups) the principal may not touch are taken
//! out of the request, and their entries are added to the handler's response with
//! TOPIC_AUTHORIZATION_FAILED (GROUP_...) afterwards ([`complete`]), so handlers never see
//! them. Where Kafka answers key by key (Metadata, FindCoordinator, OffsetFetch) the narrowing
//! lives in [`per_key`]. One filter must sit in a handler: DescribeTopicPartitions listing
//! every topic shows only describable ones, before it paginates. An API without a check here
//! is refused for anyone but super users (closing the connection), so a newly served API is
//! never open by default; docs/security.md has the table of what each API needs.

mod complete;
mod per_key;

use klamm_protocol::messages::metadata_response::MetadataResponseTopic;
use klamm_protocol::messages::*;
use klamm_protocol::ErrorCode;

use super::authorizer::{op, resource, CLUSTER_NAME};
use crate::handlers::{Outcome, RequestContext};
use complete::{commit_topic, produce_topic};
pub use complete::after;
pub use per_key::GroupFate;

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
    /// Metadata: hide topics the principal may not DESCRIBE, add the `denied` entries (no
    /// CREATE for auto-creation, then no DESCRIBE), and fill the authorized-operations fields
    /// when asked. `none_left` drops the handler's topics: every named topic was denied, and
    /// the empty list that remains would mean "all topics" to a v0 handler.
    Metadata { denied: Vec<MetadataResponseTopic>, none_left: bool, topic_ops: bool, cluster_ops: bool },
    /// DescribeCluster: fill `cluster_authorized_operations` when asked.
    ClusterOps { include: bool },
    /// DescribeGroups: set errors and authorized operations per group.
    DescribeGroups { include_ops: bool },
    /// ListGroups: drop groups the principal may not DESCRIBE (unless it may DESCRIBE the cluster).
    FilterGroups,
    /// OffsetFetch: per group of the request, in its order, what the handler was not asked.
    OffsetFetch(Vec<GroupFate>),
    /// FindCoordinator v4+: the request's keys in order; `denied` ones are answered `code`.
    FindCoordinator { keys: Vec<String>, denied: Vec<String>, code: i16 },
    /// DescribeTopicPartitions: fill the authorized operations, add the denied topics.
    DescribeTopicPartitions(Vec<String>),
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
            let name_of = |t: &klamm_protocol::messages::fetch_request::FetchTopic| {
                if t.topic.is_empty() { image.topic_names_by_id.get(&t.topic_id.0).cloned().unwrap_or_default() } else { t.topic.clone() }
            };
            if replica >= 0 {
                // A follower needs CLUSTER_ACTION; without it Kafka answers every partition
                // TOPIC_AUTHORIZATION_FAILED (not a request-wide error).
                if cluster(ctx, op::CLUSTER_ACTION) {
                    return go(RequestKind::Fetch(r));
                }
                let denied = split_topics(&mut r.topics, name_of, |t| t.partitions.iter().map(|p| p.partition).collect(), |_| false);
                return Gate::Go(RequestKind::Fetch(r), After::DeniedTopics(denied));
            }
            let denied = split_topics(&mut r.topics, name_of, |t| t.partitions.iter().map(|p| p.partition).collect(), |n| n.is_empty() || can(ctx, op::READ, resource::TOPIC, n));
            Gate::Go(RequestKind::Fetch(r), After::DeniedTopics(denied))
        }
        RequestKind::ListOffsets(mut r) => {
            let denied = split_topics(&mut r.topics, |t| t.name.clone(), |t| t.partitions.iter().map(|p| p.partition_index).collect(), |n| can(ctx, op::DESCRIBE, resource::TOPIC, n));
            Gate::Go(RequestKind::ListOffsets(r), After::DeniedTopics(denied))
        }
        RequestKind::Metadata(r) => per_key::metadata(ctx, &image, r),
        RequestKind::DescribeCluster(r) => {
            let include = r.include_cluster_authorized_operations;
            Gate::Go(RequestKind::DescribeCluster(r), After::ClusterOps { include })
        }
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
        RequestKind::FindCoordinator(r) => per_key::find_coordinator(ctx, r),
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
        RequestKind::OffsetFetch(r) => per_key::offset_fetch(ctx, r),
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
            // Kafka (KIP-320): CLUSTER_ACTION covers every topic (followers), else each topic
            // needs DESCRIBE (consumers), whatever the replica id says.
            if cluster(ctx, op::CLUSTER_ACTION) {
                return go(RequestKind::OffsetForLeaderEpoch(r));
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
        // Without named topics the handler lists only those the principal may DESCRIBE (the
        // filter must come before its pagination).
        RequestKind::DescribeTopicPartitions(mut r) => {
            let named = !r.topics.is_empty();
            let denied: Vec<String> = split_topics(&mut r.topics, |t| t.name.clone(), |_| Vec::new(), |n| can(ctx, op::DESCRIBE, resource::TOPIC, n)).into_iter().map(|(n, _)| n).collect();
            if named && r.topics.is_empty() {
                // Nothing left to describe; an empty list would mean every topic.
                let response = complete::describe_topic_partitions(ctx, DescribeTopicPartitionsResponse::default(), &denied);
                return answer(ResponseKind::DescribeTopicPartitions(response));
            }
            Gate::Go(RequestKind::DescribeTopicPartitions(r), After::DescribeTopicPartitions(denied))
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
            use klamm_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult};
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
            // v0-3 carry the results per topic, not per transaction.
            answer(ResponseKind::AddPartitionsToTxn(AddPartitionsToTxnResponse { results_by_topic_v3_and_below: topic_results, ..Default::default() }))
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
        other => no_rule(ctx, other),
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

/// Why [`no_rule`] closes a connection (a test checks that no served API ends there).
pub const NO_RULE: &str = "no authorization rule for this API";

/// An API without a rule here (one served later and forgotten): super users only, the
/// connection of anyone else is closed rather than the request served.
fn no_rule(ctx: &RequestContext, r: RequestKind) -> Gate {
    if ctx.broker.authorizer.is_super_user(&ctx.principal) {
        Gate::Go(r, After::Nothing)
    } else {
        tracing::info!(api = ctx.api_key.name(), principal = %ctx.principal, "closing connection: no authorization rule for this API; only super users may call it");
        Gate::Answer(Outcome::Close(NO_RULE))
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
