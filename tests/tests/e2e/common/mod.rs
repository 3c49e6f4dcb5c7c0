//! Shared by the integration tests: a raw Kafka connection whose requests are encoded and
//! responses decoded by the independent `kafka-protocol` crate (which must consume every
//! response byte), for the oracle and wire tests; metadata changes proposed straight to a
//! node's quorum; and reading a topic back with librdkafka, for the cluster tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiVersionsResponse, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};
use klamm_raft::{MetadataCommand, NO_LEADER};
use klamm_tests::TestCluster;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::TopicPartitionList;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Conn {
    stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        Conn { stream: TcpStream::connect(addr).await.expect("connect"), correlation_id: 0 }
    }

    pub async fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let mut body = BytesMut::new();
        request.encode(&mut body, version).expect("encode request");
        self.send_raw::<R>(version, &body).await;
        let size = self.stream.read_i32().await.expect("response size");
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf).await.expect("response body");
        let mut buf = Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut buf, <R::Response as HeaderVersion>::header_version(version))
            .expect("decode response header");
        assert_eq!(rh.correlation_id, self.correlation_id, "{} v{version}: correlation id", R::KEY);
        let response = <R::Response as Decodable>::decode(&mut buf, version)
            .unwrap_or_else(|e| panic!("api {} v{version}: response does not decode: {e}", R::KEY));
        assert_eq!(buf.remaining(), 0, "api {} v{version}: {} trailing response bytes", R::KEY, buf.remaining());
        response
    }

    /// Sends `body` as it is after a well-formed request header for `R` at `version`: a way to
    /// send what the codec would never encode (a truncated or garbage body).
    pub async fn send_raw<R: Request>(&mut self, version: i16, body: &[u8]) {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("oracle")));
        let mut payload = BytesMut::new();
        header.encode(&mut payload, R::header_version(version)).expect("encode header");
        payload.extend_from_slice(body);
        let mut frame = BytesMut::with_capacity(payload.len() + 4);
        frame.put_i32(payload.len() as i32);
        frame.extend_from_slice(&payload);
        self.stream.write_all(&frame).await.expect("send");
    }

    /// Panics unless the broker closes this connection within `within` without answering.
    pub async fn must_be_closed(&mut self, within: Duration) {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(within, self.stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(_)) => panic!("the broker answered instead of closing the connection"),
            Err(_) => panic!("the connection is still open after {within:?}"),
        }
    }

    /// The broker's ApiVersions (v0, which every broker answers).
    pub async fn api_versions(&mut self) -> ApiVersionsResponse {
        let r = self.call(&kafka_protocol::messages::ApiVersionsRequest::default(), 0).await;
        assert_eq!(r.error_code, 0);
        r
    }
}

/// Versions we advertise for `R` that the oracle also knows; panics when `R` is not advertised.
pub fn versions<R: Request + Message>(advertised: &ApiVersionsResponse) -> Vec<i16> {
    let ours = advertised
        .api_keys
        .iter()
        .find(|k| k.api_key == R::KEY)
        .unwrap_or_else(|| panic!("api {} not advertised", R::KEY));
    (ours.min_version.max(R::VERSIONS.min)..=ours.max_version.min(R::VERSIONS.max)).collect()
}

pub fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// One uncompressed batch of `n` small records (Klamm's builder: Produce v3+ carries one batch).
pub fn batch(n: usize) -> Bytes {
    let mut b = klamm_protocol::records::RecordBatchBuilder::new(0);
    for i in 0..n {
        let value = format!("value-{i}");
        b = b.record_with_headers(1_700_000_000_000 + i as i64, None, Some(value.as_bytes()), &[]);
    }
    b.build()
}

/// Reads partitions `0..partitions` of `topic` from the beginning with an assigned librdkafka
/// consumer (no group membership, nothing committed) until `want` records arrived or
/// `timeout` passed. Returns `(partition, offset, value)` in the order they were read.
pub fn must_read_from_beginning(bootstrap: &str, topic: &str, partitions: i32, want: usize, timeout: Duration) -> Vec<(i32, i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "read-from-beginning")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut read = Vec::new();
    let deadline = Instant::now() + timeout;
    while read.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            read.push((m.partition(), m.offset(), String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string()));
        }
    }
    read
}

/// Moves the leadership of `name`-`partition` away and back (leader epoch +2), the way a
/// restart of its broker does, and waits until the local partition serves the new epoch.
pub async fn bump_leader_epoch(cluster: &TestCluster, name: &str, partition: i32) -> i32 {
    let broker = cluster.broker(0).expect("node 1 running");
    for leader in [NO_LEADER, broker.node_id] {
        let image = broker.metadata.image();
        let topic = image.topic(name).expect("topic");
        let p = topic.partitions.get(&partition).expect("partition");
        if p.leader == leader {
            continue; // the controller got there first
        }
        let change = MetadataCommand::ChangePartition {
            topic_id: topic.topic_id,
            partition,
            expected_partition_epoch: p.partition_epoch,
            leader: Some(leader),
            isr: None,
        };
        broker.metadata.propose(change).await.expect("propose");
    }
    let want = broker.metadata.image().partition(name, partition).expect("partition").leader_epoch;
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.replicas.get(name, partition).map(|p| p.view().leader_epoch) != Some(want) {
        assert!(Instant::now() < deadline, "local partition never reached leader epoch {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    want
}

/// Proposes `cmd` on node 1 and insists that it applies.
pub async fn must_propose(cluster: &TestCluster, cmd: MetadataCommand) -> klamm_raft::AppliedInfo {
    let broker = cluster.broker(0).expect("node 1 running");
    let name = cmd.name();
    match broker.metadata.propose(cmd).await.expect("propose") {
        klamm_raft::CommandOutcome::Applied(info) => info,
        klamm_raft::CommandOutcome::Rejected(r) => panic!("{name} rejected: {r}"),
    }
}
