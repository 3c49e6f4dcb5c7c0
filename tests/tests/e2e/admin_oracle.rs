//! Leader-epoch and leadership admin APIs checked against an independent codec
//! (`kafka-protocol`), every advertised version: OffsetForLeaderEpoch answers and fencing before
//! and after a leader epoch change; ElectLeaders (preferred and unclean); the active
//! controller's automatic preferred-leader rebalance; Metadata / DescribeCluster /
//! DescribeTopicPartitions; partition reassignment moving data between brokers of a 3-node
//! cluster through replication, and its cancellation.
//!
//! Leadership is changed by proposing commands straight to the metadata quorum (what a broker
//! restart or a leader move does to the image), and a second replica is a broker registered in
//! the metadata log without a process behind it, so these run before data replication exists.

use crate::common;

use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use klamm_raft::MetadataCommand;

use common::{batch, bump_leader_epoch, must_propose, topic, versions, Conn};
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

fn partition_state(cluster: &TestCluster, name: &str, partition: i32) -> (i32, Vec<i32>, i32) {
    let image = cluster.broker(0).expect("node 1").metadata.image();
    let p = image.partition(name, partition).expect("partition");
    (p.leader, p.isr.clone(), p.leader_epoch)
}

async fn set_partition(cluster: &TestCluster, name: &str, partition: i32, leader: i32, isr: &[i32]) {
    let image = cluster.broker(0).expect("node 1").metadata.image();
    let topic = image.topic(name).expect("topic");
    let epoch = topic.partitions[&partition].partition_epoch;
    must_propose(
        cluster,
        MetadataCommand::ChangePartition {
            topic_id: topic.topic_id,
            partition,
            expected_partition_epoch: epoch,
            leader: Some(leader),
            isr: Some(isr.to_vec()),
        },
    )
    .await;
}

fn elect_request(kind: i8, topics: Option<&[(&str, &[i32])]>) -> ElectLeadersRequest {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    ElectLeadersRequest::default().with_election_type(kind).with_timeout_ms(10_000).with_topic_partitions(
        topics.map(|ts| ts.iter().map(|(t, ps)| TopicPartitions::default().with_topic(topic(t)).with_partitions(ps.to_vec())).collect()),
    )
}

/// (topic, partition, error) in response order.
fn elect_results(r: &ElectLeadersResponse) -> Vec<(String, i32, i16)> {
    r.replica_election_results
        .iter()
        .flat_map(|t| t.partition_result.iter().map(move |p| (t.topic.0.to_string(), p.partition_id, p.error_code)))
        .collect()
}

/// ElectLeaders, every version. Replication between brokers is not needed to check the
/// elections: broker 2 is registered through the metadata log without a process behind it
/// (no endpoint, so the controller never probes it; the session timeout is long), which lets
/// partitions have a second replica whose liveness the test controls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_leaders_every_version() {
    const NONE: i16 = 0;
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const INVALID_REQUEST: i16 = 42;
    const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
    const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
    const ELECTION_NOT_NEEDED: i16 = 84;
    const PREFERRED: i8 = 0;
    const UNCLEAN: i8 = 1;

    let cluster = TestCluster::start(1, &["broker.session.timeout.ms=600000"]).await.expect("start");
    let mut c = Conn::open(cluster.nodes[0].addr).await;
    let advertised = c.api_versions().await;
    let v_all = versions::<ElectLeadersRequest>(&advertised);
    assert_eq!(v_all, vec![0, 1, 2]);
    let reg = MetadataCommand::RegisterBroker { node_id: 2, incarnation_id: [2; 16], endpoints: vec![], rack: None };
    let mut epoch2 = must_propose(&cluster, reg).await.broker_epoch.expect("broker epoch");

    for (i, &v) in v_all.iter().enumerate() {
        must_propose(&cluster, MetadataCommand::UnfenceBroker { node_id: 2, epoch: epoch2 }).await;
        let name = format!("elect-v{v}");
        let partitions = [vec![1, 2], vec![2, 1], vec![2], vec![2, 1]]
            .into_iter()
            .enumerate()
            .map(|(p, replicas)| klamm_raft::NewPartition { partition: p as i32, replicas })
            .collect();
        let create = MetadataCommand::CreateTopic {
            name: name.clone(),
            topic_id: [10 + i as u8; 16],
            partitions,
            configs: Default::default(),
        };
        must_propose(&cluster, create).await;
        let n = name.as_str();

        // Everything led by its preferred replica.
        let r = c.call(&elect_request(PREFERRED, Some(&[(n, &[0, 1, 2, 9]), ("no-such-topic", &[0])])), v).await;
        assert_eq!(r.error_code, 0);
        let want = vec![
            (name.clone(), 0, ELECTION_NOT_NEEDED),
            (name.clone(), 1, ELECTION_NOT_NEEDED),
            (name.clone(), 2, ELECTION_NOT_NEEDED),
            (name.clone(), 9, UNKNOWN_TOPIC_OR_PARTITION),
            ("no-such-topic".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
        ];
        assert_eq!(elect_results(&r), want, "v{v}");
        let not_needed = &r.replica_election_results[0].partition_result[0];
        assert!(not_needed.error_message.is_some(), "v{v}: errors carry a message");

        // Leadership of partition 0 moved to 2: the preferred election moves it back.
        set_partition(&cluster, n, 0, 2, &[1, 2]).await;
        let (_, _, epoch_before) = partition_state(&cluster, n, 0);
        let r = c.call(&elect_request(PREFERRED, Some(&[(n, &[0])])), v).await;
        assert_eq!(elect_results(&r), vec![(name.clone(), 0, NONE)], "v{v}");
        assert_eq!(r.replica_election_results[0].partition_result[0].error_message, None, "v{v}: no message on success");
        assert_eq!(partition_state(&cluster, n, 0), (1, vec![1, 2], epoch_before + 1), "v{v}");

        // Partition 3's ISR shrank to [2]; then broker 2 is fenced: partition 1 moves to 1,
        // partitions 2 and 3 have no leader (their ISR is [2]).
        set_partition(&cluster, n, 3, 2, &[2]).await;
        must_propose(&cluster, MetadataCommand::FenceBroker { node_id: 2, epoch: epoch2 }).await;
        assert_eq!(partition_state(&cluster, n, 1).0, 1);
        assert_eq!(partition_state(&cluster, n, 2).0, -1);
        assert_eq!(partition_state(&cluster, n, 3).0, -1);
        let r = c.call(&elect_request(PREFERRED, Some(&[(n, &[1, 2])])), v).await;
        assert_eq!(
            elect_results(&r),
            vec![(name.clone(), 1, PREFERRED_LEADER_NOT_AVAILABLE), (name.clone(), 2, PREFERRED_LEADER_NOT_AVAILABLE)],
            "v{v}"
        );
        if v >= 1 {
            let r = c.call(&elect_request(UNCLEAN, Some(&[(n, &[1, 2, 3])])), v).await;
            assert_eq!(
                elect_results(&r),
                vec![(name.clone(), 1, ELECTION_NOT_NEEDED), (name.clone(), 2, ELIGIBLE_LEADERS_NOT_AVAILABLE), (name.clone(), 3, NONE)],
                "v{v}"
            );
            let (leader, isr, _) = partition_state(&cluster, n, 3);
            assert_eq!((leader, isr), (1, vec![1]), "v{v}: the unclean leader is the only ISR member");

            let r = c.call(&elect_request(7, Some(&[(n, &[0])])), v).await;
            assert_eq!(r.error_code, INVALID_REQUEST, "v{v}: unknown election type");
            assert_eq!(elect_results(&r), vec![(name.clone(), 0, INVALID_REQUEST)]);
        }

        // All partitions: those that need nothing are left out of the answer.
        let r = c.call(&elect_request(PREFERRED, None), v).await;
        let results = elect_results(&r);
        assert!(!results.is_empty() && results.iter().all(|(_, _, e)| *e != ELECTION_NOT_NEEDED), "v{v}: {results:?}");
        assert!(results.contains(&(name.clone(), 1, PREFERRED_LEADER_NOT_AVAILABLE)), "v{v}: {results:?}");

        // A new incarnation of broker 2 for the next round.
        let reg = MetadataCommand::RegisterBroker { node_id: 2, incarnation_id: [20 + v as u8; 16], endpoints: vec![], rack: None };
        epoch2 = must_propose(&cluster, reg).await.broker_epoch.expect("broker epoch");
    }
    cluster.stop().await.expect("stop");
}

/// A one-node cluster with a registered, unfenced, process-less broker 2 and a topic `name`
/// whose single partition has replicas [1, 2], led by 2 (not its preferred replica).
async fn cluster_led_by_non_preferred(overrides: &[&str], name: &str) -> TestCluster {
    let cluster = TestCluster::start(1, overrides).await.expect("start");
    let reg = MetadataCommand::RegisterBroker { node_id: 2, incarnation_id: [2; 16], endpoints: vec![], rack: None };
    let epoch = must_propose(&cluster, reg).await.broker_epoch.expect("broker epoch");
    must_propose(&cluster, MetadataCommand::UnfenceBroker { node_id: 2, epoch }).await;
    let partitions = vec![klamm_raft::NewPartition { partition: 0, replicas: vec![1, 2] }];
    let create = MetadataCommand::CreateTopic { name: name.into(), topic_id: [42; 16], partitions, configs: Default::default() };
    must_propose(&cluster, create).await;
    set_partition(&cluster, name, 0, 2, &[1, 2]).await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_rebalance_moves_leadership_back_to_the_preferred_replica() {
    let fast = ["broker.session.timeout.ms=600000", "leader.imbalance.check.interval.seconds=1"];
    let cluster = cluster_led_by_non_preferred(&fast, "rebalance").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while partition_state(&cluster, "rebalance", 0).0 != 1 {
        assert!(Instant::now() < deadline, "leadership never moved back: {:?}", partition_state(&cluster, "rebalance", 0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(partition_state(&cluster, "rebalance", 0).1, vec![1, 2]);
    cluster.stop().await.expect("stop");

    let off = ["broker.session.timeout.ms=600000", "leader.imbalance.check.interval.seconds=1", "auto.leader.rebalance.enable=false"];
    let cluster = cluster_led_by_non_preferred(&off, "rebalance").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(partition_state(&cluster, "rebalance", 0).0, 2, "auto.leader.rebalance.enable=false leaves it");
    cluster.stop().await.expect("stop");
}

/// Metadata (every version from v5, where `offline_replicas` appears), DescribeCluster and
/// DescribeTopicPartitions on a partition whose second replica's broker is fenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_replicas_and_describe_topic_partitions() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;

    let cluster = TestCluster::start(1, &["broker.session.timeout.ms=600000"]).await.expect("start");
    let mut c = Conn::open(cluster.nodes[0].addr).await;
    let advertised = c.api_versions().await;
    let reg = MetadataCommand::RegisterBroker { node_id: 2, incarnation_id: [2; 16], endpoints: vec![], rack: None };
    let epoch2 = must_propose(&cluster, reg).await.broker_epoch.expect("broker epoch");
    must_propose(&cluster, MetadataCommand::UnfenceBroker { node_id: 2, epoch: epoch2 }).await;
    let partitions = (0..3).map(|p| klamm_raft::NewPartition { partition: p, replicas: vec![1, 2] }).collect();
    let create_a = MetadataCommand::CreateTopic { name: "dtp-a".into(), topic_id: [7; 16], partitions, configs: Default::default() };
    must_propose(&cluster, create_a).await;
    create(&mut c, "dtp-b", 2).await;
    must_propose(&cluster, MetadataCommand::FenceBroker { node_id: 2, epoch: epoch2 }).await;

    for v in versions::<MetadataRequest>(&advertised).into_iter().filter(|v| *v >= 5) {
        let req = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic("dtp-a")))]));
        let r = c.call(&req, v).await;
        assert_eq!(r.controller_id.0, 1, "Metadata v{v}: the active controller");
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(), vec![1, 2], "v{v}");
        assert_eq!(p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(), vec![1], "v{v}");
        assert_eq!(p.offline_replicas.iter().map(|b| b.0).collect::<Vec<_>>(), vec![2], "v{v}");
    }
    for v in versions::<DescribeClusterRequest>(&advertised) {
        let r = c.call(&DescribeClusterRequest::default(), v).await;
        assert_eq!(r.controller_id.0, 1, "DescribeCluster v{v}");
    }

    assert_eq!(versions::<DescribeTopicPartitionsRequest>(&advertised), vec![0]);
    let dtp = |names: &[&str], limit: i32, cursor: Option<(&str, i32)>| {
        DescribeTopicPartitionsRequest::default()
            .with_topics(names.iter().map(|n| TopicRequest::default().with_name(topic(n))).collect())
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| Cursor::default().with_topic_name(topic(t)).with_partition_index(p)))
    };
    // Page through everything two partitions at a time.
    let mut cursor: Option<(String, i32)> = None;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let r = c.call(&dtp(&[], 2, cursor.as_ref().map(|(t, p)| (t.as_str(), *p))), 0).await;
        for t in &r.topics {
            assert_eq!(t.error_code, 0);
            for p in &t.partitions {
                seen.push((t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(), p.partition_index));
                if t.name.as_ref().map(|n| n.0.as_str()) == Some("dtp-a") {
                    assert_eq!((p.leader_id.0, p.leader_epoch), (1, 0), "fencing 2 left leader 1 and its epoch alone");
                    assert_eq!(p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(), vec![1]);
                    assert_eq!(p.offline_replicas.iter().map(|b| b.0).collect::<Vec<_>>(), vec![2]);
                    assert_eq!(p.eligible_leader_replicas.as_deref(), Some(&[][..]));
                }
            }
        }
        match &r.next_cursor {
            Some(next) => cursor = Some((next.topic_name.0.to_string(), next.partition_index)),
            None => break,
        }
    }
    let want: Vec<(String, i32)> =
        [("dtp-a", 0), ("dtp-a", 1), ("dtp-a", 2), ("dtp-b", 0), ("dtp-b", 1)].iter().map(|(t, p)| (t.to_string(), *p)).collect();
    assert_eq!(seen, want);
    // Named topics, one unknown; a cursor naming a topic that was not asked for.
    let r = c.call(&dtp(&["dtp-b", "nope"], 2000, None), 0).await;
    let codes: Vec<(String, i16, usize)> =
        r.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(), t.error_code, t.partitions.len())).collect();
    assert_eq!(codes, vec![("dtp-b".to_string(), 0, 2), ("nope".to_string(), 3, 0)]);
    let r = c.call(&dtp(&["dtp-b"], 2000, Some(("dtp-a", 0))), 0).await;
    assert_eq!(r.topics[0].error_code, 42, "INVALID_REQUEST");
    cluster.stop().await.expect("stop");
}

/// Every node of a 3-node cluster names the same controller in Metadata and DescribeCluster:
/// the Raft leader (a combined node, so also a live broker).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_id_is_the_raft_leader() {
    let cluster = TestCluster::start(3, &[]).await.expect("start");
    let leader = cluster.broker(0).expect("node 1").metadata.active_controller().expect("a raft leader");
    // A node names the Raft leader only once its image has that broker registered and
    // unfenced (otherwise it names itself, rightly): right after start it may not yet.
    wait_until("the raft leader to be a live broker in every node's image", || {
        (0..cluster.nodes.len()).all(|i| {
            cluster.broker(i).is_some_and(|b| {
                b.metadata.active_controller() == Some(leader) && b.metadata.image().broker(leader).is_some_and(|r| !r.fenced)
            })
        })
    })
    .await;
    for node in &cluster.nodes {
        let mut c = Conn::open(node.addr).await;
        let advertised = c.api_versions().await;
        for v in versions::<MetadataRequest>(&advertised).into_iter().filter(|v| *v >= 1) {
            let r = c.call(&MetadataRequest::default().with_topics(Some(vec![])), v).await;
            assert_eq!(r.controller_id.0, leader, "Metadata v{v} from {}", node.addr);
            assert!(r.brokers.iter().any(|b| b.node_id.0 == leader), "the controller is a listed broker");
        }
        for v in versions::<DescribeClusterRequest>(&advertised) {
            let r = c.call(&DescribeClusterRequest::default(), v).await;
            assert_eq!(r.controller_id.0, leader, "DescribeCluster v{v} from {}", node.addr);
        }
    }
    cluster.stop().await.expect("stop");
}

fn reassign_request(parts: &[(&str, i32, Option<&[i32]>)]) -> AlterPartitionReassignmentsRequest {
    use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
    let topics = parts
        .iter()
        .map(|(t, p, replicas)| {
            ReassignableTopic::default().with_name(topic(t)).with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(*p)
                .with_replicas(replicas.map(|r| r.iter().map(|b| BrokerId(*b)).collect()))])
        })
        .collect();
    AlterPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(topics)
}

/// (topic, partition, error) in response order.
fn reassign_results(r: &AlterPartitionReassignmentsResponse) -> Vec<(String, i32, i16)> {
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index, p.error_code)))
        .collect()
}

/// (topic, partition, replicas, adding, removing) of a listed reassignment.
type Listed = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

fn listed(r: &ListPartitionReassignmentsResponse) -> Vec<Listed> {
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (t.name.0.to_string(), p.partition_index, ids(&p.replicas), ids(&p.adding_replicas), ids(&p.removing_replicas))
            })
        })
        .collect()
}

fn list_request(topics: Option<&[(&str, &[i32])]>) -> ListPartitionReassignmentsRequest {
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(topics.map(|ts| {
        ts.iter().map(|(t, ps)| ListPartitionReassignmentsTopics::default().with_name(topic(t)).with_partition_indexes(ps.to_vec())).collect()
    }))
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Moves a partition with data from broker 1 to brokers [2, 3] through replication, then
/// starts a reassignment that cannot finish (its new replica's broker is down), lists it and
/// cancels it; plus the error answers. Alter and List go through `kafka-protocol` (v0, the
/// only version either serves).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reassignment_moves_data_and_cancels() {
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
    let mut cluster = TestCluster::start(3, &[]).await.expect("start");
    let name = "move";
    let partitions = (0..2).map(|p| klamm_raft::NewPartition { partition: p, replicas: vec![1] }).collect();
    must_propose(&cluster, MetadataCommand::CreateTopic { name: name.into(), topic_id: [9; 16], partitions, configs: Default::default() }).await;
    wait_until("node 1 to open its partitions", || {
        (0..2).all(|p| cluster.broker(0).and_then(|b| b.replicas.get(name, p)).is_some_and(|l| l.is_leader()))
    })
    .await;
    let mut c = Conn::open(cluster.nodes[0].addr).await;
    let advertised = c.api_versions().await;
    assert_eq!(versions::<AlterPartitionReassignmentsRequest>(&advertised), vec![0]);
    assert_eq!(versions::<ListPartitionReassignmentsRequest>(&advertised), vec![0]);
    assert_eq!(produce(&mut c, name, 0, 5).await, 0);
    assert_eq!(produce(&mut c, name, 0, 3).await, 5);

    // Errors first: nothing changes.
    let r = c
        .call(
            &reassign_request(&[
                ("no-such-topic", 0, Some(&[1])),
                (name, 9, Some(&[1])),
                (name, 1, None),
                (name, 1, Some(&[2, 2])),
                (name, 1, Some(&[7])),
                (name, 1, Some(&[])),
            ]),
            0,
        )
        .await;
    assert_eq!(r.error_code, 0);
    let want = vec![
        ("no-such-topic".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
        (name.to_string(), 9, UNKNOWN_TOPIC_OR_PARTITION),
        (name.to_string(), 1, NO_REASSIGNMENT_IN_PROGRESS),
        (name.to_string(), 1, INVALID_REPLICA_ASSIGNMENT),
        (name.to_string(), 1, INVALID_REPLICA_ASSIGNMENT),
        (name.to_string(), 1, INVALID_REPLICA_ASSIGNMENT),
    ];
    assert_eq!(reassign_results(&r), want);
    assert!(r.responses.iter().flat_map(|t| &t.partitions).all(|p| p.error_message.is_some()));

    // Move partition 0 (8 records) from [1] to [2, 3].
    let r = c.call(&reassign_request(&[(name, 0, Some(&[2, 3]))]), 0).await;
    assert_eq!(reassign_results(&r), vec![(name.to_string(), 0, 0)]);
    assert_eq!(r.responses[0].partitions[0].error_message, None);
    wait_until("the reassignment of partition 0 to complete", || {
        partition_state(&cluster, name, 0).0 != 1 && c_state(&cluster, name, 0).0 == vec![2, 3]
    })
    .await;
    let (leader, isr, leader_epoch) = partition_state(&cluster, name, 0);
    assert_eq!((leader, isr, leader_epoch), (2, vec![2, 3], 1), "the first target replica leads in a new epoch");
    assert!(listed(&c.call(&list_request(None), 0).await).is_empty());
    wait_until("node 1 to drop its copy", || cluster.broker(0).and_then(|b| b.replicas.get(name, 0)).is_none()).await;
    for i in [1, 2] {
        let local = cluster.broker(i).and_then(|b| b.replicas.get(name, 0)).expect("hosted by nodes 2 and 3");
        wait_until("the new replicas to hold every record", || local.view().log_end_offset == 8).await;
    }
    // Node 2 answers for epoch 1 only once it has applied that epoch itself (until then a
    // request naming it gets UNKNOWN_LEADER_EPOCH, rightly).
    let on_node_2 = cluster.broker(1).and_then(|b| b.replicas.get(name, 0)).expect("hosted by node 2");
    wait_until("node 2 to lead partition 0 in epoch 1", || on_node_2.view().leader_epoch == 1).await;
    let mut on_2 = Conn::open(cluster.nodes[1].addr).await;
    let r = on_2.call(&ofle(name, -1, &[(0, 1, 0), (0, 1, 1)]), 4).await;
    assert_eq!(answers(&r), vec![(0, 0, 8), (0, 1, 8)], "the new leader knows the whole history");

    // Broker 3 down: a reassignment adding it cannot complete; list it, then cancel it.
    cluster.stop_node(2).await.expect("stop node 3");
    wait_until("broker 3 to be fenced", || {
        cluster.broker(0).is_some_and(|b| b.metadata.image().broker(3).is_some_and(|r| r.fenced))
    })
    .await;
    let r = c.call(&reassign_request(&[(name, 1, Some(&[1, 3]))]), 0).await;
    assert_eq!(reassign_results(&r), vec![(name.to_string(), 1, 0)]);
    let running = vec![(name.to_string(), 1, vec![1, 3], vec![3], vec![])];
    assert_eq!(listed(&c.call(&list_request(None), 0).await), running);
    assert_eq!(listed(&c.call(&list_request(Some(&[(name, &[0, 1, 9]), ("no-such-topic", &[0])])), 0).await), running);
    assert!(listed(&c.call(&list_request(Some(&[(name, &[0])])), 0).await).is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(c_state(&cluster, name, 1).0, vec![1, 3], "still waiting for broker 3");
    let r = c.call(&reassign_request(&[(name, 1, None)]), 0).await;
    assert_eq!(reassign_results(&r), vec![(name.to_string(), 1, 0)]);
    assert!(listed(&c.call(&list_request(None), 0).await).is_empty());
    assert_eq!(c_state(&cluster, name, 1), (vec![1], vec![], vec![]));
    assert_eq!(partition_state(&cluster, name, 1).0, 1);
    cluster.stop().await.expect("stop");
}

/// (replicas, adding, removing) as node 1 sees them.
fn c_state(cluster: &TestCluster, name: &str, partition: i32) -> (Vec<i32>, Vec<i32>, Vec<i32>) {
    let image = cluster.broker(0).expect("node 1").metadata.image();
    let p = image.partition(name, partition).expect("partition");
    (p.replicas.clone(), p.adding_replicas.clone(), p.removing_replicas.clone())
}
