//! librdkafka (the `rdkafka` crate) against an in-process broker: produce and
//! consume keys, values, headers, timestamps, null values and 1 MiB values,
//! byte-exact, with and without the idempotent producer.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use klamm_tests::TestBroker;

const TIMEOUT: Duration = Duration::from_secs(20);

fn producer(bootstrap: &str, idempotent: bool) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", if idempotent { "true" } else { "false" })
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.max.bytes", "2000000")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("create producer")
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "klamm-tests-unused")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "10000000")
        .set("max.partition.fetch.bytes", "2000000")
        .create()
        .expect("create consumer")
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    create_topic_with(bootstrap, name, partitions, &[]).await
}

async fn create_topic_with(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin");
    let results = admin
        .create_topics(
            &[configs.iter().fold(NewTopic::new(name, partitions, TopicReplication::Fixed(1)), |t, (k, v)| t.set(k, v))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    for r in results {
        r.expect("topic created");
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Sent {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

/// Reads `count` messages of one partition from `start` with a bounded loop.
fn read_partition(c: &BaseConsumer, topic: &str, partition: i32, start: i64, count: usize) -> Vec<(i64, Sent)> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start)).unwrap();
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while out.len() < count && std::time::Instant::now() < deadline {
        let Some(msg) = c.poll(Duration::from_millis(200)) else { continue };
        let msg = msg.expect("consume error");
        let headers = msg
            .headers()
            .map(|h| h.iter().map(|x| (x.key.to_string(), x.value.map(|v| v.to_vec()))).collect())
            .unwrap_or_default();
        out.push((
            msg.offset(),
            Sent {
                key: msg.key().map(|k| k.to_vec()),
                value: msg.payload().map(|v| v.to_vec()),
                headers,
                timestamp: msg.timestamp().to_millis().unwrap_or(-1),
            },
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_byte_exact() {
    let broker = TestBroker::start(&[]).await.expect("start broker");
    let bootstrap = broker.bootstrap();
    // A 1 MiB value does not fit Kafka's default max.message.bytes (1 MiB + 12):
    // raise it for the topic, as a Kafka user would.
    create_topic_with(&bootstrap, "roundtrip", 1, &[("max.message.bytes", "2000000")]).await;

    let base_ts = 1_700_000_000_000i64;
    let mut sent = Vec::new();
    for i in 0..200u32 {
        let key = if i % 7 == 0 { None } else { Some(format!("user-{}", i % 13).into_bytes()) };
        let value = if i % 11 == 0 { None } else { Some(format!("{{\"order\":{i},\"bytes\":\"{}\"}}", "x".repeat((i % 50) as usize)).into_bytes()) };
        let headers = if i % 3 == 0 {
            vec![("trace".to_string(), Some(format!("t-{i}").into_bytes())), ("empty".to_string(), None)]
        } else {
            vec![]
        };
        sent.push(Sent { key, value, headers, timestamp: base_ts + i as i64 });
    }
    // A 1 MiB value, binary.
    let big: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    sent.push(Sent { key: Some(b"big".to_vec()), value: Some(big), headers: vec![], timestamp: base_ts + 1000 });

    let p = producer(&bootstrap, true);
    for (i, s) in sent.iter().enumerate() {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &s.headers {
            headers = headers.insert(Header { key: k, value: v.as_deref() });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to("roundtrip").partition(0).timestamp(s.timestamp).headers(headers);
        if let Some(k) = &s.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &s.value {
            record = record.payload(v.as_slice());
        }
        let delivery = p.send(record, TIMEOUT).await.map_err(|(e, _)| e).expect("delivered");
        assert_eq!(delivery.offset, i as i64, "offsets are dense and in send order");
    }

    let c = consumer(&bootstrap);
    let got = read_partition(&c, "roundtrip", 0, 0, sent.len());
    assert_eq!(got.len(), sent.len(), "every record read back");
    for (i, (offset, record)) in got.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(record, &sent[i], "record {i} differs");
    }

    // Replay from an offset in the middle.
    let tail = read_partition(&c, "roundtrip", 0, 150, sent.len() - 150);
    assert_eq!(tail.first().map(|(o, _)| *o), Some(150));
    assert_eq!(tail.len(), sent.len() - 150);

    let (low, high) = c.fetch_watermarks("roundtrip", 0, TIMEOUT).expect("watermarks");
    assert_eq!((low, high), (0, sent.len() as i64));
    broker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_many_partitions_no_duplicates() {
    let broker = TestBroker::start(&[]).await.expect("start broker");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "idem", 3).await;
    let p = producer(&bootstrap, true);
    let n = 3000;
    let keys: Vec<String> = (0..n).map(|i| format!("k{}", i % 97)).collect();
    let values: Vec<String> = (0..n).map(|i| format!("{i}")).collect();
    let mut futures = Vec::new();
    for i in 0..n {
        // send_result enqueues now (send() would enqueue only when awaited).
        futures.push(p.send_result(FutureRecord::to("idem").key(&keys[i]).payload(&values[i])).map_err(|(e, _)| e).expect("enqueued"));
    }
    let mut per_partition: Vec<Vec<i64>> = vec![Vec::new(); 3];
    for f in futures {
        let d = f.await.expect("not cancelled").map_err(|(e, _)| e).expect("delivered");
        per_partition[d.partition as usize].push(d.offset);
    }
    let c = consumer(&bootstrap);
    let mut total = 0;
    for (partition, offsets) in per_partition.iter().enumerate() {
        let got = read_partition(&c, "idem", partition as i32, 0, offsets.len());
        assert_eq!(got.len(), offsets.len());
        // Values of one key arrive in send order.
        let mut last_by_key = std::collections::HashMap::new();
        for (_, s) in &got {
            let key = String::from_utf8(s.key.clone().unwrap()).unwrap();
            let v: i64 = String::from_utf8(s.value.clone().unwrap()).unwrap().parse().unwrap();
            if let Some(prev) = last_by_key.insert(key, v) {
                assert!(v > prev, "order per key preserved");
            }
        }
        total += got.len();
        let (_, high) = c.fetch_watermarks("idem", partition as i32, TIMEOUT).unwrap();
        assert_eq!(high as usize, offsets.len(), "no duplicates appended");
    }
    assert_eq!(total, n);
    broker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_clean_restart() {
    let broker = TestBroker::start(&["num.partitions=2"]).await.expect("start broker");
    let bootstrap = broker.bootstrap();
    let p = producer(&bootstrap, false);
    for i in 0..50 {
        // Auto-created on first metadata request.
        p.send(FutureRecord::to("restart_me").partition(i % 2).key("k").payload(&format!("v{i}")), TIMEOUT)
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
    drop(p);
    let broker = broker.restart(&["num.partitions=2"]).await.expect("restart");
    let bootstrap = broker.bootstrap();
    let c = consumer(&bootstrap);
    let got0 = read_partition(&c, "restart_me", 0, 0, 25);
    let got1 = read_partition(&c, "restart_me", 1, 0, 25);
    assert_eq!(got0.len() + got1.len(), 50);
    let p = producer(&bootstrap, false);
    let d = p
        .send(FutureRecord::to("restart_me").partition(0).key("k").payload("after"), TIMEOUT)
        .await
        .map_err(|(e, _)| e)
        .expect("delivered");
    assert_eq!(d.offset, 25, "offsets continue after restart");
    broker.stop().await.unwrap();
}
