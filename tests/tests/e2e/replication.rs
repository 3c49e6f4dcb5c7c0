//! Replication on a 3-node cluster in one process, driven by librdkafka (the `rdkafka`
//! crate): a topic with replication factor 3 and `min.insync.replicas=2` is written with
//! acks=all and an idempotent producer; every replica ends byte-identical with the same high
//! watermark; a controlled shutdown of a leader moves leadership and acks=all goes on; with
//! two nodes down acks=all is refused with NOT_ENOUGH_REPLICAS while acks=1 still works;
//! restarted nodes catch up and rejoin the ISR, and every acknowledged record is read back
//! exactly once at the offset it was acknowledged at.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

use klamm_tests::TestCluster;

use crate::common;

const TOPIC: &str = "orders_rf3";
const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(30);

fn producer(bootstrap: &str, acks: &str, idempotent: bool) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("enable.idempotence", if idempotent { "true" } else { "false" })
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "2")
        .create()
        .expect("producer")
}

/// Produces `count` values to partition `p`, returning (offset, value) of each.
async fn produce(producer: &FutureProducer, p: i32, prefix: &str, count: usize) -> Vec<(i64, String)> {
    let mut sends = Vec::new();
    for i in 0..count {
        let value = format!("{prefix}-p{p}-{i}");
        let fut = producer.send_result(FutureRecord::<(), _>::to(TOPIC).partition(p).payload(&value)).expect("enqueue");
        sends.push((value, fut));
    }
    let mut acked = Vec::new();
    for (value, fut) in sends {
        let delivery = fut.await.expect("delivery future").map_err(|(e, _)| e).expect("acks=all produce");
        assert_eq!(delivery.partition, p);
        acked.push((delivery.offset, value));
    }
    acked
}

/// Waits (bounded) until `check` holds on the cluster's current state.
async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("timed out waiting for {what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Every running replica of every partition has the same log end offset, equal to the high
/// watermark, the ISR has `isr` members, and the bytes below the high watermark are identical.
fn replicas_in_sync(cluster: &TestCluster, isr: usize) -> Result<(), String> {
    for p in 0..PARTITIONS {
        let mut first: Option<(i32, bytes::Bytes)> = None;
        for i in 0..cluster.nodes.len() {
            let Some(broker) = cluster.broker(i) else { continue };
            let image = broker.metadata.image();
            let meta = image.partition(TOPIC, p).ok_or("no partition in image")?;
            if meta.isr.len() != isr {
                return Err(format!("partition {p}: isr {:?} on node {}", meta.isr, broker.node_id));
            }
            let local = broker.replicas.get(TOPIC, p).ok_or("partition not open")?;
            let view = local.view();
            if view.high_watermark != view.log_end_offset {
                return Err(format!("partition {p} node {}: hw {} leo {}", broker.node_id, view.high_watermark, view.log_end_offset));
            }
            let data = local.reader().read(view.log_start_offset, usize::MAX >> 1, view.log_end_offset, true).map_err(|e| e.to_string())?.bytes;
            match &first {
                None => first = Some((broker.node_id, data)),
                Some((node, bytes)) if *bytes != data => {
                    return Err(format!("partition {p}: node {node} has {} bytes, node {} {}", bytes.len(), broker.node_id, data.len()))
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

fn leader_of(cluster: &TestCluster, p: i32) -> Option<i32> {
    (0..cluster.nodes.len()).find_map(|i| cluster.broker(i)).and_then(|b| b.metadata.image().partition(TOPIC, p).map(|m| m.leader))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rf3_acks_all_failover_and_catch_up() {
    let mut cluster = TestCluster::start(
        3,
        &["broker.session.timeout.ms=3000", "replica.lag.time.max.ms=3000", "group.initial.rebalance.delay.ms=0"],
    )
    .await
    .expect("start cluster");
    let bootstrap = cluster.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &bootstrap).create().expect("admin");
    let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    let r = admin.create_topics(&[topic], &AdminOptions::new().operation_timeout(Some(TIMEOUT))).await.expect("create");
    assert!(r[0].is_ok(), "{:?}", r[0]);

    // 1. acks=all, idempotent: every replica gets every record, byte for byte.
    let mut acked: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let all = producer(&bootstrap, "all", true);
    for p in 0..PARTITIONS {
        for (offset, value) in produce(&all, p, "a", 40).await {
            assert!(acked.insert((p, offset), value).is_none(), "offset acknowledged twice");
        }
    }
    wait_for("3 replicas in sync", TIMEOUT, || replicas_in_sync(&cluster, 3)).await;

    // 2. Controlled shutdown of partition 0's leader: leadership moves, acks=all goes on.
    let old_leader = leader_of(&cluster, 0).expect("leader");
    let stopped = (old_leader - 1) as usize;
    cluster.stop_node(stopped).await.expect("stop leader");
    wait_for("a new leader for partition 0", TIMEOUT, || match leader_of(&cluster, 0) {
        Some(l) if l != old_leader && l > 0 => Ok(()),
        other => Err(format!("leader {other:?}")),
    })
    .await;
    for p in 0..PARTITIONS {
        for (offset, value) in produce(&all, p, "b", 20).await {
            assert!(acked.insert((p, offset), value).is_none(), "offset acknowledged twice");
        }
    }

    // 3. A second node down: the ISR of 1 is below min.insync.replicas=2.
    let survivor_id = leader_of(&cluster, 0).expect("leader");
    let second = (0..3).find(|i| *i != stopped && *i as i32 + 1 != survivor_id).expect("another node");
    cluster.stop_node(second).await.expect("stop second node");
    let survivor = cluster.running_bootstrap();
    let strict: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &survivor)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("retries", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    let err = strict
        .send(FutureRecord::<(), _>::to(TOPIC).partition(0).payload("refused"), TIMEOUT)
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
        .expect_err("acks=all with one in-sync replica must fail");
    assert!(matches!(err, KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)), "{err:?}");
    let relaxed = producer(&survivor, "1", false);
    let delivery = relaxed
        .send(FutureRecord::<(), _>::to(TOPIC).partition(0).payload("acks1-while-degraded"), TIMEOUT)
        .await
        .map_err(|(e, _)| e)
        .expect("acks=1 works on the live leader");
    acked.insert((delivery.partition, delivery.offset), "acks1-while-degraded".to_string());

    // 4. Both come back, catch up and rejoin the ISR; replicas are identical again.
    cluster.start_node(stopped).await.expect("restart first");
    cluster.start_node(second).await.expect("restart second");
    wait_for("replicas back in sync", Duration::from_secs(60), || replicas_in_sync(&cluster, 3)).await;
    let all = producer(&cluster.bootstrap(), "all", true);
    for (offset, value) in produce(&all, 1, "c", 10).await {
        assert!(acked.insert((1, offset), value).is_none(), "offset acknowledged twice");
    }

    // 5. Every acknowledged record is where it was acknowledged, once.
    let mut read: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for (partition, offset, value) in common::must_read_from_beginning(&cluster.bootstrap(), TOPIC, PARTITIONS, acked.len(), TIMEOUT) {
        assert!(read.insert((partition, offset), value).is_none(), "offset read twice");
    }
    for (key, value) in &acked {
        assert_eq!(read.get(key), Some(value), "acknowledged record at {key:?}");
    }
    let mut values: Vec<&String> = read.values().collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), read.len(), "a value was stored twice");
    cluster.stop().await.expect("stop cluster");
}
