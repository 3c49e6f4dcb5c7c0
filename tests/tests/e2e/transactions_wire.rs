//! The transaction coordinator over the wire, with requests encoded and
//! responses decoded by the independent `kafka-protocol` crate:
//! FindCoordinator(key_type 1) → InitProducerId → AddPartitionsToTxn /
//! AddOffsetsToTxn → EndTxn, the KIP-360 and KIP-588 error codes, the v4
//! verify-only form, DescribeTransactions / ListTransactions, fencing by a new
//! InitProducerId, the abort of a timed-out transaction, and the state kept
//! across a restart and when the coordinator's node stops (three nodes,
//! replicated `__transaction_state`); and every advertised version of the transaction APIs
//! decoded by the oracle.
//!
//! The COMMIT/ABORT markers go to the partition leaders' WriteTxnMarkers
//! handler; a transaction counts as ended once the coordinator wrote
//! Complete* (every leader took its marker). The marker sender's retries are
//! tested in `klamm-broker` (`txn::coordinator_tests`) against a fake leader.

use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use klamm_tests::{TestBroker, TestCluster};

use crate::common;
use common::{topic, versions, Conn};

const NOT_COORDINATOR: i16 = 16;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const PRODUCER_FENCED: i16 = 90;

const DATA: &str = "txn-data";

fn tid(s: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(s.to_string()))
}

async fn start(extra: &[&str]) -> (TestBroker, Conn) {
    let mut overrides = vec!["transaction.state.log.num.partitions=3"];
    overrides.extend_from_slice(extra);
    let broker = TestBroker::start(&overrides).await.expect("start");
    let mut c = Conn::open(broker.addr).await;
    create_data_topic(&mut c, 2, 1).await;
    (broker, c)
}

async fn create_data_topic(c: &mut Conn, partitions: i32, replication_factor: i16) {
    let topic = CreatableTopic::default().with_name(topic(DATA)).with_num_partitions(partitions).with_replication_factor(replication_factor);
    let r = c.call(&CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![topic]), 5).await;
    assert_eq!(r.topics[0].error_code, 0);
}

/// FindCoordinator(transaction) until the coordinator is there, then
/// InitProducerId until its partition is loaded.
async fn init(c: &mut Conn, id: &str, timeout_ms: i32, version: i16) -> InitProducerIdResponse {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c.call(&FindCoordinatorRequest::default().with_key_type(1).with_key(StrBytes::from_string(id.to_string())), 3).await;
        if r.error_code == 0 {
            break;
        }
        assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE, "FindCoordinator");
        assert!(Instant::now() < deadline, "no transaction coordinator");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(tid(id)))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = c.call(&req, version).await;
        if ![NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS].contains(&r.error_code) {
            return r;
        }
        assert!(Instant::now() < deadline, "InitProducerId kept answering {}", r.error_code);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn add_v3(id: &str, pid: i64, epoch: i16, topics: &[(&str, &[i32])]) -> AddPartitionsToTxnRequest {
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(tid(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics.iter().map(|(t, ps)| AddPartitionsToTxnTopic::default().with_name(topic(t)).with_partitions(ps.to_vec())).collect())
}

/// (topic, partition, error) of a v0-3 answer, sorted.
fn v3_results(r: &AddPartitionsToTxnResponse) -> Vec<(String, i32, i16)> {
    let mut out: Vec<(String, i32, i16)> = r
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| t.results_by_partition.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.partition_error_code)))
        .collect();
    out.sort();
    out
}

async fn describe(c: &mut Conn, id: &str) -> describe_transactions_response::TransactionState {
    let r = c.call(&DescribeTransactionsRequest::default().with_transactional_ids(vec![tid(id)]), 0).await;
    r.transaction_states.into_iter().next().expect("one state")
}

/// DescribeTransactions of `id` once its coordinator (just restarted or
/// just elected) has loaded it.
async fn describe_once_loaded(c: &mut Conn, id: &str) -> describe_transactions_response::TransactionState {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = describe(c, id).await;
        if d.error_code == 0 {
            return d;
        }
        assert!([NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS].contains(&d.error_code), "describe {id}: {}", d.error_code);
        assert!(Instant::now() < deadline, "{id} never loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `id`'s transaction ended: Complete* of `kind`
/// ("Commit"/"Abort"), written once every leader took its marker.
async fn wait_decided(c: &mut Conn, id: &str, kind: &str) -> describe_transactions_response::TransactionState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = describe(c, id).await;
        let state = d.transaction_state.to_string();
        if state == format!("Complete{kind}") {
            return d;
        }
        assert!(Instant::now() < deadline, "{id} did not complete ({kind}); state {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_lifecycle_over_the_wire() {
    let (broker, mut c) = start(&[]).await;

    // FindCoordinator v4+ (batched) names this broker for transactional ids.
    let r = c
        .call(
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![StrBytes::from_static_str("tx-a"), StrBytes::from_static_str("tx-b")]),
            4,
        )
        .await;
    assert_eq!(r.coordinators.len(), 2);

    let first = init(&mut c, "tx-a", 60_000, 5).await;
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));
    let pid = first.producer_id.0;
    let r = c.call(&FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![StrBytes::from_static_str("tx-a")]), 4).await;
    assert_eq!((r.coordinators[0].error_code, r.coordinators[0].node_id.0, r.coordinators[0].port), (0, 1, broker.addr.port() as i32));

    // Again: the same producer id, the epoch bumped.
    let second = init(&mut c, "tx-a", 60_000, 2).await;
    assert_eq!((second.error_code, second.producer_id.0, second.producer_epoch), (0, pid, 1));
    // KIP-360 with a stale epoch: fenced (INVALID_PRODUCER_EPOCH before v4, KIP-588).
    for (v, want) in [(3, INVALID_PRODUCER_EPOCH), (4, PRODUCER_FENCED)] {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(tid("tx-a")))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0);
        assert_eq!(c.call(&req, v).await.error_code, want, "InitProducerId v{v}");
    }
    let too_long = InitProducerIdRequest::default().with_transactional_id(Some(tid("tx-a"))).with_transaction_timeout_ms(900_001).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    assert_eq!(c.call(&too_long, 5).await.error_code, INVALID_TRANSACTION_TIMEOUT);

    // An unknown topic spoils the request; the known partitions are not attempted.
    let r = c.call(&add_v3("tx-a", pid, 1, &[(DATA, &[0, 1]), ("no-such-topic", &[0])]), 3).await;
    assert_eq!(
        v3_results(&r),
        vec![("no-such-topic".into(), 0, UNKNOWN_TOPIC_OR_PARTITION), (DATA.into(), 0, OPERATION_NOT_ATTEMPTED), (DATA.into(), 1, OPERATION_NOT_ATTEMPTED)]
    );
    let r = c.call(&add_v3("tx-a", pid, 1, &[(DATA, &[0])]), 3).await;
    assert_eq!(v3_results(&r), vec![(DATA.into(), 0, 0)]);
    // The old epoch is fenced (INVALID_PRODUCER_EPOCH before v2).
    assert_eq!(v3_results(&c.call(&add_v3("tx-a", pid, 0, &[(DATA, &[1])]), 1).await)[0].2, INVALID_PRODUCER_EPOCH);
    assert_eq!(v3_results(&c.call(&add_v3("tx-a", pid, 0, &[(DATA, &[1])]), 2).await)[0].2, PRODUCER_FENCED);

    // v4 verify_only (a partition leader's KIP-890 check).
    let verify = AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
        .with_transactional_id(tid("tx-a"))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(1)
        .with_verify_only(true)
        .with_topics(vec![AddPartitionsToTxnTopic::default().with_name(topic(DATA)).with_partitions(vec![0, 1])])]);
    let r = c.call(&verify, 4).await;
    let t = &r.results_by_transaction[0];
    assert_eq!(t.transactional_id.0.to_string(), "tx-a");
    let codes: Vec<(i32, i16)> = t.topic_results[0].results_by_partition.iter().map(|p| (p.partition_index, p.partition_error_code)).collect();
    assert_eq!(codes, vec![(0, 0), (1, INVALID_TXN_STATE)]);

    // AddOffsetsToTxn adds the group's __consumer_offsets partition.
    let r = c
        .call(&AddOffsetsToTxnRequest::default().with_transactional_id(tid("tx-a")).with_producer_id(ProducerId(pid)).with_producer_epoch(1).with_group_id(GroupId(StrBytes::from_static_str("g"))), 3)
        .await;
    assert_eq!(r.error_code, 0);

    let d = describe(&mut c, "tx-a").await;
    assert_eq!((d.error_code, d.transaction_state.to_string().as_str(), d.producer_id.0, d.producer_epoch, d.transaction_timeout_ms), (0, "Ongoing", pid, 1, 60_000));
    assert!(d.transaction_start_time_ms > 0);
    let mut topics: Vec<String> = d.topics.iter().map(|t| t.topic.0.to_string()).collect();
    topics.sort();
    assert_eq!(topics, vec!["__consumer_offsets".to_string(), DATA.to_string()]);
    let unknown = describe(&mut c, "nobody").await;
    assert_eq!(unknown.error_code, 105, "TRANSACTIONAL_ID_NOT_FOUND");

    let r = c
        .call(
            &ListTransactionsRequest::default()
                .with_state_filters(vec![StrBytes::from_static_str("Ongoing"), StrBytes::from_static_str("Bogus")])
                .with_duration_filter(-1),
            1,
        )
        .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.unknown_state_filters.iter().map(|s| s.to_string()).collect::<Vec<_>>(), vec!["Bogus".to_string()]);
    assert_eq!(r.transaction_states.iter().map(|t| t.transactional_id.0.to_string()).collect::<Vec<_>>(), vec!["tx-a".to_string()]);
    let r = c.call(&ListTransactionsRequest::default().with_producer_id_filters(vec![ProducerId(pid + 1000)]), 0).await;
    assert!(r.transaction_states.is_empty());

    // EndTxn: the stale epoch is fenced, the current one commits.
    let end = |epoch: i16| EndTxnRequest::default().with_transactional_id(tid("tx-a")).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_committed(true);
    assert_eq!(c.call(&end(0), 3).await.error_code, PRODUCER_FENCED);
    assert_eq!(c.call(&end(1), 3).await.error_code, 0);
    let decided = wait_decided(&mut c, "tx-a", "Commit").await;
    assert_eq!(decided.producer_epoch, 1);

    // The decision survives a restart.
    let broker = broker.restart(&["transaction.state.log.num.partitions=3"]).await.expect("restart");
    let mut c = Conn::open(broker.addr).await;
    let d = describe_once_loaded(&mut c, "tx-a").await;
    assert_eq!(d.producer_id.0, pid);
    assert!(d.transaction_state.to_string().ends_with("Commit"), "state {}", d.transaction_state.to_string());
    broker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_producer_fences_the_ongoing_transaction() {
    let (broker, mut c) = start(&[]).await;
    let r = init(&mut c, "tx-f", 60_000, 4).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(v3_results(&c.call(&add_v3("tx-f", pid, epoch, &[(DATA, &[1])]), 3).await)[0].2, 0);
    // A second producer with the same transactional id: the open transaction
    // is aborted with a bumped epoch, the caller is told to retry.
    let req = InitProducerIdRequest::default().with_transactional_id(Some(tid("tx-f"))).with_transaction_timeout_ms(60_000).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    assert_eq!(c.call(&req, 4).await.error_code, CONCURRENT_TRANSACTIONS);
    let d = wait_decided(&mut c, "tx-f", "Abort").await;
    assert_eq!(d.producer_epoch, epoch + 1);
    let end = EndTxnRequest::default().with_transactional_id(tid("tx-f")).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_committed(true);
    assert_eq!(c.call(&end, 3).await.error_code, PRODUCER_FENCED, "the first producer is fenced");
    broker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_transaction_is_aborted() {
    let (broker, mut c) = start(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=100"]).await;
    let r = init(&mut c, "tx-t", 500, 5).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(v3_results(&c.call(&add_v3("tx-t", pid, epoch, &[(DATA, &[0])]), 3).await)[0].2, 0);
    let d = wait_decided(&mut c, "tx-t", "Abort").await;
    assert_eq!(d.producer_epoch, epoch + 1, "the abort bumps the epoch");
    assert_eq!(v3_results(&c.call(&add_v3("tx-t", pid, epoch, &[(DATA, &[0])]), 3).await)[0].2, PRODUCER_FENCED);
    broker.stop().await.expect("stop");
}

/// Every advertised version of each transaction API, one transaction per
/// version, decoded by kafka-protocol (which must consume every byte).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_of_the_transaction_apis() {
    let (broker, mut c) = start(&[]).await;
    let advertised = c.api_versions().await;
    for v in versions::<FindCoordinatorRequest>(&advertised).into_iter().filter(|v| *v >= 1) {
        let key = StrBytes::from_static_str("tx-v");
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key_type(1).with_key(key)
        };
        // The first call may create __transaction_state; the answer decodes either way.
        c.call(&req, v).await;
    }
    let mut pid_of_id = std::collections::BTreeMap::new();
    for v in versions::<InitProducerIdRequest>(&advertised) {
        let id = format!("tx-v{v}");
        let r = init(&mut c, &id, 60_000, v).await;
        assert_eq!((r.error_code, r.producer_epoch), (0, 0), "InitProducerId v{v}");
        pid_of_id.insert(id, r.producer_id.0);
    }
    let (id, pid) = pid_of_id.iter().next().map(|(i, p)| (i.clone(), *p)).expect("one id");
    for v in versions::<AddPartitionsToTxnRequest>(&advertised) {
        let r = if v < 4 {
            let r = c.call(&add_v3(&id, pid, 0, &[(DATA, &[v as i32 % 2])]), v).await;
            assert_eq!(v3_results(&r)[0].2, 0, "AddPartitionsToTxn v{v}");
            r
        } else {
            let req = AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
                .with_transactional_id(tid(&id))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(0)
                .with_verify_only(true)
                .with_topics(vec![AddPartitionsToTxnTopic::default().with_name(topic(DATA)).with_partitions(vec![0])])]);
            c.call(&req, v).await
        };
        assert_eq!(r.error_code, 0, "AddPartitionsToTxn v{v}");
    }
    for v in versions::<AddOffsetsToTxnRequest>(&advertised) {
        let req = AddOffsetsToTxnRequest::default()
            .with_transactional_id(tid(&id))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0)
            .with_group_id(GroupId(StrBytes::from_string(format!("g{v}"))));
        assert_eq!(c.call(&req, v).await.error_code, 0, "AddOffsetsToTxn v{v}");
    }
    assert_eq!(describe(&mut c, &id).await.transaction_state.to_string(), "Ongoing");
    for v in versions::<ListTransactionsRequest>(&advertised) {
        let r = c.call(&ListTransactionsRequest::default().with_duration_filter(-1), v).await;
        assert_eq!(r.error_code, 0, "ListTransactions v{v}");
        assert_eq!(r.transaction_states.len(), pid_of_id.len(), "ListTransactions v{v}");
    }
    // EndTxn: each version aborts a transaction of its own.
    for v in versions::<EndTxnRequest>(&advertised) {
        let id = format!("tx-end-v{v}");
        let r = init(&mut c, &id, 60_000, 5).await;
        let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
        assert_eq!(v3_results(&c.call(&add_v3(&id, pid, epoch, &[(DATA, &[0])]), 3).await)[0].2, 0);
        let end = EndTxnRequest::default().with_transactional_id(tid(&id)).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_committed(false);
        assert_eq!(c.call(&end, v).await.error_code, 0, "EndTxn v{v}");
        wait_decided(&mut c, &id, "Abort").await;
    }
    broker.stop().await.expect("stop");
}

/// FindCoordinator(transaction) for `id` through `c` until a live node other
/// than `not` answers: (node id, port).
async fn coordinator_of(c: &mut Conn, id: &str, not: i32) -> (i32, u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.call(&FindCoordinatorRequest::default().with_key_type(1).with_key(StrBytes::from_string(id.to_string())), 3).await;
        if r.error_code == 0 && r.node_id.0 != not {
            return (r.node_id.0, r.port as u16);
        }
        assert!(Instant::now() < deadline, "no transaction coordinator other than {not}: error {}", r.error_code);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_transaction_survives_its_coordinators_shutdown() {
    let overrides = ["transaction.state.log.num.partitions=1", "transaction.state.log.replication.factor=3", "transaction.state.log.min.isr=2"];
    let mut cluster = TestCluster::start(3, &overrides).await.expect("cluster");
    let mut c0 = Conn::open(cluster.nodes[0].addr).await;
    create_data_topic(&mut c0, 1, 3).await;
    let (node, port) = coordinator_of(&mut c0, "tx-c", -1).await;
    let i = cluster.nodes.iter().position(|n| n.addr.port() == port).expect("the coordinator is a node");
    let mut c = Conn::open(cluster.nodes[i].addr).await;
    let r = init(&mut c, "tx-c", 60_000, 5).await;
    assert_eq!(r.error_code, 0);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(v3_results(&c.call(&add_v3("tx-c", pid, epoch, &[(DATA, &[0])]), 3).await)[0].2, 0);
    drop(c);

    cluster.stop_node(i).await.expect("stop the coordinator's node");
    let j = (i + 1) % 3;
    let mut cj = Conn::open(cluster.nodes[j].addr).await;
    let (new_node, new_port) = coordinator_of(&mut cj, "tx-c", node).await;
    assert_ne!(new_node, node);
    let k = cluster.nodes.iter().position(|n| n.addr.port() == new_port).expect("the new coordinator is a node");
    let mut c = Conn::open(cluster.nodes[k].addr).await;
    let d = describe_once_loaded(&mut c, "tx-c").await;
    assert_eq!((d.transaction_state.to_string().as_str(), d.producer_id.0, d.producer_epoch), ("Ongoing", pid, epoch));
    assert_eq!(d.topics.iter().map(|t| (t.topic.0.to_string(), t.partitions.clone())).collect::<Vec<_>>(), vec![(DATA.to_string(), vec![0])]);
    let end = EndTxnRequest::default().with_transactional_id(tid("tx-c")).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_committed(false);
    assert_eq!(c.call(&end, 3).await.error_code, 0);
    wait_decided(&mut c, "tx-c", "Abort").await;
    cluster.stop().await.expect("stop");
}
