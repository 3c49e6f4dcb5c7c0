//! CreateTopics (key 19), and [`create_topic`], which auto-creation shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use klamm_config::BrokerConfig;
use klamm_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse};
use klamm_protocol::messages::CreateTopicsRequest;
use klamm_protocol::{ErrorCode, Uuid};
use klamm_raft::{MetadataCommand, NewPartition};

use super::RequestContext;
use crate::server::Broker;
use crate::controller::placement::{place_replicas, validate_assignment};
use crate::topics::validate_topic_name;

/// What to create: partitions and replication come either as counts or as an
/// explicit assignment.
pub struct TopicSpec {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub assignment: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

impl TopicSpec {
    /// A topic with the broker's `num.partitions` and `default.replication.factor`.
    pub fn with_defaults(config: &BrokerConfig, name: String) -> TopicSpec {
        TopicSpec {
            name,
            num_partitions: config.num_partitions,
            replication_factor: config.default_replication_factor,
            assignment: Vec::new(),
            configs: BTreeMap::new(),
        }
    }
}

pub type ApiError = (ErrorCode, String);

/// Validates and (unless `validate_only`) creates a topic through the metadata
/// log; when it returns Ok the local partitions exist and accept writes.
pub async fn create_topic(broker: &Arc<Broker>, spec: TopicSpec, validate_only: bool) -> Result<[u8; 16], ApiError> {
    validate_topic_name(&spec.name).map_err(|m| (ErrorCode::INVALID_TOPIC_EXCEPTION, m))?;
    let image = broker.metadata.image();
    if image.topic(&spec.name).is_some() {
        return Err((ErrorCode::TOPIC_ALREADY_EXISTS, format!("Topic '{}' already exists.", spec.name)));
    }
    for (key, value) in &spec.configs {
        klamm_config::validate_topic_config(key, value).map_err(|e| (ErrorCode::INVALID_CONFIG, e.to_string()))?;
    }
    klamm_config::TopicConfig::resolve(&broker.config, &spec.configs)
        .map_err(|e| (ErrorCode::INVALID_CONFIG, e.to_string()))?;

    let partitions: Vec<NewPartition> = if !spec.assignment.is_empty() {
        if spec.num_partitions != -1 || spec.replication_factor != -1 {
            return Err((
                ErrorCode::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        validate_assignment(&image, &spec.assignment)?;
        spec.assignment
            .iter()
            .enumerate()
            .map(|(i, r)| NewPartition { partition: i as i32, replicas: r.clone() })
            .collect()
    } else {
        let n = if spec.num_partitions == -1 { broker.config.num_partitions } else { spec.num_partitions };
        let rf = if spec.replication_factor == -1 { broker.config.default_replication_factor } else { spec.replication_factor };
        if n <= 0 {
            return Err((ErrorCode::INVALID_PARTITIONS, "Number of partitions must be larger than 0.".into()));
        }
        place_replicas(&image, 0, n, rf)?
    };
    let topic_id: [u8; 16] = loop {
        let id: [u8; 16] = rand::random();
        if id != [0u8; 16] && image.topic_by_id(&id).is_none() {
            break id;
        }
    };
    if validate_only {
        return Ok(topic_id);
    }
    broker
        .apply_metadata(MetadataCommand::CreateTopic { name: spec.name.clone(), topic_id, partitions, configs: spec.configs })
        .await?;
    Ok(topic_id)
}

pub async fn handle(ctx: &RequestContext, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let broker = &ctx.broker;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &request.topics {
        *counts.entry(t.name.as_str()).or_default() += 1;
    }
    let duplicates: Vec<String> = counts.iter().filter(|(_, c)| **c > 1).map(|(n, _)| n.to_string()).collect();

    let mut results = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let mut result = CreatableTopicResult { name: t.name.clone(), ..Default::default() };
        if duplicates.contains(&t.name) {
            result.error_code = ErrorCode::INVALID_REQUEST.code();
            result.error_message = Some(format!("Create topics request from client `{}` contains multiple entries for the following topics: {}", ctx.client_id, duplicates.join(",")));
            results.push(result);
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.clone(), v.clone());
                }
                None => null_config = Some(c.name.clone()),
            }
        }
        if let Some(key) = null_config {
            result.error_code = ErrorCode::INVALID_CONFIG.code();
            result.error_message = Some(format!("Null value not supported for topic configs: {key}"));
            results.push(result);
            continue;
        }
        let mut assignment: Vec<_> = t.assignments.iter().map(|a| (a.partition_index, a.broker_ids.clone())).collect();
        assignment.sort_by_key(|(p, _)| *p);
        if assignment.iter().enumerate().any(|(i, (p, _))| *p != i as i32) {
            result.error_code = ErrorCode::INVALID_REPLICA_ASSIGNMENT.code();
            result.error_message = Some("Partitions should be a consecutive 0-based integer sequence".into());
            results.push(result);
            continue;
        }
        let spec = TopicSpec {
            name: t.name.clone(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignment: assignment.into_iter().map(|(_, brokers)| brokers).collect(),
            configs: configs.clone(),
        };
        let partitions_requested = if !spec.assignment.is_empty() { spec.assignment.len() as i32 } else if spec.num_partitions == -1 { broker.config.num_partitions } else { spec.num_partitions };
        let rf_requested = if let Some(first) = spec.assignment.first() { first.len() as i16 } else if spec.replication_factor == -1 { broker.config.default_replication_factor } else { spec.replication_factor };
        match create_topic(broker, spec, request.validate_only).await {
            Ok(topic_id) => {
                if !request.validate_only {
                    result.topic_id = Uuid(topic_id);
                }
                result.num_partitions = partitions_requested;
                result.replication_factor = rf_requested;
                result.configs = Some(
                    klamm_config::describe_topic_configs(&broker.config, &configs)
                        .into_iter()
                        .map(|e| CreatableTopicConfigs {
                            name: e.name.clone(),
                            value: if e.is_sensitive { None } else { e.value.clone() },
                            read_only: e.read_only,
                            config_source: e.source.code(),
                            is_sensitive: e.is_sensitive,
                            ..Default::default()
                        })
                        .collect(),
                );
            }
            Err((code, message)) => {
                result.error_code = code.code();
                result.error_message = Some(message);
            }
        }
        results.push(result);
    }
    CreateTopicsResponse { throttle_time_ms: 0, topics: results, ..Default::default() }
}
