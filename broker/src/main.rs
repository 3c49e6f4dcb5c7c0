//! The `klamm` binary: parse the command line; with an admin subcommand (`klamm topics
//! ...`, see [`cli`]) run it against a cluster, otherwise load the configuration and run
//! the broker until SIGINT/SIGTERM.

mod cli;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tracing::{info, warn};

/// Klamm: a Kafka-compatible event-streaming broker.
///
/// With no arguments it runs a combined broker+controller single node with
/// the Kafka listener on 127.0.0.1:9092 and data under ./klamm-data.
#[derive(Parser, Debug)]
///
/// With a subcommand it administers a running Kafka-compatible cluster instead.
#[command(name = "klamm", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<cli::Command>,
    /// A server.properties-style file with Kafka property names.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set one property, e.g. `--override num.partitions=3` (repeatable; wins over the file).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Store a SCRAM credential unless the metadata log has one for that user and mechanism,
    /// as `kafka-storage format --add-scram` does:
    /// `--add-scram 'SCRAM-SHA-512=[name=admin,password=admin-secret]'` (repeatable;
    /// `iterations=N` optional). Needs the broker role.
    #[arg(long = "add-scram", value_name = "MECHANISM=[name=..,password=..]")]
    add_scram: Vec<String>,
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

/// Raises the soft limit on open files to the hard limit. A partition holds
/// a descriptor for its active segment (and one per sealed segment it
/// reads), so the soft limit most Linux machines start processes with (1 024)
/// would make a topic of a few hundred partitions fail to open; Kafka's
/// documentation asks operators for 100 000 and more. The hard limit is the
/// operator's ceiling; both are logged so a failure to open can be traced.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    // An unlimited hard limit still cannot pass the kernel's `fs.nr_open`.
    let ceiling = before.maximum.or_else(|| std::fs::read_to_string("/proc/sys/fs/nr_open").ok()?.trim().parse().ok());
    let wanted = Rlimit { current: ceiling, maximum: before.maximum };
    let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |n| n.to_string());
    if ceiling.is_none() || before.current == ceiling {
        info!(soft = %show(before.current), hard = %show(before.maximum), "open file limit");
        return;
    }
    match setrlimit(Resource::Nofile, wanted) {
        Ok(()) => {
            let after = getrlimit(Resource::Nofile);
            info!(soft = %show(after.current), hard = %show(after.maximum), was = %show(before.current), "raised the open file limit to its hard limit");
        }
        Err(e) => warn!(soft = %show(before.current), hard = %show(before.maximum), error = %e, "could not raise the open file limit"),
    }
}

/// Human-readable lines by default; one JSON object per line with
/// `KLAMM_LOG_FORMAT=json` (for log shippers). `KLAMM_LOG` takes an `EnvFilter`
/// directive (default `info,openraft=warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KLAMM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let json = std::env::var("KLAMM_LOG_FORMAT").is_ok_and(|v| v.trim().eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if json {
        builder.json().with_current_span(false).init();
    } else {
        // Colour codes only for a terminal, not in log files and pipes.
        builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
}

fn main() -> anyhow::Result<()> {
    keep_large_buffers_in_heap();
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        std::process::exit(cli::run(command));
    }
    init_logging();

    raise_open_file_limit();

    let environment = klamm_config::environment::properties_from_env(std::env::vars());
    if !environment.is_empty() {
        let keys: Vec<&str> = environment.keys().map(String::as_str).collect();
        info!(?keys, "properties from KAFKA_* environment variables");
    }
    let loaded = klamm_config::BrokerConfig::load_layered(cli.config.as_deref(), environment, &cli.overrides)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("load configuration")?;
    for warning in loaded.unknown_key_warnings() {
        warn!("{warning}: ignored");
    }
    for key in &loaded.ignored_keys {
        warn!("configuration {key:?} is accepted for compatibility but has no effect in Klamm");
    }

    let add_scram = cli
        .add_scram
        .iter()
        .map(|s| klamm_broker::security::bootstrap::ScramBootstrap::parse(s).map_err(|e| anyhow::anyhow!("--add-scram {s}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("klamm")
        .build()
        .context("start tokio runtime")?;
    runtime.block_on(async move {
        let running = klamm_broker::server::start_node(loaded).await?;
        if !add_scram.is_empty() {
            let klamm_broker::server::RunningNode::Broker(b) = &running else {
                anyhow::bail!("--add-scram needs a node with the broker role");
            };
            klamm_broker::security::bootstrap::add_missing(&b.broker, &add_scram).await?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn broker_flags_still_run_the_broker() {
        let cli = Cli::try_parse_from(["klamm", "-c", "server.properties", "--override", "num.partitions=3"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.overrides, vec!["num.partitions=3".to_string()]);
        assert!(Cli::try_parse_from(["klamm"]).unwrap().command.is_none());
    }

    #[test]
    fn subcommands_take_connection_options_before_or_after() {
        for argv in [
            &["klamm", "topics", "--bootstrap-server", "h:1", "--json", "list"][..],
            &["klamm", "topics", "list", "--bootstrap-server", "h:1", "--json"][..],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            let Some(cli::Command::Topics { .. }) = cli.command else { panic!("not topics: {argv:?}") };
        }
        assert!(Cli::try_parse_from(["klamm", "groups", "reset-offsets", "--group", "g", "--all-topics", "--shift-by", "-3"]).is_ok());
        // A subcommand does not mix with the broker's own flags.
        assert!(Cli::try_parse_from(["klamm", "--override", "a=b", "topics", "list"]).is_err());
        assert!(Cli::try_parse_from(["klamm", "configs", "describe"]).is_err(), "--topic or --broker is required");
        assert!(Cli::try_parse_from(["klamm", "configs", "describe", "--topic", "t", "--broker", "1"]).is_err());
    }
}
