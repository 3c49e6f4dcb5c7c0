//! DescribeConfigs (32), AlterConfigs (33) and IncrementalAlterConfigs (44)
//! for topics and brokers. Changes go through the metadata log; effective
//! values and their sources come from `klamm-config`.

use std::collections::BTreeMap;

use klamm_config::ConfigEntry;
use klamm_protocol::messages::alter_configs_response::{AlterConfigsResourceResponse, AlterConfigsResponse};
use klamm_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult, DescribeConfigsSynonym,
};
use klamm_protocol::messages::incremental_alter_configs_response as incremental;
use klamm_protocol::messages::{AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use klamm_protocol::ErrorCode;
use klamm_raft::{ConfigResource, MetadataCommand, MetadataImage};

use super::RequestContext;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

type ApiError = (ErrorCode, String);

/// Resolves a (type, name) pair to a metadata-log config resource.
fn resource(ctx: &RequestContext, image: &MetadataImage, resource_type: i8, name: &str) -> Result<ConfigResource, ApiError> {
    match resource_type {
        RESOURCE_TOPIC => {
            if image.topic(name).is_none() {
                return Err((ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, format!("Topic {name} does not exist")));
            }
            Ok(ConfigResource::Topic(name.to_string()))
        }
        RESOURCE_BROKER => {
            if name.is_empty() {
                return Ok(ConfigResource::Broker(None));
            }
            let id: i32 = name
                .parse()
                .map_err(|_| (ErrorCode::INVALID_REQUEST, format!("Invalid broker name {name}")))?;
            if id != ctx.broker.node_id && image.broker(id).is_none() {
                return Err((ErrorCode::INVALID_REQUEST, format!("Unexpected broker id, expected {} but received {id}", ctx.broker.node_id)));
            }
            Ok(ConfigResource::Broker(Some(id)))
        }
        other => Err((ErrorCode::INVALID_REQUEST, format!("Unsupported resource type {other}"))),
    }
}

/// Dynamic broker settings in effect for this node: cluster default, then per-broker.
fn dynamic_broker_configs(image: &MetadataImage, node: Option<i32>) -> BTreeMap<String, String> {
    let mut merged = image.broker_configs.get(&None).cloned().unwrap_or_default();
    if let Some(n) = node {
        if let Some(own) = image.broker_configs.get(&Some(n)) {
            merged.extend(own.clone());
        }
    }
    merged
}

pub fn describe(ctx: &RequestContext, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let image = ctx.broker.metadata.image();
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            let mut result = DescribeConfigsResult {
                resource_type: r.resource_type,
                resource_name: r.resource_name.clone(),
                ..Default::default()
            };
            let entries: Result<Vec<ConfigEntry>, ApiError> =
                resource(ctx, &image, r.resource_type, &r.resource_name).map(|res| match res {
                    ConfigResource::Topic(name) => {
                        let topic = image.topic(&name).expect("checked by resource()");
                        klamm_config::describe_topic_configs_layered(
                            &ctx.broker.replicas.effective_broker_config(),
                            &ctx.broker.static_config,
                            &dynamic_broker_configs(&image, Some(ctx.broker.node_id)),
                            &topic.configs,
                        )
                    }
                    ConfigResource::Broker(node) => ctx
                        .broker
                        .config
                        .describe(&ctx.broker.static_config, &dynamic_broker_configs(&image, node.or(Some(ctx.broker.node_id)))),
                });
            match entries {
                Ok(entries) => {
                    result.configs = entries
                        .into_iter()
                        .filter(|e| match &r.configuration_keys {
                            // Kafka describes everything for a null or an empty key list.
                            Some(keys) if !keys.is_empty() => keys.contains(&e.name),
                            _ => true,
                        })
                        .map(|e| DescribeConfigsResourceResult {
                            name: e.name.clone(),
                            value: if e.is_sensitive { None } else { e.value.clone() },
                            read_only: e.read_only,
                            is_default: e.source == klamm_config::ConfigSource::DefaultConfig,
                            config_source: e.source.code(),
                            is_sensitive: e.is_sensitive,
                            synonyms: if request.include_synonyms {
                                e.synonyms
                                    .iter()
                                    .map(|s| DescribeConfigsSynonym { name: s.name.clone(), value: s.value.clone(), source: s.source.code(), ..Default::default() })
                                    .collect()
                            } else {
                                Vec::new()
                            },
                            config_type: e.config_type.code(),
                            documentation: if request.include_documentation { e.documentation.clone() } else { None },
                            ..Default::default()
                        })
                        .collect();
                }
                Err((code, message)) => {
                    result.error_code = code.code();
                    result.error_message = Some(message);
                }
            }
            result
        })
        .collect();
    DescribeConfigsResponse { throttle_time_ms: 0, results, ..Default::default() }
}

fn validate(res: &ConfigResource, key: &str, value: &str) -> Result<(), ApiError> {
    let checked = match res {
        ConfigResource::Topic(_) => klamm_config::validate_topic_config(key, value),
        ConfigResource::Broker(_) => klamm_config::validate_broker_dynamic_config(key, value),
    };
    checked.map_err(|e| (ErrorCode::INVALID_CONFIG, e.to_string()))
}

fn current_configs(image: &MetadataImage, res: &ConfigResource) -> BTreeMap<String, String> {
    match res {
        ConfigResource::Topic(name) => image.topic(name).map(|t| t.configs.clone()).unwrap_or_default(),
        ConfigResource::Broker(node) => image.broker_configs.get(node).cloned().unwrap_or_default(),
    }
}

/// Applies `desired` as the complete new set of overrides of `res`.
async fn replace_configs(
    ctx: &RequestContext,
    res: ConfigResource,
    desired: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ApiError> {
    for (k, v) in &desired {
        validate(&res, k, v)?;
    }
    if let ConfigResource::Topic(_) = res {
        klamm_config::TopicConfig::resolve(&ctx.broker.config, &desired).map_err(|e| (ErrorCode::INVALID_CONFIG, e.to_string()))?;
    }
    if validate_only {
        return Ok(());
    }
    let image = ctx.broker.metadata.image();
    let current = current_configs(&image, &res);
    let delete: Vec<String> = current.keys().filter(|k| !desired.contains_key(*k)).cloned().collect();
    let set: BTreeMap<String, String> = desired.into_iter().filter(|(k, v)| current.get(k) != Some(v)).collect();
    if set.is_empty() && delete.is_empty() {
        return Ok(());
    }
    ctx.broker.apply_metadata(MetadataCommand::AlterConfigs { resource: res, set, delete }).await
}

pub async fn alter(ctx: &RequestContext, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let image = ctx.broker.metadata.image();
        let outcome = match resource(ctx, &image, r.resource_type, &r.resource_name) {
            Err(e) => Err(e),
            Ok(res) => {
                let mut desired = BTreeMap::new();
                let mut bad = None;
                for c in r.configs {
                    match c.value {
                        Some(v) => {
                            desired.insert(c.name, v);
                        }
                        None => bad = Some(c.name),
                    }
                }
                match bad {
                    Some(k) => Err((ErrorCode::INVALID_REQUEST, format!("Null value not supported for: {k}"))),
                    None => replace_configs(ctx, res, desired, request.validate_only).await,
                }
            }
        };
        let (code, message) = match outcome {
            Ok(()) => (ErrorCode::NONE, None),
            Err((c, m)) => (c, Some(m)),
        };
        responses.push(AlterConfigsResourceResponse {
            error_code: code.code(),
            error_message: message,
            resource_type: r.resource_type,
            resource_name: r.resource_name,
            ..Default::default()
        });
    }
    AlterConfigsResponse { throttle_time_ms: 0, responses, ..Default::default() }
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

pub async fn incremental_alter(ctx: &RequestContext, request: IncrementalAlterConfigsRequest) -> incremental::IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let image = ctx.broker.metadata.image();
        let outcome = match resource(ctx, &image, r.resource_type, &r.resource_name) {
            Err(e) => Err(e),
            Ok(res) => {
                let mut desired = current_configs(&image, &res);
                let mut error = None;
                for c in r.configs {
                    let value = c.value.clone().unwrap_or_default();
                    match c.config_operation {
                        OP_SET => {
                            if c.value.is_none() {
                                error = Some((ErrorCode::INVALID_REQUEST, format!("Null value not supported for: {}", c.name)));
                                break;
                            }
                            desired.insert(c.name, value);
                        }
                        OP_DELETE => {
                            desired.remove(&c.name);
                        }
                        OP_APPEND | OP_SUBTRACT => {
                            if !klamm_config::is_list_config(&c.name) {
                                error = Some((ErrorCode::INVALID_CONFIG, format!("Config value append is not allowed for config key: {}", c.name)));
                                break;
                            }
                            let base = desired.get(&c.name).cloned().or_else(|| effective_value(ctx, &res, &c.name)).unwrap_or_default();
                            let mut list = split_list(&base);
                            for item in split_list(&value) {
                                if c.config_operation == OP_APPEND {
                                    if !list.contains(&item) {
                                        list.push(item);
                                    }
                                } else {
                                    list.retain(|x| x != &item);
                                }
                            }
                            desired.insert(c.name, list.join(","));
                        }
                        other => {
                            error = Some((ErrorCode::INVALID_REQUEST, format!("Unknown config operation {other}")));
                            break;
                        }
                    }
                }
                match error {
                    Some(e) => Err(e),
                    None => replace_configs(ctx, res, desired, request.validate_only).await,
                }
            }
        };
        let (code, message) = match outcome {
            Ok(()) => (ErrorCode::NONE, None),
            Err((c, m)) => (c, Some(m)),
        };
        responses.push(incremental::AlterConfigsResourceResponse {
            error_code: code.code(),
            error_message: message,
            resource_type: r.resource_type,
            resource_name: r.resource_name,
            ..Default::default()
        });
    }
    incremental::IncrementalAlterConfigsResponse { throttle_time_ms: 0, responses, ..Default::default() }
}

/// The effective value of a key before any override (used as the base of APPEND/SUBTRACT).
fn effective_value(ctx: &RequestContext, res: &ConfigResource, key: &str) -> Option<String> {
    match res {
        ConfigResource::Topic(_) => klamm_config::describe_topic_configs(&ctx.broker.config, &BTreeMap::new())
            .into_iter()
            .find(|e| e.name == key)
            .and_then(|e| e.value),
        ConfigResource::Broker(_) => ctx
            .broker
            .config
            .describe(&ctx.broker.static_config, &BTreeMap::new())
            .into_iter()
            .find(|e| e.name == key)
            .and_then(|e| e.value),
    }
}
