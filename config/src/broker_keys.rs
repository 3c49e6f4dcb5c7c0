//! The table of broker keys Klamm knows: Kafka name, type, Kafka 4.x default (as Kafka reports it
//! in DescribeConfigs), validator, whether it may be altered dynamically cluster-wide, and whether
//! Klamm acts on it or merely accepts it ("accepted, no effect").
//!
//! Defaults follow Apache Kafka 4.x (`ServerConfigs`, `ServerLogConfigs`, `ReplicationConfigs`,
//! `GroupCoordinatorConfig`, `TransactionLogConfig`, `SocketServerConfigs`, `KRaftConfigs`,
//! `QuorumConfig`). Where a key has no default in Kafka (`node.id`, `process.roles`, ...) the
//! default is `None` (null).

use crate::broker::{check_http_listener, check_per_ip_overrides, check_registry_listener};
use crate::schema::{Check, ConfigType, Def};

const B: ConfigType = ConfigType::Boolean;
const S: ConfigType = ConfigType::String;
const I: ConfigType = ConfigType::Int;
const SH: ConfigType = ConfigType::Short;
const L: ConfigType = ConfigType::Long;
const D: ConfigType = ConfigType::Double;
const LI: ConfigType = ConfigType::List;
const P: ConfigType = ConfigType::Password;

const NONE: Check = Check::None;
const fn min(v: i64) -> Check {
    Check::AtLeast(v)
}

pub(crate) const INT_MAX: &str = "2147483647";
pub(crate) const LONG_MAX: &str = "9223372036854775807";

const COMPRESSION: Check =
    Check::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]);
const TIMESTAMP: Check = Check::OneOf(&["CreateTime", "LogAppendTime"]);
const CLEANUP: Check = Check::ListOf(&["compact", "delete"], false);

/// Default of `listener.security.protocol.map` (CONTROLLER added for KRaft, as Kafka's effective
/// map does for controller listeners when the map is not set).
pub(crate) const DEFAULT_PROTOCOL_MAP: &str =
    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// Every broker key Klamm knows, sorted by name.
#[rustfmt::skip]
pub(crate) static BROKER_KEYS: &[Def] = &[
    Def::new("advertised.listeners", S, None, NONE, "Listeners to publish to clients; defaults to listeners minus controller listeners."),
    Def::new("allow.everyone.if.no.acl.found", B, Some("false"), NONE, "With the authorizer on: allow access to a resource no ACL names."),
    Def::new("authorizer.class.name", S, Some(""), Check::OneOf(&["", "org.apache.kafka.metadata.authorizer.StandardAuthorizer"]), "org.apache.kafka.metadata.authorizer.StandardAuthorizer turns ACLs on; empty leaves them off."),
    Def::new("auto.create.topics.enable", B, Some("true"), NONE, "Create a topic on Metadata for an unknown topic."),
    Def::new("auto.leader.rebalance.enable", B, Some("true"), NONE, "The active controller moves leadership back to preferred replicas."),
    Def::new("background.threads", I, Some("10"), min(1), "Background threads (accepted, no effect).").dynamic().no_effect(),
    Def::new("broker.heartbeat.interval.ms", I, Some("2000"), NONE, "Milliseconds between broker heartbeats to the controller."),
    Def::new("broker.id", I, None, min(0), "Legacy synonym of node.id; must equal node.id when both are set."),
    Def::new("broker.rack", S, None, NONE, "Rack of the broker, used for rack-aware placement."),
    Def::new("broker.session.timeout.ms", I, Some("9000"), NONE, "A broker without heartbeat for this long is fenced."),
    Def::new("cluster.id", S, None, NONE, "Expected cluster id (Klamm extension; normally read from meta.properties)."),
    Def::new("compression.type", S, Some("producer"), COMPRESSION, "Compression of stored batches; producer keeps the producer's codec.").dynamic(),
    Def::new("connection.failed.authentication.delay.ms", I, Some("100"), min(0), "Delay of the answer to a failed SASL authentication."),
    Def::new("connections.max.idle.ms", L, Some("600000"), NONE, "Close connections idle for longer than this."),
    Def::new("connections.max.reauth.ms", L, Some("0"), min(0), "KIP-368: SASL sessions expire after this long unless re-authenticated (0 = never)."),
    Def::new("controlled.shutdown.enable", B, Some("true"), NONE, "Controlled shutdown (accepted, no effect).").no_effect(),
    Def::new("controller.listener.names", S, None, NONE, "Comma separated names of the listeners used by the controller."),
    Def::new("controller.quorum.append.linger.ms", I, Some("25"), NONE, "Raft append linger (accepted, no effect).").no_effect(),
    Def::new("controller.quorum.bootstrap.servers", LI, Some(""), NONE, "Dynamic quorum bootstrap; only a single combined node is supported (it becomes the one voter), otherwise use controller.quorum.voters."),
    Def::new("controller.quorum.election.backoff.max.ms", I, Some("1000"), NONE, "Raft election backoff (accepted, no effect).").no_effect(),
    Def::new("controller.quorum.election.timeout.ms", I, Some("1000"), min(1), "Raft election timeout."),
    Def::new("controller.quorum.fetch.timeout.ms", I, Some("2000"), min(1), "Raft fetch timeout (leader considered lost)."),
    Def::new("controller.quorum.request.timeout.ms", I, Some("2000"), NONE, "Raft request timeout (accepted, no effect).").no_effect(),
    Def::new("controller.quorum.retry.backoff.ms", I, Some("20"), NONE, "Raft retry backoff (accepted, no effect).").no_effect(),
    Def::new("controller.quorum.voters", LI, Some(""), NONE, "Static quorum: id@host:port of every controller."),
    Def::new("default.replication.factor", I, Some("1"), Check::Between(1, i16::MAX as i64), "Replication factor of auto-created topics."),
    Def::new("delete.records.purgatory.purge.interval.requests", I, Some("1"), NONE, "Purgatory tuning (accepted, no effect).").no_effect(),
    Def::new("delete.topic.enable", B, Some("true"), NONE, "Allow DeleteTopics."),
    Def::new("eligible.leader.replicas.enable", B, Some("false"), NONE, "KIP-966 (accepted, no effect).").no_effect(),
    Def::new("fetch.max.bytes", I, Some("57671680"), min(1024), "Maximum bytes returned by one Fetch."),
    Def::new("fetch.purgatory.purge.interval.requests", I, Some("1000"), NONE, "Purgatory tuning (accepted, no effect).").no_effect(),
    Def::new("group.coordinator.rebalance.protocols", LI, Some("classic,consumer"), NONE, "Enabled group protocols (accepted, no effect).").no_effect(),
    Def::new("group.initial.rebalance.delay.ms", I, Some("3000"), min(0), "Delay of the first rebalance of a new classic group."),
    Def::new("group.max.session.timeout.ms", I, Some("1800000"), NONE, "Largest session timeout a member may ask for."),
    Def::new("group.max.size", I, Some(INT_MAX), min(1), "Maximum members of a consumer group."),
    Def::new("group.min.session.timeout.ms", I, Some("6000"), NONE, "Smallest session timeout a member may ask for."),
    Def::new("initial.broker.registration.timeout.ms", I, Some("60000"), NONE, "Broker registration timeout (accepted, no effect).").no_effect(),
    Def::new("inter.broker.listener.name", S, None, NONE, "Listener used between brokers; defaults to the one named after security.inter.broker.protocol."),
    Def::new("inter.broker.protocol.version", S, None, NONE, "Removed in Kafka 4 (accepted, no effect).").no_effect(),
    Def::new("klamm.http.listener", S, Some(""), Check::Format(check_http_listener), "host:port of the admin/ops HTTP listener (/metrics, /health, /ready, the ops page); empty = off. Klamm extension; embedded default 127.0.0.1:9644."),
    Def::new("klamm.request.slow.threshold.ms", L, Some("1000"), min(-1), "Requests slower than this (excluding a Fetch's intended wait) are logged at WARN; 0 or -1 = off. Klamm extension."),
    Def::new("klamm.schema.registry.authentication", S, Some("auto"), Check::OneOf(&["auto", "basic", "none"]), "HTTP basic auth on the schema registry against the SASL PLAIN users and SCRAM credentials: auto = when any listener is SASL_*, basic = always, none = never. Klamm extension."),
    Def::new("klamm.schema.registry.listener", S, Some(""), Check::Format(check_registry_listener), "[http://|https://]host:port of the schema registry (Confluent's REST API); https serves TLS with the ssl.* settings (overridable as klamm.schema.registry.ssl.*); empty = off. Klamm extension; embedded default 127.0.0.1:8081."),
    Def::new("leader.imbalance.check.interval.seconds", L, Some("300"), min(1), "How often the active controller checks leader imbalance."),
    Def::new("leader.imbalance.per.broker.percentage", I, Some("10"), NONE, "Share of a broker's preferred partitions led elsewhere that triggers a rebalance."),
    Def::new("listener.security.protocol.map", S, Some(DEFAULT_PROTOCOL_MAP), NONE, "Listener name to security protocol."),
    Def::new("listeners", S, Some("PLAINTEXT://:9092"), NONE, "Comma separated NAME://host:port the node binds."),
    Def::new("log.cleaner.backoff.ms", L, Some("15000"), min(0), "How often the cleaner looks for logs to compact.").dynamic(),
    Def::new("log.cleaner.dedupe.buffer.size", L, Some("134217728"), NONE, "Cleaner memory (accepted, no effect).").dynamic().no_effect(),
    Def::new("log.cleaner.delete.retention.ms", L, Some("86400000"), min(0), "How long tombstones are kept in compacted logs.").dynamic(),
    Def::new("log.cleaner.enable", B, Some("true"), NONE, "Run the log cleaner."),
    Def::new("log.cleaner.io.buffer.load.factor", D, Some("0.9"), NONE, "Cleaner tuning (accepted, no effect).").dynamic().no_effect(),
    Def::new("log.cleaner.io.buffer.size", I, Some("524288"), NONE, "Cleaner tuning (accepted, no effect).").dynamic().no_effect(),
    Def::new("log.cleaner.io.max.bytes.per.second", D, Some("1.7976931348623157E308"), NONE, "Cleaner throttle (accepted, no effect).").dynamic().no_effect(),
    Def::new("log.cleaner.max.compaction.lag.ms", L, Some(LONG_MAX), min(1), "Maximum time a message stays uncompacted.").dynamic(),
    Def::new("log.cleaner.min.cleanable.ratio", D, Some("0.5"), Check::DoubleBetween(0.0, 1.0), "Dirty ratio above which a log is cleaned.").dynamic(),
    Def::new("log.cleaner.min.compaction.lag.ms", L, Some("0"), min(0), "Minimum time a message stays uncompacted.").dynamic(),
    Def::new("log.cleaner.threads", I, Some("1"), min(0), "Cleaner threads (accepted, no effect).").dynamic().no_effect(),
    Def::new("log.cleanup.policy", LI, Some("delete"), CLEANUP, "delete and/or compact.").dynamic(),
    Def::new("log.dir", LI, Some("/tmp/kafka-logs"), NONE, "Log directory, used when log.dirs is not set."),
    Def::new("log.dirs", LI, None, NONE, "Comma separated log directories."),
    Def::new("log.flush.interval.messages", L, Some(LONG_MAX), min(1), "Messages accumulated before a flush.").dynamic(),
    Def::new("log.flush.interval.ms", L, None, NONE, "Maximum time data stays unflushed; null = log.flush.scheduler.interval.ms.").dynamic(),
    Def::new("log.flush.offset.checkpoint.interval.ms", I, Some("60000"), min(0), "Checkpoint cadence (accepted, no effect).").no_effect(),
    Def::new("log.flush.scheduler.interval.ms", L, Some(LONG_MAX), NONE, "How often the flusher checks logs."),
    Def::new("log.flush.start.offset.checkpoint.interval.ms", I, Some("60000"), min(0), "Checkpoint cadence (accepted, no effect).").no_effect(),
    Def::new("log.index.interval.bytes", I, Some("4096"), min(0), "Bytes between offset index entries.").dynamic(),
    Def::new("log.index.size.max.bytes", I, Some("10485760"), min(4), "Maximum offset index file size.").dynamic(),
    Def::new("log.message.downconversion.enable", B, Some("true"), NONE, "Removed in Kafka 4 (accepted, no effect).").dynamic().no_effect(),
    Def::new("log.message.format.version", S, None, NONE, "Removed in Kafka 4 (accepted, no effect).").no_effect(),
    Def::new("log.message.timestamp.after.max.ms", L, Some("3600000"), min(0), "Largest allowed timestamp ahead of broker time.").dynamic(),
    Def::new("log.message.timestamp.before.max.ms", L, Some(LONG_MAX), min(0), "Largest allowed timestamp behind broker time.").dynamic(),
    Def::new("log.message.timestamp.type", S, Some("CreateTime"), TIMESTAMP, "CreateTime or LogAppendTime.").dynamic(),
    Def::new("log.preallocate", B, Some("false"), NONE, "Preallocate segment files.").dynamic(),
    Def::new("log.retention.bytes", L, Some("-1"), NONE, "Maximum partition size before deleting old segments; -1 = unlimited.").dynamic(),
    Def::new("log.retention.check.interval.ms", L, Some("300000"), min(1), "How often retention is checked."),
    Def::new("log.retention.hours", I, Some("168"), NONE, "Retention in hours (lowest precedence).").dynamic(),
    Def::new("log.retention.minutes", I, None, NONE, "Retention in minutes (overrides log.retention.hours).").dynamic(),
    Def::new("log.retention.ms", L, None, NONE, "Retention in ms (highest precedence); -1 = infinite.").dynamic(),
    Def::new("log.roll.hours", I, Some("168"), min(1), "Segment roll time in hours.").dynamic(),
    Def::new("log.roll.jitter.hours", I, Some("0"), min(0), "Roll jitter (accepted, no effect).").dynamic().no_effect(),
    Def::new("log.roll.jitter.ms", L, None, NONE, "Roll jitter (accepted, no effect).").dynamic().no_effect(),
    Def::new("log.roll.ms", L, None, min(1), "Segment roll time in ms (overrides log.roll.hours).").dynamic(),
    Def::new("log.segment.bytes", I, Some("1073741824"), min(1_048_576), "Maximum segment file size.").dynamic(),
    Def::new("log.segment.delete.delay.ms", L, Some("60000"), min(0), "Delay before a deleted segment's files are removed.").dynamic(),
    Def::new("max.connection.creation.rate", I, Some(INT_MAX), NONE, "Connection rate limit (accepted, no effect).").dynamic().no_effect(),
    Def::new("max.connections", I, Some(INT_MAX), min(0), "Maximum open client connections.").dynamic(),
    Def::new("max.connections.per.ip", I, Some(INT_MAX), min(0), "Maximum connections from one IP.").dynamic(),
    Def::new("max.connections.per.ip.overrides", S, Some(""), Check::Format(check_per_ip_overrides), "Per-IP or per-hostname limits, host:count,host:count.").dynamic(),
    Def::new("max.incremental.fetch.session.cache.slots", I, Some("1000"), min(0), "Maximum KIP-227 fetch sessions."),
    Def::new("message.max.bytes", I, Some("1048588"), min(0), "Largest record batch accepted (after compression).").dynamic(),
    Def::new("metadata.log.dir", S, None, NONE, "Directory of the metadata log; defaults to the first log dir."),
    Def::new("metadata.log.max.record.bytes.between.snapshots", L, Some("20971520"), min(1), "Metadata log bytes between snapshots."),
    Def::new("metadata.log.segment.bytes", I, Some("1073741824"), min(12), "Metadata log segment size."),
    Def::new("metadata.max.retention.bytes", L, Some("104857600"), NONE, "Metadata log retention (accepted, no effect).").no_effect(),
    Def::new("metadata.max.retention.ms", L, Some("604800000"), NONE, "Metadata log retention (accepted, no effect).").no_effect(),
    Def::new("metric.reporters", LI, Some(""), NONE, "Metric reporters (accepted, no effect).").no_effect(),
    Def::new("metrics.num.samples", I, Some("2"), NONE, "Metrics (accepted, no effect).").no_effect(),
    Def::new("metrics.recording.level", S, Some("INFO"), NONE, "Metrics (accepted, no effect).").no_effect(),
    Def::new("metrics.sample.window.ms", L, Some("30000"), NONE, "Metrics (accepted, no effect).").no_effect(),
    Def::new("min.insync.replicas", I, Some("1"), min(1), "Minimum ISR size for acks=all produce.").dynamic(),
    Def::new("node.id", I, None, min(0), "This node's id, unique in the cluster."),
    Def::new("num.io.threads", I, Some("8"), min(1), "Request handler threads (a hint for Klamm).").dynamic(),
    Def::new("num.network.threads", I, Some("3"), min(1), "Network threads (a hint for Klamm).").dynamic(),
    Def::new("num.partitions", I, Some("1"), min(1), "Partitions of auto-created topics."),
    Def::new("num.recovery.threads.per.data.dir", I, Some("2"), min(1), "Recovery threads (accepted, no effect).").dynamic().no_effect(),
    Def::new("num.replica.alter.log.dirs.threads", I, None, NONE, "Log dir movers (accepted, no effect).").no_effect(),
    Def::new("num.replica.fetchers", I, Some("1"), NONE, "Replica fetcher threads (accepted, no effect).").dynamic().no_effect(),
    Def::new("offset.metadata.max.bytes", I, Some("4096"), min(0), "Largest metadata string stored with a committed offset."),
    Def::new("offsets.commit.timeout.ms", I, Some("5000"), min(1), "Offset commit timeout (accepted, no effect).").no_effect(),
    Def::new("offsets.load.buffer.size", I, Some("5242880"), min(1), "Offset load buffer (accepted, no effect).").no_effect(),
    Def::new("offsets.retention.check.interval.ms", L, Some("600000"), min(1), "How often stale offsets are expired."),
    Def::new("offsets.retention.minutes", I, Some("10080"), min(1), "Retention of committed offsets of empty groups."),
    Def::new("offsets.topic.compression.codec", I, Some("0"), NONE, "Offsets topic codec (accepted, no effect).").no_effect(),
    Def::new("offsets.topic.num.partitions", I, Some("50"), min(1), "Partitions of __consumer_offsets."),
    Def::new("offsets.topic.replication.factor", SH, Some("3"), min(1), "Replication factor of __consumer_offsets."),
    Def::new("offsets.topic.segment.bytes", I, Some("104857600"), min(1), "Segment size of __consumer_offsets."),
    Def::new("process.roles", LI, None, Check::ListOf(&["broker", "controller"], false), "broker, controller or both."),
    Def::new("producer.id.expiration.check.interval.ms", I, Some("600000"), min(1), "How often expired producer ids are removed."),
    Def::new("producer.id.expiration.ms", I, Some("86400000"), min(1), "Idle time after which a producer id's state expires.").dynamic(),
    Def::new("producer.purgatory.purge.interval.requests", I, Some("1000"), NONE, "Purgatory tuning (accepted, no effect).").no_effect(),
    Def::new("queued.max.requests", I, Some("500"), min(1), "Requests queued before network threads stop reading."),
    Def::new("quota.window.num", I, Some("11"), min(1), "Quota samples (accepted, no effect).").no_effect(),
    Def::new("quota.window.size.seconds", I, Some("1"), min(1), "Quota window (accepted, no effect).").no_effect(),
    Def::new("remote.log.storage.system.enable", B, Some("false"), NONE, "Tiered storage (accepted, no effect).").no_effect(),
    Def::new("replica.fetch.backoff.ms", I, Some("1000"), min(0), "Sleep after a replica fetch error."),
    Def::new("replica.fetch.max.bytes", I, Some("1048576"), min(0), "Bytes per partition in a replica fetch."),
    Def::new("replica.fetch.min.bytes", I, Some("1"), NONE, "Minimum bytes of a replica fetch."),
    Def::new("replica.fetch.response.max.bytes", I, Some("10485760"), min(0), "Bytes of a whole replica fetch response."),
    Def::new("replica.fetch.wait.max.ms", I, Some("500"), NONE, "Maximum wait of a replica fetch."),
    Def::new("replica.high.watermark.checkpoint.interval.ms", L, Some("5000"), NONE, "High watermark checkpoint cadence."),
    Def::new("replica.lag.time.max.ms", L, Some("30000"), NONE, "A follower not caught up for this long leaves the ISR."),
    Def::new("replica.socket.receive.buffer.bytes", I, Some("65536"), NONE, "Socket tuning (accepted, no effect).").no_effect(),
    Def::new("replica.socket.timeout.ms", I, Some("30000"), NONE, "Replica socket timeout (accepted, no effect).").no_effect(),
    Def::new("request.timeout.ms", I, Some("30000"), min(0), "Inter-node request timeout."),
    Def::new("sasl.enabled.mechanisms", LI, Some("GSSAPI"), NONE, "SASL mechanisms of SASL listeners: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (others are refused)."),
    Def::new("sasl.jaas.config", P, None, NONE, "JAAS config of SASL listeners (PLAIN users as user_<name>=\"pw\"; username/password for inter-broker logins)."),
    Def::new("sasl.mechanism.controller.protocol", S, Some("GSSAPI"), NONE, "SASL mechanism for connections to controllers (accepted, no effect).").no_effect(),
    Def::new("sasl.mechanism.inter.broker.protocol", S, Some("GSSAPI"), NONE, "SASL mechanism brokers log in with on a SASL inter-broker listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)."),
    Def::new("security.inter.broker.protocol", S, Some("PLAINTEXT"), Check::OneOf(&["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]), "Protocol between brokers; names the inter-broker listener when inter.broker.listener.name is unset."),
    Def::new("socket.listen.backlog.size", I, Some("50"), min(1), "Socket tuning (accepted, no effect).").no_effect(),
    Def::new("socket.receive.buffer.bytes", I, Some("102400"), NONE, "Socket tuning (accepted, no effect).").no_effect(),
    Def::new("socket.request.max.bytes", I, Some("104857600"), min(1), "Largest request frame accepted."),
    Def::new("socket.send.buffer.bytes", I, Some("102400"), NONE, "Socket tuning (accepted, no effect).").no_effect(),
    Def::new("ssl.client.auth", S, Some("none"), Check::OneOf(&["none", "requested", "required"]), "Client certificates on TLS listeners: none, requested or required (mTLS)."),
    Def::new("ssl.enabled.protocols", LI, Some("TLSv1.2,TLSv1.3"), NONE, "TLS versions served (TLSv1.2, TLSv1.3)."),
    Def::new("ssl.key.password", P, None, NONE, "Password of an encrypted PKCS#8 PEM private key (PBES2)."),
    Def::new("ssl.keystore.certificate.chain", P, None, NONE, "Inline PEM certificate chain (with ssl.keystore.key)."),
    Def::new("ssl.keystore.key", P, None, NONE, "Inline PEM private key (with ssl.keystore.certificate.chain)."),
    Def::new("ssl.keystore.location", S, None, NONE, "PEM file with the listener's private key and certificate chain."),
    Def::new("ssl.keystore.password", P, None, NONE, "Password of a PKCS12 keystore (PEM keystores need none)."),
    Def::new("ssl.keystore.type", S, Some("JKS"), NONE, "Keystore format: PKCS12 or PEM (JKS is refused)."),
    Def::new("ssl.principal.mapping.rules", S, Some("DEFAULT"), NONE, "Rules mapping a client certificate's subject DN to a principal name."),
    Def::new("ssl.truststore.certificates", P, None, NONE, "Inline PEM CA certificates trusted for client certificates."),
    Def::new("ssl.truststore.location", S, None, NONE, "PEM file of CA certificates trusted for client certificates."),
    Def::new("ssl.truststore.password", P, None, NONE, "Password of a PKCS12 truststore (PEM truststores need none)."),
    Def::new("ssl.truststore.type", S, Some("JKS"), NONE, "Truststore format: PKCS12 or PEM (JKS is refused)."),
    Def::new("super.users", S, Some(""), NONE, "Principals the authorizer always allows, separated by ';' (User:admin;User:broker)."),
    Def::new("transaction.abort.timed.out.transaction.cleanup.interval.ms", I, Some("10000"), min(1), "How often timed-out transactions are aborted."),
    Def::new("transaction.max.timeout.ms", I, Some("900000"), min(1), "Largest transaction timeout a producer may ask for."),
    Def::new("transaction.partition.verification.enable", B, Some("true"), NONE, "KIP-890 verification (accepted, no effect).").dynamic().no_effect(),
    Def::new("transaction.remove.expired.transaction.cleanup.interval.ms", I, Some("3600000"), min(1), "How often expired transactional ids are removed."),
    Def::new("transaction.state.log.load.buffer.size", I, Some("5242880"), min(1), "Load buffer (accepted, no effect).").no_effect(),
    Def::new("transaction.state.log.min.isr", I, Some("2"), min(1), "min.insync.replicas of __transaction_state."),
    Def::new("transaction.state.log.num.partitions", I, Some("50"), min(1), "Partitions of __transaction_state."),
    Def::new("transaction.state.log.replication.factor", SH, Some("3"), min(1), "Replication factor of __transaction_state."),
    Def::new("transaction.state.log.segment.bytes", I, Some("104857600"), min(1), "Segment size of __transaction_state."),
    Def::new("transactional.id.expiration.ms", I, Some("604800000"), min(1), "Idle time after which a transactional id expires."),
    Def::new("unclean.leader.election.enable", B, Some("false"), NONE, "Allow an out-of-sync replica to become leader.").dynamic(),
    Def::new("unstable.api.versions.enable", B, Some("false"), NONE, "Unstable APIs (accepted, no effect).").no_effect(),
    Def::new("zookeeper.connect", S, None, NONE, "ZooKeeper mode was removed in Kafka 4 (accepted, no effect).").no_effect(),
    Def::new("zookeeper.connection.timeout.ms", I, None, NONE, "ZooKeeper (accepted, no effect).").no_effect(),
    Def::new("zookeeper.session.timeout.ms", I, Some("18000"), NONE, "ZooKeeper (accepted, no effect).").no_effect(),
];

/// Key prefixes Kafka accepts (per-listener and plugin configs) that Klamm accepts with no effect.
pub(crate) const NO_EFFECT_PREFIXES: &[&str] = &[
    "listener.name.",
    "ssl.",
    "sasl.",
    "remote.log.",
    "group.consumer.",
    "group.share.",
    "group.streams.",
    "share.",
    "kafka.metrics.",
    "log4j.",
    "confluent.",
];

/// Looks up a broker key definition.
pub(crate) fn broker_key(name: &str) -> Option<&'static Def> {
    BROKER_KEYS
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &BROKER_KEYS[i])
}

/// True for a key Kafka knows but Klamm ignores.
pub(crate) fn is_no_effect(name: &str) -> bool {
    match broker_key(name) {
        Some(d) => !d.effective,
        None if crate::security::is_effective_listener_key(name) || crate::registry::is_registry_ssl_key(name) => false,
        None => NO_EFFECT_PREFIXES.iter().any(|p| name.starts_with(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in BROKER_KEYS.windows(2) {
            assert!(w[0].name < w[1].name, "{} >= {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn defaults_parse_with_their_own_validator() {
        for d in BROKER_KEYS {
            if let Some(v) = d.default {
                assert!(d.parse(v).is_ok(), "default of {} = {v:?} rejected", d.name);
            }
        }
    }

    #[test]
    fn no_effect_lookup() {
        assert!(is_no_effect("zookeeper.connect"));
        assert!(is_no_effect(
            "listener.name.plaintext.ssl.cipher.suites"
        ));
        assert!(!is_no_effect("listener.name.plaintext.ssl.keystore.location"));
        assert!(!is_no_effect("log.retention.ms"));
        assert!(!is_no_effect("made.up.key"));
    }
}

/// The keys and key prefixes Klamm accepts without effect (for documentation).
pub fn no_effect_broker_keys() -> (Vec<&'static str>, &'static [&'static str]) {
    (BROKER_KEYS.iter().filter(|d| !d.effective).map(|d| d.name).collect(), NO_EFFECT_PREFIXES)
}
