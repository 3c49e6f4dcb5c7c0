//! [`BrokerConfig`]: the typed broker configuration, how it is loaded
//! ([`BrokerConfig::load`]), its embedded single-node default, cross-field validation, and the
//! broker side of DescribeConfigs / IncrementalAlterConfigs.
//!
//! Loading order (later wins): defaults → properties file → `--override key=value`. The defaults
//! are Kafka 4.x's when a file is given, and [`BrokerConfig::embedded_default`]'s profile when no
//! file is given. Keys are looked up in Klamm's key table: known keys are typed and checked,
//! keys Kafka knows but Klamm ignores are reported as "accepted, no effect", anything else is an
//! unknown key (the binary logs a warning). A value that is out of range or of the wrong type is
//! an error naming the key.
//!
//! `BrokerConfig` is plain data (`Clone + Send + Sync`); nothing here does I/O except
//! [`BrokerConfig::load`], which reads the one file it is given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::broker_keys::{broker_key, is_no_effect, BROKER_KEYS, DEFAULT_PROTOCOL_MAP};
use crate::properties;
use crate::schema::{split_list, ConfigEntry, ConfigSource, ConfigSynonym, Value};
use crate::types::{
    CleanupPolicy, CompressionType, Listener, ProcessRole, QuorumVoter, SecurityProtocol,
    TimestampType,
};
use crate::security::{listener_security, ListenerSecurity};
use crate::ConfigError;

/// Which defaults sit under the file and overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defaults {
    /// Apache Kafka 4.x defaults (used when a properties file is given).
    Kafka,
    /// Kafka defaults plus [`EMBEDDED_PROFILE`] (used when no file is given).
    Embedded,
}

/// The keys [`BrokerConfig::embedded_default`] sets on top of Kafka's defaults, so that a single
/// node runs with no configuration at all.
///
/// `group.initial.rebalance.delay.ms` is 0 rather than Kafka's 3000: a single node gains nothing
/// from waiting for more members to join a new group, and Kafka's own sample
/// `config/server.properties` sets 0 for the same development use. Replication factors and
/// `transaction.state.log.min.isr` are 1 because there is one node.
pub const EMBEDDED_PROFILE: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("process.roles", "broker,controller"),
    (
        "listeners",
        "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
    ),
    ("controller.listener.names", "CONTROLLER"),
    ("controller.quorum.voters", "1@127.0.0.1:9093"),
    ("log.dirs", "./klamm-data"),
    ("offsets.topic.replication.factor", "1"),
    ("transaction.state.log.replication.factor", "1"),
    ("transaction.state.log.min.isr", "1"),
    ("group.initial.rebalance.delay.ms", "0"),
    // The ops page and /metrics of a development node work out of the box; loopback only.
    ("klamm.http.listener", "127.0.0.1:9644"),
    // The schema registry on Confluent's port, so serializers work with their defaults.
    ("klamm.schema.registry.listener", "127.0.0.1:8081"),
];

/// The typed broker configuration. Field names are Kafka's keys with `.` → `_`; units are in
/// the names. Every time in ms is an `i64` or `i32` exactly as Kafka types it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// `node.id` (or legacy `broker.id`).
    pub node_id: i32,
    /// `process.roles`, without duplicates, in the order given.
    pub process_roles: Vec<ProcessRole>,
    /// `listeners`: the endpoints this node binds.
    pub listeners: Vec<Listener>,
    /// `advertised.listeners`; defaults to `listeners` minus the controller listeners. An empty
    /// host is kept as is (the broker substitutes its own address).
    pub advertised_listeners: Vec<Listener>,
    /// The controller listeners this node advertises to other controllers: each controller
    /// listener of `listeners`, replaced by its `advertised.listeners` entry when one is given
    /// (Kafka 4 allows controller listeners there). Empty unless the node is a controller.
    pub advertised_controller_listeners: Vec<Listener>,
    /// `listener.security.protocol.map` (listener name → protocol). When not set: each protocol
    /// maps to itself and every controller listener (and `CONTROLLER`) maps to PLAINTEXT.
    pub listener_security_protocol_map: BTreeMap<String, SecurityProtocol>,
    /// `controller.listener.names`, upper-cased.
    pub controller_listener_names: Vec<String>,
    /// `inter.broker.listener.name`, or the listener named after `security.inter.broker.protocol`.
    pub inter_broker_listener_name: String,
    /// `controller.quorum.voters`.
    pub controller_quorum_voters: Vec<QuorumVoter>,
    /// `log.dirs`, falling back to `log.dir`.
    pub log_dirs: Vec<PathBuf>,
    /// `metadata.log.dir` (None = first of `log_dirs`).
    pub metadata_log_dir: Option<PathBuf>,
    /// `cluster.id` (Klamm extension): the id to format new storage with / expect.
    pub cluster_id: Option<String>,
    /// `broker.rack`.
    pub broker_rack: Option<String>,
    /// `klamm.http.listener` (Klamm extension): `host:port` of the admin/ops HTTP listener;
    /// None = off (the default with a file; `127.0.0.1:9644` in the embedded profile).
    pub klamm_http_listener: Option<String>,
    /// `klamm.schema.registry.listener` (Klamm extension): `host:port` of the schema registry
    /// (an `http://` or `https://` scheme removed); None = off (the default with a file;
    /// `127.0.0.1:8081` in the embedded profile).
    pub klamm_schema_registry_listener: Option<String>,
    /// TLS (`https://` listener, `ssl.*` / `klamm.schema.registry.ssl.*`) and basic auth
    /// (`klamm.schema.registry.authentication`) of the schema registry.
    pub klamm_schema_registry_security: crate::registry::RegistrySecurity,
    /// `klamm.request.slow.threshold.ms` (Klamm extension, default 1000): a request slower than
    /// this is logged at WARN; 0 or negative = off.
    pub klamm_request_slow_threshold_ms: i64,
    /// `num.partitions` (default 1).
    pub num_partitions: i32,
    /// `default.replication.factor` (default 1).
    pub default_replication_factor: i16,
    /// `min.insync.replicas` (default 1).
    pub min_insync_replicas: i32,
    /// `auto.create.topics.enable` (default true).
    pub auto_create_topics_enable: bool,
    /// `delete.topic.enable` (default true).
    pub delete_topic_enable: bool,
    /// `message.max.bytes` (default 1048588).
    pub message_max_bytes: i32,
    /// `socket.request.max.bytes` (default 104857600).
    pub socket_request_max_bytes: i32,
    /// `request.timeout.ms` for inter-node requests (default 30000).
    pub request_timeout_ms: i32,
    /// `replica.fetch.max.bytes` (default 1048576).
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes` (default 10485760).
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.min.bytes` (default 1).
    pub replica_fetch_min_bytes: i32,
    /// `replica.fetch.wait.max.ms` (default 500).
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.backoff.ms` (default 1000).
    pub replica_fetch_backoff_ms: i32,
    /// `replica.lag.time.max.ms` (default 30000).
    pub replica_lag_time_max_ms: i64,
    /// `replica.high.watermark.checkpoint.interval.ms` (default 5000).
    pub replica_high_watermark_checkpoint_interval_ms: i64,
    /// `log.segment.bytes` (default 1 GiB).
    pub log_segment_bytes: i32,
    /// `log.roll.ms`, else `log.roll.hours` × 3600000 (default 7 days).
    pub log_roll_ms: i64,
    /// `log.retention.ms` > `log.retention.minutes` > `log.retention.hours` (default 7 days);
    /// -1 = infinite (any negative value is normalised to -1, as Kafka does).
    pub log_retention_ms: i64,
    /// `log.retention.bytes` (default -1 = unlimited).
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms` (default 300000).
    pub log_retention_check_interval_ms: i64,
    /// `log.flush.interval.messages` (default i64::MAX = never).
    pub log_flush_interval_messages: i64,
    /// `log.flush.interval.ms`; None (Kafka's null) = use `log.flush.scheduler.interval.ms`,
    /// which defaults to i64::MAX, i.e. never flush on time (rely on replication).
    pub log_flush_interval_ms: Option<i64>,
    /// `log.flush.scheduler.interval.ms` (default i64::MAX).
    pub log_flush_scheduler_interval_ms: i64,
    /// `log.cleanup.policy` (default delete).
    pub log_cleanup_policy: CleanupPolicy,
    /// `log.cleaner.enable` (default true).
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms` (default 15000): how often the cleaner looks for dirty logs.
    pub log_cleaner_backoff_ms: i64,
    /// `log.cleaner.min.compaction.lag.ms` (default 0).
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms` (default i64::MAX).
    pub log_cleaner_max_compaction_lag_ms: i64,
    /// `log.cleaner.delete.retention.ms` (default 86400000).
    pub log_cleaner_delete_retention_ms: i64,
    /// `log.cleaner.min.cleanable.ratio` (default 0.5).
    pub log_cleaner_min_cleanable_ratio: f64,
    /// `log.segment.delete.delay.ms` (default 60000).
    pub log_segment_delete_delay_ms: i64,
    /// `log.preallocate` (default false).
    pub log_preallocate: bool,
    /// `log.index.interval.bytes` (default 4096).
    pub log_index_interval_bytes: i32,
    /// `log.index.size.max.bytes` (default 10485760).
    pub log_index_size_max_bytes: i32,
    /// `log.message.timestamp.type` (default CreateTime).
    pub log_message_timestamp_type: TimestampType,
    /// `log.message.timestamp.before.max.ms` (default i64::MAX).
    pub log_message_timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms` (default 3600000).
    pub log_message_timestamp_after_max_ms: i64,
    /// `log.message.downconversion.enable` (accepted; default true).
    pub log_message_downconversion_enable: bool,
    /// `compression.type` (default producer).
    pub compression_type: CompressionType,
    /// `offsets.topic.num.partitions` (default 50).
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor` (default 3; embedded 1).
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes` (default 104857600).
    pub offsets_topic_segment_bytes: i32,
    /// `offsets.retention.minutes` (default 10080).
    pub offsets_retention_minutes: i32,
    /// `offset.metadata.max.bytes` (default 4096).
    pub offset_metadata_max_bytes: i32,
    /// `offsets.retention.check.interval.ms` (default 600000).
    pub offsets_retention_check_interval_ms: i64,
    /// `group.initial.rebalance.delay.ms` (default 3000; embedded 0).
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.min.session.timeout.ms` (default 6000).
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (default 1800000).
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size` (default i32::MAX).
    pub group_max_size: i32,
    /// `transaction.state.log.num.partitions` (default 50).
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.state.log.replication.factor` (default 3; embedded 1).
    pub transaction_state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr` (default 2; embedded 1).
    pub transaction_state_log_min_isr: i32,
    /// `transaction.state.log.segment.bytes` (default 104857600).
    pub transaction_state_log_segment_bytes: i32,
    /// `transactional.id.expiration.ms` (default 604800000).
    pub transactional_id_expiration_ms: i32,
    /// `transaction.max.timeout.ms` (default 900000).
    pub transaction_max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (default 10000).
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: i32,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` (default 3600000).
    pub transaction_remove_expired_transaction_cleanup_interval_ms: i32,
    /// `producer.id.expiration.ms` (default 86400000).
    pub producer_id_expiration_ms: i32,
    /// `producer.id.expiration.check.interval.ms` (default 600000).
    pub producer_id_expiration_check_interval_ms: i32,
    /// `fetch.max.bytes` (default 57671680 = 55 MiB).
    pub fetch_max_bytes: i32,
    /// `queued.max.requests` (default 500).
    pub queued_max_requests: i32,
    /// `num.network.threads` (default 3; a hint).
    pub num_network_threads: i32,
    /// `num.io.threads` (default 8; a hint).
    pub num_io_threads: i32,
    /// `max.connections` (default i32::MAX).
    pub max_connections: i32,
    /// `max.connections.per.ip` (default i32::MAX).
    pub max_connections_per_ip: i32,
    /// `max.connections.per.ip.overrides` (default empty): host (IP or hostname) → limit.
    pub max_connections_per_ip_overrides: BTreeMap<String, i32>,
    /// `connections.max.idle.ms` (default 600000).
    pub connections_max_idle_ms: i64,
    /// `unclean.leader.election.enable` (default false).
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable` (default true).
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds` (default 300, at least 1).
    pub leader_imbalance_check_interval_seconds: i64,
    /// `leader.imbalance.per.broker.percentage` (default 10).
    pub leader_imbalance_per_broker_percentage: i32,
    /// `max.incremental.fetch.session.cache.slots` (default 1000).
    pub max_incremental_fetch_session_cache_slots: i32,
    /// `broker.heartbeat.interval.ms` (default 2000).
    pub broker_heartbeat_interval_ms: i32,
    /// `broker.session.timeout.ms` (default 9000).
    pub broker_session_timeout_ms: i32,
    /// `controller.quorum.election.timeout.ms` (default 1000).
    pub controller_quorum_election_timeout_ms: i32,
    /// `controller.quorum.fetch.timeout.ms` (default 2000).
    pub controller_quorum_fetch_timeout_ms: i32,
    /// `metadata.log.segment.bytes` (default 1 GiB).
    pub metadata_log_segment_bytes: i32,
    /// `metadata.log.max.record.bytes.between.snapshots` (default 20971520).
    pub metadata_log_max_record_bytes_between_snapshots: i64,
    /// Security settings of every Kafka listener this node binds (`listeners` minus the
    /// controller listeners, which are plaintext only) and of the inter-broker listener, by
    /// listener name: `ssl.*` and `sasl.*` with their `listener.name.<name>.` forms resolved.
    pub listener_security: BTreeMap<String, ListenerSecurity>,
    /// `connection.failed.authentication.delay.ms` (default 100).
    pub connection_failed_authentication_delay_ms: i32,
    /// `connections.max.reauth.ms` (default 0 = sessions do not expire).
    pub connections_max_reauth_ms: i64,
    /// `authorizer.class.name` is Kafka's StandardAuthorizer: ACLs are enforced.
    pub authorizer_enabled: bool,
    /// `super.users`: principals (`User:name`) split on `;`.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found` (default false).
    pub allow_everyone_if_no_acl_found: bool,
    /// `sasl.mechanism.inter.broker.protocol` (default GSSAPI, refused when the
    /// inter-broker listener uses SASL).
    pub sasl_mechanism_inter_broker_protocol: String,
}

/// The result of [`BrokerConfig::load`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    /// The typed, validated configuration.
    pub config: BrokerConfig,
    /// Keys that no Kafka broker knows (the binary logs them as warnings), sorted.
    pub unknown_keys: Vec<String>,
    /// Kafka keys Klamm accepts but ignores ("accepted, no effect"), sorted.
    pub ignored_keys: Vec<String>,
    /// File entries then overrides, as given (later wins), for DescribeConfigs.
    pub original: BTreeMap<String, String>,
    /// The defaults the configuration was built on.
    pub defaults: Defaults,
}

impl LoadedConfig {
    /// Rebuilds the configuration with cluster-wide dynamic configs layered over the static
    /// ones (Kafka precedence: dynamic > static > default, then the synonym rules, so a static
    /// `log.retention.ms` still beats a dynamic `log.retention.hours`, as in Kafka).
    /// Every dynamic key must pass [`validate_broker_dynamic_config`].
    pub fn with_dynamic(
        &self,
        dynamic: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut merged = self.original.clone();
        for (k, v) in dynamic {
            validate_broker_dynamic_config(k, v)?;
            merged.insert(k.clone(), v.clone());
        }
        Ok(BrokerConfig::from_map(self.defaults, merged)?.config)
    }

    /// One warning per unknown key, for the binary to log, with a hint when one is likely:
    /// `unknown configuration "log.retention.hour" (did you mean log.retention.hours?)`.
    pub fn unknown_key_warnings(&self) -> Vec<String> {
        self.unknown_keys
            .iter()
            .map(|k| match suggest_broker_key(k) {
                Some(hint) => format!("unknown configuration {k:?} ({hint})"),
                None => format!("unknown configuration {k:?}"),
            })
            .collect()
    }
}

/// A hint for an unknown broker key: the broker synonym of a topic key, or a known key within
/// a small edit distance.
pub fn suggest_broker_key(key: &str) -> Option<String> {
    let synonyms = crate::topic::topic_config_synonyms(key);
    if let Some(first) = synonyms.first() {
        return Some(format!(
            "{key} is a topic config; the broker-wide default is {first}"
        ));
    }
    let max = if key.len() > 12 { 2 } else { 1 };
    BROKER_KEYS
        .iter()
        .map(|d| (strsim::levenshtein(key, d.name), d.name))
        .filter(|(d, _)| *d <= max)
        .min()
        .map(|(_, name)| format!("did you mean {name}?"))
}

/// Splits one `--override key=value` argument.
pub fn parse_override(arg: &str) -> Result<(String, String), ConfigError> {
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| ConfigError::BadOverride(arg.to_string()))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(ConfigError::BadOverride(arg.to_string()));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Typed access to a merged property map with the key table's defaults and checks.
struct Reader<'a> {
    map: &'a BTreeMap<String, String>,
}

impl Reader<'_> {
    fn raw(&self, key: &str) -> Option<&str> {
        match self.map.get(key) {
            Some(v) => Some(v.as_str()),
            None => broker_key(key).and_then(|d| d.default),
        }
    }

    fn is_set(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    fn value(&self, key: &str) -> Result<Value, ConfigError> {
        let def = broker_key(key).ok_or_else(|| {
            ConfigError::Inconsistent(format!("internal: {key} is not in the key table"))
        })?;
        match self.raw(key) {
            None => Ok(Value::Null),
            Some(raw) => def
                .parse(raw)
                .map_err(|bad| ConfigError::value(key, bad.broker_message(raw))),
        }
    }

    fn opt_int(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.value(key)? {
            Value::Int(v) => Ok(Some(v)),
            _ => Ok(None),
        }
    }

    fn int(&self, key: &str) -> Result<i64, ConfigError> {
        self.opt_int(key)?
            .ok_or_else(|| ConfigError::value(key, "missing required value"))
    }

    fn i32(&self, key: &str) -> Result<i32, ConfigError> {
        let v = self.int(key)?;
        i32::try_from(v).map_err(|_| {
            ConfigError::value(key, format!("{v} is out of range for a 32-bit integer"))
        })
    }

    fn i16(&self, key: &str) -> Result<i16, ConfigError> {
        let v = self.int(key)?;
        i16::try_from(v).map_err(|_| {
            ConfigError::value(key, format!("{v} is out of range for a 16-bit integer"))
        })
    }

    fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.value(key)? {
            Value::Bool(b) => Ok(b),
            _ => Err(ConfigError::value(key, "missing required value")),
        }
    }

    fn f64(&self, key: &str) -> Result<f64, ConfigError> {
        match self.value(key)? {
            Value::Double(d) => Ok(d),
            _ => Err(ConfigError::value(key, "missing required value")),
        }
    }

    fn opt_str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.value(key)? {
            Value::Str(s) => Ok(Some(s)),
            Value::List(l) => Ok(Some(l.join(","))),
            _ => Ok(None),
        }
    }

    fn str(&self, key: &str) -> Result<String, ConfigError> {
        self.opt_str(key)?
            .ok_or_else(|| ConfigError::value(key, "missing required value"))
    }

    fn parsed<T>(
        &self,
        key: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let s = self.str(key)?;
        f(&s).map_err(|m| ConfigError::value(key, m))
    }
}

impl BrokerConfig {
    /// What `klamm` runs with no configuration at all: a combined broker+controller single
    /// node (`node.id=1`, PLAINTEXT on 127.0.0.1:9092, CONTROLLER on 127.0.0.1:9093, data in
    /// `./klamm-data`), replication factors of internal topics set to 1, and Kafka defaults for
    /// everything else. See [`EMBEDDED_PROFILE`].
    pub fn embedded_default() -> BrokerConfig {
        BrokerConfig::from_map(Defaults::Embedded, BTreeMap::new())
            .expect("the embedded profile is valid (covered by tests)")
            .config
    }

    /// Loads the configuration: defaults (Kafka's if `file` is given, the embedded profile
    /// otherwise), then the file, then each `key=value` of `overrides` in order (later wins).
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<LoadedConfig, ConfigError> {
        Self::load_layered(file, BTreeMap::new(), overrides)
    }

    /// Loads the configuration from its three layers, later ones winning: the
    /// properties file, the environment's properties (`environment`, from
    /// [`crate::environment::properties_from_env`]), then the `--override`
    /// arguments.
    ///
    /// The defaults underneath are Kafka's when a file is given or when the
    /// environment sets `process.roles` (a Kafka container's compose file always
    /// does: KRaft needs it); otherwise the embedded single-node profile, which the
    /// environment and overrides then adjust (`KAFKA_NUM_PARTITIONS=3 klamm`).
    pub fn load_layered(
        file: Option<&Path>,
        environment: BTreeMap<String, String>,
        overrides: &[String],
    ) -> Result<LoadedConfig, ConfigError> {
        let mut original = BTreeMap::new();
        if let Some(path) = file {
            let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            original = properties::parse(&properties::decode(&bytes), path)?;
        }
        let environment_sets_roles = environment.contains_key("process.roles");
        original.extend(environment);
        for arg in overrides {
            let (k, v) = parse_override(arg)?;
            original.insert(k, v);
        }
        let defaults = if file.is_some() || environment_sets_roles {
            Defaults::Kafka
        } else {
            Defaults::Embedded
        };
        BrokerConfig::from_map(defaults, original)
    }

    /// Parses already-merged properties (`original`, as given) over `defaults`.
    pub fn from_map(
        defaults: Defaults,
        original: BTreeMap<String, String>,
    ) -> Result<LoadedConfig, ConfigError> {
        let mut merged: BTreeMap<String, String> = BTreeMap::new();
        if defaults == Defaults::Embedded {
            for (k, v) in EMBEDDED_PROFILE {
                merged.insert((*k).to_string(), (*v).to_string());
            }
        }
        let mut unknown_keys = Vec::new();
        let mut ignored_keys = Vec::new();
        for (k, v) in &original {
            if is_no_effect(k) {
                ignored_keys.push(k.clone());
            } else if broker_key(k).is_none() && !crate::security::is_effective_listener_key(k) && !crate::registry::is_registry_ssl_key(k) {
                unknown_keys.push(k.clone());
            }
            merged.insert(k.clone(), v.clone());
        }
        // Type-check every known key given, even ones with no effect, so typos in values are
        // reported rather than silently ignored.
        let reader = Reader { map: &merged };
        for k in merged.keys() {
            if broker_key(k).is_some() {
                reader.value(k)?;
            }
        }
        let config = BrokerConfig::build(&reader)?;
        config.validate()?;
        Ok(LoadedConfig {
            config,
            unknown_keys,
            ignored_keys,
            original,
            defaults,
        })
    }

    fn build(r: &Reader<'_>) -> Result<BrokerConfig, ConfigError> {
        let node_id = match (r.opt_int("node.id")?, r.opt_int("broker.id")?) {
            (Some(n), Some(b)) if n != b => {
                return Err(ConfigError::Inconsistent(format!(
                    "node.id ({n}) and broker.id ({b}) must be equal when both are set"
                )))
            }
            (Some(n), _) | (None, Some(n)) => n as i32,
            (None, None) => {
                return Err(ConfigError::value(
                    "node.id",
                    "missing required value; every KRaft node needs a unique node.id",
                ))
            }
        };

        let mut process_roles = Vec::new();
        match r.value("process.roles")? {
            Value::List(items) => {
                for item in items {
                    let role = ProcessRole::parse(&item)
                        .map_err(|m| ConfigError::value("process.roles", m))?;
                    if process_roles.contains(&role) {
                        return Err(ConfigError::value(
                            "process.roles",
                            format!("{role} is listed twice"),
                        ));
                    }
                    process_roles.push(role);
                }
            }
            _ => {
                return Err(ConfigError::value(
                    "process.roles",
                    "missing required value; set broker, controller or broker,controller",
                ))
            }
        }

        let listeners = r.parsed("listeners", Listener::parse_list)?;
        let controller_listener_names: Vec<String> = r
            .opt_str("controller.listener.names")?
            .map(|s| {
                split_list(&s)
                    .into_iter()
                    .map(|n| n.to_ascii_uppercase())
                    .collect()
            })
            .unwrap_or_default();

        // Kafka 4 lets combined nodes list their controller listener in advertised.listeners
        // (KIP-853); it is advertised to controllers only, never to clients.
        let is_ctrl = |l: &Listener| controller_listener_names.contains(&l.name);
        let given_advertised = if r.is_set("advertised.listeners") {
            Some(r.parsed("advertised.listeners", Listener::parse_list)?)
        } else {
            None
        };
        let advertised_listeners: Vec<Listener> = given_advertised
            .as_ref()
            .unwrap_or(&listeners)
            .iter()
            .filter(|l| !is_ctrl(l))
            .cloned()
            .collect();
        let advertised_controller_listeners: Vec<Listener> = listeners
            .iter()
            .filter(|l| is_ctrl(l))
            .map(|l| {
                given_advertised
                    .as_ref()
                    .and_then(|g| g.iter().find(|a| a.name == l.name))
                    .unwrap_or(l)
                    .clone()
            })
            .collect();
        if let Some(g) = &given_advertised {
            if let Some(a) = g
                .iter()
                .find(|a| !listeners.iter().any(|l| l.name == a.name))
            {
                let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
                return Err(ConfigError::value(
                    "advertised.listeners",
                    format!(
                        "{} is not one of the listeners ({})",
                        a.name,
                        names.join(", ")
                    ),
                ));
            }
        }

        let listener_security_protocol_map = if r.is_set("listener.security.protocol.map") {
            r.parsed("listener.security.protocol.map", parse_protocol_map)?
        } else {
            let mut m = parse_protocol_map(DEFAULT_PROTOCOL_MAP)
                .map_err(|m| ConfigError::value("listener.security.protocol.map", m))?;
            for name in &controller_listener_names {
                m.entry(name.clone()).or_insert(SecurityProtocol::Plaintext);
            }
            m
        };

        let inter_broker_listener_name = match r.opt_str("inter.broker.listener.name")? {
            Some(name) => {
                if r.is_set("security.inter.broker.protocol") {
                    return Err(ConfigError::Inconsistent(
                        "only one of inter.broker.listener.name and security.inter.broker.protocol may be set".into(),
                    ));
                }
                name.to_ascii_uppercase()
            }
            None => r.str("security.inter.broker.protocol")?,
        };

        let mut controller_quorum_voters =
            r.parsed("controller.quorum.voters", QuorumVoter::parse_list)?;
        let bootstrap = r
            .opt_str("controller.quorum.bootstrap.servers")?
            .map(|s| split_list(&s))
            .unwrap_or_default();
        if controller_quorum_voters.is_empty() && !bootstrap.is_empty() {
            controller_quorum_voters = voters_from_bootstrap(node_id, &process_roles, &bootstrap)?;
        }

        let log_dirs_raw = match r.opt_str("log.dirs")? {
            Some(s) => s,
            None => r.str("log.dir")?,
        };
        let log_dirs: Vec<PathBuf> = split_list(&log_dirs_raw)
            .into_iter()
            .map(PathBuf::from)
            .collect();
        for (i, d) in log_dirs.iter().enumerate() {
            if log_dirs[..i].contains(d) {
                let key = if r.is_set("log.dirs") {
                    "log.dirs"
                } else {
                    "log.dir"
                };
                return Err(ConfigError::value(
                    key,
                    format!("{} is listed more than once", d.display()),
                ));
            }
        }

        let retention = if let Some(ms) = r.opt_int("log.retention.ms")? {
            ms
        } else if let Some(min) = r.opt_int("log.retention.minutes")? {
            min * 60_000
        } else {
            r.int("log.retention.hours")? * 3_600_000
        };
        let log_roll_ms = match r.opt_int("log.roll.ms")? {
            Some(ms) => ms,
            None => r.int("log.roll.hours")? * 3_600_000,
        };

        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());

        // Listeners missing from the protocol map are reported by `validate`, secured
        // controller listeners by `refuse_secured_node_links`.
        let mut security = BTreeMap::new();
        // The inter-broker listener too on a controller-only node, which probes the brokers
        // on it without binding it (on a broker, `validate` requires it to be bound).
        let bound = listeners.iter().map(|l| &l.name);
        let probed = (!process_roles.contains(&ProcessRole::Broker)).then_some(&inter_broker_listener_name);
        for name in bound.chain(probed).filter(|n| !controller_listener_names.contains(n)) {
            if let Some(&protocol) = listener_security_protocol_map.get(name) {
                security.insert(name.clone(), listener_security(r.map, name, protocol)?);
            }
        }

        let registry_value = non_empty(r.opt_str("klamm.schema.registry.listener")?.map(|v| v.trim().to_string()));
        let (registry_listener, registry_https) = match &registry_value {
            Some(v) => {
                let (address, https) = crate::registry::split_scheme(v)
                    .map_err(|m| ConfigError::Inconsistent(format!("klamm.schema.registry.listener: {m}")))?;
                (Some(address.to_string()), https)
            }
            None => (None, false),
        };
        let registry_security = match registry_listener {
            Some(_) => crate::registry::registry_security(r.map, registry_https, &r.str("klamm.schema.registry.authentication")?, &security)?,
            None => crate::registry::RegistrySecurity::default(),
        };

        Ok(BrokerConfig {
            node_id,
            process_roles,
            listeners,
            advertised_listeners,
            advertised_controller_listeners,
            listener_security: security,
            connection_failed_authentication_delay_ms: r.i32("connection.failed.authentication.delay.ms")?,
            connections_max_reauth_ms: r.int("connections.max.reauth.ms")?,
            authorizer_enabled: !r.str("authorizer.class.name")?.trim().is_empty(),
            super_users: r
                .str("super.users")?
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            allow_everyone_if_no_acl_found: r.bool("allow.everyone.if.no.acl.found")?,
            sasl_mechanism_inter_broker_protocol: r.str("sasl.mechanism.inter.broker.protocol")?.trim().to_string(),
            listener_security_protocol_map,
            controller_listener_names,
            inter_broker_listener_name,
            controller_quorum_voters,
            log_dirs,
            metadata_log_dir: non_empty(r.opt_str("metadata.log.dir")?).map(PathBuf::from),
            cluster_id: non_empty(r.opt_str("cluster.id")?),
            broker_rack: non_empty(r.opt_str("broker.rack")?),
            klamm_http_listener: non_empty(r.opt_str("klamm.http.listener")?),
            klamm_schema_registry_listener: registry_listener,
            klamm_schema_registry_security: registry_security,
            klamm_request_slow_threshold_ms: r.int("klamm.request.slow.threshold.ms")?,
            num_partitions: r.i32("num.partitions")?,
            default_replication_factor: r.i16("default.replication.factor")?,
            min_insync_replicas: r.i32("min.insync.replicas")?,
            auto_create_topics_enable: r.bool("auto.create.topics.enable")?,
            delete_topic_enable: r.bool("delete.topic.enable")?,
            message_max_bytes: r.i32("message.max.bytes")?,
            socket_request_max_bytes: r.i32("socket.request.max.bytes")?,
            request_timeout_ms: r.i32("request.timeout.ms")?,
            replica_fetch_max_bytes: r.i32("replica.fetch.max.bytes")?,
            replica_fetch_response_max_bytes: r.i32("replica.fetch.response.max.bytes")?,
            replica_fetch_min_bytes: r.i32("replica.fetch.min.bytes")?,
            replica_fetch_wait_max_ms: r.i32("replica.fetch.wait.max.ms")?,
            replica_fetch_backoff_ms: r.i32("replica.fetch.backoff.ms")?,
            replica_lag_time_max_ms: r.int("replica.lag.time.max.ms")?,
            replica_high_watermark_checkpoint_interval_ms: r
                .int("replica.high.watermark.checkpoint.interval.ms")?,
            log_segment_bytes: r.i32("log.segment.bytes")?,
            log_roll_ms,
            log_retention_ms: if retention < 0 { -1 } else { retention },
            log_retention_bytes: r.int("log.retention.bytes")?,
            log_retention_check_interval_ms: r.int("log.retention.check.interval.ms")?,
            log_flush_interval_messages: r.int("log.flush.interval.messages")?,
            log_flush_interval_ms: r.opt_int("log.flush.interval.ms")?,
            log_flush_scheduler_interval_ms: r.int("log.flush.scheduler.interval.ms")?,
            log_cleanup_policy: r.parsed("log.cleanup.policy", CleanupPolicy::parse)?,
            log_cleaner_enable: r.bool("log.cleaner.enable")?,
            log_cleaner_backoff_ms: r.int("log.cleaner.backoff.ms")?,
            log_cleaner_min_compaction_lag_ms: r.int("log.cleaner.min.compaction.lag.ms")?,
            log_cleaner_max_compaction_lag_ms: r.int("log.cleaner.max.compaction.lag.ms")?,
            log_cleaner_delete_retention_ms: r.int("log.cleaner.delete.retention.ms")?,
            log_cleaner_min_cleanable_ratio: r.f64("log.cleaner.min.cleanable.ratio")?,
            log_segment_delete_delay_ms: r.int("log.segment.delete.delay.ms")?,
            log_preallocate: r.bool("log.preallocate")?,
            log_index_interval_bytes: r.i32("log.index.interval.bytes")?,
            log_index_size_max_bytes: r.i32("log.index.size.max.bytes")?,
            log_message_timestamp_type: r
                .parsed("log.message.timestamp.type", TimestampType::parse)?,
            log_message_timestamp_before_max_ms: r.int("log.message.timestamp.before.max.ms")?,
            log_message_timestamp_after_max_ms: r.int("log.message.timestamp.after.max.ms")?,
            log_message_downconversion_enable: r.bool("log.message.downconversion.enable")?,
            compression_type: r.parsed("compression.type", CompressionType::parse)?,
            offsets_topic_num_partitions: r.i32("offsets.topic.num.partitions")?,
            offsets_topic_replication_factor: r.i16("offsets.topic.replication.factor")?,
            offsets_topic_segment_bytes: r.i32("offsets.topic.segment.bytes")?,
            offsets_retention_minutes: r.i32("offsets.retention.minutes")?,
            offset_metadata_max_bytes: r.i32("offset.metadata.max.bytes")?,
            offsets_retention_check_interval_ms: r.int("offsets.retention.check.interval.ms")?,
            group_initial_rebalance_delay_ms: r.i32("group.initial.rebalance.delay.ms")?,
            group_min_session_timeout_ms: r.i32("group.min.session.timeout.ms")?,
            group_max_session_timeout_ms: r.i32("group.max.session.timeout.ms")?,
            group_max_size: r.i32("group.max.size")?,
            transaction_state_log_num_partitions: r.i32("transaction.state.log.num.partitions")?,
            transaction_state_log_replication_factor: r
                .i16("transaction.state.log.replication.factor")?,
            transaction_state_log_min_isr: r.i32("transaction.state.log.min.isr")?,
            transaction_state_log_segment_bytes: r.i32("transaction.state.log.segment.bytes")?,
            transactional_id_expiration_ms: r.i32("transactional.id.expiration.ms")?,
            transaction_max_timeout_ms: r.i32("transaction.max.timeout.ms")?,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: r
                .i32("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
            transaction_remove_expired_transaction_cleanup_interval_ms: r
                .i32("transaction.remove.expired.transaction.cleanup.interval.ms")?,
            producer_id_expiration_ms: r.i32("producer.id.expiration.ms")?,
            producer_id_expiration_check_interval_ms: r
                .i32("producer.id.expiration.check.interval.ms")?,
            fetch_max_bytes: r.i32("fetch.max.bytes")?,
            queued_max_requests: r.i32("queued.max.requests")?,
            num_network_threads: r.i32("num.network.threads")?,
            num_io_threads: r.i32("num.io.threads")?,
            max_connections: r.i32("max.connections")?,
            max_connections_per_ip: r.i32("max.connections.per.ip")?,
            max_connections_per_ip_overrides: r
                .parsed("max.connections.per.ip.overrides", parse_per_ip_overrides)?,
            connections_max_idle_ms: r.int("connections.max.idle.ms")?,
            unclean_leader_election_enable: r.bool("unclean.leader.election.enable")?,
            auto_leader_rebalance_enable: r.bool("auto.leader.rebalance.enable")?,
            leader_imbalance_check_interval_seconds: r.int("leader.imbalance.check.interval.seconds")?,
            leader_imbalance_per_broker_percentage: r.i32("leader.imbalance.per.broker.percentage")?,
            max_incremental_fetch_session_cache_slots: r
                .i32("max.incremental.fetch.session.cache.slots")?,
            broker_heartbeat_interval_ms: r.i32("broker.heartbeat.interval.ms")?,
            broker_session_timeout_ms: r.i32("broker.session.timeout.ms")?,
            controller_quorum_election_timeout_ms: r
                .i32("controller.quorum.election.timeout.ms")?,
            controller_quorum_fetch_timeout_ms: r.i32("controller.quorum.fetch.timeout.ms")?,
            metadata_log_segment_bytes: r.i32("metadata.log.segment.bytes")?,
            metadata_log_max_record_bytes_between_snapshots: r
                .int("metadata.log.max.record.bytes.between.snapshots")?,
        })
    }

    /// True if `process.roles` contains `broker`.
    pub fn is_broker(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Broker)
    }

    /// True if `process.roles` contains `controller`.
    pub fn is_controller(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Controller)
    }

    /// The security protocol of a listener name, if mapped.
    pub fn security_protocol(&self, listener_name: &str) -> Option<SecurityProtocol> {
        self.listener_security_protocol_map
            .get(listener_name)
            .copied()
    }

    /// The effective `flush.ms` in ms: `log.flush.interval.ms`, else
    /// `log.flush.scheduler.interval.ms`.
    pub fn effective_log_flush_interval_ms(&self) -> i64 {
        self.log_flush_interval_ms
            .unwrap_or(self.log_flush_scheduler_interval_ms)
    }

    /// The directory of the metadata log: `metadata.log.dir`, else the first log dir.
    pub fn effective_metadata_log_dir(&self) -> Option<&Path> {
        self.metadata_log_dir
            .as_deref()
            .or_else(|| self.log_dirs.first().map(PathBuf::as_path))
    }

    /// Cross-field checks, the ones Kafka's `KafkaConfig` makes for KRaft mode.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Inconsistent(m));
        if self.log_dirs.is_empty() {
            return Err(ConfigError::value(
                "log.dirs",
                "must list at least one directory",
            ));
        }
        if self.listeners.is_empty() {
            return Err(ConfigError::value(
                "listeners",
                "must list at least one listener",
            ));
        }
        if self.controller_quorum_voters.is_empty() {
            return Err(ConfigError::value(
                "controller.quorum.voters",
                "must list every controller as id@host:port (controller.quorum.bootstrap.servers alone is only supported for a single combined node)",
            ));
        }
        if self.controller_listener_names.is_empty() {
            return Err(ConfigError::value(
                "controller.listener.names",
                "must be set in KRaft mode, e.g. controller.listener.names=CONTROLLER",
            ));
        }
        let ids: Vec<String> = self
            .controller_quorum_voters
            .iter()
            .map(|v| v.id.to_string())
            .collect();
        if self.is_controller()
            && !self
                .controller_quorum_voters
                .iter()
                .any(|v| v.id == self.node_id)
        {
            return bad(format!(
                "node.id {} must be one of the controller.quorum.voters ids ({}) when process.roles contains controller",
                self.node_id,
                ids.join(", ")
            ));
        }
        let listener_names: Vec<&str> = self.listeners.iter().map(|l| l.name.as_str()).collect();
        let is_ctrl = |n: &str| self.controller_listener_names.iter().any(|c| c == n);
        if self.is_controller() {
            let first = &self.controller_listener_names[0];
            if !listener_names.contains(&first.as_str()) {
                return bad(format!(
                    "controller.listener.names: listener {first} must appear in listeners ({}) when process.roles contains controller",
                    listener_names.join(", ")
                ));
            }
            if !self.is_broker() {
                if let Some(l) = self.listeners.iter().find(|l| !is_ctrl(&l.name)) {
                    return bad(format!(
                        "listeners: {} is not a controller listener; with process.roles=controller listeners may only contain controller.listener.names",
                        l.name
                    ));
                }
            }
        } else if let Some(l) = self.listeners.iter().find(|l| is_ctrl(&l.name)) {
            return bad(format!(
                "listeners: {} is a controller listener, which must not be bound when process.roles=broker",
                l.name
            ));
        }
        for l in &self.listeners {
            if !self.listener_security_protocol_map.contains_key(&l.name) {
                return bad(format!(
                    "listener.security.protocol.map has no security protocol for listener {}; add {}:PLAINTEXT",
                    l.name, l.name
                ));
            }
        }
        if self.is_controller() {
            for name in &self.controller_listener_names {
                if !self.listener_security_protocol_map.contains_key(name) {
                    return bad(format!(
                        "listener.security.protocol.map has no security protocol for controller listener {name}; add {name}:PLAINTEXT"
                    ));
                }
            }
        }
        self.refuse_secured_node_links()?;
        for a in &self.advertised_listeners {
            if !listener_names.contains(&a.name.as_str()) {
                return bad(format!(
                    "advertised.listeners: {} is not one of the listeners ({})",
                    a.name,
                    listener_names.join(", ")
                ));
            }
            if is_ctrl(&a.name) {
                return bad(format!(
                    "advertised_listeners must not contain the controller listener {} (it belongs in advertised_controller_listeners)",
                    a.name
                ));
            }
        }
        if self.is_broker()
            && !self
                .advertised_listeners
                .iter()
                .any(|l| l.name == self.inter_broker_listener_name)
        {
            let names: Vec<&str> = self
                .advertised_listeners
                .iter()
                .map(|l| l.name.as_str())
                .collect();
            return bad(format!(
                "inter.broker.listener.name {} must be one of the advertised listeners ({}); set inter.broker.listener.name",
                self.inter_broker_listener_name,
                names.join(", ")
            ));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return bad(format!(
                "group.min.session.timeout.ms ({}) must not exceed group.max.session.timeout.ms ({})",
                self.group_min_session_timeout_ms, self.group_max_session_timeout_ms
            ));
        }
        if self.log_cleaner_min_compaction_lag_ms > self.log_cleaner_max_compaction_lag_ms {
            return bad(format!(
                "log.cleaner.min.compaction.lag.ms ({}) must not exceed log.cleaner.max.compaction.lag.ms ({})",
                self.log_cleaner_min_compaction_lag_ms, self.log_cleaner_max_compaction_lag_ms
            ));
        }
        Ok(())
    }

    /// Refuses what Klamm does not secure yet: the metadata quorum's transport and
    /// broker-to-controller connections are plaintext, so a controller listener with another
    /// protocol would either fail to connect or be served as plaintext. It is checked on every
    /// node, bound or not, because a broker-only node connects to the controllers with their
    /// listener's protocol. A SASL inter-broker listener needs a mechanism Klamm serves.
    fn refuse_secured_node_links(&self) -> Result<(), ConfigError> {
        for name in &self.controller_listener_names {
            match self.security_protocol(name) {
                Some(p) if p != SecurityProtocol::Plaintext => {
                    return Err(ConfigError::Inconsistent(format!(
                        "controller listener {name} uses security protocol {}, but Klamm's controller \
                         connections are plaintext only; map {name} to PLAINTEXT",
                        p.name()
                    )));
                }
                _ => {}
            }
        }
        let inter = &self.inter_broker_listener_name;
        if matches!(self.security_protocol(inter), Some(SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)) {
            crate::security::SaslMechanism::parse(&self.sasl_mechanism_inter_broker_protocol)
                .map_err(|e| ConfigError::value("sasl.mechanism.inter.broker.protocol", format!("{e} (inter-broker listener {inter} uses SASL)")))?;
        }
        Ok(())
    }

    /// The value this configuration holds for a key of [`EMBEDDED_PROFILE`].
    fn render_profile_key(&self, key: &str) -> Option<String> {
        let join = |v: Vec<String>| v.join(",");
        Some(match key {
            "node.id" => self.node_id.to_string(),
            "process.roles" => join(self.process_roles.iter().map(|r| r.to_string()).collect()),
            "listeners" => join(self.listeners.iter().map(|l| l.to_string()).collect()),
            "controller.listener.names" => self.controller_listener_names.join(","),
            "controller.quorum.voters" => join(
                self.controller_quorum_voters
                    .iter()
                    .map(|v| v.to_string())
                    .collect(),
            ),
            "log.dirs" => join(
                self.log_dirs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            ),
            "offsets.topic.replication.factor" => self.offsets_topic_replication_factor.to_string(),
            "transaction.state.log.replication.factor" => {
                self.transaction_state_log_replication_factor.to_string()
            }
            "transaction.state.log.min.isr" => self.transaction_state_log_min_isr.to_string(),
            "group.initial.rebalance.delay.ms" => self.group_initial_rebalance_delay_ms.to_string(),
            "klamm.http.listener" => self.klamm_http_listener.clone().unwrap_or_default(),
            "klamm.schema.registry.listener" => match &self.klamm_schema_registry_listener {
                Some(address) if self.klamm_schema_registry_security.ssl.is_some() => format!("https://{address}"),
                Some(address) => address.clone(),
                None => String::new(),
            },
            _ => return None,
        })
    }

    /// DescribeConfigs for a broker resource: every known key (sorted by name) with its value
    /// and source.
    ///
    /// `original` is [`LoadedConfig::original`]; `dynamic` holds cluster-wide dynamic configs
    /// (reported as `DYNAMIC_DEFAULT_BROKER_CONFIG`). Precedence: dynamic > static (file or
    /// override, `STATIC_BROKER_CONFIG`) > default (`DEFAULT_CONFIG`). Values of the embedded
    /// profile that differ from Kafka's defaults are reported as `STATIC_BROKER_CONFIG`.
    /// Synonyms list the same key at each layer where it has a value, highest first. Sensitive
    /// keys have `value: None` everywhere.
    pub fn describe(
        &self,
        original: &BTreeMap<String, String>,
        dynamic: &BTreeMap<String, String>,
    ) -> Vec<ConfigEntry> {
        self.describe_layers(original, &BTreeMap::new(), dynamic)
    }

    /// Like [`BrokerConfig::describe`] with per-broker dynamic configs as well
    /// (`DYNAMIC_BROKER_CONFIG`, above the cluster-wide `dynamic_default`).
    pub fn describe_layers(
        &self,
        original: &BTreeMap<String, String>,
        dynamic_broker: &BTreeMap<String, String>,
        dynamic_default: &BTreeMap<String, String>,
    ) -> Vec<ConfigEntry> {
        BROKER_KEYS
            .iter()
            .map(|def| {
                let sensitive = def.sensitive();
                let mask = |v: Option<String>| if sensitive { None } else { v };
                let mut synonyms = Vec::new();
                if let Some(v) = dynamic_broker.get(def.name) {
                    synonyms.push((v.trim().to_string(), ConfigSource::DynamicBrokerConfig));
                }
                if let Some(v) = dynamic_default.get(def.name) {
                    synonyms.push((
                        v.trim().to_string(),
                        ConfigSource::DynamicDefaultBrokerConfig,
                    ));
                }
                if let Some(v) = original.get(def.name) {
                    synonyms.push((v.trim().to_string(), ConfigSource::StaticBrokerConfig));
                } else if let Some(v) = self.render_profile_key(def.name) {
                    if Some(v.as_str()) != def.default {
                        synonyms.push((v, ConfigSource::StaticBrokerConfig));
                    }
                }
                if let Some(d) = def.default {
                    synonyms.push((d.to_string(), ConfigSource::DefaultConfig));
                }
                let (value, source) = match synonyms.first() {
                    Some((v, s)) => (Some(v.clone()), *s),
                    None => (None, ConfigSource::DefaultConfig),
                };
                ConfigEntry {
                    name: def.name.to_string(),
                    value: mask(value),
                    source,
                    read_only: !def.dynamic,
                    is_sensitive: sensitive,
                    config_type: def.ty,
                    documentation: Some(def.doc.to_string()),
                    synonyms: synonyms
                        .into_iter()
                        .map(|(v, s)| ConfigSynonym {
                            name: def.name.to_string(),
                            value: mask(Some(v)),
                            source: s,
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

/// Kafka 4's sample `server.properties` uses a dynamic quorum (`controller.quorum.bootstrap.servers`,
/// formatted with `--standalone`) instead of `controller.quorum.voters`. Klamm's quorum is
/// static, so the one case with an unambiguous answer is supported: a controller whose
/// bootstrap list has exactly one server is the single voter, at that address.
fn voters_from_bootstrap(
    node_id: i32,
    roles: &[ProcessRole],
    bootstrap: &[String],
) -> Result<Vec<QuorumVoter>, ConfigError> {
    let key = "controller.quorum.bootstrap.servers";
    let unsupported = || {
        ConfigError::value(
            key,
            "a dynamic quorum is not supported; list the controllers in controller.quorum.voters as id@host:port",
        )
    };
    if bootstrap.len() != 1 || !roles.contains(&ProcessRole::Controller) {
        return Err(unsupported());
    }
    let v = QuorumVoter::parse(&format!("{node_id}@{}", bootstrap[0]))
        .map_err(|m| ConfigError::value(key, m))?;
    Ok(vec![v])
}

fn parse_protocol_map(s: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let mut m = BTreeMap::new();
    for item in split_list(s) {
        let (name, proto) = item
            .split_once(':')
            .ok_or_else(|| format!("{item:?} is not of the form LISTENER_NAME:PROTOCOL"))?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() {
            return Err(format!("{item:?} has an empty listener name"));
        }
        let proto = SecurityProtocol::parse(proto)?;
        if m.insert(name.clone(), proto).is_some() {
            return Err(format!("listener name {name} appears more than once"));
        }
    }
    Ok(m)
}

/// Parses `max.connections.per.ip.overrides`: `host:count` items separated by commas, the
/// host an IP or a hostname, the count a non-negative int. The count follows the last `:`,
/// as in Kafka's `parseCsvMap`, so an IPv6 host needs no brackets (`::1:5`). A host listed
/// twice keeps its last count, as Kafka's map does.
pub fn parse_per_ip_overrides(s: &str) -> Result<BTreeMap<String, i32>, String> {
    let mut m = BTreeMap::new();
    for item in split_list(s) {
        let (host, count) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("{item:?} is not of the form host:count"))?;
        let host = host.trim();
        if host.is_empty() {
            return Err(format!("{item:?} has an empty host"));
        }
        let count: i32 = count
            .trim()
            .parse()
            .map_err(|_| format!("{item:?}: the count is not a 32-bit integer"))?;
        if count < 0 {
            return Err(format!("{item:?}: the count must be at least 0"));
        }
        m.insert(host.to_string(), count);
    }
    Ok(m)
}

/// [`parse_per_ip_overrides`] as a key check, so a dynamic change is validated too.
/// `klamm.http.listener`: empty, or `host:port` with a port in 0..=65535 (IPv6 hosts in
/// brackets, as `listeners` takes them).
pub(crate) fn check_http_listener(s: &str) -> Result<(), String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(());
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} is not host:port"));
    };
    if host.is_empty() {
        return Err(format!("{s:?} has no host (use 0.0.0.0 to listen on every interface)"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!("{s:?}: an IPv6 host must be in brackets, e.g. [::1]:9644"));
    }
    port.parse::<u16>().map(|_| ()).map_err(|_| format!("{s:?} has no valid port (0-65535)"))
}

/// `klamm.schema.registry.listener`: `host:port`, optionally with an `http://` or `https://` scheme.
pub(crate) fn check_registry_listener(s: &str) -> Result<(), String> {
    check_http_listener(crate::registry::split_scheme(s)?.0)
}

pub(crate) fn check_per_ip_overrides(s: &str) -> Result<(), String> {
    parse_per_ip_overrides(s).map(|_| ())
}

/// Checks a cluster-wide dynamic broker config change (IncrementalAlterConfigs /
/// AlterConfigs on the default broker resource).
///
/// Unknown keys → [`ConfigError::UnknownBrokerKey`]; keys Kafka does not allow to change at
/// runtime (`num.partitions`, `listeners`, `node.id`, ...) → [`ConfigError::ReadOnly`]; bad
/// values → [`ConfigError::InvalidValue`] with Kafka's wording.
pub fn validate_broker_dynamic_config(key: &str, value: &str) -> Result<(), ConfigError> {
    let def = broker_key(key).ok_or_else(|| ConfigError::UnknownBrokerKey(key.to_string()))?;
    if !def.dynamic {
        return Err(ConfigError::ReadOnly(key.to_string()));
    }
    def.parse(value)
        .map(|_| ())
        .map_err(|bad| ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: bad.kafka_reason(),
        })
}

/// The names of the broker keys that may be altered dynamically cluster-wide, sorted.
pub fn dynamic_broker_keys() -> Vec<&'static str> {
    BROKER_KEYS
        .iter()
        .filter(|d| d.dynamic)
        .map(|d| d.name)
        .collect()
}

#[cfg(test)]
mod tests;
