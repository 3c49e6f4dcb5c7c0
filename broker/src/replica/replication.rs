//! The replication state machine of one partition, without I/O or locks.
//!
//! [`ReplicationState`] owns what this broker knows of the partition's
//! replication: its role (from the metadata image), the replicas, the
//! committed ISR, ISR additions proposed but not committed yet, the leader and
//! partition epochs, the log end offset at which this broker's leadership
//! began, and, as leader, each follower's progress. It decides the high
//! watermark and the ISR changes; the caller (`Partition`) holds the lock,
//! reads the log end offset from the log and carries the decisions out.
//!
//! The leader's high watermark is the smallest log end offset over the ISR
//! plus any replica whose addition is pending (Kafka's "maximal ISR", so a
//! replica entering the ISR never lacks a record below the high watermark),
//! and does not move while the ISR is smaller than `min.insync.replicas`
//! unless every replica is in it (KIP-966).

use std::collections::HashMap;

use klamm_protocol::ErrorCode;
use klamm_raft::{PartitionImage, NO_LEADER};

/// A follower counts as fetching (and may join the ISR) if its last fetch arrived this
/// recently; an idle follower long-polls every `replica.fetch.wait.max.ms` (500 ms).
const RECENT_FETCH_MS: i64 = 2_000;

/// An ISR change the leader wants the controller to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub expected_partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// A follower's progress as the leader sees it.
#[derive(Debug, Clone, Copy)]
struct FollowerProgress {
    /// Fetch offset of its latest fetch (its log end offset); -1 until it fetched.
    log_end_offset: i64,
    /// Last time it was known to have everything the leader had (Kafka's lastCaughtUpTime).
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end offset when that fetch arrived.
    leader_end_at_last_fetch: i64,
}

impl FollowerProgress {
    /// A follower that has not fetched yet, counted as caught up at `now_ms` so it
    /// gets `replica.lag.time.max.ms` to fetch before it may leave the ISR.
    fn fresh(now_ms: i64) -> Self {
        FollowerProgress { log_end_offset: -1, last_caught_up_ms: now_ms, last_fetch_ms: now_ms, leader_end_at_last_fetch: -1 }
    }
}

/// What applying a metadata entry changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// Same epochs and leader as before: nothing was applied.
    Unchanged,
    /// An image older than the one already applied (a lower leader or partition
    /// epoch): ignored, because epochs only grow and applying it would hand
    /// leadership back to a deposed leader.
    Stale,
    /// This broker now leads in `leader_epoch`, which began at `start_offset`
    /// (the caller records it in the leader-epoch cache).
    BecameLeader { leader_epoch: i32, start_offset: i64 },
    /// Anything else: a new ISR or replica set, another leader, a follower role.
    Updated,
}

/// This broker's replication state for one partition.
#[derive(Debug, Clone)]
pub struct ReplicationState {
    node_id: i32,
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    /// The committed ISR (from the metadata image).
    isr: Vec<i32>,
    /// Replicas whose addition to the ISR was proposed but is not committed yet.
    pending_additions: Vec<i32>,
    /// Log end offset when this broker became leader in `leader_epoch`.
    epoch_start_offset: i64,
    followers: HashMap<i32, FollowerProgress>,
}

impl ReplicationState {
    /// No role yet: no leader known, epochs -1 (the first metadata entry applies).
    pub fn new(node_id: i32, log_end_offset: i64) -> Self {
        ReplicationState {
            node_id,
            leader: NO_LEADER,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            pending_additions: Vec::new(),
            epoch_start_offset: log_end_offset,
            followers: HashMap::new(),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader == self.node_id && self.leader != NO_LEADER
    }
    pub fn leader(&self) -> i32 {
        self.leader
    }
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
    pub fn isr_len(&self) -> usize {
        self.isr.len()
    }
    pub fn replica_count(&self) -> usize {
        self.replicas.len()
    }
    /// As leader: the log end offset when this leadership began; -1 otherwise.
    pub fn leader_epoch_start_offset(&self) -> i64 {
        if self.is_leader() { self.epoch_start_offset } else { -1 }
    }

    /// As follower (a replica with a known leader that is not this broker):
    /// the leader and its epoch to fetch from.
    pub fn followed_leader(&self) -> Option<(i32, i32)> {
        if self.is_leader() || self.leader == NO_LEADER || !self.replicas.contains(&self.node_id) {
            return None;
        }
        Some((self.leader, self.leader_epoch))
    }

    /// Brings the state in line with the partition's entry in the metadata image:
    /// replicas, committed ISR, leader and epochs. Becoming leader (or leading in a
    /// new epoch) starts tracking the followers afresh (each counts as caught up now,
    /// as in Kafka, so none is dropped from the ISR before it had a chance to fetch).
    pub fn apply_metadata(&mut self, meta: &PartitionImage, log_end_offset: i64, now_ms: i64) -> RoleChange {
        if meta.partition_epoch == self.partition_epoch && meta.leader_epoch == self.leader_epoch && meta.leader == self.leader {
            return RoleChange::Unchanged;
        }
        if meta.leader_epoch < self.leader_epoch || meta.partition_epoch < self.partition_epoch {
            return RoleChange::Stale;
        }
        let was_leader_in_epoch = self.is_leader() && self.leader_epoch == meta.leader_epoch;
        self.replicas = meta.replicas.clone();
        self.isr = meta.isr.clone();
        self.pending_additions.retain(|r| !meta.isr.contains(r) && meta.replicas.contains(r));
        if meta.partition_epoch != self.partition_epoch {
            // The proposal this was waiting for was applied or overtaken.
            self.pending_additions.clear();
        }
        self.partition_epoch = meta.partition_epoch;
        self.leader = meta.leader;
        self.leader_epoch = meta.leader_epoch;
        if self.is_leader() && !was_leader_in_epoch {
            self.epoch_start_offset = log_end_offset;
            let node_id = self.node_id;
            self.followers = self.replicas.iter().filter(|r| **r != node_id).map(|r| (*r, FollowerProgress::fresh(now_ms))).collect();
            return RoleChange::BecameLeader { leader_epoch: meta.leader_epoch, start_offset: log_end_offset };
        }
        if !self.is_leader() {
            self.followers.clear();
        } else {
            let replicas = &self.replicas;
            self.followers.retain(|r, _| replicas.contains(r));
            for r in replicas.iter().filter(|r| **r != self.node_id) {
                self.followers.entry(*r).or_insert(FollowerProgress::fresh(now_ms));
            }
        }
        RoleChange::Updated
    }

    /// As leader: the high watermark the ISR allows given the leader's log end offset,
    /// if it is above `current`. `None` when it does not move (or this broker does not
    /// lead), so the high watermark never moves back.
    pub fn high_watermark(&self, log_end_offset: i64, current: i64, min_insync_replicas: usize) -> Option<i64> {
        if !self.is_leader() {
            return None;
        }
        if self.isr.len() < min_insync_replicas.max(1) && self.isr.len() < self.replicas.len() {
            // Too few in-sync replicas: nothing new becomes committed (KIP-966).
            return None;
        }
        let mut hw = log_end_offset;
        for r in self.isr.iter().chain(self.pending_additions.iter()) {
            if *r == self.node_id {
                continue;
            }
            match self.followers.get(r) {
                Some(f) if f.log_end_offset >= 0 => hw = hw.min(f.log_end_offset),
                _ => return None,
            }
        }
        (hw > current).then_some(hw)
    }

    /// As leader: whether `replica` may fetch as a follower (NOT_LEADER_OR_FOLLOWER
    /// when this broker does not lead or `replica` is not a follower of it).
    pub fn check_follower(&self, replica: i32) -> Result<(), ErrorCode> {
        if !self.is_leader() || !self.replicas.contains(&replica) || replica == self.node_id {
            return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
        }
        Ok(())
    }

    /// As leader: records a follower's fetch at `fetch_offset` (its log end offset)
    /// while the leader's log ends at `leader_end`. A follower is caught up when it
    /// fetches from the leader's end, or from where the leader's log ended at its
    /// previous fetch (it then had everything as of that fetch, Kafka's rule).
    pub fn record_follower_fetch(&mut self, replica: i32, fetch_offset: i64, leader_end: i64, now_ms: i64) {
        let progress = self.followers.entry(replica).or_insert(FollowerProgress::fresh(now_ms));
        if fetch_offset >= leader_end {
            progress.last_caught_up_ms = now_ms;
        } else if fetch_offset >= progress.leader_end_at_last_fetch && progress.leader_end_at_last_fetch >= 0 {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
        }
        progress.log_end_offset = fetch_offset;
        progress.last_fetch_ms = now_ms;
        progress.leader_end_at_last_fetch = leader_end;
    }

    /// As leader: the ISR change the followers' progress calls for, if any. Followers that
    /// have not caught up for `lag_max_ms` leave; replicas outside the ISR whose log reaches
    /// both the high watermark and the start of this leader's epoch join (and count towards
    /// the high watermark at once, while the change is pending).
    pub fn isr_proposal(&mut self, now_ms: i64, lag_max_ms: i64, high_watermark: i64) -> Option<IsrProposal> {
        if !self.is_leader() {
            return None;
        }
        let mut isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| *r == self.node_id || self.followers.get(r).is_some_and(|f| now_ms - f.last_caught_up_ms <= lag_max_ms))
            .collect();
        let mut added = Vec::new();
        for r in &self.replicas {
            if isr.contains(r) || self.isr.contains(r) {
                continue;
            }
            if let Some(f) = self.followers.get(r) {
                // Kafka expands the ISR on a follower's fetch; a follower that stopped
                // fetching must not be added back from its last known position.
                let fetching = now_ms - f.last_fetch_ms <= RECENT_FETCH_MS;
                if fetching && f.log_end_offset >= high_watermark && f.log_end_offset >= self.epoch_start_offset && now_ms - f.last_caught_up_ms <= lag_max_ms {
                    isr.push(*r);
                    added.push(*r);
                }
            }
        }
        if isr == self.isr {
            return None;
        }
        for r in added {
            if !self.pending_additions.contains(&r) {
                self.pending_additions.push(r);
            }
        }
        Some(IsrProposal { expected_partition_epoch: self.partition_epoch, isr })
    }

    /// Forgets pending ISR additions after a proposal failed.
    pub fn clear_pending_additions(&mut self) {
        self.pending_additions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG_MS: i64 = 10_000;

    fn image(leader: i32, leader_epoch: i32, partition_epoch: i32, replicas: &[i32], isr: &[i32]) -> PartitionImage {
        PartitionImage { replicas: replicas.to_vec(), isr: isr.to_vec(), leader, leader_epoch, partition_epoch, ..Default::default() }
    }

    /// Node 1 leading replicas 1, 2, 3 with the given ISR from log end offset `leo`.
    fn leader_of_three(isr: &[i32], leo: i64) -> ReplicationState {
        let mut st = ReplicationState::new(1, leo);
        assert_eq!(st.apply_metadata(&image(1, 5, 7, &[1, 2, 3], isr), leo, 0), RoleChange::BecameLeader { leader_epoch: 5, start_offset: leo });
        st
    }

    #[test]
    fn an_older_image_is_ignored() {
        let mut st = leader_of_three(&[1, 2, 3], 10);
        // Node 2 took over in epoch 6; then an image of epoch 5 arrives late.
        assert_eq!(st.apply_metadata(&image(2, 6, 8, &[1, 2, 3], &[2, 3]), 10, 0), RoleChange::Updated);
        assert_eq!(st.apply_metadata(&image(1, 5, 7, &[1, 2, 3], &[1, 2, 3]), 10, 0), RoleChange::Stale);
        assert_eq!((st.leader(), st.leader_epoch()), (2, 6));
        assert!(!st.is_leader());
        // Same leader epoch, older partition epoch (an ISR change already overtaken).
        assert_eq!(st.apply_metadata(&image(2, 6, 9, &[1, 2, 3], &[1, 2, 3]), 10, 0), RoleChange::Updated);
        assert_eq!(st.apply_metadata(&image(2, 6, 8, &[1, 2, 3], &[2, 3]), 10, 0), RoleChange::Stale);
        assert_eq!(st.isr_len(), 3);
    }

    #[test]
    fn high_watermark_is_the_minimum_over_the_isr() {
        let mut st = leader_of_three(&[1, 2, 3], 0);
        // Nobody fetched yet: the followers' ends are unknown, nothing is committed.
        assert_eq!(st.high_watermark(10, 0, 1), None);
        st.record_follower_fetch(2, 6, 10, 1);
        assert_eq!(st.high_watermark(10, 0, 1), None, "follower 3 has not fetched");
        st.record_follower_fetch(3, 4, 10, 1);
        assert_eq!(st.high_watermark(10, 0, 1), Some(4));
        st.record_follower_fetch(3, 10, 10, 2);
        assert_eq!(st.high_watermark(10, 4, 1), Some(6));
    }

    #[test]
    fn high_watermark_never_moves_back() {
        let mut st = leader_of_three(&[1, 2], 0);
        st.record_follower_fetch(2, 8, 10, 1);
        assert_eq!(st.high_watermark(10, 0, 1), Some(8));
        // A follower fetching from lower down (it truncated) does not lower it.
        st.record_follower_fetch(2, 3, 10, 2);
        assert_eq!(st.high_watermark(10, 8, 1), None);
        // Neither does an equal value count as a move.
        st.record_follower_fetch(2, 8, 10, 3);
        assert_eq!(st.high_watermark(10, 8, 1), None);
    }

    #[test]
    fn high_watermark_holds_while_the_isr_is_below_min_insync() {
        let mut st = leader_of_three(&[1, 2], 0);
        st.record_follower_fetch(2, 10, 10, 1);
        assert_eq!(st.high_watermark(10, 0, 3), None, "ISR of 2 < min.insync.replicas 3");
        assert_eq!(st.high_watermark(10, 0, 2), Some(10));
        // With every replica in the ISR, a min.insync.replicas above the replica count
        // does not stop commits.
        let mut all = leader_of_three(&[1, 2, 3], 0);
        all.record_follower_fetch(2, 10, 10, 1);
        all.record_follower_fetch(3, 10, 10, 1);
        assert_eq!(all.high_watermark(10, 0, 5), Some(10));
    }

    #[test]
    fn a_lone_leader_commits_its_log_end() {
        let mut st = ReplicationState::new(1, 0);
        st.apply_metadata(&image(1, 0, 0, &[1], &[1]), 0, 0);
        assert_eq!(st.high_watermark(3, 0, 1), Some(3));
        assert_eq!(st.high_watermark(3, 3, 1), None);
    }

    #[test]
    fn a_follower_or_a_replica_without_role_computes_no_high_watermark() {
        let mut st = ReplicationState::new(2, 0);
        assert_eq!(st.high_watermark(5, 0, 1), None);
        st.apply_metadata(&image(1, 5, 7, &[1, 2, 3], &[1, 2, 3]), 0, 0);
        assert!(!st.is_leader());
        assert_eq!(st.high_watermark(5, 0, 1), None);
        assert_eq!(st.followed_leader(), Some((1, 5)));
        assert_eq!(st.check_follower(3), Err(ErrorCode::NOT_LEADER_OR_FOLLOWER));
        assert_eq!(st.isr_proposal(0, LAG_MS, 0), None);
        assert_eq!(st.leader_epoch_start_offset(), -1);
    }

    #[test]
    fn only_followers_of_this_leader_may_fetch() {
        let st = leader_of_three(&[1, 2, 3], 0);
        assert_eq!(st.check_follower(2), Ok(()));
        assert_eq!(st.check_follower(1), Err(ErrorCode::NOT_LEADER_OR_FOLLOWER), "the leader itself");
        assert_eq!(st.check_follower(4), Err(ErrorCode::NOT_LEADER_OR_FOLLOWER), "not a replica");
        assert_eq!(st.followed_leader(), None);
    }

    #[test]
    fn a_follower_lagging_past_the_lag_time_leaves_the_isr() {
        let mut st = leader_of_three(&[1, 2, 3], 0);
        st.record_follower_fetch(2, 10, 10, 1_000);
        st.record_follower_fetch(3, 4, 10, 1_000);
        // Within the lag time nobody leaves (both counted as caught up at the start).
        assert_eq!(st.isr_proposal(LAG_MS, LAG_MS, 4), None);
        // Follower 2 keeps up, follower 3 stays behind the leader's end.
        st.record_follower_fetch(2, 12, 12, LAG_MS);
        st.record_follower_fetch(3, 5, 12, LAG_MS);
        let proposal = st.isr_proposal(LAG_MS + 1, LAG_MS, 5).expect("follower 3 leaves");
        assert_eq!(proposal, IsrProposal { expected_partition_epoch: 7, isr: vec![1, 2] });
    }

    #[test]
    fn a_follower_fetching_from_the_leaders_previous_end_counts_as_caught_up() {
        let mut st = leader_of_three(&[1, 2], 0);
        st.record_follower_fetch(2, 5, 10, 1_000);
        // Its next fetch starts at 10, where the leader ended at its previous fetch,
        // though the leader has moved on to 20: it was caught up as of 1 000.
        st.record_follower_fetch(2, 10, 20, LAG_MS + 900);
        assert_eq!(st.isr_proposal(LAG_MS + 900, LAG_MS, 10), None);
        assert_eq!(st.isr_proposal(LAG_MS + 1_001, LAG_MS, 10).map(|p| p.isr), Some(vec![1]));
    }

    #[test]
    fn a_caught_up_replica_joins_and_counts_while_pending() {
        let mut st = leader_of_three(&[1, 2], 10);
        st.record_follower_fetch(2, 20, 20, 100);
        st.record_follower_fetch(3, 20, 20, 100);
        let proposal = st.isr_proposal(200, LAG_MS, 20).expect("replica 3 joins");
        assert_eq!(proposal.isr, vec![1, 2, 3]);
        // Maximal ISR: while the addition is pending, replica 3 holds the high watermark.
        st.record_follower_fetch(2, 30, 30, 300);
        assert_eq!(st.high_watermark(30, 20, 1), None, "replica 3 is at 20");
        st.record_follower_fetch(3, 25, 30, 300);
        assert_eq!(st.high_watermark(30, 20, 1), Some(25));
        // The same proposal is not repeated as a new pending entry.
        assert_eq!(st.isr_proposal(300, LAG_MS, 25).map(|p| p.isr), Some(vec![1, 2, 3]));
        assert_eq!(st.pending_additions, vec![3]);
        // A failed proposal forgets it.
        st.clear_pending_additions();
        assert_eq!(st.high_watermark(30, 20, 1), Some(30));
        // The committed change (a new partition epoch) replaces the pending one.
        st.isr_proposal(300, LAG_MS, 25);
        assert_eq!(st.apply_metadata(&image(1, 5, 8, &[1, 2, 3], &[1, 2, 3]), 30, 400), RoleChange::Updated);
        assert!(st.pending_additions.is_empty());
        assert_eq!(st.isr_len(), 3);
    }

    #[test]
    fn a_replica_joins_only_from_the_epoch_start_and_the_high_watermark() {
        // Leadership began at 50: a follower at 40 lacks this epoch's first records.
        let mut st = leader_of_three(&[1, 2], 50);
        st.record_follower_fetch(3, 40, 50, 100);
        assert_eq!(st.isr_proposal(100, LAG_MS, 30), None, "below the epoch start");
        st.record_follower_fetch(3, 50, 60, 200);
        assert_eq!(st.isr_proposal(200, LAG_MS, 55), None, "below the high watermark");
        assert_eq!(st.isr_proposal(200, LAG_MS, 50).map(|p| p.isr), Some(vec![1, 2, 3]));
        assert_eq!(st.leader_epoch_start_offset(), 50);
    }

    #[test]
    fn a_replica_that_stopped_fetching_does_not_rejoin() {
        let mut st = leader_of_three(&[1, 2], 0);
        st.record_follower_fetch(3, 0, 0, 100);
        assert_eq!(st.isr_proposal(100 + RECENT_FETCH_MS + 1, i64::MAX / 2, 0), None);
    }

    #[test]
    fn metadata_role_changes() {
        let mut st = ReplicationState::new(1, 0);
        assert_eq!(st.apply_metadata(&image(2, 3, 3, &[1, 2], &[1, 2]), 7, 0), RoleChange::Updated);
        assert!(!st.is_leader());
        // The same entry again changes nothing.
        assert_eq!(st.apply_metadata(&image(2, 3, 3, &[1, 2], &[1, 2]), 7, 0), RoleChange::Unchanged);
        // Leadership moves here: the epoch begins at the current log end.
        assert_eq!(st.apply_metadata(&image(1, 4, 4, &[1, 2], &[1, 2]), 9, 0), RoleChange::BecameLeader { leader_epoch: 4, start_offset: 9 });
        // An ISR change within the same leader epoch keeps the epoch start and the progress.
        st.record_follower_fetch(2, 9, 9, 10);
        assert_eq!(st.apply_metadata(&image(1, 4, 5, &[1, 2, 3], &[1, 2]), 12, 20), RoleChange::Updated);
        assert_eq!(st.leader_epoch_start_offset(), 9);
        assert_eq!(st.high_watermark(12, 0, 1), Some(9), "follower 2's progress survived");
        assert!(st.followers.contains_key(&3), "the new replica is tracked");
        // Losing leadership forgets the followers.
        assert_eq!(st.apply_metadata(&image(2, 5, 6, &[1, 2, 3], &[1, 2]), 12, 30), RoleChange::Updated);
        assert!(st.followers.is_empty());
        assert_eq!(st.followed_leader(), Some((2, 5)));
        // A replica removed from the assignment follows nobody.
        st.apply_metadata(&image(2, 5, 7, &[2, 3], &[2, 3]), 12, 40);
        assert_eq!(st.followed_leader(), None);
    }
}
