//! FindCoordinator (key 10): v0-3 one `key`, v4+ batched `coordinator_keys`
//! (KIP-699). Groups are coordinated by the leader of their
//! `__consumer_offsets` partition; the topic is created on first use, as
//! Kafka does. Transactions (key_type 1) are coordinated by the leader of
//! their `__transaction_state` partition, created on first use likewise.

use std::collections::BTreeMap;

use klamm_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use klamm_protocol::messages::FindCoordinatorRequest;
use klamm_protocol::ErrorCode;

use super::create_topics::{create_topic, TopicSpec};
use super::RequestContext;
use crate::group::OFFSETS_TOPIC;
use crate::txn::TRANSACTION_STATE_TOPIC;

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

/// An internal topic a coordinator lives in, as Kafka creates it on first use.
struct InternalTopic {
    name: &'static str,
    partitions: i32,
    replication_factor: i16,
    configs: Vec<(&'static str, String)>,
}

/// Creates `__consumer_offsets` like Kafka's auto-creation of internal
/// topics: `offsets.topic.num.partitions` partitions spread over the live
/// brokers, compacted, with `offsets.topic.replication.factor` replicas. As in
/// Kafka, while fewer brokers are alive than that factor the topic is not
/// created and FindCoordinator answers COORDINATOR_NOT_AVAILABLE (clients
/// retry), except on a cluster of one broker, which gets one replica.
pub async fn ensure_offsets_topic(ctx: &RequestContext) -> Result<(), ErrorCode> {
    let c = &ctx.broker.config;
    ensure_internal_topic(
        ctx,
        InternalTopic {
            name: OFFSETS_TOPIC,
            partitions: c.offsets_topic_num_partitions,
            replication_factor: c.offsets_topic_replication_factor,
            configs: vec![
                ("cleanup.policy", "compact".to_string()),
                ("segment.bytes", c.offsets_topic_segment_bytes.to_string()),
                ("compression.type", "producer".to_string()),
            ],
        },
    )
    .await
}

/// Creates `__transaction_state` the same way, with Kafka's
/// `transactionTopicConfigs`: `transaction.state.log.num.partitions`,
/// `transaction.state.log.replication.factor`, compacted,
/// `transaction.state.log.segment.bytes`, `min.insync.replicas` =
/// `transaction.state.log.min.isr`, no unclean leader election.
pub async fn ensure_transaction_topic(ctx: &RequestContext) -> Result<(), ErrorCode> {
    let c = &ctx.broker.config;
    ensure_internal_topic(
        ctx,
        InternalTopic {
            name: TRANSACTION_STATE_TOPIC,
            partitions: c.transaction_state_log_num_partitions,
            replication_factor: c.transaction_state_log_replication_factor,
            configs: vec![
                ("cleanup.policy", "compact".to_string()),
                ("segment.bytes", c.transaction_state_log_segment_bytes.to_string()),
                ("min.insync.replicas", c.transaction_state_log_min_isr.to_string()),
                ("unclean.leader.election.enable", "false".to_string()),
                ("compression.type", "producer".to_string()),
            ],
        },
    )
    .await
}

async fn ensure_internal_topic(ctx: &RequestContext, topic: InternalTopic) -> Result<(), ErrorCode> {
    let broker = &ctx.broker;
    if broker.metadata.image().topic(topic.name).is_some() {
        return Ok(());
    }
    let replication_factor = internal_replication_factor(broker, topic.replication_factor);
    let mut configs: BTreeMap<String, String> = topic.configs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    if replication_factor == 1 {
        // A one-replica topic cannot meet a larger minimum ISR.
        configs.remove("min.insync.replicas");
    }
    let spec = TopicSpec {
        name: topic.name.to_string(),
        num_partitions: topic.partitions.max(1),
        replication_factor,
        assignment: Vec::new(),
        configs,
    };
    match create_topic(broker, spec, false).await {
        Ok(_) => Ok(()),
        Err((code, _)) if code == ErrorCode::TOPIC_ALREADY_EXISTS => Ok(()),
        Err((code, message)) => {
            tracing::warn!(error = ?code, %message, "creating {} failed", topic.name);
            Err(ErrorCode::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

/// The replication factor an internal topic is created with (see [`ensure_offsets_topic`]).
fn internal_replication_factor(broker: &crate::server::Broker, configured: i16) -> i16 {
    let image = broker.metadata.image();
    if image.brokers.len() <= 1 && broker.config.controller_quorum_voters.len() <= 1 {
        1
    } else {
        configured.max(1)
    }
}

async fn find_one(ctx: &RequestContext, key_type: i8, key: String) -> Coordinator {
    let (topic, ensured) = match key_type {
        KEY_TYPE_GROUP => (OFFSETS_TOPIC, ensure_offsets_topic(ctx).await),
        KEY_TYPE_TRANSACTION => (TRANSACTION_STATE_TOPIC, ensure_transaction_topic(ctx).await),
        _ => return error(key, ErrorCode::INVALID_REQUEST, &format!("Unknown coordinator type {key_type}")),
    };
    if ensured.is_err() {
        return error(key, ErrorCode::COORDINATOR_NOT_AVAILABLE, "The coordinator is not available.");
    }
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let partition = if key_type == KEY_TYPE_GROUP {
        broker.groups.sync_leadership(&image, &broker.replicas);
        broker.groups.partition_for_image(&image, &key)
    } else {
        broker.txns.sync_leadership(&image, &broker.replicas);
        broker.txns.partition_for_image(&image, &key)
    };
    let leader = image.partition(topic, partition).map(|p| p.leader).unwrap_or(-1);
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
