//! Tests of the async coordinator over an in-memory log, with markers sent
//! over loopback TCP to a fake partition leader that answers WriteTxnMarkers
//! with Klamm's codec: the transaction lifecycle, marker retries and fencing,
//! resuming a PrepareCommit on load, timeouts, expiry, routing and write errors.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use klamm_protocol::header::{decode_request_header, ResponseHeader};
use klamm_protocol::messages::WriteTxnMarkersRequest;
use klamm_protocol::{ApiKey, Decode, Encode, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::coordinator::{IdFuture, ProducerIdSource, Services, TxnCoordinator};
use super::markers::{Leader, LeaderLookup, MarkerSender, MarkerTuning};
use super::persistence::{self, SyncLog, TxnLog};
use super::state::{Tp, TxnConfig, TxnRecord, TxnState};
use crate::group::persistence::{build_batch, MemLog, OffsetsLog};

struct Counter(AtomicI64);

impl ProducerIdSource for Counter {
    fn next_id(&self) -> IdFuture {
        let id = self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(id) })
    }
}

/// Every partition is led by the fake leader, except topic "gone".
struct FakeLookup(String);

impl LeaderLookup for FakeLookup {
    fn leader(&self, topic: &str, _partition: i32) -> Leader {
        if topic == "gone" {
            Leader::Gone
        } else {
            Leader::At(self.0.clone())
        }
    }
}

/// A partition leader answering WriteTxnMarkers: each request takes the next
/// scripted error for all its partitions (NONE once the script is empty).
#[derive(Default)]
struct FakeLeader {
    requests: Mutex<Vec<(i16, WriteTxnMarkersRequest)>>,
    script: Mutex<VecDeque<ErrorCode>>,
}

impl FakeLeader {
    async fn start(script: &[ErrorCode]) -> (Arc<FakeLeader>, String) {
        let leader = Arc::new(FakeLeader { requests: Mutex::new(Vec::new()), script: Mutex::new(script.iter().copied().collect()) });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let l = leader.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(l.clone().serve(stream));
            }
        });
        (leader, addr)
    }

    async fn serve(self: Arc<Self>, mut stream: tokio::net::TcpStream) {
        loop {
            let Ok(size) = stream.read_i32().await else { return };
            let mut frame = BytesMut::zeroed(size as usize);
            if stream.read_exact(&mut frame).await.is_err() {
                return;
            }
            let mut frame: Bytes = frame.freeze();
            let (header, key) = decode_request_header(&mut frame).unwrap();
            assert_eq!(key, Some(ApiKey::WriteTxnMarkers));
            let v = header.request_api_version;
            let request = WriteTxnMarkersRequest::decode(&mut frame, v).unwrap();
            let code = self.script.lock().unwrap().pop_front().unwrap_or(ErrorCode::NONE);
            let response = crate::handlers::write_txn_markers::answer_every_partition(&request, code);
            self.requests.lock().unwrap().push((v, request));
            let mut out = BytesMut::new();
            out.put_i32(0);
            ResponseHeader { correlation_id: header.correlation_id, ..Default::default() }
                .encode(&mut out, ApiKey::WriteTxnMarkers.response_header_version(v))
                .unwrap();
            response.encode(&mut out, v).unwrap();
            let n = (out.len() - 4) as i32;
            out[0..4].copy_from_slice(&n.to_be_bytes());
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

struct Setup {
    c: TxnCoordinator,
    log: Arc<MemLog>,
    leader: Arc<FakeLeader>,
}

const EPOCH: i32 = 4;

async fn setup_with(script: &[ErrorCode], log: Arc<MemLog>, config: TxnConfig, abort_ms: u64, expire_ms: u64) -> Setup {
    let (leader, addr) = FakeLeader::start(script).await;
    let c = TxnCoordinator::with_config(1, config, 1, abort_ms, expire_ms);
    let tuning = MarkerTuning { request_timeout: Duration::from_secs(5), min_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(50) };
    c.set_services(Services {
        ids: Arc::new(Counter(AtomicI64::new(1000))),
        markers: Arc::new(MarkerSender::new(Arc::new(FakeLookup(addr)), 1, tuning)),
        metrics: Default::default(),
    });
    c.host_partition(0, EPOCH, Arc::new(SyncLog(log.clone() as Arc<dyn OffsetsLog>)) as Arc<dyn TxnLog>);
    wait_loaded(&c).await;
    Setup { c, log, leader }
}

fn config() -> TxnConfig {
    TxnConfig { max_timeout_ms: 900_000, id_expiration_ms: 604_800_000 }
}

async fn setup(script: &[ErrorCode]) -> Setup {
    setup_with(script, Arc::new(MemLog::default()), config(), 600_000, 600_000).await
}

async fn wait_loaded(c: &TxnCoordinator) {
    for _ in 0..200 {
        if c.describe("probe").await != Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("shard did not load");
}

/// Polls DescribeTransactions until `id` is in `state` (at most ~5 s).
async fn wait_state(c: &TxnCoordinator, id: &str, state: TxnState) {
    let mut last = None;
    for _ in 0..500 {
        let v = c.describe(id).await;
        if v.as_ref().is_ok_and(|v| v.state == state) {
            return;
        }
        last = Some(v);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} never reached {state:?}; last {last:?}");
}

fn tps(list: &[(&str, i32)]) -> BTreeSet<Tp> {
    list.iter().map(|(t, p)| Tp::new(*t, *p)).collect()
}

#[tokio::test]
async fn commit_sends_markers_and_completes_durably() {
    let s = setup(&[]).await;
    let (pid, epoch) = s.c.init_producer_id("tx", 60_000, None).await.unwrap();
    assert_eq!((pid, epoch), (1000, 0));
    assert_eq!(s.c.add_partitions("tx", pid, epoch, tps(&[("a", 0), ("a", 1), ("b", 2), ("gone", 0)])).await, ErrorCode::NONE);
    assert_eq!(s.c.verify("tx", pid, epoch, vec![Tp::new("a", 1), Tp::new("c", 0)]).await, Ok(vec![ErrorCode::NONE, ErrorCode::INVALID_TXN_STATE]));
    assert_eq!(s.c.end_txn("tx", pid, epoch, true).await, (ErrorCode::NONE, pid, epoch));
    wait_state(&s.c, "tx", TxnState::CompleteCommit).await;
    // A retried EndTxn after completion succeeds.
    assert_eq!(s.c.end_txn("tx", pid, epoch, true).await, (ErrorCode::NONE, pid, epoch));

    let requests = s.leader.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "one leader, one request");
    let (v, r) = &requests[0];
    assert_eq!(*v, 1);
    let m = &r.markers[0];
    assert_eq!((m.producer_id, m.producer_epoch, m.transaction_result, m.coordinator_epoch), (pid, epoch, true, EPOCH));
    let sent: BTreeSet<Tp> = m.topics.iter().flat_map(|t| t.partition_indexes.iter().map(|p| Tp::new(t.name.clone(), *p))).collect();
    assert_eq!(sent, tps(&[("a", 0), ("a", 1), ("b", 2)]), "the deleted topic gets no marker");

    // The log holds every transition; a new coordinator over it sees the same.
    let loaded = persistence::load(&*s.log).unwrap();
    assert_eq!(loaded["tx"].rec.state, TxnState::CompleteCommit);
    assert_eq!(loaded["tx"].rec.producer_id, pid);
}

#[tokio::test]
async fn markers_are_retried_until_the_leader_accepts() {
    let s = setup(&[ErrorCode::NOT_LEADER_OR_FOLLOWER, ErrorCode::NOT_ENOUGH_REPLICAS, ErrorCode::REQUEST_TIMED_OUT]).await;
    let (pid, epoch) = s.c.init_producer_id("tx", 60_000, None).await.unwrap();
    s.c.add_partitions("tx", pid, epoch, tps(&[("a", 0)])).await;
    assert_eq!(s.c.end_txn("tx", pid, epoch, false).await.0, ErrorCode::NONE);
    // Until the markers are written, the producer waits.
    assert_eq!(s.c.init_producer_id("tx", 60_000, None).await, Err(ErrorCode::CONCURRENT_TRANSACTIONS));
    wait_state(&s.c, "tx", TxnState::CompleteAbort).await;
    assert_eq!(s.leader.count(), 4);
    assert!(s.leader.requests.lock().unwrap().iter().all(|(_, r)| !r.markers[0].transaction_result));
    assert_eq!(s.c.init_producer_id("tx", 60_000, None).await, Ok((pid, epoch + 1)));
}

#[tokio::test]
async fn a_fenced_coordinator_stops_sending() {
    let s = setup(&[ErrorCode::TRANSACTION_COORDINATOR_FENCED]).await;
    let (pid, epoch) = s.c.init_producer_id("tx", 60_000, None).await.unwrap();
    s.c.add_partitions("tx", pid, epoch, tps(&[("a", 0)])).await;
    assert_eq!(s.c.end_txn("tx", pid, epoch, true).await.0, ErrorCode::NONE);
    for _ in 0..100 {
        if s.leader.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.leader.count(), 1, "no retries after a fence");
    assert_eq!(s.c.describe("tx").await.unwrap().state, TxnState::PrepareCommit);
    assert_eq!(s.c.end_txn("tx", pid, epoch, true).await.0, ErrorCode::CONCURRENT_TRANSACTIONS);
}

#[tokio::test]
async fn loading_resumes_a_prepared_commit() {
    let log = Arc::new(MemLog::default());
    let rec = TxnRecord {
        producer_id: 42,
        producer_epoch: 3,
        timeout_ms: 60_000,
        state: TxnState::PrepareCommit,
        partitions: tps(&[("a", 5)]),
        last_update_ms: 1,
        start_ms: 1,
    };
    log.append(build_batch(&[(persistence::key("tx"), Some(persistence::value(&rec)))], 1)).unwrap();
    let s = setup_with(&[], log, config(), 600_000, 600_000).await;
    wait_state(&s.c, "tx", TxnState::CompleteCommit).await;
    let requests = s.leader.requests.lock().unwrap().clone();
    let m = &requests[0].1.markers[0];
    assert_eq!((m.producer_id, m.producer_epoch, m.transaction_result), (42, 3, true));
    assert_eq!(m.topics[0].partition_indexes, vec![5]);
}

#[tokio::test]
async fn init_during_a_transaction_aborts_it_and_fences_the_old_producer() {
    let s = setup(&[]).await;
    let (pid, epoch) = s.c.init_producer_id("tx", 60_000, None).await.unwrap();
    s.c.add_partitions("tx", pid, epoch, tps(&[("a", 0)])).await;
    assert_eq!(s.c.init_producer_id("tx", 60_000, None).await, Err(ErrorCode::CONCURRENT_TRANSACTIONS));
    wait_state(&s.c, "tx", TxnState::CompleteAbort).await;
    let m = s.leader.requests.lock().unwrap()[0].1.markers[0].clone();
    assert_eq!((m.producer_epoch, m.transaction_result), (epoch + 1, false));
    assert_eq!(s.c.end_txn("tx", pid, epoch, true).await.0, ErrorCode::PRODUCER_FENCED);
    assert_eq!(s.c.init_producer_id("tx", 60_000, None).await, Ok((pid, epoch + 2)));
}

#[tokio::test]
async fn timed_out_transactions_are_aborted() {
    let s = setup_with(&[], Arc::new(MemLog::default()), config(), 50, 600_000).await;
    let (pid, epoch) = s.c.init_producer_id("tx", 100, None).await.unwrap();
    s.c.add_partitions("tx", pid, epoch, tps(&[("a", 0)])).await;
    wait_state(&s.c, "tx", TxnState::CompleteAbort).await;
    let v = s.c.describe("tx").await.unwrap();
    assert_eq!(v.producer_epoch, epoch + 1, "the timed-out producer is fenced");
    assert_eq!(s.c.end_txn("tx", pid, epoch, true).await.0, ErrorCode::PRODUCER_FENCED);
}

#[tokio::test]
async fn idle_ids_expire_with_a_tombstone() {
    let cfg = TxnConfig { max_timeout_ms: 900_000, id_expiration_ms: 100 };
    let s = setup_with(&[], Arc::new(MemLog::default()), cfg, 600_000, 50).await;
    s.c.init_producer_id("tx", 60_000, None).await.unwrap();
    for _ in 0..200 {
        if s.c.describe("tx").await == Err(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.c.describe("tx").await, Err(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND));
    assert!(persistence::load(&*s.log).unwrap().is_empty(), "the tombstone is in the log");
}

#[tokio::test]
async fn routing_and_write_errors() {
    let log = Arc::new(MemLog::default());
    let (_leader, addr) = FakeLeader::start(&[]).await;
    // Two partitions, only partition 0 hosted here.
    let c = TxnCoordinator::with_config(1, config(), 2, 600_000, 600_000);
    c.set_services(Services {
        ids: Arc::new(Counter(AtomicI64::new(1))),
        markers: Arc::new(MarkerSender::new(Arc::new(FakeLookup(addr)), 1, MarkerTuning::default())),
        metrics: Default::default(),
    });
    c.host_partition(0, 1, Arc::new(SyncLog(log.clone() as Arc<dyn OffsetsLog>)));
    let (here, there): (Vec<String>, Vec<String>) = (0..20).map(|i| format!("id-{i}")).partition(|id| c.partition_for(id) == 0);
    let (here, there) = (&here[0], &there[0]);
    for _ in 0..200 {
        if c.init_producer_id(here, 60_000, None).await != Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(c.init_producer_id(there, 60_000, None).await, Err(ErrorCode::NOT_COORDINATOR));
    assert_eq!(c.end_txn(there, 1, 0, true).await, (ErrorCode::NOT_COORDINATOR, -1, -1));
    let (error, listed) = c.list(vec![], vec![], -1).await;
    assert_eq!(error, ErrorCode::NONE);
    assert_eq!(listed.iter().map(|v| v.transactional_id.as_str()).collect::<Vec<_>>(), vec![here.as_str()]);

    // A failing log: the append errors map as Kafka's appendTransactionToLog does.
    *log.fail_with.lock().unwrap() = Some(ErrorCode::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(c.init_producer_id(here, 60_000, None).await, Err(ErrorCode::NOT_COORDINATOR));
    *log.fail_with.lock().unwrap() = Some(ErrorCode::NOT_ENOUGH_REPLICAS);
    assert_eq!(c.init_producer_id(here, 60_000, None).await, Err(ErrorCode::COORDINATOR_NOT_AVAILABLE));
    *log.fail_with.lock().unwrap() = None;
    assert_eq!(c.init_producer_id(here, 60_000, None).await, Ok((1, 1)), "the failed bumps left nothing behind");
}

#[tokio::test]
async fn concurrent_transactions_complete_independently() {
    let s = setup(&[]).await;
    let ids: Vec<String> = (0..10).map(|i| format!("tx-{i}")).collect();
    for id in &ids {
        let (pid, epoch) = s.c.init_producer_id(id, 60_000, None).await.unwrap();
        assert_eq!(s.c.add_partitions(id, pid, epoch, tps(&[("a", 0)])).await, ErrorCode::NONE);
        assert_eq!(s.c.end_txn(id, pid, epoch, true).await.0, ErrorCode::NONE);
    }
    for id in &ids {
        wait_state(&s.c, id, TxnState::CompleteCommit).await;
    }
    let producers: BTreeSet<i64> = s.leader.requests.lock().unwrap().iter().map(|(_, r)| r.markers[0].producer_id).collect();
    assert_eq!(producers.len(), 10, "one marker request per transaction");
    let (error, listed) = s.c.list(vec![TxnState::CompleteCommit], vec![], -1).await;
    assert_eq!((error, listed.len()), (ErrorCode::NONE, 10));
}

/// A lookup whose answer the test changes: a leader that is unknown, then at
/// a dead address, then at the live fake leader.
struct MovingLookup(Mutex<Leader>);

impl LeaderLookup for MovingLookup {
    fn leader(&self, _topic: &str, _partition: i32) -> Leader {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn markers_wait_for_a_leader_and_follow_it_when_it_moves() {
    let (leader, addr) = FakeLeader::start(&[ErrorCode::NOT_LEADER_OR_FOLLOWER]).await;
    // A port nobody listens on (bound, then closed).
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let lookup = Arc::new(MovingLookup(Mutex::new(Leader::Unknown)));
    let tuning = MarkerTuning { request_timeout: Duration::from_secs(2), min_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(40) };
    let sender = Arc::new(MarkerSender::new(lookup.clone(), 1, tuning));
    let job = super::state::MarkerJob { transactional_id: "tx".into(), producer_id: 5, producer_epoch: 2, commit: false, partitions: tps(&[("a", 0), ("a", 1)]) };
    let send = {
        let (sender, job) = (sender.clone(), job.clone());
        tokio::spawn(async move { sender.send(&job, 9).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!send.is_finished(), "no leader: still waiting");
    *lookup.0.lock().unwrap() = Leader::At(dead);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!send.is_finished(), "the leader's address refuses connections: still retrying");
    assert_eq!(leader.count(), 0);
    *lookup.0.lock().unwrap() = Leader::At(addr);
    let outcome = tokio::time::timeout(Duration::from_secs(5), send).await.expect("markers written in time").unwrap();
    assert_eq!(outcome, super::markers::MarkerOutcome::Done);
    // NOT_LEADER_OR_FOLLOWER first, then accepted.
    let requests = leader.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let m = &requests[1].1.markers[0];
    assert_eq!((m.producer_id, m.producer_epoch, m.transaction_result, m.coordinator_epoch), (5, 2, false, 9));
    assert_eq!(m.topics[0].partition_indexes, vec![0, 1]);
}
