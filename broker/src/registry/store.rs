//! The registry's store: the `_schemas` topic, read and written through the
//! broker's own log and replication, and the [`RegistryState`] built from it.
//!
//! - Writes: a command is appended as one record to `_schemas` partition 0 at its
//!   leader (locally with acks=all semantics when this broker leads it, otherwise
//!   a Produce acks=-1 over the inter-broker listener); the writer then waits until
//!   its own state machine has applied that offset and answers what it decided.
//! - Reads: one task per broker ([`run`]) applies the log in offset order up to
//!   the high watermark, from the local replica when this broker holds one, else by
//!   fetching from the leader. Only committed records are applied, so no broker
//!   ever applies a record a leader change could take back.
//! - The topic is created on first write (one partition, replication factor
//!   min(3, live brokers), delete policy with infinite retention: nothing is
//!   ever dropped, and a compaction could not keep request records anyway).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use klamm_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use klamm_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use klamm_protocol::messages::{FetchRequest, ProduceRequest};
use klamm_protocol::records::{iter_batches, RecordBatchBuilder};
use klamm_protocol::ErrorCode;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use super::api::Backend;
use super::state::{ApiError, Command, Outcome, RegistryState};
use crate::net::client::KafkaClient;
use crate::server::Broker;

/// The topic holding the registry's log.
pub const SCHEMAS_TOPIC: &str = "_schemas";
/// How long a write waits for the append and its apply.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// How much one read of the log takes at most.
const READ_BYTES: usize = 1 << 20;
/// Outcomes kept for writers that have not collected theirs (older ones are dropped).
const OUTCOMES_KEPT: usize = 10_000;

pub struct Store {
    broker: Arc<Broker>,
    state: RwLock<RegistryState>,
    /// The next offset to apply (everything below is in `state`).
    applied: watch::Sender<i64>,
    /// Incremented after every pass of the reader task (used by `catch_up`).
    passes: watch::Sender<u64>,
    /// Outcomes of applied commands by offset, for their writers.
    outcomes: Mutex<BTreeMap<i64, Outcome>>,
    /// Wakes the reader task early.
    poke: Notify,
    /// Asks the reader task for a pass at the leader even when a local follower replica
    /// exists: a follower learns the high watermark one fetch late, but a caller that
    /// just got an answer from another broker must see that broker's committed write.
    leader_pass: std::sync::atomic::AtomicBool,
    /// A connection to the leader, for remote appends (one write at a time uses it).
    produce_client: tokio::sync::Mutex<Option<(String, KafkaClient)>>,
}

fn store_error(message: impl Into<String>) -> ApiError {
    ApiError::new(500, 50002, format!("Error in the backend data store: {}", message.into()))
}

fn forward_error(message: impl Into<String>) -> ApiError {
    ApiError::new(500, 50003, format!("Error while forwarding the request to the primary: {}", message.into()))
}

impl Store {
    pub fn new(broker: Arc<Broker>) -> Arc<Store> {
        let state = RegistryState::new(super::formats(), broker.schema_ids.clone());
        Arc::new(Store {
            broker,
            state: RwLock::new(state),
            applied: watch::channel(0).0,
            passes: watch::channel(0).0,
            outcomes: Mutex::new(BTreeMap::new()),
            poke: Notify::new(),
            leader_pass: std::sync::atomic::AtomicBool::new(false),
            produce_client: tokio::sync::Mutex::new(None),
        })
    }

    /// Applies the records of `bytes` (whole batches) at or after the next offset.
    fn apply_batches(&self, bytes: Bytes, bound: i64) {
        let mut next = *self.applied.borrow();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        for batch in iter_batches(bytes) {
            let Ok(batch) = batch else { break };
            if batch.next_offset() <= next {
                continue;
            }
            if batch.next_offset() > bound {
                break;
            }
            if !batch.is_control() {
                let base = batch.base_offset();
                for rec in batch.records() {
                    let Ok(rec) = rec else { break };
                    let offset = rec.offset(base);
                    if offset < next {
                        continue;
                    }
                    match rec.value.as_deref().and_then(Command::decode) {
                        Some(command) => {
                            let outcome = state.apply(command);
                            outcomes.insert(offset, outcome);
                            while outcomes.len() > OUTCOMES_KEPT {
                                outcomes.pop_first();
                            }
                        }
                        None => debug!(offset, "skipping a _schemas record that is not a registry command"),
                    }
                }
            }
            next = batch.next_offset();
        }
        drop(outcomes);
        drop(state);
        self.applied.send_replace(next);
    }

    /// One pass of the reader: applies what is committed, from the local replica or the leader.
    async fn pass(&self, fetch_client: &mut Option<(String, KafkaClient)>, at_leader: bool) -> bool {
        let image = self.broker.metadata.image();
        let Some(meta) = image.partition(SCHEMAS_TOPIC, 0) else { return false };
        let next = *self.applied.borrow();
        let local = self.broker.replicas.get(SCHEMAS_TOPIC, 0).filter(|_| meta.replicas.contains(&self.broker.node_id));
        if let Some(local) = local.filter(|p| !at_leader || p.is_leader()) {
            let view = local.view();
            if next >= view.high_watermark {
                return false;
            }
            match local.reader().read(next, READ_BYTES, view.high_watermark, true) {
                Ok(r) if !r.bytes.is_empty() => {
                    self.apply_batches(r.bytes, view.high_watermark);
                    return true;
                }
                Ok(_) => return false,
                Err(e) => {
                    warn!(error = %e, "reading the local _schemas replica failed");
                    return false;
                }
            }
        }
        // No local replica, or a pass at the leader was asked: fetch from the leader (a
        // consumer's fetch: committed records only).
        let Some(addr) = image.broker(meta.leader).filter(|b| !b.fenced).and(crate::metadata::broker_address(
            &image,
            &self.broker.config.inter_broker_listener_name,
            meta.leader,
        )) else {
            return false;
        };
        if fetch_client.as_ref().is_none_or(|(a, _)| *a != addr) {
            let client_id = format!("klamm-registry-{}", self.broker.node_id);
            match KafkaClient::connect_secured(&addr, &client_id, Duration::from_secs(5), &self.broker.inter_broker_security).await {
                Ok(c) => *fetch_client = Some((addr.clone(), c)),
                Err(e) => {
                    debug!(%addr, error = %e, "connecting to the _schemas leader failed");
                    return false;
                }
            }
        }
        let Some((_, client)) = fetch_client.as_mut() else { return false };
        let request = FetchRequest {
            replica_id: -1,
            max_wait_ms: if at_leader { 0 } else { 500 },
            min_bytes: 1,
            max_bytes: READ_BYTES as i32,
            isolation_level: 0,
            session_epoch: -1,
            topics: vec![FetchTopic {
                topic: SCHEMAS_TOPIC.to_string(),
                partitions: vec![FetchPartition {
                    partition: 0,
                    current_leader_epoch: -1,
                    fetch_offset: next,
                    last_fetched_epoch: -1,
                    log_start_offset: -1,
                    partition_max_bytes: READ_BYTES as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        match client.send(&request, 11, Duration::from_secs(10)).await {
            Ok(response) => {
                let p = response.responses.into_iter().flat_map(|t| t.partitions).find(|p| p.partition_index == 0);
                match p {
                    Some(p) if p.error_code == 0 => {
                        let bytes = p.records.unwrap_or_default();
                        let got = !bytes.is_empty();
                        self.apply_batches(bytes, p.high_watermark);
                        got
                    }
                    Some(p) => {
                        debug!(error = ?ErrorCode::from(p.error_code), "fetching _schemas failed");
                        *fetch_client = None;
                        false
                    }
                    None => false,
                }
            }
            Err(e) => {
                debug!(error = %e, "fetching _schemas failed");
                *fetch_client = None;
                false
            }
        }
    }

    /// Creates `_schemas` if it does not exist yet.
    async fn ensure_topic(&self) -> Result<(), ApiError> {
        let broker = &self.broker;
        if broker.metadata.image().topic(SCHEMAS_TOPIC).is_some() {
            return Ok(());
        }
        let live = broker.metadata.image().brokers.values().filter(|b| !b.fenced).count().max(1);
        let configs = [("cleanup.policy", "delete"), ("retention.ms", "-1"), ("retention.bytes", "-1")];
        let spec = crate::handlers::create_topics::TopicSpec {
            name: SCHEMAS_TOPIC.to_string(),
            num_partitions: 1,
            replication_factor: live.min(3) as i16,
            assignment: Vec::new(),
            configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        match crate::handlers::create_topics::create_topic(broker, spec, false).await {
            Ok(_) => {
                info!("created {SCHEMAS_TOPIC}");
                Ok(())
            }
            Err((code, _)) if code == ErrorCode::TOPIC_ALREADY_EXISTS => Ok(()),
            Err((code, message)) => Err(store_error(format!("creating {SCHEMAS_TOPIC} failed: {code:?} {message}"))),
        }
    }

    /// Appends one record at the leader; returns its offset once committed (acks=all).
    async fn append(&self, batch: Bytes, deadline: tokio::time::Instant) -> Result<i64, ApiError> {
        let mut last_error = String::from("no leader");
        loop {
            let image = self.broker.metadata.image();
            let leader = image.partition(SCHEMAS_TOPIC, 0).map(|p| p.leader).unwrap_or(-1);
            if leader == self.broker.node_id {
                if let Some(local) = self.broker.replicas.get(SCHEMAS_TOPIC, 0).filter(|p| p.is_leader()) {
                    match local.append_from_client(batch.clone(), 9, crate::clock::now_ms()) {
                        Ok(r) => match local.wait_for_high_watermark(r.last_offset + 1, r.leader_epoch, deadline).await {
                            Ok(()) => return Ok(r.base_offset),
                            Err(code) => last_error = format!("{code:?}"),
                        },
                        Err(e) => last_error = format!("{:?}: {:?}", e.code, e.message),
                    }
                }
            } else if leader >= 0 {
                match self.append_remote(&image, leader, batch.clone(), deadline).await {
                    Ok(offset) => return Ok(offset),
                    Err(e) => last_error = e,
                }
            }
            if tokio::time::Instant::now() + Duration::from_millis(200) >= deadline {
                return Err(forward_error(last_error));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn append_remote(&self, image: &klamm_raft::MetadataImage, leader: i32, batch: Bytes, deadline: tokio::time::Instant) -> Result<i64, String> {
        let addr = crate::metadata::broker_address(image, &self.broker.config.inter_broker_listener_name, leader).ok_or("leader has no address")?;
        let mut guard = self.produce_client.lock().await;
        if guard.as_ref().is_none_or(|(a, _)| *a != addr) {
            let client_id = format!("klamm-registry-{}", self.broker.node_id);
            let c = KafkaClient::connect_secured(&addr, &client_id, Duration::from_secs(5), &self.broker.inter_broker_security)
                .await
                .map_err(|e| e.to_string())?;
            *guard = Some((addr, c));
        }
        let Some((_, client)) = guard.as_mut() else { return Err("no connection".into()) };
        let timeout_ms = deadline.saturating_duration_since(tokio::time::Instant::now()).as_millis().clamp(1, i32::MAX as u128) as i32;
        let request = ProduceRequest {
            acks: -1,
            timeout_ms,
            topic_data: vec![TopicProduceData {
                name: SCHEMAS_TOPIC.to_string(),
                partition_data: vec![PartitionProduceData { index: 0, records: Some(batch), ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let response = client.send(&request, 9, Duration::from_millis(timeout_ms as u64 + 1000)).await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                *guard = None;
                return Err(e.to_string());
            }
        };
        let p = response.responses.into_iter().flat_map(|t| t.partition_responses).find(|p| p.index == 0).ok_or("empty produce answer")?;
        if p.error_code != 0 {
            return Err(format!("{:?}", ErrorCode::from(p.error_code)));
        }
        Ok(p.base_offset)
    }
}

impl Backend for Store {
    fn read<T>(&self, f: impl FnOnce(&RegistryState) -> T) -> T {
        f(&self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    async fn write(&self, command: Command) -> Result<Outcome, ApiError> {
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        self.ensure_topic().await?;
        let (key, value) = command.encode();
        let batch = RecordBatchBuilder::new(0).record(crate::clock::now_ms(), Some(&key), Some(&value)).build();
        let offset = self.append(batch, deadline).await?;
        // Wait for our own state machine to apply it, then collect what it decided.
        let mut applied = self.applied.subscribe();
        loop {
            if *applied.borrow_and_update() > offset {
                break;
            }
            self.leader_pass.store(true, std::sync::atomic::Ordering::Release);
            self.poke.notify_one();
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(store_error("the registry store stopped")),
                Err(_) => return Err(store_error(format!("timed out applying offset {offset} of {SCHEMAS_TOPIC}"))),
            }
        }
        let outcome = self.outcomes.lock().unwrap_or_else(|e| e.into_inner()).remove(&offset);
        outcome.ok_or_else(|| ApiError::new(500, 50001, format!("Error in the backend data store: no outcome for offset {offset}")))
    }

    async fn catch_up(&self) {
        let mut passes = self.passes.subscribe();
        let start = *passes.borrow_and_update();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        // Two passes: one that began after this call has read up to the committed end seen then.
        while *passes.borrow_and_update() < start + 2 {
            self.leader_pass.store(true, std::sync::atomic::Ordering::Release);
            self.poke.notify_one();
            if tokio::time::timeout_at(deadline, passes.changed()).await.map_or(true, |r| r.is_err()) {
                return;
            }
        }
    }
}

/// The reader task: keeps `store` applied up to the committed end of `_schemas`.
pub async fn run(store: Arc<Store>, mut shutdown: watch::Receiver<bool>) {
    let mut fetch_client: Option<(String, KafkaClient)> = None;
    loop {
        let at_leader = store.leader_pass.swap(false, std::sync::atomic::Ordering::AcqRel);
        let progressed = tokio::select! {
            p = store.pass(&mut fetch_client, at_leader) => p,
            _ = shutdown.changed() => return,
        };
        store.passes.send_modify(|n| *n += 1);
        if progressed {
            continue;
        }
        // Idle: wake on a local high-watermark change, a writer's poke, or after a while.
        let local = store.broker.replicas.get(SCHEMAS_TOPIC, 0);
        let mut views = local.as_ref().map(|p| p.subscribe());
        tokio::select! {
            _ = async { match views.as_mut() { Some(v) => { let _ = v.changed().await; } None => std::future::pending::<()>().await } } => {}
            _ = store.poke.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
