//! Commands of the metadata log and their outcomes.
//!
//! A [`MetadataCommand`] is what a proposer puts into the Raft log. Every command carries its own
//! preconditions (expected counts, expected epochs); [`crate::MetadataImage::apply`] re-checks
//! them when the entry is applied, so a command that was valid when proposed but is stale by the
//! time it commits is *rejected*: it stays in the log as a committed entry and changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A listener endpoint a broker advertises in its registration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrokerEndpoint {
    /// Listener name, e.g. `PLAINTEXT`.
    pub listener: String,
    pub host: String,
    pub port: u16,
    /// Kafka security protocol name, e.g. `PLAINTEXT`, `SASL_SSL`.
    pub security_protocol: String,
}

/// One partition of a new topic or of a `CreatePartitions` command.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewPartition {
    pub partition: i32,
    /// Replica node ids; the first one becomes the initial leader.
    pub replicas: Vec<i32>,
}

/// What an `AlterConfigs` command changes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResource {
    /// Per-topic overrides of the topic named here.
    Topic(String),
    /// Dynamic broker config of one broker, or with `None` the cluster-wide default.
    Broker(Option<i32>),
}

/// A command of the metadata log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum MetadataCommand {
    /// Register (or re-register, with a new incarnation) a broker. The broker epoch is the log
    /// index of the entry. A new registration starts fenced, as in Kafka; the broker is unfenced
    /// with [`MetadataCommand::UnfenceBroker`] once it has caught up. Re-sending the same
    /// registration (same incarnation id) is a no-op that returns the existing epoch.
    RegisterBroker { node_id: i32, incarnation_id: [u8; 16], endpoints: Vec<BrokerEndpoint>, rack: Option<String> },
    /// Create a topic. Rejected with `TopicAlreadyExists` when the name or the id is taken.
    CreateTopic { name: String, topic_id: [u8; 16], partitions: Vec<NewPartition>, configs: BTreeMap<String, String> },
    /// Delete a topic by id. Rejected with `UnknownTopic` when there is none.
    DeleteTopic { topic_id: [u8; 16] },
    /// Add partitions to a topic that currently has exactly `expected_count` partitions.
    CreatePartitions { topic_id: [u8; 16], expected_count: i32, new_partitions: Vec<NewPartition> },
    /// Set and delete config keys of one resource, atomically. Keys not named stay as they are.
    AlterConfigs { resource: ConfigResource, set: BTreeMap<String, String>, delete: Vec<String> },
    /// Hand out `count` producer ids to `node_id`; the outcome carries the first id of the block.
    AllocateProducerIds { node_id: i32, count: i64 },
    /// Change the leader and/or ISR of a partition whose partition epoch is still
    /// `expected_partition_epoch`. `None` leaves a field unchanged; `Some(-1)` as leader means
    /// "no leader". Bumps `leader_epoch` when the leader changes and `partition_epoch` always.
    ChangePartition { topic_id: [u8; 16], partition: i32, expected_partition_epoch: i32, leader: Option<i32>, isr: Option<Vec<i32>> },
    /// Fence the broker registered with broker epoch `epoch`.
    FenceBroker { node_id: i32, epoch: i64 },
    /// Unfence the broker registered with broker epoch `epoch`.
    UnfenceBroker { node_id: i32, epoch: i64 },
    /// Start, replace (`target: Some`) or cancel (`None`) the reassignment of a partition whose
    /// partition epoch is still `expected_partition_epoch` (AlterPartitionReassignments). A
    /// start makes `replicas` the target followed by the replicas it removes and records
    /// `adding_replicas` / `removing_replicas`; it completes at once when there is nothing to
    /// wait for. A cancel drops the adding replicas (rejected with `NoReassignmentInProgress`
    /// when none runs). Rejected with `InvalidReplicaAssignment` for an empty target, a
    /// duplicate or unregistered broker, or a cancel that would leave only added replicas in
    /// the ISR. See the `reassignment` module.
    ReassignPartition { topic_id: [u8; 16], partition: i32, expected_partition_epoch: i32, target: Option<Vec<i32>> },
    /// Complete the reassignment of a partition at `expected_partition_epoch` whose adding
    /// replicas are all in the ISR: `replicas` becomes the target, the removed replicas leave
    /// the ISR, a removed leader hands over to the first live target replica in the ISR.
    /// Proposed by the active controller; rejected when the reassignment cannot complete.
    CompleteReassignment { topic_id: [u8; 16], partition: i32, expected_partition_epoch: i32 },
    /// Record the cluster id in the log. Proposed once by [`crate::MetadataQuorum::start`] on a
    /// fresh cluster; a later one with a different id is rejected with `ClusterIdMismatch`.
    InitializeCluster { cluster_id: String },
    /// Upsert and delete SCRAM credentials, as `(user, mechanism, credential)` and
    /// `(user, mechanism)` (AlterUserScramCredentials, KIP-554). Deleting an absent credential
    /// changes nothing; a mechanism other than SCRAM-SHA-256/512 rejects the whole command.
    AlterScramCredentials { upsertions: Vec<(String, String, crate::credentials::ScramCredential)>, deletions: Vec<(String, String)> },
    /// Add ACL bindings (CreateAcls); existing ones stay as they are.
    CreateAcls { acls: Vec<crate::acls::AclBinding> },
    /// Remove ACL bindings (DeleteAcls); absent ones change nothing.
    DeleteAcls { acls: Vec<crate::acls::AclBinding> },
}

impl MetadataCommand {
    /// Short name of the command, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            MetadataCommand::RegisterBroker { .. } => "RegisterBroker",
            MetadataCommand::CreateTopic { .. } => "CreateTopic",
            MetadataCommand::DeleteTopic { .. } => "DeleteTopic",
            MetadataCommand::CreatePartitions { .. } => "CreatePartitions",
            MetadataCommand::AlterConfigs { .. } => "AlterConfigs",
            MetadataCommand::AllocateProducerIds { .. } => "AllocateProducerIds",
            MetadataCommand::ChangePartition { .. } => "ChangePartition",
            MetadataCommand::FenceBroker { .. } => "FenceBroker",
            MetadataCommand::UnfenceBroker { .. } => "UnfenceBroker",
            MetadataCommand::InitializeCluster { .. } => "InitializeCluster",
            MetadataCommand::ReassignPartition { .. } => "ReassignPartition",
            MetadataCommand::CompleteReassignment { .. } => "CompleteReassignment",
            MetadataCommand::AlterScramCredentials { .. } => "AlterScramCredentials",
            MetadataCommand::CreateAcls { .. } => "CreateAcls",
            MetadataCommand::DeleteAcls { .. } => "DeleteAcls",
        }
    }
}

/// What applying a committed command did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum CommandOutcome {
    Applied(AppliedInfo),
    Rejected(Rejection),
}

impl CommandOutcome {
    pub fn is_applied(&self) -> bool {
        matches!(self, CommandOutcome::Applied(_))
    }

    /// The applied info, or the rejection as an `Err`.
    pub fn into_result(self) -> Result<AppliedInfo, Rejection> {
        match self {
            CommandOutcome::Applied(info) => Ok(info),
            CommandOutcome::Rejected(rejection) => Err(rejection),
        }
    }
}

/// What the proposer of an applied command may need to know.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppliedInfo {
    /// Log index of the entry that carried the command.
    pub log_index: u64,
    /// `RegisterBroker`, `FenceBroker`, `UnfenceBroker`: the broker epoch.
    pub broker_epoch: Option<i64>,
    /// `AllocateProducerIds`: the first id of the allocated block.
    pub first_producer_id: Option<i64>,
    /// `ChangePartition`: the new leader epoch.
    pub leader_epoch: Option<i32>,
    /// `ChangePartition`: the new partition epoch.
    pub partition_epoch: Option<i32>,
}

/// Why a committed command changed nothing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// Reason codes of a [`Rejection`]; the broker maps them to Kafka error codes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum RejectCode {
    TopicAlreadyExists,
    UnknownTopic,
    InvalidTopic,
    StaleEpoch,
    InvalidPartitions,
    InvalidReplicaAssignment,
    UnknownPartition,
    InvalidConfig,
    UnknownBroker,
    InvalidRequest,
    ClusterIdMismatch,
    NoReassignmentInProgress,
}
