//! Writing a transaction's COMMIT/ABORT markers to the leaders of its
//! partitions (Kafka's `TransactionMarkerChannelManager` and
//! `TransactionMarkerRequestCompletionHandler`).
//!
//! Decision: every marker goes over the network as WriteTxnMarkers v1 to the
//! leader's inter-broker listener, also when this broker leads the partition,
//! so there is one code path (the leader's handler does the append, its
//! acks=all wait and the `__consumer_offsets` hand-off). Partitions are grouped
//! by leader, one request per leader per round. Per partition:
//! - NONE: done;
//! - INVALID_PRODUCER_EPOCH / TRANSACTION_COORDINATOR_FENCED: this coordinator
//!   is stale (a newer one took over); sending stops and the transaction is
//!   left to the new coordinator, as Kafka does;
//! - CORRUPT_MESSAGE / MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE /
//!   INVALID_REQUIRED_ACKS cannot succeed on a retry (Kafka treats them as
//!   fatal): logged, and the partition is given up;
//! - anything else (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
//!   NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, a lost connection...): retried
//!   after a back-off with the leader looked up again.
//!
//! A partition whose topic no longer exists is skipped (Kafka drops it too); a
//! partition without a live leader waits for one. The loop ends when every
//! partition is done, or when its task is aborted (the coordinator lost the
//! `__transaction_state` partition).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use klamm_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use klamm_protocol::messages::WriteTxnMarkersRequest;
use klamm_protocol::ErrorCode;
use tracing::{debug, warn};

use super::persistence::group_by_topic;
use super::state::{MarkerJob, Tp};
use crate::net::client::KafkaClient;
use crate::security::client::ClientSecurity;

/// The version sent (the first flexible one; Kafka's brokers send v1 too).
pub const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// Where a partition's leader is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leader {
    /// The topic or partition no longer exists.
    Gone,
    /// No live leader right now.
    Unknown,
    /// `host:port` of the leader's inter-broker listener.
    At(String),
}

pub trait LeaderLookup: Send + Sync {
    fn leader(&self, topic: &str, partition: i32) -> Leader;
}

/// The leaders in the broker's metadata image.
pub struct ImageLeaders(pub Arc<crate::server::Broker>);

impl LeaderLookup for ImageLeaders {
    fn leader(&self, topic: &str, partition: i32) -> Leader {
        let image = self.0.metadata.image();
        let Some(p) = image.partition(topic, partition) else { return Leader::Gone };
        if image.broker(p.leader).is_none_or(|b| b.fenced) {
            return Leader::Unknown;
        }
        match crate::metadata::broker_address(&image, &self.0.config.inter_broker_listener_name, p.leader) {
            Some(addr) => Leader::At(addr),
            None => Leader::Unknown,
        }
    }
}

/// How sending a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerOutcome {
    /// Every partition has its marker (or is gone).
    Done,
    /// A leader said this coordinator is stale.
    Fenced,
}

#[derive(Clone, Debug)]
pub struct MarkerTuning {
    pub request_timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for MarkerTuning {
    fn default() -> Self {
        MarkerTuning { request_timeout: Duration::from_secs(30), min_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(2) }
    }
}

/// Idle connections kept per leader address.
const IDLE_PER_LEADER: usize = 4;

/// Sends markers; shared by the shards of one broker. A request takes an idle
/// connection to its leader (or opens one) and gives it back afterwards, so
/// the markers of concurrent transactions do not queue behind each other's
/// acks=all waits at the leader.
pub struct MarkerSender {
    lookup: Arc<dyn LeaderLookup>,
    client_id: String,
    tuning: MarkerTuning,
    idle: Mutex<HashMap<String, Vec<KafkaClient>>>,
    security: ClientSecurity,
}

enum Answer {
    Ok(Vec<(Tp, ErrorCode)>),
    Failed(String),
}

impl MarkerSender {
    pub fn new(lookup: Arc<dyn LeaderLookup>, node_id: i32, tuning: MarkerTuning) -> MarkerSender {
        MarkerSender { lookup, client_id: format!("klamm-txn-markers-{node_id}"), tuning, idle: Mutex::new(HashMap::new()), security: ClientSecurity::default() }
    }

    /// Connects to leaders with `security` (the inter-broker listener's TLS and SASL login).
    pub fn secured(mut self, security: ClientSecurity) -> MarkerSender {
        self.security = security;
        self
    }

    /// Writes the markers of `job` with `coordinator_epoch`, retrying until done or fenced.
    pub async fn send(&self, job: &MarkerJob, coordinator_epoch: i32) -> MarkerOutcome {
        let mut pending: BTreeSet<Tp> = job.partitions.clone();
        let mut backoff = self.tuning.min_backoff;
        // Ends when every partition is done or given up, on a fence, or when
        // the owning task is aborted; each round waits at least `min_backoff`.
        while !pending.is_empty() {
            let mut by_leader: BTreeMap<String, BTreeSet<Tp>> = BTreeMap::new();
            for tp in pending.clone() {
                match self.lookup.leader(&tp.topic, tp.partition) {
                    Leader::Gone => {
                        debug!(topic = %tp.topic, partition = tp.partition, "partition gone; no marker needed");
                        pending.remove(&tp);
                    }
                    Leader::Unknown => {}
                    Leader::At(addr) => {
                        by_leader.entry(addr).or_default().insert(tp);
                    }
                }
            }
            let before = pending.len();
            for (addr, partitions) in by_leader {
                match self.send_to(&addr, job, coordinator_epoch, &partitions).await {
                    Answer::Failed(why) => debug!(leader = %addr, error = %why, "WriteTxnMarkers failed; retrying"),
                    Answer::Ok(results) => {
                        for (tp, code) in results {
                            if !partitions.contains(&tp) {
                                continue;
                            }
                            match code {
                                ErrorCode::NONE => {
                                    pending.remove(&tp);
                                }
                                ErrorCode::INVALID_PRODUCER_EPOCH | ErrorCode::TRANSACTION_COORDINATOR_FENCED => {
                                    warn!(transactional_id = %job.transactional_id, topic = %tp.topic, partition = tp.partition, error = code.name(), "marker refused: coordinator is stale; stop sending");
                                    return MarkerOutcome::Fenced;
                                }
                                ErrorCode::CORRUPT_MESSAGE | ErrorCode::MESSAGE_TOO_LARGE | ErrorCode::RECORD_LIST_TOO_LARGE | ErrorCode::INVALID_REQUIRED_ACKS => {
                                    tracing::error!(transactional_id = %job.transactional_id, topic = %tp.topic, partition = tp.partition, error = code.name(), "marker cannot be written; giving the partition up");
                                    pending.remove(&tp);
                                }
                                other => debug!(topic = %tp.topic, partition = tp.partition, error = other.name(), "marker not written; retrying"),
                            }
                        }
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
            backoff = if pending.len() < before { self.tuning.min_backoff } else { (backoff * 2).min(self.tuning.max_backoff) };
            tokio::time::sleep(backoff).await;
        }
        MarkerOutcome::Done
    }

    fn take_idle(&self, addr: &str) -> Option<KafkaClient> {
        self.idle.lock().expect("marker connections lock poisoned").get_mut(addr)?.pop()
    }

    fn give_back(&self, addr: &str, client: KafkaClient) {
        let mut idle = self.idle.lock().expect("marker connections lock poisoned");
        let pool = idle.entry(addr.to_string()).or_default();
        if pool.len() < IDLE_PER_LEADER {
            pool.push(client);
        }
    }

    async fn send_to(&self, addr: &str, job: &MarkerJob, coordinator_epoch: i32, partitions: &BTreeSet<Tp>) -> Answer {
        let request = WriteTxnMarkersRequest {
            markers: vec![WritableTxnMarker {
                producer_id: job.producer_id,
                producer_epoch: job.producer_epoch,
                transaction_result: job.commit,
                topics: group_by_topic(partitions)
                    .into_iter()
                    .map(|(name, partition_indexes)| WritableTxnMarkerTopic { name: name.to_string(), partition_indexes, ..Default::default() })
                    .collect(),
                coordinator_epoch,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut client = match self.take_idle(addr) {
            Some(c) => c,
            None => match KafkaClient::connect_secured(addr, &self.client_id, self.tuning.request_timeout, &self.security).await {
                Ok(c) => c,
                Err(e) => return Answer::Failed(format!("connect: {e}")),
            },
        };
        // A failed exchange drops the connection: it may hold half of one.
        match client.send(&request, WRITE_TXN_MARKERS_VERSION, self.tuning.request_timeout).await {
            Err(e) => Answer::Failed(e.to_string()),
            Ok(response) => {
                self.give_back(addr, client);
                let mut out = Vec::new();
                for marker in response.markers.into_iter().filter(|m| m.producer_id == job.producer_id) {
                    for t in marker.topics {
                        for p in t.partitions {
                            out.push((Tp::new(t.name.clone(), p.partition_index), ErrorCode(p.error_code)));
                        }
                    }
                }
                Answer::Ok(out)
            }
        }
    }
}
