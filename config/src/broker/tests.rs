//! Tests of loading, defaults, precedence, validation and describe for broker configs.

use super::*;
use std::io::Write;

fn load_text(text: &str, overrides: &[&str]) -> Result<LoadedConfig, ConfigError> {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    BrokerConfig::load(Some(f.path()), &overrides)
}

const MINIMAL: &str = "node.id=1\nprocess.roles=broker,controller\n\
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n\
controller.listener.names=CONTROLLER\ncontroller.quorum.voters=1@127.0.0.1:9093\n";

fn must_load(text: &str, overrides: &[&str]) -> BrokerConfig {
    load_text(text, overrides).expect("valid config").config
}

fn must_err(text: &str, overrides: &[&str]) -> String {
    load_text(text, overrides)
        .expect_err("invalid config")
        .to_string()
}

#[test]
fn embedded_default_is_single_node() {
    let c = BrokerConfig::embedded_default();
    assert_eq!(c.node_id, 1);
    assert_eq!(
        c.process_roles,
        vec![ProcessRole::Broker, ProcessRole::Controller]
    );
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
    assert_eq!(c.advertised_listeners, vec![c.listeners[0].clone()]);
    assert_eq!(
        c.advertised_controller_listeners,
        vec![c.listeners[1].clone()]
    );
    assert_eq!(c.controller_listener_names, vec!["CONTROLLER".to_string()]);
    assert_eq!(
        c.controller_quorum_voters[0].to_string(),
        "1@127.0.0.1:9093"
    );
    assert_eq!(c.log_dirs, vec![PathBuf::from("./klamm-data")]);
    assert_eq!(c.offsets_topic_replication_factor, 1);
    assert_eq!(c.transaction_state_log_replication_factor, 1);
    assert_eq!(c.transaction_state_log_min_isr, 1);
    assert_eq!(c.group_initial_rebalance_delay_ms, 0);
    assert_eq!(c.inter_broker_listener_name, "PLAINTEXT");
    assert_eq!(
        c.security_protocol("CONTROLLER"),
        Some(SecurityProtocol::Plaintext)
    );
    // Everything else is Kafka's default.
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.log_retention_ms, 604_800_000);
}

#[test]
fn load_without_file_uses_embedded_profile_plus_overrides() {
    let l = BrokerConfig::load(None, &["num.partitions=4".to_string()]).unwrap();
    assert_eq!(l.defaults, Defaults::Embedded);
    assert_eq!(l.config.num_partitions, 4);
    assert_eq!(l.config.offsets_topic_replication_factor, 1);
    assert_eq!(l.original.len(), 1);
    let mut expected = BrokerConfig::embedded_default();
    expected.num_partitions = 4;
    assert_eq!(l.config, expected);
}

#[test]
fn kafka_defaults_with_minimal_file() {
    let l = load_text(MINIMAL, &[]).unwrap();
    assert_eq!(l.defaults, Defaults::Kafka);
    let c = l.config;
    assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/kafka-logs")]);
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.default_replication_factor, 1);
    assert_eq!(c.min_insync_replicas, 1);
    assert!(c.auto_create_topics_enable);
    assert!(c.delete_topic_enable);
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.replica_fetch_max_bytes, 1_048_576);
    assert_eq!(c.replica_lag_time_max_ms, 30_000);
    assert_eq!(c.log_segment_bytes, 1_073_741_824);
    assert_eq!(c.log_roll_ms, 604_800_000);
    assert_eq!(c.log_retention_ms, 604_800_000);
    assert_eq!(c.log_retention_bytes, -1);
    assert_eq!(c.log_retention_check_interval_ms, 300_000);
    assert_eq!(c.log_flush_interval_messages, i64::MAX);
    assert_eq!(c.log_flush_interval_ms, None);
    assert_eq!(c.effective_log_flush_interval_ms(), i64::MAX);
    assert_eq!(c.log_cleanup_policy, CleanupPolicy::DELETE);
    assert_eq!(c.log_index_interval_bytes, 4096);
    assert_eq!(c.log_index_size_max_bytes, 10_485_760);
    assert_eq!(c.log_message_timestamp_type, TimestampType::CreateTime);
    assert_eq!(c.compression_type, CompressionType::Producer);
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert_eq!(c.offsets_topic_replication_factor, 3);
    assert_eq!(c.offsets_retention_minutes, 10_080);
    assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
    assert_eq!(c.group_min_session_timeout_ms, 6000);
    assert_eq!(c.group_max_session_timeout_ms, 1_800_000);
    assert_eq!(c.group_max_size, i32::MAX);
    assert_eq!(c.transaction_state_log_num_partitions, 50);
    assert_eq!(c.transaction_state_log_replication_factor, 3);
    assert_eq!(c.transaction_state_log_min_isr, 2);
    assert_eq!(c.transactional_id_expiration_ms, 604_800_000);
    assert_eq!(c.transaction_max_timeout_ms, 900_000);
    assert_eq!(c.producer_id_expiration_ms, 86_400_000);
    assert_eq!(c.fetch_max_bytes, 57_671_680);
    assert_eq!(c.queued_max_requests, 500);
    assert_eq!(c.num_network_threads, 3);
    assert_eq!(c.num_io_threads, 8);
    assert_eq!(c.max_connections, i32::MAX);
    assert_eq!(c.connections_max_idle_ms, 600_000);
    assert!(!c.unclean_leader_election_enable);
    assert!(c.auto_leader_rebalance_enable);
    assert_eq!(c.leader_imbalance_check_interval_seconds, 300);
    assert_eq!(c.leader_imbalance_per_broker_percentage, 10);
    assert_eq!(c.max_incremental_fetch_session_cache_slots, 1000);
    assert_eq!(c.cluster_id, None);
    assert_eq!(
        c.effective_metadata_log_dir(),
        Some(Path::new("/tmp/kafka-logs"))
    );
}

#[test]
fn overrides_win_over_file_and_later_overrides_win() {
    let c = must_load(
        &format!("{MINIMAL}num.partitions=2\n"),
        &["num.partitions=5", "num.partitions = 6", "log.dirs=a,b"],
    );
    assert_eq!(c.num_partitions, 6);
    assert_eq!(c.log_dirs, vec![PathBuf::from("a"), PathBuf::from("b")]);
}

#[test]
fn bad_override_syntax() {
    let e = BrokerConfig::load(None, &["novalue".to_string()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid override \"novalue\": expected key=value"
    );
    assert!(BrokerConfig::load(None, &["=1".to_string()]).is_err());
    assert_eq!(parse_override("a=b=c").unwrap(), ("a".into(), "b=c".into()));
}

#[test]
fn missing_file_is_io_error() {
    let e = BrokerConfig::load(Some(Path::new("/nonexistent/klamm.properties")), &[]).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/klamm.properties"));
}

#[test]
fn syntax_error_carries_file_and_line() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"node.id=1\nbad=\\uZZZZ\n").unwrap();
    let e = BrokerConfig::load(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("{}:2:", f.path().display())), "{e}");
}

#[test]
fn type_errors_name_the_key() {
    assert_eq!(
        must_err(MINIMAL, &["log.segment.bytes=abc"]),
        "log.segment.bytes: \"abc\" is not an integer"
    );
    assert_eq!(
        must_err(MINIMAL, &["num.partitions=0"]),
        "num.partitions: must be at least 1, got 0"
    );
    assert_eq!(
        must_err(MINIMAL, &["auto.create.topics.enable=yes"]),
        "auto.create.topics.enable: \"yes\" is not a boolean (true or false)"
    );
    assert_eq!(
        must_err(MINIMAL, &["message.max.bytes=3000000000"]),
        "message.max.bytes: 3000000000 is out of range for a 32-bit integer"
    );
    assert!(must_err(MINIMAL, &["compression.type=brotli"])
        .starts_with("compression.type: must be one of"));
    assert!(must_err(MINIMAL, &["log.cleanup.policy=remove"])
        .starts_with("log.cleanup.policy: must be one of compact, delete"));
    assert!(must_err(MINIMAL, &["log.cleaner.min.cleanable.ratio=2"]).contains("between 0 and 1"));
    assert!(
        must_err(MINIMAL, &["default.replication.factor=40000"]).contains("between 1 and 32767")
    );
    assert!(must_err(MINIMAL, &["offsets.topic.replication.factor=40000"]).contains("16-bit"));
    // No-effect keys are still type-checked.
    assert!(must_err(MINIMAL, &["socket.send.buffer.bytes=big"])
        .starts_with("socket.send.buffer.bytes:"));
    // Values are trimmed like Kafka does.
    assert_eq!(
        must_load(MINIMAL, &["num.partitions=  7  "]).num_partitions,
        7
    );
}

#[test]
fn required_keys() {
    let no_node = MINIMAL.replace("node.id=1\n", "");
    assert!(must_err(&no_node, &[]).starts_with("node.id: missing required value"));
    let no_roles = MINIMAL.replace("process.roles=broker,controller\n", "");
    assert!(must_err(&no_roles, &[]).starts_with("process.roles: missing required value"));
    assert!(must_err(MINIMAL, &["process.roles=broker,broker"]).contains("listed twice"));
    assert!(must_err(MINIMAL, &["process.roles=voter"]).starts_with("process.roles:"));
    assert!(must_err(MINIMAL, &["process.roles="]).starts_with("process.roles: must not be empty"));
}

#[test]
fn broker_id_synonym() {
    let no_node = MINIMAL.replace("node.id=1\n", "broker.id=1\n");
    assert_eq!(must_load(&no_node, &[]).node_id, 1);
    assert!(must_err(MINIMAL, &["broker.id=2"]).contains("must be equal"));
    assert_eq!(must_load(MINIMAL, &["broker.id=1"]).node_id, 1);
}

#[test]
fn retention_precedence() {
    assert_eq!(
        must_load(MINIMAL, &["log.retention.hours=1"]).log_retention_ms,
        3_600_000
    );
    assert_eq!(
        must_load(
            MINIMAL,
            &["log.retention.hours=1", "log.retention.minutes=2"]
        )
        .log_retention_ms,
        120_000
    );
    assert_eq!(
        must_load(
            MINIMAL,
            &[
                "log.retention.hours=1",
                "log.retention.minutes=2",
                "log.retention.ms=5"
            ]
        )
        .log_retention_ms,
        5
    );
    assert_eq!(
        must_load(MINIMAL, &["log.retention.ms=-1"]).log_retention_ms,
        -1
    );
    assert_eq!(
        must_load(MINIMAL, &["log.retention.hours=-5"]).log_retention_ms,
        -1
    );
    assert_eq!(
        must_load(
            MINIMAL,
            &["log.retention.minutes=-1", "log.retention.hours=5"]
        )
        .log_retention_ms,
        -1
    );
}

#[test]
fn roll_precedence() {
    assert_eq!(
        must_load(MINIMAL, &["log.roll.hours=2"]).log_roll_ms,
        7_200_000
    );
    assert_eq!(
        must_load(MINIMAL, &["log.roll.hours=2", "log.roll.ms=1000"]).log_roll_ms,
        1000
    );
    assert!(must_err(MINIMAL, &["log.roll.ms=0"]).starts_with("log.roll.ms: must be at least 1"));
}

#[test]
fn log_dir_fallback() {
    assert_eq!(
        must_load(MINIMAL, &["log.dir=/data/one"]).log_dirs,
        vec![PathBuf::from("/data/one")]
    );
    assert_eq!(
        must_load(MINIMAL, &["log.dir=/data/one", "log.dirs=/d1, /d2"]).log_dirs,
        vec![PathBuf::from("/d1"), PathBuf::from("/d2")]
    );
    assert_eq!(
        must_err(MINIMAL, &["log.dirs= , "]),
        "log.dirs: must list at least one directory"
    );
    let c = must_load(MINIMAL, &["metadata.log.dir=/meta"]);
    assert_eq!(c.effective_metadata_log_dir(), Some(Path::new("/meta")));
}

#[test]
fn flush_interval() {
    let c = must_load(
        MINIMAL,
        &[
            "log.flush.interval.ms=1000",
            "log.flush.interval.messages=10",
        ],
    );
    assert_eq!(c.log_flush_interval_ms, Some(1000));
    assert_eq!(c.effective_log_flush_interval_ms(), 1000);
    assert_eq!(c.log_flush_interval_messages, 10);
    assert!(must_err(MINIMAL, &["log.flush.interval.messages=0"]).contains("at least 1"));
}

#[test]
fn listeners_and_protocol_map() {
    let c = must_load(
        MINIMAL,
        &[
            "listeners=PLAINTEXT://:9092,CONTROLLER://[::1]:9093",
            "advertised.listeners=PLAINTEXT://broker1.example.com:9092",
        ],
    );
    assert_eq!(c.listeners[0].host, "");
    assert_eq!(c.listeners[1].host, "::1");
    assert_eq!(c.advertised_listeners[0].host, "broker1.example.com");
    assert_eq!(
        c.security_protocol("SASL_SSL"),
        Some(SecurityProtocol::SaslSsl)
    );

    let c = must_load(
        MINIMAL,
        &[
            "listeners=INTERNAL://:9092,EXTERNAL://:9094,CTL://:9093",
            "controller.listener.names=CTL",
            // SECURE is mapped but not bound, so it is parsed and not refused.
            "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CTL:PLAINTEXT,SECURE:SASL_PLAINTEXT",
            "inter.broker.listener.name=internal",
        ],
    );
    assert_eq!(c.inter_broker_listener_name, "INTERNAL");
    assert_eq!(
        c.security_protocol("SECURE"),
        Some(SecurityProtocol::SaslPlaintext)
    );
    assert_eq!(c.security_protocol("PLAINTEXT"), None);
    assert_eq!(c.advertised_listeners.len(), 2);

    let e = must_err(
        MINIMAL,
        &[
            "listeners=INTERNAL://:9092,CONTROLLER://:9093",
            "inter.broker.listener.name=INTERNAL",
        ],
    );
    assert!(
        e.contains("no security protocol for listener INTERNAL"),
        "{e}"
    );
    assert!(
        must_err(MINIMAL, &["listener.security.protocol.map=PLAINTEXT"])
            .contains("LISTENER_NAME:PROTOCOL")
    );
    assert!(
        must_err(MINIMAL, &["listener.security.protocol.map=PLAINTEXT:TLS"])
            .contains("unknown security protocol")
    );
    assert!(must_err(MINIMAL, &["listeners=PLAINTEXT//:9092"]).starts_with("listeners:"));
    assert!(must_err(MINIMAL, &["listeners="]).starts_with("listeners: must list at least one"));
}

#[test]
fn inter_broker_listener_rules() {
    let e = must_err(
        MINIMAL,
        &[
            "inter.broker.listener.name=PLAINTEXT",
            "security.inter.broker.protocol=PLAINTEXT",
        ],
    );
    assert!(e.contains("only one of"), "{e}");
    let e = must_err(MINIMAL, &["security.inter.broker.protocol=SSL"]);
    assert!(
        e.contains("inter.broker.listener.name SSL must be one of the advertised listeners"),
        "{e}"
    );
}

#[test]
fn controller_rules() {
    let e = must_err(MINIMAL, &["node.id=2"]);
    assert!(
        e.contains("node.id 2 must be one of the controller.quorum.voters ids (1)"),
        "{e}"
    );
    // A broker-only node need not be a voter, but must not bind the controller listener.
    let e = must_err(MINIMAL, &["node.id=2", "process.roles=broker"]);
    assert!(e.contains("CONTROLLER is a controller listener"), "{e}");
    let c = must_load(
        MINIMAL,
        &[
            "node.id=2",
            "process.roles=broker",
            "listeners=PLAINTEXT://:9092",
        ],
    );
    assert!(c.is_broker() && !c.is_controller());
    // Controller-only: only controller listeners.
    let e = must_err(MINIMAL, &["process.roles=controller"]);
    assert!(e.contains("PLAINTEXT is not a controller listener"), "{e}");
    let c = must_load(
        MINIMAL,
        &["process.roles=controller", "listeners=CONTROLLER://:9093"],
    );
    assert!(c.is_controller() && !c.is_broker());
    assert!(c.advertised_listeners.is_empty());
    // The controller listener must be bound by a controller.
    let e = must_err(MINIMAL, &["listeners=PLAINTEXT://:9092"]);
    assert!(
        e.contains("listener CONTROLLER must appear in listeners"),
        "{e}"
    );
    let e = must_err(MINIMAL, &["controller.listener.names="]);
    assert!(
        e.starts_with("controller.listener.names: must be set"),
        "{e}"
    );
    let e = must_err(MINIMAL, &["controller.quorum.voters="]);
    assert!(
        e.starts_with("controller.quorum.voters: must list every controller"),
        "{e}"
    );
    let e = must_err(MINIMAL, &["controller.quorum.voters=1@h:1,1@h:2"]);
    assert!(e.contains("more than once"), "{e}");
}

#[test]
fn advertised_listener_rules() {
    let e = must_err(MINIMAL, &["advertised.listeners=OTHER://h:1"]);
    assert!(e.contains("not one of the listeners"), "{e}");
    // Kafka 4 (KIP-853) allows the controller listener in advertised.listeners of a combined
    // node: it is advertised to controllers, not to clients.
    let c = must_load(
        MINIMAL,
        &["advertised.listeners=PLAINTEXT://h:1,CONTROLLER://h:2"],
    );
    assert_eq!(c.advertised_listeners.len(), 1);
    assert_eq!(c.advertised_listeners[0].to_string(), "PLAINTEXT://h:1");
    assert_eq!(
        c.advertised_controller_listeners[0].to_string(),
        "CONTROLLER://h:2"
    );
    let c = must_load(MINIMAL, &["advertised.listeners=PLAINTEXT://h:1"]);
    assert_eq!(
        c.advertised_controller_listeners[0].to_string(),
        "CONTROLLER://127.0.0.1:9093"
    );
    let c = must_load(
        MINIMAL,
        &[
            "node.id=2",
            "process.roles=broker",
            "listeners=PLAINTEXT://:9092",
        ],
    );
    assert!(c.advertised_controller_listeners.is_empty());
    // Broker-only nodes do not bind the controller listener, so cannot advertise it.
    let e = must_err(
        MINIMAL,
        &[
            "node.id=2",
            "process.roles=broker",
            "listeners=PLAINTEXT://:9092",
            "advertised.listeners=PLAINTEXT://h:1,CONTROLLER://h:2",
        ],
    );
    assert!(e.contains("CONTROLLER is not one of the listeners"), "{e}");
}

/// Kafka 4.0's shipped `config/server.properties` (KRaft combined, dynamic quorum) loads
/// with no unknown keys.
const KAFKA_SAMPLE: &str = r"
############################# Server Basics #############################
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093

############################# Socket Server Settings #############################
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600

############################# Log Basics #############################
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1

############################# Internal Topic Settings  #############################
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1

############################# Log Retention Policy #############################
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
";

#[test]
fn kafka_sample_server_properties() {
    let l = load_text(KAFKA_SAMPLE, &[]).unwrap();
    assert!(l.unknown_keys.is_empty(), "{:?}", l.unknown_keys);
    let c = &l.config;
    assert_eq!(
        c.controller_quorum_voters,
        vec![QuorumVoter {
            id: 1,
            host: "localhost".into(),
            port: 9093
        }]
    );
    assert_eq!(
        c.advertised_listeners[0].to_string(),
        "PLAINTEXT://localhost:9092"
    );
    assert_eq!(
        c.advertised_controller_listeners[0].to_string(),
        "CONTROLLER://localhost:9093"
    );
    assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/kraft-combined-logs")]);
    assert!(l
        .ignored_keys
        .contains(&"share.coordinator.state.topic.replication.factor".to_string()));
}

#[test]
fn bootstrap_servers_only_for_single_controller() {
    let no_voters = MINIMAL.replace("controller.quorum.voters=1@127.0.0.1:9093\n", "");
    assert_ne!(no_voters, MINIMAL);
    let e = must_err(
        &no_voters,
        &["controller.quorum.bootstrap.servers=a:9093,b:9093"],
    );
    assert!(
        e.starts_with("controller.quorum.bootstrap.servers: a dynamic quorum is not supported"),
        "{e}"
    );
    let e = must_err(
        &no_voters,
        &[
            "controller.quorum.bootstrap.servers=a:9093",
            "process.roles=broker",
            "listeners=PLAINTEXT://:9092",
        ],
    );
    assert!(e.starts_with("controller.quorum.bootstrap.servers:"), "{e}");
    let e = must_err(&no_voters, &["controller.quorum.bootstrap.servers=nohost"]);
    assert!(e.contains("missing :port"), "{e}");
    let e = must_err(&no_voters, &[]);
    assert!(
        e.starts_with("controller.quorum.voters: must list every controller"),
        "{e}"
    );
    // Explicit voters win over bootstrap servers.
    let c = must_load(MINIMAL, &["controller.quorum.bootstrap.servers=a:1,b:2"]);
    assert_eq!(c.controller_quorum_voters[0].host, "127.0.0.1");
}

#[test]
fn group_session_timeouts_consistent() {
    let e = must_err(
        MINIMAL,
        &[
            "group.min.session.timeout.ms=10000",
            "group.max.session.timeout.ms=5000",
        ],
    );
    assert!(e.contains("must not exceed"), "{e}");
}

#[test]
fn unknown_and_ignored_keys() {
    let l = load_text(
        &format!("{MINIMAL}zookeeper.connect=localhost:2181\nnum.recovery.threads.per.data.dir=4\nsocket.send.buffer.bytes=1\nlistener.name.plaintext.ssl.cipher.suites=X\nmade.up=1\nretention.ms=5\n"),
        &["another.unknown=x"],
    )
    .unwrap();
    assert_eq!(
        l.unknown_keys,
        vec!["another.unknown", "made.up", "retention.ms"]
    );
    assert_eq!(
        l.ignored_keys,
        vec![
            "listener.name.plaintext.ssl.cipher.suites",
            "num.recovery.threads.per.data.dir",
            "socket.send.buffer.bytes",
            "zookeeper.connect"
        ]
    );
    assert_eq!(l.original["made.up"], "1");
}

#[test]
fn other_fields() {
    let c = must_load(
        MINIMAL,
        &[
            "cluster.id=MkU3OEVBNTcwNTJENDM2Qk",
            "broker.rack=r1",
            "log.cleanup.policy=compact,delete",
            "compression.type=zstd",
            "log.message.timestamp.type=LogAppendTime",
            "unclean.leader.election.enable=TRUE",
            "log.cleaner.min.cleanable.ratio=0.25",
            "auto.leader.rebalance.enable=false",
            "leader.imbalance.check.interval.seconds=1",
            "leader.imbalance.per.broker.percentage=0",
        ],
    );
    assert!(!c.auto_leader_rebalance_enable);
    assert_eq!(c.leader_imbalance_check_interval_seconds, 1);
    assert_eq!(c.leader_imbalance_per_broker_percentage, 0);
    assert!(must_err(MINIMAL, &["leader.imbalance.check.interval.seconds=0"]).contains("leader.imbalance.check.interval.seconds"));
    assert_eq!(c.cluster_id.as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qk"));
    assert_eq!(c.broker_rack.as_deref(), Some("r1"));
    assert_eq!(c.log_cleanup_policy, CleanupPolicy::BOTH);
    assert_eq!(c.compression_type, CompressionType::Zstd);
    assert_eq!(c.log_message_timestamp_type, TimestampType::LogAppendTime);
    assert!(c.unclean_leader_election_enable);
    assert_eq!(c.log_cleaner_min_cleanable_ratio, 0.25);
    assert_eq!(must_load(MINIMAL, &["cluster.id="]).cluster_id, None);
}

#[test]
fn dynamic_validation() {
    assert!(validate_broker_dynamic_config("log.retention.ms", "1000").is_ok());
    assert!(validate_broker_dynamic_config("log.cleanup.policy", "compact").is_ok());
    assert!(validate_broker_dynamic_config("min.insync.replicas", "2").is_ok());
    assert!(validate_broker_dynamic_config("message.max.bytes", "2000000").is_ok());
    assert_eq!(
        validate_broker_dynamic_config("num.partitions", "3")
            .unwrap_err()
            .to_string(),
        "Cannot update these configs dynamically: num.partitions is read-only"
    );
    assert!(matches!(
        validate_broker_dynamic_config("listeners", "PLAINTEXT://:1"),
        Err(ConfigError::ReadOnly(_))
    ));
    assert!(matches!(
        validate_broker_dynamic_config("no.such.key", "1"),
        Err(ConfigError::UnknownBrokerKey(_))
    ));
    assert_eq!(
        validate_broker_dynamic_config("log.retention.ms", "abc")
            .unwrap_err()
            .to_string(),
        "Invalid value abc for configuration log.retention.ms: Not a number of type LONG"
    );
    assert_eq!(
        validate_broker_dynamic_config("min.insync.replicas", "0")
            .unwrap_err()
            .to_string(),
        "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1"
    );
    let keys = dynamic_broker_keys();
    assert!(keys.contains(&"log.segment.bytes"));
    assert!(!keys.contains(&"num.partitions"));
}

#[test]
fn with_dynamic_layers_over_static() {
    let l = load_text(&format!("{MINIMAL}log.retention.ms=1000\n"), &[]).unwrap();
    let mut dynamic = BTreeMap::new();
    dynamic.insert("log.retention.hours".to_string(), "1".to_string());
    dynamic.insert("log.segment.bytes".to_string(), "2097152".to_string());
    let c = l.with_dynamic(&dynamic).unwrap();
    assert_eq!(
        c.log_retention_ms, 1000,
        "static log.retention.ms beats dynamic hours"
    );
    assert_eq!(c.log_segment_bytes, 2_097_152);
    dynamic.insert("num.partitions".to_string(), "3".to_string());
    assert!(l.with_dynamic(&dynamic).is_err());
}

fn entry<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
    entries
        .iter()
        .find(|e| e.name == name)
        .expect("entry present")
}

#[test]
fn describe_sources_and_synonyms() {
    let l = load_text(
        &format!("{MINIMAL}log.retention.hours=24\nssl.keystore.password=secret\n"),
        &[],
    )
    .unwrap();
    let mut dynamic = BTreeMap::new();
    dynamic.insert("log.segment.bytes".to_string(), "2097152".to_string());
    let d = l.config.describe(&l.original, &dynamic);
    assert_eq!(d.len(), BROKER_KEYS.len());

    let e = entry(&d, "log.retention.hours");
    assert_eq!(e.value.as_deref(), Some("24"));
    assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(e.config_type, crate::ConfigType::Int);
    assert!(!e.read_only);
    assert_eq!(e.synonyms.len(), 2);
    assert_eq!(e.synonyms[1].source, ConfigSource::DefaultConfig);
    assert_eq!(e.synonyms[1].value.as_deref(), Some("168"));

    let e = entry(&d, "log.segment.bytes");
    assert_eq!(e.value.as_deref(), Some("2097152"));
    assert_eq!(e.source, ConfigSource::DynamicDefaultBrokerConfig);
    assert_eq!(e.source.code(), 3);

    let e = entry(&d, "num.partitions");
    assert_eq!(e.value.as_deref(), Some("1"));
    assert_eq!(e.source, ConfigSource::DefaultConfig);
    assert!(e.read_only);

    let e = entry(&d, "log.retention.ms");
    assert_eq!(e.value, None);
    assert!(e.synonyms.is_empty());

    let e = entry(&d, "ssl.keystore.password");
    assert!(e.is_sensitive);
    assert_eq!(e.value, None);
    assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(e.synonyms[0].value, None);

    let e = entry(&d, "node.id");
    assert_eq!(e.value.as_deref(), Some("1"));
    assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
}

#[test]
fn describe_embedded_profile_values_are_static() {
    let c = BrokerConfig::embedded_default();
    let d = c.describe(&BTreeMap::new(), &BTreeMap::new());
    let e = entry(&d, "offsets.topic.replication.factor");
    assert_eq!(e.value.as_deref(), Some("1"));
    assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(e.synonyms[1].value.as_deref(), Some("3"));
    let e = entry(&d, "log.dirs");
    assert_eq!(e.value.as_deref(), Some("./klamm-data"));
    let e = entry(&d, "num.partitions");
    assert_eq!(e.source, ConfigSource::DefaultConfig);
}

#[test]
fn describe_per_broker_dynamic() {
    let c = BrokerConfig::embedded_default();
    let mut per_broker = BTreeMap::new();
    per_broker.insert("message.max.bytes".to_string(), "5".to_string());
    let mut cluster = BTreeMap::new();
    cluster.insert("message.max.bytes".to_string(), "6".to_string());
    let d = c.describe_layers(&BTreeMap::new(), &per_broker, &cluster);
    let e = entry(&d, "message.max.bytes");
    assert_eq!(e.value.as_deref(), Some("5"));
    assert_eq!(e.source, ConfigSource::DynamicBrokerConfig);
    let sources: Vec<ConfigSource> = e.synonyms.iter().map(|s| s.source).collect();
    assert_eq!(
        sources,
        vec![
            ConfigSource::DynamicBrokerConfig,
            ConfigSource::DynamicDefaultBrokerConfig,
            ConfigSource::DefaultConfig
        ]
    );
}

#[test]
fn every_reader_key_is_in_the_table() {
    // build() reads keys by name; a typo there would surface as an "internal" error here.
    let l = load_text(MINIMAL, &[]).unwrap();
    assert!(l.config.validate().is_ok());
}

#[test]
fn unknown_key_hints() {
    let l = load_text(
        MINIMAL,
        &[
            "log.retention.hour=1",
            "retention.ms=5",
            "totally.different.thing=1",
        ],
    )
    .unwrap();
    assert_eq!(
        l.unknown_key_warnings(),
        vec![
            "unknown configuration \"log.retention.hour\" (did you mean log.retention.hours?)".to_string(),
            "unknown configuration \"retention.ms\" (retention.ms is a topic config; the broker-wide default is log.retention.ms)".to_string(),
            "unknown configuration \"totally.different.thing\"".to_string(),
        ]
    );
    assert_eq!(
        suggest_broker_key("num.partition").as_deref(),
        Some("did you mean num.partitions?")
    );
}

#[test]
fn log_segment_bytes_minimum_and_duplicate_dirs() {
    assert_eq!(
        must_err(MINIMAL, &["log.segment.bytes=1024"]),
        "log.segment.bytes: must be at least 1048576, got 1024"
    );
    assert_eq!(
        must_err(MINIMAL, &["log.dirs=/a,/b,/a"]),
        "log.dirs: /a is listed more than once"
    );
    assert_eq!(
        must_err(MINIMAL, &["log.dir=/a,/a"]),
        "log.dir: /a is listed more than once"
    );
}

#[test]
fn protocol_map_parsing() {
    let m = parse_protocol_map(" a:plaintext , B:SASL_SSL ").unwrap();
    assert_eq!(m["A"], SecurityProtocol::Plaintext);
    assert_eq!(m["B"], SecurityProtocol::SaslSsl);
    assert!(parse_protocol_map(":PLAINTEXT").unwrap_err().contains("empty listener name"));
    assert!(parse_protocol_map("A:SSL,a:PLAINTEXT").unwrap_err().contains("more than once"));
    assert!(parse_protocol_map("").unwrap().is_empty());
}

#[test]
fn secured_client_listeners_load_with_their_settings() {
    let c = must_load(
        MINIMAL,
        &[
            "listeners=PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9094,SASL_SSL://127.0.0.1:9095,CONTROLLER://127.0.0.1:9093",
            "ssl.keystore.type=PEM",
            "ssl.keystore.location=/etc/klamm/server.pem",
            "listener.name.ssl.ssl.client.auth=required",
            "listener.name.ssl.ssl.truststore.type=PEM",
            "listener.name.ssl.ssl.truststore.location=/etc/klamm/ca.pem",
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
            "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"pw\";",
        ],
    );
    let ssl = c.listener_security["SSL"].ssl.as_ref().unwrap();
    assert_eq!(ssl.client_auth, crate::security::ClientAuth::Required);
    let sasl_ssl = &c.listener_security["SASL_SSL"];
    assert_eq!(sasl_ssl.ssl.as_ref().unwrap().client_auth, crate::security::ClientAuth::None);
    assert_eq!(sasl_ssl.sasl.as_ref().unwrap().enabled_mechanisms.len(), 2);
    assert!(c.listener_security["PLAINTEXT"].ssl.is_none());
}

#[test]
fn authorizer_settings() {
    let c = must_load(MINIMAL, &[]);
    assert!(!c.authorizer_enabled && c.super_users.is_empty() && !c.allow_everyone_if_no_acl_found);
    let c = must_load(
        MINIMAL,
        &[
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:admin; User:CN=broker,O=x",
            "allow.everyone.if.no.acl.found=true",
        ],
    );
    assert!(c.authorizer_enabled && c.allow_everyone_if_no_acl_found);
    assert_eq!(c.super_users, vec!["User:admin".to_string(), "User:CN=broker,O=x".to_string()]);
    assert!(must_err(MINIMAL, &["authorizer.class.name=kafka.security.authorizer.AclAuthorizer"]).contains("authorizer.class.name"));
}

#[test]
fn unsupported_security_is_refused_naming_the_listener() {
    // A JKS keystore (Kafka's default type).
    let e = must_err(MINIMAL, &["listeners=SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093", "inter.broker.listener.name=SSL", "ssl.keystore.location=/k.jks"]);
    assert!(e.starts_with("listener SSL: ssl.keystore.type: JKS keystores are not supported"), "{e}");
    // GSSAPI, the default mechanism.
    let e = must_err(MINIMAL, &["listeners=SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093", "inter.broker.listener.name=SASL_PLAINTEXT"]);
    assert!(e.contains("listener SASL_PLAINTEXT: sasl.enabled.mechanisms") && e.contains("GSSAPI"), "{e}");
}

#[test]
fn secured_links_between_nodes_are_refused_not_served_as_plaintext() {
    // The controller listener of a combined node.
    let e = must_err(MINIMAL, &["listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_SSL"]);
    assert!(e.starts_with("controller listener CONTROLLER uses security protocol SASL_SSL"), "{e}");
    // The controller listener of a broker-only node, which connects to it without binding it.
    let e = must_err(
        MINIMAL,
        &["process.roles=broker", "node.id=2", "listeners=PLAINTEXT://:9092", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL"],
    );
    assert!(e.starts_with("controller listener CONTROLLER uses security protocol SSL"), "{e}");
    // A SASL inter-broker listener needs a mechanism Klamm serves for the brokers' logins.
    let sasl_inter = [
        "listeners=SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        "inter.broker.listener.name=SASL_PLAINTEXT",
        "controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293",
        "sasl.enabled.mechanisms=PLAIN",
    ];
    let e = must_err(MINIMAL, &sasl_inter);
    assert!(e.starts_with("sasl.mechanism.inter.broker.protocol: SASL mechanism \"GSSAPI\""), "{e}");
    let mut ok = sasl_inter.to_vec();
    ok.push("sasl.mechanism.inter.broker.protocol=PLAIN");
    assert_eq!(must_load(MINIMAL, &ok).sasl_mechanism_inter_broker_protocol, "PLAIN");
    // PLAINTEXT everywhere still loads.
    must_load(MINIMAL, &["listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"]);
}

#[test]
fn per_ip_overrides_are_parsed_and_malformed_lists_rejected() {
    let c = must_load(
        MINIMAL,
        &["max.connections.per.ip=2", "max.connections.per.ip.overrides= 127.0.0.1:5 , localhost:0,::1:7,127.0.0.1:6"],
    );
    assert_eq!(c.max_connections_per_ip, 2);
    let expected: BTreeMap<String, i32> = [("127.0.0.1", 6), ("localhost", 0), ("::1", 7)]
        .into_iter()
        .map(|(h, n)| (h.to_string(), n))
        .collect();
    assert_eq!(c.max_connections_per_ip_overrides, expected);
    assert!(must_load(MINIMAL, &[]).max_connections_per_ip_overrides.is_empty());

    let key = "max.connections.per.ip.overrides";
    for (bad, why) in [
        ("127.0.0.1", "\"127.0.0.1\" is not of the form host:count"),
        (":3", "\":3\" has an empty host"),
        ("host:x", "\"host:x\": the count is not a 32-bit integer"),
        ("host:-1", "\"host:-1\": the count must be at least 0"),
    ] {
        assert_eq!(must_err(MINIMAL, &[&format!("{key}={bad}")]), format!("{key}: {why}"));
        // A dynamic change is checked the same way, with the reason in Kafka's error.
        match validate_broker_dynamic_config(key, bad) {
            Err(ConfigError::InvalidValue { reason, .. }) => assert_eq!(reason, why),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(validate_broker_dynamic_config(key, "10.0.0.1:3,broker.example.com:4").is_ok());
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    crate::environment::properties_from_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

#[test]
fn environment_sits_between_file_and_overrides() {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(format!("{MINIMAL}num.partitions=2\nlog.retention.hours=10\ndefault.replication.factor=1\n").as_bytes()).unwrap();
    let environment = env(&[("KAFKA_NUM_PARTITIONS", "5"), ("KAFKA_LOG_RETENTION_HOURS", "20"), ("KAFKA_HEAP_OPTS", "-Xmx1G")]);
    let l = BrokerConfig::load_layered(Some(f.path()), environment, &["num.partitions=7".to_string()]).unwrap();
    // The override beats the environment, which beats the file.
    assert_eq!(l.config.num_partitions, 7);
    assert_eq!(l.original["log.retention.hours"], "20");
    assert_eq!(l.original["default.replication.factor"], "1");
    assert!(!l.original.contains_key("heap.opts"));
    assert!(l.unknown_keys.is_empty(), "{:?}", l.unknown_keys);
}

#[test]
fn environment_alone_adjusts_the_embedded_default() {
    let l = BrokerConfig::load_layered(None, env(&[("KAFKA_NUM_PARTITIONS", "3")]), &[]).unwrap();
    assert_eq!(l.defaults, Defaults::Embedded);
    assert_eq!(l.config.num_partitions, 3);
    assert_eq!(l.config.node_id, 1, "the embedded single node");
}

#[test]
fn a_kafka_compose_environment_gets_kafka_defaults() {
    let environment = env(&[
        ("KAFKA_NODE_ID", "1"),
        ("KAFKA_PROCESS_ROLES", "broker,controller"),
        ("KAFKA_LISTENERS", "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"),
        ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER"),
        ("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@127.0.0.1:19093"),
        ("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"),
        ("KAFKA_LOG_DIRS", "/tmp/kraft-combined-logs"),
        ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
    ]);
    let l = BrokerConfig::load_layered(None, environment, &[]).unwrap();
    assert_eq!(l.defaults, Defaults::Kafka);
    assert_eq!(l.config.offsets_topic_replication_factor, 1);
    // Kafka's default, not the embedded profile's 1.
    assert_eq!(l.config.transaction_state_log_replication_factor, 3);
    assert_eq!(l.config.listeners.len(), 2);
}

/// README.md lists the keys accepted without effect; this keeps the list true.
#[test]
fn readme_lists_every_key_without_effect() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let start = readme.find("Klamm accepts but does not act on").expect("the README section");
    let section = &readme[start..];
    let section = &section[..section.find("\n\n").unwrap_or(section.len())];
    let (keys, prefixes) = crate::no_effect_broker_keys();
    let listed: Vec<&str> = section.split('`').skip(1).step_by(2).collect();
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.extend(prefixes.iter().map(|p| format!("{p}*")));
    let mut listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected, "README.md's list of keys without effect is out of date");
}
