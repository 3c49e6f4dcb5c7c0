//! Metadata (key 3): brokers, cluster id, controller and topic/partition
//! leadership, with auto topic creation when `auto.create.topics.enable`.

use klamm_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use klamm_protocol::messages::MetadataRequest;
use klamm_protocol::{ErrorCode, Uuid};
use klamm_raft::{MetadataImage, PartitionImage, TopicImage, NO_LEADER};
use std::collections::HashSet;

use super::create_topics::{create_topic, TopicSpec};
use super::RequestContext;
use crate::topics::{is_internal, validate_topic_name};

pub async fn handle(ctx: &RequestContext, request: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let mut image = broker.metadata.image();
    let local = LocalOffline::of(broker);

    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested: Option<Vec<(Option<String>, Uuid)>> = match request.topics {
        None => None,
        Some(t) if t.is_empty() && ctx.api_version == 0 => None,
        Some(t) => Some(t.into_iter().map(|t| (t.name, t.topic_id)).collect()),
    };
    let allow_auto_create = (ctx.api_version < 4 || request.allow_auto_topic_creation)
        && broker.config.auto_create_topics_enable;

    let mut topics = Vec::new();
    match requested {
        None => {
            for topic in image.topics.values() {
                topics.push(topic_metadata(&image, topic, &local));
            }
        }
        Some(list) => {
            for (name, topic_id) in list {
                let name = match name {
                    Some(n) => n,
                    None => {
                        // v12+ lookup by id.
                        match image.topic_by_id(&topic_id.0) {
                            Some(t) => topics.push(topic_metadata(&image, t, &local)),
                            None => topics.push(MetadataResponseTopic {
                                error_code: ErrorCode::UNKNOWN_TOPIC_ID.code(),
                                name: None,
                                topic_id,
                                ..Default::default()
                            }),
                        }
                        continue;
                    }
                };
                if let Some(t) = image.topic(&name) {
                    topics.push(topic_metadata(&image, t, &local));
                    continue;
                }
                if validate_topic_name(&name).is_err() {
                    topics.push(error_topic(name, ErrorCode::INVALID_TOPIC_EXCEPTION));
                    continue;
                }
                if !allow_auto_create || is_internal(&name) {
                    topics.push(error_topic(name, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
                    continue;
                }
                let spec = TopicSpec::with_defaults(&broker.config, name.clone());
                match create_topic(broker, spec, false).await {
                    Ok(_) => {
                        image = broker.metadata.image();
                        match image.topic(&name) {
                            Some(t) => topics.push(topic_metadata(&image, t, &local)),
                            None => topics.push(error_topic(name, ErrorCode::LEADER_NOT_AVAILABLE)),
                        }
                    }
                    // Another client created it between our check and the proposal.
                    Err((code, _)) if code == ErrorCode::TOPIC_ALREADY_EXISTS => {
                        image = broker.metadata.image();
                        match image.topic(&name) {
                            Some(t) => topics.push(topic_metadata(&image, t, &local)),
                            None => topics.push(error_topic(name, ErrorCode::LEADER_NOT_AVAILABLE)),
                        }
                    }
                    Err((code, _)) => topics.push(error_topic(name, code)),
                }
            }
        }
    }

    MetadataResponse {
        throttle_time_ms: 0,
        brokers: brokers(ctx, &image),
        cluster_id: Some(image.cluster_id.clone()),
        controller_id: controller_id(ctx, &image),
        topics,
        ..Default::default()
    }
}

/// The `controller_id` Metadata and DescribeCluster report: the active controller (the Raft
/// leader) when it is a live broker, otherwise this broker.
///
/// Clients send controller-bound requests (CreateTopics, ElectLeaders, ...) to the node with
/// this id and look it up among the *brokers* of the response: Java's AdminClient waits for a
/// controller node it can find there, librdkafka likewise. A controller-only node is never in
/// that list, so naming it would stall those clients; Kafka's KRaft brokers avoid this by
/// naming a random live broker (KIP-590: every broker forwards controller requests), and any
/// Klamm broker forwards proposals to the quorum leader just the same.
pub fn controller_id(ctx: &RequestContext, image: &MetadataImage) -> i32 {
    pick_controller_id(image, ctx.broker.metadata.active_controller(), ctx.broker.node_id)
}

fn pick_controller_id(image: &MetadataImage, active_controller: Option<i32>, own_id: i32) -> i32 {
    match active_controller {
        Some(id) if image.broker(id).is_some_and(|b| !b.fenced && !b.endpoints.is_empty()) => id,
        _ => own_id,
    }
}

/// This node's replicas whose log could not be opened (`ReplicaManager`'s
/// offline partitions): offline as far as this node knows, as Kafka reports a
/// replica on a failed log directory.
pub struct LocalOffline {
    node_id: i32,
    partitions: HashSet<crate::topic_partition::TopicPartition>,
}

impl LocalOffline {
    pub fn of(broker: &crate::server::Broker) -> LocalOffline {
        let partitions = broker.replicas.offline_partitions().into_iter().map(|(tp, _)| tp).collect();
        LocalOffline::new(broker.node_id, partitions)
    }

    pub fn new(node_id: i32, partitions: HashSet<crate::topic_partition::TopicPartition>) -> LocalOffline {
        LocalOffline { node_id, partitions }
    }

    /// Nothing offline locally.
    pub fn none(node_id: i32) -> LocalOffline {
        LocalOffline::new(node_id, HashSet::new())
    }

    /// True if this node's replica of the partition is offline.
    pub fn holds(&self, topic: &str, p: &PartitionImage) -> bool {
        !self.partitions.is_empty() && self.partitions.contains(&crate::topic_partition::TopicPartition::new(topic, p.partition))
    }

    /// True if this node leads the partition but cannot serve it.
    pub fn is_offline_leader(&self, topic: &str, p: &PartitionImage) -> bool {
        p.leader == self.node_id && self.holds(topic, p)
    }
}

/// Replicas whose broker is fenced or not registered, and this node's own
/// replica if its log could not be opened (Kafka's `offline_replicas`).
pub fn offline_replicas(image: &MetadataImage, topic: &str, p: &PartitionImage, local: &LocalOffline) -> Vec<i32> {
    let local_offline = local.holds(topic, p);
    p.replicas
        .iter()
        .copied()
        .filter(|r| image.broker(*r).is_none_or(|b| b.fenced) || (local_offline && *r == local.node_id))
        .collect()
}

fn error_topic(name: String, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic { error_code: code.code(), name: Some(name), ..Default::default() }
}

/// Unfenced brokers with their endpoint on the listener the request came in on.
pub fn brokers(ctx: &RequestContext, image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    image
        .unfenced_brokers()
        .filter_map(|b| {
            let ep = b.endpoints.iter().find(|e| e.listener == ctx.listener).or_else(|| b.endpoints.first())?;
            Some(MetadataResponseBroker {
                node_id: b.node_id,
                host: ep.host.clone(),
                port: ep.port as i32,
                rack: b.rack.clone(),
                ..Default::default()
            })
        })
        .collect()
}

pub fn topic_metadata(image: &MetadataImage, topic: &TopicImage, local: &LocalOffline) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .values()
        .map(|p| {
            let offline = offline_replicas(image, &topic.name, p, local);
            let leader_unavailable = p.leader == NO_LEADER || local.is_offline_leader(&topic.name, p);
            MetadataResponsePartition {
                error_code: if leader_unavailable { ErrorCode::LEADER_NOT_AVAILABLE.code() } else { 0 },
                partition_index: p.partition,
                leader_id: if leader_unavailable { NO_LEADER } else { p.leader },
                leader_epoch: p.leader_epoch,
                replica_nodes: p.replicas.clone(),
                isr_nodes: p.isr.clone(),
                offline_replicas: offline,
                ..Default::default()
            }
        })
        .collect();
    MetadataResponseTopic {
        error_code: 0,
        name: Some(topic.name.clone()),
        topic_id: Uuid(topic.topic_id),
        is_internal: is_internal(&topic.name),
        partitions,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use klamm_raft::{BrokerEndpoint, MetadataCommand};

    #[test]
    fn controller_id_is_the_active_controller_when_it_is_a_live_broker() {
        let mut img = MetadataImage::default();
        let endpoint =
            BrokerEndpoint { listener: "PLAINTEXT".into(), host: "h".into(), port: 1, security_protocol: "PLAINTEXT".into() };
        for (i, id) in [1, 2, 3].into_iter().enumerate() {
            let endpoints = if id == 3 { vec![] } else { vec![endpoint.clone()] };
            let reg = MetadataCommand::RegisterBroker { node_id: id, incarnation_id: [id as u8; 16], endpoints, rack: None };
            let index = 2 * i as u64 + 1;
            assert!(img.apply(index, &reg).is_applied());
            if id != 2 {
                let unfence = MetadataCommand::UnfenceBroker { node_id: id, epoch: index as i64 };
                assert!(img.apply(index + 1, &unfence).is_applied());
            }
        }
        assert_eq!(pick_controller_id(&img, Some(1), 9), 1, "a live broker");
        assert_eq!(pick_controller_id(&img, Some(2), 9), 9, "fenced");
        assert_eq!(pick_controller_id(&img, Some(3), 9), 9, "no endpoint");
        assert_eq!(pick_controller_id(&img, Some(4), 9), 9, "a controller-only node (not a broker)");
        assert_eq!(pick_controller_id(&img, None, 9), 9, "no leader known");
    }
}
