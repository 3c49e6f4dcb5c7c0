//! The checks whose answer Kafka assembles key by key, so that one refused key never hides
//! the answer for the others (`KafkaApis.handleTopicMetadataRequest`,
//! `handleFindCoordinatorRequest`, `handleOffsetFetchRequest`):
//!
//! - Metadata: a named topic needs DESCRIBE (else TOPIC_AUTHORIZATION_FAILED; the all-topics
//!   form silently leaves it out); one that does not exist and would be auto-created also
//!   needs CREATE on the cluster or on the topic, else that topic alone is answered
//!   TOPIC_AUTHORIZATION_FAILED while the others are described (or created).
//! - FindCoordinator: each key needs DESCRIBE on its group / transactional id; v4+ answers
//!   every key on its own, v0-3 (one key) fails the request.
//! - OffsetFetch: each group needs DESCRIBE (else GROUP_AUTHORIZATION_FAILED for that group);
//!   each named topic needs DESCRIBE (else its partitions are answered TOPIC_AUTHORIZATION_FAILED);
//!   the "all topics" form (topics null) silently leaves undescribable topics out.
//!
//! The request is narrowed here; [`super::complete`] puts the refused keys back into the
//! handler's answer, in the request's order.

use klamm_protocol::messages::find_coordinator_response::Coordinator;
use klamm_protocol::messages::metadata_response::MetadataResponseTopic;
use klamm_protocol::messages::offset_fetch_response::{OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponseTopic};
use klamm_protocol::messages::*;
use klamm_protocol::{ErrorCode, Uuid};
use klamm_raft::MetadataImage;

use super::{can, cluster, split_topics, After, Gate};
use crate::handlers::{Outcome, RequestContext};
use crate::security::authorizer::{op, resource};
use crate::topics::is_internal;

/// FindCoordinator's key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
const KEY_TYPE_SHARE: i8 = 2;

fn answer(r: ResponseKind) -> Gate {
    Gate::Answer(Outcome::Respond(r))
}

pub(super) fn metadata(ctx: &RequestContext, image: &MetadataImage, mut r: MetadataRequest) -> Gate {
    let v = ctx.api_version;
    let topic_ops = r.include_topic_authorized_operations;
    // Kafka reports cluster operations in Metadata v8-10 only (DescribeCluster took over).
    let cluster_ops = r.include_cluster_authorized_operations && (8..=10).contains(&v);
    let all_topics = r.topics.as_ref().is_none_or(|t| t.is_empty() && v == 0);
    let mut denied_create = Vec::new();
    let mut denied_describe = Vec::new();
    let mut none_left = false;
    if let (false, Some(topics)) = (all_topics, r.topics.as_mut()) {
        let auto_create = ctx.broker.config.auto_create_topics_enable && (v < 4 || r.allow_auto_topic_creation);
        let mut create_any: Option<bool> = None;
        topics.retain(|t| match &t.name {
            Some(name) if !can(ctx, op::DESCRIBE, resource::TOPIC, name) => {
                // Do not disclose whether the topic exists: no id, not internal.
                denied_describe.push(denied_topic(Some(name.clone()), Uuid::ZERO, false));
                false
            }
            Some(name) if auto_create && !image.topics.contains_key(name) => {
                let may = *create_any.get_or_insert_with(|| cluster(ctx, op::CREATE)) || can(ctx, op::CREATE, resource::TOPIC, name);
                if !may {
                    denied_create.push(denied_topic(Some(name.clone()), Uuid::ZERO, is_internal(name)));
                }
                may
            }
            Some(_) => true,
            // v12+ by id: ids are not secret, so a refused one is answered with its id.
            None => match image.topic_names_by_id.get(&t.topic_id.0) {
                Some(name) if !can(ctx, op::DESCRIBE, resource::TOPIC, name) => {
                    denied_describe.push(denied_topic(None, t.topic_id, false));
                    false
                }
                _ => true,
            },
        });
        none_left = topics.is_empty();
    }
    denied_create.extend(denied_describe);
    Gate::Go(RequestKind::Metadata(r), After::Metadata { denied: denied_create, none_left, topic_ops, cluster_ops })
}

fn denied_topic(name: Option<String>, topic_id: Uuid, is_internal: bool) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: ErrorCode::TOPIC_AUTHORIZATION_FAILED.code(),
        name,
        topic_id,
        is_internal,
        topic_authorized_operations: i32::MIN,
        ..Default::default()
    }
}

pub(super) fn find_coordinator(ctx: &RequestContext, mut r: FindCoordinatorRequest) -> Gate {
    let v = ctx.api_version;
    let key_type = if v >= 1 { r.key_type } else { KEY_TYPE_GROUP };
    let (resource_type, code) = match key_type {
        KEY_TYPE_GROUP => (resource::GROUP, ErrorCode::GROUP_AUTHORIZATION_FAILED),
        KEY_TYPE_TRANSACTION => (resource::TRANSACTIONAL_ID, ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        // Share coordinators (v6) need CLUSTER_ACTION; Kafka fails the whole request without it.
        KEY_TYPE_SHARE if v >= 6 && !cluster(ctx, op::CLUSTER_ACTION) => {
            let keys = std::mem::take(&mut r.coordinator_keys);
            return answer(ResponseKind::FindCoordinator(FindCoordinatorResponse {
                coordinators: keys.into_iter().map(|k| refused_coordinator(k, ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code())).collect(),
                ..Default::default()
            }));
        }
        // Unknown types: the handler answers INVALID_REQUEST.
        _ => return Gate::Go(RequestKind::FindCoordinator(r), After::Nothing),
    };
    let allowed = |key: &str| can(ctx, op::DESCRIBE, resource_type, key);
    if v < 4 {
        if allowed(&r.key) {
            return Gate::Go(RequestKind::FindCoordinator(r), After::Nothing);
        }
        return answer(ResponseKind::FindCoordinator(FindCoordinatorResponse {
            error_code: code.code(),
            error_message: Some(authorization_message(code)),
            node_id: -1,
            host: String::new(),
            port: -1,
            ..Default::default()
        }));
    }
    let keys = r.coordinator_keys.clone();
    let denied: Vec<String> = keys.iter().filter(|k| !allowed(k)).cloned().collect();
    if denied.is_empty() {
        return Gate::Go(RequestKind::FindCoordinator(r), After::Nothing);
    }
    r.coordinator_keys.retain(|k| !denied.contains(k));
    let after = After::FindCoordinator { keys, denied, code: code.code() };
    if r.coordinator_keys.is_empty() {
        // Every key refused: nothing for the handler to look up.
        let response = super::complete::find_coordinator(FindCoordinatorResponse::default(), &after);
        return answer(ResponseKind::FindCoordinator(response));
    }
    Gate::Go(RequestKind::FindCoordinator(r), after)
}

fn authorization_message(code: ErrorCode) -> String {
    if code == ErrorCode::GROUP_AUTHORIZATION_FAILED { "Group authorization failed.".into() } else { "Transactional Id authorization failed.".into() }
}

/// A FindCoordinator v4+ entry for a refused key (Kafka: no node, no message).
pub(super) fn refused_coordinator(key: String, code: i16) -> Coordinator {
    Coordinator { key, node_id: -1, host: String::new(), port: -1, error_code: code, ..Default::default() }
}

/// What happened to one group of an OffsetFetch request before its handler ran.
pub enum GroupFate {
    /// No DESCRIBE on the group: answered GROUP_AUTHORIZATION_FAILED, not asked.
    Denied(String),
    /// Asked without the topics in `denied`; with `all_topics` (topics null) the handler's
    /// answer is filtered instead.
    Allowed { all_topics: bool, denied: Vec<(String, Vec<i32>)> },
}

pub(super) fn offset_fetch(ctx: &RequestContext, mut r: OffsetFetchRequest) -> Gate {
    let describe_group = |g: &str| can(ctx, op::DESCRIBE, resource::GROUP, g);
    let describe_topic = |t: &str| can(ctx, op::DESCRIBE, resource::TOPIC, t);
    if ctx.api_version >= 8 {
        let mut fates = Vec::with_capacity(r.groups.len());
        let mut asked = Vec::with_capacity(r.groups.len());
        for mut g in std::mem::take(&mut r.groups) {
            if !describe_group(&g.group_id) {
                fates.push(GroupFate::Denied(g.group_id));
                continue;
            }
            let denied = match g.topics.as_mut() {
                Some(topics) => split_topics(topics, |t| t.name.clone(), |t| t.partition_indexes.clone(), describe_topic),
                None => Vec::new(),
            };
            fates.push(GroupFate::Allowed { all_topics: g.topics.is_none(), denied });
            asked.push(g);
        }
        if asked.is_empty() {
            let response = super::complete::offset_fetch(ctx, OffsetFetchResponse::default(), &fates);
            return answer(ResponseKind::OffsetFetch(response));
        }
        r.groups = asked;
        return Gate::Go(RequestKind::OffsetFetch(r), After::OffsetFetch(fates));
    }
    if !describe_group(&r.group_id) {
        return answer(ResponseKind::OffsetFetch(group_refused_v0_7(ctx.api_version, &r)));
    }
    let denied = match r.topics.as_mut() {
        Some(topics) => split_topics(topics, |t| t.name.clone(), |t| t.partition_indexes.clone(), describe_topic),
        None => Vec::new(),
    };
    let fate = GroupFate::Allowed { all_topics: r.topics.is_none(), denied };
    Gate::Go(RequestKind::OffsetFetch(r), After::OffsetFetch(vec![fate]))
}

/// OffsetFetch v0-7 of a group the principal may not DESCRIBE: the top-level error from v2;
/// before v2, which has no top-level error, on every requested partition (Kafka's
/// `OffsetFetchRequest.getErrorResponse`).
fn group_refused_v0_7(version: i16, r: &OffsetFetchRequest) -> OffsetFetchResponse {
    let code = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
    if version >= 2 {
        return OffsetFetchResponse { error_code: code, ..Default::default() };
    }
    let topics = r
        .topics
        .iter()
        .flatten()
        .map(|t| OffsetFetchResponseTopic { name: t.name.clone(), partitions: t.partition_indexes.iter().map(|&p| refused_partition(p, code)).collect(), ..Default::default() })
        .collect();
    OffsetFetchResponse { topics, ..Default::default() }
}

/// An OffsetFetch v0-7 partition answered `code` (Kafka's UNAUTHORIZED_PARTITION shape).
pub(super) fn refused_partition(partition_index: i32, code: i16) -> OffsetFetchResponsePartition {
    OffsetFetchResponsePartition { partition_index, committed_offset: -1, committed_leader_epoch: -1, metadata: Some(String::new()), error_code: code, ..Default::default() }
}

/// An OffsetFetch v8+ group answered GROUP_AUTHORIZATION_FAILED.
pub(super) fn refused_group(group_id: String) -> OffsetFetchResponseGroup {
    OffsetFetchResponseGroup { group_id, error_code: ErrorCode::GROUP_AUTHORIZATION_FAILED.code(), ..Default::default() }
}
