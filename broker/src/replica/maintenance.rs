//! Periodic partition work: retention (`log.retention.check.interval.ms`),
//! the time-based flush policy (`flush.ms`), the expiry of idle producer
//! ids (`producer.id.expiration.ms`, checked every
//! `producer.id.expiration.check.interval.ms`; opening a partition already
//! drops the producers its replay finds expired), and the log directory's
//! high-watermark checkpoint (`replica.high.watermark.checkpoint.interval.ms`).
//!
//! The task holds only the [`ReplicaManager`] and the intervals it needs.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tracing::info;

use klamm_config::BrokerConfig;

use super::ReplicaManager;

/// How often flush deadlines are checked; retention runs on its own interval.
const TICK: Duration = Duration::from_millis(200);

/// The static intervals of the task (`producer.id.expiration.ms` is dynamic and read each tick).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `log.retention.check.interval.ms`
    pub retention_check_interval_ms: i64,
    /// `producer.id.expiration.check.interval.ms`
    pub producer_id_expiration_check_interval_ms: i64,
    /// `replica.high.watermark.checkpoint.interval.ms`
    pub high_watermark_checkpoint_interval_ms: i64,
}

impl Settings {
    pub fn from_config(config: &BrokerConfig) -> Settings {
        Settings {
            retention_check_interval_ms: config.log_retention_check_interval_ms.max(100),
            producer_id_expiration_check_interval_ms: i64::from(config.producer_id_expiration_check_interval_ms.max(1)),
            high_watermark_checkpoint_interval_ms: config.replica_high_watermark_checkpoint_interval_ms.max(1),
        }
    }
}

pub async fn run(replicas: Arc<ReplicaManager>, settings: Settings, mut shutdown: watch::Receiver<bool>) {
    let retention_every = settings.retention_check_interval_ms;
    let mut last_retention = crate::clock::now_ms();
    let expiration_every = settings.producer_id_expiration_check_interval_ms;
    let mut last_expiration = crate::clock::now_ms();
    let checkpoint_every = settings.high_watermark_checkpoint_interval_ms;
    let mut last_checkpoint = crate::clock::now_ms();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return },
        }
        let now = crate::clock::now_ms();
        let partitions = replicas.all();
        let run_retention = now - last_retention >= retention_every;
        if run_retention {
            last_retention = now;
        }
        let expire_producers = now - last_expiration >= expiration_every;
        if expire_producers {
            last_expiration = now;
        }
        // producer.id.expiration.ms is a dynamic broker config.
        let expiration_ms = i64::from(replicas.effective_broker_config().producer_id_expiration_ms.max(1));
        let expire_producers_idle_ms = expire_producers.then_some(expiration_ms);
        let checkpoint = now - last_checkpoint >= checkpoint_every;
        if checkpoint {
            last_checkpoint = now;
        }
        // Disk work off the async threads.
        let r = replicas.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for p in partitions {
                // One partition's bug must not skip the others' maintenance:
                // the panic takes that partition offline (see `partition.rs`).
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.maintain(now, run_retention, expire_producers_idle_ms)));
                let deleted = match run {
                    Ok(deleted) => deleted,
                    Err(panic) => {
                        p.take_offline(format!("periodic maintenance panicked: {}", super::panic_message(&*panic)));
                        0
                    }
                };
                if deleted > 0 {
                    r.retention_segments_deleted.fetch_add(deleted as u64, Ordering::Relaxed);
                    info!(topic = %p.topic, partition = p.index, segments = deleted, "retention deleted segments");
                }
            }
            if checkpoint {
                r.checkpoint_high_watermarks();
            }
        })
        .await;
    }
}
