//! The `klamm` binary: parse the command line, load the configuration, run
//! the broker until SIGINT/SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tracing::{info, warn};

/// Klamm: a Kafka-compatible event-streaming broker.
///
/// With no arguments it runs a combined broker+controller single node with
/// the Kafka listener on 127.0.0.1:9092 and data under ./klamm-data.
#[derive(Parser, Debug)]
#[command(name = "klamm", version)]
struct Cli {
    /// A server.properties-style file with Kafka property names.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set one property, e.g. `--override num.partitions=3` (repeatable; wins over the file).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Keeps large buffers (fetch reads and responses, produce frames: up to tens of MiB) in
/// the heap once freed. glibc's default serves them with a fresh mmap and returns them with
/// munmap, so every fetch paid page faults and kernel page clearing for its buffers; a
/// profile of a consume run showed that as the largest share of the broker's CPU. Fixed
/// thresholds also stop glibc from trimming the heap after each large free. (Fetch reads
/// are capped well below the threshold for the same reason: `handlers::fetch`.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // the only unsafe in the broker: one FFI call to set allocator options
fn keep_large_buffers_in_heap() {
    // SAFETY: mallopt only sets allocator parameters; it runs before any other thread exists.
    unsafe {
        // 32 MiB is the largest threshold glibc accepts on 64-bit; larger values are refused.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_buffers_in_heap() {}

fn main() -> anyhow::Result<()> {
    keep_large_buffers_in_heap();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KLAMM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_target(false)
        // Colour codes only for a terminal, not in log files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let loaded = klamm_config::BrokerConfig::load(cli.config.as_deref(), &cli.overrides)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("load configuration")?;
    for warning in loaded.unknown_key_warnings() {
        warn!("{warning}: ignored");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("klamm")
        .build()
        .context("start tokio runtime")?;
    runtime.block_on(async move {
        let running = klamm_broker::server::start_node(loaded).await?;
        wait_for_signal().await;
        info!("shutting down");
        running.shutdown().await
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
