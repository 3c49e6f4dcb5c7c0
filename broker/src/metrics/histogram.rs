//! A histogram with fixed bucket bounds in atomics: `observe` is a bucket search over a
//! handful of bounds plus two relaxed adds, no lock and no allocation.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Cumulative-on-read histogram: each observation lands in one bucket (the first bound it
/// does not exceed, or the overflow bucket); a snapshot accumulates them as Prometheus wants.
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus the overflow (`+Inf`) bucket.
    counts: Box<[AtomicU64]>,
    /// Sum of observations in micro-units (value × 1000), so it fits an integer atomic.
    sum_micros: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound, cumulative count), the last with `f64::INFINITY`.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum_micros: AtomicU64::new(0) }
    }

    #[inline]
    pub fn observe(&self, value: f64) {
        let value = if value.is_finite() && value > 0.0 { value } else { 0.0 };
        let i = self.bounds.iter().position(|b| value <= *b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((value * 1000.0) as u64, Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Relaxed);
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), cumulative));
        }
        HistogramSnapshot { buckets, sum: self.sum_micros.load(Relaxed) as f64 / 1000.0, count: cumulative }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 5.0, 50.0, f64::NAN, -3.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        // 0.5, 1.0, NaN->0, -3->0 under 1; 5 under 10; 50 overflow.
        assert_eq!(s.buckets, vec![(1.0, 4), (10.0, 5), (f64::INFINITY, 6)]);
        assert_eq!(s.count, 6);
        assert!((s.sum - 56.5).abs() < 1e-9, "{}", s.sum);
    }
}
