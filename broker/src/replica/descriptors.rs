//! How many more partitions this process can open without running out of
//! file descriptors.
//!
//! Each open partition holds descriptors (its segments' `.log` files). If
//! opening partitions used up the open-file limit, the node could no longer
//! accept a connection, open a segment at a roll, or write a checkpoint:
//! every partition would fail, not only the ones that did not fit. So
//! opening stops while `reserve` descriptors are still free; the partitions
//! that did not fit are reported offline and retried (`ReplicaManager`), and
//! they open once the limit is raised or other partitions are deleted.
//!
//! The count of descriptors in use is read from `/proc/self/fd` (once per
//! reconcile pass, and again for each partition only when close to the
//! limit), so the common case, far below the limit, costs nothing per open.

use rustix::process::{getrlimit, Resource};

/// Descriptors kept free for connections and the broker's own files.
const MIN_RESERVE: u64 = 64;
const MAX_RESERVE: u64 = 1024;

pub struct DescriptorBudget {
    /// The soft limit; `None` if unlimited or unknown.
    limit: Option<u64>,
    reserve: u64,
    /// Descriptors in use: measured, plus one per partition planned since.
    used: u64,
    /// Partitions planned for opening since the budget was measured.
    planned: u64,
}

impl DescriptorBudget {
    /// The budget as of now.
    pub fn measure() -> DescriptorBudget {
        let limit = getrlimit(Resource::Nofile).current;
        DescriptorBudget::new(limit, count_open_descriptors())
    }

    fn new(limit: Option<u64>, used: Option<u64>) -> DescriptorBudget {
        // Without a count of what is in use, no budget can be kept.
        let limit = limit.filter(|_| used.is_some());
        let reserve = limit.map_or(MIN_RESERVE, |l| (l / 20).clamp(MIN_RESERVE, MAX_RESERVE));
        DescriptorBudget { limit, reserve, used: used.unwrap_or(0), planned: 0 }
    }

    /// True if a partition may be opened with `reserve` descriptors left
    /// over. Near the limit the estimate is replaced by a fresh count.
    pub fn allows_another_partition(&mut self) -> bool {
        self.allows_with(count_open_descriptors)
    }

    fn allows_with(&mut self, count: impl FnOnce() -> Option<u64>) -> bool {
        let Some(limit) = self.limit else { return true };
        if self.used + 2 * self.reserve >= limit {
            if let Some(now) = count() {
                // The planned partitions are not open yet: a fresh count
                // does not see them.
                self.used = now + self.planned;
            }
        }
        self.used + 1 + self.reserve <= limit
    }

    /// Counts a partition that will be opened (at least its active
    /// segment's descriptor); the opens of one pass run after planning.
    pub fn plan_partition(&mut self) {
        self.used += 1;
        self.planned += 1;
    }

    pub fn reserve(&self) -> u64 {
        self.reserve
    }
}

fn count_open_descriptors() -> Option<u64> {
    // The directory handle itself is one of the entries; close enough.
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_or_unknown_allows_everything() {
        let mut b = DescriptorBudget::new(None, Some(10));
        assert!((0..10_000).all(|_| {
            b.plan_partition();
            b.allows_with(|| unreachable!())
        }));
        let mut b = DescriptorBudget::new(Some(100), None);
        assert!(b.allows_with(|| None));
    }

    #[test]
    fn stops_with_the_reserve_left_and_recounts_near_the_limit() {
        // Limit 200: reserve 64. 40 in use: 95 more fit (40 + 95 + 1 + 64 = 200).
        let mut b = DescriptorBudget::new(Some(200), Some(40));
        assert_eq!(b.reserve(), MIN_RESERVE);
        let mut opened = 0;
        while b.allows_with(|| None) {
            b.plan_partition();
            opened += 1;
            assert!(opened <= 200, "never stops");
        }
        assert_eq!(opened, 96);
        // Near the limit a fresh count decides, plus the planned partitions (not
        // open yet, so the count cannot see them): 10 more descriptors in use
        // elsewhere (connections) leave no room.
        assert!(!b.allows_with(|| Some(50)));
        // Partitions were deleted meanwhile: 20 in use + 96 planned leaves room.
        assert!(b.allows_with(|| Some(20)));
        // Far from the limit: no count is taken.
        let mut far = DescriptorBudget::new(Some(10_000), Some(40));
        assert!(far.allows_with(|| unreachable!()));
    }

    #[test]
    fn reserve_grows_with_the_limit_within_bounds() {
        assert_eq!(DescriptorBudget::new(Some(20_000), Some(0)).reserve(), 1000);
        assert_eq!(DescriptorBudget::new(Some(1 << 20), Some(0)).reserve(), MAX_RESERVE);
        assert_eq!(DescriptorBudget::new(Some(1024), Some(0)).reserve(), MIN_RESERVE);
    }

    #[test]
    fn measures_this_process() {
        let b = DescriptorBudget::measure();
        assert!(b.used > 0, "stdin/stdout/stderr at least");
    }
}
