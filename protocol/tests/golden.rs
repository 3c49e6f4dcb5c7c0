//! Golden byte tests: frames written out by hand from the Kafka spec
//! (docs/kafka-compatibility.md sections 1-4 and Kafka's JSON definitions),
//! decoded with the generated code and re-encoded byte for byte.

use bytes::{Bytes, BytesMut};
use klamm_protocol::header::{decode_request_header, RequestHeader, ResponseHeader};
use klamm_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey};
use klamm_protocol::messages::metadata_request::MetadataRequestTopic;
use klamm_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use klamm_protocol::messages::*;
use klamm_protocol::{ApiKey, Decode, DecodeError, Encode, EncodeError, ErrorCode, Uuid};

/// Decodes header + body of a request frame (without the size prefix), checks
/// that everything was consumed, re-encodes and compares with the input.
fn roundtrip_request(frame: &[u8], expect_key: ApiKey) -> (RequestHeader, RequestKind) {
    let mut buf = Bytes::copy_from_slice(frame);
    let (header, key) = decode_request_header(&mut buf).expect("header");
    let key = key.expect("known key");
    assert_eq!(key, expect_key);
    let version = header.request_api_version;
    let body = RequestKind::decode(key, version, &mut buf).expect("body");
    assert!(buf.is_empty(), "{} bytes left", buf.len());

    let mut out = BytesMut::new();
    header
        .encode(&mut out, key.request_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    assert_eq!(&out[..], frame, "re-encoding differs");
    (header, body)
}

#[test]
fn api_versions_request_v0() {
    #[rustfmt::skip]
    let frame = [
        0x00, 0x12,             // api_key 18
        0x00, 0x00,             // api_version 0
        0x00, 0x00, 0x00, 0x01, // correlation_id 1
        0x00, 0x03, b'a', b'b', b'c', // client_id "abc" (int16 length)
        // empty body
    ];
    let (h, body) = roundtrip_request(&frame, ApiKey::ApiVersions);
    assert_eq!(h.correlation_id, 1);
    assert_eq!(h.client_id.as_deref(), Some("abc"));
    assert_eq!(
        body,
        RequestKind::ApiVersions(ApiVersionsRequest::default())
    );
}

#[test]
fn api_versions_request_v3() {
    #[rustfmt::skip]
    let frame = [
        0x00, 0x12, 0x00, 0x03,             // ApiVersions v3 -> request header v2
        0x00, 0x00, 0x00, 0x07,             // correlation_id 7
        0x00, 0x07, b'r', b'd', b'k', b'a', b'f', b'k', b'a', // client_id stays int16-length
        0x00,                               // header tag section
        0x0b, b'l', b'i', b'b', b'r', b'd', b'k', b'a', b'f', b'k', b'a', // compact "librdkafka"
        0x06, b'2', b'.', b'0', b'.', b'2', // compact "2.0.2"
        0x00,                               // body tag section
    ];
    let (h, body) = roundtrip_request(&frame, ApiKey::ApiVersions);
    assert_eq!(h.correlation_id, 7);
    assert_eq!(h.client_id.as_deref(), Some("rdkafka"));
    let RequestKind::ApiVersions(r) = body else {
        panic!("wrong kind")
    };
    assert_eq!(r.client_software_name, "librdkafka");
    assert_eq!(r.client_software_version, "2.0.2");
}

#[test]
fn metadata_request_v1() {
    #[rustfmt::skip]
    let frame = [
        0x00, 0x03, 0x00, 0x01,             // Metadata v1
        0x00, 0x00, 0x00, 0x2a,             // correlation_id 42
        0xff, 0xff,                         // client_id null
        0x00, 0x00, 0x00, 0x02,             // topics: 2 entries
        0x00, 0x01, b'a',
        0x00, 0x03, b'f', b'o', b'o',
    ];
    let (h, body) = roundtrip_request(&frame, ApiKey::Metadata);
    assert_eq!(h.client_id, None);
    let RequestKind::Metadata(r) = body else {
        panic!("wrong kind")
    };
    let names: Vec<_> = r
        .topics
        .unwrap()
        .into_iter()
        .map(|t| t.name.unwrap())
        .collect();
    assert_eq!(names, ["a", "foo"]);

    // A null topic array (all topics) is legal from v1.
    #[rustfmt::skip]
    let all = [0x00, 0x03, 0x00, 0x01, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    let (_, body) = roundtrip_request(&all, ApiKey::Metadata);
    let RequestKind::Metadata(r) = body else {
        panic!("wrong kind")
    };
    assert_eq!(r.topics, None);
    // ... but not in v0 (topics is not nullable there).
    let mut v0 = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(
        MetadataRequest::decode(&mut v0, 0),
        Err(DecodeError::UnexpectedNull { .. })
    ));
    let null_topics = MetadataRequest {
        topics: None,
        ..Default::default()
    };
    assert!(matches!(
        null_topics.encode(&mut BytesMut::new(), 0),
        Err(EncodeError::NullNotAllowed { .. })
    ));
}

#[test]
fn produce_request_v3() {
    #[rustfmt::skip]
    let frame = [
        0x00, 0x00, 0x00, 0x03,             // Produce v3
        0x00, 0x00, 0x00, 0x05,             // correlation_id 5
        0x00, 0x01, b'c',                   // client_id "c"
        0xff, 0xff,                         // transactional_id null
        0xff, 0xff,                         // acks -1
        0x00, 0x00, 0x75, 0x30,             // timeout_ms 30000
        0x00, 0x00, 0x00, 0x01,             // topic_data: 1
        0x00, 0x01, b't',                   //   name "t"
        0x00, 0x00, 0x00, 0x01,             //   partition_data: 1
        0x00, 0x00, 0x00, 0x02,             //     index 2
        0x00, 0x00, 0x00, 0x04, b'A', b'B', b'C', b'D', // records (int32 length)
    ];
    let (_, body) = roundtrip_request(&frame, ApiKey::Produce);
    let expected = ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30000,
        topic_data: vec![TopicProduceData {
            name: "t".into(),
            partition_data: vec![PartitionProduceData {
                index: 2,
                records: Some(Bytes::from_static(b"ABCD")),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(body, RequestKind::Produce(expected));
}

#[test]
fn produce_request_v9() {
    #[rustfmt::skip]
    let frame = [
        0x00, 0x00, 0x00, 0x09,             // Produce v9 -> header v2
        0x00, 0x00, 0x00, 0x05,
        0x00, 0x01, b'c',                   // client_id: still int16 length
        0x00,                               // header tags
        0x03, b't', b'x',                   // transactional_id compact "tx"
        0x00, 0x01,                         // acks 1
        0x00, 0x00, 0x03, 0xe8,             // timeout_ms 1000
        0x02,                               // topic_data: compact count 1
        0x02, b't',                         //   name
        0x02,                               //   partition_data: 1
        0x00, 0x00, 0x00, 0x00,             //     index 0
        0x05, b'A', b'B', b'C', b'D',       //     compact records
        0x00,                               //     partition tags
        0x00,                               //   topic tags
        0x00,                               // body tags
    ];
    let (_, body) = roundtrip_request(&frame, ApiKey::Produce);
    let RequestKind::Produce(p) = body else {
        panic!("wrong kind")
    };
    assert_eq!(p.transactional_id.as_deref(), Some("tx"));
    assert_eq!(p.acks, 1);
    let records = p.topic_data[0].partition_data[0].records.clone().unwrap();
    assert_eq!(&records[..], b"ABCD");
}

#[test]
fn records_are_zero_copy_slices() {
    let mut frame = BytesMut::new();
    let req = ProduceRequest {
        acks: 1,
        topic_data: vec![TopicProduceData {
            name: "t".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(Bytes::from(vec![7u8; 100])),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    req.encode(&mut frame, 9).unwrap();
    let input = frame.freeze();
    let mut buf = input.clone();
    let back = ProduceRequest::decode(&mut buf, 9).unwrap();
    let rec = back.topic_data[0].partition_data[0]
        .records
        .clone()
        .unwrap();
    let start = input.as_ptr() as usize;
    let p = rec.as_ptr() as usize;
    assert!(
        p >= start && p + rec.len() <= start + input.len(),
        "records were copied"
    );
}

#[test]
fn api_versions_response_v3_with_tagged_fields() {
    let resp = ApiVersionsResponse {
        error_code: 0,
        api_keys: vec![ApiVersion {
            api_key: 18,
            min_version: 0,
            max_version: 4,
            ..Default::default()
        }],
        finalized_features_epoch: 5,
        finalized_features: vec![FinalizedFeatureKey {
            name: "tv".into(),
            max_version_level: 2,
            min_version_level: 1,
            ..Default::default()
        }],
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x00, 0x00,                         // error_code 0
        0x02,                               // api_keys: compact count 1
        0x00, 0x12, 0x00, 0x00, 0x00, 0x04, 0x00, // ApiVersions 0-4, element tags
        0x00, 0x00, 0x00, 0x00,             // throttle_time_ms
        0x02,                               // 2 tagged fields, ascending
        0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x05, // tag 1 FinalizedFeaturesEpoch = 5
        0x02, 0x09,                         // tag 2 FinalizedFeatures, 9 bytes:
        0x02, 0x03, b't', b'v', 0x00, 0x02, 0x00, 0x01, 0x00, // [ "tv", max 2, min 1, tags ]
    ];
    let mut out = BytesMut::new();
    resp.encode(&mut out, 3).unwrap();
    assert_eq!(&out[..], &expected[..]);
    let mut b = out.freeze();
    assert_eq!(ApiVersionsResponse::decode(&mut b, 3).unwrap(), resp);
    assert!(b.is_empty());

    // A tagged field whose size disagrees with its content is rejected.
    let mut bad = expected.to_vec();
    bad[26] = 0x0a;
    bad.push(0x00);
    assert!(matches!(
        ApiVersionsResponse::decode(&mut Bytes::from(bad), 3),
        Err(DecodeError::TagSize { .. })
    ));

    // v0 has neither throttle time nor tags; the tagged values are dropped.
    let mut out = BytesMut::new();
    resp.encode(&mut out, 0).unwrap();
    assert_eq!(&out[..], &[0, 0, 0, 0, 0, 1, 0, 0x12, 0, 0, 0, 4]);
}

#[test]
fn response_headers() {
    let h = ResponseHeader {
        correlation_id: 9,
        ..Default::default()
    };
    let mut out = BytesMut::new();
    h.encode(&mut out, ApiKey::ApiVersions.response_header_version(3))
        .unwrap();
    assert_eq!(&out[..], &[0, 0, 0, 9]);
    let mut out = BytesMut::new();
    h.encode(&mut out, ApiKey::Produce.response_header_version(9))
        .unwrap();
    assert_eq!(&out[..], &[0, 0, 0, 9, 0]);
}

#[test]
fn header_versions() {
    assert_eq!(ApiKey::Produce.request_header_version(8), 1);
    assert_eq!(ApiKey::Produce.request_header_version(9), 2);
    assert_eq!(ApiKey::ApiVersions.request_header_version(3), 2);
    assert_eq!(ApiKey::ApiVersions.response_header_version(4), 0);
    assert_eq!(ApiKey::Fetch.response_header_version(12), 1);
    assert_eq!(ApiKey::Fetch.response_header_version(11), 0);
    assert_eq!(ApiKey::SaslHandshake.request_header_version(1), 1);
    assert_eq!(ApiKey::try_from(18), Ok(ApiKey::ApiVersions));
    assert_eq!(ApiKey::try_from(-5), Err(-5));
    assert_eq!(ApiKey::Produce.name(), "Produce");
    assert_eq!(ApiKey::Produce.as_i16(), 0);
    assert_eq!(ApiKey::ApiVersions.spec_versions(), (0, 4));
}

#[test]
fn unknown_api_key_header_still_gives_correlation_id() {
    let frame = [0x7f, 0x00, 0x00, 0x05, 0, 0, 0, 77, 0xff, 0xff, 1, 2, 3];
    let mut buf = Bytes::copy_from_slice(&frame);
    let (h, key) = decode_request_header(&mut buf).unwrap();
    assert_eq!(key, None);
    assert_eq!(h.correlation_id, 77);
    assert_eq!(&buf[..], &[1, 2, 3]);
}

#[test]
fn unsupported_version_is_an_error() {
    let mut b = Bytes::new();
    assert!(matches!(
        ApiVersionsRequest::decode(&mut b, 99),
        Err(DecodeError::UnsupportedVersion { version: 99, .. })
    ));
    assert!(RequestKind::decode(ApiKey::Produce, -1, &mut Bytes::new()).is_err());
    assert!(matches!(
        ApiVersionsRequest::default().encode(&mut BytesMut::new(), 5),
        Err(EncodeError::UnsupportedVersion { .. })
    ));
}

#[test]
fn unknown_tags_survive_and_order_is_checked() {
    // FetchRequest v12: ClusterId is tag 0; tag 5 is unknown and must be kept.
    let req = FetchRequest {
        cluster_id: Some("c1".into()),
        unknown_tagged_fields: vec![(5, Bytes::from_static(b"xyz"))],
        ..Default::default()
    };
    let mut out = BytesMut::new();
    req.encode(&mut out, 12).unwrap();
    // Tag section at the end: 2 fields, tag 0 = compact "c1", tag 5 = "xyz".
    let tail = &out[out.len() - 11..];
    assert_eq!(
        tail,
        &[0x02, 0x00, 0x03, 0x03, b'c', b'1', 0x05, 0x03, b'x', b'y', b'z']
    );
    let mut b = out.freeze();
    let back = FetchRequest::decode(&mut b, 12).unwrap();
    assert_eq!(back, req);

    // A known tag in the unknown list collides with the real field.
    let dup = FetchRequest {
        cluster_id: Some("c1".into()),
        unknown_tagged_fields: vec![(0, Bytes::new())],
        ..Default::default()
    };
    assert!(matches!(
        dup.encode(&mut BytesMut::new(), 12),
        Err(EncodeError::DuplicateTag { .. })
    ));
}

#[test]
fn misc_types() {
    assert_eq!(ErrorCode::NONE.code(), 0);
    assert_eq!(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, ErrorCode(3));
    assert_eq!(ErrorCode(6).name(), "NOT_LEADER_OR_FOLLOWER");
    assert!(ErrorCode::NOT_LEADER_OR_FOLLOWER.is_retriable());
    assert!(!ErrorCode::REBALANCE_IN_PROGRESS.is_retriable());
    assert_eq!(
        ErrorCode::UNSUPPORTED_VERSION.to_string(),
        "UNSUPPORTED_VERSION (35)"
    );
    assert!(Uuid::ZERO.is_zero());
    // Defaults come from the JSON.
    let t = MetadataRequestTopic::default();
    assert_eq!(t.topic_id, Uuid::ZERO);
    assert_eq!(FetchRequest::default().replica_id, -1);
    assert_eq!(FetchRequest::default().cluster_id, None);
    let r: ResponseKind = ProduceResponse::default().into();
    assert_eq!(r.api_key(), ApiKey::Produce);
}
