//! The registry of coordinator shards shared by the group coordinator
//! (`__consumer_offsets`) and the transaction coordinator
//! (`__transaction_state`): one task per partition of the internal topic led
//! by this broker, reached through a bounded inbox of commands.
//!
//! It owns what both coordinators do alike: which partition a key hashes to
//! (Kafka's `partitionFor`: the existing topic's partition count, else the
//! configured one), routing a request to its shard (NOT_COORDINATOR when the
//! partition is not led here, COORDINATOR_LOAD_IN_PROGRESS while the shard
//! replays it), and keeping the set of shards equal to the partitions led
//! here, each at its current leader epoch (a new epoch restarts the shard, so
//! it reloads, as Kafka's `onElection` does). The shard tasks themselves are
//! the coordinators' own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use klamm_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot, watch};

use crate::group::hash::partition_for;
use crate::replica::{Partition, ReplicaManager};

/// Capacity of a shard's inbox.
const INBOX: usize = 1024;

/// How a request reaches a shard.
pub struct ShardHandle<C> {
    pub tx: mpsc::Sender<C>,
    pub loaded: Arc<AtomicBool>,
}

impl<C> Clone for ShardHandle<C> {
    fn clone(&self) -> Self {
        ShardHandle { tx: self.tx.clone(), loaded: self.loaded.clone() }
    }
}

/// What a new shard task receives: its commands, its stop signal (the
/// registry drops the sender when the shard goes), and the flag it sets once loaded.
pub struct ShardInbox<C> {
    pub rx: mpsc::Receiver<C>,
    pub stop: oneshot::Receiver<()>,
    pub loaded: Arc<AtomicBool>,
}

struct Entry<C> {
    handle: ShardHandle<C>,
    /// Dropping it stops the task.
    _stop: oneshot::Sender<()>,
    /// The local partition and leader epoch the shard serves (None: a test log).
    partition: Option<(Arc<Partition>, i32)>,
}

/// A partition led here that has no shard yet: (partition, local partition, leader epoch).
pub type LedPartition = (i32, Arc<Partition>, i32);

pub struct Shards<C> {
    topic: &'static str,
    node_id: i32,
    configured_partitions: i32,
    /// Partition count of the existing topic (0 = not created yet).
    topic_partitions: AtomicI32,
    map: RwLock<HashMap<i32, Entry<C>>>,
}

impl<C: Send + 'static> Shards<C> {
    pub fn new(topic: &'static str, node_id: i32, configured_partitions: i32) -> Shards<C> {
        Shards { topic, node_id, configured_partitions: configured_partitions.max(1), topic_partitions: AtomicI32::new(0), map: RwLock::new(HashMap::new()) }
    }

    pub fn partition_for(&self, key: &str) -> i32 {
        let n = self.topic_partitions.load(Ordering::Acquire);
        partition_for(key, if n > 0 { n } else { self.configured_partitions })
    }

    pub fn partition_for_image(&self, image: &klamm_raft::MetadataImage, key: &str) -> i32 {
        let n = image.topic(self.topic).map(|t| t.partitions.len() as i32).unwrap_or(0);
        partition_for(key, if n > 0 { n } else { self.configured_partitions })
    }

    /// Registers the shard of partition `p` (replacing one that was there);
    /// the caller spawns the task on the returned inbox.
    pub fn insert(&self, p: i32, partition: Option<(Arc<Partition>, i32)>) -> ShardInbox<C> {
        let (tx, rx) = mpsc::channel(INBOX);
        let (stop_tx, stop) = oneshot::channel();
        let loaded = Arc::new(AtomicBool::new(false));
        let entry = Entry { handle: ShardHandle { tx, loaded: loaded.clone() }, _stop: stop_tx, partition };
        self.map.write().expect("shards lock poisoned").insert(p, entry);
        ShardInbox { rx, stop, loaded }
    }

    /// Stops the shard of `p` (leadership lost).
    pub fn remove(&self, p: i32) {
        self.map.write().expect("shards lock poisoned").remove(&p);
    }

    pub fn clear(&self) {
        self.map.write().expect("shards lock poisoned").clear();
    }

    /// Stops the shards whose partition is no longer led here (or is led in
    /// a new epoch) and returns the led, locally open partitions that need one.
    pub fn sync(&self, image: &klamm_raft::MetadataImage, replicas: &ReplicaManager) -> Vec<LedPartition> {
        let topic = image.topic(self.topic);
        self.topic_partitions.store(topic.map(|t| t.partitions.len() as i32).unwrap_or(0), Ordering::Release);
        let mut wanted: HashMap<i32, (Arc<Partition>, i32)> = HashMap::new();
        for p in topic.into_iter().flat_map(|t| t.partitions.values()).filter(|p| p.leader == self.node_id) {
            if let Some(local) = replicas.get(self.topic, p.partition) {
                wanted.insert(p.partition, (local, p.leader_epoch));
            }
        }
        let mut map = self.map.write().expect("shards lock poisoned");
        map.retain(|p, e| {
            let keep = match (&e.partition, wanted.get(p)) {
                (Some((current, epoch)), Some((w, we))) => Arc::ptr_eq(w, current) && epoch == we,
                _ => false,
            };
            if !keep {
                tracing::info!(topic = self.topic, partition = p, "no longer coordinator for this partition (or a new leader epoch)");
            }
            keep
        });
        wanted.into_iter().filter(|(p, _)| !map.contains_key(p)).map(|(p, (local, epoch))| (p, local, epoch)).collect()
    }

    /// The loaded shard owning `key`.
    pub fn route(&self, key: &str) -> Result<ShardHandle<C>, ErrorCode> {
        let p = self.partition_for(key);
        let map = self.map.read().expect("shards lock poisoned");
        let entry = map.get(&p).ok_or(ErrorCode::NOT_COORDINATOR)?;
        if !entry.handle.loaded.load(Ordering::Acquire) {
            return Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        }
        Ok(entry.handle.clone())
    }

    /// Sends the command `make` builds to `key`'s shard and waits for its answer.
    pub async fn ask<T>(&self, key: &str, make: impl FnOnce(oneshot::Sender<T>) -> C) -> Result<T, ErrorCode> {
        let handle = self.route(key)?;
        let (tx, rx) = oneshot::channel();
        handle.tx.send(make(tx)).await.map_err(|_| ErrorCode::NOT_COORDINATOR)?;
        rx.await.map_err(|_| ErrorCode::NOT_COORDINATOR)
    }

    /// The shard of partition `p`, loaded or not.
    pub fn handle(&self, p: i32) -> Option<ShardHandle<C>> {
        self.map.read().expect("shards lock poisoned").get(&p).map(|e| e.handle.clone())
    }

    /// Every shard, loaded or not (list requests).
    pub fn handles(&self) -> Vec<ShardHandle<C>> {
        self.map.read().expect("shards lock poisoned").values().map(|e| e.handle.clone()).collect()
    }
}

/// Calls `sync` with every new metadata image (and every 500 ms, since local
/// partitions are opened right after an image change) until shutdown.
pub async fn follow_image(metadata: &crate::metadata::MetadataSource, mut shutdown: watch::Receiver<bool>, mut sync: impl FnMut(&klamm_raft::MetadataImage)) {
    let mut images = metadata.subscribe();
    loop {
        let image = images.borrow_and_update().clone();
        sync(&image);
        tokio::select! {
            changed = images.changed() => if changed.is_err() { break },
            _ = shutdown.changed() => if *shutdown.borrow() { break },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
