//! Request handlers: one file per API, and the registry of served versions.
//!
//! The registry ([`SUPPORTED`]) is the single source of truth for what the
//! broker advertises in ApiVersions and for which versions the connection
//! layer lets through. Each entry is the range Klamm really serves; the notes
//! say where a range deliberately differs from Kafka 4.x; docs/kafka-compatibility.md
//! section 11 gives the client-side reasons.

use std::net::SocketAddr;
use std::sync::Arc;

use klamm_protocol::messages::{RequestKind, ResponseKind};
use klamm_protocol::ApiKey;

use crate::server::Broker;

pub mod acls;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod admin_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod delete_groups;
pub mod describe_cluster;
pub mod describe_quorum;
pub mod describe_groups;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod find_coordinator;
pub mod heartbeat;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
mod poll_many;
pub mod produce;
pub mod produce_verify;
pub mod scram_credentials;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

/// An API Klamm serves and the version range it advertises.
#[derive(Clone, Copy, Debug)]
pub struct SupportedApi {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

const fn api(key: ApiKey, min_version: i16, max_version: i16) -> SupportedApi {
    SupportedApi { key, min_version, max_version }
}

/// What this broker serves. Minimums follow Kafka 4.1+ (KIP-896 as amended),
/// with two deliberate exceptions that librdkafka < 2.11.1 (Debian's kcat)
/// needs: Produce is advertised from v0 (it switches compression on only if
/// Produce v0 is listed; v0-2 requests themselves are refused, as Kafka 4
/// does), and ListOffsets v1 is listed for its OffsetTime feature.
pub const SUPPORTED: &[SupportedApi] = &[
    api(ApiKey::Produce, 0, 11),
    api(ApiKey::Fetch, 4, 17),
    api(ApiKey::ListOffsets, 1, 10),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    // Answered by the connection on SASL listeners (crate::security::sasl); elsewhere
    // their handler answers ILLEGAL_SASL_STATE, as Kafka does.
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::SaslAuthenticate, 0, 2),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    // ACLs (KIP-896 removed v0 of these in Kafka 4).
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::AlterPartitionReassignments, 0, 0),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::DescribeCluster, 0, 1),
    // v2 adds directory ids and controller endpoints, which Klamm's quorum does not have.
    api(ApiKey::DescribeQuorum, 0, 1),
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    // Consumer groups (group coordinator). JoinGroup from v0 as Kafka 4.1+;
    // OffsetCommit/OffsetFetch from v0 so librdkafka 2.0.2 finds the old
    // versions its balanced-consumer feature check looks for.
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 0, 9),
    api(ApiKey::OffsetFetch, 0, 9),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    // Transactions (transaction coordinator). AddPartitionsToTxn v4-5 is the
    // broker-to-broker verify form; EndTxn v5 is served with transactions v1
    // semantics (`transaction.version` >= 2 is not advertised).
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    api(ApiKey::EndTxn, 0, 5),
    api(ApiKey::WriteTxnMarkers, 1, 1),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 1),
    // Transactional offset commits (group coordinator side of transactions).
    api(ApiKey::TxnOffsetCommit, 0, 4),
];

pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|a| a.key == key).map(|a| (a.min_version, a.max_version))
}

pub fn is_supported(key: ApiKey, version: i16) -> bool {
    matches!(supported_range(key), Some((min, max)) if version >= min && version <= max)
}

/// The README's table of served APIs, generated from [`SUPPORTED`] (a test
/// keeps README.md in step with it).
pub fn supported_api_table() -> String {
    let mut out = String::from("| key | API | versions |\n|---|---|---|\n");
    let mut apis: Vec<&SupportedApi> = SUPPORTED.iter().collect();
    apis.sort_by_key(|a| a.key.as_i16());
    for a in apis {
        out.push_str(&format!("| {} | {} | {}-{} |\n", a.key.as_i16(), a.key.name(), a.min_version, a.max_version));
    }
    out
}

#[cfg(test)]
mod dispatch_tests;
#[cfg(test)]
mod txn_tests;
#[cfg(test)]
mod schema_validation_tests;

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn readme_lists_the_supported_apis() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("read README.md");
        let table = supported_api_table();
        assert!(readme.contains(&table), "README.md's API table is stale; replace it with:\n{table}");
    }

    #[test]
    fn every_supported_range_is_within_the_spec() {
        for a in SUPPORTED {
            let (min, max) = a.key.spec_versions();
            assert!(a.min_version >= min && a.max_version <= max && a.min_version <= a.max_version, "{:?}", a.key);
        }
    }
}

/// Everything a handler may need to know about the request it serves.
#[derive(Clone)]
pub struct RequestContext {
    pub broker: Arc<Broker>,
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: String,
    /// Name of the listener the request arrived on (Metadata answers with the
    /// advertised endpoints of the same listener, as Kafka does).
    pub listener: String,
    pub peer: SocketAddr,
    /// Who sent the request (`User:<name>`, `User:ANONYMOUS` when unauthenticated), as
    /// authenticated by the connection (`crate::security`).
    pub principal: String,
}

impl RequestContext {
    /// Whether this request's principal, from its client address, may do `operation` on the
    /// resource (always true when ACLs are off), see `crate::security::authorizer`.
    pub fn authorized(&self, operation: i8, resource_type: i8, name: &str) -> bool {
        let authorizer = &self.broker.authorizer;
        !authorizer.enabled || authorizer.authorize(&self.broker.metadata.image(), &self.principal, self.peer.ip(), operation, resource_type, name)
    }
}

/// What the connection should do after a request was handled.
pub enum Outcome {
    Respond(ResponseKind),
    /// A response whose `records` fields hold placeholders
    /// ([`klamm_protocol::left_out`]) for the file regions at their keys: the
    /// connection sends those bytes straight from the log files (`sendfile`),
    /// so fetched batches are never copied through the broker's memory.
    RespondFromFiles(ResponseKind, Vec<klamm_storage::FileRegion>),
    /// acks=0 produce: Kafka sends nothing back.
    NoResponse,
    /// Kafka closes the connection (e.g. a failed acks=0 produce).
    Close(&'static str),
    /// The response is ready once this future completes (acks=all produce waiting for its
    /// followers). The request's effects already happened in order; the connection reads
    /// the next request meanwhile and still answers in request order.
    Deferred(std::pin::Pin<Box<dyn std::future::Future<Output = ResponseKind> + Send>>),
}

impl<T: Into<ResponseKind>> From<T> for Outcome {
    fn from(r: T) -> Self {
        Outcome::Respond(r.into())
    }
}

/// How often an admin change to one partition that lost a race with another
/// change (the partition epoch moved) is rebuilt from the new image.
const PARTITION_CHANGE_ATTEMPTS: usize = 3;

/// Proposes the metadata command `build` makes from the current image for one
/// partition (ElectLeaders, AlterPartitionReassignments), rebuilding it when the
/// partition changed meanwhile (`StaleEpoch`), and once it is applied lets the
/// local partitions follow before the answer, as admin handlers do. `what`
/// names the change in messages ("election", "reassignment"); `timeout_message`
/// is the answer when `deadline` passes first.
pub(crate) async fn propose_partition_change(
    ctx: &RequestContext,
    topic: &str,
    partition: i32,
    what: &str,
    timeout_message: &str,
    deadline: tokio::time::Instant,
    build: impl Fn(&klamm_raft::MetadataImage) -> Result<klamm_raft::MetadataCommand, (klamm_protocol::ErrorCode, String)>,
) -> Result<klamm_raft::AppliedInfo, (klamm_protocol::ErrorCode, Option<String>)> {
    use klamm_protocol::ErrorCode;
    use klamm_raft::{CommandOutcome, RejectCode};
    let broker = &ctx.broker;
    for _ in 0..PARTITION_CHANGE_ATTEMPTS {
        let command = build(&broker.metadata.image()).map_err(|(code, message)| (code, Some(message)))?;
        let outcome = match tokio::time::timeout_at(deadline, broker.metadata.propose(command)).await {
            Err(_) => return Err((ErrorCode::REQUEST_TIMED_OUT, Some(timeout_message.to_string()))),
            Ok(Err(e)) => return Err((ErrorCode::REQUEST_TIMED_OUT, Some(format!("metadata log unavailable: {e}")))),
            Ok(Ok(outcome)) => outcome,
        };
        match outcome {
            CommandOutcome::Applied(info) => {
                broker.reconciler.caught_up(info.log_index).await;
                return Ok(info);
            }
            CommandOutcome::Rejected(r) if r.code == RejectCode::StaleEpoch => continue,
            CommandOutcome::Rejected(r) => return Err((crate::topics::rejection_error_code(r.code), Some(r.message))),
        }
    }
    Err((ErrorCode::REQUEST_TIMED_OUT, Some(format!("{topic}-{partition} kept changing during the {what}"))))
}

/// The local partition when this broker leads it by the metadata image:
/// UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, or the replica
/// manager's error otherwise (KAFKA_STORAGE_ERROR for an offline log).
pub(crate) fn led_partition(broker: &Broker, image: &klamm_raft::MetadataImage, topic: &str, partition: i32) -> Result<Arc<crate::replica::Partition>, klamm_protocol::ErrorCode> {
    let meta = image.partition(topic, partition).ok_or(klamm_protocol::ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
    if meta.leader != broker.node_id {
        return Err(klamm_protocol::ErrorCode::NOT_LEADER_OR_FOLLOWER);
    }
    broker.replicas.lookup(topic, partition)
}

/// The reason [`handle`] closes with when it has no handler for an API (a test checks
/// that no API of [`SUPPORTED`] ends there).
pub(crate) const NOT_SERVED: &str = "api not served";

/// Dispatches a request to its handler, with the authorization checks of
/// `crate::security::checks` around it when ACLs are on.
pub async fn handle(ctx: &RequestContext, request: RequestKind) -> Outcome {
    if !ctx.broker.authorizer.enabled {
        return dispatch(ctx, request).await;
    }
    match crate::security::checks::before(ctx, request) {
        crate::security::checks::Gate::Answer(outcome) => outcome,
        crate::security::checks::Gate::Go(request, after) => {
            let outcome = dispatch(ctx, request).await;
            crate::security::checks::after(ctx, outcome, after)
        }
    }
}

async fn dispatch(ctx: &RequestContext, request: RequestKind) -> Outcome {
    match request {
        RequestKind::ApiVersions(r) => api_versions::handle(ctx, r).into(),
        RequestKind::CreateAcls(r) => acls::create(ctx, r).await.into(),
        RequestKind::DescribeAcls(r) => acls::describe(ctx, r).into(),
        RequestKind::DeleteAcls(r) => acls::delete(ctx, r).await.into(),
        RequestKind::AlterUserScramCredentials(r) => scram_credentials::alter(ctx, r).await.into(),
        RequestKind::DescribeUserScramCredentials(r) => scram_credentials::describe(ctx, r).into(),
        // Reached only on listeners without SASL (the connection answers them otherwise).
        RequestKind::SaslHandshake(_) => klamm_protocol::messages::SaslHandshakeResponse {
            error_code: klamm_protocol::ErrorCode::ILLEGAL_SASL_STATE.code(),
            ..Default::default()
        }
        .into(),
        RequestKind::SaslAuthenticate(_) => klamm_protocol::messages::SaslAuthenticateResponse {
            error_code: klamm_protocol::ErrorCode::ILLEGAL_SASL_STATE.code(),
            error_message: Some(format!("listener {} does not use SASL", ctx.listener)),
            ..Default::default()
        }
        .into(),
        RequestKind::Metadata(r) => metadata::handle(ctx, r).await.into(),
        RequestKind::Produce(r) => produce::handle(ctx, r).await,
        RequestKind::Fetch(r) => {
            let (response, regions) = fetch::handle(ctx, r).await;
            Outcome::RespondFromFiles(response.into(), regions)
        }
        RequestKind::ListOffsets(r) => list_offsets::handle(ctx, r).into(),
        RequestKind::CreateTopics(r) => create_topics::handle(ctx, r).await.into(),
        RequestKind::DeleteRecords(r) => delete_records::handle(ctx, r).await.into(),
        RequestKind::DeleteTopics(r) => delete_topics::handle(ctx, r).await.into(),
        RequestKind::CreatePartitions(r) => create_partitions::handle(ctx, r).await.into(),
        RequestKind::DescribeConfigs(r) => admin_configs::describe(ctx, r).into(),
        RequestKind::AlterConfigs(r) => admin_configs::alter(ctx, r).await.into(),
        RequestKind::IncrementalAlterConfigs(r) => admin_configs::incremental_alter(ctx, r).await.into(),
        RequestKind::DescribeCluster(r) => describe_cluster::handle(ctx, r).into(),
        RequestKind::DescribeQuorum(r) => describe_quorum::handle(ctx, r).into(),
        RequestKind::InitProducerId(r) => init_producer_id::handle(ctx, r).await.into(),
        RequestKind::FindCoordinator(r) => find_coordinator::handle(ctx, r).await.into(),
        RequestKind::JoinGroup(r) => join_group::handle(ctx, r).await.into(),
        RequestKind::SyncGroup(r) => sync_group::handle(ctx, r).await.into(),
        RequestKind::Heartbeat(r) => heartbeat::handle(ctx, r).await.into(),
        RequestKind::LeaveGroup(r) => leave_group::handle(ctx, r).await.into(),
        RequestKind::OffsetCommit(r) => offset_commit::handle(ctx, r).await.into(),
        RequestKind::OffsetFetch(r) => offset_fetch::handle(ctx, r).await.into(),
        RequestKind::DescribeGroups(r) => describe_groups::handle(ctx, r).await.into(),
        RequestKind::ListGroups(r) => list_groups::handle(ctx, r).await.into(),
        RequestKind::DeleteGroups(r) => delete_groups::handle(ctx, r).await.into(),
        RequestKind::OffsetDelete(r) => offset_delete::handle(ctx, r).await.into(),
        RequestKind::AddPartitionsToTxn(r) => add_partitions_to_txn::handle(ctx, r).await.into(),
        RequestKind::AddOffsetsToTxn(r) => add_offsets_to_txn::handle(ctx, r).await.into(),
        RequestKind::EndTxn(r) => end_txn::handle(ctx, r).await.into(),
        RequestKind::DescribeTransactions(r) => describe_transactions::handle(ctx, r).await.into(),
        RequestKind::ListTransactions(r) => list_transactions::handle(ctx, r).await.into(),
        RequestKind::TxnOffsetCommit(r) => txn_offset_commit::handle(ctx, r).await.into(),
        RequestKind::OffsetForLeaderEpoch(r) => offset_for_leader_epoch::handle(ctx, r).into(),
        RequestKind::ElectLeaders(r) => elect_leaders::handle(ctx, r).await.into(),
        RequestKind::DescribeTopicPartitions(r) => describe_topic_partitions::handle(ctx, r).into(),
        RequestKind::AlterPartitionReassignments(r) => alter_partition_reassignments::handle(ctx, r).await.into(),
        RequestKind::ListPartitionReassignments(r) => list_partition_reassignments::handle(ctx, r).into(),
        RequestKind::WriteTxnMarkers(r) => write_txn_markers::handle(ctx, r).await.into(),
        RequestKind::DescribeProducers(r) => describe_producers::handle(ctx, r).into(),
        // The connection layer only lets registered APIs through.
        _ => Outcome::Close(NOT_SERVED),
    }
}
