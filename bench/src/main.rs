//! klamm-bench: drives a Kafka-compatible broker with librdkafka and reports
//! MB/s, records/s, produce latency percentiles, the broker's CPU seconds per
//! GB ingested, and the raw disk write bandwidth for comparison.
//!
//! See bench/README.md for usage and the meaning of every figure.

mod broker;
mod disk;
mod hist;
mod json;
mod kafka;
mod raw;
mod sys;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker::{check_loopback, ScratchDir, SpawnedBroker};
use json::{Json, JsonExt};
use kafka::{ConsumeResult, ConsumeSettings, ProduceResult, ProduceSettings};

/// Targets for one partition, 1 KiB records, librdkafka producer, linger 5 ms,
/// on the 2-core reference machine. Reported, never asserted.
const TARGET_PRODUCE_MBPS: f64 = 800.0;
const TARGET_CONSUME_MBPS: f64 = 1500.0;
const TARGET_BROKER_CPU_S_PER_GB: f64 = 0.5;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Produce into a fresh topic with --acks.
    Produce,
    /// Read a topic from offset 0 to its end (--topic, or a freshly preloaded one).
    Consume,
    /// Raw sequential write bandwidth of the data dir's filesystem.
    Disk,
    /// disk, produce acks=1, produce acks=-1, consume (fresh topic per produce phase).
    All,
    /// The broker's own produce ceiling: one prebuilt batch sent over and over
    /// with a nearly free client (Klamm's codec, not librdkafka; see src/raw.rs).
    RawProduce,
    /// Plain acks=all produce, then transactional produce committing every
    /// --txn-commit-ms (fresh topic each), in the same run.
    Transactions,
}

#[derive(Parser, Debug)]
#[command(
    name = "klamm-bench",
    version,
    about = "Load tool for Klamm (or any Kafka-compatible broker on loopback)"
)]
struct Cli {
    /// What to run.
    #[arg(value_enum)]
    mode: Mode,

    /// Broker to drive (loopback only). Ignored with --spawn-broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,

    /// Start this broker binary on free loopback ports with a temporary data
    /// dir, measure its CPU, and stop it at the end.
    #[arg(long, value_name = "PATH")]
    spawn_broker: Option<PathBuf>,

    /// Extra `--override key=value` for the spawned broker (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    broker_override: Vec<String>,

    /// PID of an already running broker, for CPU accounting (/proc/PID/stat).
    #[arg(long, conflicts_with = "spawn_broker")]
    broker_pid: Option<u32>,

    /// Self-test of the tool: drive librdkafka's in-process mock cluster
    /// instead of a real broker. The figures say nothing about Klamm.
    #[arg(long, conflicts_with_all = ["spawn_broker", "broker_pid"])]
    mock_cluster: bool,

    /// Producer acks for `produce` mode: 1, -1 or all. (`all` mode runs both 1 and -1.)
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    acks: String,

    /// `transactions` mode: commit a transaction this often (milliseconds).
    #[arg(long, default_value_t = 100)]
    txn_commit_ms: u64,

    /// Record value size in bytes (no key).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,

    /// Partitions per topic; records are spread round-robin.
    #[arg(long, default_value_t = 1)]
    partitions: i32,

    /// Replication factor of the benchmark topics (a cluster needs that many brokers;
    /// point --bootstrap at it, e.g. the example cluster of scripts/cluster.sh).
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,

    /// Topic config for the benchmark topics (repeatable), e.g. min.insync.replicas=2.
    #[arg(long, value_name = "KEY=VALUE")]
    topic_config: Vec<String>,

    /// Payload bytes per produce phase (suffixes: KB MB GB = 1e3.., KiB MiB GiB = 2^10..).
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    bytes: u64,

    /// Produce for this many seconds instead of a byte count.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,

    /// Hard bound per phase: stop sending/reading/writing after this long.
    #[arg(long, default_value_t = 60.0)]
    max_seconds: f64,

    /// After sending stops, wait at most this long for outstanding acks.
    #[arg(long, default_value_t = 30.0)]
    drain_seconds: f64,

    /// Throttle the producer to this many MB/s (1 MB = 1e6 B), e.g. to measure
    /// latency below saturation. Default: unthrottled.
    #[arg(long)]
    rate_mbps: Option<f64>,

    /// Producer linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,

    /// Producer batch.size (bytes per partition batch).
    #[arg(long, default_value_t = 1_000_000)]
    batch_size: u64,

    /// raw-produce: produce requests kept outstanding on its one connection.
    #[arg(long, default_value_t = 5)]
    raw_in_flight: usize,

    /// Producer batch.num.messages.
    #[arg(long, default_value_t = 100_000)]
    batch_num_messages: u64,

    /// Producer compression.type.
    #[arg(long, default_value = "none")]
    compression: String,

    /// Record values: `random` (incompressible) or `json` (order events,
    /// compressible like application data; use it with --compression).
    #[arg(long, value_enum, default_value_t = kafka::PayloadKind::Random)]
    payload: kafka::PayloadKind,

    /// Extra librdkafka producer property (repeatable), applied last.
    #[arg(long, value_name = "KEY=VALUE")]
    producer_config: Vec<String>,

    /// Extra librdkafka consumer property (repeatable), applied last.
    #[arg(long, value_name = "KEY=VALUE")]
    consumer_config: Vec<String>,

    /// Consumer fetch.max.bytes.
    #[arg(long, default_value_t = 104_857_600)]
    fetch_max_bytes: u64,

    /// Consumer max.partition.fetch.bytes.
    #[arg(long, default_value_t = 104_857_600)]
    max_partition_fetch_bytes: u64,

    /// `consume` mode: read this existing topic instead of preloading a fresh one.
    #[arg(long)]
    topic: Option<String>,

    /// Bytes written by the disk phase.
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    disk_bytes: u64,

    /// Block size of the disk phase's writes.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    disk_block: u64,

    /// Directory for the disk phase's file. Default: the spawned broker's
    /// scratch dir (same filesystem as its data), else the scratch dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,

    /// Parent of the per-run scratch dir (default: the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,

    /// Keep the scratch dir (spawned broker's data and log) after the run.
    #[arg(long)]
    keep_data: bool,

    /// Before each broker phase, flush the data filesystem with `sync -f`,
    /// waiting at most this long, so one phase's writeback does not throttle
    /// or overlap the next. 0 disables.
    #[arg(long, default_value_t = 60.0)]
    settle_seconds: f64,

    /// Before starting, wait at most this long for the machine to be quiet
    /// (all cores < 25 % busy for 3 s in a row, from /proc/stat), so other
    /// work does not skew the figures. 0: don't wait.
    #[arg(long, default_value_t = 0.0)]
    wait_idle_seconds: f64,

    /// Seconds to wait for a spawned broker to listen.
    #[arg(long, default_value_t = 60.0)]
    startup_seconds: f64,

    /// Also write all figures, settings and the machine description here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// "4GiB", "500MB", "1048576", "1.5GB".
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        u => return Err(format!("unknown size unit {u:?} in {s:?}")),
    };
    let v = n * mult;
    if !(1.0..1e18).contains(&v) {
        return Err(format!("size {s:?} out of range"));
    }
    Ok(v as u64)
}

fn parse_kv(list: &[String], what: &str) -> Result<Vec<(String, String)>> {
    list.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("{what} {kv:?} is not KEY=VALUE"))
        })
        .collect()
}

fn secs(s: f64, name: &str) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s <= 86_400.0) {
        bail!("--{name} must be in (0, 86400] seconds");
    }
    Ok(Duration::from_secs_f64(s))
}

/// UTC "YYYY-MM-DDTHH:MM:SSZ" without a date crate (days-to-civil algorithm).
fn utc_now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Bounded wait for a quiet machine (see --wait-idle-seconds). Returns
/// (seconds waited, found quiet, last 1 s busy %).
fn wait_for_idle(max_s: f64) -> Option<(f64, bool, f64)> {
    if max_s.is_nan() || max_s <= 0.0 {
        return None;
    }
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let start = std::time::Instant::now();
    let mut quiet_in_a_row = 0;
    let mut last_pct = f64::NAN;
    eprintln!("waiting up to {max_s} s for the machine to be idle");
    while start.elapsed().as_secs_f64() < max_s {
        let a = sys::machine_busy_seconds();
        let t = std::time::Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let b = sys::machine_busy_seconds();
        let (Some(a), Some(b)) = (a, b) else {
            return Some((start.elapsed().as_secs_f64(), false, f64::NAN));
        };
        last_pct = 100.0 * (b - a) / (t.elapsed().as_secs_f64() * nproc);
        if last_pct < 25.0 {
            quiet_in_a_row += 1;
            if quiet_in_a_row >= 3 {
                return Some((start.elapsed().as_secs_f64(), true, last_pct));
            }
        } else {
            quiet_in_a_row = 0;
        }
    }
    eprintln!("machine still busy ({last_pct:.0}% over the last second); starting anyway");
    Some((start.elapsed().as_secs_f64(), false, last_pct))
}

/// One row of the report.
enum PhaseOutcome {
    Disk(disk::DiskResult),
    Produce(String, Box<ProduceResult>),
    Consume(Box<ConsumeResult>),
    Failed(String, String),
}

struct Run {
    cli: Cli,
    bootstrap: String,
    broker_pid: Option<u32>,
    spawned: Option<SpawnedBroker>,
    scratch: ScratchDir,
    stamp: String,
    phases: Vec<PhaseOutcome>,
    settles: Vec<Json>,
    broker_died: Option<String>,
}

impl Run {
    /// Before a phase: flush the scratch dir's filesystem (`sync -f`, bounded
    /// by --settle-seconds) so the previous phase's dirty pages neither
    /// throttle nor get written back during this one.
    fn settle(&mut self, phase: &str) {
        let before = sys::dirty_kib();
        let start = std::time::Instant::now();
        let limit = Duration::from_secs_f64(self.cli.settle_seconds.max(0.0));
        let mut outcome = "disabled".to_string();
        if self.cli.settle_seconds > 0.0 {
            outcome = match std::process::Command::new("sync")
                .arg("--file-system")
                .arg(&self.scratch.path)
                .spawn()
            {
                Err(e) => format!("could not run sync: {e}"),
                Ok(mut child) => loop {
                    match child.try_wait() {
                        Ok(Some(st)) if st.success() => break "synced".to_string(),
                        Ok(Some(st)) => break format!("sync failed: {st}"),
                        Ok(None) if start.elapsed() >= limit => {
                            // Only the sync process we started.
                            let _ = child.kill();
                            let _ = child.wait();
                            break format!("sync still running after {limit:?}; killed");
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                        Err(e) => break format!("waiting for sync: {e}"),
                    }
                },
            };
            if outcome != "synced" {
                eprintln!("   settle: {outcome}");
            }
        }
        self.settles.push(
            Json::obj()
                .with("before_phase", phase)
                .with("dirty_writeback_kib_before", before)
                .with("dirty_writeback_kib_at_start", sys::dirty_kib())
                .with("sync_seconds", start.elapsed().as_secs_f64())
                .with("outcome", outcome),
        );
    }

    fn max(&self) -> Duration {
        Duration::from_secs_f64(self.cli.max_seconds)
    }

    fn topic_name(&self, label: &str) -> String {
        format!("klamm-bench-{label}-{}", self.stamp)
    }

    /// After each phase: did the spawned broker survive?
    fn check_broker(&mut self) -> bool {
        if self.broker_died.is_some() {
            return false;
        }
        if let Some(b) = self.spawned.as_mut() {
            if !b.alive() {
                let status = b.exit_status().unwrap_or_else(|| "unknown status".into());
                let msg = format!(
                    "spawned broker (PID {}) exited: {status}; last log lines:\n{}",
                    b.pid,
                    b.log_tail(40)
                );
                eprintln!("{msg}");
                self.broker_died = Some(msg);
                return false;
            }
        }
        true
    }

    fn produce_settings(&self, topic: String, acks: &str, txn_commit_every: Option<Duration>) -> Result<ProduceSettings> {
        Ok(ProduceSettings {
            bootstrap: self.bootstrap.clone(),
            topic,
            acks: acks.to_string(),
            record_size: self.cli.record_size,
            partitions: self.cli.partitions,
            linger_ms: self.cli.linger_ms,
            batch_size: self.cli.batch_size,
            batch_num_messages: self.cli.batch_num_messages,
            compression: self.cli.compression.clone(),
            payload: self.cli.payload,
            total_bytes: self.cli.bytes,
            duration: self.cli.duration.map(Duration::from_secs_f64),
            max: self.max(),
            drain: Duration::from_secs_f64(self.cli.drain_seconds),
            rate_mbps: self.cli.rate_mbps,
            extra: parse_kv(&self.cli.producer_config, "--producer-config")?,
            broker_pid: self.broker_pid,
            txn_commit_every,
        })
    }

    fn run_disk(&mut self) {
        let dir = self
            .cli
            .data_dir
            .clone()
            .unwrap_or_else(|| self.scratch.path.clone());
        eprintln!(
            "== disk: writing {} bytes in {} B blocks to {}",
            self.cli.disk_bytes,
            self.cli.disk_block,
            dir.display()
        );
        match disk::run(&dir, self.cli.disk_bytes, self.cli.disk_block as usize, self.max()) {
            Ok(r) => self.phases.push(PhaseOutcome::Disk(r)),
            Err(e) => self
                .phases
                .push(PhaseOutcome::Failed("disk".into(), format!("{e:#}"))),
        }
    }

    /// Produce into a fresh topic. Returns the topic on success.
    fn run_produce(&mut self, label: &str, acks: &str) -> Option<String> {
        self.run_produce_phase(label, acks, None)
    }

    /// Produce into a fresh topic, transactionally when `txn_commit_every` is set.
    fn run_produce_phase(&mut self, label: &str, acks: &str, txn_commit_every: Option<Duration>) -> Option<String> {
        let phase = match txn_commit_every {
            Some(every) => format!("produce transactional (commit every {} ms)", every.as_millis()),
            None => format!("produce acks={acks}"),
        };
        if !self.check_broker() {
            self.phases
                .push(PhaseOutcome::Failed(phase, "broker not running".into()));
            return None;
        }
        let topic = self.topic_name(label);
        eprintln!("== {phase}: topic {topic}");
        self.settle(&phase);
        let result = (|| -> Result<ProduceResult> {
            kafka::create_topic(
                &self.bootstrap,
                &topic,
                self.cli.partitions,
                self.cli.replication_factor,
                &parse_kv(&self.cli.topic_config, "--topic-config")?,
                Duration::from_secs(30),
            )?;
            kafka::produce(&self.produce_settings(topic.clone(), acks, txn_commit_every)?)
        })();
        self.check_broker();
        match result {
            Ok(r) => {
                eprintln!(
                    "   {:.1} MB/s, {} records acked, {} failed",
                    r.mbps(),
                    r.records_acked,
                    r.records_failed
                );
                let ok = r.records_acked > 0;
                self.phases.push(PhaseOutcome::Produce(phase, Box::new(r)));
                ok.then_some(topic)
            }
            Err(e) => {
                eprintln!("   failed: {e:#}");
                self.phases.push(PhaseOutcome::Failed(phase, format!("{e:#}")));
                None
            }
        }
    }

    fn run_raw_produce(&mut self, acks: &str) {
        let phase = format!("raw produce acks={acks}");
        let topic = self.topic_name("raw");
        eprintln!("== {phase}: topic {topic}");
        self.settle(&phase);
        let result = (|| -> Result<raw::RawResult> {
            kafka::create_topic(
                &self.bootstrap,
                &topic,
                1,
                self.cli.replication_factor,
                &parse_kv(&self.cli.topic_config, "--topic-config")?,
                Duration::from_secs(30),
            )?;
            raw::produce(&raw::RawSettings {
                bootstrap: self.bootstrap.split(',').next().unwrap_or_default().to_string(),
                topic: topic.clone(),
                acks: acks.parse().context("--acks for raw-produce must be 0, 1 or -1")?,
                record_size: self.cli.record_size,
                batch_bytes: self.cli.batch_size as usize,
                in_flight: self.cli.raw_in_flight,
                total_bytes: self.cli.bytes,
                max: Duration::from_secs_f64(self.cli.max_seconds),
                broker_pid: self.broker_pid,
            })
        })();
        match result {
            Ok(r) => println!("{}", r.line()),
            Err(e) => {
                eprintln!("   failed: {e:#}");
                self.phases.push(PhaseOutcome::Failed(phase, format!("{e:#}")));
            }
        }
    }

    fn run_consume(&mut self, topic: &str) {
        if !self.check_broker() {
            self.phases
                .push(PhaseOutcome::Failed("consume".into(), "broker not running".into()));
            return;
        }
        eprintln!("== consume: topic {topic} from offset 0");
        self.settle("consume");
        let settings = (|| -> Result<ConsumeSettings> {
            Ok(ConsumeSettings {
                bootstrap: self.bootstrap.clone(),
                topic: topic.to_string(),
                fetch_max_bytes: self.cli.fetch_max_bytes,
                max_partition_fetch_bytes: self.cli.max_partition_fetch_bytes,
                max: self.max(),
                extra: parse_kv(&self.cli.consumer_config, "--consumer-config")?,
                broker_pid: self.broker_pid,
            })
        })();
        let result = settings.and_then(|s| kafka::consume(&s));
        self.check_broker();
        match result {
            Ok(r) => {
                eprintln!(
                    "   {:.1} MB/s, {} of {} records",
                    r.mbps(),
                    r.records,
                    r.expected_records
                );
                self.phases.push(PhaseOutcome::Consume(Box::new(r)));
            }
            Err(e) => {
                eprintln!("   failed: {e:#}");
                self.phases
                    .push(PhaseOutcome::Failed("consume".into(), format!("{e:#}")));
            }
        }
    }
}

fn normalize_acks(a: &str) -> Result<String> {
    match a.trim() {
        "1" => Ok("1".into()),
        "-1" | "all" => Ok("-1".into()),
        other => bail!("--acks must be 1, -1 or all (got {other:?})"),
    }
}

fn main() {
    match real_main() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("klamm-bench: error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Ok(true): every phase ran (whatever the figures); Ok(false): a phase failed
/// or the broker died. Missed targets never affect the exit status.
fn real_main() -> Result<bool> {
    let cli = Cli::parse();
    secs(cli.max_seconds, "max-seconds")?;
    secs(cli.drain_seconds, "drain-seconds")?;
    let startup = secs(cli.startup_seconds, "startup-seconds")?;
    if let Some(d) = cli.duration {
        secs(d, "duration")?;
    }
    if cli.record_size == 0 || cli.record_size > 100_000_000 {
        bail!("--record-size must be in 1..=100000000");
    }
    if cli.partitions < 1 {
        bail!("--partitions must be >= 1");
    }
    if cli.disk_block == 0 || cli.disk_block > 1 << 30 {
        bail!("--disk-block must be in 1B..=1GiB");
    }
    let acks = normalize_acks(&cli.acks)?;
    parse_kv(&cli.producer_config, "--producer-config")?;
    parse_kv(&cli.consumer_config, "--consumer-config")?;
    for kv in &cli.broker_override {
        if !kv.contains('=') {
            bail!("--broker-override {kv:?} is not KEY=VALUE");
        }
    }

    let idle_wait = wait_for_idle(cli.wait_idle_seconds);
    let started_at = utc_now();
    let machine = sys::Machine::detect();
    let git_head = sys::git_head();
    let git_dirty = sys::git_dirty();
    let needs_broker = cli.mode != Mode::Disk;

    let scratch = ScratchDir::create(cli.work_dir.as_deref(), cli.keep_data)?;
    let mut spawned = None;
    let mut broker_pid = cli.broker_pid;
    let mut bootstrap = cli.bootstrap.clone();
    if let (true, Some(path)) = (needs_broker, cli.spawn_broker.as_ref()) {
        eprintln!("starting broker {}", path.display());
        let b = SpawnedBroker::start(path, &scratch.path, &cli.broker_override, startup)?;
        eprintln!(
            "broker PID {} listening on {} (data {}, log {})",
            b.pid,
            b.bootstrap,
            b.data_dir.display(),
            b.log_path.display()
        );
        bootstrap = b.bootstrap.clone();
        broker_pid = Some(b.pid);
        spawned = Some(b);
    }
    let mock = if needs_broker && cli.mock_cluster {
        let m = rdkafka::mocking::MockCluster::new(1).context("starting librdkafka mock cluster")?;
        bootstrap = m.bootstrap_servers();
        eprintln!("SELF-TEST: librdkafka mock cluster on {bootstrap}; figures are not Klamm's");
        Some(m)
    } else {
        None
    };
    if needs_broker {
        check_loopback(&bootstrap)?;
    }
    if let Some(pid) = broker_pid {
        sys::process_cpu_seconds(&pid.to_string())
            .with_context(|| format!("broker PID {pid} not readable"))?;
    }
    let broker_cmd = match (spawned.as_ref(), cli.spawn_broker.as_ref()) {
        (Some(b), Some(p)) => Some(b.command_line(p)),
        _ => None,
    };

    let stamp = format!(
        "{}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        std::process::id()
    );
    let mut run = Run {
        cli,
        bootstrap,
        broker_pid,
        spawned,
        scratch,
        stamp,
        phases: Vec::new(),
        settles: Vec::new(),
        broker_died: None,
    };

    match run.cli.mode {
        Mode::Disk => run.run_disk(),
        Mode::Transactions => {
            run.run_produce("acksall", "-1");
            let every = Duration::from_millis(run.cli.txn_commit_ms.max(1));
            run.run_produce_phase("txn", "-1", Some(every));
        }
        Mode::RawProduce => run.run_raw_produce(&acks),
        Mode::Produce => {
            run.run_produce(&format!("acks{}", acks.replace('-', "m")), &acks);
        }
        Mode::Consume => {
            let topic = match run.cli.topic.clone() {
                Some(t) => Some(t),
                None => run.run_produce("preload", "1"),
            };
            match topic {
                Some(t) => run.run_consume(&t),
                None => run.phases.push(PhaseOutcome::Failed(
                    "consume".into(),
                    "nothing to read: preload failed".into(),
                )),
            }
        }
        Mode::All => {
            run.run_disk();
            let t1 = run.run_produce("acks1", "1");
            run.run_produce("acksall", "-1");
            match t1 {
                Some(t) => run.run_consume(&t),
                None => run.phases.push(PhaseOutcome::Failed(
                    "consume".into(),
                    "nothing to read: produce acks=1 failed".into(),
                )),
            }
        }
    }

    let report = report::Report {
        idle_wait,
        started_at: &started_at,
        machine: &machine,
        git_head: git_head.as_deref(),
        git_dirty,
        run: &run,
        broker_cmd: broker_cmd.as_deref(),
    };
    print!("{}", report.text());
    if let Some(path) = run.cli.json.as_ref() {
        std::fs::write(path, report.json().to_pretty())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(b) = run.spawned.as_mut() {
        eprintln!("stopping broker PID {}", b.pid);
        b.stop();
    }
    drop(mock);
    let all_ran = run.broker_died.is_none()
        && !run
            .phases
            .iter()
            .any(|p| matches!(p, PhaseOutcome::Failed(..)));
    Ok(all_ran)
}

mod report {
    use super::*;
    use std::fmt::Write as _;

    pub struct Report<'a> {
        pub idle_wait: Option<(f64, bool, f64)>,
        pub started_at: &'a str,
        pub machine: &'a sys::Machine,
        pub git_head: Option<&'a str>,
        pub git_dirty: Option<bool>,
        pub run: &'a Run,
        pub broker_cmd: Option<&'a str>,
    }

    pub struct Target {
        pub name: String,
        pub value: Option<f64>,
        pub unit: &'static str,
        /// true: value must be >= target; false: <=.
        pub at_least: bool,
        pub target: f64,
        pub note: Option<String>,
    }

    impl Target {
        pub fn pass(&self) -> Option<bool> {
            self.value.map(|v| {
                if self.at_least {
                    v >= self.target
                } else {
                    v <= self.target
                }
            })
        }
    }

    fn f(v: Option<f64>, prec: usize) -> String {
        match v {
            Some(v) if v.is_finite() => format!("{v:.prec$}"),
            _ => "-".into(),
        }
    }

    impl Report<'_> {
        fn targets(&self) -> Vec<Target> {
            let mut t = Vec::new();
            let no_pid = self.run.broker_pid.is_none();
            for p in &self.run.phases {
                match p {
                    PhaseOutcome::Produce(name, r) => {
                        let incomplete = r.records_failed > 0 || r.records_unacked > 0;
                        t.push(Target {
                            name: format!("{name} throughput"),
                            value: Some(r.mbps()),
                            unit: "MB/s",
                            at_least: true,
                            target: TARGET_PRODUCE_MBPS,
                            note: incomplete.then(|| "some records not acked".into()),
                        });
                        t.push(Target {
                            name: format!("{name} broker CPU per GB"),
                            value: r.broker_cpu_s_per_gb(),
                            unit: "s/GB",
                            at_least: false,
                            target: TARGET_BROKER_CPU_S_PER_GB,
                            note: no_pid.then(|| "no broker PID (use --broker-pid)".into()),
                        });
                    }
                    PhaseOutcome::Consume(r) => t.push(Target {
                        name: "consume throughput".into(),
                        value: Some(r.mbps()),
                        unit: "MB/s",
                        at_least: true,
                        target: TARGET_CONSUME_MBPS,
                        note: (!r.complete).then(|| "did not reach the end of the topic".into()),
                    }),
                    PhaseOutcome::Failed(name, _) if name.starts_with("produce") => {
                        t.push(Target {
                            name: format!("{name} throughput"),
                            value: None,
                            unit: "MB/s",
                            at_least: true,
                            target: TARGET_PRODUCE_MBPS,
                            note: Some("phase failed".into()),
                        });
                    }
                    PhaseOutcome::Failed(name, _) if name == "consume" => t.push(Target {
                        name: "consume throughput".into(),
                        value: None,
                        unit: "MB/s",
                        at_least: true,
                        target: TARGET_CONSUME_MBPS,
                        note: Some("phase failed".into()),
                    }),
                    _ => {}
                }
            }
            t
        }

        pub fn text(&self) -> String {
            let run = self.run;
            let cli = &run.cli;
            let mut o = String::new();
            let _ = writeln!(o, "\nklamm-bench {:?} — {}", cli.mode, self.started_at);
            let _ = writeln!(o, "machine:  {}", self.machine.summary());
            if let Some((waited, quiet, pct)) = self.idle_wait {
                let _ = writeln!(
                    o,
                    "idle:     {} after waiting {waited:.0} s (last second {pct:.0}% busy)",
                    if quiet { "machine was quiet" } else { "machine was NOT quiet" }
                );
            }
            let _ = writeln!(
                o,
                "commit:   {}{}",
                self.git_head.unwrap_or("unknown"),
                if self.git_dirty == Some(true) { " (working tree has uncommitted changes)" } else { "" }
            );
            if cli.mode != Mode::Disk {
                let broker = match (&run.spawned, run.broker_pid) {
                    _ if cli.mock_cluster => format!(
                        "librdkafka MOCK cluster on {} (self-test of the tool; figures are NOT Klamm's)",
                        run.bootstrap
                    ),
                    (Some(b), _) => format!("spawned PID {} on {}", b.pid, b.bootstrap),
                    (None, Some(pid)) => format!("{} (PID {pid})", run.bootstrap),
                    (None, None) => format!("{} (no PID: broker CPU not measured)", run.bootstrap),
                };
                let _ = writeln!(o, "broker:   {broker}");
                let amount = match cli.duration {
                    Some(d) => format!("{d} s"),
                    None => format!("{:.2} GB", cli.bytes as f64 / 1e9),
                };
                let _ = writeln!(
                    o,
                    "settings: {} partition(s), {} B records, linger.ms={}, batch.size={}, batch.num.messages={}, compression={}, payload={:?}, {} per produce phase, max {} s per phase{}",
                    cli.partitions,
                    cli.record_size,
                    cli.linger_ms,
                    cli.batch_size,
                    cli.batch_num_messages,
                    cli.compression,
                    cli.payload,
                    amount,
                    cli.max_seconds,
                    cli.rate_mbps.map(|r| format!(", throttled to {r} MB/s")).unwrap_or_default()
                );
            }
            let _ = writeln!(o, "units:    MB = 1e6 B, GB = 1e9 B of record payload; latency = send() to delivery report\n");

            let _ = writeln!(
                o,
                "{:<18} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  notes",
                "phase", "MB/s", "records/s", "p50 ms", "p99 ms", "p999 ms", "brokerCPU", "CPU s/GB", "GB"
            );
            for p in &run.phases {
                match p {
                    PhaseOutcome::Disk(d) => {
                        let note = if d.truncated_by_deadline { "stopped at --max-seconds" } else { "" };
                        let _ = writeln!(
                            o,
                            "{:<18} {:>9.1} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9.2}  write() only, page cache {note}",
                            "disk (no fsync)", d.mbps_no_fsync(), "-", "-", "-", "-", "-", "-", d.bytes as f64 / 1e9
                        );
                        let _ = writeln!(
                            o,
                            "{:<18} {:>9.1} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9.2}  incl. final fsync ({:.2} s)",
                            "disk (with fsync)", d.mbps_with_fsync(), "-", "-", "-", "-", "-", "-", d.bytes as f64 / 1e9, d.fsync_seconds
                        );
                    }
                    PhaseOutcome::Produce(name, r) => {
                        let mut notes = Vec::new();
                        if r.records_failed > 0 {
                            notes.push(format!("{} failed ({})", r.records_failed, r.first_failure.clone().unwrap_or_default()));
                        }
                        if r.records_unacked > 0 {
                            notes.push(format!("{} unacked at drain deadline (purged)", r.records_unacked));
                        }
                        if r.stopped_by == "max-seconds" {
                            notes.push("stopped at --max-seconds".into());
                        }
                        if let Some(c) = r.client_cpu_s {
                            let gb = r.bytes_acked as f64 / 1e9;
                            notes.push(format!("client CPU {c:.1} s ({:.2} s/GB)", c / gb.max(1e-9)));
                        }
                        if let Some(b) = r.usage.machine_busy_pct(self.machine.nproc) {
                            notes.push(format!("machine {b:.0}% busy"));
                        }
                        let _ = writeln!(
                            o,
                            "{:<18} {:>9.1} {:>11.0} {:>9.2} {:>9.2} {:>9.2} {:>9} {:>9} {:>9.2}  {}",
                            name,
                            r.mbps(),
                            r.records_per_s(),
                            r.latency_ms(0.5),
                            r.latency_ms(0.99),
                            r.latency_ms(0.999),
                            f(r.broker_cpu_s, 2),
                            f(r.broker_cpu_s_per_gb(), 3),
                            r.bytes_acked as f64 / 1e9,
                            notes.join("; ")
                        );
                    }
                    PhaseOutcome::Consume(r) => {
                        let mut notes = Vec::new();
                        if !r.complete {
                            notes.push(format!("INCOMPLETE: {} of {} records", r.records, r.expected_records));
                        }
                        if r.errors > 0 {
                            notes.push(format!("{} errors ({})", r.errors, r.first_error.clone().unwrap_or_default()));
                        }
                        if let Some(c) = r.client_cpu_s {
                            let gb = r.bytes as f64 / 1e9;
                            notes.push(format!("client CPU {c:.1} s ({:.2} s/GB)", c / gb.max(1e-9)));
                        }
                        if let Some(b) = r.usage.machine_busy_pct(self.machine.nproc) {
                            notes.push(format!("machine {b:.0}% busy"));
                        }
                        let _ = writeln!(
                            o,
                            "{:<18} {:>9.1} {:>11.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9.2}  {}",
                            "consume",
                            r.mbps(),
                            r.records_per_s(),
                            "-",
                            "-",
                            "-",
                            f(r.broker_cpu_s, 2),
                            f(r.broker_cpu_s_per_gb(), 3),
                            r.bytes as f64 / 1e9,
                            notes.join("; ")
                        );
                    }
                    PhaseOutcome::Failed(name, err) => {
                        let first_line = err.lines().next().unwrap_or("");
                        let _ = writeln!(o, "{name:<18} FAILED: {first_line}");
                    }
                }
            }
            if let Some(d) = &run.broker_died {
                let _ = writeln!(o, "\nBROKER DIED: {d}");
            }

            let targets = self.targets();
            if !targets.is_empty() {
                let _ = writeln!(o, "\ntargets (2-core reference machine, 1 partition, 1 KiB records, linger.ms=5):");
                for t in &targets {
                    let verdict = match t.pass() {
                        Some(true) => "PASS",
                        Some(false) => "MISS",
                        None => "n/a",
                    };
                    let _ = writeln!(
                        o,
                        "  {:<40} {:>10} {:<5} target {} {} {:<5} {}{}",
                        t.name,
                        f(t.value, if t.unit == "s/GB" { 3 } else { 1 }),
                        t.unit,
                        if t.at_least { ">=" } else { "<=" },
                        t.target,
                        t.unit,
                        verdict,
                        t.note.as_ref().map(|n| format!("  ({n})")).unwrap_or_default()
                    );
                }
            }
            o.push('\n');
            o
        }

        pub fn json(&self) -> Json {
            let run = self.run;
            let cli = &run.cli;
            let phases: Vec<Json> = run
                .phases
                .iter()
                .map(|p| match p {
                    PhaseOutcome::Disk(d) => d.to_json(),
                    PhaseOutcome::Produce(name, r) => r.to_json(name),
                    PhaseOutcome::Consume(r) => r.to_json(),
                    PhaseOutcome::Failed(name, e) => Json::obj()
                        .with("phase", name.as_str())
                        .with("failed", true)
                        .with("error", e.as_str()),
                })
                .collect();
            let targets: Vec<Json> = self
                .targets()
                .into_iter()
                .map(|t| {
                    Json::obj()
                        .with("name", t.name.as_str())
                        .with("value", t.value)
                        .with("unit", t.unit)
                        .with("comparison", if t.at_least { ">=" } else { "<=" })
                        .with("target", t.target)
                        .with("pass", t.pass())
                        .with("note", t.note.clone())
                })
                .collect();
            let broker = match &run.spawned {
                Some(b) => Json::obj()
                    .with("spawned", true)
                    .with("bootstrap", b.bootstrap.as_str())
                    .with("pid", b.pid)
                    .with("controller_port", b.controller_port as u32)
                    .with("command", self.broker_cmd.map(str::to_string))
                    .with("data_dir", b.data_dir.display().to_string())
                    .with("log", b.log_path.display().to_string()),
                None => Json::obj()
                    .with("spawned", false)
                    .with("librdkafka_mock_cluster", cli.mock_cluster)
                    .with("bootstrap", run.bootstrap.as_str())
                    .with("pid", run.broker_pid),
            };
            let settings = Json::obj()
                .with("mode", format!("{:?}", cli.mode).to_lowercase())
                .with("acks", cli.acks.as_str())
                .with("record_size", cli.record_size)
                .with("partitions", cli.partitions)
                .with("replication_factor", cli.replication_factor)
                .with("bytes_per_produce_phase", cli.bytes)
                .with("duration_s", cli.duration)
                .with("max_seconds", cli.max_seconds)
                .with("drain_seconds", cli.drain_seconds)
                .with("rate_mb_per_s", cli.rate_mbps)
                .with("linger_ms", cli.linger_ms)
                .with("batch_size", cli.batch_size)
                .with("batch_num_messages", cli.batch_num_messages)
                .with("compression", cli.compression.as_str())
                .with("fetch_max_bytes", cli.fetch_max_bytes)
                .with("max_partition_fetch_bytes", cli.max_partition_fetch_bytes)
                .with("disk_bytes", cli.disk_bytes)
                .with("disk_block", cli.disk_block)
                .with("settle_seconds", cli.settle_seconds)
                .with("wait_idle_seconds", cli.wait_idle_seconds)
                .with("producer_config", Json::Array(cli.producer_config.iter().map(|s| Json::from(s.as_str())).collect()))
                .with("consumer_config", Json::Array(cli.consumer_config.iter().map(|s| Json::from(s.as_str())).collect()))
                .with("broker_override", Json::Array(cli.broker_override.iter().map(|s| Json::from(s.as_str())).collect()));
            Json::obj()
                .with("tool", "klamm-bench")
                .with("tool_version", env!("CARGO_PKG_VERSION"))
                .with("started_at", self.started_at)
                .with("finished_at", utc_now())
                .with("units", "MB = 1e6 bytes, GB = 1e9 bytes of record payload; latency in ms from send() to delivery report")
                .with(
                    "git",
                    Json::obj()
                        .with("head", self.git_head.map(str::to_string))
                        .with("dirty", self.git_dirty),
                )
                .with("machine", self.machine.to_json())
                .with(
                    "wait_idle",
                    match self.idle_wait {
                        Some((w, q, p)) => Json::obj()
                            .with("waited_seconds", w)
                            .with("quiet", q)
                            .with("last_busy_percent", p),
                        None => Json::Null,
                    },
                )
                .with("broker", broker)
                .with("settings", settings)
                .with("phases", Json::Array(phases))
                .with("targets", Json::Array(targets))
                .with("page_cache_settle", Json::Array(run.settles.clone()))
                .with("broker_died", run.broker_died.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("1.5 GB").unwrap(), 1_500_000_000);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn acks() {
        assert_eq!(normalize_acks("all").unwrap(), "-1");
        assert_eq!(normalize_acks("-1").unwrap(), "-1");
        assert_eq!(normalize_acks("1").unwrap(), "1");
        assert!(normalize_acks("0").is_err());
    }

    #[test]
    fn utc_format() {
        let s = utc_now();
        assert_eq!(s.len(), 20);
        assert!(s.starts_with("20"));
    }

    #[test]
    fn cli_parses() {
        Cli::try_parse_from(["klamm-bench", "all", "--spawn-broker", "x", "--json", "o.json"]).unwrap();
        Cli::try_parse_from(["klamm-bench", "produce", "--acks", "-1", "--bytes", "1GB"]).unwrap();
        assert!(Cli::try_parse_from(["klamm-bench", "produce", "--spawn-broker", "x", "--broker-pid", "1"]).is_err());
    }
}
