//! Raw sequential write bandwidth of the filesystem holding the data dir, as
//! the yardstick for the broker's produce figures.

use anyhow::{Context, Result};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::json::{Json, JsonExt};

pub struct DiskResult {
    pub path: String,
    pub requested_bytes: u64,
    pub bytes: u64,
    pub block_size: usize,
    pub write_seconds: f64,
    pub fsync_seconds: f64,
    pub truncated_by_deadline: bool,
}

impl DiskResult {
    /// MB/s (1 MB = 1e6 bytes) of the write() calls alone: mostly page cache.
    pub fn mbps_no_fsync(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.write_seconds.max(1e-9)
    }
    /// MB/s including the final fsync: what the device sustained.
    pub fn mbps_with_fsync(&self) -> f64 {
        self.bytes as f64 / 1e6 / (self.write_seconds + self.fsync_seconds).max(1e-9)
    }

    pub fn to_json(&self) -> Json {
        Json::obj()
            .with("phase", "disk")
            .with("path", self.path.as_str())
            .with("requested_bytes", self.requested_bytes)
            .with("bytes", self.bytes)
            .with("block_size", self.block_size)
            .with("write_seconds", self.write_seconds)
            .with("fsync_seconds", self.fsync_seconds)
            .with("mb_per_s_without_fsync", self.mbps_no_fsync())
            .with("mb_per_s_with_fsync", self.mbps_with_fsync())
            .with("truncated_by_deadline", self.truncated_by_deadline)
    }
}

/// Write `bytes` in `block`-sized writes to a new file in `dir`, fsync once at
/// the end, delete the file. Stops writing early at `max`.
pub fn run(dir: &Path, bytes: u64, block: usize, max: Duration) -> Result<DiskResult> {
    let path = dir.join("klamm-bench-disk.tmp");
    let mut buf = vec![0u8; block];
    // Non-constant content, in case the filesystem compresses or dedups.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    let result = (|| -> Result<DiskResult> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let start = Instant::now();
        let deadline = start + max;
        let mut written = 0u64;
        let mut truncated = false;
        while written < bytes {
            if Instant::now() >= deadline {
                truncated = true;
                break;
            }
            let n = ((bytes - written) as usize).min(block);
            f.write_all(&buf[..n])?;
            written += n as u64;
        }
        let write_seconds = start.elapsed().as_secs_f64();
        let t = Instant::now();
        f.sync_all().context("fsync")?;
        let fsync_seconds = t.elapsed().as_secs_f64();
        Ok(DiskResult {
            path: path.display().to_string(),
            requested_bytes: bytes,
            bytes: written,
            block_size: block,
            write_seconds,
            fsync_seconds,
            truncated_by_deadline: truncated,
        })
    })();
    let _ = std::fs::remove_file(&path);
    result
}
