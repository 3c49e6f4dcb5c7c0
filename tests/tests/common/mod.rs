//! Shared by the integration tests: a raw Kafka connection whose requests are encoded and
//! responses decoded by the independent `kafka-protocol` crate (which must consume every
//! response byte), for the oracle and wire tests; and reading a topic back with librdkafka,
//! for the cluster tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiVersionsResponse, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};
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
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("oracle")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version)).expect("encode header");
        request.encode(&mut body, version).expect("encode request");
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).await.expect("send");

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
