//! Tests of topic config resolution, validation messages, synonyms and describe output.

use super::*;
use crate::broker_keys::BROKER_KEYS;
use crate::{BrokerConfig, Defaults};

use crate::test_properties as map;

fn must_broker(pairs: &[(&str, &str)]) -> crate::LoadedConfig {
    BrokerConfig::from_map(Defaults::Embedded, map(pairs)).expect("valid broker config")
}

fn entry<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
    entries
        .iter()
        .find(|e| e.name == name)
        .expect("entry present")
}

#[test]
fn table_sorted_and_synonyms_known() {
    for w in TOPIC_KEYS.windows(2) {
        assert!(
            w[0].def.name < w[1].def.name,
            "{} >= {}",
            w[0].def.name,
            w[1].def.name
        );
    }
    for k in TOPIC_KEYS {
        for s in k.synonyms {
            assert!(
                broker_key(s).is_some(),
                "synonym {s} of {} not a broker key",
                k.def.name
            );
        }
        if let Some(d) = k.def.default {
            assert!(k.def.parse(d).is_ok(), "default of {} rejected", k.def.name);
        }
    }
    assert!(BROKER_KEYS.len() > TOPIC_KEYS.len());
}

#[test]
fn defaults_match_kafka_topic_defaults() {
    // With Kafka's broker defaults, every resolved topic value equals Kafka's topic default.
    let b = BrokerConfig::from_map(
        Defaults::Kafka,
        map(&[
            ("node.id", "1"),
            ("process.roles", "broker,controller"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("controller.quorum.voters", "1@localhost:9093"),
        ]),
    )
    .unwrap()
    .config;
    let t = TopicConfig::resolve(&b, &BTreeMap::new()).unwrap();
    for k in TOPIC_KEYS {
        if let Some(v) = t.value_string(k.def.name) {
            assert_eq!(Some(v.as_str()), k.def.default, "{}", k.def.name);
        }
    }
    assert_eq!(t.retention_ms, 604_800_000);
    assert_eq!(t.flush_ms, i64::MAX);
    assert_eq!(t.cleanup_policy, CleanupPolicy::DELETE);
}

#[test]
fn resolve_uses_broker_synonyms() {
    let b = must_broker(&[
        ("log.retention.minutes", "10"),
        ("log.segment.bytes", "1048576"),
        ("message.max.bytes", "2000000"),
        ("log.cleanup.policy", "compact"),
        ("min.insync.replicas", "2"),
        ("log.flush.interval.messages", "100"),
        ("log.flush.interval.ms", "500"),
        ("compression.type", "lz4"),
        ("log.roll.hours", "1"),
        ("log.index.size.max.bytes", "4096"),
        ("log.index.interval.bytes", "100"),
        ("log.cleaner.delete.retention.ms", "5"),
        ("log.cleaner.min.compaction.lag.ms", "6"),
        ("log.cleaner.max.compaction.lag.ms", "7"),
        ("log.cleaner.min.cleanable.ratio", "0.1"),
        ("log.segment.delete.delay.ms", "8"),
        ("log.preallocate", "true"),
        ("unclean.leader.election.enable", "true"),
        ("log.message.timestamp.type", "LogAppendTime"),
        ("log.message.timestamp.before.max.ms", "9"),
        ("log.message.timestamp.after.max.ms", "10"),
        ("log.retention.bytes", "1000"),
    ])
    .config;
    let t = TopicConfig::resolve(&b, &BTreeMap::new()).unwrap();
    assert_eq!(t.retention_ms, 600_000);
    assert_eq!(t.segment_bytes, 1_048_576);
    assert_eq!(t.max_message_bytes, 2_000_000);
    assert_eq!(t.cleanup_policy, CleanupPolicy::COMPACT);
    assert_eq!(t.min_insync_replicas, 2);
    assert_eq!(t.flush_messages, 100);
    assert_eq!(t.flush_ms, 500);
    assert_eq!(t.compression_type, CompressionType::Lz4);
    assert_eq!(t.segment_ms, 3_600_000);
    assert_eq!(t.segment_index_bytes, 4096);
    assert_eq!(t.index_interval_bytes, 100);
    assert_eq!(t.delete_retention_ms, 5);
    assert_eq!(t.min_compaction_lag_ms, 6);
    assert_eq!(t.max_compaction_lag_ms, 7);
    assert_eq!(t.min_cleanable_dirty_ratio, 0.1);
    assert_eq!(t.file_delete_delay_ms, 8);
    assert!(t.preallocate);
    assert!(t.unclean_leader_election_enable);
    assert_eq!(t.message_timestamp_type, TimestampType::LogAppendTime);
    assert_eq!(t.message_timestamp_before_max_ms, 9);
    assert_eq!(t.message_timestamp_after_max_ms, 10);
    assert_eq!(t.retention_bytes, 1000);
}

#[test]
fn overrides_beat_broker() {
    let b = must_broker(&[
        ("log.retention.hours", "1"),
        ("log.cleanup.policy", "compact"),
    ])
    .config;
    let t = TopicConfig::resolve(
        &b,
        &map(&[
            ("retention.ms", "-1"),
            ("cleanup.policy", "delete,compact"),
            ("max.message.bytes", "10"),
            ("min.cleanable.dirty.ratio", "0.9"),
            ("compression.type", "zstd"),
            ("message.timestamp.type", "LogAppendTime"),
            ("preallocate", "true"),
            ("remote.storage.enable", "false"),
            ("segment.bytes", "1048576"),
            ("segment.ms", "1000"),
            ("flush.ms", "0"),
            ("message.downconversion.enable", "false"),
        ]),
    )
    .unwrap();
    assert_eq!(t.retention_ms, -1);
    assert_eq!(t.cleanup_policy, CleanupPolicy::BOTH);
    assert_eq!(t.max_message_bytes, 10);
    assert_eq!(t.min_cleanable_dirty_ratio, 0.9);
    assert_eq!(t.compression_type, CompressionType::Zstd);
    assert_eq!(t.message_timestamp_type, TimestampType::LogAppendTime);
    assert!(t.preallocate);
    assert_eq!(t.segment_bytes, 1_048_576);
    assert_eq!(t.segment_ms, 1000);
    assert_eq!(t.flush_ms, 0);
    assert!(!t.message_downconversion_enable);
}

#[test]
fn validate_messages_use_kafka_wording() {
    let msg = |k: &str, v: &str| validate_topic_config(k, v).unwrap_err().to_string();
    assert_eq!(
        msg("retention.ms", "abc"),
        "Invalid value abc for configuration retention.ms: Not a number of type LONG"
    );
    assert_eq!(
        msg("segment.bytes", "x"),
        "Invalid value x for configuration segment.bytes: Not a number of type INT"
    );
    assert_eq!(
        msg("min.insync.replicas", "0"),
        "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1"
    );
    assert_eq!(
        msg("retention.ms", "-2"),
        "Invalid value -2 for configuration retention.ms: Value must be at least -1"
    );
    assert_eq!(
        msg("compression.type", "brotli"),
        "Invalid value brotli for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"
    );
    assert_eq!(
        msg("cleanup.policy", "delete,purge"),
        "Invalid value delete,purge for configuration cleanup.policy: String must be one of: compact, delete"
    );
    assert_eq!(msg("preallocate", "yes"), "Invalid value yes for configuration preallocate: Expected value to be either true or false");
    assert_eq!(
        msg("min.cleanable.dirty.ratio", "1.5"),
        "Invalid value 1.5 for configuration min.cleanable.dirty.ratio: Value must be in the range [0, 1]"
    );
    assert_eq!(msg("min.cleanable.dirty.ratio", "half"), "Invalid value half for configuration min.cleanable.dirty.ratio: Not a number of type DOUBLE");
    assert_eq!(
        msg("message.timestamp.type", "Now"),
        "Invalid value Now for configuration message.timestamp.type: String must be one of: CreateTime, LogAppendTime"
    );
    assert!(matches!(
        validate_topic_config("retention.hours", "1"),
        Err(ConfigError::UnknownTopicKey(_))
    ));
    assert_eq!(
        msg("log.retention.ms", "1"),
        "Unknown topic config name: log.retention.ms"
    );
    assert!(validate_topic_config("retention.ms", " 1000 ").is_ok());
    assert!(validate_topic_config("message.downconversion.enable", "true").is_ok());
    assert!(validate_topic_config("local.retention.ms", "-2").is_ok());
}

#[test]
fn resolve_rejects_bad_overrides_and_conflicts() {
    let b = BrokerConfig::embedded_default();
    assert!(TopicConfig::resolve(&b, &map(&[("retention.ms", "x")])).is_err());
    assert!(TopicConfig::resolve(&b, &map(&[("nope", "1")])).is_err());
    let e = validate_topic_configs(
        &b,
        &map(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("must not exceed max.compaction.lag.ms"),
        "{e}"
    );
    assert!(validate_topic_configs(&b, &map(&[("min.compaction.lag.ms", "5")])).is_ok());
}

#[test]
fn names_and_synonyms() {
    let names = topic_config_names();
    for k in [
        "retention.ms",
        "retention.bytes",
        "segment.bytes",
        "segment.ms",
        "segment.index.bytes",
        "index.interval.bytes",
        "cleanup.policy",
        "max.message.bytes",
        "min.insync.replicas",
        "flush.messages",
        "flush.ms",
        "compression.type",
        "message.timestamp.type",
        "message.timestamp.before.max.ms",
        "message.timestamp.after.max.ms",
        "min.compaction.lag.ms",
        "max.compaction.lag.ms",
        "delete.retention.ms",
        "min.cleanable.dirty.ratio",
        "file.delete.delay.ms",
        "unclean.leader.election.enable",
        "preallocate",
        "message.downconversion.enable",
    ] {
        assert!(names.contains(&k), "{k}");
    }
    assert_eq!(
        topic_config_synonyms("retention.ms"),
        &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours"
        ]
    );
    assert_eq!(
        topic_config_synonyms("segment.ms"),
        &["log.roll.ms", "log.roll.hours"]
    );
    assert_eq!(
        topic_config_synonyms("max.message.bytes"),
        &["message.max.bytes"]
    );
    assert!(topic_config_synonyms("nope").is_empty());
}

#[test]
fn describe_defaults() {
    let b = BrokerConfig::embedded_default();
    let d = describe_topic_configs(&b, &BTreeMap::new());
    assert_eq!(d.len(), TOPIC_KEYS.len() - 1);
    assert!(d.iter().all(|e| e.name != INTERNAL_SEGMENT_BYTES));
    let e = entry(&d, "retention.ms");
    assert_eq!(e.value.as_deref(), Some("604800000"));
    assert_eq!(e.source, ConfigSource::DefaultConfig);
    assert_eq!(e.config_type, ConfigType::Long);
    assert!(!e.read_only && !e.is_sensitive);
    assert_eq!(
        e.synonyms,
        vec![ConfigSynonym {
            name: "log.retention.hours".into(),
            value: Some("168".into()),
            source: ConfigSource::DefaultConfig
        }]
    );
    let e = entry(&d, "cleanup.policy");
    assert_eq!(e.value.as_deref(), Some("delete"));
    assert_eq!(e.config_type, ConfigType::List);
    let e = entry(&d, "flush.ms");
    assert_eq!(e.value.as_deref(), Some("9223372036854775807"));
    assert_eq!(e.synonyms[0].name, "log.flush.scheduler.interval.ms");
    let e = entry(&d, "max.message.bytes");
    assert_eq!(e.value.as_deref(), Some("1048588"));
    assert_eq!(e.config_type, ConfigType::Int);
    let e = entry(&d, "remote.storage.enable");
    assert_eq!(e.value.as_deref(), Some("false"));
    assert_eq!(e.synonyms[0].name, "remote.storage.enable");
    let e = entry(&d, "min.cleanable.dirty.ratio");
    assert_eq!(e.value.as_deref(), Some("0.5"));
}

#[test]
fn describe_override_then_static_then_default() {
    let b = must_broker(&[("log.retention.ms", "1000")]).config;
    let d = describe_topic_configs(
        &b,
        &map(&[("retention.ms", " 5000 "), ("cleanup.policy", "compact")]),
    );
    let e = entry(&d, "retention.ms");
    assert_eq!(e.value.as_deref(), Some("5000"));
    assert_eq!(e.source, ConfigSource::DynamicTopicConfig);
    let got: Vec<(&str, Option<&str>, i8)> = e
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref(), s.source.code()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("retention.ms", Some("5000"), 1),
            ("log.retention.ms", Some("1000"), 4),
            ("log.retention.hours", Some("168"), 5)
        ]
    );
    let e = entry(&d, "cleanup.policy");
    assert_eq!(e.value.as_deref(), Some("compact"));
    assert_eq!(e.synonyms.len(), 2);

    // Without the override the broker static value is effective.
    let d = describe_topic_configs(&b, &BTreeMap::new());
    let e = entry(&d, "retention.ms");
    assert_eq!(e.value.as_deref(), Some("1000"));
    assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
}

#[test]
fn describe_layered_names_the_keys_set() {
    let l = must_broker(&[("log.retention.hours", "24")]);
    let dynamic = map(&[("log.retention.minutes", "30")]);
    let b = l.with_dynamic(&dynamic).unwrap();
    assert_eq!(b.log_retention_ms, 1_800_000);
    let d = describe_topic_configs_layered(&b, &l.original, &dynamic, &BTreeMap::new());
    let e = entry(&d, "retention.ms");
    assert_eq!(e.value.as_deref(), Some("1800000"));
    assert_eq!(e.source, ConfigSource::DynamicDefaultBrokerConfig);
    let got: Vec<(&str, Option<&str>, ConfigSource)> = e
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "log.retention.minutes",
                Some("30"),
                ConfigSource::DynamicDefaultBrokerConfig
            ),
            (
                "log.retention.hours",
                Some("24"),
                ConfigSource::StaticBrokerConfig
            ),
            (
                "log.retention.hours",
                Some("168"),
                ConfigSource::DefaultConfig
            ),
        ]
    );
}

#[test]
fn describe_reports_invalid_stored_override_as_given() {
    let b = BrokerConfig::embedded_default();
    let d = describe_topic_configs(
        &b,
        &map(&[("retention.ms", "oops"), ("segment.ms", "1000")]),
    );
    assert_eq!(entry(&d, "retention.ms").value.as_deref(), Some("oops"));
    assert_eq!(entry(&d, "segment.ms").value.as_deref(), Some("1000"));
}

#[test]
fn segment_bytes_minimum_and_internal_override() {
    let b = BrokerConfig::embedded_default();
    assert_eq!(
        validate_topic_config("segment.bytes", "1024")
            .unwrap_err()
            .to_string(),
        "Invalid value 1024 for configuration segment.bytes: Value must be at least 1048576"
    );
    assert!(validate_topic_config(INTERNAL_SEGMENT_BYTES, "1024").is_ok());
    let t = TopicConfig::resolve(
        &b,
        &map(&[
            (INTERNAL_SEGMENT_BYTES, "1024"),
            ("segment.bytes", "2097152"),
        ]),
    )
    .unwrap();
    assert_eq!(t.segment_bytes, 1024);
    assert!(!topic_config_names().contains(&INTERNAL_SEGMENT_BYTES));
    assert!(validate_topic_config(INTERNAL_SEGMENT_BYTES, "1").is_err());
}

#[test]
fn list_configs() {
    assert!(is_list_config("cleanup.policy"));
    assert!(is_list_config("log.cleanup.policy"));
    assert!(is_list_config("follower.replication.throttled.replicas"));
    assert!(!is_list_config("retention.ms"));
    assert!(!is_list_config("nope"));
    assert_eq!(config_type("compression.type"), Some(ConfigType::String));
    assert_eq!(config_type("num.partitions"), Some(ConfigType::Int));
    assert_eq!(config_type("nope"), None);
}

#[test]
fn confluent_schema_validation_keys() {
    let b = must_broker(&[]).config;
    let t = TopicConfig::resolve(&b, &BTreeMap::new()).unwrap();
    assert!(!t.confluent_key_schema_validation && !t.confluent_value_schema_validation);
    assert_eq!(t.confluent_value_subject_name_strategy, SubjectNameStrategy::TopicName);
    let t = TopicConfig::resolve(
        &b,
        &map(&[
            ("confluent.value.schema.validation", "true"),
            ("confluent.key.schema.validation", "true"),
            ("confluent.key.subject.name.strategy", "io.confluent.kafka.serializers.subject.RecordNameStrategy"),
            ("confluent.value.subject.name.strategy", "TopicRecordNameStrategy"),
        ]),
    )
    .unwrap();
    assert!(t.confluent_key_schema_validation && t.confluent_value_schema_validation);
    assert_eq!(t.confluent_key_subject_name_strategy, SubjectNameStrategy::RecordName);
    assert_eq!(t.confluent_value_subject_name_strategy, SubjectNameStrategy::TopicRecordName);
    assert_eq!(
        t.value_string("confluent.value.subject.name.strategy").as_deref(),
        Some("io.confluent.kafka.serializers.subject.TopicRecordNameStrategy")
    );
    assert!(validate_topic_config("confluent.value.schema.validation", "maybe").is_err());
    assert!(validate_topic_config("confluent.value.subject.name.strategy", "NoSuchStrategy").is_err());
    assert!(topic_config_names().contains(&"confluent.value.schema.validation"));
}
