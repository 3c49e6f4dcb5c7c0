//! [`TopicConfig`]: per-topic configuration with Kafka's topic keys (`retention.ms`,
//! `cleanup.policy`, ...), whose defaults come from the broker through Kafka's synonyms
//! (`retention.ms` ← `log.retention.ms`, `log.retention.minutes`, `log.retention.hours`;
//! `segment.bytes` ← `log.segment.bytes`; `max.message.bytes` ← `message.max.bytes`; ...).
//!
//! - [`TopicConfig::resolve`] gives the effective values for a topic from the broker config and
//!   the topic's overrides (the `configs` of CreateTopics / IncrementalAlterConfigs as stored in
//!   the metadata log).
//! - [`validate_topic_config`] checks one key/value before it is accepted; errors use Kafka's
//!   wording and the broker maps them to `INVALID_CONFIG`.
//! - [`describe_topic_configs`] produces DescribeConfigs entries with synonyms in Kafka's order.
//!
//! Pure functions over plain data.

use std::collections::BTreeMap;

use crate::broker_keys::{broker_key, LONG_MAX};
use crate::schema::{Check, ConfigEntry, ConfigSource, ConfigSynonym, ConfigType, Def, Value};
use crate::types::{CleanupPolicy, CompressionType, SubjectNameStrategy, TimestampType};
use crate::{BrokerConfig, ConfigError};

/// Effective per-topic configuration. Field names are the topic keys with `.` → `_`.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `retention.ms`; -1 = infinite.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 = unlimited.
    pub retention_bytes: i64,
    /// `segment.bytes`.
    pub segment_bytes: i32,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `segment.index.bytes`.
    pub segment_index_bytes: i32,
    /// `index.interval.bytes`.
    pub index_interval_bytes: i32,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `max.message.bytes`: largest record batch (after compression).
    pub max_message_bytes: i32,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `flush.messages` (i64::MAX = never).
    pub flush_messages: i64,
    /// `flush.ms` (i64::MAX = never).
    pub flush_ms: i64,
    /// `compression.type`.
    pub compression_type: CompressionType,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub message_timestamp_after_max_ms: i64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long tombstones survive compaction.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `file.delete.delay.ms`.
    pub file_delete_delay_ms: i64,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
    /// `preallocate`.
    pub preallocate: bool,
    /// `message.downconversion.enable` (accepted, no effect: Klamm never down-converts).
    pub message_downconversion_enable: bool,
    /// `confluent.key.schema.validation`: produced keys must carry a known schema id.
    pub confluent_key_schema_validation: bool,
    /// `confluent.value.schema.validation`: produced values must carry a known schema id.
    pub confluent_value_schema_validation: bool,
    /// `confluent.key.subject.name.strategy`.
    pub confluent_key_subject_name_strategy: SubjectNameStrategy,
    /// `confluent.value.subject.name.strategy`.
    pub confluent_value_subject_name_strategy: SubjectNameStrategy,
}

/// One topic key: its definition (type, Kafka default, validator) and broker synonyms in
/// Kafka's order.
struct TopicKey {
    def: Def,
    synonyms: &'static [&'static str],
}

/// Kafka's internal topic config for segments smaller than `segment.bytes` allows (tests).
pub const INTERNAL_SEGMENT_BYTES: &str = "internal.segment.bytes";

const fn key(def: Def, synonyms: &'static [&'static str]) -> TopicKey {
    TopicKey { def, synonyms }
}

const B: ConfigType = ConfigType::Boolean;
const S: ConfigType = ConfigType::String;
const I: ConfigType = ConfigType::Int;
const L: ConfigType = ConfigType::Long;
const D: ConfigType = ConfigType::Double;
const LI: ConfigType = ConfigType::List;
const NONE: Check = Check::None;
const fn min(v: i64) -> Check {
    Check::AtLeast(v)
}

/// Every topic key Klamm accepts, sorted by name.
#[rustfmt::skip]
static TOPIC_KEYS: &[TopicKey] = &[
    key(Def::new("cleanup.policy", LI, Some("delete"), Check::ListOf(CleanupPolicy::NAMES, false), "delete (by time/size), compact (by key), or both."), &["log.cleanup.policy"]),
    key(Def::new("compression.gzip.level", I, Some("-1"), NONE, "gzip level (accepted, no effect).").no_effect(), &[]),
    key(Def::new("compression.lz4.level", I, Some("9"), NONE, "lz4 level (accepted, no effect).").no_effect(), &[]),
    key(Def::new("compression.type", S, Some("producer"), Check::OneOf(CompressionType::NAMES), "Compression of stored batches; producer keeps the producer's codec."), &["compression.type"]),
    key(Def::new("compression.zstd.level", I, Some("3"), NONE, "zstd level (accepted, no effect).").no_effect(), &[]),
    key(Def::new("confluent.key.schema.validation", B, Some("false"), NONE, "Broker-side schema id validation of record keys (Confluent Server's name)."), &[]),
    key(Def::new("confluent.key.subject.name.strategy", S, Some("io.confluent.kafka.serializers.subject.TopicNameStrategy"), Check::OneOf(SubjectNameStrategy::NAMES), "Subject naming of key schema validation."), &[]),
    key(Def::new("confluent.value.schema.validation", B, Some("false"), NONE, "Broker-side schema id validation of record values (Confluent Server's name)."), &[]),
    key(Def::new("confluent.value.subject.name.strategy", S, Some("io.confluent.kafka.serializers.subject.TopicNameStrategy"), Check::OneOf(SubjectNameStrategy::NAMES), "Subject naming of value schema validation."), &[]),
    key(Def::new("delete.retention.ms", L, Some("86400000"), min(0), "How long tombstones are kept in a compacted topic."), &["log.cleaner.delete.retention.ms"]),
    key(Def::new("file.delete.delay.ms", L, Some("60000"), min(0), "Delay before deleted segment files are removed."), &["log.segment.delete.delay.ms"]),
    key(Def::new("flush.messages", L, Some(LONG_MAX), min(1), "Messages accumulated before an fsync."), &["log.flush.interval.messages"]),
    key(Def::new("flush.ms", L, Some(LONG_MAX), min(0), "Maximum time before an fsync."), &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"]),
    key(Def::new("follower.replication.throttled.replicas", LI, Some(""), NONE, "Replication throttling (accepted, no effect).").no_effect(), &[]),
    key(Def::new("index.interval.bytes", I, Some("4096"), min(0), "Bytes between offset index entries."), &["log.index.interval.bytes"]),
    key(Def::new(INTERNAL_SEGMENT_BYTES, I, None, min(14), "Segment size below the 1 MiB minimum of segment.bytes; for testing only (internal, not described)."), &[]),
    key(Def::new("leader.replication.throttled.replicas", LI, Some(""), NONE, "Replication throttling (accepted, no effect).").no_effect(), &[]),
    key(Def::new("local.retention.bytes", L, Some("-2"), min(-2), "Tiered storage (accepted, no effect).").no_effect(), &[]),
    key(Def::new("local.retention.ms", L, Some("-2"), min(-2), "Tiered storage (accepted, no effect).").no_effect(), &[]),
    key(Def::new("max.compaction.lag.ms", L, Some(LONG_MAX), min(1), "Maximum time a message stays uncompacted."), &["log.cleaner.max.compaction.lag.ms"]),
    key(Def::new("max.message.bytes", I, Some("1048588"), min(0), "Largest record batch accepted (after compression)."), &["message.max.bytes"]),
    key(Def::new("message.downconversion.enable", B, Some("true"), NONE, "Down-conversion for old consumers (accepted, no effect)."), &["log.message.downconversion.enable"]),
    key(Def::new("message.timestamp.after.max.ms", L, Some("3600000"), min(0), "Largest allowed timestamp ahead of broker time."), &["log.message.timestamp.after.max.ms"]),
    key(Def::new("message.timestamp.before.max.ms", L, Some(LONG_MAX), min(0), "Largest allowed timestamp behind broker time."), &["log.message.timestamp.before.max.ms"]),
    key(Def::new("message.timestamp.type", S, Some("CreateTime"), Check::OneOf(TimestampType::NAMES), "CreateTime or LogAppendTime."), &["log.message.timestamp.type"]),
    key(Def::new("min.cleanable.dirty.ratio", D, Some("0.5"), Check::DoubleBetween(0.0, 1.0), "Dirty ratio above which the log is compacted."), &["log.cleaner.min.cleanable.ratio"]),
    key(Def::new("min.compaction.lag.ms", L, Some("0"), min(0), "Minimum time a message stays uncompacted."), &["log.cleaner.min.compaction.lag.ms"]),
    key(Def::new("min.insync.replicas", I, Some("1"), min(1), "Minimum ISR size for acks=all produce."), &["min.insync.replicas"]),
    key(Def::new("preallocate", B, Some("false"), NONE, "Preallocate segment files."), &["log.preallocate"]),
    key(Def::new("remote.log.copy.disable", B, Some("false"), NONE, "Tiered storage (accepted, no effect).").no_effect(), &[]),
    key(Def::new("remote.log.delete.on.disable", B, Some("false"), NONE, "Tiered storage (accepted, no effect).").no_effect(), &[]),
    key(Def::new("remote.storage.enable", B, Some("false"), NONE, "Tiered storage (accepted, no effect).").no_effect(), &[]),
    key(Def::new("retention.bytes", L, Some("-1"), NONE, "Maximum partition size before old segments are deleted; -1 = unlimited."), &["log.retention.bytes"]),
    key(Def::new("retention.ms", L, Some("604800000"), min(-1), "Maximum age of a segment before deletion; -1 = infinite."), &["log.retention.ms", "log.retention.minutes", "log.retention.hours"]),
    key(Def::new("segment.bytes", I, Some("1073741824"), min(1_048_576), "Maximum segment file size."), &["log.segment.bytes"]),
    key(Def::new("segment.index.bytes", I, Some("10485760"), min(4), "Maximum offset index file size."), &["log.index.size.max.bytes"]),
    key(Def::new("segment.jitter.ms", L, Some("0"), min(0), "Roll jitter (accepted, no effect).").no_effect(), &["log.roll.jitter.ms", "log.roll.jitter.hours"]),
    key(Def::new("segment.ms", L, Some("604800000"), min(1), "Time after which a segment is rolled."), &["log.roll.ms", "log.roll.hours"]),
    key(Def::new("unclean.leader.election.enable", B, Some("false"), NONE, "Allow an out-of-sync replica to become leader."), &["unclean.leader.election.enable"]),
];

fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS
        .binary_search_by(|k| k.def.name.cmp(name))
        .ok()
        .map(|i| &TOPIC_KEYS[i])
}

/// The names of all topic keys Klamm accepts (including those it accepts with no effect, but
/// not the internal `internal.segment.bytes`), sorted.
pub fn topic_config_names() -> Vec<&'static str> {
    TOPIC_KEYS
        .iter()
        .map(|k| k.def.name)
        .filter(|n| *n != INTERNAL_SEGMENT_BYTES)
        .collect()
}

/// The type of a topic or broker key (topic keys first), `None` if unknown.
pub fn config_type(name: &str) -> Option<ConfigType> {
    topic_key(name)
        .map(|k| k.def.ty)
        .or_else(|| broker_key(name).map(|d| d.ty))
}

/// True if `name` is a LIST config (topic or broker), the only kind IncrementalAlterConfigs
/// APPEND and SUBTRACT may be applied to (e.g. `cleanup.policy`, `log.cleanup.policy`).
pub fn is_list_config(name: &str) -> bool {
    config_type(name) == Some(ConfigType::List)
}

/// The broker synonyms of a topic key, in Kafka's precedence order (empty if none or unknown).
pub fn topic_config_synonyms(name: &str) -> &'static [&'static str] {
    topic_key(name).map(|k| k.synonyms).unwrap_or(&[])
}

/// Checks one topic config key/value (CreateTopics, AlterConfigs, IncrementalAlterConfigs).
///
/// Unknown key → [`ConfigError::UnknownTopicKey`]; bad value → [`ConfigError::InvalidValue`],
/// e.g. `Invalid value abc for configuration retention.ms: Not a number of type LONG`.
/// The broker maps both to `INVALID_CONFIG`.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), ConfigError> {
    parse_topic_value(key, value).map(|_| ())
}

fn parse_topic_value(key: &str, value: &str) -> Result<(&'static TopicKey, Value), ConfigError> {
    let k = topic_key(key).ok_or_else(|| ConfigError::UnknownTopicKey(key.to_string()))?;
    let v = k
        .def
        .parse(value)
        .map_err(|bad| ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: bad.kafka_reason(),
        })?;
    Ok((k, v))
}

/// Checks a whole set of topic overrides: each key/value, then the cross-key rule Kafka applies
/// (`min.compaction.lag.ms` must not exceed `max.compaction.lag.ms`), against `broker` defaults.
pub fn validate_topic_configs(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    TopicConfig::resolve(broker, overrides).map(|_| ())
}

impl TopicConfig {
    /// The topic config of a topic with no overrides: every value from its broker synonym.
    pub fn from_broker(b: &BrokerConfig) -> TopicConfig {
        TopicConfig {
            retention_ms: b.log_retention_ms,
            retention_bytes: b.log_retention_bytes,
            segment_bytes: b.log_segment_bytes,
            segment_ms: b.log_roll_ms,
            segment_index_bytes: b.log_index_size_max_bytes,
            index_interval_bytes: b.log_index_interval_bytes,
            cleanup_policy: b.log_cleanup_policy,
            max_message_bytes: b.message_max_bytes,
            min_insync_replicas: b.min_insync_replicas,
            flush_messages: b.log_flush_interval_messages,
            flush_ms: b.effective_log_flush_interval_ms(),
            compression_type: b.compression_type,
            message_timestamp_type: b.log_message_timestamp_type,
            message_timestamp_before_max_ms: b.log_message_timestamp_before_max_ms,
            message_timestamp_after_max_ms: b.log_message_timestamp_after_max_ms,
            min_compaction_lag_ms: b.log_cleaner_min_compaction_lag_ms,
            max_compaction_lag_ms: b.log_cleaner_max_compaction_lag_ms,
            delete_retention_ms: b.log_cleaner_delete_retention_ms,
            min_cleanable_dirty_ratio: b.log_cleaner_min_cleanable_ratio,
            file_delete_delay_ms: b.log_segment_delete_delay_ms,
            unclean_leader_election_enable: b.unclean_leader_election_enable,
            preallocate: b.log_preallocate,
            message_downconversion_enable: b.log_message_downconversion_enable,
            confluent_key_schema_validation: false,
            confluent_value_schema_validation: false,
            confluent_key_subject_name_strategy: SubjectNameStrategy::TopicName,
            confluent_value_subject_name_strategy: SubjectNameStrategy::TopicName,
        }
    }

    /// Effective values for a topic: each override (validated) else the broker's synonym value.
    pub fn resolve(
        broker: &BrokerConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, ConfigError> {
        let mut t = TopicConfig::from_broker(broker);
        for (k, v) in overrides {
            let (_, value) = parse_topic_value(k, v)?;
            t.set(k, value, v)?;
        }
        // Kafka's internal test-only override wins over segment.bytes.
        if let Some(v) = overrides.get(INTERNAL_SEGMENT_BYTES) {
            if let (_, Value::Int(n)) = parse_topic_value(INTERNAL_SEGMENT_BYTES, v)? {
                t.segment_bytes = i32::try_from(n).unwrap_or(i32::MAX);
            }
        }
        if t.min_compaction_lag_ms > t.max_compaction_lag_ms {
            return Err(ConfigError::InvalidValue {
                key: "min.compaction.lag.ms".into(),
                value: t.min_compaction_lag_ms.to_string(),
                reason: format!(
                    "conflict: min.compaction.lag.ms must not exceed max.compaction.lag.ms ({})",
                    t.max_compaction_lag_ms
                ),
            });
        }
        Ok(t)
    }

    fn set(&mut self, key: &str, value: Value, raw: &str) -> Result<(), ConfigError> {
        let bad = |m: String| ConfigError::InvalidValue {
            key: key.to_string(),
            value: raw.to_string(),
            reason: m,
        };
        let int = || match value {
            Value::Int(v) => v,
            _ => 0,
        };
        // Narrowing cannot fail: the key table types these keys as INT, checked on parse.
        let int32 = || i32::try_from(int()).unwrap_or(i32::MAX);
        let boolean = || matches!(value, Value::Bool(true));
        let text = || match &value {
            Value::Str(s) => s.clone(),
            Value::List(l) => l.join(","),
            _ => String::new(),
        };
        match key {
            "retention.ms" => self.retention_ms = int().max(-1),
            "retention.bytes" => self.retention_bytes = int(),
            "segment.bytes" => self.segment_bytes = int32(),
            "segment.ms" => self.segment_ms = int(),
            "segment.index.bytes" => self.segment_index_bytes = int32(),
            "index.interval.bytes" => self.index_interval_bytes = int32(),
            "cleanup.policy" => self.cleanup_policy = CleanupPolicy::parse(&text()).map_err(bad)?,
            "max.message.bytes" => self.max_message_bytes = int32(),
            "min.insync.replicas" => self.min_insync_replicas = int32(),
            "flush.messages" => self.flush_messages = int(),
            "flush.ms" => self.flush_ms = int(),
            "compression.type" => {
                self.compression_type = CompressionType::parse(&text()).map_err(bad)?
            }
            "message.timestamp.type" => {
                self.message_timestamp_type = TimestampType::parse(&text()).map_err(bad)?
            }
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms = int(),
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms = int(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = int(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = int(),
            "delete.retention.ms" => self.delete_retention_ms = int(),
            "min.cleanable.dirty.ratio" => {
                if let Value::Double(d) = value {
                    self.min_cleanable_dirty_ratio = d;
                }
            }
            "file.delete.delay.ms" => self.file_delete_delay_ms = int(),
            "unclean.leader.election.enable" => self.unclean_leader_election_enable = boolean(),
            "preallocate" => self.preallocate = boolean(),
            "message.downconversion.enable" => self.message_downconversion_enable = boolean(),
            "confluent.key.schema.validation" => self.confluent_key_schema_validation = boolean(),
            "confluent.value.schema.validation" => self.confluent_value_schema_validation = boolean(),
            "confluent.key.subject.name.strategy" => {
                self.confluent_key_subject_name_strategy =
                    SubjectNameStrategy::parse(&text()).map_err(bad)?
            }
            "confluent.value.subject.name.strategy" => {
                self.confluent_value_subject_name_strategy =
                    SubjectNameStrategy::parse(&text()).map_err(bad)?
            }
            // Accepted, no effect.
            _ => {}
        }
        Ok(())
    }

    /// The value of a topic key as Kafka reports it (e.g. `retention.ms` → `"604800000"`).
    /// `None` for keys that have no field (the accepted-no-effect ones) or unknown keys.
    pub fn value_string(&self, key: &str) -> Option<String> {
        Some(match key {
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "cleanup.policy" => self.cleanup_policy.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "compression.type" => self.compression_type.to_string(),
            "message.timestamp.type" => self.message_timestamp_type.to_string(),
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "file.delete.delay.ms" => self.file_delete_delay_ms.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election_enable.to_string(),
            "preallocate" => self.preallocate.to_string(),
            "message.downconversion.enable" => self.message_downconversion_enable.to_string(),
            "confluent.key.schema.validation" => self.confluent_key_schema_validation.to_string(),
            "confluent.value.schema.validation" => self.confluent_value_schema_validation.to_string(),
            "confluent.key.subject.name.strategy" => self.confluent_key_subject_name_strategy.to_string(),
            "confluent.value.subject.name.strategy" => self.confluent_value_subject_name_strategy.to_string(),
            _ => return None,
        })
    }
}

/// DescribeConfigs for a topic resource: every topic key (sorted by name).
///
/// Synonyms follow Kafka's order: the topic override (`DYNAMIC_TOPIC_CONFIG`) first, then the
/// broker's statically configured value if it differs from Kafka's default
/// (`STATIC_BROKER_CONFIG`, named after the first broker synonym, e.g. `log.retention.ms`, since
/// only the effective broker value is known here), then the default of each broker synonym that
/// has one (`DEFAULT_CONFIG`, e.g. `log.retention.hours=168`). The entry's source is that of the
/// first synonym. Use [`describe_topic_configs_layered`] to name the exact broker keys set in the
/// file and to include dynamic broker defaults.
///
/// An override that does not validate (which the broker should never have stored) is reported
/// as given and otherwise ignored.
pub fn describe_topic_configs(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    describe_impl(broker, None, overrides)
}

/// Like [`describe_topic_configs`] but with the broker's layers: `broker_original` is
/// [`crate::LoadedConfig::original`] (`STATIC_BROKER_CONFIG`), `broker_dynamic` holds
/// cluster-wide dynamic broker configs (`DYNAMIC_DEFAULT_BROKER_CONFIG`). Pass a `broker`
/// config that already includes the dynamic values ([`crate::LoadedConfig::with_dynamic`]).
/// For each broker synonym in Kafka's order, its dynamic, static and default values are listed.
pub fn describe_topic_configs_layered(
    broker: &BrokerConfig,
    broker_original: &BTreeMap<String, String>,
    broker_dynamic: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    describe_impl(broker, Some((broker_original, broker_dynamic)), overrides)
}

/// The broker's static and dynamic layers, when known.
type BrokerLayers<'a> = (&'a BTreeMap<String, String>, &'a BTreeMap<String, String>);

fn describe_impl(
    broker: &BrokerConfig,
    layers: Option<BrokerLayers<'_>>,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let valid: BTreeMap<String, String> = overrides
        .iter()
        .filter(|(k, v)| validate_topic_config(k, v).is_ok())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let resolved =
        TopicConfig::resolve(broker, &valid).unwrap_or_else(|_| TopicConfig::from_broker(broker));
    let from_broker = TopicConfig::from_broker(broker);

    TOPIC_KEYS
        .iter()
        .filter(|k| k.def.name != INTERNAL_SEGMENT_BYTES)
        .map(|k| {
            let name = k.def.name;
            let syn = |n: &str, v: Option<String>, s: ConfigSource| ConfigSynonym {
                name: n.to_string(),
                value: v,
                source: s,
            };
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(name) {
                synonyms.push(syn(
                    name,
                    Some(v.trim().to_string()),
                    ConfigSource::DynamicTopicConfig,
                ));
            }
            match layers {
                Some((original, dynamic)) => {
                    for s in k.synonyms {
                        if let Some(v) = dynamic.get(*s) {
                            synonyms.push(syn(
                                s,
                                Some(v.trim().to_string()),
                                ConfigSource::DynamicDefaultBrokerConfig,
                            ));
                        }
                        if let Some(v) = original.get(*s) {
                            synonyms.push(syn(
                                s,
                                Some(v.trim().to_string()),
                                ConfigSource::StaticBrokerConfig,
                            ));
                        }
                        if let Some(d) = broker_key(s).and_then(|d| d.default) {
                            synonyms.push(syn(s, Some(d.to_string()), ConfigSource::DefaultConfig));
                        }
                    }
                }
                None => {
                    let broker_value = from_broker.value_string(name);
                    if let (Some(first), Some(v)) = (k.synonyms.first(), broker_value) {
                        if Some(v.as_str()) != k.def.default {
                            synonyms.push(syn(first, Some(v), ConfigSource::StaticBrokerConfig));
                        }
                    }
                    for s in k.synonyms {
                        if let Some(d) = broker_key(s).and_then(|d| d.default) {
                            synonyms.push(syn(s, Some(d.to_string()), ConfigSource::DefaultConfig));
                        }
                    }
                }
            }
            if k.synonyms.is_empty() {
                if let Some(d) = k.def.default {
                    synonyms.push(syn(name, Some(d.to_string()), ConfigSource::DefaultConfig));
                }
            }
            let source = synonyms
                .first()
                .map(|s| s.source)
                .unwrap_or(ConfigSource::DefaultConfig);
            let value = match overrides.get(name) {
                Some(raw) => Some(raw.trim().to_string()),
                None => resolved
                    .value_string(name)
                    .or_else(|| synonyms.first().and_then(|s| s.value.clone()))
                    .or_else(|| k.def.default.map(str::to_string)),
            };
            ConfigEntry {
                name: name.to_string(),
                value,
                source,
                read_only: false,
                is_sensitive: false,
                config_type: k.def.ty,
                documentation: Some(k.def.doc.to_string()),
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
