//! The post-condition of [`MetadataImage::apply`] for partitions: every
//! command leaves each partition it touched with its leader in the ISR (or no
//! leader), the ISR within the replicas, and its leader and partition epochs
//! no lower than before. The commands validate their input so that this holds;
//! these checks catch a command that forgot to. They are cheap (only the
//! partitions a command can touch are looked at) and so always on: a broken
//! image would make every node act on a wrong leader or ISR.

use crate::command::MetadataCommand;
use crate::image::MetadataImage;
use crate::NO_LEADER;

/// The partitions a command may change, by topic name.
enum Touched {
    Nothing,
    Partition(String, i32),
    Topic(String),
    All,
}

/// Epochs of the touched partitions before a command: `(topic, partition, leader epoch, partition epoch)`.
pub(crate) struct EpochsBefore {
    touched: Touched,
    epochs: Vec<(String, i32, i32, i32)>,
}

impl EpochsBefore {
    /// Records what `cmd` may change in `image`, before it is applied.
    pub(crate) fn capture(image: &MetadataImage, cmd: &MetadataCommand) -> EpochsBefore {
        let name_of = |id: &[u8; 16]| image.topic_names_by_id.get(id).cloned();
        let touched = match cmd {
            MetadataCommand::ChangePartition { topic_id, partition, .. }
            | MetadataCommand::ReassignPartition { topic_id, partition, .. }
            | MetadataCommand::CompleteReassignment { topic_id, partition, .. } => {
                name_of(topic_id).map_or(Touched::Nothing, |name| Touched::Partition(name, *partition))
            }
            MetadataCommand::CreateTopic { name, .. } => Touched::Topic(name.clone()),
            MetadataCommand::CreatePartitions { topic_id, .. } => name_of(topic_id).map_or(Touched::Nothing, Touched::Topic),
            // Fencing moves leaderships and shrinks ISRs anywhere; unfencing may restore leaders.
            MetadataCommand::FenceBroker { .. } | MetadataCommand::UnfenceBroker { .. } | MetadataCommand::RegisterBroker { .. } => Touched::All,
            _ => Touched::Nothing,
        };
        let mut before = EpochsBefore { touched, epochs: Vec::new() };
        let mut epochs = Vec::new();
        before.for_each(image, |topic, p| epochs.push((topic.to_string(), p.partition, p.leader_epoch, p.partition_epoch)));
        before.epochs = epochs;
        before
    }

    fn for_each(&self, image: &MetadataImage, mut f: impl FnMut(&str, &crate::image::PartitionImage)) {
        let mut topic = |name: &str, only: Option<i32>| {
            if let Some(t) = image.topics.get(name) {
                for p in t.partitions.values().filter(|p| only.is_none_or(|i| p.partition == i)) {
                    f(name, p);
                }
            }
        };
        match &self.touched {
            Touched::Nothing => {}
            Touched::Partition(name, index) => topic(name, Some(*index)),
            Touched::Topic(name) => topic(name, None),
            Touched::All => {
                for name in image.topics.keys() {
                    topic(name, None);
                }
            }
        }
    }

    /// Panics if `image` (after the command) breaks the post-condition for a touched partition.
    pub(crate) fn check(&self, image: &MetadataImage) {
        self.for_each(image, |topic, p| {
            let index = p.partition;
            assert!(p.isr.iter().all(|r| p.replicas.contains(r)), "{topic}-{index}: isr {:?} not within replicas {:?}", p.isr, p.replicas);
            assert!(p.leader == NO_LEADER || p.isr.contains(&p.leader), "{topic}-{index}: leader {} not in isr {:?}", p.leader, p.isr);
            if let Some((_, _, leader_epoch, partition_epoch)) = self.epochs.iter().find(|(t, i, _, _)| t == topic && *i == index) {
                assert!(
                    p.leader_epoch >= *leader_epoch && p.partition_epoch >= *partition_epoch,
                    "{topic}-{index}: epochs went back from (leader {leader_epoch}, partition {partition_epoch}) to (leader {}, partition {})",
                    p.leader_epoch,
                    p.partition_epoch
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{PartitionImage, TopicImage};

    /// An image with `t-0` as given, and what a fencing command captured of it.
    fn image_with(p: PartitionImage) -> (MetadataImage, EpochsBefore) {
        let mut image = MetadataImage::default();
        let topic = TopicImage { name: "t".into(), topic_id: [1; 16], partitions: [(0, p)].into(), configs: Default::default() };
        image.topics.insert("t".into(), topic);
        image.topic_names_by_id.insert([1; 16], "t".into());
        let before = EpochsBefore::capture(&image, &MetadataCommand::FenceBroker { node_id: 9, epoch: 0 });
        (image, before)
    }

    fn partition(leader: i32, isr: &[i32], leader_epoch: i32) -> PartitionImage {
        PartitionImage { partition: 0, replicas: vec![1, 2, 3], isr: isr.to_vec(), leader, leader_epoch, partition_epoch: leader_epoch, ..Default::default() }
    }

    /// Checks a change of `t-0` from `from` to `to`, as after a fencing command.
    fn check_change(from: PartitionImage, to: PartitionImage) {
        let (mut image, before) = image_with(from);
        image.topics.get_mut("t").expect("topic").partitions.insert(0, to);
        before.check(&image);
    }

    #[test]
    fn a_sound_change_passes() {
        check_change(partition(1, &[1, 2], 3), partition(2, &[2], 4));
        check_change(partition(1, &[1, 2], 3), partition(NO_LEADER, &[2], 5));
    }

    #[test]
    #[should_panic(expected = "not in isr")]
    fn a_leader_outside_the_isr_is_caught() {
        check_change(partition(1, &[1, 2], 3), partition(3, &[1, 2], 4));
    }

    #[test]
    #[should_panic(expected = "not within replicas")]
    fn an_isr_member_outside_the_replicas_is_caught() {
        check_change(partition(1, &[1, 2], 3), partition(1, &[1, 4], 4));
    }

    #[test]
    #[should_panic(expected = "epochs went back")]
    fn an_epoch_going_back_is_caught() {
        check_change(partition(1, &[1, 2], 3), partition(1, &[1, 2], 2));
    }
}
