//! A follower whose leader serves a corrupt batch: a real broker (node 1) follows a
//! partition led by broker 2, which is registered in the metadata log with the address of a
//! fake leader this test runs (a TCP server speaking just enough Fetch v12, encoded by the
//! independent `kafka-protocol` codec). The fake first answers with a batch whose CRC does
//! not match, then with good data. Checked: nothing of the corrupt answer is appended, the
//! partition is flagged and counted, the follower's fetches back off (a handful in seconds
//! rather than one every 20 ms), and the good batch is appended once it is served.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use klamm_raft::{BrokerEndpoint, MetadataCommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::{batch, must_propose};
use klamm_tests::TestCluster;

const TOPIC: &str = "from-a-bad-leader";
const REAL_FOLLOWER: i32 = 1;
const FAKE_LEADER: i32 = 2;
const RECORDS: i64 = 5;
/// How long the fake serves the corrupt batch.
const CORRUPT_PHASE: Duration = Duration::from_secs(3);

/// What the fake leader serves, and the fetches it saw.
struct Fake {
    corrupt: bool,
    /// (when, fetch offset) of every fetch of the partition.
    fetches: Vec<(Instant, i64)>,
}

/// The good batch (offsets 0..RECORDS) and the same with its last byte flipped (a CRC mismatch).
fn good_and_corrupt() -> (Bytes, Bytes) {
    let good = batch(RECORDS as usize);
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    (good, Bytes::from(bad))
}

/// Answers Fetch v12 requests on one connection until it closes.
async fn serve(mut stream: TcpStream, fake: Arc<Mutex<Fake>>) {
    let (good, corrupt) = good_and_corrupt();
    loop {
        let Ok(size) = stream.read_i32().await else { return };
        let mut buf = vec![0u8; size.max(0) as usize];
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        let mut buf = Bytes::from(buf);
        let header = RequestHeader::decode(&mut buf, FetchRequest::header_version(12)).expect("request header");
        assert_eq!((header.request_api_key, header.request_api_version), (1, 12), "the replica fetcher sends Fetch v12");
        let request = FetchRequest::decode(&mut buf, 12).expect("fetch request");
        assert_eq!(request.replica_id.0, REAL_FOLLOWER);
        let fetch = &request.topics[0].partitions[0];
        let fetch_offset = fetch.fetch_offset;
        let records = {
            let mut f = fake.lock().expect("fake state");
            f.fetches.push((Instant::now(), fetch_offset));
            match (f.corrupt, fetch_offset) {
                (true, _) => Some(corrupt.clone()),
                (false, 0) => Some(good.clone()),
                (false, _) => None,
            }
        };
        if records.is_none() {
            // Nothing new: long-poll as a leader does, so the follower does not spin.
            tokio::time::sleep(Duration::from_millis(request.max_wait_ms.clamp(0, 500) as u64)).await;
        }
        let partition = PartitionData::default()
            .with_partition_index(0)
            .with_high_watermark(RECORDS)
            .with_last_stable_offset(RECORDS)
            .with_log_start_offset(0)
            .with_records(records);
        let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(request.topics[0].topic.clone())
            .with_partitions(vec![partition])]);
        let mut body = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut body, FetchResponse::header_version(12))
            .expect("response header");
        response.encode(&mut body, 12).expect("fetch response");
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        if stream.write_all(&frame).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_batch_from_the_leader_is_refused_backed_off_and_recovered_from() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("fake leader listens");
    let port = listener.local_addr().expect("fake address").port();
    let fake = Arc::new(Mutex::new(Fake { corrupt: true, fetches: Vec::new() }));
    let server = {
        let fake = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, fake.clone()));
            }
        })
    };

    let cluster = TestCluster::start(1, &["broker.session.timeout.ms=600000", "replica.lag.time.max.ms=600000"]).await.expect("start");
    let endpoint = BrokerEndpoint { listener: "PLAINTEXT".into(), host: "127.0.0.1".into(), port, security_protocol: "PLAINTEXT".into() };
    let reg = MetadataCommand::RegisterBroker { node_id: FAKE_LEADER, incarnation_id: [2; 16], endpoints: vec![endpoint], rack: None };
    let epoch = must_propose(&cluster, reg).await.broker_epoch.expect("broker epoch");
    must_propose(&cluster, MetadataCommand::UnfenceBroker { node_id: FAKE_LEADER, epoch }).await;
    let partitions = vec![klamm_raft::NewPartition { partition: 0, replicas: vec![FAKE_LEADER, REAL_FOLLOWER] }];
    must_propose(&cluster, MetadataCommand::CreateTopic { name: TOPIC.into(), topic_id: [43; 16], partitions, configs: Default::default() }).await;
    let image = cluster.broker(0).expect("node 1").metadata.image().partition(TOPIC, 0).cloned().expect("partition");
    assert_eq!(image.leader, FAKE_LEADER, "the fake leads");

    // The follower fetches and gets the corrupt batch.
    let broker = cluster.broker(0).expect("node 1").clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let partition = loop {
        if let Some(p) = broker.replicas.get(TOPIC, 0) {
            if p.follower_health().failing.is_some() {
                break p;
            }
        }
        assert!(Instant::now() < deadline, "the follower never reported the corrupt batch");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first_refusal = Instant::now();
    tokio::time::sleep(CORRUPT_PHASE).await;
    let health = partition.follower_health();
    assert_eq!(partition.view().log_end_offset, 0, "nothing of the corrupt answer is appended");
    assert!(health.failing.as_deref().is_some_and(|f| f.contains("crc mismatch")), "flagged: {health:?}");
    let fetches_while_corrupt = fake.lock().expect("fake state").fetches.iter().filter(|(at, _)| *at >= first_refusal).count();
    // Without back-off the fetcher would retry every 20 ms (about 150 times); doubling from
    // 200 ms it asks about 4 times.
    assert!(fetches_while_corrupt <= 8, "{fetches_while_corrupt} fetches in {CORRUPT_PHASE:?}: no back-off");
    assert!(health.corrupt_batches_from_leader >= 2, "retried and counted: {health:?}");

    // The leader serves good data again: the follower appends it and clears the flag.
    fake.lock().expect("fake state").corrupt = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while partition.view().log_end_offset < RECORDS {
        assert!(Instant::now() < deadline, "the follower never appended the good batch");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = partition.view();
    assert_eq!((view.log_end_offset, view.high_watermark), (RECORDS, RECORDS));
    let health = partition.follower_health();
    assert_eq!(health.failing, None, "recovered");
    assert!(health.corrupt_batches_from_leader >= 2);

    server.abort();
    cluster.stop().await.expect("stop");
}
