//! Follower replication: this broker pulls the partitions it follows from their leaders.
//!
//! One fetcher task per leader broker (Kafka's replica fetcher thread), started by
//! [`run`] when some local partition follows that leader and ended when none does. Each
//! task keeps one connection to the leader's `inter.broker.listener.name` endpoint and
//! sends Fetch v12 with `replica_id` = this node: for every partition its log end offset as
//! fetch offset, the leader epoch it knows (the leader fences a stale one) and the latest
//! epoch of its leader-epoch cache. Per partition, the answer is one of:
//! - records: appended as they are (offsets and epochs kept), then the leader's high
//!   watermark and log start offset are taken over;
//! - a diverging epoch: the local log has a suffix the leader does not (written under an
//!   older leader and never committed); it is truncated to where the logs agree;
//! - OFFSET_OUT_OF_RANGE below the leader's log start: the log starts over there;
//! - an epoch or leadership error: the metadata has moved on; the partition's position is
//!   taken afresh from the local state on the next round.
//!
//! A partition whose records cannot be appended (a batch failing its CRC or structure
//! check, which the partition logs once and flags, or a storage error) backs off
//! exponentially; the leader's other partitions are fetched meanwhile.
//!
//! The tasks hold only a [`FetcherContext`]: the [`ReplicaManager`] (the partitions
//! followed), the [`MetadataSource`] (who leads, where it listens) and their settings.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use klamm_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use klamm_protocol::messages::FetchRequest;
use klamm_protocol::ErrorCode;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{FetchPosition, LeaderFetchState, Partition, ReplicaManager, TopicPartition};
use crate::metadata::MetadataSource;
use crate::net::client::KafkaClient;

/// Fetch version used between brokers: flexible, with last fetched epoch and diverging
/// epoch, addressed by topic name.
const REPLICA_FETCH_VERSION: i16 = 12;
/// How often the manager looks for partitions whose leader changed.
const MANAGER_TICK: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause after an error, so a leader that is down or not ready is not hammered; also
/// the first back-off of a partition whose data could not be appended.
const ERROR_BACKOFF: Duration = Duration::from_millis(200);
/// A partition whose appends keep failing is asked for again at most this rarely.
const MAX_PARTITION_BACKOFF: Duration = Duration::from_secs(10);

/// A partition's back-off after its leader's data could not be appended: the delay
/// doubles with each failure, so a partition stuck on a corrupt batch neither spins
/// the fetcher nor holds up the other partitions of the same leader. A new leader
/// epoch ends it (the leader may serve other data now).
struct Backoff {
    delay: Duration,
    until: Instant,
    leader_epoch: i32,
}

/// What the fetcher tasks use of the broker.
#[derive(Clone)]
pub struct FetcherContext {
    pub replicas: Arc<ReplicaManager>,
    pub metadata: MetadataSource,
    pub settings: Arc<FetcherSettings>,
    /// TLS and SASL login for the inter-broker listener.
    pub inter_broker_security: crate::security::client::ClientSecurity,
}

/// The `replica.fetch.*` settings and the identity the fetchers use.
#[derive(Debug, Clone)]
pub struct FetcherSettings {
    /// This broker's id: the `replica_id` of its Fetch requests.
    pub node_id: i32,
    /// The leader listener to connect to (`inter.broker.listener.name`).
    pub listener: String,
    /// `replica.fetch.wait.max.ms`.
    pub wait_max_ms: i32,
    /// `replica.fetch.max.bytes`, per partition.
    pub partition_max_bytes: i32,
    /// `replica.fetch.min.bytes`.
    pub min_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub response_max_bytes: i32,
}

impl FetcherSettings {
    pub fn from_config(node_id: i32, config: &klamm_config::BrokerConfig) -> FetcherSettings {
        FetcherSettings {
            node_id,
            listener: config.inter_broker_listener_name.clone(),
            wait_max_ms: config.replica_fetch_wait_max_ms.max(0),
            partition_max_bytes: config.replica_fetch_max_bytes.max(1),
            min_bytes: config.replica_fetch_min_bytes.max(1),
            response_max_bytes: config.replica_fetch_response_max_bytes.max(1),
        }
    }
}

/// Starts and stops the per-leader fetcher tasks as leadership changes.
pub async fn run(broker: FetcherContext, mut shutdown: watch::Receiver<bool>) {
    let mut fetchers: HashMap<i32, JoinHandle<()>> = HashMap::new();
    let mut images = broker.metadata.subscribe();
    loop {
        let leaders: HashSet<i32> = broker.replicas.all().iter().filter_map(|p| p.fetch_position().map(|f| f.leader)).collect();
        fetchers.retain(|_, task| !task.is_finished());
        for leader in leaders {
            if !fetchers.contains_key(&leader) {
                debug!(leader, "starting replica fetcher");
                fetchers.insert(leader, tokio::spawn(fetch_from(broker.clone(), leader, shutdown.clone())));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(MANAGER_TICK) => {}
            _ = images.changed() => {}
            _ = shutdown.changed() => if *shutdown.borrow() { break },
        }
    }
    for (_, task) in fetchers {
        task.abort();
    }
}

/// The partitions this broker follows from `leader`, with their fetch positions.
fn followed_from(broker: &FetcherContext, leader: i32) -> Vec<(Arc<Partition>, FetchPosition)> {
    broker.replicas.all().into_iter().filter_map(|p| p.fetch_position().filter(|f| f.leader == leader).map(|f| (p, f))).collect()
}

/// The address of `leader`'s inter-broker listener (or its first one).
fn leader_address(broker: &FetcherContext, leader: i32) -> Option<String> {
    crate::metadata::broker_address(&broker.metadata.image(), &broker.settings.listener, leader)
}

/// One fetcher: loops while some partition follows `leader`.
async fn fetch_from(broker: FetcherContext, leader: i32, mut shutdown: watch::Receiver<bool>) {
    let mut client: Option<KafkaClient> = None;
    let mut backoffs: HashMap<TopicPartition, Backoff> = HashMap::new();
    let client_id = format!("klamm-replica-fetcher-{}-from-{leader}", broker.settings.node_id);
    let wait_ms = broker.settings.wait_max_ms;
    let request_timeout = Duration::from_millis(wait_ms as u64) + Duration::from_secs(10);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let positions = followed_from(&broker, leader);
        if positions.is_empty() {
            debug!(leader, "no partition follows this leader any more; fetcher stops");
            return;
        }
        // Partitions backing off sit this round out; the others are fetched as usual.
        let followed: HashSet<TopicPartition> = positions.iter().map(|(p, _)| TopicPartition::new(p.topic.as_str(), p.index)).collect();
        backoffs.retain(|key, _| followed.contains(key));
        let now_instant = Instant::now();
        let positions: Vec<_> = positions
            .into_iter()
            .filter(|(p, pos)| {
                backoffs.get(&TopicPartition::new(p.topic.as_str(), p.index)).is_none_or(|b| b.until <= now_instant || b.leader_epoch != pos.leader_epoch)
            })
            .collect();
        if positions.is_empty() {
            let next = backoffs.values().map(|b| b.until).min().unwrap_or(now_instant + ERROR_BACKOFF);
            tokio::select! {
                _ = tokio::time::sleep_until(next.min(now_instant + MANAGER_TICK)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        if client.is_none() {
            let Some(addr) = leader_address(&broker, leader) else {
                pause(&mut shutdown).await;
                continue;
            };
            match KafkaClient::connect_secured(&addr, &client_id, CONNECT_TIMEOUT, &broker.inter_broker_security).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    debug!(leader, %addr, error = %e, "cannot reach leader");
                    pause(&mut shutdown).await;
                    continue;
                }
            }
        }
        let request = fetch_request(&broker.settings, &positions);
        let Some(conn) = client.as_mut() else { continue };
        let response = tokio::select! {
            r = conn.send(&request, REPLICA_FETCH_VERSION, request_timeout) => r,
            _ = shutdown.changed() => return,
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                debug!(leader, error = %e, "replica fetch failed; reconnecting");
                client = None;
                pause(&mut shutdown).await;
                continue;
            }
        };
        if response.error_code != 0 {
            debug!(leader, error = response.error_code, "replica fetch refused");
            pause(&mut shutdown).await;
            continue;
        }
        let by_name: HashMap<(&str, i32), &(Arc<Partition>, FetchPosition)> =
            positions.iter().map(|entry| ((entry.0.topic.as_str(), entry.0.index), entry)).collect();
        let mut progressed = false;
        let now = crate::clock::now_ms();
        for topic in response.responses {
            for data in topic.partitions {
                let Some((partition, position)) = by_name.get(&(topic.topic.as_str(), data.partition_index)).map(|e| (&e.0, e.1)) else {
                    continue;
                };
                match handle_partition(partition, &position, data, now) {
                    Outcome::Moved => {
                        backoffs.remove(&TopicPartition::new(partition.topic.as_str(), partition.index));
                        progressed = true;
                    }
                    Outcome::Unchanged => {}
                    Outcome::Failed => {
                        let key = TopicPartition::new(partition.topic.as_str(), partition.index);
                        let delay = backoffs.get(&key).map_or(ERROR_BACKOFF, |b| (b.delay * 2).min(MAX_PARTITION_BACKOFF));
                        debug!(topic = %partition.topic, partition = partition.index, ?delay, "partition backs off");
                        backoffs.insert(key, Backoff { delay, until: Instant::now() + delay, leader_epoch: position.leader_epoch });
                    }
                }
            }
        }
        if !progressed {
            // Every partition errored (or answered nothing after the long poll): do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn fetch_request(settings: &FetcherSettings, positions: &[(Arc<Partition>, FetchPosition)]) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (partition, pos) in positions {
        let fetch = FetchPartition {
            partition: partition.index,
            current_leader_epoch: pos.leader_epoch,
            fetch_offset: pos.fetch_offset,
            last_fetched_epoch: pos.last_fetched_epoch,
            log_start_offset: pos.log_start_offset,
            partition_max_bytes: settings.partition_max_bytes,
            ..Default::default()
        };
        match topics.iter_mut().find(|t| t.topic == partition.topic) {
            Some(t) => t.partitions.push(fetch),
            None => topics.push(FetchTopic { topic: partition.topic.clone(), partitions: vec![fetch], ..Default::default() }),
        }
    }
    FetchRequest {
        replica_id: settings.node_id,
        max_wait_ms: settings.wait_max_ms,
        min_bytes: settings.min_bytes,
        max_bytes: settings.response_max_bytes,
        isolation_level: 0,
        session_id: 0,
        session_epoch: -1,
        topics,
        ..Default::default()
    }
}

/// What one partition's answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Appended, truncated, or an empty answer after the leader's long poll.
    Moved,
    /// Nothing changed (an error that the next round's fresh position resolves).
    Unchanged,
    /// The leader's data could not be appended (corrupt, or a storage error): the
    /// partition backs off.
    Failed,
}

/// Applies one partition's answer.
fn handle_partition(
    partition: &Partition,
    position: &FetchPosition,
    data: klamm_protocol::messages::fetch_response::PartitionData,
    now: i64,
) -> Outcome {
    let code = ErrorCode::from(data.error_code);
    if code == ErrorCode::NONE {
        if data.diverging_epoch.epoch >= 0 || data.diverging_epoch.end_offset >= 0 {
            let (epoch, end) = (data.diverging_epoch.epoch, data.diverging_epoch.end_offset);
            info!(topic = %partition.topic, partition = partition.index, epoch, end, fetch_offset = position.fetch_offset, "leader reports a diverging log");
            return match partition.truncate_diverging(epoch, end) {
                Ok(_) => Outcome::Moved,
                Err(e) => {
                    debug!(topic = %partition.topic, partition = partition.index, error = ?e.code, "truncation skipped");
                    Outcome::Unchanged
                }
            };
        }
        let records = data.records.unwrap_or_default();
        let had_records = !records.is_empty();
        let leader = LeaderFetchState { leader_epoch: position.leader_epoch, high_watermark: data.high_watermark, log_start_offset: data.log_start_offset };
        match partition.append_as_follower(records, leader, now) {
            Ok(leo) if had_records && leo <= position.fetch_offset => Outcome::Unchanged,
            Ok(_) => Outcome::Moved,
            // The metadata moved on; the next round fetches in the new epoch.
            Err(e) if e.code == ErrorCode::FENCED_LEADER_EPOCH => Outcome::Unchanged,
            // The partition logged it (once per distinct failure) and flagged itself.
            Err(e) if e.code == ErrorCode::CORRUPT_MESSAGE => Outcome::Failed,
            Err(e) => {
                warn!(topic = %partition.topic, partition = partition.index, error = ?e.code, message = e.message.as_deref().unwrap_or(""), "follower append failed");
                Outcome::Failed
            }
        }
    } else if code == ErrorCode::OFFSET_OUT_OF_RANGE {
        if data.log_start_offset >= 0 && position.fetch_offset < data.log_start_offset {
            info!(topic = %partition.topic, partition = partition.index, leader_log_start = data.log_start_offset, "behind the leader's log start; starting over there");
            moved_if(partition.restart_at(data.log_start_offset).is_ok())
        } else if data.high_watermark >= 0 && position.fetch_offset > data.high_watermark {
            // Ahead of the leader with no epoch telling where the logs split (a log without
            // epochs, or an unclean election): keep what is committed, as Kafka does.
            warn!(topic = %partition.topic, partition = partition.index, leader_high_watermark = data.high_watermark, "ahead of the leader; truncating to its high watermark");
            moved_if(partition.truncate_to_offset(data.high_watermark).is_ok())
        } else {
            Outcome::Unchanged
        }
    } else {
        debug!(topic = %partition.topic, partition = partition.index, error = ?code, "replica fetch error");
        Outcome::Unchanged
    }
}

fn moved_if(moved: bool) -> Outcome {
    if moved { Outcome::Moved } else { Outcome::Unchanged }
}

async fn pause(shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(ERROR_BACKOFF) => {}
        _ = shutdown.changed() => {}
    }
}
