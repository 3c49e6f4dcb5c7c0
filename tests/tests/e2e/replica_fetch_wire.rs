//! Follower (replica) Fetch requests a leader must refuse, sent over a raw socket and checked
//! with the independent `kafka-protocol` codec (the refusals at every advertised Fetch version):
//!
//! - a replica id that is not a follower of the partition (an unregistered broker, or the
//!   leader itself) gets NOT_LEADER_OR_FOLLOWER, as from Kafka's
//!   `Partition.followerReplicaOrThrow`;
//! - a current leader epoch older than the partition's gets FENCED_LEADER_EPOCH and a newer one
//!   UNKNOWN_LEADER_EPOCH (v9+); the epoch is checked before the replica id, as Kafka's
//!   `localLogWithEpochOrThrow` runs first;
//! - a fetch offset past the log end gets OFFSET_OUT_OF_RANGE together with the high watermark
//!   and log start offset a follower needs to recover;
//! - a follower Fetch (v12, as Klamm's fetcher sends) whose body is truncated or garbage closes
//!   that connection unanswered (Kafka does not answer a request it cannot parse), while other
//!   connections, open before or opened after, are still served and the stored records stay
//!   intact.
//!
//! Broker 2 is registered in the metadata log without a process behind it and this test speaks
//! for it, so the valid follower fetches around the invalid ones are real ones (they commit
//! the records), while the refused ones change nothing (the same leader, ISR and records).

use crate::common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;
use klamm_raft::MetadataCommand;

use common::{batch, bump_leader_epoch, must_propose, topic, versions, Conn};
use klamm_tests::TestCluster;

const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

const TOPIC: &str = "replicated";
const LEADER: i32 = 1;
const FOLLOWER: i32 = 2;
const NOT_A_REPLICA: i32 = 3;
const CONSUMER: i32 = -1;
/// The version Klamm's own replica fetcher sends.
const FETCHER_VERSION: i16 = 12;
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// One partition's answer, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    error: i16,
    high_watermark: i64,
    log_start_offset: i64,
    records: Bytes,
}

impl Answer {
    fn of(p: &PartitionData) -> Answer {
        Answer {
            error: p.error_code,
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
            records: p.records.clone().unwrap_or_default(),
        }
    }

    /// As `self` reads at `version`: Fetch has no log start offset before v5 (the codec's
    /// default, -1, stands in).
    fn at(mut self, version: i16) -> Answer {
        if version < 5 {
            self.log_start_offset = -1;
        }
        self
    }

    /// A refusal: the code, and neither offsets nor records.
    fn refused(error: i16) -> Answer {
        Answer { error, high_watermark: -1, log_start_offset: -1, records: Bytes::new() }
    }
}

/// The fields of one Fetch of `TOPIC`-0.
#[derive(Clone, Copy)]
struct Fetch {
    replica_id: i32,
    current_leader_epoch: i32,
    fetch_offset: i64,
    last_fetched_epoch: i32,
}

impl Fetch {
    fn by(replica_id: i32, current_leader_epoch: i32, fetch_offset: i64) -> Fetch {
        Fetch { replica_id, current_leader_epoch, fetch_offset, last_fetched_epoch: -1 }
    }

    /// The request at `version`: the replica id where the version carries it (`replica_id` up
    /// to v14, `replica_state` from v15); `target` names the topic both by name and by id (the
    /// codec writes the one the version has). The leader answers at once (`max_wait_ms` 0).
    fn request(self, version: i16, target: &FetchTopic) -> FetchRequest {
        let partition = FetchPartition::default()
            .with_partition(0)
            .with_current_leader_epoch(self.current_leader_epoch)
            .with_fetch_offset(self.fetch_offset)
            .with_last_fetched_epoch(self.last_fetched_epoch)
            .with_partition_max_bytes(1 << 20);
        let mut r = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(10 << 20)
            .with_topics(vec![target.clone().with_partitions(vec![partition])]);
        if version >= 15 {
            r = r.with_replica_state(ReplicaState::default().with_replica_id(BrokerId(self.replica_id)));
        } else {
            r = r.with_replica_id(BrokerId(self.replica_id));
        }
        r
    }
}

/// Sends `fetch` at `version` and returns the single partition's answer.
async fn answer(c: &mut Conn, version: i16, target: &FetchTopic, fetch: Fetch) -> Answer {
    let r = c.call(&fetch.request(version, target), version).await;
    assert_eq!(r.error_code, NONE, "Fetch v{version}: top-level error");
    assert_eq!(r.responses.len(), 1, "Fetch v{version}: one topic");
    assert_eq!(r.responses[0].partitions.len(), 1, "Fetch v{version}: one partition");
    Answer::of(&r.responses[0].partitions[0])
}

async fn produce_acks1(c: &mut Conn, n: usize) -> i64 {
    let req = ProduceRequest::default().with_acks(1).with_timeout_ms(10_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(topic(TOPIC))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch(n)))])]);
    let r = c.call(&req, 9).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, NONE, "produce: {:?}", p.error_message);
    p.base_offset
}

/// A one-node cluster (broker 1) with broker 2 registered and unfenced but without a process,
/// and `TOPIC` with one partition on replicas [1, 2], led by 1, both in the ISR. Liveness and
/// ISR timeouts are long, so broker 2 stays a registered ISR member while this test speaks
/// for it.
async fn cluster_with_silent_follower() -> TestCluster {
    let cluster = TestCluster::start(1, &["broker.session.timeout.ms=600000", "replica.lag.time.max.ms=600000"]).await.expect("start");
    let reg = MetadataCommand::RegisterBroker { node_id: FOLLOWER, incarnation_id: [2; 16], endpoints: vec![], rack: None };
    let epoch = must_propose(&cluster, reg).await.broker_epoch.expect("broker epoch");
    must_propose(&cluster, MetadataCommand::UnfenceBroker { node_id: FOLLOWER, epoch }).await;
    let partitions = vec![klamm_raft::NewPartition { partition: 0, replicas: vec![LEADER, FOLLOWER] }];
    must_propose(&cluster, MetadataCommand::CreateTopic { name: TOPIC.into(), topic_id: [42; 16], partitions, configs: Default::default() }).await;
    let broker = cluster.broker(0).expect("node 1");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while broker.replicas.get(TOPIC, 0).is_none_or(|p| !p.is_leader()) {
        assert!(std::time::Instant::now() < deadline, "node 1 never opened {TOPIC}-0 as leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let p = broker.metadata.image().partition(TOPIC, 0).cloned().expect("partition");
    assert_eq!((p.leader, p.replicas, p.isr, p.leader_epoch), (LEADER, vec![LEADER, FOLLOWER], vec![LEADER, FOLLOWER], 0));
    cluster
}

/// `TOPIC`-0 named both ways, the id as Metadata reports it.
async fn fetch_target(c: &mut Conn) -> FetchTopic {
    let req = MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(topic(TOPIC)))]));
    let r = c.call(&req, 12).await;
    assert_eq!(r.topics[0].error_code, NONE);
    assert!(!r.topics[0].topic_id.is_nil());
    FetchTopic::default().with_topic(topic(TOPIC)).with_topic_id(r.topics[0].topic_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_replica_fetches_are_refused_with_kafkas_codes() {
    let cluster = cluster_with_silent_follower().await;
    let addr = cluster.nodes[0].addr;
    let mut c = Conn::open(addr).await;
    let advertised = c.api_versions().await;
    let all = versions::<FetchRequest>(&advertised);
    assert!(all.contains(&FETCHER_VERSION) && all.iter().any(|v| *v >= 15), "Fetch versions {all:?}");
    let target = fetch_target(&mut c).await;

    // Five records, appended with acks=1: nothing is committed until broker 2 fetches them.
    assert_eq!(produce_acks1(&mut c, 5).await, 0);
    let as_consumer = answer(&mut c, FETCHER_VERSION, &target, Fetch::by(CONSUMER, 0, 0)).await;
    assert_eq!((as_consumer.error, as_consumer.high_watermark, as_consumer.records.len()), (NONE, 0, 0));

    // Broker 2 copies them (its fetch reads to the log end), then reports offset 5: committed.
    let copied = answer(&mut c, FETCHER_VERSION, &target, Fetch::by(FOLLOWER, 0, 0)).await;
    assert_eq!((copied.error, copied.high_watermark, copied.log_start_offset), (NONE, 0, 0));
    assert!(!copied.records.is_empty());
    let caught_up = answer(&mut c, FETCHER_VERSION, &target, Fetch::by(FOLLOWER, 0, 5)).await;
    assert_eq!(caught_up, Answer { error: NONE, high_watermark: 5, log_start_offset: 0, records: Bytes::new() });
    let stored = answer(&mut c, FETCHER_VERSION, &target, Fetch::by(CONSUMER, 0, 0)).await;
    assert_eq!((stored.error, stored.high_watermark), (NONE, 5));
    assert_eq!(stored.records, copied.records, "the consumer reads what the follower copied");

    for &v in &all {
        // Not a follower of the partition: an unregistered broker, and the leader itself.
        for replica in [NOT_A_REPLICA, LEADER] {
            for offset in [0, 5] {
                let got = answer(&mut c, v, &target, Fetch::by(replica, -1, offset)).await;
                assert_eq!(got, Answer::refused(NOT_LEADER_OR_FOLLOWER), "Fetch v{v} from broker {replica} at {offset}");
            }
        }
        // Past the log end: refused, with what the follower needs to find its way back.
        let past = answer(&mut c, v, &target, Fetch::by(FOLLOWER, -1, 6)).await;
        let want = Answer { error: OFFSET_OUT_OF_RANGE, high_watermark: 5, log_start_offset: 0, records: Bytes::new() };
        assert_eq!(past, want.at(v), "Fetch v{v}");
        // The real follower at its position is still fine.
        let ok = answer(&mut c, v, &target, Fetch::by(FOLLOWER, -1, 5)).await;
        assert_eq!(ok, caught_up.clone().at(v), "Fetch v{v}");
    }

    // Leader epoch 2 (leadership away and back, as a restart of broker 1 does).
    assert_eq!(bump_leader_epoch(&cluster, TOPIC, 0).await, 2);
    for &v in all.iter().filter(|v| **v >= 9) {
        for (current, want) in [(0, FENCED_LEADER_EPOCH), (1, FENCED_LEADER_EPOCH), (3, UNKNOWN_LEADER_EPOCH), (i32::MAX, UNKNOWN_LEADER_EPOCH)] {
            let got = answer(&mut c, v, &target, Fetch::by(FOLLOWER, current, 5)).await;
            assert_eq!(got, Answer::refused(want), "Fetch v{v} from broker 2 in epoch {current}");
            // The epoch is checked first, so a non-replica in a wrong epoch hears about the epoch.
            let got = answer(&mut c, v, &target, Fetch::by(NOT_A_REPLICA, current, 5)).await;
            assert_eq!(got, Answer::refused(want), "Fetch v{v} from broker 3 in epoch {current}");
        }
        let got = answer(&mut c, v, &target, Fetch::by(NOT_A_REPLICA, 2, 5)).await;
        assert_eq!(got, Answer::refused(NOT_LEADER_OR_FOLLOWER), "Fetch v{v} from broker 3 in epoch 2");
        let mut current = Fetch::by(FOLLOWER, 2, 5);
        if v >= 12 {
            current.last_fetched_epoch = 0;
        }
        assert_eq!(answer(&mut c, v, &target, current).await, caught_up.clone().at(v), "Fetch v{v} from broker 2 in epoch 2");
    }
    // None of it moved the partition: the same ISR and leader, the same records.
    let p = cluster.broker(0).expect("node 1").metadata.image().partition(TOPIC, 0).cloned().expect("partition");
    assert_eq!((p.leader, p.isr), (LEADER, vec![LEADER, FOLLOWER]));
    assert_eq!(answer(&mut c, FETCHER_VERSION, &target, Fetch::by(CONSUMER, 2, 0)).await, stored);
    cluster.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_replica_fetch_closes_only_its_connection() {
    let cluster = cluster_with_silent_follower().await;
    let addr = cluster.nodes[0].addr;
    let mut bystander = Conn::open(addr).await;
    let target = fetch_target(&mut bystander).await;
    assert_eq!(produce_acks1(&mut bystander, 5).await, 0);
    let copied = answer(&mut bystander, FETCHER_VERSION, &target, Fetch::by(FOLLOWER, 0, 0)).await;
    assert_eq!(copied.error, NONE);
    answer(&mut bystander, FETCHER_VERSION, &target, Fetch::by(FOLLOWER, 0, 5)).await;
    let stored = answer(&mut bystander, FETCHER_VERSION, &target, Fetch::by(CONSUMER, 0, 0)).await;
    assert_eq!((stored.error, stored.high_watermark, &stored.records), (NONE, 5, &copied.records));

    // A well-formed follower fetch body, to cut short.
    let mut valid = BytesMut::new();
    Fetch::by(FOLLOWER, 0, 5).request(FETCHER_VERSION, &target).encode(&mut valid, FETCHER_VERSION).expect("encode");
    let valid = valid.freeze();
    // Fetch v12's fixed fields (replica id 2, max wait, min bytes, max bytes, isolation level,
    // session id, session epoch), then a topics count of 2^32 - 2 and nothing behind it.
    let mut huge_count = BytesMut::new();
    for field in [FOLLOWER, 0, 1, 1 << 20] {
        huge_count.put_i32(field);
    }
    huge_count.put_i8(0);
    huge_count.put_i32(0);
    huge_count.put_i32(-1);
    huge_count.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let bodies: [(&str, Bytes); 5] = [
        ("empty", Bytes::new()),
        ("cut after the replica id", valid.slice(..4)),
        ("cut in the middle", valid.slice(..valid.len() / 2)),
        ("missing its last byte", valid.slice(..valid.len() - 1)),
        ("a topics count of 2^32 - 2", huge_count.freeze()),
    ];
    for (what, body) in bodies {
        let mut victim = Conn::open(addr).await;
        victim.send_raw::<FetchRequest>(FETCHER_VERSION, &body).await;
        victim.must_be_closed(CLOSE_WITHIN).await;
        // The open connection is still served, and a new one too; nothing stored changed.
        assert_eq!(answer(&mut bystander, FETCHER_VERSION, &target, Fetch::by(CONSUMER, 0, 0)).await, stored, "after a body {what}");
        let mut fresh = Conn::open(addr).await;
        fresh.api_versions().await;
        assert_eq!(answer(&mut fresh, FETCHER_VERSION, &target, Fetch::by(FOLLOWER, 0, 0)).await.records, stored.records, "after a body {what}");
    }
    // The log still takes writes, at the next offset.
    assert_eq!(produce_acks1(&mut bystander, 1).await, 5);
    cluster.stop().await.expect("stop");
}
