//! Per-topic configuration (placeholder, being written).
use std::collections::BTreeMap;

use crate::{BrokerConfig, ConfigEntry, ConfigError};

/// Effective per-topic configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `retention.ms`
    pub retention_ms: i64,
}

impl TopicConfig {
    /// Resolves effective values.
    pub fn resolve(broker: &BrokerConfig, _overrides: &BTreeMap<String, String>) -> Result<TopicConfig, ConfigError> {
        Ok(TopicConfig { retention_ms: broker.log_retention_ms })
    }
}

/// Validates one topic config.
pub fn validate_topic_config(key: &str, _value: &str) -> Result<(), ConfigError> {
    Err(ConfigError::UnknownTopicKey(key.to_string()))
}

/// Describes topic configs.
pub fn describe_topic_configs(_broker: &BrokerConfig, _overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    Vec::new()
}
