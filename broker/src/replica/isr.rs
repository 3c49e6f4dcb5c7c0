//! The leader's side of ISR management: a task that asks every partition this broker leads
//! whether its ISR should shrink (a follower has not caught up for `replica.lag.time.max.ms`)
//! or expand (a replica caught up), and proposes the change to the controller as a
//! `ChangePartition` carrying the partition epoch the leader saw, Kafka's AlterPartition. The
//! metadata log rejects a stale proposal (the partition changed meanwhile); the next tick
//! computes a fresh one from the new state.
//!
//! After an applied change it waits for the [`Reconciler`] to hand the partition its new
//! epoch, so the next tick does not propose the same change against the old one.
//!
//! The task holds only the [`ReplicaManager`] (the partitions it asks), the
//! [`MetadataSource`] it proposes through and the [`Reconciler`] handle.

use std::sync::Arc;
use std::time::Duration;

use klamm_raft::{CommandOutcome, MetadataCommand};
use tokio::sync::watch;
use tracing::{debug, info};

use super::reconciler::Reconciler;
use super::ReplicaManager;
use crate::metadata::MetadataSource;

/// How often leaders look at their followers' progress.
const TICK: Duration = Duration::from_millis(200);

/// `lag_max_ms` is `replica.lag.time.max.ms`.
pub async fn run(
    replicas: Arc<ReplicaManager>,
    metadata: MetadataSource,
    reconciler: Reconciler,
    lag_max_ms: i64,
    metrics: Arc<crate::metrics::BrokerMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let lag_max_ms = lag_max_ms.max(1);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return },
        }
        let now = crate::clock::now_ms();
        for partition in replicas.all() {
            let Some(proposal) = partition.isr_proposal(now, lag_max_ms) else { continue };
            let shrinks = proposal.isr.len() < partition.isr_len();
            info!(topic = %partition.topic, partition = partition.index, isr = ?proposal.isr, "proposing ISR change");
            let change = MetadataCommand::ChangePartition {
                topic_id: partition.topic_id,
                partition: partition.index,
                expected_partition_epoch: proposal.expected_partition_epoch,
                leader: None,
                isr: Some(proposal.isr.clone()),
            };
            match metadata.propose(change).await {
                Ok(CommandOutcome::Applied(info)) => {
                    let counter = if shrinks { &metrics.isr_shrinks } else { &metrics.isr_expands };
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    reconciler.caught_up(info.log_index).await
                }
                Ok(outcome) => {
                    debug!(topic = %partition.topic, partition = partition.index, ?outcome, "ISR change not applied");
                    partition.clear_pending_isr();
                }
                Err(e) => {
                    debug!(topic = %partition.topic, partition = partition.index, error = %e, "ISR change failed");
                    partition.clear_pending_isr();
                }
            }
        }
    }
}
