//! Partition reassignment (AlterPartitionReassignments) as Kafka's KRaft controller models it
//! (KIP-455, `PartitionReassignmentReplicas`, `PartitionReassignmentRevert`): pure functions
//! from a partition's state to its next state, used by [`crate::MetadataImage::apply`].
//!
//! While a reassignment runs, `replicas` is the target followed by the replicas being removed,
//! `adding_replicas` the target replicas that were not replicas before, `removing_replicas` the
//! old replicas not in the target. Every broker in `replicas` hosts the partition, so the adding
//! ones fetch from the leader and join the ISR like any follower. The reassignment completes
//! once every adding replica is in the ISR: `replicas` becomes the target, the ISR loses the
//! removed replicas, and a removed leader hands over to the first live target replica in the
//! ISR. Cancelling drops the adding replicas and keeps the removing ones (the original set).

use std::collections::BTreeSet;

use crate::image::{PartitionImage, NO_LEADER};

/// The replica sets of a started (or replaced) reassignment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Started {
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// Reassigning `p` to `target` (already validated: non-empty, distinct, registered brokers).
///
/// Kafka computes adding/removing against the current `replicas`, which during a reassignment
/// already include the replicas being added; a replaced reassignment would then stop waiting
/// for those. Here they are computed against the replicas the partition had before any
/// reassignment (`replicas` minus `adding_replicas`), so a target replica that has not been
/// a full replica yet is always waited for.
pub(crate) fn start(p: &PartitionImage, target: &[i32]) -> Started {
    let original: Vec<i32> = p.replicas.iter().copied().filter(|r| !p.adding_replicas.contains(r)).collect();
    let adding: Vec<i32> = target.iter().copied().filter(|r| !original.contains(r)).collect();
    let removing: Vec<i32> = p.replicas.iter().copied().filter(|r| !target.contains(r)).collect();
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    Started { replicas, adding, removing }
}

/// The state a reassignment ends in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
}

/// `Some` when the reassignment of `p` can complete now: every adding replica is in the ISR,
/// the ISR keeps a member once the removed replicas leave it, and a leader is there (the
/// current one if it stays in the ISR, otherwise the first live target replica in the ISR).
/// `is_live` says whether a broker is registered and unfenced.
pub(crate) fn completion(p: &PartitionImage, is_live: impl Fn(i32) -> bool) -> Option<Finished> {
    if !in_progress(p) || p.adding_replicas.iter().any(|r| !p.isr.contains(r)) {
        return None;
    }
    let replicas: Vec<i32> = p.replicas.iter().copied().filter(|r| !p.removing_replicas.contains(r)).collect();
    let isr: Vec<i32> = p.isr.iter().copied().filter(|r| !p.removing_replicas.contains(r)).collect();
    if isr.is_empty() {
        return None;
    }
    let leader = if isr.contains(&p.leader) { p.leader } else { first_live_in_isr(&replicas, &isr, &is_live)? };
    Some(Finished { replicas, isr, leader })
}

/// The state a cancelled reassignment returns to, or `None` when every ISR member is being
/// added (reverting would need an unclean election, which Kafka refuses unless
/// `unclean.leader.election.enable`; Klamm refuses it always).
pub(crate) fn revert(p: &PartitionImage, is_live: impl Fn(i32) -> bool) -> Option<Finished> {
    let replicas: Vec<i32> = p.replicas.iter().copied().filter(|r| !p.adding_replicas.contains(r)).collect();
    let isr: Vec<i32> = p.isr.iter().copied().filter(|r| !p.adding_replicas.contains(r)).collect();
    if isr.is_empty() {
        return None;
    }
    let leader = if isr.contains(&p.leader) { p.leader } else { first_live_in_isr(&replicas, &isr, &is_live).unwrap_or(NO_LEADER) };
    Some(Finished { replicas, isr, leader })
}

pub(crate) fn in_progress(p: &PartitionImage) -> bool {
    !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty()
}

fn first_live_in_isr(replicas: &[i32], isr: &[i32], is_live: &impl Fn(i32) -> bool) -> Option<i32> {
    replicas.iter().copied().find(|r| isr.contains(r) && is_live(*r))
}

/// Kafka's checks of a manual assignment (`validateManualPartitionAssignment`): non-empty,
/// each broker once, every broker registered (fenced ones are allowed).
pub(crate) fn validate_target(target: &[i32], is_registered: impl Fn(i32) -> bool) -> Result<(), String> {
    if target.is_empty() {
        return Err("The manual partition assignment includes an empty replica list.".into());
    }
    let mut seen = BTreeSet::new();
    for r in target {
        if !seen.insert(*r) {
            return Err(format!("The manual partition assignment includes the broker {r} more than once."));
        }
        if !is_registered(*r) {
            return Err(format!("The manual partition assignment includes broker {r}, but no such broker is registered."));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(replicas: &[i32], isr: &[i32], leader: i32, adding: &[i32], removing: &[i32]) -> PartitionImage {
        PartitionImage {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            adding_replicas: adding.to_vec(),
            removing_replicas: removing.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn start_orders_target_first_and_keeps_removed_replicas() {
        let s = start(&p(&[1, 2, 3], &[1, 2, 3], 1, &[], &[]), &[3, 4, 5]);
        assert_eq!(s, Started { replicas: vec![3, 4, 5, 1, 2], adding: vec![4, 5], removing: vec![1, 2] });
        // A pure reorder adds and removes nothing.
        let s = start(&p(&[1, 2, 3], &[1, 2, 3], 1, &[], &[]), &[2, 1, 3]);
        assert_eq!(s, Started { replicas: vec![2, 1, 3], adding: vec![], removing: vec![] });
        // Replacing a running reassignment: 4 was being added and is still waited for.
        let running = p(&[4, 5, 1], &[1], 1, &[4, 5], &[1]);
        let s = start(&running, &[1, 4]);
        assert_eq!(s, Started { replicas: vec![1, 4, 5], adding: vec![4], removing: vec![5] });
    }

    #[test]
    fn completes_once_every_adding_replica_is_in_sync() {
        let live = |_| true;
        assert_eq!(completion(&p(&[1], &[1], 1, &[], &[]), live), None, "nothing in progress");
        let moving = p(&[3, 4, 1, 2], &[1, 2, 3], 1, &[3, 4], &[1, 2]);
        assert_eq!(completion(&moving, live), None, "4 is not in sync yet");
        let caught_up = p(&[3, 4, 1, 2], &[1, 2, 3, 4], 1, &[3, 4], &[1, 2]);
        assert_eq!(completion(&caught_up, live), Some(Finished { replicas: vec![3, 4], isr: vec![3, 4], leader: 3 }));
        assert_eq!(
            completion(&caught_up, |r| r != 3),
            Some(Finished { replicas: vec![3, 4], isr: vec![3, 4], leader: 4 }),
            "the first live target replica leads"
        );
        assert_eq!(completion(&caught_up, |r| r < 3), None, "no live replica could lead");
        let growing = p(&[1, 2], &[1, 2], 1, &[2], &[]);
        assert_eq!(completion(&growing, live), Some(Finished { replicas: vec![1, 2], isr: vec![1, 2], leader: 1 }));
    }

    #[test]
    fn revert_keeps_the_original_replicas() {
        let live = |_| true;
        let moving = p(&[3, 4, 1, 2], &[1, 2, 3], 1, &[3, 4], &[1, 2]);
        assert_eq!(revert(&moving, live), Some(Finished { replicas: vec![1, 2], isr: vec![1, 2], leader: 1 }));
        let led_by_new = p(&[3, 1], &[3, 1], 3, &[3], &[1]);
        assert_eq!(revert(&led_by_new, live), Some(Finished { replicas: vec![1], isr: vec![1], leader: 1 }));
        assert_eq!(revert(&p(&[3, 1], &[3], 3, &[3], &[1]), live), None, "only an added replica is in sync");
    }

    #[test]
    fn targets_are_validated() {
        let registered = |r| r <= 3;
        assert!(validate_target(&[1, 2], registered).is_ok());
        assert!(validate_target(&[], registered).is_err());
        assert!(validate_target(&[1, 1], registered).is_err());
        assert!(validate_target(&[1, 4], registered).is_err());
    }
}
