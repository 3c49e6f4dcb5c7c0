//! Linux process CPU accounting and machine description, from /proc.

use anyhow::{anyhow, bail, Context, Result};
use std::process::Command;

use crate::json::{Json, JsonExt};

/// Clock ticks per second for /proc/*/stat times (`sysconf(_SC_CLK_TCK)`, which the
/// kernel passes in the auxiliary vector; rustix reads it without `unsafe`).
pub fn clk_tck() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// utime + stime of a process (all its threads), in seconds.
/// `pid` is a number or "self".
pub fn process_cpu_seconds(pid: &str) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat_cpu_ticks(&stat)
        .map(|ticks| ticks as f64 / clk_tck() as f64)
        .with_context(|| format!("parsing {path}"))
}

/// Fields 14 (utime) and 15 (stime) of /proc/PID/stat. The command name
/// (field 2) is parenthesised and may contain spaces, so split after the last ')'.
fn parse_stat_cpu_ticks(stat: &str) -> Result<u64> {
    let rest = &stat[stat.rfind(')').ok_or_else(|| anyhow!("no ')' in stat"))? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state), so field N is fields[N - 3].
    if fields.len() < 13 {
        bail!("stat too short: {} fields", fields.len());
    }
    let utime: u64 = fields[11].parse().context("utime")?;
    let stime: u64 = fields[12].parse().context("stime")?;
    Ok(utime + stime)
}

/// Busy (non-idle, non-iowait) CPU seconds of the whole machine, all cores,
/// from the first line of /proc/stat.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    // (guest time is already included in user/nice).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    Some((total - idle) as f64 / clk_tck() as f64)
}

/// CPU consumed between two points: by the broker process, by this tool, and
/// by the whole machine.
#[derive(Clone, Copy)]
pub struct CpuMark {
    pid: Option<u32>,
    at: std::time::Instant,
    broker: Option<f64>,
    client: Option<f64>,
    machine: Option<f64>,
}

#[derive(Clone, Copy, Default)]
pub struct CpuUsage {
    pub broker_s: Option<f64>,
    pub client_s: Option<f64>,
    pub machine_busy_s: Option<f64>,
    pub wall_s: f64,
}

impl CpuUsage {
    /// Share of all cores busy over the interval, in percent.
    pub fn machine_busy_pct(&self, nproc: usize) -> Option<f64> {
        self.machine_busy_s
            .map(|b| 100.0 * b / (self.wall_s.max(1e-9) * nproc.max(1) as f64))
    }

    pub fn to_json(self) -> Json {
        let nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Json::obj()
            .with("wall_seconds", self.wall_s)
            .with("broker_cpu_seconds", self.broker_s)
            .with("client_cpu_seconds", self.client_s)
            .with("machine_busy_cpu_seconds", self.machine_busy_s)
            .with("machine_busy_percent", self.machine_busy_pct(nproc))
    }
}

impl CpuMark {
    pub fn now(broker_pid: Option<u32>) -> CpuMark {
        CpuMark {
            pid: broker_pid,
            at: std::time::Instant::now(),
            broker: broker_pid.and_then(|p| process_cpu_seconds(&p.to_string()).ok()),
            client: process_cpu_seconds("self").ok(),
            machine: machine_busy_seconds(),
        }
    }

    pub fn since(&self) -> CpuUsage {
        let later = CpuMark::now(self.pid);
        let diff = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        CpuUsage {
            broker_s: diff(self.broker, later.broker),
            client_s: diff(self.client, later.client),
            machine_busy_s: diff(self.machine, later.machine),
            wall_s: later.at.duration_since(self.at).as_secs_f64(),
        }
    }
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn cmd_out(cmd: &str, args: &[&str]) -> Option<String> {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
}

pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_kib: u64,
    pub kernel: String,
    pub hostname: String,
    pub clk_tck: u64,
    /// /proc/loadavg when the run started (other work on the machine skews figures).
    pub loadavg: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mem_total_kib = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Machine {
            nproc,
            cpu_model,
            mem_total_kib,
            kernel: read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            hostname: read_trim("/proc/sys/kernel/hostname").unwrap_or_default(),
            clk_tck: clk_tck(),
            loadavg: read_trim("/proc/loadavg").unwrap_or_default(),
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "{} CPUs ({}), {:.1} GiB RAM, Linux {}; loadavg at start {}",
            self.nproc,
            self.cpu_model,
            self.mem_total_kib as f64 / (1024.0 * 1024.0),
            self.kernel,
            self.loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        )
    }

    pub fn to_json(&self) -> Json {
        Json::obj()
            .with("nproc", self.nproc)
            .with("cpu_model", self.cpu_model.as_str())
            .with("mem_total_kib", self.mem_total_kib)
            .with("kernel", self.kernel.as_str())
            .with("hostname", self.hostname.as_str())
            .with("clk_tck", self.clk_tck)
            .with("loadavg_at_start", self.loadavg.as_str())
    }
}

/// Dirty + Writeback page-cache kibibytes from /proc/meminfo.
pub fn dirty_kib() -> Option<u64> {
    let mi = std::fs::read_to_string("/proc/meminfo").ok()?;
    let mut total = 0;
    let mut found = false;
    for l in mi.lines() {
        if l.starts_with("Dirty:") || l.starts_with("Writeback:") {
            total += l.split_whitespace().nth(1)?.parse::<u64>().ok()?;
            found = true;
        }
    }
    found.then_some(total)
}

/// `git rev-parse HEAD` of the repository the tool is run from (falls back to
/// the repository this crate was built from).
pub fn git_head() -> Option<String> {
    cmd_out("git", &["rev-parse", "HEAD"]).or_else(|| {
        cmd_out(
            "git",
            &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"],
        )
    })
}

/// Whether the working tree has uncommitted changes (other crates may be
/// mid-edit while the figures are taken; recorded for honesty).
pub fn git_dirty() -> Option<bool> {
    cmd_out("git", &["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        let stat = "1234 (my (weird) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat).unwrap(), 325);
    }

    #[test]
    fn reads_own_cpu() {
        assert!(process_cpu_seconds("self").unwrap() >= 0.0);
    }
}
