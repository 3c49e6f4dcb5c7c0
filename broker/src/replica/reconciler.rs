//! The one task that brings local partitions in line with the metadata image.
//!
//! [`ReplicaManager::reconcile`] opens and recovers logs and deletes directories: blocking
//! disk work that must not run on the async workers, and that must not run twice at once.
//! So exactly one task calls it, each pass on a blocking thread (`spawn_blocking`), fed by the
//! image watch of the [`MetadataSource`](crate::metadata::MetadataSource): it always works on
//! the newest image, so a burst of changes costs one pass, not one per change.
//!
//! The image version is its `last_applied_index` (the Raft log index of the last applied
//! entry). After each pass the task publishes the version it reconciled; async callers that
//! must see their change on disk before answering (admin handlers after CreateTopics or
//! CreatePartitions, start-up after unfencing, a controlled shutdown) await
//! [`Reconciler::caught_up`] with the log index of their command instead of reconciling
//! themselves.
//!
//! While a hosted partition is offline (its open failed) the task also wakes up every
//! [`OFFLINE_RETRY_TICK`] without a new image, so the open is retried once its back-off has
//! passed; and an open partition that takes itself offline wakes it at once
//! (`ReplicaManager::offline_signal`).

use std::sync::Arc;
use std::time::Duration;

use klamm_raft::MetadataImage;
use tokio::sync::watch;
use tracing::{error, warn};

use super::ReplicaManager;

/// How often offline partitions are looked at again (each has its own back-off on top).
const OFFLINE_RETRY_TICK: Duration = Duration::from_secs(1);

/// How long [`Reconciler::caught_up`] waits at most. Opening thousands of partitions takes a
/// while; this bound only keeps a waiter from hanging if the task is stuck.
const CATCH_UP_WAIT: Duration = Duration::from_secs(60);

/// A handle on the reconciler task: which image version the local partitions reflect.
#[derive(Clone)]
pub struct Reconciler {
    reconciled: watch::Receiver<u64>,
}

impl Reconciler {
    /// The handle and the task to spawn. The task runs until `shutdown` turns true or the
    /// image watch closes, finishing the pass it is in.
    pub fn new(
        replicas: Arc<ReplicaManager>,
        images: watch::Receiver<Arc<MetadataImage>>,
        shutdown: watch::Receiver<bool>,
    ) -> (Reconciler, impl std::future::Future<Output = ()> + Send + 'static) {
        let (reconciled_tx, reconciled) = watch::channel(0);
        (Reconciler { reconciled }, run(replicas, images, reconciled_tx, shutdown))
    }

    /// Waits until a pass has reconciled an image at least as new as log index `index`
    /// (bounded by [`CATCH_UP_WAIT`]; returns early if the task stopped). What a pass could
    /// not do (a log that cannot be opened) is the partition's problem, reported by produce
    /// and fetch, so the caller goes on either way.
    pub async fn caught_up(&self, index: u64) {
        let mut reconciled = self.reconciled.clone();
        // Err inside: the task stopped (shutdown), nothing more to wait for.
        let waited = tokio::time::timeout(CATCH_UP_WAIT, reconciled.wait_for(|v| *v >= index)).await.map(|r| r.is_ok());
        if waited.is_err() {
            warn!(index, waited = ?CATCH_UP_WAIT, "local partitions not reconciled up to the metadata change yet");
        }
    }
}

async fn run(
    replicas: Arc<ReplicaManager>,
    mut images: watch::Receiver<Arc<MetadataImage>>,
    reconciled: watch::Sender<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let image = images.borrow_and_update().clone();
        let version = image.last_applied_index;
        let r = replicas.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || r.reconcile(&image)).await {
            error!(error = %e, "reconciling local partitions failed");
        }
        reconciled.send_replace(version);
        let retry_offline = replicas.has_offline_partitions();
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(OFFLINE_RETRY_TICK), if retry_offline => {}
            // An open partition took itself offline: move it (and retry it).
            _ = replicas.offline_signal.notified() => {}
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use klamm_config::{BrokerConfig, Defaults};
    use klamm_raft::{ConfigResource, MetadataCommand, NewPartition};

    use super::*;

    fn applied(image: &MetadataImage, index: u64, command: MetadataCommand) -> Arc<MetadataImage> {
        let mut next = image.clone();
        assert!(next.apply(index, &command).is_applied(), "command {index} applies");
        Arc::new(next)
    }

    fn set_topic_config(key: &str, value: &str) -> MetadataCommand {
        let set = BTreeMap::from([(key.to_string(), value.to_string())]);
        MetadataCommand::AlterConfigs { resource: ConfigResource::Topic("t".into()), set, delete: vec![] }
    }

    #[tokio::test]
    async fn follows_images_and_resolves_configs_only_when_they_change() {
        let dir = tempfile::tempdir().expect("temp dir");
        let loaded = BrokerConfig::from_map(Defaults::Embedded, BTreeMap::new()).expect("embedded profile");
        let empty = Arc::new(MetadataImage::default());
        let replicas = Arc::new(ReplicaManager::open(1, dir.path().to_path_buf(), loaded, &empty));
        let (images_tx, images) = watch::channel(empty.clone());
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (reconciler, task) = Reconciler::new(replicas.clone(), images, shutdown);
        let task = tokio::spawn(task);

        let partitions = vec![NewPartition { partition: 0, replicas: vec![1] }];
        let create = MetadataCommand::CreateTopic { name: "t".into(), topic_id: [7; 16], partitions, configs: BTreeMap::new() };
        let created = applied(&empty, 5, create);
        images_tx.send_replace(created.clone());
        reconciler.caught_up(5).await;
        let partition = replicas.get("t", 0).expect("the pass that reached index 5 opened t-0");
        let config = partition.config();

        // A change that leaves the topic's configs alone keeps the resolved config itself.
        let register = MetadataCommand::RegisterBroker { node_id: 2, incarnation_id: [2; 16], endpoints: vec![], rack: None };
        let unrelated = applied(&created, 6, register);
        images_tx.send_replace(unrelated.clone());
        reconciler.caught_up(6).await;
        assert!(Arc::ptr_eq(&config, &partition.config()), "unchanged topic configs are not resolved again");

        // A topic config change reaches the open partition.
        let altered = applied(&unrelated, 7, set_topic_config("retention.ms", "12345"));
        images_tx.send_replace(altered.clone());
        reconciler.caught_up(7).await;
        assert_eq!(partition.config().retention_ms, 12345);

        // Deleting the topic removes the partition.
        let deleted = applied(&altered, 8, MetadataCommand::DeleteTopic { topic_id: [7; 16] });
        images_tx.send_replace(deleted);
        reconciler.caught_up(8).await;
        assert!(replicas.get("t", 0).is_none());

        shutdown_tx.send_replace(true);
        let stopped = tokio::time::timeout(Duration::from_secs(10), task).await;
        assert!(matches!(stopped, Ok(Ok(()))), "the task stops on shutdown");
        replicas.close_all();
    }
}
