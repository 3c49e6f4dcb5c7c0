//! Leader-epoch and admin APIs checked against an independent codec (`kafka-protocol`), every
//! advertised version: OffsetForLeaderEpoch answers and fencing before and after a leader epoch
//! change.
//!
//! Epochs are bumped by proposing `ChangePartition` commands straight to the metadata quorum
//! (leader -1, then back), which is what a broker restart or a leader move does to the image.

mod common;

use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use klamm_raft::{MetadataCommand, NO_LEADER};

use common::{batch, topic, versions, Conn};
use klamm_tests::TestCluster;

async fn create(c: &mut Conn, name: &str, partitions: i32) {
    let req = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
        .with_name(topic(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let r = c.call(&req, 5).await;
    assert_eq!(r.topics[0].error_code, 0, "create {name}: {:?}", r.topics[0].error_message);
}

async fn produce(c: &mut Conn, name: &str, partition: i32, n: usize) -> i64 {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(topic(name))
        .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(batch(n)))])]);
    let r = c.call(&req, 9).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce: {:?}", p.error_message);
    p.base_offset
}

/// (partition, current_leader_epoch, leader_epoch)
fn ofle(name: &str, replica_id: i32, parts: &[(i32, i32, i32)]) -> OffsetForLeaderEpochRequest {
    let partitions = parts
        .iter()
        .map(|(p, current, epoch)| {
            OffsetForLeaderPartition::default().with_partition(*p).with_current_leader_epoch(*current).with_leader_epoch(*epoch)
        })
        .collect();
    OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_topics(vec![OffsetForLeaderTopic::default().with_topic(topic(name)).with_partitions(partitions)])
}

/// (error, leader epoch, end offset) per partition, in request order.
fn answers(r: &OffsetForLeaderEpochResponse) -> Vec<(i16, i32, i64)> {
    r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.error_code, p.leader_epoch, p.end_offset))).collect()
}

/// Moves the leadership of `name`-`partition` away and back (leader epoch +2), the way a
/// restart of its broker does, and waits until the local partition serves the new epoch.
async fn bump_leader_epoch(cluster: &TestCluster, name: &str, partition: i32) -> i32 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_for_leader_epoch_every_version() {
    let cluster = TestCluster::start(1, &[]).await.expect("start");
    let mut c = Conn::open(cluster.nodes[0].addr).await;
    let advertised = c.api_versions().await;
    let name = "ofle";
    create(&mut c, name, 2).await;
    assert_eq!(produce(&mut c, name, 0, 5).await, 0);

    const NONE: i16 = 0;
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const FENCED_LEADER_EPOCH: i16 = 74;
    const UNKNOWN_LEADER_EPOCH: i16 = 75;
    let v_all = versions::<OffsetForLeaderEpochRequest>(&advertised);
    assert_eq!(v_all, vec![2, 3, 4], "Kafka 4.x serves OffsetForLeaderEpoch v2-4");

    // Epoch 0: the only epoch, so it ends at the log end offset.
    for &v in &v_all {
        let req = ofle(name, -1, &[(0, -1, 0), (0, 0, 0), (0, 1, 0), (1, 0, 0), (9, -1, 0), (0, -1, 3)]);
        let r = c.call(&req, v).await;
        assert_eq!(
            answers(&r),
            vec![
                (NONE, 0, 5),
                (NONE, 0, 5),
                (UNKNOWN_LEADER_EPOCH, -1, -1),
                (NONE, 0, 0), // an empty log: epoch 0 (current) ends at offset 0
                (UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
                (NONE, -1, -1), // an epoch newer than the partition's is unknown
            ],
            "v{v}"
        );
        let r = c.call(&ofle("no-such-topic", -1, &[(0, -1, 0)]), v).await;
        assert_eq!(answers(&r), vec![(UNKNOWN_TOPIC_OR_PARTITION, -1, -1)], "v{v}");
    }

    // Leader epoch 2 (away and back), three more records stamped with it.
    assert_eq!(bump_leader_epoch(&cluster, name, 0).await, 2);
    assert_eq!(bump_leader_epoch(&cluster, name, 1).await, 2);
    for &v in &v_all {
        // Before anything is written in epoch 2 it ends at the log end offset too.
        let r = c.call(&ofle(name, -1, &[(0, 2, 2), (0, 2, 0), (1, 2, 2)]), v).await;
        assert_eq!(answers(&r), vec![(NONE, 2, 5), (NONE, 0, 5), (NONE, 2, 0)], "v{v}");
    }
    assert_eq!(produce(&mut c, name, 0, 3).await, 5);
    for &v in &v_all {
        // A follower (replica_id 2, v3+) gets the same answers from the leader.
        let req = ofle(name, 2, &[(0, -1, 0), (0, 2, 1), (0, 2, 2), (0, 0, 0), (0, 3, 2), (0, -1, 3)]);
        let r = c.call(&req, v).await;
        assert_eq!(
            answers(&r),
            vec![
                (NONE, 0, 5), // epoch 0 ended where epoch 2 began
                (NONE, 0, 5), // epoch 1 never wrote here: the largest epoch below it is 0
                (NONE, 2, 8),
                (FENCED_LEADER_EPOCH, -1, -1),
                (UNKNOWN_LEADER_EPOCH, -1, -1),
                (NONE, -1, -1),
            ],
            "v{v}"
        );
    }
    cluster.stop().await.expect("stop");
}
