//! The async owner of the groups: one tokio task per `__consumer_offsets`
//! partition led by this broker.
//!
//! Each task owns a [`Shard`] (no shared state, no lock): handlers send it
//! [`Command`]s over a bounded mpsc inbox with a oneshot for the answer.
//! JoinGroup and SyncGroup answers are parked (their oneshots kept by waiter
//! id) until the rebalance completes, so one group's rebalance never blocks
//! another's requests. Timers are the shard's next deadline, slept on inside
//! the task's `select!` loop. Records are appended to the partition before
//! the answer that depends on them is sent (acks=-1 semantics); on start (and
//! when leadership of a partition arrives later) the task replays the
//! partition and, until that is done, requests get COORDINATOR_LOAD_IN_PROGRESS.
//! Transactional offset commits are written as the producer's transactional
//! batch and stay pending until [`GroupCoordinator::complete_transaction`]
//! reports the transaction's marker.

use crate::topic_partition::TopicPartition;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use klamm_protocol::records::RecordBatch;
use klamm_protocol::ErrorCode;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};

use super::offsets::CommitRequest;
use super::txn_offsets::{StableOffsets, TxnCommitRequest};
use super::persistence::{self, OffsetsLog};
use super::state::{Effect, GroupConfig, GroupState, JoinRequest, JoinResult, LeavingMember, Shard, StoreReason, SyncRequest, SyncResult, Waiter};
use super::OFFSETS_TOPIC;
use crate::coordinator_shards::{follow_image, ShardHandle, ShardInbox, Shards};
use crate::replica::Partition;

/// Offsets of one group as OffsetFetch returns them (offset and error per partition).
pub type FetchedOffsets = StableOffsets;

/// One member as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// DescribeGroups' view of a group (Kafka's `GroupSummary`).
#[derive(Clone, Debug)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

impl GroupSummary {
    pub fn dead() -> GroupSummary {
        GroupSummary { state: GroupState::Dead, protocol_type: String::new(), protocol: String::new(), members: Vec::new() }
    }
}

/// ListGroups' view of a group.
#[derive(Clone, Debug)]
pub struct ListedGroupInfo {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

type Reply<T> = oneshot::Sender<T>;

enum Command {
    Join(JoinRequest, Reply<JoinResult>),
    Sync(SyncRequest, Reply<SyncResult>),
    Heartbeat { group_id: String, member_id: String, group_instance_id: Option<String>, generation_id: i32, reply: Reply<ErrorCode> },
    Leave { group_id: String, members: Vec<LeavingMember>, reply: Reply<(ErrorCode, Vec<ErrorCode>)> },
    Commit(CommitRequest, Reply<Vec<ErrorCode>>),
    TxnCommit(TxnCommitRequest, Reply<Vec<ErrorCode>>),
    CompleteTxn { producer_id: i64, commit: bool, reply: Reply<()> },
    Fetch { group_id: String, topics: Option<Vec<(String, Vec<i32>)>>, require_stable: bool, reply: Reply<FetchedOffsets> },
    Describe { group_id: String, reply: Reply<GroupSummary> },
    List { reply: Reply<Vec<ListedGroupInfo>> },
    DeleteGroup { group_id: String, reply: Reply<ErrorCode> },
    DeleteOffsets { group_id: String, partitions: Vec<TopicPartition>, reply: Reply<Result<Vec<ErrorCode>, ErrorCode>> },
}

/// The group coordinator of one broker.
pub struct GroupCoordinator {
    config: GroupConfig,
    retention_check_ms: u64,
    shards: Shards<Command>,
}

impl GroupCoordinator {
    pub fn new(node_id: i32, broker: &klamm_config::BrokerConfig) -> GroupCoordinator {
        let config = GroupConfig {
            min_session_timeout_ms: broker.group_min_session_timeout_ms,
            max_session_timeout_ms: broker.group_max_session_timeout_ms,
            max_size: broker.group_max_size,
            initial_rebalance_delay_ms: broker.group_initial_rebalance_delay_ms,
            offset_metadata_max_bytes: broker.offset_metadata_max_bytes.max(0) as usize,
            offsets_retention_ms: broker.offsets_retention_minutes as i64 * 60_000,
        };
        Self::with_config(node_id, config, broker.offsets_topic_num_partitions, broker.offsets_retention_check_interval_ms)
    }

    pub fn with_config(node_id: i32, config: GroupConfig, num_partitions: i32, retention_check_ms: i64) -> GroupCoordinator {
        GroupCoordinator { config, retention_check_ms: retention_check_ms.max(1000) as u64, shards: Shards::new(OFFSETS_TOPIC, node_id, num_partitions) }
    }

    /// Starts the shard of offsets partition `p` over `log` (tests, or a
    /// partition found by [`GroupCoordinator::sync_leadership`]).
    pub fn host_partition(&self, p: i32, log: Arc<dyn OffsetsLog>) {
        self.spawn_shard(p, log, None);
    }

    /// Stops the shard of offsets partition `p` (leadership lost).
    pub fn release_partition(&self, p: i32) {
        self.shards.remove(p);
    }

    fn spawn_shard(&self, p: i32, log: Arc<dyn OffsetsLog>, partition: Option<(Arc<Partition>, i32)>) {
        let inbox = self.shards.insert(p, partition);
        let task = ShardTask::new(p, self.config.clone(), log);
        tokio::spawn(task.run(inbox, self.retention_check_ms));
    }

    pub fn group_config(&self) -> &GroupConfig {
        &self.config
    }

    /// The offsets partition owning `group_id` (Kafka's `partitionFor`): the
    /// existing topic's partition count, else `offsets.topic.num.partitions`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        self.shards.partition_for(group_id)
    }

    pub fn partition_for_image(&self, image: &klamm_raft::MetadataImage, group_id: &str) -> i32 {
        self.shards.partition_for_image(image, group_id)
    }

    /// Starts/stops shard tasks so that exactly the offsets partitions led
    /// here (and open locally) have one, each at its leader epoch. Idempotent.
    pub fn sync_leadership(&self, image: &klamm_raft::MetadataImage, replicas: &crate::replica::ReplicaManager) {
        for (p, partition, epoch) in self.shards.sync(image, replicas) {
            info!(partition = p, "becoming coordinator for offsets partition; loading");
            let log: Arc<dyn OffsetsLog> = Arc::new(PartitionLog { partition: partition.clone() });
            self.spawn_shard(p, log, Some((partition, epoch)));
        }
    }

    /// Follows the metadata image and keeps the shards in step.
    pub async fn run(broker: Arc<crate::server::Broker>, shutdown: watch::Receiver<bool>) {
        let groups = &broker.groups;
        follow_image(&broker.metadata, shutdown, |image| groups.sync_leadership(image, &broker.replicas)).await;
        groups.shards.clear();
    }

    fn route(&self, group_id: &str) -> Result<ShardHandle<Command>, ErrorCode> {
        self.shards.route(group_id)
    }

    /// Whether this broker coordinates `group_id` (NONE), or why not.
    pub fn check(&self, group_id: &str) -> ErrorCode {
        match self.route(group_id) {
            Ok(_) => ErrorCode::NONE,
            Err(e) => e,
        }
    }

    async fn ask<T>(&self, group_id: &str, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ErrorCode> {
        self.shards.ask(group_id, make).await
    }

    pub async fn join(&self, req: JoinRequest) -> JoinResult {
        let member = req.member_id.clone();
        self.ask(&req.group_id.clone(), |r| Command::Join(req, r)).await.unwrap_or_else(|e| JoinResult::error(&member, e))
    }

    pub async fn sync(&self, req: SyncRequest) -> SyncResult {
        self.ask(&req.group_id.clone(), |r| Command::Sync(req, r)).await.unwrap_or_else(SyncResult::error)
    }

    pub async fn heartbeat(&self, group_id: &str, member_id: &str, group_instance_id: Option<String>, generation_id: i32) -> ErrorCode {
        let cmd = |reply| Command::Heartbeat {
            group_id: group_id.to_string(),
            member_id: member_id.to_string(),
            group_instance_id,
            generation_id,
            reply,
        };
        match self.ask(group_id, cmd).await {
            Ok(e) => e,
            // Kafka answers heartbeats blindly while the group is loading.
            Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS) => ErrorCode::NONE,
            Err(e) => e,
        }
    }

    pub async fn leave(&self, group_id: &str, members: Vec<LeavingMember>) -> (ErrorCode, Vec<ErrorCode>) {
        self.ask(group_id, |reply| Command::Leave { group_id: group_id.to_string(), members, reply })
            .await
            .unwrap_or_else(|e| (e, Vec::new()))
    }

    pub async fn commit(&self, req: CommitRequest) -> Vec<ErrorCode> {
        let n = req.offsets.len();
        self.ask(&req.group_id.clone(), |r| Command::Commit(req, r)).await.unwrap_or_else(|e| vec![e; n])
    }

    pub async fn fetch(&self, group_id: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> Result<FetchedOffsets, ErrorCode> {
        self.fetch_stable(group_id, topics, false).await
    }

    /// OffsetFetch; with `require_stable` (v7+) partitions holding pending
    /// transactional offsets answer UNSTABLE_OFFSET_COMMIT.
    pub async fn fetch_stable(&self, group_id: &str, topics: Option<Vec<(String, Vec<i32>)>>, require_stable: bool) -> Result<FetchedOffsets, ErrorCode> {
        self.ask(group_id, |reply| Command::Fetch { group_id: group_id.to_string(), topics, require_stable, reply }).await
    }

    /// TxnOffsetCommit: an error per request partition.
    pub async fn txn_commit(&self, req: TxnCommitRequest) -> Vec<ErrorCode> {
        let n = req.commit.offsets.len();
        self.ask(&req.commit.group_id.clone(), |r| Command::TxnCommit(req, r)).await.unwrap_or_else(|e| vec![e; n])
    }

    /// A COMMIT (`commit`) or ABORT marker of `producer_id` has been durably
    /// appended to offsets partition `offsets_partition`: its pending offsets
    /// become committed or are dropped. Called by the WriteTxnMarkers handler.
    /// A shard still loading takes it after the load (which may already have
    /// replayed the marker: applying it twice finds nothing pending); without
    /// a shard here, whoever loads the partition replays the marker.
    pub async fn complete_transaction(&self, offsets_partition: i32, producer_id: i64, commit: bool) {
        let Some(handle) = self.shards.handle(offsets_partition) else {
            debug!(partition = offsets_partition, producer_id, "transaction marker for an offsets partition not coordinated here");
            return;
        };
        let (tx, rx) = oneshot::channel();
        if handle.tx.send(Command::CompleteTxn { producer_id, commit, reply: tx }).await.is_ok() {
            let _ = rx.await;
        }
    }

    pub async fn describe(&self, group_id: &str) -> Result<GroupSummary, ErrorCode> {
        self.ask(group_id, |reply| Command::Describe { group_id: group_id.to_string(), reply }).await
    }

    /// Every group of every loaded shard; COORDINATOR_LOAD_IN_PROGRESS if
    /// some shard is still loading (with the groups of the others).
    pub async fn list(&self) -> (ErrorCode, Vec<ListedGroupInfo>) {
        let handles = self.shards.handles();
        let mut error = ErrorCode::NONE;
        let mut out = Vec::new();
        for h in handles {
            if !h.loaded.load(Ordering::Acquire) {
                error = ErrorCode::COORDINATOR_LOAD_IN_PROGRESS;
                continue;
            }
            let (tx, rx) = oneshot::channel();
            if h.tx.send(Command::List { reply: tx }).await.is_err() {
                continue;
            }
            if let Ok(groups) = rx.await {
                out.extend(groups);
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        (error, out)
    }

    pub async fn delete_group(&self, group_id: &str) -> ErrorCode {
        self.ask(group_id, |reply| Command::DeleteGroup { group_id: group_id.to_string(), reply }).await.unwrap_or_else(|e| e)
    }

    pub async fn delete_offsets(&self, group_id: &str, partitions: Vec<TopicPartition>) -> Result<Vec<ErrorCode>, ErrorCode> {
        self.ask(group_id, |reply| Command::DeleteOffsets { group_id: group_id.to_string(), partitions, reply }).await?
    }
}

/// [`OffsetsLog`] over a local partition of `__consumer_offsets` (or, for reads, `__transaction_state`).
pub struct PartitionLog {
    pub partition: Arc<Partition>,
}

impl OffsetsLog for PartitionLog {
    fn append(&self, batch: Bytes) -> Result<i64, ErrorCode> {
        // Single-replica partitions advance the high watermark on append.
        // TODO(replication): with followers, answer only once the high
        // watermark passes the batch (acks=-1); today the leader's append is it.
        let transactional = RecordBatch::parse(batch.clone()).map(|(b, _)| b.is_transactional()).unwrap_or(false);
        let result = if transactional {
            // TxnOffsetCommit's batches: written with the producer's id and
            // epoch but not its sequence (Kafka's coordinator append origin).
            self.partition.append_from_coordinator(batch, crate::clock::now_ms())
        } else {
            self.partition.append_from_client(batch, 9, crate::clock::now_ms())
        };
        result.map(|r| r.base_offset).map_err(|e| e.code)
    }
    fn start_offset(&self) -> i64 {
        self.partition.view().log_start_offset
    }
    /// Kafka loads a coordinator partition up to its log end offset
    /// (`GroupMetadataManager.doLoadGroupsAndOffsets`), not the high watermark.
    fn end_offset(&self) -> i64 {
        self.partition.view().log_end_offset
    }
    fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, ErrorCode> {
        let leo = self.partition.view().log_end_offset;
        self.partition.reader().read(offset, max_bytes, leo, true).map(|r| r.bytes).map_err(|e| {
            warn!(topic = %self.partition.topic, error = %e, "reading a coordinator partition failed");
            ErrorCode::KAFKA_STORAGE_ERROR
        })
    }
}

/// Kafka's mapping of append errors for group metadata (`storeGroup`).
pub fn group_store_error(e: ErrorCode) -> ErrorCode {
    match e {
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION | ErrorCode::NOT_ENOUGH_REPLICAS | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND => {
            ErrorCode::COORDINATOR_NOT_AVAILABLE
        }
        ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::KAFKA_STORAGE_ERROR => ErrorCode::NOT_COORDINATOR,
        ErrorCode::REQUEST_TIMED_OUT => ErrorCode::REBALANCE_IN_PROGRESS,
        ErrorCode::MESSAGE_TOO_LARGE | ErrorCode::RECORD_LIST_TOO_LARGE | ErrorCode::INVALID_FETCH_SIZE => ErrorCode::UNKNOWN_SERVER_ERROR,
        other => other,
    }
}

/// Kafka's mapping of append errors for offset commits (`storeOffsets`).
pub fn offset_store_error(e: ErrorCode) -> ErrorCode {
    match e {
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION | ErrorCode::NOT_ENOUGH_REPLICAS | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND => {
            ErrorCode::COORDINATOR_NOT_AVAILABLE
        }
        ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::KAFKA_STORAGE_ERROR => ErrorCode::NOT_COORDINATOR,
        ErrorCode::MESSAGE_TOO_LARGE | ErrorCode::RECORD_LIST_TOO_LARGE | ErrorCode::INVALID_FETCH_SIZE => ErrorCode::INVALID_COMMIT_OFFSET_SIZE,
        other => other,
    }
}

/// The single owner of one offsets partition's groups.
pub struct ShardTask {
    partition: i32,
    shard: Shard,
    log: Arc<dyn OffsetsLog>,
    joins: HashMap<Waiter, Reply<JoinResult>>,
    syncs: HashMap<Waiter, Reply<SyncResult>>,
    next_waiter: Waiter,
}

impl ShardTask {
    pub fn new(partition: i32, config: GroupConfig, log: Arc<dyn OffsetsLog>) -> ShardTask {
        ShardTask { partition, shard: Shard::new(config), log, joins: HashMap::new(), syncs: HashMap::new(), next_waiter: 0 }
    }

    async fn run(mut self, inbox: ShardInbox<Command>, retention_check_ms: u64) {
        let ShardInbox { mut rx, mut stop, loaded } = inbox;
        // Load (replay) the partition; requests meanwhile get LOAD_IN_PROGRESS.
        loop {
            let log = self.log.clone();
            let result = tokio::task::spawn_blocking(move || persistence::load(&*log, crate::clock::now_ms())).await;
            match result {
                Ok(Ok(loaded)) => {
                    info!(
                        partition = self.partition,
                        groups = loaded.groups.len(),
                        open_transactions = loaded.pending.len(),
                        "offsets partition loaded"
                    );
                    self.shard.groups = loaded.groups;
                    self.shard.pending_txn = loaded.pending;
                    break;
                }
                Ok(Err(e)) => warn!(partition = self.partition, error = ?e, "loading offsets partition failed; retrying"),
                Err(e) => warn!(partition = self.partition, error = %e, "loading offsets partition panicked; retrying"),
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        loaded.store(true, Ordering::Release);
        let mut retention = tokio::time::interval(Duration::from_millis(retention_check_ms));
        retention.tick().await;
        loop {
            let now = crate::clock::now_ms();
            let wait = match self.shard.next_deadline() {
                Some(d) => Duration::from_millis((d - now).clamp(0, 3_600_000) as u64),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = &mut stop => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                _ = tokio::time::sleep(wait) => {
                    let fx = self.shard.tick(crate::clock::now_ms());
                    self.process(fx);
                }
                _ = retention.tick() => self.expire_offsets(),
            }
        }
        // Leadership moved: parked callers go look for the new coordinator.
        for (_, tx) in self.joins.drain() {
            let _ = tx.send(JoinResult::error("", ErrorCode::NOT_COORDINATOR));
        }
        for (_, tx) in self.syncs.drain() {
            let _ = tx.send(SyncResult::error(ErrorCode::NOT_COORDINATOR));
        }
        debug!(partition = self.partition, "coordinator shard stopped");
    }

    fn waiter(&mut self) -> Waiter {
        self.next_waiter += 1;
        self.next_waiter
    }

    fn handle(&mut self, cmd: Command) {
        let now = crate::clock::now_ms();
        match cmd {
            Command::Join(req, reply) => {
                let w = self.waiter();
                self.joins.insert(w, reply);
                let fx = self.shard.join(req, w, now);
                self.process(fx);
            }
            Command::Sync(req, reply) => {
                let w = self.waiter();
                self.syncs.insert(w, reply);
                let fx = self.shard.sync(req, w, now);
                self.process(fx);
            }
            Command::Heartbeat { group_id, member_id, group_instance_id, generation_id, reply } => {
                let e = self.shard.heartbeat(&group_id, &member_id, group_instance_id.as_deref(), generation_id, now);
                let _ = reply.send(e);
            }
            Command::Leave { group_id, members, reply } => {
                let (top, errors, fx) = self.shard.leave(&group_id, &members, now);
                self.process(fx);
                let _ = reply.send((top, errors));
            }
            Command::Commit(req, reply) => {
                let _ = reply.send(self.commit(&req, now));
            }
            Command::TxnCommit(req, reply) => {
                let _ = reply.send(self.txn_commit(&req, now));
            }
            Command::CompleteTxn { producer_id, commit, reply } => {
                let applied = self.shard.complete_transaction(producer_id, commit, now);
                debug!(partition = self.partition, producer_id, commit, applied, "transaction completed");
                let _ = reply.send(());
            }
            Command::Fetch { group_id, topics, require_stable, reply } => {
                let _ = reply.send(self.shard.fetch_offsets_stable(&group_id, topics.as_deref(), require_stable));
            }
            Command::Describe { group_id, reply } => {
                let _ = reply.send(self.describe(&group_id));
            }
            Command::List { reply } => {
                let groups = self
                    .shard
                    .groups
                    .values()
                    .map(|g| ListedGroupInfo {
                        group_id: g.group_id.clone(),
                        protocol_type: g.protocol_type.clone().unwrap_or_default(),
                        state: g.state,
                    })
                    .collect();
                let _ = reply.send(groups);
            }
            Command::DeleteGroup { group_id, reply } => {
                let _ = reply.send(self.delete_group(&group_id, now));
            }
            Command::DeleteOffsets { group_id, partitions, reply } => {
                let _ = reply.send(self.delete_offsets(&group_id, &partitions, now));
            }
        }
    }

    /// Delivers effects in order; group records are written before the
    /// answers that follow them.
    fn process(&mut self, fx: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = fx.into();
        while let Some(e) = queue.pop_front() {
            match e {
                Effect::Join(w, r) => {
                    if let Some(tx) = self.joins.remove(&w) {
                        let _ = tx.send(r);
                    }
                }
                Effect::Sync(w, r) => {
                    if let Some(tx) = self.syncs.remove(&w) {
                        let _ = tx.send(r);
                    }
                }
                Effect::StoreGroup { group_id, generation_id, reason } => {
                    let result = self.store_group(&group_id);
                    if reason == StoreReason::Assignment {
                        let code = match result {
                            Ok(()) => ErrorCode::NONE,
                            Err(e) => group_store_error(e),
                        };
                        let more = self.shard.assignment_stored(&group_id, generation_id, code, crate::clock::now_ms());
                        queue.extend(more);
                    } else if let Err(e) = result {
                        warn!(group = %group_id, error = ?e, "storing group metadata failed");
                    }
                }
            }
        }
    }

    fn append(&self, records: &[(Bytes, Option<Bytes>)]) -> Result<i64, ErrorCode> {
        if records.is_empty() {
            return Ok(-1);
        }
        self.log.append(persistence::build_batch(records, crate::clock::now_ms()))
    }

    fn store_group(&self, group_id: &str) -> Result<(), ErrorCode> {
        let Some(group) = self.shard.group(group_id) else { return Ok(()) };
        let value = persistence::group_value(group, &self.shard.assignment_to_store(group_id));
        self.append(&[(persistence::group_key(group_id), Some(value))]).map(|_| ())
    }

    fn commit(&mut self, req: &CommitRequest, now: i64) -> Vec<ErrorCode> {
        let existed = self.shard.group(&req.group_id).is_some();
        let plan = self.shard.prepare_commit(req, now);
        self.store_offsets(req, plan, existed, None)
    }

    /// TxnOffsetCommit: the records go out as the producer's transactional
    /// batch and stay pending until the transaction's marker.
    // merge: Kafka (KIP-890) verifies the transaction with the transaction
    // coordinator (AddPartitionsToTxn v4 verify_only) before this write, as
    // txnlog's produce path does for client batches.
    fn txn_commit(&mut self, req: &TxnCommitRequest, now: i64) -> Vec<ErrorCode> {
        let existed = self.shard.group(&req.commit.group_id).is_some();
        let plan = self.shard.prepare_txn_commit(req, now);
        self.store_offsets(&req.commit, plan, existed, Some(req))
    }

    /// Writes the accepted offsets of a commit (a plain one, or one of
    /// transaction `txn`), then makes them committed or pending; on a failed
    /// write the accepted partitions get Kafka's mapped error.
    fn store_offsets(&mut self, req: &CommitRequest, mut plan: super::offsets::CommitPlan, existed: bool, txn: Option<&TxnCommitRequest>) -> Vec<ErrorCode> {
        if plan.accepted.is_empty() {
            return plan.errors;
        }
        let records: Vec<(Bytes, Option<Bytes>)> = plan
            .accepted
            .iter()
            .map(|(i, v)| {
                let o = &req.offsets[*i];
                (persistence::offset_key(&req.group_id, &o.topic, o.partition), Some(persistence::offset_value(v)))
            })
            .collect();
        let now = crate::clock::now_ms();
        let batch = match txn {
            None => persistence::build_batch(&records, now),
            Some(t) => persistence::build_txn_batch(&records, now, t.producer_id, t.producer_epoch),
        };
        match self.log.append(batch) {
            Ok(base) => {
                plan.set_record_offsets(base);
                match txn {
                    None => self.shard.apply_commit(req, &plan),
                    Some(t) => self.shard.apply_txn_commit(t, &plan),
                }
                plan.errors
            }
            Err(e) => {
                let e = offset_store_error(e);
                warn!(group = %req.group_id, error = ?e, transactional = txn.is_some(), "storing offsets failed");
                if !existed {
                    // The group was created for this commit only.
                    if self.shard.group(&req.group_id).is_some_and(|g| g.offsets.is_empty() && g.members.is_empty())
                        && !super::txn_offsets::group_has_pending(&self.shard.pending_txn, &req.group_id)
                    {
                        self.shard.groups.remove(&req.group_id);
                    }
                }
                plan.errors.iter().map(|c| if *c == ErrorCode::NONE { e } else { *c }).collect()
            }
        }
    }

    fn describe(&self, group_id: &str) -> GroupSummary {
        let Some(g) = self.shard.group(group_id) else { return GroupSummary::dead() };
        let stable = g.is(GroupState::Stable);
        let protocol = g.summary_protocol();
        GroupSummary {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            members: g
                .members
                .iter()
                .map(|m| MemberSummary {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, v)| v.clone()).unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        }
    }

    fn delete_group(&mut self, group_id: &str, _now: i64) -> ErrorCode {
        let backup = self.shard.group(group_id).cloned();
        let pending_backup = self.shard.pending_txn.clone();
        match self.shard.delete_group(group_id) {
            Err(e) => e,
            Ok(mut offsets) => {
                // Kafka's `deleteAllOffsets`: pending transactional offsets get
                // tombstones too (one per partition).
                offsets.extend(self.shard.drop_pending_of_group(group_id));
                offsets.sort();
                offsets.dedup();
                let mut records: Vec<(Bytes, Option<Bytes>)> =
                    offsets.iter().map(|tp| (persistence::offset_key(group_id, &tp.topic, tp.partition), None)).collect();
                records.push((persistence::group_key(group_id), None));
                match self.append(&records) {
                    Ok(_) => ErrorCode::NONE,
                    Err(e) => {
                        // Not written: keep the group.
                        if let Some(g) = backup {
                            self.shard.groups.insert(group_id.to_string(), g);
                        }
                        self.shard.pending_txn = pending_backup;
                        group_store_error(e)
                    }
                }
            }
        }
    }

    fn delete_offsets(&mut self, group_id: &str, partitions: &[TopicPartition], _now: i64) -> Result<Vec<ErrorCode>, ErrorCode> {
        let backup = self.shard.group(group_id).map(|g| g.offsets.clone());
        let (errors, removed) = self.shard.delete_offsets(group_id, partitions)?;
        let records: Vec<(Bytes, Option<Bytes>)> = removed.iter().map(|tp| (persistence::offset_key(group_id, &tp.topic, tp.partition), None)).collect();
        if let Err(e) = self.append(&records) {
            if let (Some(g), Some(offsets)) = (self.shard.groups.get_mut(group_id), backup) {
                g.offsets = offsets;
            }
            return Err(group_store_error(e));
        }
        Ok(errors)
    }

    fn expire_offsets(&mut self) {
        let expired = self.shard.expire_offsets(crate::clock::now_ms());
        if expired.is_empty() {
            return;
        }
        let mut records = Vec::new();
        for (group, partitions, gone) in &expired {
            for TopicPartition { topic: t, partition: p } in partitions {
                records.push((persistence::offset_key(group, t, *p), None));
            }
            if *gone {
                records.push((persistence::group_key(group), None));
            }
        }
        info!(partition = self.partition, groups = expired.len(), offsets = records.len(), "expired committed offsets");
        if let Err(e) = self.append(&records) {
            warn!(partition = self.partition, error = ?e, "writing offset tombstones failed");
        }
    }
}
