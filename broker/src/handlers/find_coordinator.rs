//! FindCoordinator (key 10): v0-3 one `key`, v4+ batched `coordinator_keys`
//! (KIP-699). Groups are coordinated by the leader of their
//! `__consumer_offsets` partition; the topic is created on first use, as
//! Kafka does. Transaction coordinators (key_type 1) do not exist yet.

use std::collections::BTreeMap;

use klamm_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use klamm_protocol::messages::FindCoordinatorRequest;
use klamm_protocol::ErrorCode;

use super::create_topics::{create_topic, TopicSpec};
use super::RequestContext;
use crate::group::OFFSETS_TOPIC;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(ctx: &RequestContext, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let v = ctx.api_version;
    let key_type = if v >= 1 { request.key_type } else { KEY_TYPE_GROUP };
    if v >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in request.coordinator_keys {
            coordinators.push(find_one(ctx, key_type, key).await);
        }
        return FindCoordinatorResponse { coordinators, ..Default::default() };
    }
    let c = find_one(ctx, key_type, request.key).await;
    FindCoordinatorResponse {
        error_code: c.error_code,
        error_message: c.error_message,
        node_id: c.node_id,
        host: c.host,
        port: c.port,
        ..Default::default()
    }
}

fn error(key: String, code: ErrorCode, message: &str) -> Coordinator {
    Coordinator {
        key,
        node_id: -1,
        host: String::new(),
        port: -1,
        error_code: code.code(),
        error_message: Some(message.to_string()),
        ..Default::default()
    }
}

/// Creates `__consumer_offsets` like Kafka's auto-creation of internal
/// topics: `offsets.topic.num.partitions` partitions spread over the live
/// brokers, compacted, with `offsets.topic.replication.factor` replicas. As in
/// Kafka, while fewer brokers are alive than that factor the topic is not
/// created and FindCoordinator answers COORDINATOR_NOT_AVAILABLE (clients
/// retry), except on a cluster of one broker, which gets one replica.
pub async fn ensure_offsets_topic(ctx: &RequestContext) -> Result<(), ErrorCode> {
    let broker = &ctx.broker;
    if broker.metadata.image().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let mut configs = BTreeMap::new();
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    configs.insert("segment.bytes".to_string(), broker.config.offsets_topic_segment_bytes.to_string());
    configs.insert("compression.type".to_string(), "producer".to_string());
    let spec = TopicSpec {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: broker.config.offsets_topic_num_partitions.max(1),
        replication_factor: offsets_replication_factor(broker),
        assignment: Vec::new(),
        configs,
    };
    match create_topic(broker, spec, false).await {
        Ok(_) => Ok(()),
        Err((code, _)) if code == ErrorCode::TOPIC_ALREADY_EXISTS => Ok(()),
        Err((code, message)) => {
            tracing::warn!(error = ?code, %message, "creating {OFFSETS_TOPIC} failed");
            Err(ErrorCode::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

/// The replication factor `__consumer_offsets` is created with (see [`ensure_offsets_topic`]).
fn offsets_replication_factor(broker: &crate::server::Broker) -> i16 {
    let image = broker.metadata.image();
    let configured = broker.config.offsets_topic_replication_factor.max(1);
    if image.brokers.len() <= 1 && broker.config.controller_quorum_voters.len() <= 1 {
        1
    } else {
        configured
    }
}

async fn find_one(ctx: &RequestContext, key_type: i8, key: String) -> Coordinator {
    match key_type {
        KEY_TYPE_GROUP => {}
        KEY_TYPE_TRANSACTION => {
            return error(key, ErrorCode::COORDINATOR_NOT_AVAILABLE, "The coordinator is not available.");
        }
        _ => return error(key, ErrorCode::INVALID_REQUEST, &format!("Unknown coordinator type {key_type}")),
    }
    if ensure_offsets_topic(ctx).await.is_err() {
        return error(key, ErrorCode::COORDINATOR_NOT_AVAILABLE, "The coordinator is not available.");
    }
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    broker.groups.sync_leadership(&image, &broker.replicas);
    let partition = broker.groups.partition_for_image(&image, &key);
    let leader = image.partition(OFFSETS_TOPIC, partition).map(|p| p.leader).unwrap_or(-1);
    let endpoint = image.broker(leader).filter(|b| !b.fenced).and_then(|b| {
        b.endpoints.iter().find(|e| e.listener == ctx.listener).or_else(|| b.endpoints.first()).cloned()
    });
    match endpoint {
        Some(ep) => Coordinator {
            key,
            node_id: leader,
            host: ep.host,
            port: ep.port as i32,
            error_code: 0,
            error_message: None,
            ..Default::default()
        },
        None => error(key, ErrorCode::COORDINATOR_NOT_AVAILABLE, "The coordinator is not available."),
    }
}
