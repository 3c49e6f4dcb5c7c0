//! Every API of [`SUPPORTED`] reaches a real handler: a request of each served key, at
//! its lowest and highest served version, is dispatched by [`handle`] on a running
//! single-node broker and must not end in the "not served" fallback.

use std::time::Duration;

use klamm_protocol::messages::*;

use super::*;

/// The default (empty) request of a served API. An API added to [`SUPPORTED`] without
/// an entry here fails the test, which then checks its dispatch too.
fn default_request(key: ApiKey) -> Option<RequestKind> {
    Some(match key {
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(AddOffsetsToTxnRequest::default()),
        ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::AlterPartitionReassignments => RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(CreatePartitionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(klamm_protocol::messages::DescribeQuorumRequest::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
        ApiKey::DescribeProducers => RequestKind::DescribeProducers(DescribeProducersRequest::default()),
        ApiKey::DescribeTopicPartitions => RequestKind::DescribeTopicPartitions(DescribeTopicPartitionsRequest::default()),
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(DescribeTransactionsRequest::default()),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
        ApiKey::EndTxn => RequestKind::EndTxn(EndTxnRequest::default()),
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(FindCoordinatorRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ApiKey::ListTransactions => RequestKind::ListTransactions(ListTransactionsRequest::default()),
        ApiKey::ListPartitionReassignments => RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(OffsetDeleteRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default()),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default()),
        ApiKey::Produce => RequestKind::Produce(ProduceRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
        ApiKey::WriteTxnMarkers => RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default()),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(TxnOffsetCommitRequest::default()),
        ApiKey::AlterUserScramCredentials => RequestKind::AlterUserScramCredentials(AlterUserScramCredentialsRequest::default()),
        ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(DescribeUserScramCredentialsRequest::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(CreateAclsRequest::default()),
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(DescribeAclsRequest::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(DeleteAclsRequest::default()),
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(SaslHandshakeRequest::default()),
        ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default()),
        _ => return None,
    })
}

async fn dispatch(broker: &Arc<Broker>, key: ApiKey, version: i16, request: RequestKind) -> Option<Outcome> {
    let ctx = RequestContext {
        broker: broker.clone(),
        api_key: key,
        api_version: version,
        correlation_id: 1,
        client_id: "dispatch-test".to_string(),
        listener: "PLAINTEXT".to_string(),
        peer: "127.0.0.1:1".parse().expect("socket address"),
        principal: crate::security::ANONYMOUS.to_string(),
    };
    // The fallback answers at once; a handler that waits longer has been reached.
    tokio::time::timeout(Duration::from_secs(10), handle(&ctx, request)).await.ok()
}

fn is_fallback(outcome: &Option<Outcome>) -> bool {
    matches!(outcome, Some(Outcome::Close(reason)) if *reason == NOT_SERVED)
}

/// A request context for calling a handler directly: an anonymous PLAINTEXT client
/// named `client_id`.
pub(super) fn test_context(broker: &Arc<Broker>, key: ApiKey, version: i16, client_id: &str) -> RequestContext {
    RequestContext {
        broker: broker.clone(),
        api_key: key,
        api_version: version,
        correlation_id: 1,
        client_id: client_id.to_string(),
        listener: "PLAINTEXT".to_string(),
        peer: "127.0.0.1:1".parse().expect("socket address"),
        principal: crate::security::ANONYMOUS.to_string(),
    }
}

/// Starts a single-node broker (broker and controller) on loopback port 0
/// with its data in `dir`, plus `extra` config overrides.
pub(super) async fn start_single_node(dir: &tempfile::TempDir, extra: &[&str]) -> crate::server::RunningBroker {
    let mut overrides: Vec<String> = vec![
        "node.id=1".into(),
        "process.roles=broker,controller".into(),
        "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0".into(),
        "advertised.listeners=PLAINTEXT://127.0.0.1:0".into(),
        "controller.listener.names=CONTROLLER".into(),
        "controller.quorum.voters=1@127.0.0.1:0".into(),
        format!("log.dirs={}", dir.path().display()),
        // Tests never bind the embedded default ops port (9644).
        "klamm.http.listener=".into(),
        // Nor the embedded default schema registry port (8081).
        "klamm.schema.registry.listener=".into(),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    let loaded = klamm_config::BrokerConfig::load(None, &overrides).expect("config");
    crate::server::start(loaded).await.expect("start broker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_api_has_a_handler() {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = start_single_node(&dir, &[]).await;
    let broker = running.broker.clone();

    // The check can fail: an API without a handler ends in the fallback.
    let unserved = dispatch(&broker, ApiKey::ExpireDelegationToken, 2, RequestKind::ExpireDelegationToken(Default::default())).await;
    assert!(is_fallback(&unserved), "ExpireDelegationToken is not served, so it must reach the fallback");

    for api in SUPPORTED {
        let request = default_request(api.key).unwrap_or_else(|| panic!("no default request for {:?}", api.key));
        for version in [api.min_version, api.max_version] {
            let outcome = dispatch(&broker, api.key, version, request.clone()).await;
            assert!(!is_fallback(&outcome), "{:?} v{version} is served but has no handler", api.key);
        }
    }
    running.shutdown().await.expect("shutdown");
}

/// With ACLs on, every served API has a rule in `security::checks` (a forgotten one would
/// close the connection of anyone but a super user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_api_has_an_authorization_rule() {
    use crate::security::checks::{before, Gate, NO_RULE};
    let dir = tempfile::tempdir().expect("temp dir");
    let authorizer = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer";
    let running = start_single_node(&dir, &[authorizer]).await;
    let broker = running.broker.clone();
    let unruled = |key: ApiKey, version: i16, request: RequestKind| {
        let mut ctx = test_context(&broker, key, version, "rule-test");
        ctx.principal = "User:nobody".into();
        matches!(before(&ctx, request), Gate::Answer(Outcome::Close(reason)) if reason == NO_RULE)
    };
    // The check can fail: an API without a rule is closed.
    assert!(unruled(ApiKey::ExpireDelegationToken, 2, RequestKind::ExpireDelegationToken(Default::default())));
    for api in SUPPORTED {
        let request = default_request(api.key).unwrap_or_else(|| panic!("no default request for {:?}", api.key));
        for version in [api.min_version, api.max_version] {
            assert!(!unruled(api.key, version, request.clone()), "{:?} v{version} has no authorization rule", api.key);
        }
    }
    running.shutdown().await.expect("shutdown");
}
