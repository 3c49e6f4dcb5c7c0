//! Partition reassignment on the broker side: the active controller's completion step, and the
//! answers of AlterPartitionReassignments / ListPartitionReassignments built from the image.
//!
//! The state machine itself (what starting, completing and cancelling do to a partition) lives
//! in the metadata image (`klamm_raft`, `ReassignPartition` / `CompleteReassignment`), so
//! every node applies it identically. What needs a clock lives here: every controller tick
//! [`complete_ready`] proposes `CompleteReassignment` for each partition whose adding replicas
//! have all joined the ISR. They join it through ordinary replication: a broker listed in
//! `replicas` opens the partition and fetches from the leader, and the leader adds it to the
//! ISR once it has caught up.

use klamm_protocol::messages::list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
use klamm_raft::{MetadataCommand, MetadataImage, MetadataQuorum, TopicImage};
use tracing::{debug, info, warn};

/// One `CompleteReassignment` per partition whose reassignment can complete now.
pub fn completions(image: &MetadataImage) -> Vec<MetadataCommand> {
    let mut commands = Vec::new();
    for t in image.topics.values() {
        for p in t.partitions.values() {
            if p.reassignment_in_progress() && image.reassignment_completable(p) {
                commands.push(MetadataCommand::CompleteReassignment {
                    topic_id: t.topic_id,
                    partition: p.partition,
                    expected_partition_epoch: p.partition_epoch,
                });
            }
        }
    }
    commands
}

/// Proposes the completions of [`completions`]; called from the controller loop while this
/// node is the active controller. A completion that lost a race with another change is
/// rejected by its partition epoch and retried on the next tick.
pub async fn complete_ready(quorum: &MetadataQuorum) {
    for command in completions(&quorum.image()) {
        if let MetadataCommand::CompleteReassignment { partition, .. } = &command {
            info!(partition, "completing partition reassignment");
        }
        match quorum.propose(command).await {
            Ok(outcome) if !outcome.is_applied() => debug!(?outcome, "reassignment completion superseded"),
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "completing a reassignment failed; retrying next tick");
                return;
            }
        }
    }
}

/// ListPartitionReassignments' entry for `topic`: its partitions among `partitions` (every
/// partition when `None`) with a reassignment running; `None` when there are none (Kafka leaves
/// such topics out).
pub fn ongoing(topic: &TopicImage, partitions: Option<&[i32]>) -> Option<OngoingTopicReassignment> {
    let listed: Vec<OngoingPartitionReassignment> = match partitions {
        None => topic.partitions.values().collect::<Vec<_>>(),
        Some(ids) => ids.iter().filter_map(|id| topic.partitions.get(id)).collect(),
    }
    .into_iter()
    .filter(|p| p.reassignment_in_progress())
    .map(|p| OngoingPartitionReassignment {
        partition_index: p.partition,
        replicas: p.replicas.clone(),
        adding_replicas: p.adding_replicas.clone(),
        removing_replicas: p.removing_replicas.clone(),
        ..Default::default()
    })
    .collect();
    (!listed.is_empty()).then(|| OngoingTopicReassignment { name: topic.name.clone(), partitions: listed, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_images::{must_apply, must_image_with_brokers};
    use klamm_raft::NewPartition;

    fn image() -> MetadataImage {
        let mut img = must_image_with_brokers(1..=3);
        let partitions = (0..2).map(|p| NewPartition { partition: p, replicas: vec![1] }).collect();
        must_apply(&mut img, &MetadataCommand::CreateTopic { name: "t".into(), topic_id: [1; 16], partitions, configs: Default::default() });
        for p in 0..2 {
            let target = Some(if p == 0 { vec![2] } else { vec![1, 3] });
            must_apply(&mut img, &MetadataCommand::ReassignPartition { topic_id: [1; 16], partition: p, expected_partition_epoch: 0, target });
        }
        img
    }

    #[test]
    fn completes_when_the_new_replicas_are_in_sync() {
        let mut img = image();
        assert!(completions(&img).is_empty(), "nobody caught up yet");
        // 3 catches up on partition 1: the leader adds it to the ISR.
        let expand = MetadataCommand::ChangePartition {
            topic_id: [1; 16],
            partition: 1,
            expected_partition_epoch: 1,
            leader: None,
            isr: Some(vec![1, 3]),
        };
        assert!(img.apply(100, &expand).is_applied());
        let commands = completions(&img);
        assert_eq!(commands, vec![MetadataCommand::CompleteReassignment { topic_id: [1; 16], partition: 1, expected_partition_epoch: 2 }]);
        assert!(img.apply(101, &commands[0]).is_applied());
        let p = img.partition("t", 1).cloned().expect("p1");
        assert_eq!((p.replicas, p.isr, p.leader), (vec![1, 3], vec![1, 3], 1));
        assert!(completions(&img).is_empty());
    }

    #[test]
    fn lists_only_running_reassignments() {
        let img = image();
        let t = img.topic("t").expect("topic");
        let all = ongoing(t, None).expect("running");
        type Listed = (i32, Vec<i32>, Vec<i32>, Vec<i32>);
        let shape: Vec<Listed> = all
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.replicas.clone(), p.adding_replicas.clone(), p.removing_replicas.clone()))
            .collect();
        assert_eq!(shape, vec![(0, vec![2, 1], vec![2], vec![1]), (1, vec![1, 3], vec![3], vec![])]);
        assert_eq!(ongoing(t, Some(&[1, 7])).map(|o| o.partitions.len()), Some(1), "unknown partitions are skipped");
        assert!(ongoing(t, Some(&[])).is_none());
    }
}
