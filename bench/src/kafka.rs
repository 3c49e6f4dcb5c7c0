//! The librdkafka-driven phases: topic set-up, produce, consume.

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::hist::Histogram;
use crate::json::{Json, JsonExt};
use crate::sys::{CpuMark, CpuUsage};

/// librdkafka log lines and global errors: printed to stderr (the first few,
/// then only counted) and remembered for the report.
#[derive(Default)]
pub struct ClientEvents {
    count: AtomicU64,
    first: Mutex<Option<String>>,
    label: String,
}

const PRINTED_CLIENT_EVENTS: u64 = 20;

impl ClientEvents {
    fn new(label: &str) -> Self {
        ClientEvents {
            label: label.to_string(),
            ..Default::default()
        }
    }

    fn note(&self, what: String) {
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        if n < PRINTED_CLIENT_EVENTS {
            eprintln!("[{}] {what}", self.label);
        } else if n == PRINTED_CLIENT_EVENTS {
            eprintln!("[{}] (further client errors/warnings only counted)", self.label);
        }
        let mut first = self.first.lock().unwrap();
        if first.is_none() {
            *first = Some(what);
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn first(&self) -> Option<String> {
        self.first.lock().unwrap().clone()
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        if matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        ) {
            self.note(format!("librdkafka {level:?} {fac}: {msg}"));
        }
    }
}

/// Context for the admin client and consumer.
pub struct BenchContext {
    pub events: ClientEvents,
}

impl BenchContext {
    pub fn new(label: &str) -> Self {
        BenchContext {
            events: ClientEvents::new(label),
        }
    }
}

impl ClientContext for BenchContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        self.events.log(level, fac, msg);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.events.note(format!("client error: {error}: {reason}"));
    }
}

impl ConsumerContext for BenchContext {}

impl ProducerContext for BenchContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Delivery-report bookkeeping for the produce phase.
pub struct DeliveryStats {
    pub hist: Histogram,
    pub acked: u64,
    pub acked_bytes: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
    /// Nanoseconds since the phase epoch of the last successful delivery.
    pub last_ack_ns: u64,
}

/// Producer context: each record's delivery opaque is its enqueue time in
/// nanoseconds since `epoch`; the delivery callback turns that into a latency.
pub struct LatencyContext {
    epoch: Instant,
    pub stats: Mutex<DeliveryStats>,
    pub events: ClientEvents,
}

impl ClientContext for LatencyContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        self.events.log(level, fac, msg);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.events.note(format!("client error: {error}: {reason}"));
    }
}

impl ProducerContext for LatencyContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let mut s = self.stats.lock().unwrap();
        match result {
            Ok(m) => {
                s.acked += 1;
                s.acked_bytes += m.payload_len() as u64;
                s.hist.record(now.saturating_sub(sent_ns as u64));
                s.last_ack_ns = now;
            }
            Err((e, _)) => {
                s.failed += 1;
                if s.first_failure.is_none() {
                    s.first_failure = Some(e.to_string());
                }
            }
        }
    }
}

/// A client config that hands librdkafka warnings and errors to our context
/// (rdkafka derives the level from the `log` crate, which has no logger here).
fn new_config() -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set_log_level(RDKafkaLogLevel::Warning);
    cfg
}

fn apply_extra(cfg: &mut ClientConfig, extra: &[(String, String)]) {
    for (k, v) in extra {
        cfg.set(k, v);
    }
}

/// Create `topic` with `partitions` partitions, `replication_factor` replicas and
/// `configs`, and wait until every partition has a leader in metadata. If
/// CreateTopics fails we fall back on broker-side auto-creation through the
/// metadata request.
pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(String, String)],
    leader_timeout: Duration,
) -> Result<()> {
    let timeout = leader_timeout;
    let mut cfg = new_config();
    cfg.set("bootstrap.servers", bootstrap);
    let admin: AdminClient<BenchContext> = cfg
        .create_with_context(BenchContext::new("admin"))
        .context("creating admin client")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = timeout.min(Duration::from_secs(10));
    let opts = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication_factor));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let created = rt.block_on(async {
        tokio::time::timeout(timeout + Duration::from_secs(1), admin.create_topics(&[new], &opts))
            .await
    });
    match created {
        Ok(Ok(results)) => {
            for r in results {
                match r {
                    Ok(_) => {}
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((name, code)) => {
                        eprintln!("warning: CreateTopics {name}: {code}; relying on auto-creation")
                    }
                }
            }
        }
        Ok(Err(e)) => eprintln!("warning: CreateTopics failed: {e}; relying on auto-creation"),
        Err(_) => eprintln!("warning: CreateTopics timed out; relying on auto-creation"),
    }
    drop(admin);
    let timeout = leader_timeout;

    // A producer's metadata request may auto-create the topic when the admin
    // API is unavailable.
    let mut pcfg = new_config();
    pcfg.set("bootstrap.servers", bootstrap)
        .set("allow.auto.create.topics", "true");
    let probe: BaseProducer<BenchContext> = pcfg
        .create_with_context(BenchContext::new("metadata"))
        .context("creating metadata client")?;
    wait_for_leaders(&probe, topic, partitions, timeout)
}

fn wait_for_leaders<C: ClientContext + ProducerContext>(
    client: &BaseProducer<C>,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no metadata");
    while Instant::now() < deadline {
        match client
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(2))
        {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    let with_leader = t.partitions().iter().filter(|p| p.leader() >= 0).count();
                    if t.error().is_none() && with_leader as i32 >= partitions {
                        return Ok(());
                    }
                    last = format!(
                        "topic error {:?}, {} of {} partitions have a leader",
                        t.error(),
                        with_leader,
                        partitions
                    );
                } else {
                    last = "topic missing from metadata".into();
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("topic {topic} not ready within {timeout:?}: {last}")
}

#[derive(Clone)]
pub struct ProduceSettings {
    pub bootstrap: String,
    pub topic: String,
    pub acks: String,
    pub record_size: usize,
    pub partitions: i32,
    pub linger_ms: u64,
    pub batch_size: u64,
    pub batch_num_messages: u64,
    pub compression: String,
    /// What the record values look like (matters for compression).
    pub payload: PayloadKind,
    /// Stop after this many payload bytes ...
    pub total_bytes: u64,
    /// ... or after this long, if set (then `total_bytes` is ignored) ...
    pub duration: Option<Duration>,
    /// ... and in any case stop sending after this long.
    pub max: Duration,
    /// Extra time to wait for outstanding acks after sending stops.
    pub drain: Duration,
    /// Optional throttle, payload MB/s (1e6).
    pub rate_mbps: Option<f64>,
    pub extra: Vec<(String, String)>,
    pub broker_pid: Option<u32>,
    /// Transactional produce: every record inside a transaction, committed
    /// this often (acks=all and idempotence, as transactions require).
    pub txn_commit_every: Option<Duration>,
}

impl ProduceSettings {
    pub fn librdkafka_config(&self) -> Vec<(String, String)> {
        let timeout_ms = (self.max + self.drain).as_millis().max(1000);
        let mut v: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), self.bootstrap.clone()),
            ("acks".into(), self.acks.clone()),
            ("linger.ms".into(), self.linger_ms.to_string()),
            ("batch.size".into(), self.batch_size.to_string()),
            ("batch.num.messages".into(), self.batch_num_messages.to_string()),
            ("compression.type".into(), self.compression.clone()),
            // Undelivered records fail within the phase bound rather than
            // after librdkafka's default 5 minutes.
            ("message.timeout.ms".into(), timeout_ms.to_string()),
        ];
        if self.txn_commit_every.is_some() {
            let id = format!("klamm-bench-{}-{}", std::process::id(), self.topic);
            v.push(("transactional.id".into(), id));
            v.push(("enable.idempotence".into(), "true".into()));
            // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
            v.push(("transaction.timeout.ms".into(), timeout_ms.max(60_000).to_string()));
        }
        v.extend(self.extra.iter().cloned());
        v
    }
}

pub struct ProduceResult {
    pub settings: ProduceSettings,
    pub records_sent: u64,
    pub records_acked: u64,
    pub bytes_acked: u64,
    pub records_failed: u64,
    pub records_unacked: u64,
    pub first_failure: Option<String>,
    pub client_events: u64,
    pub first_client_event: Option<String>,
    pub stopped_by: &'static str,
    /// Transactions committed (transactional produce).
    pub transactions: u64,
    pub send_seconds: f64,
    /// First send to last successful acknowledgement.
    pub seconds: f64,
    pub hist: Histogram,
    pub broker_cpu_s: Option<f64>,
    pub client_cpu_s: Option<f64>,
    pub usage: CpuUsage,
}

impl ProduceResult {
    pub fn mbps(&self) -> f64 {
        self.bytes_acked as f64 / 1e6 / self.seconds.max(1e-9)
    }
    pub fn records_per_s(&self) -> f64 {
        self.records_acked as f64 / self.seconds.max(1e-9)
    }
    pub fn broker_cpu_s_per_gb(&self) -> Option<f64> {
        let gb = self.bytes_acked as f64 / 1e9;
        self.broker_cpu_s.filter(|_| gb > 0.0).map(|c| c / gb)
    }
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.hist.quantile(q) as f64 / 1e6
    }

    pub fn to_json(&self, phase: &str) -> Json {
        let s = &self.settings;
        let cfg: Vec<Json> = s
            .librdkafka_config()
            .into_iter()
            .map(|(k, v)| Json::obj().with("key", k).with("value", v))
            .collect();
        Json::obj()
            .with("phase", phase)
            .with("topic", s.topic.as_str())
            .with("acks", s.acks.as_str())
            .with("record_size", s.record_size)
            .with("partitions", s.partitions)
            .with("librdkafka_config", Json::Array(cfg))
            .with("requested_bytes", if s.duration.is_some() { None } else { Some(s.total_bytes) })
            .with("requested_duration_s", s.duration.map(|d| d.as_secs_f64()))
            .with("max_seconds", s.max.as_secs_f64())
            .with("rate_limit_mb_per_s", s.rate_mbps)
            .with("stopped_by", self.stopped_by)
            .with("transaction_commit_ms", s.txn_commit_every.map(|d| d.as_millis() as u64))
            .with("transactions", self.transactions)
            .with("records_sent", self.records_sent)
            .with("records_acked", self.records_acked)
            .with("records_failed", self.records_failed)
            .with("records_unacked_at_deadline", self.records_unacked)
            .with("first_delivery_error", self.first_failure.clone())
            .with("client_error_events", self.client_events)
            .with("first_client_error_event", self.first_client_event.clone())
            .with("bytes_acked", self.bytes_acked)
            .with("send_seconds", self.send_seconds)
            .with("seconds", self.seconds)
            .with("mb_per_s", self.mbps())
            .with("records_per_s", self.records_per_s())
            .with(
                "latency_ms",
                Json::obj()
                    .with("count", self.hist.count())
                    .with("mean", self.hist.mean() / 1e6)
                    .with("p50", self.latency_ms(0.50))
                    .with("p99", self.latency_ms(0.99))
                    .with("p999", self.latency_ms(0.999))
                    .with("max", self.hist.max() as f64 / 1e6),
            )
            .with("broker_cpu_seconds", self.broker_cpu_s)
            .with("broker_cpu_seconds_per_gb", self.broker_cpu_s_per_gb())
            .with("client_cpu_seconds", self.client_cpu_s)
            .with("cpu", self.usage.to_json())
    }
}

/// Serve pending delivery reports, then sleep briefly.
///
/// Deliberately not `poll(timeout)`: rdkafka converts the remaining time of a
/// poll deadline to whole milliseconds, so the last sub-millisecond of every
/// `poll(d)` is a busy loop — `poll(1ms)` spins for the whole millisecond. On
/// a 2-core machine that spinning steals CPU from the broker. `poll(ZERO)`
/// serves at most one event (one event carries a whole batch of delivery
/// reports) without blocking.
fn wait_for_deliveries(producer: &BaseProducer<LatencyContext>) {
    for _ in 0..16 {
        producer.poll(Duration::ZERO);
    }
    std::thread::sleep(Duration::from_micros(500));
}

/// What record values contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PayloadKind {
    /// Pseudo-random bytes: incompressible, the worst case for codecs.
    Random,
    /// JSON order events with varying ids and amounts, compressible like
    /// real application records (a codec typically gets 3-6x on it).
    Json,
}

/// Payload source: a buffer of `record_size + 4096` bytes; record i uses a
/// window starting at a varying offset so consecutive records differ.
fn payload_buffer(record_size: usize, kind: PayloadKind) -> Vec<u8> {
    let len = record_size + 4096;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    match kind {
        PayloadKind::Random => (0..len).map(|_| (next() >> 32) as u8).collect(),
        PayloadKind::Json => {
            let mut buf = Vec::with_capacity(len + 256);
            let statuses = ["created", "paid", "packed", "shipped", "delivered"];
            let mut i = 0u64;
            while buf.len() < len {
                let r = next();
                let event = format!(
                    "{{\"order_id\":\"ord-{:08}\",\"user_id\":\"user-{:05}\",\"status\":\"{}\",\"amount_cents\":{},\"currency\":\"EUR\",\"items\":[{{\"sku\":\"SKU-{:04}\",\"qty\":{}}}],\"ts\":{}}}\n",
                    i,
                    r % 50_000,
                    statuses[(r >> 20) as usize % statuses.len()],
                    (r >> 8) % 100_000,
                    (r >> 32) % 5_000,
                    1 + (r >> 40) % 4,
                    1_795_000_000_000u64 + i * 37
                );
                buf.extend_from_slice(event.as_bytes());
                i += 1;
            }
            buf.truncate(len);
            buf
        }
    }
}

pub fn produce(s: &ProduceSettings) -> Result<ProduceResult> {
    let epoch = Instant::now();
    let ctx = LatencyContext {
        epoch,
        stats: Mutex::new(DeliveryStats {
            hist: Histogram::new(),
            acked: 0,
            acked_bytes: 0,
            failed: 0,
            first_failure: None,
            last_ack_ns: 0,
        }),
        events: ClientEvents::new("producer"),
    };
    let mut cfg = new_config();
    apply_extra(&mut cfg, &s.librdkafka_config());
    let producer: BaseProducer<LatencyContext> =
        cfg.create_with_context(ctx).context("creating producer")?;
    // Connect and learn the leader before the clock starts.
    wait_for_leaders(&producer, &s.topic, s.partitions, Duration::from_secs(30))?;
    let txn_timeout = Duration::from_secs(60);
    let mut transactions: u64 = 0;
    if s.txn_commit_every.is_some() {
        producer.init_transactions(txn_timeout).context("init_transactions")?;
        producer.begin_transaction().context("begin_transaction")?;
    }
    let mut last_commit = Instant::now();

    let payload = payload_buffer(s.record_size, s.payload);
    let n_target: u64 = if s.duration.is_some() {
        u64::MAX
    } else {
        s.total_bytes.div_ceil(s.record_size.max(1) as u64)
    };
    let send_limit = s.duration.unwrap_or(s.max).min(s.max);
    let record_size = s.record_size;
    let partitions = s.partitions.max(1) as u64;

    let cpu = CpuMark::now(s.broker_pid);
    let start_ns = epoch.elapsed().as_nanos() as u64;
    let send_deadline_ns = start_ns + send_limit.as_nanos() as u64;
    let mut sent: u64 = 0;
    let mut stopped_by = if s.duration.is_some() { "duration" } else { "bytes" };
    let bytes_per_ns = s.rate_mbps.map(|r| r * 1e6 / 1e9);

    while sent < n_target {
        let now_ns = epoch.elapsed().as_nanos() as u64;
        if now_ns >= send_deadline_ns {
            if s.duration.is_none() || s.max < s.duration.unwrap() {
                stopped_by = "max-seconds";
            }
            break;
        }
        if let Some(bpn) = bytes_per_ns {
            let allowed = ((now_ns - start_ns) as f64 * bpn) as u64;
            if sent * record_size as u64 > allowed {
                producer.poll(Duration::ZERO);
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
        }
        if let Some(every) = s.txn_commit_every {
            if last_commit.elapsed() >= every {
                // Waits for the transaction's records and its markers.
                producer.commit_transaction(txn_timeout).context("commit_transaction")?;
                transactions += 1;
                producer.begin_transaction().context("begin_transaction")?;
                last_commit = Instant::now();
            }
        }
        let off = (sent.wrapping_mul(61) % 4096) as usize;
        let record = BaseRecord::<(), [u8], usize>::with_opaque_to(&s.topic, now_ns as usize)
            .payload(&payload[off..off + record_size])
            .partition((sent % partitions) as i32);
        match producer.send(record) {
            Ok(()) => {
                sent += 1;
                if sent & 255 == 0 {
                    producer.poll(Duration::ZERO);
                }
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                wait_for_deliveries(&producer);
            }
            Err((e, _)) => {
                return Err(anyhow!(e)).context(format!("send failed after {sent} records"));
            }
        }
    }
    if s.txn_commit_every.is_some() {
        producer.commit_transaction(txn_timeout).context("final commit_transaction")?;
        transactions += 1;
    }
    let send_seconds = (epoch.elapsed().as_nanos() as u64 - start_ns) as f64 / 1e9;

    // Drain outstanding deliveries, bounded.
    let drain_deadline = Instant::now() + s.drain;
    while producer.in_flight_count() > 0 && Instant::now() < drain_deadline {
        wait_for_deliveries(&producer);
    }
    let unacked = producer.in_flight_count().max(0) as u64;
    let usage = cpu.since();
    // Failures reported by the broker/client before we purge what is left.
    let failed_before_purge = producer.context().stats.lock().unwrap().failed;
    if unacked > 0 {
        eprintln!(
            "warning: {unacked} records still unacknowledged {:?} after sending stopped; purging",
            s.drain
        );
        producer.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
        producer.poll(Duration::from_millis(100));
    }

    let ctx = producer.context();
    let stats = ctx.stats.lock().unwrap();
    let last = if stats.acked > 0 { stats.last_ack_ns } else { epoch.elapsed().as_nanos() as u64 };
    let result = ProduceResult {
        settings: s.clone(),
        records_sent: sent,
        records_acked: stats.acked,
        bytes_acked: stats.acked_bytes,
        records_failed: failed_before_purge,
        records_unacked: unacked,
        first_failure: stats.first_failure.clone(),
        client_events: ctx.events.count(),
        first_client_event: ctx.events.first(),
        stopped_by,
        transactions,
        send_seconds,
        seconds: last.saturating_sub(start_ns) as f64 / 1e9,
        hist: stats.hist.clone(),
        broker_cpu_s: usage.broker_s,
        client_cpu_s: usage.client_s,
        usage,
    };
    drop(stats);
    Ok(result)
}

#[derive(Clone)]
pub struct ConsumeSettings {
    pub bootstrap: String,
    pub topic: String,
    pub fetch_max_bytes: u64,
    pub max_partition_fetch_bytes: u64,
    pub max: Duration,
    pub extra: Vec<(String, String)>,
    pub broker_pid: Option<u32>,
}

impl ConsumeSettings {
    pub fn librdkafka_config(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), self.bootstrap.clone()),
            ("fetch.max.bytes".into(), self.fetch_max_bytes.to_string()),
            (
                "max.partition.fetch.bytes".into(),
                self.max_partition_fetch_bytes.to_string(),
            ),
            // Must exceed fetch.max.bytes (librdkafka needs +512 headroom).
            (
                "receive.message.max.bytes".into(),
                (self.fetch_max_bytes.max(self.max_partition_fetch_bytes) + 1_048_576).to_string(),
            ),
            // Let the prefetch queue hold a few full fetch responses.
            ("queued.max.messages.kbytes".into(), "1048576".into()),
            // rdkafka's assign() needs a group handle; the group is never
            // joined (no subscribe) and nothing is committed.
            ("group.id".into(), "klamm-bench".into()),
            ("enable.auto.commit".into(), "false".into()),
            ("enable.auto.offset.store".into(), "false".into()),
            ("enable.partition.eof".into(), "false".into()),
        ];
        v.extend(self.extra.iter().cloned());
        v
    }
}

pub struct ConsumeResult {
    pub settings: ConsumeSettings,
    pub partitions: usize,
    pub expected_records: u64,
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub client_events: u64,
    pub first_client_event: Option<String>,
    pub complete: bool,
    pub coordinator_ready: bool,
    /// Assign to last record.
    pub seconds: f64,
    pub first_record_seconds: Option<f64>,
    pub broker_cpu_s: Option<f64>,
    pub client_cpu_s: Option<f64>,
    pub usage: CpuUsage,
}

impl ConsumeResult {
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
    pub fn records_per_s(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }
    pub fn broker_cpu_s_per_gb(&self) -> Option<f64> {
        let gb = self.bytes as f64 / 1e9;
        self.broker_cpu_s.filter(|_| gb > 0.0).map(|c| c / gb)
    }

    pub fn to_json(&self) -> Json {
        let cfg: Vec<Json> = self
            .settings
            .librdkafka_config()
            .into_iter()
            .map(|(k, v)| Json::obj().with("key", k).with("value", v))
            .collect();
        Json::obj()
            .with("phase", "consume")
            .with("topic", self.settings.topic.as_str())
            .with("partitions", self.partitions)
            .with("librdkafka_config", Json::Array(cfg))
            .with("max_seconds", self.settings.max.as_secs_f64())
            .with("expected_records", self.expected_records)
            .with("records", self.records)
            .with("bytes", self.bytes)
            .with("complete", self.complete)
            .with("group_coordinator_ready_before_timing", self.coordinator_ready)
            .with("errors", self.errors)
            .with("first_error", self.first_error.clone())
            .with("client_error_events", self.client_events)
            .with("first_client_error_event", self.first_client_event.clone())
            .with("seconds", self.seconds)
            .with("first_record_seconds", self.first_record_seconds)
            .with("mb_per_s", self.mbps())
            .with("records_per_s", self.records_per_s())
            .with("broker_cpu_seconds", self.broker_cpu_s)
            .with("broker_cpu_seconds_per_gb_read", self.broker_cpu_s_per_gb())
            .with("client_cpu_seconds", self.client_cpu_s)
            .with("cpu", self.usage.to_json())
    }
}

/// Read every partition of `topic` from offset 0 up to the high watermark
/// observed at the start (with manual assignment, no consumer group).
pub fn consume(s: &ConsumeSettings) -> Result<ConsumeResult> {
    let mut cfg = new_config();
    apply_extra(&mut cfg, &s.librdkafka_config());
    let consumer: BaseConsumer<BenchContext> = cfg
        .create_with_context(BenchContext::new("consumer"))
        .context("creating consumer")?;
    let md = consumer
        .fetch_metadata(Some(&s.topic), Duration::from_secs(10))
        .context("metadata for consume")?;
    let topic_md = md
        .topics()
        .iter()
        .find(|t| t.name() == s.topic)
        .ok_or_else(|| anyhow!("topic {} not in metadata", s.topic))?;
    if let Some(e) = topic_md.error() {
        bail!("topic {}: metadata error {e:?}", s.topic);
    }
    let parts: Vec<i32> = topic_md.partitions().iter().map(|p| p.id()).collect();
    if parts.is_empty() {
        bail!("topic {} has no partitions", s.topic);
    }
    let mut high = std::collections::HashMap::new();
    let mut expected = 0u64;
    let mut tpl = TopicPartitionList::new();
    for &p in &parts {
        let (lo, hi) = consumer
            .fetch_watermarks(&s.topic, p, Duration::from_secs(10))
            .with_context(|| format!("watermarks of {}/{p}", s.topic))?;
        expected += (hi - lo).max(0) as u64;
        high.insert(p, hi);
        tpl.add_partition_offset(&s.topic, p, Offset::Beginning)?;
    }
    let mut remaining: usize = high.values().filter(|&&h| h > 0).count();

    // Warm-up outside the timed window: with a group.id librdkafka looks up
    // the group coordinator, which on a fresh broker creates
    // __consumer_offsets. An OffsetFetch waits for that (bounded).
    let coordinator_ready = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(30)) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("   warning: group coordinator not ready ({e}); timing anyway");
            false
        }
    };

    let cpu = CpuMark::now(s.broker_pid);
    let start = Instant::now();
    consumer.assign(&tpl).context("assign")?;
    let deadline = start + s.max;
    let (mut records, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    let mut first_record = None;
    let mut last_record = start;
    while remaining > 0 && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload_len() as u64;
                if first_record.is_none() {
                    first_record = Some(start.elapsed().as_secs_f64());
                }
                if let Some(h) = high.get_mut(&m.partition()) {
                    if *h > 0 && m.offset() + 1 >= *h {
                        *h = 0;
                        remaining -= 1;
                    }
                }
                if remaining == 0 {
                    last_record = Instant::now();
                }
            }
            Some(Err(e)) => {
                errors += 1;
                if first_error.is_none() {
                    eprintln!("[consumer] error: {e}");
                    first_error = Some(e.to_string());
                }
            }
        }
    }
    if remaining > 0 {
        last_record = Instant::now();
    }
    let usage = cpu.since();
    let ctx = consumer.context();
    Ok(ConsumeResult {
        settings: s.clone(),
        partitions: parts.len(),
        expected_records: expected,
        records,
        bytes,
        errors,
        first_error,
        client_events: ctx.events.count(),
        first_client_event: ctx.events.first(),
        complete: remaining == 0,
        coordinator_ready,
        seconds: last_record.duration_since(start).as_secs_f64(),
        first_record_seconds: first_record,
        broker_cpu_s: usage.broker_s,
        client_cpu_s: usage.client_s,
        usage,
    })
}
