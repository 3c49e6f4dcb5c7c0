//! Starting a broker binary for the run (`--spawn-broker`) and the scratch
//! directory the run writes to.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A per-run scratch directory under the system temp dir (or `--work-dir`),
/// removed on drop unless `keep` is set.
pub struct ScratchDir {
    pub path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    pub fn create(parent: Option<&Path>, keep: bool) -> Result<ScratchDir> {
        let parent = parent
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let path = parent.join(format!("klamm-bench-{}-{}", std::process::id(), stamp));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(ScratchDir { path, keep })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("keeping scratch dir {}", self.path.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: could not remove {}: {e}", self.path.display());
        }
    }
}

/// A broker process started by this tool. Dropping it stops that one PID
/// (SIGTERM, then SIGKILL after a grace period) and nothing else.
pub struct SpawnedBroker {
    child: Child,
    pub pid: u32,
    pub bootstrap: String,
    pub controller_port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub args: Vec<String>,
}

/// A loopback port that was free a moment ago (bind to :0, read, release).
fn free_loopback_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl SpawnedBroker {
    pub fn start(
        binary: &Path,
        scratch: &Path,
        extra_overrides: &[String],
        startup_timeout: Duration,
    ) -> Result<SpawnedBroker> {
        if !binary.is_file() {
            bail!(
                "broker binary {} not found (build it with `cargo build --release -p klamm-broker`)",
                binary.display()
            );
        }
        let port = free_loopback_port()?;
        let mut controller_port = free_loopback_port()?;
        while controller_port == port {
            controller_port = free_loopback_port()?;
        }
        let data_dir = scratch.join("data");
        std::fs::create_dir_all(&data_dir)?;
        let log_path = scratch.join("broker.log");
        let log = File::create(&log_path)?;

        let mut args: Vec<String> = Vec::new();
        let mut ov = |kv: String| {
            args.push("--override".into());
            args.push(kv);
        };
        ov(format!(
            "listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
        ));
        ov(format!("advertised.listeners=PLAINTEXT://127.0.0.1:{port}"));
        ov("controller.listener.names=CONTROLLER".into());
        ov(format!("controller.quorum.voters=1@127.0.0.1:{controller_port}"));
        ov(format!("log.dirs={}", data_dir.display()));
        ov("node.id=1".into());
        ov("process.roles=broker,controller".into());
        for kv in extra_overrides {
            ov(kv.clone());
        }

        let child = Command::new(binary)
            .args(&args)
            // Plain log file (tracing-subscriber honours NO_COLOR).
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        let mut broker = SpawnedBroker {
            child,
            pid,
            bootstrap: format!("127.0.0.1:{port}"),
            controller_port,
            data_dir,
            log_path,
            args,
        };

        // Wait (bounded) until the Kafka listener accepts connections.
        let addr: SocketAddr = broker.bootstrap.parse()?;
        let deadline = Instant::now() + startup_timeout;
        loop {
            if let Some(status) = broker.child.try_wait()? {
                bail!(
                    "broker exited during start-up ({status}); last log lines:\n{}",
                    broker.log_tail(30)
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "broker did not listen on {} within {:?}; last log lines:\n{}",
                    broker.bootstrap,
                    startup_timeout,
                    broker.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(broker)
    }

    pub fn command_line(&self, binary: &Path) -> String {
        let mut s = binary.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn exit_status(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = strip_ansi(&std::fs::read_to_string(&self.log_path).unwrap_or_default());
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stop exactly the process we started: SIGTERM via `kill PID`, wait up to
    /// 10 s, then SIGKILL through the child handle.
    pub fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SpawnedBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Drop ANSI escape sequences (ESC '[' ... final letter) from log text.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Refuse anything but loopback: this tool generates heavy load and must only
/// ever point at a broker on the same machine.
pub fn check_loopback(bootstrap: &str) -> Result<()> {
    for server in bootstrap.split(',') {
        let server = server.trim();
        let addrs: Vec<SocketAddr> = server
            .to_socket_addrs()
            .with_context(|| format!("resolving {server:?} (expected host:port)"))?
            .collect();
        if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
            bail!("{server} is not a loopback address; klamm-bench only drives local brokers");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ansi() {
        assert_eq!(strip_ansi("\u{1b}[2mtime\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"), "time  INFO x");
    }

    #[test]
    fn loopback_only() {
        assert!(check_loopback("127.0.0.1:9092").is_ok());
        assert!(check_loopback("localhost:9092").is_ok());
        assert!(check_loopback("[::1]:9092").is_ok());
        assert!(check_loopback("10.1.2.3:9092").is_err());
        assert!(check_loopback("127.0.0.1:9092,8.8.8.8:9092").is_err());
        assert!(check_loopback("127.0.0.1").is_err());
    }
}
