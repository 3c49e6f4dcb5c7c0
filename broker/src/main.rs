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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KLAMM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_target(false)
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
