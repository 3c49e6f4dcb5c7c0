//! Periodic partition work: retention (`log.retention.check.interval.ms`),
//! the time-based flush policy (`flush.ms`), the expiry of idle producer
//! ids (`producer.id.expiration.ms`, checked every
//! `producer.id.expiration.check.interval.ms`; opening a partition already
//! drops the producers its replay finds expired), and the log directory's
//! high-watermark checkpoint (`replica.high.watermark.checkpoint.interval.ms`).

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tracing::info;

use crate::server::Broker;

/// How often flush deadlines are checked; retention runs on its own interval.
const TICK: Duration = Duration::from_millis(200);

pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let retention_every = broker.config.log_retention_check_interval_ms.max(100);
    let mut last_retention = crate::clock::now_ms();
    let expiration_every = i64::from(broker.config.producer_id_expiration_check_interval_ms.max(1));
    let mut last_expiration = crate::clock::now_ms();
    let checkpoint_every = broker.config.replica_high_watermark_checkpoint_interval_ms.max(1);
    let mut last_checkpoint = crate::clock::now_ms();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return },
        }
        let now = crate::clock::now_ms();
        let partitions = broker.replicas.all();
        let run_retention = now - last_retention >= retention_every;
        if run_retention {
            last_retention = now;
        }
        let expire_producers = now - last_expiration >= expiration_every;
        if expire_producers {
            last_expiration = now;
        }
        // producer.id.expiration.ms is a dynamic broker config.
        let expiration_ms = i64::from(broker.replicas.effective_broker_config().producer_id_expiration_ms.max(1));
        let expire_producers_idle_ms = expire_producers.then_some(expiration_ms);
        let checkpoint = now - last_checkpoint >= checkpoint_every;
        if checkpoint {
            last_checkpoint = now;
        }
        // Disk work off the async threads.
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for p in partitions {
                let deleted = p.maintain(now, run_retention, expire_producers_idle_ms);
                if deleted > 0 {
                    b.replicas.retention_segments_deleted.fetch_add(deleted as u64, Ordering::Relaxed);
                    info!(topic = %p.topic, partition = p.index, segments = deleted, "retention deleted segments");
                }
            }
            if checkpoint {
                b.replicas.checkpoint_high_watermarks();
            }
        })
        .await;
    }
}
