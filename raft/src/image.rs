//! The `MetadataImage`: the state machine of the metadata log.
//!
//! The image is a plain value. It changes only through [`MetadataImage::apply`], which is
//! deterministic (no clock, no randomness, no I/O): applying the same commands at the same log
//! indexes to the same image always yields the same image. Readers get immutable
//! `Arc<MetadataImage>` snapshots from [`crate::MetadataQuorum::subscribe`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::command::{
    AppliedInfo, BrokerEndpoint, CommandOutcome, ConfigResource, MetadataCommand, NewPartition, RejectCode, Rejection,
};
use crate::reassignment;

/// Leader id meaning "this partition has no leader" (Kafka's `-1`).
pub const NO_LEADER: i32 = -1;

/// A registered broker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub node_id: i32,
    /// Log index of the registration entry.
    pub epoch: i64,
    pub incarnation_id: [u8; 16],
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// A partition's replica assignment and leadership.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionImage {
    pub partition: i32,
    /// During a reassignment: the target replicas, then the ones being removed.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Leader node id, or [`NO_LEADER`].
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Replicas a running reassignment adds (they must join the ISR before it completes);
    /// empty when none runs. `serde(default)`: images written before reassignments load.
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    /// Replicas a running reassignment removes once it completes.
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    /// Whether a reassignment of this partition is running.
    pub fn reassignment_in_progress(&self) -> bool {
        reassignment::in_progress(self)
    }
}

/// A topic with its partitions and per-topic config overrides.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: [u8; 16],
    pub partitions: BTreeMap<i32, PartitionImage>,
    pub configs: BTreeMap<String, String>,
}

/// The cluster metadata as of `last_applied_index`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MetadataImage {
    /// 22-character URL-safe base64 id of the cluster; empty until `InitializeCluster` applied.
    pub cluster_id: String,
    /// Index of the last log entry applied (including Raft's own blank and membership entries).
    pub last_applied_index: u64,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<String, TopicImage>,
    #[serde(with = "map_as_pairs")]
    pub topic_names_by_id: BTreeMap<[u8; 16], String>,
    /// Dynamic broker configs; `None` is the cluster-wide default.
    #[serde(with = "map_as_pairs")]
    pub broker_configs: BTreeMap<Option<i32>, BTreeMap<String, String>>,
    /// First producer id of the next block handed out.
    pub next_producer_id: i64,
    /// SCRAM credentials by user, then mechanism name (`crate::credentials`).
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<String, crate::credentials::ScramCredential>>,
    /// ACL bindings (`crate::acls`).
    #[serde(default)]
    pub acls: std::collections::BTreeSet<crate::acls::AclBinding>,
}

/// Serializes a map whose keys are not strings (e.g. `[u8; 16]`, `Option<i32>`) as a sequence
/// of `(key, value)` pairs, so that formats with string-only map keys (JSON) can carry it.
mod map_as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub(super) fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?.into_iter().collect())
    }
}

fn reject(code: RejectCode, message: impl Into<String>) -> CommandOutcome {
    CommandOutcome::Rejected(Rejection { code, message: message.into() })
}

fn applied(log_index: u64) -> AppliedInfo {
    AppliedInfo { log_index, ..AppliedInfo::default() }
}

impl MetadataImage {
    /// The topic with this name.
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    /// The topic with this id.
    pub fn topic_by_id(&self, topic_id: &[u8; 16]) -> Option<&TopicImage> {
        self.topic_names_by_id.get(topic_id).and_then(|name| self.topics.get(name))
    }

    /// One partition of the topic with this name.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        self.topics.get(topic).and_then(|t| t.partitions.get(&partition))
    }

    /// One partition of the topic with this id.
    pub fn partition_by_id(&self, topic_id: &[u8; 16], partition: i32) -> Option<&PartitionImage> {
        self.topic_by_id(topic_id).and_then(|t| t.partitions.get(&partition))
    }

    /// A registered broker.
    pub fn broker(&self, node_id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&node_id)
    }

    /// Registered brokers that are not fenced.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// A per-topic config override (no fallback to broker defaults).
    pub fn topic_config(&self, topic: &str, key: &str) -> Option<&str> {
        self.topics.get(topic).and_then(|t| t.configs.get(key)).map(String::as_str)
    }

    /// A dynamic broker config of `node_id`, falling back to the cluster-wide default.
    pub fn broker_config(&self, node_id: i32, key: &str) -> Option<&str> {
        self.broker_configs
            .get(&Some(node_id))
            .and_then(|c| c.get(key))
            .or_else(|| self.broker_configs.get(&None).and_then(|c| c.get(key)))
            .map(String::as_str)
    }

    /// Records that the entry at `index` (a Raft blank or membership entry) was applied.
    pub(crate) fn note_applied(&mut self, index: u64) {
        self.last_applied_index = index;
    }

    /// Applies `cmd`, carried by the log entry at `index`. Deterministic; re-checks every
    /// precondition. A rejected command changes nothing except `last_applied_index`.
    ///
    /// Checks its post-condition on the partitions it may touch (see `image_invariants.rs`).
    pub fn apply(&mut self, index: u64, cmd: &MetadataCommand) -> CommandOutcome {
        let before = crate::image_invariants::EpochsBefore::capture(self, cmd);
        let outcome = self.apply_command(index, cmd);
        before.check(self);
        outcome
    }

    fn apply_command(&mut self, index: u64, cmd: &MetadataCommand) -> CommandOutcome {
        self.last_applied_index = index;
        match cmd {
            MetadataCommand::InitializeCluster { cluster_id } => self.apply_initialize_cluster(index, cluster_id),
            MetadataCommand::RegisterBroker { node_id, incarnation_id, endpoints, rack } => {
                self.apply_register_broker(index, *node_id, *incarnation_id, endpoints, rack)
            }
            MetadataCommand::CreateTopic { name, topic_id, partitions, configs } => {
                self.apply_create_topic(index, name, *topic_id, partitions, configs)
            }
            MetadataCommand::DeleteTopic { topic_id } => self.apply_delete_topic(index, topic_id),
            MetadataCommand::CreatePartitions { topic_id, expected_count, new_partitions } => {
                self.apply_create_partitions(index, topic_id, *expected_count, new_partitions)
            }
            MetadataCommand::AlterConfigs { resource, set, delete } => self.apply_alter_configs(index, resource, set, delete),
            MetadataCommand::AllocateProducerIds { node_id, count } => self.apply_allocate_producer_ids(index, *node_id, *count),
            MetadataCommand::ChangePartition { topic_id, partition, expected_partition_epoch, leader, isr } => {
                self.apply_change_partition(index, topic_id, *partition, *expected_partition_epoch, *leader, isr.as_deref())
            }
            MetadataCommand::FenceBroker { node_id, epoch } => self.apply_set_fenced(index, *node_id, *epoch, true),
            MetadataCommand::UnfenceBroker { node_id, epoch } => self.apply_set_fenced(index, *node_id, *epoch, false),
            MetadataCommand::ReassignPartition { topic_id, partition, expected_partition_epoch, target } => {
                self.apply_reassign_partition(index, topic_id, *partition, *expected_partition_epoch, target.as_deref())
            }
            MetadataCommand::CompleteReassignment { topic_id, partition, expected_partition_epoch } => {
                self.apply_complete_reassignment(index, topic_id, *partition, *expected_partition_epoch)
            }
            MetadataCommand::AlterScramCredentials { upsertions, deletions } => {
                self.apply_alter_scram_credentials(index, upsertions, deletions)
            }
            MetadataCommand::CreateAcls { acls } => self.apply_create_acls(index, acls),
            MetadataCommand::DeleteAcls { acls } => self.apply_delete_acls(index, acls),
        }
    }

    /// Whether `node_id` is registered and unfenced.
    fn is_live(&self, node_id: i32) -> bool {
        self.brokers.get(&node_id).is_some_and(|b| !b.fenced)
    }

    /// Whether the reassignment of `p` (a partition of this image) can complete now; the
    /// active controller proposes `CompleteReassignment` for such partitions.
    pub fn reassignment_completable(&self, p: &PartitionImage) -> bool {
        reassignment::completion(p, |r| self.is_live(r)).is_some()
    }

    /// The partition `topic_id`-`partition` at `expected_partition_epoch`, or the rejection.
    fn partition_at_epoch(
        &mut self,
        topic_id: &[u8; 16],
        partition: i32,
        expected_partition_epoch: i32,
    ) -> Result<&mut PartitionImage, CommandOutcome> {
        let Some(name) = self.topic_names_by_id.get(topic_id) else {
            return Err(reject(RejectCode::UnknownTopic, "no topic with this id"));
        };
        let Some(p) = self.topics.get_mut(name).and_then(|t| t.partitions.get_mut(&partition)) else {
            return Err(reject(RejectCode::UnknownPartition, format!("topic {name} has no partition {partition}")));
        };
        if p.partition_epoch != expected_partition_epoch {
            return Err(reject(
                RejectCode::StaleEpoch,
                format!("{name}-{partition} is at partition epoch {}, command expected {expected_partition_epoch}", p.partition_epoch),
            ));
        }
        Ok(p)
    }

    fn apply_reassign_partition(
        &mut self,
        index: u64,
        topic_id: &[u8; 16],
        partition: i32,
        expected_partition_epoch: i32,
        target: Option<&[i32]>,
    ) -> CommandOutcome {
        let registered: BTreeSet<i32> = self.brokers.keys().copied().collect();
        let live: BTreeSet<i32> = self.brokers.values().filter(|b| !b.fenced).map(|b| b.node_id).collect();
        let p = match self.partition_at_epoch(topic_id, partition, expected_partition_epoch) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        if let Some(target) = target {
            if let Err(message) = reassignment::validate_target(target, |r| registered.contains(&r)) {
                return reject(RejectCode::InvalidReplicaAssignment, message);
            }
        }
        let mut next = p.clone();
        match target {
            Some(target) => {
                let started = reassignment::start(p, target);
                next.replicas = started.replicas;
                next.adding_replicas = started.adding;
                next.removing_replicas = started.removing;
                // Nothing to wait for (a reorder, a shrink, or a replaced reassignment whose
                // new replicas are in sync already): it completes in the same step, as in Kafka.
                if let Some(done) = reassignment::completion(&next, |r| live.contains(&r)) {
                    finish(&mut next, done);
                }
            }
            None => {
                if !reassignment::in_progress(p) {
                    return reject(RejectCode::NoReassignmentInProgress, "No partition reassignment is in progress.");
                }
                let Some(reverted) = reassignment::revert(p, |r| live.contains(&r)) else {
                    return reject(
                        RejectCode::InvalidReplicaAssignment,
                        format!("Unable to revert partition assignment for partition {partition} because it would require an unclean leader election."),
                    );
                };
                finish(&mut next, reverted);
            }
        }
        commit_partition_change(index, p, next)
    }

    fn apply_complete_reassignment(
        &mut self,
        index: u64,
        topic_id: &[u8; 16],
        partition: i32,
        expected_partition_epoch: i32,
    ) -> CommandOutcome {
        let live: BTreeSet<i32> = self.brokers.values().filter(|b| !b.fenced).map(|b| b.node_id).collect();
        let p = match self.partition_at_epoch(topic_id, partition, expected_partition_epoch) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        if !reassignment::in_progress(p) {
            return reject(RejectCode::NoReassignmentInProgress, "No partition reassignment is in progress.");
        }
        let Some(done) = reassignment::completion(p, |r| live.contains(&r)) else {
            return reject(RejectCode::InvalidRequest, format!("the reassignment of partition {partition} cannot complete yet"));
        };
        let mut next = p.clone();
        finish(&mut next, done);
        commit_partition_change(index, p, next)
    }

    fn apply_initialize_cluster(&mut self, index: u64, cluster_id: &str) -> CommandOutcome {
        if cluster_id.is_empty() {
            return reject(RejectCode::InvalidRequest, "empty cluster id");
        }
        if self.cluster_id.is_empty() {
            self.cluster_id = cluster_id.to_string();
        } else if self.cluster_id != cluster_id {
            return reject(
                RejectCode::ClusterIdMismatch,
                format!("cluster id is already {}, not {cluster_id}", self.cluster_id),
            );
        }
        CommandOutcome::Applied(applied(index))
    }

    fn apply_register_broker(
        &mut self,
        index: u64,
        node_id: i32,
        incarnation_id: [u8; 16],
        endpoints: &[BrokerEndpoint],
        rack: &Option<String>,
    ) -> CommandOutcome {
        if node_id < 0 {
            return reject(RejectCode::InvalidRequest, format!("invalid node id {node_id}"));
        }
        if let Some(existing) = self.brokers.get(&node_id) {
            if existing.incarnation_id == incarnation_id {
                // A retried registration: keep the epoch it got the first time.
                return CommandOutcome::Applied(AppliedInfo { broker_epoch: Some(existing.epoch), ..applied(index) });
            }
        }
        let Ok(epoch) = i64::try_from(index) else {
            return reject(RejectCode::InvalidRequest, "log index does not fit a broker epoch");
        };
        // A new incarnation replaces the old one, which is gone: as when it is fenced, its
        // replicas leave the ISRs and its leaderships move. The restarted broker rejoins the
        // ISRs by catching up from the new leaders.
        self.remove_from_isrs(node_id);
        self.brokers.insert(
            node_id,
            BrokerRegistration {
                node_id,
                epoch,
                incarnation_id,
                endpoints: endpoints.to_vec(),
                rack: rack.clone(),
                fenced: true,
            },
        );
        CommandOutcome::Applied(AppliedInfo { broker_epoch: Some(epoch), ..applied(index) })
    }

    fn apply_set_fenced(&mut self, index: u64, node_id: i32, epoch: i64, fenced: bool) -> CommandOutcome {
        let Some(broker) = self.brokers.get_mut(&node_id) else {
            return reject(RejectCode::UnknownBroker, format!("broker {node_id} is not registered"));
        };
        if broker.epoch != epoch {
            return reject(
                RejectCode::StaleEpoch,
                format!("broker {node_id} has epoch {}, command carries {epoch}", broker.epoch),
            );
        }
        broker.fenced = fenced;
        if fenced {
            self.remove_from_isrs(node_id);
        } else {
            self.lead_leaderless(node_id);
        }
        CommandOutcome::Applied(AppliedInfo { broker_epoch: Some(epoch), ..applied(index) })
    }

    /// A broker just unfenced leads every leaderless partition whose ISR names it first among
    /// live brokers (it holds everything committed there), in the same step, so a restarted
    /// broker's partitions are back the moment it is, without waiting for the controller.
    fn lead_leaderless(&mut self, node_id: i32) {
        let live: BTreeSet<i32> = self.brokers.values().filter(|b| !b.fenced).map(|b| b.node_id).collect();
        for topic in self.topics.values_mut() {
            for p in topic.partitions.values_mut() {
                if p.leader != NO_LEADER || p.isr.iter().copied().find(|r| live.contains(r)) != Some(node_id) {
                    continue;
                }
                p.leader = node_id;
                p.leader_epoch = p.leader_epoch.saturating_add(1);
                p.partition_epoch = p.partition_epoch.saturating_add(1);
            }
        }
    }

    /// Takes `node_id` out of every ISR and every leadership, as Kafka's controller does when a
    /// broker is fenced: a partition it led gets the first other ISR member that is registered
    /// and unfenced as leader (a new leader epoch), or none. The last member of an ISR stays in
    /// it (leader -1 when it led): it may hold acknowledged records nobody else has, so only it
    /// may lead again (no unclean election here). Deterministic: depends on the image only.
    fn remove_from_isrs(&mut self, node_id: i32) {
        let live: BTreeSet<i32> = self.brokers.values().filter(|b| !b.fenced && b.node_id != node_id).map(|b| b.node_id).collect();
        for topic in self.topics.values_mut() {
            for p in topic.partitions.values_mut() {
                if !p.isr.contains(&node_id) && p.leader != node_id {
                    continue;
                }
                let mut isr = p.isr.clone();
                if isr.len() > 1 {
                    isr.retain(|r| *r != node_id);
                }
                let leader = if p.leader == node_id || p.leader == NO_LEADER {
                    isr.iter().copied().find(|r| live.contains(r)).unwrap_or(NO_LEADER)
                } else {
                    p.leader
                };
                if leader == p.leader && isr == p.isr {
                    continue;
                }
                if leader != p.leader {
                    p.leader = leader;
                    p.leader_epoch = p.leader_epoch.saturating_add(1);
                }
                p.isr = isr;
                p.partition_epoch = p.partition_epoch.saturating_add(1);
            }
        }
    }

    fn apply_create_topic(
        &mut self,
        index: u64,
        name: &str,
        topic_id: [u8; 16],
        partitions: &[NewPartition],
        configs: &BTreeMap<String, String>,
    ) -> CommandOutcome {
        if let Err(message) = validate_topic_name(name) {
            return reject(RejectCode::InvalidTopic, message);
        }
        if topic_id == [0u8; 16] {
            return reject(RejectCode::InvalidTopic, "the zero topic id is reserved");
        }
        if self.topics.contains_key(name) {
            return reject(RejectCode::TopicAlreadyExists, format!("topic {name} already exists"));
        }
        if let Some(other) = self.topic_names_by_id.get(&topic_id) {
            return reject(RejectCode::TopicAlreadyExists, format!("topic id is already used by topic {other}"));
        }
        if partitions.is_empty() {
            return reject(RejectCode::InvalidPartitions, "a topic needs at least one partition");
        }
        if let Err(outcome) = validate_new_partitions(0, partitions) {
            return outcome;
        }
        let partitions = partitions.iter().map(|p| (p.partition, new_partition_image(p))).collect();
        self.topics.insert(
            name.to_string(),
            TopicImage { name: name.to_string(), topic_id, partitions, configs: configs.clone() },
        );
        self.topic_names_by_id.insert(topic_id, name.to_string());
        CommandOutcome::Applied(applied(index))
    }

    fn apply_delete_topic(&mut self, index: u64, topic_id: &[u8; 16]) -> CommandOutcome {
        let Some(name) = self.topic_names_by_id.remove(topic_id) else {
            return reject(RejectCode::UnknownTopic, "no topic with this id");
        };
        self.topics.remove(&name);
        CommandOutcome::Applied(applied(index))
    }

    fn apply_create_partitions(
        &mut self,
        index: u64,
        topic_id: &[u8; 16],
        expected_count: i32,
        new_partitions: &[NewPartition],
    ) -> CommandOutcome {
        let Some(name) = self.topic_names_by_id.get(topic_id) else {
            return reject(RejectCode::UnknownTopic, "no topic with this id");
        };
        let Some(topic) = self.topics.get_mut(name) else {
            return reject(RejectCode::UnknownTopic, "no topic with this id");
        };
        let current = topic.partitions.len();
        if usize::try_from(expected_count).ok() != Some(current) {
            return reject(
                RejectCode::InvalidPartitions,
                format!("topic {name} has {current} partitions, command expected {expected_count}"),
            );
        }
        if new_partitions.is_empty() {
            return reject(RejectCode::InvalidPartitions, "no new partitions");
        }
        if let Err(outcome) = validate_new_partitions(expected_count, new_partitions) {
            return outcome;
        }
        for p in new_partitions {
            topic.partitions.insert(p.partition, new_partition_image(p));
        }
        CommandOutcome::Applied(applied(index))
    }

    fn apply_alter_configs(
        &mut self,
        index: u64,
        resource: &ConfigResource,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> CommandOutcome {
        if let Some(key) = delete.iter().find(|k| set.contains_key(*k)) {
            return reject(RejectCode::InvalidConfig, format!("config {key} is both set and deleted"));
        }
        if let Some(key) = set.keys().chain(delete.iter()).find(|k| k.is_empty()) {
            return reject(RejectCode::InvalidConfig, format!("invalid config name {key:?}"));
        }
        let configs = match resource {
            ConfigResource::Topic(name) => match self.topics.get_mut(name) {
                Some(topic) => &mut topic.configs,
                None => return reject(RejectCode::UnknownTopic, format!("topic {name} does not exist")),
            },
            ConfigResource::Broker(node) => {
                if matches!(node, Some(id) if *id < 0) {
                    return reject(RejectCode::InvalidRequest, "invalid broker id");
                }
                self.broker_configs.entry(*node).or_default()
            }
        };
        for key in delete {
            configs.remove(key);
        }
        for (key, value) in set {
            configs.insert(key.clone(), value.clone());
        }
        if let ConfigResource::Broker(node) = resource {
            if self.broker_configs.get(node).is_some_and(BTreeMap::is_empty) {
                self.broker_configs.remove(node);
            }
        }
        CommandOutcome::Applied(applied(index))
    }

    fn apply_allocate_producer_ids(&mut self, index: u64, node_id: i32, count: i64) -> CommandOutcome {
        if count <= 0 {
            return reject(RejectCode::InvalidRequest, format!("invalid producer id block size {count}"));
        }
        if node_id < 0 {
            return reject(RejectCode::InvalidRequest, format!("invalid node id {node_id}"));
        }
        let first = self.next_producer_id;
        let Some(next) = first.checked_add(count) else {
            return reject(RejectCode::InvalidRequest, "producer ids exhausted");
        };
        self.next_producer_id = next;
        CommandOutcome::Applied(AppliedInfo { first_producer_id: Some(first), ..applied(index) })
    }

    fn apply_change_partition(
        &mut self,
        index: u64,
        topic_id: &[u8; 16],
        partition: i32,
        expected_partition_epoch: i32,
        leader: Option<i32>,
        isr: Option<&[i32]>,
    ) -> CommandOutcome {
        let Some(name) = self.topic_names_by_id.get(topic_id) else {
            return reject(RejectCode::UnknownTopic, "no topic with this id");
        };
        let Some(p) = self.topics.get_mut(name).and_then(|t| t.partitions.get_mut(&partition)) else {
            return reject(RejectCode::UnknownPartition, format!("topic {name} has no partition {partition}"));
        };
        if p.partition_epoch != expected_partition_epoch {
            return reject(
                RejectCode::StaleEpoch,
                format!(
                    "{name}-{partition} is at partition epoch {}, command expected {expected_partition_epoch}",
                    p.partition_epoch
                ),
            );
        }
        let new_isr: Vec<i32> = isr.map(<[i32]>::to_vec).unwrap_or_else(|| p.isr.clone());
        let new_leader = leader.unwrap_or(p.leader);
        if has_duplicates(&new_isr) || new_isr.iter().any(|r| !p.replicas.contains(r)) {
            return reject(RejectCode::InvalidReplicaAssignment, format!("isr {new_isr:?} is not a subset of replicas {:?}", p.replicas));
        }
        if new_leader != NO_LEADER && !new_isr.contains(&new_leader) {
            return reject(RejectCode::InvalidReplicaAssignment, format!("leader {new_leader} is not in isr {new_isr:?}"));
        }
        // Only a live broker may enter an ISR (Kafka's controller answers INELIGIBLE_REPLICA):
        // a leader's view of a follower can be stale, e.g. one that stopped right after it
        // caught up and was fenced since.
        if let Some(r) = new_isr.iter().find(|r| !p.isr.contains(r) && !self.brokers.get(r).is_some_and(|b| !b.fenced)) {
            return reject(RejectCode::InvalidReplicaAssignment, format!("broker {r} is fenced or not registered and cannot join the isr"));
        }
        let Some(partition_epoch) = p.partition_epoch.checked_add(1) else {
            return reject(RejectCode::InvalidRequest, "partition epoch overflow");
        };
        if new_leader != p.leader {
            let Some(leader_epoch) = p.leader_epoch.checked_add(1) else {
                return reject(RejectCode::InvalidRequest, "leader epoch overflow");
            };
            p.leader_epoch = leader_epoch;
            p.leader = new_leader;
        }
        p.isr = new_isr;
        p.partition_epoch = partition_epoch;
        CommandOutcome::Applied(AppliedInfo {
            leader_epoch: Some(p.leader_epoch),
            partition_epoch: Some(p.partition_epoch),
            ..applied(index)
        })
    }
}

fn new_partition_image(p: &NewPartition) -> PartitionImage {
    PartitionImage {
        partition: p.partition,
        replicas: p.replicas.clone(),
        isr: p.replicas.clone(),
        leader: p.replicas[0],
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

/// Ends a reassignment in `next`: the replicas, ISR and leader it settles on, nothing pending.
fn finish(next: &mut PartitionImage, done: reassignment::Finished) {
    next.replicas = done.replicas;
    next.isr = done.isr;
    next.leader = done.leader;
    next.adding_replicas.clear();
    next.removing_replicas.clear();
}

/// Replaces `current` with `next` unless they are equal (then the command applies without a
/// change): the partition epoch goes up by one, the leader epoch too when the leader changed.
fn commit_partition_change(index: u64, current: &mut PartitionImage, mut next: PartitionImage) -> CommandOutcome {
    if next == *current {
        return CommandOutcome::Applied(AppliedInfo {
            leader_epoch: Some(current.leader_epoch),
            partition_epoch: Some(current.partition_epoch),
            ..applied(index)
        });
    }
    let Some(partition_epoch) = current.partition_epoch.checked_add(1) else {
        return reject(RejectCode::InvalidRequest, "partition epoch overflow");
    };
    next.partition_epoch = partition_epoch;
    if next.leader != current.leader {
        let Some(leader_epoch) = current.leader_epoch.checked_add(1) else {
            return reject(RejectCode::InvalidRequest, "leader epoch overflow");
        };
        next.leader_epoch = leader_epoch;
    }
    *current = next;
    CommandOutcome::Applied(AppliedInfo {
        leader_epoch: Some(current.leader_epoch),
        partition_epoch: Some(current.partition_epoch),
        ..applied(index)
    })
}

fn has_duplicates(ids: &[i32]) -> bool {
    let set: BTreeSet<i32> = ids.iter().copied().collect();
    set.len() != ids.len()
}

/// New partitions must be numbered `first, first+1, ...` in order, each with a non-empty list of
/// distinct, non-negative replicas.
fn validate_new_partitions(first: i32, partitions: &[NewPartition]) -> Result<(), CommandOutcome> {
    for (i, p) in partitions.iter().enumerate() {
        let expected = i32::try_from(i).ok().and_then(|i| first.checked_add(i));
        if Some(p.partition) != expected {
            return Err(reject(
                RejectCode::InvalidPartitions,
                format!("partition ids must be consecutive from {first}; found {} at position {i}", p.partition),
            ));
        }
        if p.replicas.is_empty() || has_duplicates(&p.replicas) || p.replicas.iter().any(|r| *r < 0) {
            return Err(reject(
                RejectCode::InvalidReplicaAssignment,
                format!("partition {}: invalid replicas {:?}", p.partition, p.replicas),
            ));
        }
    }
    Ok(())
}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("invalid topic name {name:?}"));
    }
    if name.len() > 249 {
        return Err(format!("topic name is {} characters long, the limit is 249", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("topic name {name:?} contains the invalid character {c:?}"));
    }
    Ok(())
}

/// A new random cluster id: 16 random bytes as 22 characters of unpadded URL-safe base64, the
/// form Kafka's `Uuid.randomUuid().toString()` uses.
pub fn generate_cluster_id() -> String {
    let bytes: [u8; 16] = rand::random();
    base64_url_no_pad(&bytes)
}

fn base64_url_no_pad(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let sextet = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[sextet as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn np(partition: i32, replicas: &[i32]) -> NewPartition {
        NewPartition { partition, replicas: replicas.to_vec() }
    }

    fn create(name: &str, id: u8, n: i32) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            name: name.into(),
            topic_id: [id; 16],
            partitions: (0..n).map(|p| np(p, &[1, 2])).collect(),
            configs: BTreeMap::new(),
        }
    }

    fn must_apply(img: &mut MetadataImage, index: u64, cmd: MetadataCommand) -> AppliedInfo {
        match img.apply(index, &cmd) {
            CommandOutcome::Applied(info) => info,
            CommandOutcome::Rejected(r) => panic!("{} rejected: {r}", cmd.name()),
        }
    }

    fn must_reject(img: &mut MetadataImage, index: u64, cmd: MetadataCommand) -> RejectCode {
        let before = img.clone();
        match img.apply(index, &cmd) {
            CommandOutcome::Applied(_) => panic!("{} applied", cmd.name()),
            CommandOutcome::Rejected(r) => {
                let mut after = img.clone();
                after.last_applied_index = before.last_applied_index;
                assert_eq!(before, after, "a rejected command changed the image");
                r.code
            }
        }
    }

    #[test]
    fn image_round_trips_through_json() {
        let mut img = MetadataImage::default();
        must_apply(&mut img, 1, create("a", 1, 2));
        let alter = MetadataCommand::AlterConfigs {
            resource: ConfigResource::Broker(None),
            set: BTreeMap::from([("k".to_string(), "v".to_string())]),
            delete: vec![],
        };
        must_apply(&mut img, 2, alter);
        let json = serde_json::to_string(&img).expect("serialize");
        let back: MetadataImage = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, img);
    }

    #[test]
    fn cluster_id_is_22_url_safe_chars() {
        let id = generate_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(base64_url_no_pad(b"\xfb\xff"), "-_8");
        assert_eq!(base64_url_no_pad(b"Man"), "TWFu");
    }

    #[test]
    fn create_topic_preconditions() {
        let mut img = MetadataImage::default();
        must_apply(&mut img, 1, create("a", 1, 2));
        let p = img.partition("a", 1).expect("partition");
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch), (1, vec![1, 2], 0, 0));
        assert_eq!(must_reject(&mut img, 2, create("a", 2, 1)), RejectCode::TopicAlreadyExists);
        assert_eq!(must_reject(&mut img, 3, create("b", 1, 1)), RejectCode::TopicAlreadyExists);
        assert_eq!(must_reject(&mut img, 4, create("b", 2, 0)), RejectCode::InvalidPartitions);
        assert_eq!(must_reject(&mut img, 5, create("b/c", 2, 1)), RejectCode::InvalidTopic);
        let bad = MetadataCommand::CreateTopic {
            name: "b".into(),
            topic_id: [2; 16],
            partitions: vec![np(0, &[1]), np(2, &[1])],
            configs: BTreeMap::new(),
        };
        assert_eq!(must_reject(&mut img, 6, bad), RejectCode::InvalidPartitions);
        assert_eq!(img.last_applied_index, 6);
        assert_eq!(img.topic_by_id(&[1; 16]).map(|t| t.name.as_str()), Some("a"));
    }

    #[test]
    fn create_partitions_and_delete() {
        let mut img = MetadataImage::default();
        must_apply(&mut img, 1, create("a", 1, 1));
        let add = |expected_count| MetadataCommand::CreatePartitions {
            topic_id: [1; 16],
            expected_count,
            new_partitions: vec![np(1, &[2]), np(2, &[3, 1])],
        };
        assert_eq!(must_reject(&mut img, 2, add(2)), RejectCode::InvalidPartitions);
        must_apply(&mut img, 3, add(1));
        assert_eq!(img.topic("a").map(|t| t.partitions.len()), Some(3));
        // The retry is stale now.
        assert_eq!(must_reject(&mut img, 4, add(1)), RejectCode::InvalidPartitions);
        must_apply(&mut img, 5, MetadataCommand::DeleteTopic { topic_id: [1; 16] });
        assert!(img.topics.is_empty() && img.topic_names_by_id.is_empty());
        assert_eq!(must_reject(&mut img, 6, MetadataCommand::DeleteTopic { topic_id: [1; 16] }), RejectCode::UnknownTopic);
    }

    #[test]
    fn fencing_removes_the_broker_from_isrs_but_never_empties_one() {
        let mut img = MetadataImage::default();
        for (i, id) in [1, 2, 3].iter().enumerate() {
            let reg = MetadataCommand::RegisterBroker { node_id: *id, incarnation_id: [*id as u8; 16], endpoints: vec![], rack: None };
            let epoch = must_apply(&mut img, 1 + 2 * i as u64, reg).broker_epoch.unwrap_or_default();
            must_apply(&mut img, 2 + 2 * i as u64, MetadataCommand::UnfenceBroker { node_id: *id, epoch });
        }
        let create = MetadataCommand::CreateTopic {
            name: "t".into(),
            topic_id: [7; 16],
            partitions: vec![np(0, &[1, 2, 3]), np(1, &[2, 3, 1]), np(2, &[1])],
            configs: BTreeMap::new(),
        };
        must_apply(&mut img, 10, create);
        let epoch1 = img.broker(1).map(|b| b.epoch).unwrap_or_default();
        must_apply(&mut img, 11, MetadataCommand::FenceBroker { node_id: 1, epoch: epoch1 });
        let p0 = img.partition("t", 0).cloned().expect("p0");
        assert_eq!((p0.leader, p0.isr.clone(), p0.leader_epoch, p0.partition_epoch), (2, vec![2, 3], 1, 1));
        let p1 = img.partition("t", 1).cloned().expect("p1");
        assert_eq!((p1.leader, p1.isr.clone(), p1.leader_epoch, p1.partition_epoch), (2, vec![2, 3], 0, 1));
        let p2 = img.partition("t", 2).cloned().expect("p2");
        assert_eq!((p2.leader, p2.isr.clone()), (NO_LEADER, vec![1]), "the last ISR member stays");
        // A restart (new incarnation) of broker 2 does the same for its replicas.
        let reg = MetadataCommand::RegisterBroker { node_id: 2, incarnation_id: [99; 16], endpoints: vec![], rack: None };
        must_apply(&mut img, 12, reg);
        let p0 = img.partition("t", 0).cloned().expect("p0");
        assert_eq!((p0.leader, p0.isr.clone(), p0.leader_epoch), (3, vec![3], 2));
        // Broker 1 comes back: it leads the partition only it has, at once.
        must_apply(&mut img, 13, MetadataCommand::UnfenceBroker { node_id: 1, epoch: epoch1 });
        let p2 = img.partition("t", 2).cloned().expect("p2");
        assert_eq!((p2.leader, p2.isr.clone(), p2.leader_epoch), (1, vec![1], 2), "leaderless at epoch 1, led again at 2");
        assert_eq!(img.partition("t", 0).map(|p| p.leader), Some(3), "a led partition keeps its leader");
    }

    /// Brokers 1..=n registered and unfenced.
    fn with_brokers(n: i32) -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in 1..=n {
            let reg = MetadataCommand::RegisterBroker { node_id: id, incarnation_id: [id as u8; 16], endpoints: vec![], rack: None };
            let index = img.last_applied_index + 1;
            let epoch = must_apply(&mut img, index, reg).broker_epoch.unwrap_or_default();
            must_apply(&mut img, index + 1, MetadataCommand::UnfenceBroker { node_id: id, epoch });
        }
        img
    }

    /// `must_apply` / `must_reject` at the next log index.
    fn ap(img: &mut MetadataImage, cmd: MetadataCommand) -> AppliedInfo {
        let index = img.last_applied_index + 1;
        must_apply(img, index, cmd)
    }

    fn rj(img: &mut MetadataImage, cmd: MetadataCommand) -> RejectCode {
        let index = img.last_applied_index + 1;
        must_reject(img, index, cmd)
    }

    #[test]
    fn reassignment_moves_a_partition_and_its_leadership() {
        let mut img = with_brokers(4);
        let create = MetadataCommand::CreateTopic {
            name: "t".into(),
            topic_id: [5; 16],
            partitions: vec![np(0, &[1, 2])],
            configs: BTreeMap::new(),
        };
        ap(&mut img, create);
        let state = |img: &MetadataImage| {
            let p = img.partition("t", 0).cloned().expect("p0");
            (p.replicas, p.isr, p.leader, p.adding_replicas, p.removing_replicas, p.leader_epoch, p.partition_epoch)
        };
        let reassign = |epoch, target: Option<Vec<i32>>| MetadataCommand::ReassignPartition {
            topic_id: [5; 16],
            partition: 0,
            expected_partition_epoch: epoch,
            target,
        };
        let complete = |epoch| MetadataCommand::CompleteReassignment { topic_id: [5; 16], partition: 0, expected_partition_epoch: epoch };
        let change_isr = |epoch, isr: Vec<i32>| MetadataCommand::ChangePartition {
            topic_id: [5; 16],
            partition: 0,
            expected_partition_epoch: epoch,
            leader: None,
            isr: Some(isr),
        };

        assert_eq!(rj(&mut img, reassign(0, None)), RejectCode::NoReassignmentInProgress);
        assert_eq!(rj(&mut img, reassign(0, Some(vec![]))), RejectCode::InvalidReplicaAssignment);
        assert_eq!(rj(&mut img, reassign(0, Some(vec![3, 3]))), RejectCode::InvalidReplicaAssignment);
        assert_eq!(rj(&mut img, reassign(0, Some(vec![3, 9]))), RejectCode::InvalidReplicaAssignment);
        assert_eq!(rj(&mut img, reassign(7, Some(vec![3, 4]))), RejectCode::StaleEpoch);
        let wrong_partition = MetadataCommand::ReassignPartition { topic_id: [5; 16], partition: 3, expected_partition_epoch: 0, target: None };
        assert_eq!(rj(&mut img, wrong_partition), RejectCode::UnknownPartition);

        // Move [1, 2] to [3, 4]: all four host it until 3 and 4 are in sync.
        ap(&mut img, reassign(0, Some(vec![3, 4])));
        assert_eq!(state(&img), (vec![3, 4, 1, 2], vec![1, 2], 1, vec![3, 4], vec![1, 2], 0, 1));
        assert!(!img.reassignment_completable(img.partition("t", 0).expect("p0")));
        assert_eq!(rj(&mut img, complete(1)), RejectCode::InvalidRequest);
        ap(&mut img, change_isr(1, vec![1, 2, 3]));
        assert!(!img.reassignment_completable(img.partition("t", 0).expect("p0")), "4 is not in sync");
        ap(&mut img, change_isr(2, vec![1, 2, 3, 4]));
        assert!(img.reassignment_completable(img.partition("t", 0).expect("p0")));
        assert_eq!(rj(&mut img, complete(2)), RejectCode::StaleEpoch);
        ap(&mut img, complete(3));
        assert_eq!(state(&img), (vec![3, 4], vec![3, 4], 3, vec![], vec![], 1, 4), "leader 1 was removed: 3 leads in epoch 1");
        assert_eq!(rj(&mut img, complete(4)), RejectCode::NoReassignmentInProgress);

        // A reorder completes at once and keeps the leader.
        ap(&mut img, reassign(4, Some(vec![4, 3])));
        assert_eq!(state(&img), (vec![4, 3], vec![3, 4], 3, vec![], vec![], 1, 5));
        // The same assignment again changes nothing.
        ap(&mut img, reassign(5, Some(vec![4, 3])));
        assert_eq!(state(&img).6, 5);

        // Grow to [4, 3, 1], then cancel: back to [4, 3].
        ap(&mut img, reassign(5, Some(vec![4, 3, 1])));
        assert_eq!(state(&img), (vec![4, 3, 1], vec![3, 4], 3, vec![1], vec![], 1, 6));
        ap(&mut img, reassign(6, None));
        assert_eq!(state(&img), (vec![4, 3], vec![3, 4], 3, vec![], vec![], 1, 7));

        // A cancel that takes the leader away elects from the remaining ISR.
        ap(&mut img, reassign(7, Some(vec![1, 2])));
        ap(&mut img, change_isr(8, vec![3, 4, 1]));
        let lead_1 = MetadataCommand::ChangePartition { topic_id: [5; 16], partition: 0, expected_partition_epoch: 9, leader: Some(1), isr: None };
        ap(&mut img, lead_1);
        ap(&mut img, reassign(10, None));
        assert_eq!(state(&img), (vec![4, 3], vec![3, 4], 4, vec![], vec![], 3, 11));
        // Only added replicas in sync: no clean way back.
        ap(&mut img, reassign(11, Some(vec![1])));
        ap(&mut img, change_isr(12, vec![4, 3, 1]));
        let lead_1 = MetadataCommand::ChangePartition { topic_id: [5; 16], partition: 0, expected_partition_epoch: 13, leader: Some(1), isr: Some(vec![1]) };
        ap(&mut img, lead_1);
        assert_eq!(rj(&mut img, reassign(14, None)), RejectCode::InvalidReplicaAssignment);
        // ... but it completes (1 is the ISR).
        ap(&mut img, complete(14));
        assert_eq!(state(&img).0, vec![1]);
    }

    #[test]
    fn images_without_reassignment_fields_load() {
        let mut img = MetadataImage::default();
        must_apply(&mut img, 1, create("a", 1, 1));
        let mut json: serde_json::Value = serde_json::to_value(&img).expect("serialize");
        let p = &mut json["topics"]["a"]["partitions"]["0"];
        let map = p.as_object_mut().expect("partition object");
        assert!(map.remove("adding_replicas").is_some() && map.remove("removing_replicas").is_some());
        let back: MetadataImage = serde_json::from_value(json).expect("an older image deserializes");
        assert_eq!(back, img);
    }

    #[test]
    fn change_partition_checks_epochs_and_isr() {
        let mut img = MetadataImage::default();
        must_apply(&mut img, 1, create("a", 1, 1));
        let change = |epoch, leader, isr: Option<Vec<i32>>| MetadataCommand::ChangePartition {
            topic_id: [1; 16],
            partition: 0,
            expected_partition_epoch: epoch,
            leader,
            isr,
        };
        let info = must_apply(&mut img, 2, change(0, None, Some(vec![1])));
        assert_eq!((info.leader_epoch, info.partition_epoch), (Some(0), Some(1)));
        assert_eq!(must_reject(&mut img, 3, change(0, None, Some(vec![1, 2]))), RejectCode::StaleEpoch);
        assert_eq!(must_reject(&mut img, 4, change(1, Some(2), None)), RejectCode::InvalidReplicaAssignment);
        assert_eq!(must_reject(&mut img, 5, change(1, None, Some(vec![1, 7]))), RejectCode::InvalidReplicaAssignment);
        // Broker 2 is not registered: it cannot join the ISR; once registered and unfenced it can.
        assert_eq!(must_reject(&mut img, 6, change(1, Some(2), Some(vec![2]))), RejectCode::InvalidReplicaAssignment);
        let reg = MetadataCommand::RegisterBroker { node_id: 2, incarnation_id: [2; 16], endpoints: vec![], rack: None };
        let epoch = must_apply(&mut img, 7, reg).broker_epoch.unwrap_or_default();
        assert_eq!(must_reject(&mut img, 8, change(1, Some(2), Some(vec![2]))), RejectCode::InvalidReplicaAssignment, "fenced");
        must_apply(&mut img, 9, MetadataCommand::UnfenceBroker { node_id: 2, epoch });
        let info = must_apply(&mut img, 10, change(1, Some(2), Some(vec![2])));
        assert_eq!((info.leader_epoch, info.partition_epoch), (Some(1), Some(2)));
        let info = must_apply(&mut img, 11, change(2, Some(NO_LEADER), Some(vec![])));
        assert_eq!((info.leader_epoch, info.partition_epoch), (Some(2), Some(3)));
    }

    #[test]
    fn brokers_configs_and_producer_ids() {
        let mut img = MetadataImage::default();
        let reg = MetadataCommand::RegisterBroker { node_id: 1, incarnation_id: [9; 16], endpoints: vec![], rack: None };
        assert_eq!(must_apply(&mut img, 10, reg.clone()).broker_epoch, Some(10));
        assert_eq!(must_apply(&mut img, 11, reg).broker_epoch, Some(10), "a retried registration keeps its epoch");
        assert!(img.broker(1).is_some_and(|b| b.fenced));
        assert_eq!(must_reject(&mut img, 12, MetadataCommand::UnfenceBroker { node_id: 1, epoch: 9 }), RejectCode::StaleEpoch);
        must_apply(&mut img, 13, MetadataCommand::UnfenceBroker { node_id: 1, epoch: 10 });
        assert_eq!(img.unfenced_brokers().count(), 1);

        let alter = |node, set: &[(&str, &str)], delete: &[&str]| MetadataCommand::AlterConfigs {
            resource: ConfigResource::Broker(node),
            set: set.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            delete: delete.iter().map(|k| k.to_string()).collect(),
        };
        must_apply(&mut img, 14, alter(None, &[("log.retention.ms", "1000")], &[]));
        assert_eq!(img.broker_config(1, "log.retention.ms"), Some("1000"));
        must_apply(&mut img, 15, alter(Some(1), &[("log.retention.ms", "5")], &[]));
        assert_eq!(img.broker_config(1, "log.retention.ms"), Some("5"));
        assert_eq!(must_reject(&mut img, 16, alter(None, &[("x", "1")], &["x"])), RejectCode::InvalidConfig);
        must_apply(&mut img, 17, alter(Some(1), &[], &["log.retention.ms"]));
        assert!(!img.broker_configs.contains_key(&Some(1)));

        let alloc = |count| MetadataCommand::AllocateProducerIds { node_id: 1, count };
        assert_eq!(must_apply(&mut img, 18, alloc(1000)).first_producer_id, Some(0));
        assert_eq!(must_apply(&mut img, 19, alloc(1000)).first_producer_id, Some(1000));
        assert_eq!(must_reject(&mut img, 20, alloc(0)), RejectCode::InvalidRequest);
        assert_eq!(img.next_producer_id, 2000);
    }
}
