//! Leader elections an operator asks for, and the automatic preferred-leader rebalance.
//!
//! **ElectLeaders** (`handlers::elect_leaders`) runs [`elect`] for each partition, against the
//! current image, and proposes the command it returns. The rules are Kafka's KRaft controller's
//! (`ReplicationControlManager.electLeader`, `PartitionChangeBuilder`):
//!
//! - *preferred*: the preferred replica is the first of the replica list. It becomes leader when
//!   it is registered, unfenced and in the ISR. Already leader → ELECTION_NOT_NEEDED; not
//!   eligible → PREFERRED_LEADER_NOT_AVAILABLE (the current leader stays).
//! - *unclean*: for a partition without a (live) leader. The first live ISR member is elected if
//!   there is one (a clean election, ISR unchanged); otherwise the first live replica, with the
//!   ISR reset to just that replica — it may lack acknowledged records, which is the point of
//!   asking for it. A live leader → ELECTION_NOT_NEEDED; no live replica at all →
//!   ELIGIBLE_LEADERS_NOT_AVAILABLE.
//!
//! Every command carries the partition epoch it was computed from, so an election that raced
//! with another change is rejected when applied, never applied to a partition it did not see.
//!
//! **Automatic rebalance** (`auto.leader.rebalance.enable`): every
//! `leader.imbalance.check.interval.seconds` the active controller runs [`rebalance`]: for each
//! broker, the share of the partitions it is preferred for but does not lead; when that share
//! exceeds `leader.imbalance.per.broker.percentage`, each of those partitions whose preferred
//! replica is eligible moves back to it. This is the per-broker ratio of Kafka's ZooKeeper-era
//! controller, which the property names describe; Kafka's KRaft controller ignores the
//! percentage and rebalances every imbalanced partition.
//!
//! Everything here except [`AutoRebalance::tick`] is a pure function of the image.

use std::collections::BTreeMap;
use std::time::Duration;

use klamm_config::BrokerConfig;
use klamm_protocol::ErrorCode;
use klamm_raft::{MetadataCommand, MetadataImage, MetadataQuorum, PartitionImage, TopicImage, NO_LEADER};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// ElectLeaders' `election_type` (v1+; v0 always means preferred).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    /// The wire value (0 preferred, 1 unclean); `None` for anything else.
    pub fn from_wire(value: i8) -> Option<ElectionType> {
        match value {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// Why a partition gets no election command, as ElectLeaders reports it.
pub type NoElection = (ErrorCode, String);

fn is_live(image: &MetadataImage, node_id: i32) -> bool {
    image.broker(node_id).is_some_and(|b| !b.fenced)
}

/// The command that carries out a `kind` election of `topic`-`partition`, or why there is none.
pub fn elect(image: &MetadataImage, topic: &str, partition: i32, kind: ElectionType) -> Result<MetadataCommand, NoElection> {
    let t = image
        .topic(topic)
        .ok_or_else(|| (ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, format!("No such topic as {topic}")))?;
    let p = t
        .partitions
        .get(&partition)
        .ok_or_else(|| (ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, format!("No such partition as {topic}-{partition}")))?;
    match kind {
        ElectionType::Preferred => elect_preferred(image, t, p),
        ElectionType::Unclean => elect_unclean(image, t, p),
    }
}

fn change(t: &TopicImage, p: &PartitionImage, leader: i32, isr: Option<Vec<i32>>) -> MetadataCommand {
    MetadataCommand::ChangePartition {
        topic_id: t.topic_id,
        partition: p.partition,
        expected_partition_epoch: p.partition_epoch,
        leader: Some(leader),
        isr,
    }
}

fn elect_preferred(image: &MetadataImage, t: &TopicImage, p: &PartitionImage) -> Result<MetadataCommand, NoElection> {
    let name = format!("{}-{}", t.name, p.partition);
    let Some(&preferred) = p.replicas.first() else {
        return Err((ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE, format!("{name} has no replicas")));
    };
    if p.leader == preferred {
        return Err((ErrorCode::ELECTION_NOT_NEEDED, "Leader election not needed for topic partition.".into()));
    }
    if !is_live(image, preferred) {
        return Err((
            ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE,
            format!("Failed to elect leader for partition {name}: preferred replica {preferred} is not alive"),
        ));
    }
    if !p.isr.contains(&preferred) {
        return Err((
            ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE,
            format!("Failed to elect leader for partition {name}: preferred replica {preferred} is not in the ISR {:?}", p.isr),
        ));
    }
    Ok(change(t, p, preferred, None))
}

fn elect_unclean(image: &MetadataImage, t: &TopicImage, p: &PartitionImage) -> Result<MetadataCommand, NoElection> {
    if p.leader != NO_LEADER && is_live(image, p.leader) {
        return Err((ErrorCode::ELECTION_NOT_NEEDED, "Leader election not needed for topic partition.".into()));
    }
    // An ISR member that is alive needs no unclean election: it has every acknowledged record.
    if let Some(&clean) = p.isr.iter().find(|r| is_live(image, **r)) {
        return Ok(change(t, p, clean, None));
    }
    match p.replicas.iter().find(|r| is_live(image, **r)) {
        Some(&unclean) => Ok(change(t, p, unclean, Some(vec![unclean]))),
        None => Err((
            ErrorCode::ELIGIBLE_LEADERS_NOT_AVAILABLE,
            format!("Failed to elect leader for partition {}-{}: no replica is alive", t.name, p.partition),
        )),
    }
}

/// Partitions a broker is the preferred replica of: how many, and those it does not lead.
type PreferredFor<'a> = (usize, Vec<(&'a TopicImage, &'a PartitionImage)>);

/// Preferred elections that bring every broker's leader imbalance back to at most
/// `imbalance_percentage` percent (see the module docs). Partitions whose preferred replica is
/// not eligible are left alone; a broker that is preferred for nothing is never imbalanced.
pub fn rebalance(image: &MetadataImage, imbalance_percentage: i32) -> Vec<MetadataCommand> {
    // preferred broker -> (partitions it is preferred for, those it does not lead)
    let mut by_preferred: BTreeMap<i32, PreferredFor> = BTreeMap::new();
    for t in image.topics.values() {
        for p in t.partitions.values() {
            let Some(&preferred) = p.replicas.first() else { continue };
            let entry = by_preferred.entry(preferred).or_default();
            entry.0 += 1;
            if p.leader != preferred {
                entry.1.push((t, p));
            }
        }
    }
    let allowed = i64::from(imbalance_percentage.max(0));
    let mut commands = Vec::new();
    for (broker, (total, not_led)) in by_preferred {
        // ratio > percentage / 100, in integers
        let imbalanced = (not_led.len() as i64) * 100 > allowed * (total as i64);
        if !imbalanced {
            continue;
        }
        debug!(broker, total, not_led = not_led.len(), "leader imbalance above the threshold");
        commands.extend(not_led.into_iter().filter_map(|(t, p)| elect_preferred(image, t, p).ok()));
    }
    commands
}

/// `auto.leader.rebalance.enable`, `leader.imbalance.check.interval.seconds`,
/// `leader.imbalance.per.broker.percentage`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub enabled: bool,
    pub interval: Duration,
    pub imbalance_percentage: i32,
}

impl Default for Settings {
    /// Kafka's defaults.
    fn default() -> Self {
        Settings { enabled: true, interval: Duration::from_secs(300), imbalance_percentage: 10 }
    }
}

impl Settings {
    pub fn from_config(config: &BrokerConfig) -> Settings {
        Settings {
            enabled: config.auto_leader_rebalance_enable,
            interval: Duration::from_secs(config.leader_imbalance_check_interval_seconds.max(1) as u64),
            imbalance_percentage: config.leader_imbalance_per_broker_percentage,
        }
    }
}

/// The rebalance clock of the active controller; [`AutoRebalance::tick`] is called from the
/// controller loop while this node leads the quorum.
pub struct AutoRebalance {
    settings: Settings,
    next_check: Option<Instant>,
}

impl AutoRebalance {
    pub fn new(settings: Settings) -> AutoRebalance {
        AutoRebalance { settings, next_check: None }
    }

    /// Rebalances when the interval has passed since the first call (or the last check).
    pub async fn tick(&mut self, quorum: &MetadataQuorum) {
        if !self.settings.enabled {
            return;
        }
        let now = Instant::now();
        let due = *self.next_check.get_or_insert(now + self.settings.interval);
        if now < due {
            return;
        }
        self.next_check = Some(now + self.settings.interval);
        for command in rebalance(&quorum.image(), self.settings.imbalance_percentage) {
            if let MetadataCommand::ChangePartition { partition, leader, .. } = &command {
                info!(partition, ?leader, "moving leadership back to the preferred replica");
            }
            match quorum.propose(command).await {
                Ok(outcome) if !outcome.is_applied() => debug!(?outcome, "preferred election superseded"),
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "preferred election failed; retrying at the next check");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_images::{must_apply, must_image_with_brokers};
    use klamm_raft::NewPartition;

    /// Brokers `1..=n` registered and unfenced except `fenced`; topic "t" with the given replica
    /// lists (leader = first replica, ISR = replicas).
    fn image(n: i32, fenced: &[i32], replicas: &[&[i32]]) -> MetadataImage {
        let mut img = must_image_with_brokers(1..=n);
        let partitions =
            replicas.iter().enumerate().map(|(i, r)| NewPartition { partition: i as i32, replicas: r.to_vec() }).collect();
        must_apply(&mut img, &MetadataCommand::CreateTopic { name: "t".into(), topic_id: [1; 16], partitions, configs: Default::default() });
        for id in fenced {
            let epoch = img.broker(*id).map(|b| b.epoch).unwrap_or_default();
            must_apply(&mut img, &MetadataCommand::FenceBroker { node_id: *id, epoch });
        }
        img
    }

    fn set(img: &mut MetadataImage, partition: i32, leader: i32, isr: &[i32]) {
        let p = img.partition("t", partition).expect("partition").clone();
        let cmd = MetadataCommand::ChangePartition {
            topic_id: [1; 16],
            partition,
            expected_partition_epoch: p.partition_epoch,
            leader: Some(leader),
            isr: Some(isr.to_vec()),
        };
        must_apply(img, &cmd);
    }

    fn unfence(img: &mut MetadataImage, id: i32) {
        let epoch = img.broker(id).map(|b| b.epoch).unwrap_or_default();
        must_apply(img, &MetadataCommand::UnfenceBroker { node_id: id, epoch });
    }

    fn code(r: Result<MetadataCommand, NoElection>) -> ErrorCode {
        r.err().map(|e| e.0).unwrap_or(ErrorCode::NONE)
    }

    #[test]
    fn preferred_election() {
        // Broker 1 was fenced: partition 0 moved to 2, then 1 came back and rejoined the ISR.
        let mut img = image(3, &[1], &[&[1, 2, 3], &[2, 3, 1]]);
        assert_eq!(img.partition("t", 0).map(|p| p.leader), Some(2));
        let r = elect(&img, "t", 0, ElectionType::Preferred);
        assert_eq!(code(r), ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE, "1 is fenced");
        unfence(&mut img, 1);
        let r = elect(&img, "t", 0, ElectionType::Preferred);
        assert_eq!(code(r), ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE, "1 is not in the ISR");
        set(&mut img, 0, 2, &[2, 3, 1]);
        let cmd = elect(&img, "t", 0, ElectionType::Preferred).expect("elect 1");
        let epoch = img.partition("t", 0).map(|p| p.leader_epoch).unwrap_or_default();
        must_apply(&mut img, &cmd);
        let p = img.partition("t", 0).expect("p0");
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (1, epoch + 1, vec![2, 3, 1]));
        assert_eq!(code(elect(&img, "t", 0, ElectionType::Preferred)), ErrorCode::ELECTION_NOT_NEEDED);
        assert!(img.apply(999, &cmd).into_result().is_err(), "a replayed election is stale");
        assert_eq!(code(elect(&img, "t", 1, ElectionType::Preferred)), ErrorCode::ELECTION_NOT_NEEDED);
        assert_eq!(code(elect(&img, "t", 7, ElectionType::Preferred)), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
        assert_eq!(code(elect(&img, "u", 0, ElectionType::Preferred)), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    }

    #[test]
    fn unclean_election() {
        // Replicas [1, 2]; the ISR shrank to [1], then 1 died: no leader, ISR [1].
        let mut img = image(3, &[], &[&[1, 2], &[3]]);
        set(&mut img, 0, 1, &[1]);
        assert_eq!(code(elect(&img, "t", 0, ElectionType::Unclean)), ErrorCode::ELECTION_NOT_NEEDED);
        let epoch = img.broker(1).map(|b| b.epoch).unwrap_or_default();
        must_apply(&mut img, &MetadataCommand::FenceBroker { node_id: 1, epoch });
        assert_eq!(img.partition("t", 0).map(|p| (p.leader, p.isr.clone())), Some((NO_LEADER, vec![1])));
        let cmd = elect(&img, "t", 0, ElectionType::Unclean).expect("unclean");
        must_apply(&mut img, &cmd);
        assert_eq!(img.partition("t", 0).map(|p| (p.leader, p.isr.clone())), Some((2, vec![2])));

        // Partition 1 (replicas [3]) with 3 fenced: nobody can lead.
        let epoch = img.broker(3).map(|b| b.epoch).unwrap_or_default();
        must_apply(&mut img, &MetadataCommand::FenceBroker { node_id: 3, epoch });
        assert_eq!(code(elect(&img, "t", 1, ElectionType::Unclean)), ErrorCode::ELIGIBLE_LEADERS_NOT_AVAILABLE);
        assert_eq!(code(elect(&img, "t", 1, ElectionType::Preferred)), ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE);
        // 3 is back: unfencing made it leader again in the same step, nothing to elect.
        unfence(&mut img, 3);
        assert_eq!(img.partition("t", 1).map(|p| p.leader), Some(3));
        assert_eq!(code(elect(&img, "t", 1, ElectionType::Unclean)), ErrorCode::ELECTION_NOT_NEEDED);
    }

    #[test]
    fn wire_election_types() {
        assert_eq!(ElectionType::from_wire(0), Some(ElectionType::Preferred));
        assert_eq!(ElectionType::from_wire(1), Some(ElectionType::Unclean));
        assert_eq!(ElectionType::from_wire(2), None);
        assert_eq!(ElectionType::from_wire(-1), None);
    }

    fn leaders(img: &MetadataImage) -> Vec<i32> {
        img.topic("t").map(|t| t.partitions.values().map(|p| p.leader).collect()).unwrap_or_default()
    }

    #[test]
    fn rebalance_moves_leaders_back_above_the_threshold() {
        // Ten partitions preferring broker 1 (replicas [1, 2]), one preferring 2.
        let mut replicas: Vec<&[i32]> = vec![&[1, 2]; 10];
        replicas.push(&[2, 1]);
        let mut img = image(2, &[], &replicas);
        assert!(rebalance(&img, 10).is_empty(), "balanced");
        // Broker 1 fails over: all its partitions move to 2; it returns and catches up.
        let epoch = img.broker(1).map(|b| b.epoch).unwrap_or_default();
        must_apply(&mut img, &MetadataCommand::FenceBroker { node_id: 1, epoch });
        assert!(leaders(&img).iter().all(|l| *l == 2));
        assert!(rebalance(&img, 10).is_empty(), "broker 1 is fenced");
        unfence(&mut img, 1);
        assert!(rebalance(&img, 10).is_empty(), "broker 1 is not in any ISR yet");
        for p in 0..11 {
            set(&mut img, p, 2, &[2, 1]);
        }
        // Only one of broker 1's partitions out of place: 1/10 is not above 10%.
        let mut img_one = img.clone();
        for p in 1..10 {
            set(&mut img_one, p, 1, &[2, 1]);
        }
        assert!(rebalance(&img_one, 10).is_empty());
        assert_eq!(rebalance(&img_one, 9).len(), 1, "above 9%");
        // All ten out of place: every one moves back (partition 10 stays with 2, its preferred).
        let commands = rebalance(&img, 10);
        assert_eq!(commands.len(), 10);
        for c in &commands {
            must_apply(&mut img, c);
        }
        assert_eq!(leaders(&img), [vec![1; 10], vec![2]].concat());
        assert!(rebalance(&img, 0).is_empty());
    }
}
