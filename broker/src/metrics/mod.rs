//! Counting for `/metrics`: what the data path counts, cheaply, and what a scrape computes.
//!
//! Two kinds of series:
//! - **Counted** as things happen, in atomics that the hot path only ever `fetch_add`s with
//!   `Relaxed` ordering — no lock, no allocation, no map lookup per request:
//!   [`BrokerMetrics`] (one per broker, on [`crate::server::Broker`]: requests and their time
//!   per API in fixed arrays indexed by API key, totals of bytes in/out, connections per
//!   listener, purgatory sizes, ISR changes, transactions, authentications) and
//!   [`PartitionCounters`] (one per hosted partition, on [`crate::replica::Partition`]: bytes
//!   and messages in, bytes out; summed per topic at scrape time).
//! - **Computed** at scrape time from state that exists anyway ([`scrape`]): partition,
//!   leader and under-replicated counts, offline partitions, log size, offsets, consumer
//!   lag, the metadata quorum.
//!
//! Series names follow what the common Kafka JMX-exporter rules and kafka-exporter produce
//! (docs/metrics.md lists each, with which broker reports it so a cluster-wide sum does not
//! double count). [`encode`] writes the Prometheus text exposition format.

pub mod encode;
mod histogram;
pub mod requests;
pub mod scrape;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use histogram::Histogram;

/// Request-time histogram bucket bounds in milliseconds (Prometheus `le`), fixed so the
/// buckets are plain atomics.
pub const REQUEST_TIME_BUCKETS_MS: [f64; 14] = [0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];

/// One slot per API key that can be counted (Kafka's client APIs are 0..=75).
pub const API_SLOTS: usize = 96;

/// Per-API request counters.
pub struct ApiMetrics {
    pub requests: AtomicU64,
    /// Time from a complete request frame to its response being ready (`TotalTimeMs` minus
    /// the socket write), excluding a Fetch's intended long-poll wait.
    pub total_time_ms: Histogram,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics { requests: AtomicU64::new(0), total_time_ms: Histogram::new(&REQUEST_TIME_BUCKETS_MS) }
    }
}

/// Counters of one hosted partition (this replica). Summed per topic by a scrape.
#[derive(Default, Debug)]
pub struct PartitionCounters {
    /// Bytes of record batches appended from producers (as leader).
    pub bytes_in: AtomicU64,
    /// Records appended from producers (as leader).
    pub messages_in: AtomicU64,
    /// Bytes of record batches sent to consumers (not to follower replicas).
    pub bytes_out: AtomicU64,
}

/// An up/down gauge kept by a guard: created on entry, decremented on drop.
#[derive(Default, Debug)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }

    /// Counts one more until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>) -> GaugeGuard {
        self.0.fetch_add(1, Relaxed);
        GaugeGuard(self.clone())
    }
}

/// Decrements its [`Gauge`] when dropped.
#[derive(Debug)]
pub struct GaugeGuard(Arc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Relaxed);
    }
}

/// A counter with one label value, kept in a small list that is only locked when a new
/// label value appears or on a scrape (SASL mechanisms, listeners: a handful).
#[derive(Default)]
pub struct LabeledCounters {
    entries: Mutex<Vec<(String, Arc<AtomicU64>)>>,
}

impl LabeledCounters {
    /// The counter for `label` (created at 0).
    pub fn counter(&self, label: &str) -> Arc<AtomicU64> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = entries.iter().find(|(l, _)| l == label) {
            return c.clone();
        }
        let c = Arc::new(AtomicU64::new(0));
        entries.push((label.to_string(), c.clone()));
        c
    }

    pub fn add(&self, label: &str, n: u64) {
        self.counter(label).fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().map(|(l, c)| (l.clone(), c.load(Relaxed))).collect()
    }
}

/// Everything one broker counts as it runs.
pub struct BrokerMetrics {
    apis: Box<[ApiMetrics]>,
    /// All-topics totals (Kafka's BrokerTopicMetrics without a topic), kept apart from the
    /// per-partition counters so they survive a partition moving away or being deleted.
    pub bytes_in: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Bytes sent to follower replicas (Kafka's ReplicationBytesOutPerSec).
    pub replication_bytes_out: AtomicU64,
    /// Open connections per Kafka listener.
    connections: Mutex<Vec<(String, Arc<Gauge>)>>,
    /// acks=all produce requests waiting for replication.
    pub produce_purgatory: Arc<Gauge>,
    /// Fetch requests long-polling for data.
    pub fetch_purgatory: Arc<Gauge>,
    pub isr_shrinks: AtomicU64,
    pub isr_expands: AtomicU64,
    pub txn_commits: AtomicU64,
    pub txn_aborts: AtomicU64,
    /// Successful / failed SASL authentications by mechanism.
    pub auth_successes: LabeledCounters,
    pub auth_failures: LabeledCounters,
    /// Requests slower than `klamm.request.slow.threshold.ms`.
    pub slow_requests: AtomicU64,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        BrokerMetrics {
            apis: (0..API_SLOTS).map(|_| ApiMetrics::default()).collect(),
            bytes_in: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            replication_bytes_out: AtomicU64::new(0),
            connections: Mutex::new(Vec::new()),
            produce_purgatory: Arc::default(),
            fetch_purgatory: Arc::default(),
            isr_shrinks: AtomicU64::new(0),
            isr_expands: AtomicU64::new(0),
            txn_commits: AtomicU64::new(0),
            txn_aborts: AtomicU64::new(0),
            auth_successes: LabeledCounters::default(),
            auth_failures: LabeledCounters::default(),
            slow_requests: AtomicU64::new(0),
        }
    }
}

impl BrokerMetrics {
    /// One request of API `key` took `elapsed` (its intended wait already taken out).
    #[inline]
    pub fn request_done(&self, key: i16, elapsed: Duration) {
        if let Some(api) = self.apis.get(key as usize) {
            api.requests.fetch_add(1, Relaxed);
            api.total_time_ms.observe(elapsed.as_secs_f64() * 1000.0);
        }
    }

    /// The counters of API `key` (None beyond the counted range).
    pub fn api(&self, key: i16) -> Option<&ApiMetrics> {
        self.apis.get(usize::try_from(key).ok()?)
    }

    /// Records appended from a producer to `partition` (as leader).
    #[inline]
    pub fn produced(&self, partition: &PartitionCounters, bytes: u64, messages: u64) {
        partition.bytes_in.fetch_add(bytes, Relaxed);
        partition.messages_in.fetch_add(messages, Relaxed);
        self.bytes_in.fetch_add(bytes, Relaxed);
        self.messages_in.fetch_add(messages, Relaxed);
    }

    /// Record bytes of `partition` sent in a fetch answer (`follower`: to a replica).
    #[inline]
    pub fn fetched(&self, partition: &PartitionCounters, bytes: u64, follower: bool) {
        if follower {
            self.replication_bytes_out.fetch_add(bytes, Relaxed);
        } else {
            partition.bytes_out.fetch_add(bytes, Relaxed);
            self.bytes_out.fetch_add(bytes, Relaxed);
        }
    }

    /// The transaction coordinator completed a transaction: its markers are
    /// written and CompleteCommit / CompleteAbort is durable.
    #[inline]
    pub fn transaction_completed(&self, commit: bool) {
        let counter = if commit { &self.txn_commits } else { &self.txn_aborts };
        counter.fetch_add(1, Relaxed);
    }

    /// The open-connections gauge of Kafka listener `listener` (looked up once per listener).
    pub fn connections(&self, listener: &str) -> Arc<Gauge> {
        let mut all = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, g)) = all.iter().find(|(l, _)| l == listener) {
            return g.clone();
        }
        let g = Arc::<Gauge>::default();
        all.push((listener.to_string(), g.clone()));
        g
    }

    pub fn connections_snapshot(&self) -> Vec<(String, i64)> {
        let all = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().map(|(l, g)| (l.clone(), g.get())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let m = BrokerMetrics::default();
        let p = PartitionCounters::default();
        m.produced(&p, 100, 3);
        m.produced(&p, 50, 1);
        m.fetched(&p, 70, false);
        m.fetched(&p, 500, true);
        assert_eq!(p.bytes_in.load(Relaxed), 150);
        assert_eq!(p.messages_in.load(Relaxed), 4);
        assert_eq!(p.bytes_out.load(Relaxed), 70);
        assert_eq!(m.bytes_in.load(Relaxed), 150);
        assert_eq!(m.bytes_out.load(Relaxed), 70);
        assert_eq!(m.replication_bytes_out.load(Relaxed), 500);
        m.request_done(0, Duration::from_millis(3));
        m.request_done(0, Duration::from_millis(30));
        m.request_done(i16::MAX, Duration::from_millis(1)); // out of range: ignored, no panic
        m.request_done(-1, Duration::from_millis(1));
        assert_eq!(m.api(0).unwrap().requests.load(Relaxed), 2);
        assert_eq!(m.api(0).unwrap().total_time_ms.snapshot().count, 2);
    }

    #[test]
    fn gauges_follow_their_guards() {
        let m = BrokerMetrics::default();
        let g = m.connections("PLAINTEXT");
        let a = g.enter();
        let b = m.connections("PLAINTEXT").enter();
        assert_eq!(m.connections_snapshot(), vec![("PLAINTEXT".to_string(), 2)]);
        drop(a);
        drop(b);
        assert_eq!(g.get(), 0);
        m.auth_failures.add("PLAIN", 1);
        m.auth_failures.add("PLAIN", 2);
        assert_eq!(m.auth_failures.snapshot(), vec![("PLAIN".to_string(), 3)]);
    }
}
