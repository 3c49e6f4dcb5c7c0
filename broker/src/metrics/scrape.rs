//! What a `/metrics` scrape (and the ops page's JSON) reads: the counters of
//! [`super::BrokerMetrics`] and of each hosted partition, plus what is computed from the
//! metadata image, the hosted logs, the group coordinator and the quorum.
//!
//! Who reports what, so that a Prometheus `sum` over every broker counts each thing once:
//! - per-topic traffic (bytes/messages in, bytes out) by the broker that served it (the
//!   leader);
//! - partition offsets and under-replication of a partition by its **leader**;
//! - `replicamanager` counts by each broker for itself;
//! - controller counts (offline partitions, brokers, topics) by the **active controller**
//!   only (0 elsewhere, as Kafka's controller metrics);
//! - a group's offsets and lag by its **coordinator**, with end offsets asked from each
//!   partition's leader (a ListOffsets over the inter-broker listener) when that is another
//!   broker;
//! - log size and segments by every broker holding a replica (it is that broker's disk).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use klamm_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use klamm_protocol::messages::ListOffsetsRequest;
use klamm_raft::MetadataImage;

use super::encode::{Exposition, Kind};
use crate::server::Broker;

/// How long a scrape waits for another broker's end offsets.
const REMOTE_OFFSETS_TIMEOUT: Duration = Duration::from_secs(2);

/// One partition offset of one group, with the partition's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    /// The partition's high watermark (None if its leader could not be asked).
    pub end: Option<i64>,
}

impl PartitionLag {
    /// end − committed, never negative (a commit can pass the end a scrape saw a moment ago).
    pub fn lag(&self) -> Option<i64> {
        self.end.map(|e| (e - self.committed).max(0))
    }
}

/// A group coordinated by this broker.
#[derive(Debug, Clone)]
pub struct GroupLag {
    pub group: String,
    pub state: String,
    pub members: Vec<(String, String, String)>, // (member id, client id, host)
    pub partitions: Vec<PartitionLag>,
}

/// The groups this broker coordinates, with committed offsets and end offsets.
pub async fn group_lags(broker: &Broker) -> Vec<GroupLag> {
    let (_, listed) = broker.groups.list().await;
    let mut groups = Vec::new();
    let mut wanted: BTreeSet<(String, i32)> = BTreeSet::new();
    for g in listed {
        let Ok(offsets) = broker.groups.fetch(&g.group_id, None).await else { continue };
        let members = match broker.groups.describe(&g.group_id).await {
            Ok(s) => s.members.into_iter().map(|m| (m.member_id, m.client_id, m.client_host)).collect(),
            Err(_) => Vec::new(),
        };
        let mut partitions = Vec::new();
        for (topic, parts) in offsets {
            for (partition, committed, _) in parts {
                let Some(c) = committed else { continue };
                wanted.insert((topic.clone(), partition));
                partitions.push(PartitionLag { topic: topic.clone(), partition, committed: c.offset, end: None });
            }
        }
        groups.push(GroupLag { group: g.group_id, state: g.state.name().to_string(), members, partitions });
    }
    let ends = end_offsets(broker, &broker.metadata.image(), &wanted).await;
    for g in &mut groups {
        for p in &mut g.partitions {
            p.end = ends.get(&(p.topic.clone(), p.partition)).copied();
        }
    }
    groups
}

/// High watermarks of `wanted`: from the local replica where this broker leads, otherwise
/// one ListOffsets (latest) per leader broker.
pub async fn end_offsets(broker: &Broker, image: &MetadataImage, wanted: &BTreeSet<(String, i32)>) -> HashMap<(String, i32), i64> {
    let mut out = HashMap::new();
    let mut remote: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for (topic, partition) in wanted {
        let Some(meta) = image.partition(topic, *partition) else { continue };
        if meta.leader == broker.node_id {
            if let Some(p) = broker.replicas.get(topic, *partition) {
                out.insert((topic.clone(), *partition), p.view().high_watermark);
            }
        } else if meta.leader >= 0 {
            remote.entry(meta.leader).or_default().entry(topic.clone()).or_default().push(*partition);
        }
    }
    // One leader after the other: a cluster has few brokers, each ask is bounded.
    for (leader, topics) in remote {
        out.extend(ask_end_offsets(broker, image, leader, topics).await);
    }
    out
}

async fn ask_end_offsets(broker: &Broker, image: &MetadataImage, leader: i32, topics: BTreeMap<String, Vec<i32>>) -> Vec<((String, i32), i64)> {
    let Some(addr) = crate::metadata::broker_address(image, &broker.config.inter_broker_listener_name, leader) else { return Vec::new() };
    let request = ListOffsetsRequest {
        replica_id: -1,
        isolation_level: 0,
        topics: topics
            .into_iter()
            .map(|(name, partitions)| ListOffsetsTopic {
                name,
                partitions: partitions
                    .into_iter()
                    .map(|p| ListOffsetsPartition { partition_index: p, current_leader_epoch: -1, timestamp: -1, ..Default::default() })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let client_id = format!("klamm-metrics-{}", broker.node_id);
    let exchange = async {
        let mut client =
            crate::net::client::KafkaClient::connect_secured(&addr, &client_id, REMOTE_OFFSETS_TIMEOUT, &broker.inter_broker_security).await.ok()?;
        client.send(&request, 7, REMOTE_OFFSETS_TIMEOUT).await.ok()
    };
    let Some(response) = exchange.await else {
        tracing::debug!(leader, %addr, "end offsets for consumer lag not available from the leader");
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.offset >= 0 {
                out.push(((t.name.clone(), p.partition_index), p.offset));
            }
        }
    }
    out
}

/// This node's view of the metadata quorum.
pub struct QuorumView {
    pub leader: Option<i32>,
    pub epoch: u64,
    pub committed_index: u64,
    pub log_end_index: u64,
    pub voters: Vec<i32>,
    pub voter_lag: Vec<(i32, u64)>,
}

pub fn quorum_view(broker: &Broker) -> QuorumView {
    match broker.metadata.quorum() {
        Some(q) => {
            let s = q.status();
            QuorumView {
                leader: s.leader,
                epoch: s.term,
                committed_index: s.last_applied_index,
                log_end_index: s.last_log_index,
                voters: s.voters,
                voter_lag: s.voter_lag,
            }
        }
        None => {
            let index = broker.metadata.image().last_applied_index;
            let voters = broker.config.controller_quorum_voters.iter().map(|v| v.id).collect();
            QuorumView { leader: broker.metadata.active_controller(), epoch: 0, committed_index: index, log_end_index: index, voters, voter_lag: Vec::new() }
        }
    }
}

/// Whether this node is the active controller.
pub fn is_active_controller(broker: &Broker) -> bool {
    broker.metadata.quorum().is_some_and(|q| q.is_leader())
}

/// The whole `/metrics` text.
pub async fn render(broker: &Broker) -> String {
    let mut e = Exposition::new();
    let image = broker.metadata.image();
    let m = &broker.metrics;
    let node = broker.node_id;
    let hosted = broker.replicas.all();

    // --- BrokerTopicMetrics: per topic (summed over this broker's partitions) and total.
    let mut per_topic: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
    for p in &hosted {
        let t = per_topic.entry(p.topic.as_str()).or_default();
        t[0] += p.metrics.bytes_in.load(Relaxed);
        t[1] += p.metrics.messages_in.load(Relaxed);
        t[2] += p.metrics.bytes_out.load(Relaxed);
    }
    let totals = [m.bytes_in.load(Relaxed), m.messages_in.load(Relaxed), m.bytes_out.load(Relaxed)];
    let families = [
        (
            "kafka_server_brokertopicmetrics_bytesin_total",
            "Bytes of record batches produced to partitions this broker leads (per topic; without topic: all topics).",
        ),
        ("kafka_server_brokertopicmetrics_messagesin_total", "Records produced to partitions this broker leads (per topic; without topic: all topics)."),
        (
            "kafka_server_brokertopicmetrics_bytesout_total",
            "Bytes of record batches sent to consumers (per topic; without topic: all topics; replication excluded).",
        ),
    ];
    for (i, (name, help)) in families.iter().enumerate() {
        e.family(name, Kind::Counter, help);
        e.sample(name, &[], totals[i] as f64);
        for (topic, v) in &per_topic {
            e.sample(name, &[("topic", topic)], v[i] as f64);
        }
    }
    e.family("kafka_server_brokertopicmetrics_replicationbytesout_total", Kind::Counter, "Bytes of record batches sent to follower replicas.");
    e.sample("kafka_server_brokertopicmetrics_replicationbytesout_total", &[], m.replication_bytes_out.load(Relaxed) as f64);

    // --- Requests per API.
    e.family("kafka_network_requestmetrics_requests_total", Kind::Counter, "Requests handled, by Kafka API name.");
    for api in crate::handlers::SUPPORTED {
        if let Some(a) = m.api(api.key.as_i16()) {
            e.sample("kafka_network_requestmetrics_requests_total", &[("request", api.key.name())], a.requests.load(Relaxed) as f64);
        }
    }
    e.family(
        "kafka_network_requestmetrics_totaltimems",
        Kind::Histogram,
        "Time from a complete request to its response being ready, in ms (a Fetch's intended wait excluded), by Kafka API name.",
    );
    for api in crate::handlers::SUPPORTED {
        if let Some(a) = m.api(api.key.as_i16()) {
            e.histogram("kafka_network_requestmetrics_totaltimems", &[("request", api.key.name())], &a.total_time_ms.snapshot());
        }
    }
    e.family("klamm_slow_requests_total", Kind::Counter, "Requests slower than klamm.request.slow.threshold.ms (logged at WARN).");
    e.sample("klamm_slow_requests_total", &[], m.slow_requests.load(Relaxed) as f64);

    // --- ReplicaManager (this broker's replicas, from the metadata image).
    let (mut partitions, mut leaders, mut under_replicated, mut under_min_isr) = (0u64, 0u64, 0u64, 0u64);
    for topic in image.topics.values() {
        for p in topic.partitions.values() {
            if p.replicas.contains(&node) {
                partitions += 1;
            }
            if p.leader == node {
                leaders += 1;
                if p.isr.len() < p.replicas.len() {
                    under_replicated += 1;
                }
                let min_isr = broker.replicas.get(&topic.name, p.partition).map(|l| l.config().min_insync_replicas).unwrap_or(1);
                if (p.isr.len() as i64) < min_isr as i64 {
                    under_min_isr += 1;
                }
            }
        }
    }
    let gauges: [(&str, &str, f64); 5] = [
        ("kafka_server_replicamanager_partitioncount", "Partitions with a replica on this broker.", partitions as f64),
        ("kafka_server_replicamanager_leadercount", "Partitions this broker leads.", leaders as f64),
        (
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions this broker leads whose ISR is smaller than the replica set.",
            under_replicated as f64,
        ),
        ("kafka_server_replicamanager_underminisrpartitioncount", "Partitions this broker leads whose ISR is below min.insync.replicas.", under_min_isr as f64),
        (
            "kafka_server_replicamanager_offlinereplicacount",
            "Replicas on this broker whose log cannot be opened.",
            broker.replicas.offline_partitions().len() as f64,
        ),
    ];
    for (name, help, v) in gauges {
        e.family(name, Kind::Gauge, help);
        e.sample(name, &[], v);
    }
    e.family("kafka_server_replicamanager_isrshrinks_total", Kind::Counter, "ISR shrinks this broker proposed as leader and the controller applied.");
    e.sample("kafka_server_replicamanager_isrshrinks_total", &[], m.isr_shrinks.load(Relaxed) as f64);
    e.family("kafka_server_replicamanager_isrexpands_total", Kind::Counter, "ISR expansions this broker proposed as leader and the controller applied.");
    e.sample("kafka_server_replicamanager_isrexpands_total", &[], m.isr_expands.load(Relaxed) as f64);

    // --- Controller (the active controller reports, the others say 0).
    let active = is_active_controller(broker);
    let (mut offline, mut global_partitions) = (0u64, 0u64);
    for topic in image.topics.values() {
        for p in topic.partitions.values() {
            global_partitions += 1;
            if p.leader < 0 {
                offline += 1;
            }
        }
    }
    let fenced = image.brokers.values().filter(|b| b.fenced).count() as f64;
    let live = image.brokers.len() as f64 - fenced;
    let on = |v: f64| if active { v } else { 0.0 };
    let controller: [(&str, &str, f64); 6] = [
        ("kafka_controller_kafkacontroller_activecontrollercount", "1 on the active controller, 0 elsewhere.", if active { 1.0 } else { 0.0 }),
        ("kafka_controller_kafkacontroller_offlinepartitionscount", "Partitions without a leader (active controller only).", on(offline as f64)),
        ("kafka_controller_kafkacontroller_globalpartitioncount", "Partitions in the cluster (active controller only).", on(global_partitions as f64)),
        ("kafka_controller_kafkacontroller_globaltopiccount", "Topics in the cluster (active controller only).", on(image.topics.len() as f64)),
        ("kafka_controller_kafkacontroller_activebrokercount", "Registered, unfenced brokers (active controller only).", on(live)),
        ("kafka_controller_kafkacontroller_fencedbrokercount", "Registered, fenced brokers (active controller only).", on(fenced)),
    ];
    for (name, help, v) in controller {
        e.family(name, Kind::Gauge, help);
        e.sample(name, &[], v);
    }

    // --- Metadata quorum.
    let q = quorum_view(broker);
    let raft: [(&str, &str, f64); 4] = [
        ("kafka_server_raft_metrics_current_leader", "Node id of the metadata quorum leader (-1: unknown).", q.leader.map(f64::from).unwrap_or(-1.0)),
        ("kafka_server_raft_metrics_current_epoch", "Term (epoch) of the metadata quorum as this node knows it (0 on broker-only nodes).", q.epoch as f64),
        ("kafka_server_raft_metrics_high_watermark", "Highest committed metadata log index applied on this node.", q.committed_index as f64),
        ("kafka_server_raft_metrics_log_end_offset", "Index of the last entry in this node's metadata log.", q.log_end_index as f64),
    ];
    for (name, help, v) in raft {
        e.family(name, Kind::Gauge, help);
        e.sample(name, &[], v);
    }
    e.family("klamm_raft_voter_lag", Kind::Gauge, "Metadata log entries each voter is behind the leader (reported by the leader).");
    for (voter, lag) in &q.voter_lag {
        e.sample("klamm_raft_voter_lag", &[("voter", &voter.to_string())], *lag as f64);
    }

    // --- Logs of this broker's replicas; partition offsets and state by the leader.
    e.family("kafka_log_log_size", Kind::Gauge, "Bytes of the partition's log on this broker.");
    let mut stats = Vec::with_capacity(hosted.len());
    for p in &hosted {
        if let Some(s) = p.log_stats() {
            stats.push((p.clone(), s));
        }
    }
    for (p, (size, _)) in &stats {
        e.sample("kafka_log_log_size", &[("topic", &p.topic), ("partition", &p.index.to_string())], *size as f64);
    }
    e.family("kafka_log_log_numlogsegments", Kind::Gauge, "Segments of the partition's log on this broker.");
    for (p, (_, segments)) in &stats {
        e.sample("kafka_log_log_numlogsegments", &[("topic", &p.topic), ("partition", &p.index.to_string())], *segments as f64);
    }
    let led: Vec<_> = hosted.iter().filter(|p| image.partition(&p.topic, p.index).is_some_and(|m| m.leader == node)).collect();
    e.family("kafka_topic_partition_current_offset", Kind::Gauge, "High watermark of the partition (reported by its leader).");
    for p in &led {
        e.sample("kafka_topic_partition_current_offset", &[("topic", &p.topic), ("partition", &p.index.to_string())], p.view().high_watermark as f64);
    }
    e.family("kafka_topic_partition_oldest_offset", Kind::Gauge, "Log start offset of the partition (reported by its leader).");
    for p in &led {
        e.sample("kafka_topic_partition_oldest_offset", &[("topic", &p.topic), ("partition", &p.index.to_string())], p.view().log_start_offset as f64);
    }
    e.family(
        "kafka_topic_partition_under_replicated_partition",
        Kind::Gauge,
        "1 if the partition's ISR is smaller than its replica set (reported by its leader).",
    );
    for p in &led {
        if let Some(meta) = image.partition(&p.topic, p.index) {
            let urp = if meta.isr.len() < meta.replicas.len() { 1.0 } else { 0.0 };
            e.sample("kafka_topic_partition_under_replicated_partition", &[("topic", &p.topic), ("partition", &p.index.to_string())], urp);
        }
    }

    // --- Network, purgatories, transactions, authentication.
    e.family("kafka_server_socket_server_metrics_connection_count", Kind::Gauge, "Open client connections per Kafka listener.");
    for (listener, n) in m.connections_snapshot() {
        e.sample("kafka_server_socket_server_metrics_connection_count", &[("listener", &listener)], n as f64);
    }
    e.family(
        "kafka_server_delayedoperationpurgatory_purgatorysize",
        Kind::Gauge,
        "Requests waiting: acks=all produces for replication (Produce), fetches for data (Fetch).",
    );
    e.sample("kafka_server_delayedoperationpurgatory_purgatorysize", &[("delayedoperation", "Produce")], m.produce_purgatory.get() as f64);
    e.sample("kafka_server_delayedoperationpurgatory_purgatorysize", &[("delayedoperation", "Fetch")], m.fetch_purgatory.get() as f64);
    e.family("klamm_transaction_commits_total", Kind::Counter, "Transactions committed by this broker's transaction coordinator.");
    e.sample("klamm_transaction_commits_total", &[], m.txn_commits.load(Relaxed) as f64);
    e.family("klamm_transaction_aborts_total", Kind::Counter, "Transactions aborted by this broker's transaction coordinator.");
    e.sample("klamm_transaction_aborts_total", &[], m.txn_aborts.load(Relaxed) as f64);
    e.family("klamm_authentication_success_total", Kind::Counter, "Successful SASL authentications by mechanism.");
    for (mechanism, n) in m.auth_successes.snapshot() {
        e.sample("klamm_authentication_success_total", &[("mechanism", &mechanism)], n as f64);
    }
    e.family("klamm_authentication_failure_total", Kind::Counter, "Failed SASL authentications by mechanism.");
    for (mechanism, n) in m.auth_failures.snapshot() {
        e.sample("klamm_authentication_failure_total", &[("mechanism", &mechanism)], n as f64);
    }

    // --- Consumer groups coordinated here (kafka-exporter's names).
    let groups = group_lags(broker).await;
    e.family("kafka_consumergroup_current_offset", Kind::Gauge, "Committed offset of the group for the partition (reported by the group's coordinator).");
    for g in &groups {
        for p in &g.partitions {
            e.sample(
                "kafka_consumergroup_current_offset",
                &[("consumergroup", &g.group), ("topic", &p.topic), ("partition", &p.partition.to_string())],
                p.committed as f64,
            );
        }
    }
    e.family("kafka_consumergroup_lag", Kind::Gauge, "High watermark minus the group's committed offset (reported by the group's coordinator).");
    for g in &groups {
        for p in &g.partitions {
            if let Some(lag) = p.lag() {
                e.sample("kafka_consumergroup_lag", &[("consumergroup", &g.group), ("topic", &p.topic), ("partition", &p.partition.to_string())], lag as f64);
            }
        }
    }
    e.family("kafka_consumergroup_members", Kind::Gauge, "Members of the group (reported by the group's coordinator).");
    for g in &groups {
        e.sample("kafka_consumergroup_members", &[("consumergroup", &g.group)], g.members.len() as f64);
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_never_negative_and_unknown_without_an_end() {
        let p = |committed, end| PartitionLag { topic: "t".into(), partition: 0, committed, end };
        assert_eq!(p(5, Some(12)).lag(), Some(7));
        assert_eq!(p(12, Some(10)).lag(), Some(0));
        assert_eq!(p(3, None).lag(), None);
    }
}
