//! The partitions this broker hosts, kept in step with the metadata image.
//!
//! [`ReplicaManager::reconcile`] is the only place partitions are created or
//! removed: it compares the image with what is open locally, opens logs for
//! new assignments, deletes the logs of deleted topics and updates leadership
//! and topic configs. It blocks on disk work, so after start-up only the
//! [`reconciler`] task calls it, on a blocking thread; whoever needs its
//! partitions to exist awaits that task. Topic configs are resolved only when
//! a topic's config map or the dynamic broker configs changed.
//!
//! Partition directories are `<log.dir>/<topic>-<partition>`, each with a
//! `partition.metadata` file naming the topic id, so a directory left behind
//! by a deleted topic of the same name is recognised and wiped.
//!
//! A partition whose log cannot be opened (out of file descriptors, a disk
//! error) does not take the node down with it: it is recorded as *offline*
//! here, the other partitions are served, produce and fetch to it answer
//! KAFKA_STORAGE_ERROR and Metadata lists this node among its offline
//! replicas (Kafka's answers for a replica on a failed log directory), and
//! the open is retried with a growing back-off. Its data is never removed
//! while the image assigns it here.
//!
//! An open partition that fails later (a panic under its state lock, an
//! append that failed half-way; see `partition.rs`) takes itself offline and
//! pokes [`ReplicaManager::offline_signal`]; the next reconcile pass moves it
//! from the open partitions to the offline set, so it is reopened from disk
//! (with recovery) by the same retries. Requests that still hold it answer
//! KAFKA_STORAGE_ERROR meanwhile.

pub mod cleaner;
mod descriptors;
pub mod fetcher;
pub mod follower_health;
pub mod hw_checkpoint;
pub mod isr;
pub mod maintenance;
#[cfg(test)]
mod offline_tests;
mod parallel;
pub mod partition;
pub mod replication;
#[cfg(test)]
mod partition_tests;
#[cfg(test)]
mod partition_txn_tests;
pub mod producer_snapshot;
pub mod producer_state;
pub mod reconciler;
pub mod storage_adapter;
pub mod validation;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use klamm_config::{BrokerConfig, LoadedConfig, TopicConfig};
use klamm_protocol::ErrorCode;
use klamm_raft::{MetadataImage, PartitionImage};
use tracing::{debug, info, warn};

pub use crate::topic_partition::TopicPartition;

pub use follower_health::FollowerHealthReport;
pub use partition::{AppendResult, FetchPosition, IsrProposal, LeaderFetchState, Partition, PartitionError, PartitionView};

const PARTITION_METADATA_FILE: &str = "partition.metadata";
const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

pub struct ReplicaManager {
    node_id: i32,
    log_dir: PathBuf,
    loaded: LoadedConfig,
    /// Static config with the dynamic broker configs of the image layered on
    /// top: the defaults that topics without an override inherit.
    effective: RwLock<(BTreeMap<String, String>, Arc<BrokerConfig>)>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Hosted partitions whose log could not be opened, retried with back-off.
    offline: Mutex<HashMap<TopicPartition, OfflinePartition>>,
    /// Poked by an open partition that took itself offline; the reconciler
    /// task waits on it, so the partition is moved to `offline` (and retried)
    /// without waiting for a metadata change.
    pub offline_signal: Arc<tokio::sync::Notify>,
    /// The log directory's high-watermark checkpoint (`hw_checkpoint`).
    hw_checkpoint: Mutex<HwCheckpointState>,
    /// Serialises reconciliation (opening and deleting logs is not idempotent
    /// under concurrency).
    reconcile_lock: Mutex<()>,
    /// Resolved topic configs by topic name, with the config map each was
    /// resolved from; emptied when the dynamic broker configs (which topics
    /// inherit) change. Only `reconcile` uses it.
    topic_configs: Mutex<TopicConfigCache>,
    /// What the log cleaner removed since start (metrics).
    pub cleaner_totals: cleaner::CleanerTotals,
    /// Segments retention (time or size) deleted since start (metrics).
    pub retention_segments_deleted: std::sync::atomic::AtomicU64,
}

/// Topic name -> (the config map a config was resolved from, the resolved config).
type TopicConfigCache = HashMap<String, (BTreeMap<String, String>, Arc<TopicConfig>)>;

/// Why a hosted partition is not open, and when to try again.
#[derive(Debug, Clone)]
pub struct OfflinePartition {
    pub error: String,
    pub attempts: u32,
    retry_at_ms: i64,
}

/// The first retry of a failed open comes after this, then twice as late each time.
const OFFLINE_RETRY_FIRST_MS: i64 = 1_000;
const OFFLINE_RETRY_MAX_MS: i64 = 60_000;

#[derive(Default)]
struct HwCheckpointState {
    /// Read at start: the value each partition opens with (taken once).
    loaded: HashMap<TopicPartition, i64>,
    /// What the file holds now, so an unchanged set is not written again.
    written: HashMap<TopicPartition, i64>,
}

/// The message of a caught panic (`&str` or `String` payloads; others are unnamed).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str)).unwrap_or("(no message)")
}

fn partition_dir(log_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    log_dir.join(format!("{topic}-{partition}"))
}

fn topic_id_hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_partition_topic_id(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(PARTITION_METADATA_FILE)).ok()?;
    text.lines().find_map(|l| l.strip_prefix("topic_id: ").map(|s| s.trim().to_string()))
}

fn write_partition_metadata(dir: &Path, topic_id: &[u8; 16]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{PARTITION_METADATA_FILE}.tmp"));
    std::fs::write(&tmp, format!("version: 0\ntopic_id: {}\n", topic_id_hex(topic_id)))?;
    std::fs::rename(tmp, dir.join(PARTITION_METADATA_FILE))
}

/// A partition a reconcile pass will open: hosted here, not open yet, and due
/// (not waiting out the back-off of an earlier failure).
struct PlannedOpen<'a> {
    tp: TopicPartition,
    topic: &'a klamm_raft::TopicImage,
    meta: &'a PartitionImage,
    config: Arc<TopicConfig>,
}

impl ReplicaManager {
    /// Opens every partition of `image` hosted on this node (those that fail
    /// are recorded offline) and removes partition directories that no
    /// longer belong to any topic.
    pub fn open(node_id: i32, log_dir: PathBuf, loaded: LoadedConfig, image: &MetadataImage) -> ReplicaManager {
        let effective = RwLock::new((BTreeMap::new(), Arc::new(loaded.config.clone())));
        let checkpointed = hw_checkpoint::read(&log_dir);
        let manager = ReplicaManager {
            node_id,
            log_dir,
            loaded,
            effective,
            partitions: RwLock::new(HashMap::new()),
            offline: Mutex::new(HashMap::new()),
            offline_signal: Arc::new(tokio::sync::Notify::new()),
            hw_checkpoint: Mutex::new(HwCheckpointState { loaded: checkpointed.clone(), written: checkpointed }),
            reconcile_lock: Mutex::new(()),
            topic_configs: Mutex::new(HashMap::new()),
            cleaner_totals: cleaner::CleanerTotals::default(),
            retention_segments_deleted: std::sync::atomic::AtomicU64::new(0),
        };
        manager.reconcile(image);
        manager.remove_orphans(image);
        // Legacy per-partition checkpoints were read (and removed) by the opens.
        manager.checkpoint_high_watermarks();
        manager
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions.read().expect("partitions lock poisoned").get(&TopicPartition::new(topic, partition)).cloned()
    }

    /// The open partition, or the error a request for it gets here:
    /// KAFKA_STORAGE_ERROR if its log could not be opened (as Kafka answers
    /// for a replica on a failed log directory), NOT_LEADER_OR_FOLLOWER if
    /// it is not (yet) open on this node.
    pub fn lookup(&self, topic: &str, partition: i32) -> Result<Arc<Partition>, ErrorCode> {
        if let Some(p) = self.get(topic, partition) {
            // Taken offline since it was opened; the reconciler moves it.
            // (Releasing it also records a panic no request has noticed yet,
            // which pokes the reconciler.)
            if p.is_offline() {
                p.release_offline_state();
                return Err(ErrorCode::KAFKA_STORAGE_ERROR);
            }
            return Ok(p);
        }
        if self.is_offline(topic, partition) {
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
        Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
    }

    /// True if this node hosts the partition but could not open its log
    /// (or its open log failed).
    pub fn is_offline(&self, topic: &str, partition: i32) -> bool {
        self.offline.lock().expect("offline lock poisoned").contains_key(&TopicPartition::new(topic, partition))
            || self.get(topic, partition).is_some_and(|p| p.is_offline())
    }

    /// The hosted partitions that could not be opened, with the reason.
    pub fn offline_partitions(&self) -> Vec<(TopicPartition, OfflinePartition)> {
        let mut list: Vec<_> = self.offline.lock().expect("offline lock poisoned").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().expect("partitions lock poisoned").values().cloned().collect()
    }

    /// The broker config topics inherit from: static, then dynamic broker configs.
    pub fn effective_broker_config(&self) -> Arc<BrokerConfig> {
        self.effective.read().expect("config lock poisoned").1.clone()
    }

    /// Re-layers the dynamic broker configs of `image` (cluster default, then
    /// this node's) when they changed; returns true if they did.
    fn update_dynamic_configs(&self, image: &MetadataImage) -> bool {
        let mut dynamic = image.broker_configs.get(&None).cloned().unwrap_or_default();
        if let Some(own) = image.broker_configs.get(&Some(self.node_id)) {
            dynamic.extend(own.clone());
        }
        if self.effective.read().expect("config lock poisoned").0 == dynamic {
            return false;
        }
        match self.loaded.with_dynamic(&dynamic) {
            Ok(config) => {
                info!(keys = ?dynamic.keys().collect::<Vec<_>>(), "dynamic broker configs applied");
                *self.effective.write().expect("config lock poisoned") = (dynamic, Arc::new(config));
                true
            }
            Err(e) => {
                warn!(error = %e, "ignoring invalid dynamic broker configs");
                false
            }
        }
    }

    /// The resolved config of topic `name`, resolved again only when its config map
    /// differs from the one the cached value came from.
    fn cached_topic_config(
        &self,
        cache: &mut TopicConfigCache,
        name: &str,
        configs: &BTreeMap<String, String>,
    ) -> Arc<TopicConfig> {
        if let Some((from, config)) = cache.get(name) {
            if from == configs {
                return config.clone();
            }
        }
        let config = self.topic_config(configs);
        cache.insert(name.to_string(), (configs.clone(), config.clone()));
        config
    }

    fn topic_config(&self, configs: &BTreeMap<String, String>) -> Arc<TopicConfig> {
        let broker = self.effective_broker_config();
        match TopicConfig::resolve(&broker, configs) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                warn!(error = %e, "invalid stored topic config, using broker defaults");
                Arc::new(TopicConfig::from_broker(&broker))
            }
        }
    }

    /// Brings local partitions in line with `image`. A partition that cannot
    /// be opened is recorded offline and retried by a later call once its
    /// back-off has passed (`has_offline_partitions` tells the caller to come back).
    pub fn reconcile(&self, image: &MetadataImage) {
        // A panic in an earlier pass (a partition's bug) must not stop every
        // later one: the lock guards nothing but the exclusion itself, and
        // the cache holds only whole entries.
        let _guard = self.reconcile_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut topic_configs = self.topic_configs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.update_dynamic_configs(image) {
            // Every topic inherits them: resolve all again (the loop below pushes
            // the results to the open partitions).
            topic_configs.clear();
        }
        topic_configs.retain(|name, _| image.topic(name).is_some());
        let now = crate::clock::now_ms();
        // Remove partitions whose topic is gone (or was re-created with a new id).
        let stale: Vec<Arc<Partition>> = {
            let map = self.partitions.read().expect("partitions lock poisoned");
            map.values()
                .filter(|p| match image.topic(&p.topic) {
                    Some(t) => t.topic_id != p.topic_id || !t.partitions.get(&p.index).map_or(false, |pi| pi.replicas.contains(&self.node_id)),
                    None => true,
                })
                .cloned()
                .collect()
        };
        for p in stale {
            self.partitions.write().expect("partitions lock poisoned").remove(&TopicPartition::new(p.topic.clone(), p.index));
            info!(topic = %p.topic, partition = p.index, "deleting partition");
            p.delete();
        }
        self.sweep_failed_partitions(now);
        // Offline partitions no longer hosted here are forgotten (their
        // directories are removed like any other deleted partition's).
        self.offline.lock().expect("offline lock poisoned").retain(|tp, _| {
            image.topic(&tp.topic).and_then(|t| t.partitions.get(&tp.partition)).is_some_and(|pi| pi.replicas.contains(&self.node_id))
        });
        // Plan serially (cheap: lookups and checks), then do the file work
        // (opens, role changes) for all partitions side by side.
        let mut failed_now = 0usize;
        let mut new_failures = 0usize;
        let mut out_of_descriptors = false;
        let mut budget: Option<descriptors::DescriptorBudget> = None;
        let mut updates: Vec<(Arc<Partition>, &PartitionImage, Arc<TopicConfig>)> = Vec::new();
        let mut opens: Vec<PlannedOpen<'_>> = Vec::new();
        for topic in image.topics.values() {
            let config = self.cached_topic_config(&mut topic_configs, &topic.name, &topic.configs);
            for p in topic.partitions.values() {
                if !p.replicas.contains(&self.node_id) {
                    continue;
                }
                if let Some(existing) = self.get(&topic.name, p.partition) {
                    updates.push((existing, p, config.clone()));
                    continue;
                }
                let tp = TopicPartition::new(topic.name.clone(), p.partition);
                let retry_due = self.offline.lock().expect("offline lock poisoned").get(&tp).map_or(true, |o| now >= o.retry_at_ms);
                if !retry_due {
                    continue;
                }
                let budget = budget.get_or_insert_with(descriptors::DescriptorBudget::measure);
                if out_of_descriptors || !budget.allows_another_partition() {
                    // Every open would fail the same way, or leave the node no
                    // descriptor for connections: record, don't try.
                    failed_now += 1;
                    out_of_descriptors = true;
                    let error = format!("not opened: the process is (nearly) out of file descriptors; {} are kept free for connections", budget.reserve());
                    new_failures += usize::from(self.record_offline(tp, error, now, false) == 1);
                    continue;
                }
                budget.plan_partition();
                opens.push(PlannedOpen { tp, topic, meta: p, config: config.clone() });
            }
        }
        drop(topic_configs);
        parallel::map_parallel(updates, parallel::MAX_WORKERS, |(partition, meta, config)| {
            partition.apply_metadata(meta, now);
            // A topic config change (AlterConfigs) takes effect on the live partition.
            let current = partition.config();
            if !Arc::ptr_eq(&current, &config) && *current != *config {
                partition.set_config(config);
            }
        });
        let opened = parallel::map_parallel(opens, parallel::MAX_WORKERS, |job| {
            let result = self.open_partition(&job, now);
            (job.tp, result)
        });
        for (tp, result) in opened {
            match result {
                Ok(partition) => {
                    if self.offline.lock().expect("offline lock poisoned").remove(&tp).is_some() {
                        info!(topic = %tp.topic, partition = tp.partition, "offline partition opened");
                    }
                    self.partitions.write().expect("partitions lock poisoned").insert(tp, Arc::new(partition));
                }
                Err((error, no_descriptors)) => {
                    failed_now += 1;
                    out_of_descriptors |= no_descriptors;
                    new_failures += usize::from(self.record_offline(tp, error, now, true) == 1);
                }
            }
        }
        if failed_now > 0 {
            let offline = self.offline.lock().expect("offline lock poisoned").len();
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
            if new_failures > 0 {
                warn!(failed_now, new_failures, offline, out_of_descriptors, open_file_limit = ?limit, "some hosted partitions could not be opened; the others are served, and these are retried");
            } else {
                debug!(failed_now, offline, out_of_descriptors, "offline partitions still cannot be opened");
            }
        }
    }

    /// Moves open partitions that took themselves offline to the offline set:
    /// their state is dropped (no flush, no clean marker) and a later pass
    /// opens the log again from disk, with recovery, after the usual back-off.
    fn sweep_failed_partitions(&self, now_ms: i64) {
        let failed: Vec<Arc<Partition>> = self.all().into_iter().filter(|p| p.is_offline()).collect();
        for p in failed {
            let tp = TopicPartition::new(p.topic.clone(), p.index);
            self.partitions.write().expect("partitions lock poisoned").remove(&tp);
            p.release_offline_state();
            let reason = p.offline_reason().unwrap_or("failed").to_string();
            // The partition logged its failure when it happened.
            self.record_offline(tp, reason, now_ms, false);
        }
    }

    /// Opens (or creates) one planned partition: a directory left by an older
    /// topic of the same name is removed first, then `partition.metadata` is
    /// written and the log opened. The error carries whether the process ran
    /// out of file descriptors.
    fn open_partition(&self, job: &PlannedOpen<'_>, now: i64) -> Result<Partition, (String, bool)> {
        let (topic, p) = (job.topic, job.meta);
        let dir = partition_dir(&self.log_dir, &topic.name, p.partition);
        let wanted = topic_id_hex(&topic.topic_id);
        match read_partition_topic_id(&dir) {
            Some(found) if found != wanted => {
                info!(dir = %dir.display(), "removing data of an older topic with the same name");
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    warn!(dir = %dir.display(), error = %e, "could not remove old partition directory");
                }
            }
            _ => {}
        }
        write_partition_metadata(&dir, &topic.topic_id)
            .map_err(|e| (format!("write {}: {e}", dir.display()), matches!(e.raw_os_error(), Some(23 | 24))))?;
        let checkpointed_hw = self.take_checkpointed_high_watermark(&job.tp, &dir);
        let producer_id_expiration_ms = i64::from(self.effective_broker_config().producer_id_expiration_ms);
        let partition = Partition::open(&topic.name, topic.topic_id, p.partition, &dir, job.config.clone(), self.node_id, p, now, producer_id_expiration_ms, checkpointed_hw)
            .map_err(|e| (e.to_string(), e.is_out_of_file_descriptors()))?;
        partition.set_offline_signal(self.offline_signal.clone());
        Ok(partition)
    }

    /// Records a failed open: the first failure of a partition is logged at
    /// WARN (if `log_first`), retries at DEBUG; thousands of partitions
    /// failing for one cause, such as the open-file limit, must not flood
    /// the log, so after the first out-of-descriptors failure of a pass the
    /// rest are recorded without an attempt and summed up in one line.
    /// Returns how many times it failed so far.
    fn record_offline(&self, tp: TopicPartition, error: String, now_ms: i64, log_first: bool) -> u32 {
        let mut offline = self.offline.lock().expect("offline lock poisoned");
        let attempts = offline.get(&tp).map_or(0, |o| o.attempts) + 1;
        let backoff = OFFLINE_RETRY_FIRST_MS.saturating_mul(1 << (attempts - 1).min(6)).min(OFFLINE_RETRY_MAX_MS);
        if attempts == 1 && log_first {
            warn!(topic = %tp.topic, partition = tp.partition, %error, "opening partition failed; it is offline on this node until a retry succeeds");
        } else {
            debug!(topic = %tp.topic, partition = tp.partition, %error, attempts, "opening partition failed again");
        }
        offline.insert(tp, OfflinePartition { error, attempts, retry_at_ms: now_ms + backoff });
        attempts
    }

    /// True while some hosted partition waits for a retry of its open.
    pub fn has_offline_partitions(&self) -> bool {
        !self.offline.lock().expect("offline lock poisoned").is_empty()
    }

    /// The high watermark a partition opens with: the log directory's
    /// checkpoint, or the per-partition file of earlier versions.
    fn take_checkpointed_high_watermark(&self, tp: &TopicPartition, dir: &Path) -> Option<i64> {
        // A retried open (the first failed) finds it among what was written.
        let from_dir = {
            let mut state = self.hw_checkpoint.lock().expect("checkpoint lock poisoned");
            state.loaded.remove(tp).or_else(|| state.written.get(tp).copied())
        };
        let legacy = hw_checkpoint::take_legacy(dir);
        from_dir.or(legacy)
    }

    /// Writes every open partition's high watermark to the log directory's
    /// checkpoint if any changed since the last write (every
    /// `replica.high.watermark.checkpoint.interval.ms` and at shutdown).
    /// Offline partitions keep the value they were loaded with.
    pub fn checkpoint_high_watermarks(&self) {
        let mut state = self.hw_checkpoint.lock().expect("checkpoint lock poisoned");
        let mut entries: HashMap<TopicPartition, i64> =
            self.all().iter().map(|p| (TopicPartition::new(p.topic.clone(), p.index), p.view().high_watermark)).collect();
        let offline = self.offline.lock().expect("offline lock poisoned");
        for tp in offline.keys() {
            if let Some(hw) = state.loaded.get(tp).or_else(|| state.written.get(tp)) {
                entries.insert(tp.clone(), *hw);
            }
        }
        drop(offline);
        if entries == state.written {
            return;
        }
        match hw_checkpoint::write(&self.log_dir, &entries) {
            Ok(()) => state.written = entries,
            Err(e) => warn!(dir = %self.log_dir.display(), error = %e, "writing the high-watermark checkpoint failed"),
        }
    }

    /// Deletes partition directories that `image` does not assign to this
    /// node. Decided by the image, not by what is open: a hosted partition
    /// that failed to open keeps its data.
    fn remove_orphans(&self, image: &MetadataImage) {
        let Ok(entries) = std::fs::read_dir(&self.log_dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if !path.is_dir() || name == METADATA_LOG_DIR || !path.join(PARTITION_METADATA_FILE).exists() {
                continue;
            }
            let Some((topic, partition)) = name.rsplit_once('-') else { continue };
            let Ok(partition) = partition.parse::<i32>() else { continue };
            let hosted = image.topic(topic).and_then(|t| t.partitions.get(&partition)).is_some_and(|p| p.replicas.contains(&self.node_id));
            if !hosted {
                info!(dir = %path.display(), "removing directory of a deleted partition");
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    warn!(dir = %path.display(), error = %e, "could not remove orphan partition directory");
                }
            }
        }
    }

    /// Closes every partition (no appends after this) and writes the final
    /// high-watermark checkpoint.
    pub fn close_all(&self) {
        let all: Vec<Arc<Partition>> = self.all();
        for p in &all {
            p.close();
        }
        self.checkpoint_high_watermarks();
        self.partitions.write().expect("partitions lock poisoned").clear();
    }
}
