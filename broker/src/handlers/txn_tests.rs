//! The partition side of transactions through the handlers, on a running
//! single-node broker: WriteTxnMarkers (answers and errors), read_committed
//! Fetch (last stable offset, aborted transactions, a long poll woken by the
//! marker), ListOffsets read_committed, DescribeProducers, and Produce of
//! transactional batches (no transactional id; no reachable coordinator).
//! The coordinator's verify-only answers are tested against a fake
//! coordinator on a real socket (`produce_verify::verify_at`).

use crate::txn::state::Tp;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use klamm_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult};
use klamm_protocol::messages::create_topics_request::CreatableTopic;
use klamm_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use klamm_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use klamm_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use klamm_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use klamm_protocol::messages::*;
use klamm_protocol::records::RecordBatchBuilder;
use klamm_protocol::{ApiKey, Decode, Encode, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::produce_verify::{self, Verification};
use super::{Outcome, RequestContext};
use crate::server::Broker;

async fn start(dir: &tempfile::TempDir) -> crate::server::RunningBroker {
    super::dispatch_tests::start_single_node(dir, &["transaction.state.log.num.partitions=1"]).await
}

fn ctx(broker: &Arc<Broker>, key: ApiKey, version: i16) -> RequestContext {
    super::dispatch_tests::test_context(broker, key, version, "txn-test")
}

async fn create_topic(broker: &Arc<Broker>, name: &str) {
    let request = CreateTopicsRequest {
        topics: vec![CreatableTopic { name: name.into(), num_partitions: 1, replication_factor: 1, ..Default::default() }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let r = super::create_topics::handle(&ctx(broker, ApiKey::CreateTopics, 7), request).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

fn txn_batch(pid: i64, seq: i32, values: &[&str]) -> bytes::Bytes {
    let mut b = RecordBatchBuilder::new(0).producer(pid, 0, seq).transactional(true);
    for v in values {
        b = b.record(1_000, None, Some(v.as_bytes()));
    }
    b.build()
}

fn markers(pid: i64, commit: bool, coordinator_epoch: i32, topic: &str, partitions: Vec<i32>) -> WriteTxnMarkersRequest {
    WriteTxnMarkersRequest {
        markers: vec![WritableTxnMarker {
            producer_id: pid,
            producer_epoch: 0,
            transaction_result: commit,
            coordinator_epoch,
            topics: vec![WritableTxnMarkerTopic { name: topic.into(), partition_indexes: partitions, ..Default::default() }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn marker_codes(r: &WriteTxnMarkersResponse) -> Vec<i16> {
    r.markers[0].topics[0].partitions.iter().map(|p| p.error_code).collect()
}

fn fetch_request(topic: &str, offset: i64, isolation_level: i8, max_wait_ms: i32) -> FetchRequest {
    FetchRequest {
        replica_id: -1,
        max_wait_ms,
        min_bytes: 1,
        max_bytes: 1 << 20,
        isolation_level,
        session_epoch: -1,
        topics: vec![FetchTopic {
            topic: topic.into(),
            partitions: vec![FetchPartition { partition: 0, current_leader_epoch: -1, fetch_offset: offset, log_start_offset: -1, partition_max_bytes: 1 << 20, ..Default::default() }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn list_latest(broker: &Arc<Broker>, topic: &str, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest {
        replica_id: -1,
        isolation_level,
        topics: vec![ListOffsetsTopic { name: topic.into(), partitions: vec![ListOffsetsPartition { partition_index: 0, current_leader_epoch: -1, timestamp: -1, ..Default::default() }], ..Default::default() }],
        ..Default::default()
    };
    let r = super::list_offsets::handle(&ctx(broker, ApiKey::ListOffsets, 7), request);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    r.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_end_transactions_that_read_committed_readers_wait_for() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(&dir).await;
    let broker = running.broker.clone();
    create_topic(&broker, "t").await;
    let p = broker.replicas.lookup("t", 0).expect("partition open");
    p.append_from_client(txn_batch(7, 0, &["a", "b"]), 9, 1).unwrap(); // 0-1
    p.append_from_client(txn_batch(8, 0, &["c"]), 9, 1).unwrap(); // 2
    assert_eq!(list_latest(&broker, "t", 0).await, 3);
    assert_eq!(list_latest(&broker, "t", 1).await, 0, "read_committed: latest is the LSO");

    // A read_committed long poll from 0 has nothing below the LSO yet; the
    // abort marker moves the LSO and wakes it.
    let b2 = broker.clone();
    let poll = tokio::spawn(async move { super::fetch::handle(&ctx(&b2, ApiKey::Fetch, 12), fetch_request("t", 0, 1, 10_000)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poll.is_finished());
    let r = super::write_txn_markers::handle(&ctx(&broker, ApiKey::WriteTxnMarkers, 1), markers(7, false, 0, "t", vec![0])).await;
    assert_eq!(marker_codes(&r), vec![0]);
    let (fetched, regions) = tokio::time::timeout(Duration::from_secs(5), poll).await.expect("the marker wakes the poll").unwrap();
    let data = &fetched.responses[0].partitions[0];
    assert_eq!((data.high_watermark, data.last_stable_offset), (4, 2));
    assert!(!regions.is_empty() || data.records.as_ref().is_some_and(|r| !r.is_empty()), "records below the LSO");
    let aborted: Vec<_> = data.aborted_transactions.as_ref().unwrap().iter().map(|t| (t.producer_id, t.first_offset)).collect();
    assert_eq!(aborted, vec![(7, 0)]);
    // read_uncommitted is unchanged: up to the high watermark, no aborted list.
    let (plain, _) = super::fetch::handle(&ctx(&broker, ApiKey::Fetch, 12), fetch_request("t", 0, 0, 0)).await;
    assert!(plain.responses[0].partitions[0].aborted_transactions.is_none());

    // Errors per partition: unknown partition, stale coordinator epoch, old producer epoch.
    let r = super::write_txn_markers::handle(&ctx(&broker, ApiKey::WriteTxnMarkers, 1), markers(8, true, 0, "t", vec![0, 5])).await;
    assert_eq!(marker_codes(&r), vec![0, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()]);
    assert_eq!(list_latest(&broker, "t", 1).await, 5);
    let r = super::write_txn_markers::handle(&ctx(&broker, ApiKey::WriteTxnMarkers, 1), markers(8, true, -1, "t", vec![0])).await;
    assert_eq!(marker_codes(&r), vec![ErrorCode::TRANSACTION_COORDINATOR_FENCED.code()]);
    let r = super::write_txn_markers::handle(&ctx(&broker, ApiKey::WriteTxnMarkers, 1), markers(8, true, 0, "nope", vec![0])).await;
    assert_eq!(marker_codes(&r), vec![ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()]);

    // DescribeProducers reports both producers with their coordinator epochs.
    p.append_from_client(txn_batch(9, 0, &["d"]), 9, 2).unwrap(); // 5
    let request = DescribeProducersRequest {
        topics: vec![describe_producers_request::TopicRequest { name: "t".into(), partition_indexes: vec![0, 3], ..Default::default() }],
        ..Default::default()
    };
    let r = super::describe_producers::handle(&ctx(&broker, ApiKey::DescribeProducers, 0), request);
    let parts = &r.topics[0].partitions;
    assert_eq!(parts[1].error_code, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code());
    let mut states: Vec<_> = parts[0].active_producers.iter().map(|s| (s.producer_id, s.coordinator_epoch, s.current_txn_start_offset, s.last_sequence)).collect();
    states.sort();
    assert_eq!(states, vec![(7, 0, -1, 1), (8, 0, -1, 0), (9, -1, 5, 0)]);
    running.shutdown().await.expect("shutdown");
}

fn produce(transactional_id: Option<&str>, records: bytes::Bytes) -> ProduceRequest {
    ProduceRequest {
        transactional_id: transactional_id.map(str::to_string),
        acks: -1,
        timeout_ms: 2_000,
        topic_data: vec![TopicProduceData { name: "t".into(), partition_data: vec![PartitionProduceData { index: 0, records: Some(records), ..Default::default() }], ..Default::default() }],
        ..Default::default()
    }
}

async fn produce_code(broker: &Arc<Broker>, request: ProduceRequest) -> i16 {
    let response = match super::produce::handle(&ctx(broker, ApiKey::Produce, 9), request).await {
        Outcome::Respond(ResponseKind::Produce(r)) => r,
        Outcome::Deferred(f) => match f.await {
            ResponseKind::Produce(r) => r,
            _ => panic!("not a produce response"),
        },
        _ => panic!("unexpected outcome"),
    };
    response.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_produce_needs_an_id_and_a_verifying_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(&dir).await;
    let broker = running.broker.clone();
    create_topic(&broker, "t").await;
    assert_eq!(produce_code(&broker, produce(None, txn_batch(7, 0, &["a"]))).await, ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code());
    // No `__transaction_state` topic: no coordinator to ask; retriable for the producer.
    assert_eq!(produce_code(&broker, produce(Some("tx"), txn_batch(7, 0, &["a"]))).await, ErrorCode::NOT_ENOUGH_REPLICAS.code());
    // The coordinator's partition led here, but nothing on it answers
    // AddPartitionsToTxn: still unverified, nothing appended.
    create_topic(&broker, produce_verify::TRANSACTION_STATE_TOPIC).await;
    assert_eq!(produce_code(&broker, produce(Some("tx"), txn_batch(7, 0, &["a"]))).await, ErrorCode::NOT_ENOUGH_REPLICAS.code());
    assert_eq!(broker.replicas.lookup("t", 0).unwrap().view().log_end_offset, 0);
    // An open transaction needs no verification: later batches append.
    let p = broker.replicas.lookup("t", 0).unwrap();
    p.append_from_client(txn_batch(7, 0, &["a"]), 9, 1).unwrap();
    assert_eq!(produce_code(&broker, produce(Some("tx"), txn_batch(7, 1, &["b"]))).await, 0);
    assert_eq!(p.view().log_end_offset, 2);
    running.shutdown().await.expect("shutdown");
}

/// A coordinator stand-in: answers one AddPartitionsToTxn v4 request with
/// `answer` (per partition of the request, by partition index) and returns
/// the request it got.
async fn fake_coordinator(answer: fn(i32) -> i16) -> (String, tokio::task::JoinHandle<AddPartitionsToTxnRequest>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let size = s.read_i32().await.unwrap();
        let mut frame = vec![0u8; size as usize];
        s.read_exact(&mut frame).await.unwrap();
        let mut buf = bytes::Bytes::from(frame);
        let (header, _) = klamm_protocol::header::decode_request_header(&mut buf).unwrap();
        assert_eq!((header.request_api_key, header.request_api_version), (ApiKey::AddPartitionsToTxn as i16, 4));
        let request = AddPartitionsToTxnRequest::decode(&mut buf, 4).unwrap();
        assert_eq!(buf.remaining(), 0);
        let t = &request.transactions[0];
        let response = AddPartitionsToTxnResponse {
            results_by_transaction: vec![AddPartitionsToTxnResult {
                transactional_id: t.transactional_id.clone(),
                topic_results: t
                    .topics
                    .iter()
                    .map(|topic| AddPartitionsToTxnTopicResult {
                        name: topic.name.clone(),
                        results_by_partition: topic.partitions.iter().filter(|&&p| p != 99).map(|&p| AddPartitionsToTxnPartitionResult { partition_index: p, partition_error_code: answer(p), ..Default::default() }).collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut out = BytesMut::new();
        out.put_i32(0);
        klamm_protocol::header::ResponseHeader { correlation_id: header.correlation_id, ..Default::default() }.encode(&mut out, ApiKey::AddPartitionsToTxn.response_header_version(4)).unwrap();
        response.encode(&mut out, 4).unwrap();
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        s.write_all(&out).await.unwrap();
        request
    });
    (addr, task)
}

#[tokio::test]
async fn verification_asks_once_per_request_and_maps_the_answers() {
    let (addr, coordinator) = fake_coordinator(|p| match p {
        0 => 0,
        1 => ErrorCode::INVALID_TXN_STATE.code(),
        2 => ErrorCode::PRODUCER_FENCED.code(),
        _ => ErrorCode::CONCURRENT_TRANSACTIONS.code(),
    })
    .await;
    let v = Verification { transactional_id: "tx".into(), producer_id: 7, producer_epoch: 3, partitions: vec![Tp::new("a", 0), Tp::new("a", 1), Tp::new("b", 2), Tp::new("b", 3), Tp::new("b", 99)] };
    let answers = produce_verify::verify_at(&addr, "test", &v, Duration::from_secs(5), &Default::default()).await;
    let sent = coordinator.await.unwrap();
    let t = &sent.transactions[0];
    assert_eq!((t.transactional_id.as_str(), t.producer_id, t.producer_epoch, t.verify_only), ("tx", 7, 3, true));
    assert_eq!(t.topics.iter().map(|x| (x.name.as_str(), x.partitions.clone())).collect::<Vec<_>>(), vec![("a", vec![0, 1]), ("b", vec![2, 3, 99])]);
    let code = |t: &str, p: i32| answers[&Tp::new(t, p)];
    assert_eq!(code("a", 0), ErrorCode::NONE);
    assert_eq!(code("b", 99), ErrorCode::INVALID_TXN_STATE, "left out of the answer");
    let produce_code = |t: &str, p: i32| produce_verify::produce_error(code(t, p)).map(|e| e.code);
    assert_eq!(produce_code("a", 0), None);
    assert_eq!(produce_code("a", 1), Some(ErrorCode::INVALID_TXN_STATE));
    assert_eq!(produce_code("b", 2), Some(ErrorCode::INVALID_PRODUCER_EPOCH));
    assert_eq!(produce_code("b", 3), Some(ErrorCode::NOT_ENOUGH_REPLICAS));
    // Nobody listening: a network error, retriable as NOT_ENOUGH_REPLICAS.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().to_string();
    let answers = produce_verify::verify_at(&closed, "test", &v, Duration::from_secs(2), &Default::default()).await;
    assert!(answers.values().all(|&c| c == ErrorCode::NETWORK_EXCEPTION));
}
