//! Fuzz-style properties of the request and response decoders of every API at every
//! spec version: arbitrary bytes must return (Ok or Err), never panic, and never make the
//! decoder allocate from an untrusted length; a huge length in a real length field of a
//! real request must be rejected.

use bytes::{Bytes, BytesMut};
use klamm_protocol::error::DecodeError;
use klamm_protocol::header::decode_request_header;
use klamm_protocol::messages::*;
use klamm_protocol::ApiKey;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..96)) {
        let input = Bytes::from(data);
        for &key in ApiKey::ALL {
            let (lo, hi) = key.spec_versions();
            for v in lo..=hi {
                let mut b = input.clone();
                let _ = RequestKind::decode(key, v, &mut b);
                let mut b = input.clone();
                let _ = ResponseKind::decode(key, v, &mut b);
            }
        }
        let mut b = input.clone();
        let _ = decode_request_header(&mut b);
    }

    /// Inputs that start with a plausible huge count/length (the classic and compact
    /// length prefixes maxed out) followed by anything: no panic for any API, request or
    /// response. Which of these must be errors is `huge_lengths_are_rejected`'s business.
    #[test]
    fn huge_length_prefixes_never_panic(prefix in prop_oneof![
            Just(vec![0x7f, 0xff, 0xff, 0xff]),
            Just(vec![0xff, 0xff, 0xff, 0xff, 0x07]),
            Just(vec![0x7f, 0xff]),
        ],
        tail in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut data = prefix;
        data.extend(tail);
        let input = Bytes::from(data);
        for &key in ApiKey::ALL {
            let (lo, hi) = key.spec_versions();
            for v in lo..=hi {
                let _ = RequestKind::decode(key, v, &mut input.clone());
                let _ = ResponseKind::decode(key, v, &mut input.clone());
            }
        }
    }
}

/// The default (all fields empty, zero or null) request of an API.
fn default_request(key: ApiKey) -> RequestKind {
    match key {
        ApiKey::Produce => RequestKind::Produce(ProduceRequest::default()),
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(FindCoordinatorRequest::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(SaslHandshakeRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default()),
        ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default()),
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(AddOffsetsToTxnRequest::default()),
        ApiKey::EndTxn => RequestKind::EndTxn(EndTxnRequest::default()),
        ApiKey::WriteTxnMarkers => RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default()),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(TxnOffsetCommitRequest::default()),
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(DescribeAclsRequest::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(CreateAclsRequest::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(DeleteAclsRequest::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::AlterReplicaLogDirs => RequestKind::AlterReplicaLogDirs(AlterReplicaLogDirsRequest::default()),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
        ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default()),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(CreatePartitionsRequest::default()),
        ApiKey::CreateDelegationToken => RequestKind::CreateDelegationToken(CreateDelegationTokenRequest::default()),
        ApiKey::RenewDelegationToken => RequestKind::RenewDelegationToken(RenewDelegationTokenRequest::default()),
        ApiKey::ExpireDelegationToken => RequestKind::ExpireDelegationToken(ExpireDelegationTokenRequest::default()),
        ApiKey::DescribeDelegationToken => RequestKind::DescribeDelegationToken(DescribeDelegationTokenRequest::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default()),
        ApiKey::AlterPartitionReassignments => RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default()),
        ApiKey::ListPartitionReassignments => RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(OffsetDeleteRequest::default()),
        ApiKey::DescribeClientQuotas => RequestKind::DescribeClientQuotas(DescribeClientQuotasRequest::default()),
        ApiKey::AlterClientQuotas => RequestKind::AlterClientQuotas(AlterClientQuotasRequest::default()),
        ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(DescribeUserScramCredentialsRequest::default()),
        ApiKey::AlterUserScramCredentials => RequestKind::AlterUserScramCredentials(AlterUserScramCredentialsRequest::default()),
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(DescribeQuorumRequest::default()),
        ApiKey::UpdateFeatures => RequestKind::UpdateFeatures(UpdateFeaturesRequest::default()),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::DescribeProducers => RequestKind::DescribeProducers(DescribeProducersRequest::default()),
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(DescribeTransactionsRequest::default()),
        ApiKey::ListTransactions => RequestKind::ListTransactions(ListTransactionsRequest::default()),
        ApiKey::ConsumerGroupHeartbeat => RequestKind::ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest::default()),
        ApiKey::ConsumerGroupDescribe => RequestKind::ConsumerGroupDescribe(ConsumerGroupDescribeRequest::default()),
        ApiKey::GetTelemetrySubscriptions => RequestKind::GetTelemetrySubscriptions(GetTelemetrySubscriptionsRequest::default()),
        ApiKey::PushTelemetry => RequestKind::PushTelemetry(PushTelemetryRequest::default()),
        ApiKey::ListClientMetricsResources => RequestKind::ListClientMetricsResources(ListClientMetricsResourcesRequest::default()),
        ApiKey::DescribeTopicPartitions => RequestKind::DescribeTopicPartitions(DescribeTopicPartitionsRequest::default()),
    }
}

/// The smallest length a decoder must refuse here: every huge prefix below claims at
/// least `i16::MAX` bytes or elements, far more than any test input holds.
const HUGE: u64 = i16::MAX as u64;

/// The ways an empty or null length prefix is written, and a huge claim in its place:
/// int16 (strings), int32 (arrays, bytes), and the compact varint (flexible versions;
/// 0x00 = null, 0x01 = empty), replaced by the varint of `i32::MAX`.
const SWAPS: &[(&[&[u8]], &[u8])] = &[
    (&[&[0x00, 0x00], &[0xff, 0xff]], &[0x7f, 0xff]),
    (&[&[0x00, 0x00, 0x00, 0x00], &[0xff, 0xff, 0xff, 0xff]], &[0x7f, 0xff, 0xff, 0xff]),
    (&[&[0x00], &[0x01]], &[0xff, 0xff, 0xff, 0xff, 0x07]),
];

/// True if `e` is the decoder refusing a length or count of at least [`HUGE`].
fn is_huge_length_error(e: &DecodeError) -> bool {
    match e {
        DecodeError::InvalidLength { len, .. } => *len >= HUGE as i64,
        DecodeError::Truncated { needed, .. } => *needed as u64 >= HUGE,
        _ => false,
    }
}

/// Every input made from a real request by writing a huge length where the default
/// encoding holds an empty or null length prefix (and at every other place where the
/// same bytes happen to occur, such as a zero int32).
///
/// Where the swap lands in a length field, the decoder reads the earlier fields exactly
/// as before and then meets the huge length, so it must fail right there, naming the
/// huge value: every API/version whose default encoding has any length field must show
/// such a rejection. Where the swap lands elsewhere (a zero integer), the decode may
/// succeed, but the decoded request must not be larger than the input: a decoder that
/// accepted a huge length without the bytes behind it would show up there. Nothing
/// may panic.
#[test]
fn huge_lengths_are_rejected() {
    let mut without_length_fields = Vec::new();
    for &key in ApiKey::ALL {
        let (lo, hi) = key.spec_versions();
        for v in lo..=hi {
            let mut enc = BytesMut::new();
            default_request(key).encode(&mut enc, v).expect("default request encodes");
            let enc = enc.freeze();
            let mut rejected = 0;
            for (empties, huge) in SWAPS {
                for empty in *empties {
                    for at in 0..enc.len() {
                        if !enc[at..].starts_with(empty) {
                            continue;
                        }
                        let mut input = enc[..at].to_vec();
                        input.extend_from_slice(huge);
                        input.extend_from_slice(&enc[at + empty.len()..]);
                        match RequestKind::decode(key, v, &mut Bytes::from(input.clone())) {
                            Err(e) if is_huge_length_error(&e) => rejected += 1,
                            Err(_) => {}
                            Ok(req) => {
                                let mut again = BytesMut::new();
                                if req.encode(&mut again, v).is_ok() {
                                    assert!(
                                        again.len() <= input.len(),
                                        "{key:?} v{v}: huge length at byte {at} accepted: \
                                         {} bytes in, {} bytes decoded",
                                        input.len(),
                                        again.len()
                                    );
                                }
                            }
                        }
                    }
                }
            }
            if rejected == 0 {
                without_length_fields.push((key, v));
            }
        }
    }
    // Exactly the request bodies that hold no string, bytes or array at all (only
    // fixed-width fields and the tagged-field section, whose count is not a length)
    // show no rejection; every other API version rejected a huge length.
    assert_eq!(
        without_length_fields,
        [
            (ApiKey::ListGroups, 0),
            (ApiKey::ListGroups, 1),
            (ApiKey::ListGroups, 2),
            (ApiKey::ListGroups, 3),
            (ApiKey::ApiVersions, 0),
            (ApiKey::ApiVersions, 1),
            (ApiKey::ApiVersions, 2),
            (ApiKey::DescribeCluster, 0),
            (ApiKey::DescribeCluster, 1),
            (ApiKey::GetTelemetrySubscriptions, 0),
            (ApiKey::ListClientMetricsResources, 0),
        ]
    );
}
