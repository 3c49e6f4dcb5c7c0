//! The async owner of the transactions: one tokio task per `__transaction_state`
//! partition led by this broker (the shape of `group::coordinator`).
//!
//! Each task owns a [`TxnShard`] and handles [`Command`]s from the handlers one
//! at a time. A decision that needs a write does not block the task: the
//! record is appended at once (so the log keeps decision order) and the wait
//! for the high watermark runs beside the task, whose result comes back as an
//! [`Event`]; meanwhile the transaction's pending state answers other requests
//! with CONCURRENT_TRANSACTIONS, as Kafka's pending transitions do. The client
//! is answered once its record is durable. Markers are sent by tasks of the
//! shard's background `JoinSet` (aborted when the shard stops), which report back as
//! events; then the Complete* record is written.
//!
//! The coordinator epoch is the leader epoch of the partition: a new epoch
//! (even on the same broker) restarts the shard, which reloads the partition
//! and resumes PrepareCommit/PrepareAbort transactions by sending their
//! markers again.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use klamm_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::markers::{MarkerOutcome, MarkerSender};
use super::persistence::{self, AppendFuture, TxnLog};
use super::state::{AfterWrite, Decision, InitDecision, MarkerJob, Tp, Transit, TransitKind, TxnConfig, TxnShard, TxnState, TxnView};
use super::TRANSACTION_STATE_TOPIC;
use crate::coordinator_shards::{follow_image, ShardInbox, Shards};
use crate::group::persistence::{build_batch, OffsetsLog};
use crate::replica::Partition;

/// Delay before a failed Complete* write is tried again.
const COMPLETE_RETRY: Duration = Duration::from_secs(1);

pub type IdFuture = Pin<Box<dyn Future<Output = Result<i64, ErrorCode>> + Send>>;

/// Where new producer ids come from (the metadata log's blocks; a counter in tests).
pub trait ProducerIdSource: Send + Sync {
    fn next_id(&self) -> IdFuture;
}

/// What the shards need from the rest of the broker.
#[derive(Clone)]
pub struct Services {
    pub ids: Arc<dyn ProducerIdSource>,
    pub markers: Arc<MarkerSender>,
    /// Counts transactions as they complete (commit or abort, whoever asked for it).
    pub metrics: Arc<crate::metrics::BrokerMetrics>,
}

type Reply<T> = oneshot::Sender<T>;

/// InitProducerId's answer: producer id and epoch, or an error.
pub type InitResult = Result<(i64, i16), ErrorCode>;
/// EndTxn's answer: error, producer id, epoch (v5 returns the latter two).
pub type EndResult = (ErrorCode, i64, i16);

struct InitRequest {
    transactional_id: String,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
}

enum Command {
    Init(InitRequest, Reply<InitResult>),
    Add { id: String, producer_id: i64, epoch: i16, partitions: BTreeSet<Tp>, reply: Reply<ErrorCode> },
    Verify { id: String, producer_id: i64, epoch: i16, partitions: Vec<Tp>, reply: Reply<Result<Vec<ErrorCode>, ErrorCode>> },
    End { id: String, producer_id: i64, epoch: i16, commit: bool, reply: Reply<EndResult> },
    Describe { id: String, reply: Reply<Option<TxnView>> },
    List { states: Vec<TxnState>, producer_ids: Vec<i64>, min_duration_ms: i64, reply: Reply<Vec<TxnView>> },
}

/// Who waits for a write.
enum Waiter {
    None,
    Init(Reply<InitResult>),
    Add(Reply<ErrorCode>),
    End(Reply<EndResult>),
}

enum Event {
    Written { transit: Transit, result: Result<(), ErrorCode>, waiter: Waiter },
    ProducerId { request: InitRequest, id: Result<i64, ErrorCode>, reply: Reply<InitResult> },
    MarkersDone { job: MarkerJob, outcome: MarkerOutcome },
    RetryComplete(MarkerJob),
}

/// The transaction coordinator of one broker.
pub struct TxnCoordinator {
    config: TxnConfig,
    abort_interval: Duration,
    expire_interval: Duration,
    shards: Shards<Command>,
    services: OnceLock<Services>,
}

impl TxnCoordinator {
    pub fn new(node_id: i32, broker: &klamm_config::BrokerConfig) -> TxnCoordinator {
        let config = TxnConfig { max_timeout_ms: broker.transaction_max_timeout_ms, id_expiration_ms: broker.transactional_id_expiration_ms as i64 };
        Self::with_config(
            node_id,
            config,
            broker.transaction_state_log_num_partitions,
            broker.transaction_abort_timed_out_transaction_cleanup_interval_ms as u64,
            broker.transaction_remove_expired_transaction_cleanup_interval_ms as u64,
        )
    }

    pub fn with_config(node_id: i32, config: TxnConfig, num_partitions: i32, abort_interval_ms: u64, expire_interval_ms: u64) -> TxnCoordinator {
        TxnCoordinator {
            config,
            abort_interval: Duration::from_millis(abort_interval_ms.max(1)),
            expire_interval: Duration::from_millis(expire_interval_ms.max(1)),
            shards: Shards::new(TRANSACTION_STATE_TOPIC, node_id, num_partitions),
            services: OnceLock::new(),
        }
    }

    /// Gives the coordinator its producer ids and marker sender (once; later calls are ignored).
    pub fn set_services(&self, services: Services) {
        let _ = self.services.set(services);
    }

    pub fn max_timeout_ms(&self) -> i32 {
        self.config.max_timeout_ms
    }

    /// Starts the shard of partition `p` over `log` with `coordinator_epoch` (tests).
    pub fn host_partition(&self, p: i32, coordinator_epoch: i32, log: Arc<dyn TxnLog>) {
        self.spawn_shard(p, coordinator_epoch, log, None);
    }

    pub fn release_partition(&self, p: i32) {
        self.shards.remove(p);
    }

    fn spawn_shard(&self, p: i32, epoch: i32, log: Arc<dyn TxnLog>, partition: Option<(Arc<Partition>, i32)>) {
        let Some(services) = self.services.get().cloned() else {
            warn!(partition = p, "transaction coordinator not started; not hosting");
            return;
        };
        let inbox = self.shards.insert(p, partition);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let task = ShardTask {
            partition: p,
            coordinator_epoch: epoch,
            shard: TxnShard::new(self.config.clone()),
            log,
            services,
            events: events_tx,
            background: JoinSet::new(),
        };
        tokio::spawn(task.run(inbox, events_rx, self.abort_interval, self.expire_interval));
    }

    /// The `__transaction_state` partition of `transactional_id` (Kafka's `partitionFor`).
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        self.shards.partition_for(transactional_id)
    }

    pub fn partition_for_image(&self, image: &klamm_raft::MetadataImage, transactional_id: &str) -> i32 {
        self.shards.partition_for_image(image, transactional_id)
    }

    /// Starts/stops shards so that exactly the `__transaction_state` partitions
    /// led here (open locally) have one, each at its current leader epoch.
    pub fn sync_leadership(&self, image: &klamm_raft::MetadataImage, replicas: &crate::replica::ReplicaManager) {
        for (p, partition, epoch) in self.shards.sync(image, replicas) {
            info!(partition = p, coordinator_epoch = epoch, "becoming transaction coordinator for partition; loading");
            let log: Arc<dyn TxnLog> = Arc::new(PartitionTxnLog { log: crate::group::coordinator::PartitionLog { partition: partition.clone() } });
            self.spawn_shard(p, epoch, log, Some((partition, epoch)));
        }
    }

    /// Follows the metadata image and keeps the shards in step.
    pub async fn run(broker: Arc<crate::server::Broker>, shutdown: watch::Receiver<bool>) {
        let txns = &broker.txns;
        txns.set_services(Services {
            ids: Arc::new(BrokerIds(broker.clone())),
            markers: Arc::new(MarkerSender::new(
                Arc::new(super::markers::ImageLeaders(broker.clone())),
                broker.node_id,
                Default::default(),
            )
            .secured(broker.inter_broker_security.clone())),
            metrics: broker.metrics.clone(),
        });
        follow_image(&broker.metadata, shutdown, |image| txns.sync_leadership(image, &broker.replicas)).await;
        txns.shards.clear();
    }

    async fn ask<T>(&self, transactional_id: &str, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ErrorCode> {
        self.shards.ask(transactional_id, make).await
    }

    /// InitProducerId with a transactional id; `expected` is the KIP-360 pair of v3+.
    pub async fn init_producer_id(&self, transactional_id: &str, timeout_ms: i32, expected: Option<(i64, i16)>) -> InitResult {
        let request = InitRequest { transactional_id: transactional_id.to_string(), timeout_ms, expected };
        self.ask(transactional_id, |r| Command::Init(request, r)).await?
    }

    pub async fn add_partitions(&self, id: &str, producer_id: i64, epoch: i16, partitions: BTreeSet<Tp>) -> ErrorCode {
        self.ask(id, |reply| Command::Add { id: id.to_string(), producer_id, epoch, partitions, reply }).await.unwrap_or_else(|e| e)
    }

    pub async fn verify(&self, id: &str, producer_id: i64, epoch: i16, partitions: Vec<Tp>) -> Result<Vec<ErrorCode>, ErrorCode> {
        self.ask(id, |reply| Command::Verify { id: id.to_string(), producer_id, epoch, partitions, reply }).await?
    }

    pub async fn end_txn(&self, id: &str, producer_id: i64, epoch: i16, commit: bool) -> EndResult {
        self.ask(id, |reply| Command::End { id: id.to_string(), producer_id, epoch, commit, reply }).await.unwrap_or_else(|e| (e, -1, -1))
    }

    /// DescribeTransactions of one id: TRANSACTIONAL_ID_NOT_FOUND when unknown.
    pub async fn describe(&self, id: &str) -> Result<TxnView, ErrorCode> {
        self.ask(id, |reply| Command::Describe { id: id.to_string(), reply }).await?.ok_or(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND)
    }

    /// Every loaded shard's transactions that pass the filters;
    /// COORDINATOR_LOAD_IN_PROGRESS if some shard is still loading.
    pub async fn list(&self, states: Vec<TxnState>, producer_ids: Vec<i64>, min_duration_ms: i64) -> (ErrorCode, Vec<TxnView>) {
        let handles = self.shards.handles();
        let mut error = ErrorCode::NONE;
        let mut out = Vec::new();
        for h in handles {
            if !h.loaded.load(Ordering::Acquire) {
                error = ErrorCode::COORDINATOR_LOAD_IN_PROGRESS;
                continue;
            }
            let (tx, rx) = oneshot::channel();
            let cmd = Command::List { states: states.clone(), producer_ids: producer_ids.clone(), min_duration_ms, reply: tx };
            if h.tx.send(cmd).await.is_ok() {
                if let Ok(v) = rx.await {
                    out.extend(v);
                }
            }
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        (error, out)
    }
}

/// Producer ids from the broker's allocator (blocks from the metadata log).
struct BrokerIds(Arc<crate::server::Broker>);

impl ProducerIdSource for BrokerIds {
    fn next_id(&self) -> IdFuture {
        let broker = self.0.clone();
        Box::pin(async move {
            broker.producer_ids.next(&broker.metadata).await.map_err(|e| {
                warn!(error = %e, "producer id allocation failed");
                ErrorCode::COORDINATOR_NOT_AVAILABLE
            })
        })
    }
}

/// [`TxnLog`] over the local `__transaction_state` partition: append, then
/// wait for the high watermark (acks=-1).
struct PartitionTxnLog {
    log: crate::group::coordinator::PartitionLog,
}

/// How long a coordinator write may wait for its followers.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

impl TxnLog for PartitionTxnLog {
    fn append(&self, batch: Bytes) -> AppendFuture {
        let partition = self.log.partition.clone();
        // As an acks=-1 produce: nothing is appended while the ISR is below
        // min.insync.replicas (Kafka's append for the transaction log).
        let appended = if (partition.isr_len() as i64) < partition.config().min_insync_replicas as i64 {
            Err(ErrorCode::NOT_ENOUGH_REPLICAS)
        } else {
            partition.append_from_client(batch, 9, crate::clock::now_ms()).map_err(|e| e.code)
        };
        Box::pin(async move {
            let r = appended?;
            let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
            partition.wait_for_high_watermark(r.last_offset + 1, r.leader_epoch, deadline).await?;
            Ok(r.base_offset)
        })
    }
    fn reader(&self) -> &dyn OffsetsLog {
        &self.log
    }
}

/// Kafka's mapping of append errors for the transaction log (`appendTransactionToLog`).
pub fn txn_store_error(e: ErrorCode) -> ErrorCode {
    match e {
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::NOT_ENOUGH_REPLICAS
        | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | ErrorCode::REQUEST_TIMED_OUT => ErrorCode::COORDINATOR_NOT_AVAILABLE,
        ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::KAFKA_STORAGE_ERROR => ErrorCode::NOT_COORDINATOR,
        ErrorCode::MESSAGE_TOO_LARGE | ErrorCode::RECORD_LIST_TOO_LARGE => ErrorCode::UNKNOWN_SERVER_ERROR,
        other => other,
    }
}

/// The single owner of one `__transaction_state` partition's transactions.
struct ShardTask {
    partition: i32,
    coordinator_epoch: i32,
    shard: TxnShard,
    log: Arc<dyn TxnLog>,
    services: Services,
    events: mpsc::UnboundedSender<Event>,
    /// Background work: waits for durable writes, producer-id allocations,
    /// marker senders, delayed retries; dropped (aborted) with the task.
    background: JoinSet<()>,
}

impl ShardTask {
    async fn run(mut self, inbox: ShardInbox<Command>, mut events: mpsc::UnboundedReceiver<Event>, abort_interval: Duration, expire_interval: Duration) {
        let ShardInbox { mut rx, mut stop, loaded } = inbox;
        // Load (replay) the partition; requests meanwhile get LOAD_IN_PROGRESS.
        loop {
            let log = self.log.clone();
            match tokio::task::spawn_blocking(move || persistence::load(log.reader())).await {
                Ok(Ok(txns)) => {
                    info!(partition = self.partition, transactions = txns.len(), "transaction state partition loaded");
                    self.shard.txns = txns;
                    break;
                }
                Ok(Err(e)) => warn!(partition = self.partition, error = ?e, "loading transaction state failed; retrying"),
                Err(e) => warn!(partition = self.partition, error = %e, "loading transaction state panicked; retrying"),
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        // Transactions that were deciding when the last coordinator stopped:
        // their markers are sent again, as Kafka does (a second marker where one
        // was written already only ends a transaction that is no longer open).
        let preparing: Vec<String> =
            self.shard.txns.values().filter(|t| matches!(t.rec.state, TxnState::PrepareCommit | TxnState::PrepareAbort)).map(|t| t.transactional_id.clone()).collect();
        for id in preparing {
            let after = self.shard.after_prepare(&id);
            self.follow_up(after);
        }
        loaded.store(true, Ordering::Release);
        let mut abort_tick = tokio::time::interval(abort_interval);
        let mut expire_tick = tokio::time::interval(expire_interval);
        abort_tick.tick().await;
        expire_tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                Some(event) = events.recv() => self.on_event(event),
                _ = abort_tick.tick() => self.abort_timed_out(),
                _ = expire_tick.tick() => self.expire(),
                Some(_) = self.background.join_next(), if !self.background.is_empty() => {}
            }
        }
        debug!(partition = self.partition, "transaction coordinator shard stopped");
    }

    fn handle(&mut self, cmd: Command) {
        let now = crate::clock::now_ms();
        match cmd {
            Command::Init(request, reply) => self.init(request, None, reply),
            Command::Add { id, producer_id, epoch, partitions, reply } => match self.shard.add_partitions(&id, producer_id, epoch, &partitions, now) {
                Decision::Reply(e) => {
                    let _ = reply.send(e);
                }
                Decision::Write(t) => self.write(t, Waiter::Add(reply)),
            },
            Command::Verify { id, producer_id, epoch, partitions, reply } => {
                let _ = reply.send(self.shard.verify(&id, producer_id, epoch, &partitions));
            }
            Command::End { id, producer_id, epoch, commit, reply } => match self.shard.end_txn(&id, producer_id, epoch, commit, now) {
                Decision::Reply(e) => {
                    let r = if e == ErrorCode::NONE { (e, producer_id, epoch) } else { (e, -1, -1) };
                    let _ = reply.send(r);
                }
                Decision::Write(t) => self.write(t, Waiter::End(reply)),
            },
            Command::Describe { id, reply } => {
                let _ = reply.send(self.shard.view(&id));
            }
            Command::List { states, producer_ids, min_duration_ms, reply } => {
                let _ = reply.send(self.shard.list(&states, &producer_ids, min_duration_ms, now));
            }
        }
    }

    fn init(&mut self, request: InitRequest, fresh_id: Option<i64>, reply: Reply<InitResult>) {
        let now = crate::clock::now_ms();
        match self.shard.init_producer_id(&request.transactional_id, request.timeout_ms, request.expected, fresh_id, now) {
            InitDecision::Reply(r) => {
                let _ = reply.send(r);
            }
            InitDecision::NeedProducerId if fresh_id.is_some() => {
                let _ = reply.send(Err(ErrorCode::COORDINATOR_NOT_AVAILABLE));
            }
            InitDecision::NeedProducerId => {
                let ids = self.services.ids.clone();
                let events = self.events.clone();
                self.background.spawn(async move {
                    let id = ids.next_id().await;
                    let _ = events.send(Event::ProducerId { request, id, reply });
                });
            }
            InitDecision::Write(t) => self.write(t, Waiter::Init(reply)),
        }
    }

    /// Appends the record of `t` now and reports when it is durable.
    fn write(&mut self, t: Transit, waiter: Waiter) {
        let value = (t.rec.state != TxnState::Dead).then(|| persistence::value(&t.rec));
        let batch = build_batch(&[(persistence::key(&t.transactional_id), value)], crate::clock::now_ms());
        let pending = self.log.append(batch);
        let events = self.events.clone();
        self.background.spawn(async move {
            let result = pending.await.map(|_| ());
            let _ = events.send(Event::Written { transit: t, result, waiter });
        });
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Written { transit, result, waiter } => self.written(transit, result, waiter),
            Event::ProducerId { request, id, reply } => match id {
                Ok(id) => self.init(request, Some(id), reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Event::MarkersDone { job, outcome } => match outcome {
                MarkerOutcome::Done => self.complete(&job),
                MarkerOutcome::Fenced => {
                    // A newer coordinator owns the transaction; this shard is about to be released.
                    warn!(partition = self.partition, transactional_id = %job.transactional_id, "markers fenced; leaving the transaction to the new coordinator");
                }
            },
            Event::RetryComplete(job) => self.complete(&job),
        }
    }

    fn written(&mut self, transit: Transit, result: Result<(), ErrorCode>, waiter: Waiter) {
        let result = result.map_err(txn_store_error);
        if let Err(e) = result {
            warn!(partition = self.partition, transactional_id = %transit.transactional_id, kind = ?transit.kind, error = e.name(), "writing transaction state failed");
        }
        if transit.kind == TransitKind::Complete {
            if let Err(e) = result {
                self.shard.complete_failed(&transit);
                if e == ErrorCode::COORDINATOR_NOT_AVAILABLE {
                    let events = self.events.clone();
                    let job = MarkerJob {
                        transactional_id: transit.transactional_id.clone(),
                        producer_id: transit.rec.producer_id,
                        producer_epoch: transit.rec.producer_epoch,
                        commit: transit.rec.state == TxnState::CompleteCommit,
                        partitions: BTreeSet::new(),
                    };
                    self.background.spawn(async move {
                        tokio::time::sleep(COMPLETE_RETRY).await;
                        let _ = events.send(Event::RetryComplete(job));
                    });
                }
                return;
            }
        }
        if transit.kind == TransitKind::Complete {
            // Counted here, once the markers are written and the outcome is durable, so
            // that aborts of timed-out or fenced transactions count as well as EndTxn's.
            self.services.metrics.transaction_completed(transit.rec.state == TxnState::CompleteCommit);
        }
        let after = self.shard.write_done(&transit, result);
        match waiter {
            Waiter::None => {}
            Waiter::Add(reply) => {
                let _ = reply.send(result.err().unwrap_or(ErrorCode::NONE));
            }
            Waiter::End(reply) => {
                let r = match result {
                    Ok(()) => (ErrorCode::NONE, transit.rec.producer_id, transit.rec.producer_epoch),
                    Err(e) => (e, -1, -1),
                };
                let _ = reply.send(r);
            }
            Waiter::Init(reply) => {
                let r = match result {
                    // The fence's epoch is never returned: the client retries.
                    Ok(()) if transit.kind == TransitKind::EpochFence => Err(ErrorCode::CONCURRENT_TRANSACTIONS),
                    Ok(()) => Ok((transit.rec.producer_id, transit.rec.producer_epoch)),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
        }
        self.follow_up(after);
    }

    fn follow_up(&mut self, after: AfterWrite) {
        let AfterWrite::SendMarkers(job) = after else { return };
        let sender = self.services.markers.clone();
        let events = self.events.clone();
        let epoch = self.coordinator_epoch;
        self.background.spawn(async move {
            let outcome = sender.send(&job, epoch).await;
            let _ = events.send(Event::MarkersDone { job, outcome });
        });
    }

    fn complete(&mut self, job: &MarkerJob) {
        if let Some(t) = self.shard.markers_done(job, crate::clock::now_ms()) {
            self.write(t, Waiter::None);
        }
    }

    fn abort_timed_out(&mut self) {
        let now = crate::clock::now_ms();
        for id in self.shard.timed_out(now) {
            if let Some(t) = self.shard.abort_timed_out(&id, now) {
                info!(transactional_id = %id, "aborting a transaction that ran past its timeout");
                self.write(t, Waiter::None);
            }
        }
    }

    fn expire(&mut self) {
        let now = crate::clock::now_ms();
        for t in self.shard.expire(now) {
            info!(transactional_id = %t.transactional_id, "transactional id expired");
            self.write(t, Waiter::None);
        }
    }
}
