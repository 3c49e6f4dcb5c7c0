//! The partition side of transactions over the wire, checked with the
//! independent `kafka-protocol` codec and a stock client: transactional
//! batches (appended in-process: the transaction coordinator that verifies
//! them is another part of the work), WriteTxnMarkers v1 from a
//! "coordinator", then read_committed Fetch (last stable offset, aborted
//! transactions, control batches decodable by kafka-protocol), ListOffsets
//! read_committed, DescribeProducers, and librdkafka's read_committed
//! consumer seeing exactly the committed records; on three nodes, followers
//! rebuilding all of it from what they fetch, through a leader change.

use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::*;
use kafka_protocol::records::RecordBatchDecoder;
use klamm_protocol::records::RecordBatchBuilder;
use klamm_tests::TestCluster;

use crate::common;
use common::{must_read_from_beginning, topic, versions, Conn};

const TOPIC: &str = "txn-partition";

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}

fn txn_batch(pid: i64, seq: i32, values: &[&str]) -> Bytes {
    let mut b = RecordBatchBuilder::new(0).producer(pid, 0, seq).transactional(true);
    for v in values {
        b = b.record(now_ms(), None, Some(v.as_bytes()));
    }
    b.build()
}

fn marker(pid: i64, commit: bool) -> WriteTxnMarkersRequest {
    WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(0)
        .with_transaction_result(commit)
        .with_coordinator_epoch(3)
        .with_topics(vec![WritableTxnMarkerTopic::default().with_name(topic(TOPIC)).with_partition_indexes(vec![0])])])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_aborted_transactions_and_read_committed_over_the_wire() {
    let cluster = TestCluster::start(1, &[]).await.expect("start");
    let addr = cluster.nodes[0].addr;
    let mut c = Conn::open(addr).await;
    let advertised = c.api_versions().await;
    let r = c.call(&CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default().with_name(topic(TOPIC)).with_num_partitions(1).with_replication_factor(1)]), 7).await;
    assert_eq!(r.topics[0].error_code, 0);
    let topic_id = r.topics[0].topic_id;
    // A fetch from offset 0 (by topic id from v13, as the versions require).
    let fetch = |isolation_level: i8, version: i16| {
        let t = FetchTopic::default().with_partitions(vec![FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20)]);
        let t = if version >= 13 { t.with_topic_id(topic_id) } else { t.with_topic(topic(TOPIC)) };
        FetchRequest::default().with_max_wait_ms(100).with_min_bytes(1).with_max_bytes(1 << 20).with_isolation_level(isolation_level).with_topics(vec![t])
    };

    let broker = cluster.broker(0).expect("node 0 runs");
    let p = broker.replicas.lookup(TOPIC, 0).expect("partition open");
    p.append_from_client(txn_batch(7, 0, &["aborted-0", "aborted-1"]), 9, now_ms()).unwrap(); // 0-1
    p.append_from_client(txn_batch(8, 0, &["committed-0"]), 9, now_ms()).unwrap(); // 2
    p.append_from_client(RecordBatchBuilder::new(0).record(now_ms(), None, Some(b"plain-0")).build(), 9, now_ms()).unwrap(); // 3

    // WriteTxnMarkers (v1, as Kafka 4): abort producer 7, commit producer 8 (offsets 4 and 5).
    assert_eq!(versions::<WriteTxnMarkersRequest>(&advertised), vec![1]);
    for (v, pid, commit) in [(1, 7, false), (1, 8, true)] {
        let r = c.call(&marker(pid, commit), v).await;
        assert_eq!(r.markers[0].producer_id.0, pid);
        assert_eq!(r.markers[0].topics[0].partitions[0].error_code, 0, "WriteTxnMarkers v{v}");
    }
    // A stale coordinator epoch is fenced; an unknown partition is named.
    let stale = marker(8, true).with_markers(vec![marker(8, true).markers[0].clone().with_coordinator_epoch(2)]);
    assert_eq!(c.call(&stale, 1).await.markers[0].topics[0].partitions[0].error_code, 52, "TRANSACTION_COORDINATOR_FENCED");
    p.append_from_client(txn_batch(9, 0, &["open-0"]), 9, now_ms()).unwrap(); // 6: still open

    // read_committed Fetch, every advertised version: the LSO stops at the
    // open transaction; producer 7's aborted transaction is listed; every
    // batch below the LSO (markers included) decodes.
    for v in versions::<FetchRequest>(&advertised) {
        let r = c.call(&fetch(1, v), v).await;
        let data = &r.responses[0].partitions[0];
        assert_eq!(data.error_code, 0, "Fetch v{v}");
        assert_eq!((data.high_watermark, data.last_stable_offset), (7, 6), "Fetch v{v}");
        let aborted: Vec<_> = data.aborted_transactions.as_ref().expect("read_committed lists aborted transactions").iter().map(|t| (t.producer_id.0, t.first_offset)).collect();
        assert_eq!(aborted, vec![(7, 0)], "Fetch v{v}");
        let mut records = data.records.clone().expect("records");
        let mut last = -1;
        while records.has_remaining() {
            let set = RecordBatchDecoder::decode(&mut records).expect("decode fetched batch");
            last = set.records.iter().map(|r| r.offset).max().unwrap_or(last).max(last);
        }
        assert_eq!(last, 5, "Fetch v{v}: everything below the LSO, nothing at or above it");
        let plain = c.call(&fetch(0, v), v).await;
        assert!(plain.responses[0].partitions[0].aborted_transactions.is_none(), "read_uncommitted lists none");
    }

    // ListOffsets read_committed answers the LSO as "latest".
    for v in versions::<ListOffsetsRequest>(&advertised).into_iter().filter(|&v| v >= 2) {
        for (isolation_level, want) in [(0i8, 7i64), (1, 6)] {
            let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(isolation_level).with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic(TOPIC))
                .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)])]);
            let r = c.call(&req, v).await;
            assert_eq!(r.topics[0].partitions[0].offset, want, "ListOffsets v{v} isolation {isolation_level}");
        }
    }

    // DescribeProducers: epochs, sequences, coordinator epochs, open transaction start.
    let r = c.call(&DescribeProducersRequest::default().with_topics(vec![TopicRequest::default().with_name(topic(TOPIC)).with_partition_indexes(vec![0])]), 0).await;
    let mut states: Vec<_> = r.topics[0].partitions[0].active_producers.iter().map(|s| (s.producer_id.0, s.last_sequence, s.coordinator_epoch, s.current_txn_start_offset)).collect();
    states.sort();
    assert_eq!(states, vec![(7, 1, 3, -1), (8, 0, 3, -1), (9, 0, -1, 6)]);

    // librdkafka (read_committed by default) sees the committed and plain records only.
    let bootstrap = cluster.nodes[0].bootstrap();
    let read = tokio::task::spawn_blocking(move || must_read_from_beginning(&bootstrap, TOPIC, 1, 2, Duration::from_secs(15))).await.unwrap();
    let values: Vec<_> = read.iter().map(|(_, o, v)| (*o, v.as_str())).collect();
    assert_eq!(values, vec![(2, "committed-0"), (3, "plain-0")]);
    cluster.stop().await.expect("stop");
}

/// Waits (bounded) until `check` holds.
async fn wait_for(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if std::time::Instant::now() >= deadline => panic!("timed out waiting for {what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Three replicas: the followers rebuild the last stable offset, the
/// aborted-transaction index and the open transactions from what they fetch,
/// and a follower that becomes leader keeps the transaction open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_rebuild_transactions_from_what_they_fetch() {
    let mut cluster = TestCluster::start(3, &["broker.session.timeout.ms=3000", "replica.lag.time.max.ms=3000"]).await.expect("start cluster");
    let leader_addr = cluster.nodes[0].addr;
    let mut c = Conn::open(leader_addr).await;
    // Right after start-up a broker may still be fenced (INVALID_REPLICATION_FACTOR
    // for three replicas): ask again, bounded.
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default().with_name(topic(TOPIC)).with_num_partitions(1).with_replication_factor(3)]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut r = c.call(&create, 7).await;
    while r.topics[0].error_code == 38 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        r = c.call(&create, 7).await;
    }
    assert_eq!(r.topics[0].error_code, 0);
    let leader_id = cluster.broker(0).unwrap().metadata.image().partition(TOPIC, 0).expect("partition").leader;
    let leader = cluster.broker((leader_id - 1) as usize).expect("leader runs").clone();
    // CreateTopics answers once the node asked has the partition; the leader
    // (maybe another node) opens it on its own reconciler pass.
    wait_for("the leader's partition to open", || leader.replicas.lookup(TOPIC, 0).map(|_| ()).map_err(|e| format!("{e:?}"))).await;
    let p = leader.replicas.lookup(TOPIC, 0).expect("leader's partition");
    p.append_from_client(txn_batch(7, 0, &["aborted-0", "aborted-1"]), 9, now_ms()).unwrap(); // 0-1
    p.append_from_client(txn_batch(8, 0, &["open-0"]), 9, now_ms()).unwrap(); // 2
    let mut c = Conn::open(cluster.nodes[(leader_id - 1) as usize].addr).await;
    let r = c.call(&marker(7, false), 1).await;
    assert_eq!(r.markers[0].topics[0].partitions[0].error_code, 0, "answered once the followers have the marker"); // 3

    let leader_aborted = p.reader().collect_aborted(0, i64::MAX);
    assert_eq!(leader_aborted.iter().map(|t| (t.producer_id, t.first_offset, t.last_offset)).collect::<Vec<_>>(), vec![(7, 0, 3)]);
    wait_for("every replica at the leader's LSO with the same aborted index", || {
        for i in 0..3 {
            let b = cluster.broker(i).ok_or("node down")?;
            let local = b.replicas.get(TOPIC, 0).ok_or("partition not open")?;
            let v = local.view();
            if (v.log_end_offset, v.high_watermark, v.last_stable_offset) != (4, 4, 2) {
                return Err(format!("node {}: {v:?}", b.node_id));
            }
            if local.reader().collect_aborted(0, i64::MAX) != leader_aborted {
                return Err(format!("node {}: aborted index differs", b.node_id));
            }
        }
        Ok(())
    })
    .await;

    // The leader stops; the new leader still holds producer 8's transaction open.
    cluster.stop_node((leader_id - 1) as usize).await.expect("stop leader");
    let survivor = (0..3).find(|&i| cluster.broker(i).is_some()).expect("a node runs");
    wait_for("a new leader", || match cluster.broker(survivor).unwrap().metadata.image().partition(TOPIC, 0).map(|m| m.leader) {
        Some(l) if l > 0 && l != leader_id => Ok(()),
        other => Err(format!("leader {other:?}")),
    })
    .await;
    let new_leader_id = cluster.broker(survivor).unwrap().metadata.image().partition(TOPIC, 0).unwrap().leader;
    let new_leader = cluster.broker((new_leader_id - 1) as usize).expect("new leader runs").clone();
    let np = new_leader.replicas.lookup(TOPIC, 0).expect("new leader's partition");
    wait_for("the new leader serving", || if np.is_leader() { Ok(()) } else { Err("not yet".into()) }).await;
    assert!(np.begin_txn_verification(8, 0).is_none(), "producer 8's transaction is open on the new leader");
    let mut c = Conn::open(cluster.nodes[(new_leader_id - 1) as usize].addr).await;
    let r = c.call(&marker(8, true), 1).await;
    assert_eq!(r.markers[0].topics[0].partitions[0].error_code, 0);
    wait_for("the commit to pass the new high watermark", || {
        let v = np.view();
        if v.last_stable_offset == v.log_end_offset && v.log_end_offset == 5 { Ok(()) } else { Err(format!("{v:?}")) }
    })
    .await;
    cluster.stop().await.expect("stop");
}
