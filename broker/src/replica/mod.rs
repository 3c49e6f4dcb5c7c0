//! The partitions this broker hosts, kept in step with the metadata image.
//!
//! [`ReplicaManager::reconcile`] is the only place partitions are created or
//! removed: it compares the image with what is open locally, opens logs for
//! new assignments, deletes the logs of deleted topics and updates leadership.
//! It is idempotent, so both the metadata-follower task and the admin handlers
//! (which want their partitions to exist before they answer) may call it.
//!
//! Partition directories are `<log.dir>/<topic>-<partition>`, each with a
//! `partition.metadata` file naming the topic id, so a directory left behind
//! by a deleted topic of the same name is recognised and wiped.

pub mod cleaner;
pub mod fetcher;
pub mod isr;
pub mod maintenance;
pub mod partition;
#[cfg(test)]
mod partition_tests;
pub mod producer_snapshot;
pub mod producer_state;
pub mod storage_adapter;
pub mod validation;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use klamm_config::{BrokerConfig, LoadedConfig, TopicConfig};
use klamm_raft::MetadataImage;
use tracing::{info, warn};

pub use partition::{AppendResult, FetchPosition, IsrProposal, Partition, PartitionError, PartitionView};

const PARTITION_METADATA_FILE: &str = "partition.metadata";
const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

pub struct ReplicaManager {
    node_id: i32,
    log_dir: PathBuf,
    loaded: LoadedConfig,
    /// Static config with the dynamic broker configs of the image layered on
    /// top: the defaults that topics without an override inherit.
    effective: RwLock<(BTreeMap<String, String>, Arc<BrokerConfig>)>,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// Serialises reconciliation (opening and deleting logs is not idempotent
    /// under concurrency).
    reconcile_lock: Mutex<()>,
    /// What the log cleaner removed since start (metrics).
    pub cleaner_totals: cleaner::CleanerTotals,
    /// Segments retention (time or size) deleted since start (metrics).
    pub retention_segments_deleted: std::sync::atomic::AtomicU64,
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

impl ReplicaManager {
    /// Opens every partition of `image` hosted on this node and removes
    /// partition directories that no longer belong to any topic.
    pub fn open(node_id: i32, log_dir: PathBuf, loaded: LoadedConfig, image: &MetadataImage) -> anyhow::Result<ReplicaManager> {
        let effective = RwLock::new((BTreeMap::new(), Arc::new(loaded.config.clone())));
        let manager = ReplicaManager {
            node_id,
            log_dir,
            loaded,
            effective,
            partitions: RwLock::new(HashMap::new()),
            reconcile_lock: Mutex::new(()),
            cleaner_totals: cleaner::CleanerTotals::default(),
            retention_segments_deleted: std::sync::atomic::AtomicU64::new(0),
        };
        manager.reconcile(image)?;
        manager.remove_orphans();
        Ok(manager)
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions.read().expect("partitions lock poisoned").get(&(topic.to_string(), partition)).cloned()
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

    /// Brings local partitions in line with `image`.
    pub fn reconcile(&self, image: &MetadataImage) -> anyhow::Result<()> {
        let _guard = self.reconcile_lock.lock().expect("reconcile lock poisoned");
        if self.update_dynamic_configs(image) {
            self.refresh_configs(image);
        }
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
            self.partitions.write().expect("partitions lock poisoned").remove(&(p.topic.clone(), p.index));
            info!(topic = %p.topic, partition = p.index, "deleting partition");
            p.delete();
        }
        let mut first_error = None;
        for topic in image.topics.values() {
            let config = self.topic_config(&topic.configs);
            for p in topic.partitions.values() {
                if !p.replicas.contains(&self.node_id) {
                    continue;
                }
                if let Some(existing) = self.get(&topic.name, p.partition) {
                    existing.apply_metadata(p, now);
                    // A topic config change (AlterConfigs) takes effect on the live partition.
                    if *existing.config() != *config {
                        existing.set_config(config.clone());
                    }
                    continue;
                }
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
                if let Err(e) = write_partition_metadata(&dir, &topic.topic_id) {
                    first_error.get_or_insert(anyhow::anyhow!("write {}: {e}", dir.display()));
                    continue;
                }
                let producer_id_expiration_ms = i64::from(self.effective_broker_config().producer_id_expiration_ms);
                match Partition::open(&topic.name, topic.topic_id, p.partition, &dir, config.clone(), self.node_id, p, now, producer_id_expiration_ms) {
                    Ok(partition) => {
                        self.partitions
                            .write()
                            .expect("partitions lock poisoned")
                            .insert((topic.name.clone(), p.partition), Arc::new(partition));
                    }
                    Err(e) => {
                        warn!(topic = %topic.name, partition = p.partition, error = %e, "opening partition failed");
                        first_error.get_or_insert(anyhow::anyhow!("open {}: {e}", dir.display()));
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Pushes changed topic configs to the open partitions.
    pub fn refresh_configs(&self, image: &MetadataImage) {
        for p in self.all() {
            if let Some(t) = image.topic(&p.topic) {
                p.set_config(self.topic_config(&t.configs));
            }
        }
    }

    /// Deletes partition directories of topics that no longer exist.
    fn remove_orphans(&self) {
        let Ok(entries) = std::fs::read_dir(&self.log_dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if !path.is_dir() || name == METADATA_LOG_DIR || !path.join(PARTITION_METADATA_FILE).exists() {
                continue;
            }
            let Some((topic, partition)) = name.rsplit_once('-') else { continue };
            let Ok(partition) = partition.parse::<i32>() else { continue };
            if self.get(topic, partition).is_none() {
                info!(dir = %path.display(), "removing directory of a deleted partition");
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    warn!(dir = %path.display(), error = %e, "could not remove orphan partition directory");
                }
            }
        }
    }

    pub fn close_all(&self) {
        let all: Vec<Arc<Partition>> = self.partitions.write().expect("partitions lock poisoned").drain().map(|(_, p)| p).collect();
        for p in all {
            p.close();
        }
    }
}
