//! Typed configuration for Klamm with Apache Kafka's property names.
//!
//! - [`properties`]: a Java `.properties` parser (`server.properties`).
//! - [`BrokerConfig`]: broker settings, loaded by [`BrokerConfig::load`] from an optional file
//!   plus `--override key=value` pairs over Kafka's defaults (or, without a file, over the
//!   single-node profile of [`BrokerConfig::embedded_default`], see [`EMBEDDED_PROFILE`]), with
//!   type checks and cross-field validation. [`LoadedConfig`] also reports unknown keys (with
//!   hints) and keys Kafka knows but Klamm ignores ("accepted, no effect").
//! - Dynamic broker configs: [`validate_broker_dynamic_config`], [`LoadedConfig::with_dynamic`],
//!   and DescribeConfigs on a broker with [`BrokerConfig::describe`].
//! - [`TopicConfig`]: per-topic settings whose defaults come from broker synonyms
//!   (`retention.ms` ← `log.retention.ms` / `.minutes` / `.hours`, ...):
//!   [`TopicConfig::resolve`], [`validate_topic_config`], [`describe_topic_configs`].
//! - [`security`]: per-listener TLS and SASL settings ([`security::ListenerSecurity`]), with
//!   `listener.name.<name>.` keys resolved and unsupported keystores / mechanisms refused.
//! - [`registry`]: TLS and basic auth of the schema registry listener.
//! - DescribeConfigs types: [`ConfigEntry`], [`ConfigSynonym`], [`ConfigSource`], [`ConfigType`].
//!
//! The crate is plain data and pure functions; only [`BrokerConfig::load`] reads a file. It
//! reads no environment variables. All types are `Send + Sync`.
//!
//! ```
//! use std::io::Write;
//! use klamm_config::BrokerConfig;
//!
//! let mut file = tempfile::NamedTempFile::new().unwrap();
//! writeln!(file, "# a small server.properties").unwrap();
//! writeln!(file, "node.id=1").unwrap();
//! writeln!(file, "process.roles=broker,controller").unwrap();
//! writeln!(file, "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093").unwrap();
//! writeln!(file, "controller.listener.names=CONTROLLER").unwrap();
//! writeln!(file, "controller.quorum.voters=1@127.0.0.1:9093").unwrap();
//! writeln!(file, "log.dirs=/var/lib/klamm").unwrap();
//! writeln!(file, "log.retention.hours=24").unwrap();
//!
//! let overrides = vec!["num.partitions=3".to_string(), "log.retention.ms=60000".to_string()];
//! let loaded = BrokerConfig::load(Some(file.path()), &overrides).unwrap();
//! let config = &loaded.config;
//! assert_eq!(config.num_partitions, 3);
//! assert_eq!(config.log_retention_ms, 60_000); // log.retention.ms beats log.retention.hours
//! assert_eq!(config.advertised_listeners.len(), 1); // the controller listener is not advertised
//! assert!(loaded.unknown_keys.is_empty());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod broker;
mod broker_keys;
pub mod environment;
mod error;
pub mod properties;
pub mod registry;
mod schema;
pub mod security;
mod topic;
mod types;

pub use broker::{
    dynamic_broker_keys, parse_override, suggest_broker_key, validate_broker_dynamic_config,
    BrokerConfig, Defaults, LoadedConfig, EMBEDDED_PROFILE,
};
pub use broker_keys::no_effect_broker_keys;
pub use error::ConfigError;
pub use schema::{ConfigEntry, ConfigSource, ConfigSynonym, ConfigType};
pub use topic::{
    config_type, describe_topic_configs, describe_topic_configs_layered, is_list_config,
    topic_config_names, topic_config_synonyms, validate_topic_config, validate_topic_configs,
    TopicConfig, INTERNAL_SEGMENT_BYTES,
};
pub use types::{
    CleanupPolicy, CompressionType, Listener, ProcessRole, QuorumVoter, SecurityProtocol,
    SubjectNameStrategy, TimestampType,
};

/// Properties from literal `(key, value)` pairs, for the crate's tests.
#[cfg(test)]
pub(crate) fn test_properties(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
