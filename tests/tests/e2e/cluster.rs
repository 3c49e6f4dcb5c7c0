//! A 3-node cluster in one process: three combined broker+controller nodes
//! forming one metadata quorum over loopback TCP. Checks that every node
//! reports all brokers and the same leaders, that partitions spread over all
//! nodes, that librdkafka produces to and consumes from every leader (plain
//! assignment and a consumer group), and that replication factor 3 is accepted
//! (replication itself: tests/replication.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

use klamm_tests::TestCluster;

use crate::common;

const TIMEOUT: Duration = Duration::from_secs(20);
const TOPIC: &str = "spread";
const PARTITIONS: i32 = 6;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_one_cluster() {
    let cluster = TestCluster::start(3, &["group.initial.rebalance.delay.ms=0", "offsets.topic.replication.factor=3"]).await.expect("start cluster");
    let bootstrap = cluster.bootstrap();
    let a = admin(&bootstrap);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));

    let r = a.create_topics(&[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))], &opts).await.expect("create");
    assert!(r[0].is_ok(), "{:?}", r[0]);
    let r = a.create_topics(&[NewTopic::new("rf3", 1, TopicReplication::Fixed(3))], &opts).await.expect("create rf3");
    assert!(r[0].is_ok(), "replication factor 3 on 3 brokers: {:?}", r[0]);
    let r = a.create_topics(&[NewTopic::new("rf4", 1, TopicReplication::Fixed(4))], &opts).await.expect("create rf4");
    let err = r[0].as_ref().expect_err("replication factor 4 on 3 brokers must be refused");
    assert_eq!(err.1, RDKafkaErrorCode::InvalidReplicationFactor);

    // Every node, asked alone, reports the 3 brokers and the same leaders, spread over all 3.
    let mut leaders_seen: Option<BTreeMap<i32, i32>> = None;
    for node in &cluster.nodes {
        let c = admin(&node.bootstrap());
        let md = c.inner().fetch_metadata(Some(TOPIC), TIMEOUT).expect("metadata");
        let ids: BTreeSet<i32> = md.brokers().iter().map(|b| b.id()).collect();
        assert_eq!(ids, BTreeSet::from([1, 2, 3]), "brokers seen from {}", node.bootstrap());
        let leaders: BTreeMap<i32, i32> = md.topics()[0].partitions().iter().map(|p| (p.id(), p.leader())).collect();
        assert_eq!(leaders.len(), PARTITIONS as usize);
        assert_eq!(leaders.values().copied().collect::<BTreeSet<_>>(), BTreeSet::from([1, 2, 3]), "leaders {leaders:?}");
        if let Some(prev) = &leaders_seen {
            assert_eq!(prev, &leaders, "nodes disagree on leaders");
        }
        leaders_seen = Some(leaders);
    }
    // Partitions are open only where they are hosted.
    for (i, _) in cluster.nodes.iter().enumerate() {
        let broker = cluster.broker(i).expect("broker running");
        let image = broker.metadata.image();
        for p in image.topic(TOPIC).expect("topic").partitions.values() {
            let local = broker.replicas.get(TOPIC, p.partition).is_some();
            assert_eq!(local, p.replicas.contains(&broker.node_id), "partition {} on node {}", p.partition, broker.node_id);
        }
    }

    // Produce to every partition, through a client that learns the leaders from node 1 only.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.nodes[0].bootstrap())
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    let per_partition = 5;
    for p in 0..PARTITIONS {
        for i in 0..per_partition {
            let value = format!("p{p}-m{i}");
            let rec = FutureRecord::<(), _>::to(TOPIC).partition(p).payload(&value);
            producer.send(rec, TIMEOUT).await.map_err(|(e, _)| e).expect("produce");
        }
    }

    // Read everything back with an assignment.
    let mut got = BTreeSet::new();
    for (partition, _, v) in common::must_read_from_beginning(&bootstrap, TOPIC, PARTITIONS, (PARTITIONS * per_partition) as usize, TIMEOUT) {
        assert!(v.starts_with(&format!("p{partition}-")), "{v} read from partition {partition}");
        got.insert(v);
    }
    assert_eq!(got.len(), (PARTITIONS * per_partition) as usize, "assigned consumer read {got:?}");

    // A consumer group: the coordinator is the leader of the group's __consumer_offsets partition.
    let group: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "cluster-group")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("group consumer");
    group.subscribe(&[TOPIC]).expect("subscribe");
    let mut got = BTreeSet::new();
    let read = async {
        while got.len() < (PARTITIONS * per_partition) as usize {
            let m = group.recv().await.expect("recv");
            got.insert(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    };
    tokio::time::timeout(Duration::from_secs(40), read).await.expect("group consumer read everything in time");
    group.commit_consumer_state(rdkafka::consumer::CommitMode::Sync).expect("commit");
    drop(group);

    let offsets = cluster.broker(0).expect("node 1").metadata.image();
    let offsets = offsets.topic("__consumer_offsets").expect("offsets topic");
    let hosts: BTreeSet<i32> = offsets.partitions.values().map(|p| p.leader).collect();
    assert!(offsets.partitions.values().all(|p| p.replicas.len() == 3), "offsets.topic.replication.factor=3");
    assert!(hosts.len() > 1, "__consumer_offsets spread over the nodes: {hosts:?}");

    cluster.stop().await.expect("stop cluster");
}

/// `process.roles=controller` (one voter, no Kafka listener) with two
/// `process.roles=broker` nodes following it: both brokers register, topics
/// spread over them, and produce/consume works on each leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_only_with_broker_only_nodes() {
    use klamm_broker::server::{start, start_node, RunningNode};
    let ctrl_port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let voters = format!("controller.quorum.voters=9@127.0.0.1:{ctrl_port}");
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    // Tests never bind the embedded default ops port (9644).
    let load = |mut props: Vec<String>| {
        props.push("klamm.http.listener=".into());
        props.push("klamm.schema.registry.listener=".into());
        klamm_config::BrokerConfig::load(None, &props).expect("config")
    };
    let controller = start_node(load(vec![
        "node.id=9".into(),
        "process.roles=controller".into(),
        format!("listeners=CONTROLLER://127.0.0.1:{ctrl_port}"),
        "controller.listener.names=CONTROLLER".into(),
        voters.clone(),
        format!("log.dirs={}", dirs[0].path().display()),
    ]))
    .await
    .expect("start controller");
    assert!(matches!(controller, RunningNode::Controller(_)));
    let mut brokers = Vec::new();
    for (i, dir) in dirs[1..].iter().enumerate() {
        let b = start(load(vec![
            format!("node.id={}", i + 1),
            "process.roles=broker".into(),
            "listeners=PLAINTEXT://127.0.0.1:0".into(),
            "controller.listener.names=CONTROLLER".into(),
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
            voters.clone(),
            format!("log.dirs={}", dir.path().display()),
        ]))
        .await
        .expect("start broker-only node");
        brokers.push(b);
    }
    let bootstrap: Vec<String> = brokers.iter().map(|b| b.broker.bound[0].1.to_string()).collect();
    let a = admin(&bootstrap.join(","));
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let r = a.create_topics(&[NewTopic::new("t4", 4, TopicReplication::Fixed(1))], &opts).await.expect("create");
    assert!(r[0].is_ok(), "{:?}", r[0]);
    for bs in &bootstrap {
        let md = admin(bs).inner().fetch_metadata(Some("t4"), TIMEOUT).expect("metadata");
        let ids: BTreeSet<i32> = md.brokers().iter().map(|b| b.id()).collect();
        assert_eq!(ids, BTreeSet::from([1, 2]), "controller-only node 9 is no broker");
        let leaders: BTreeSet<i32> = md.topics()[0].partitions().iter().map(|p| p.leader()).collect();
        assert_eq!(leaders, BTreeSet::from([1, 2]));
    }
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", &bootstrap[0]).set("message.timeout.ms", "20000").create().expect("producer");
    for p in 0..4 {
        let rec = FutureRecord::<(), _>::to("t4").partition(p).payload("v");
        producer.send(rec, TIMEOUT).await.map_err(|(e, _)| e).expect("produce");
    }
    for b in brokers {
        b.shutdown().await.expect("stop broker");
    }
    controller.shutdown().await.expect("stop controller");
}
