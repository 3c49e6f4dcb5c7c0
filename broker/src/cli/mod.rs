//! The `klamm` admin subcommands (`klamm topics ...`, `klamm groups ...`, ...): their
//! command-line grammar, the connection options they share, and how a command's
//! [`Report`](output::Report) is printed and turned into an exit code.
//!
//! One module per command group ([`topics`], [`groups`], [`configs`], [`cluster`],
//! [`produce`], [`consume`]); later groups (`acls`, `transactions`) add a module and a
//! [`Command`] variant. They share the Kafka client in [`client`], the command-config
//! parsing in [`props`] and the table/JSON/error helpers in [`output`].

pub mod client;
pub mod cluster;
pub mod configs;
pub mod consume;
pub mod groups;
pub mod output;
pub mod produce;
pub mod props;
pub mod reset;
pub mod topics;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use client::{Cluster, ConnectOptions};
use output::Report;

/// The admin subcommands. With none, `klamm` runs the broker.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List, create, describe, alter and delete topics.
    Topics {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: topics::TopicsCommand,
    },
    /// List, describe and delete consumer groups; reset their committed offsets.
    Groups {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: groups::GroupsCommand,
    },
    /// Describe and change topic and broker configurations.
    Configs {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: configs::ConfigsCommand,
    },
    /// The cluster: brokers, controller, metadata quorum, partition health.
    Cluster {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Produce records from standard input or a file, one per line.
    Produce {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: produce::ProduceArgs,
    },
    /// Consume records and print them.
    Consume {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: consume::ConsumeArgs,
    },
}

/// How to reach the cluster and how to print; accepted before or after the subcommand.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Brokers to bootstrap from: `host:port[,host:port...]`.
    #[arg(long, global = true, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// A Kafka client properties file: security.protocol, sasl.mechanism, sasl.jaas.config,
    /// ssl.truststore.*, ssl.keystore.* (PEM or PKCS12), ssl.key.password, client.id.
    #[arg(long, global = true, value_name = "FILE")]
    command_config: Option<PathBuf>,
    /// Print one JSON document (JSON lines for `consume`) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Bound on connecting to a broker and on each request.
    #[arg(long, global = true, value_name = "MS", default_value_t = 10_000)]
    request_timeout_ms: u64,
}

impl Connection {
    fn options(&self) -> anyhow::Result<ConnectOptions> {
        let bootstrap = client::parse_bootstrap(&self.bootstrap_server)?;
        let (security, client_id) = match &self.command_config {
            None => (Default::default(), None),
            Some(path) => {
                let props = props::ClientProperties::load(path)?;
                for key in &props.ignored {
                    eprintln!("warning: --command-config: {key} is not used by klamm; ignored");
                }
                (props.security()?, props.client_id.clone())
            }
        };
        Ok(ConnectOptions {
            bootstrap,
            security,
            client_id: client_id.unwrap_or_else(|| "klamm-cli".into()),
            timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
        })
    }

    async fn connect(&self) -> anyhow::Result<Cluster> {
        Cluster::connect(self.options()?).await
    }
}

/// Runs one subcommand; returns the process exit code (0 only when every item succeeded).
pub fn run(command: Command) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: start the runtime: {e}");
            return 1;
        }
    };
    let json = match &command {
        Command::Topics { conn, .. }
        | Command::Groups { conn, .. }
        | Command::Configs { conn, .. }
        | Command::Cluster { conn, .. }
        | Command::Produce { conn, .. }
        | Command::Consume { conn, .. } => conn.json,
    };
    match runtime.block_on(dispatch(command)) {
        Ok(report) => {
            if json {
                if !report.json.is_null() {
                    println!("{}", serde_json::to_string_pretty(&report.json).unwrap_or_default());
                }
            } else {
                print!("{}", report.text);
            }
            for failure in &report.failures {
                eprintln!("error: {failure}");
            }
            i32::from(!report.failures.is_empty())
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<Report> {
    match command {
        Command::Topics { conn, command } => topics::run(&mut conn.connect().await?, command).await,
        Command::Groups { conn, command } => groups::run(&mut conn.connect().await?, command).await,
        Command::Configs { conn, command } => configs::run(&mut conn.connect().await?, command).await,
        Command::Cluster { conn, command } => cluster::run(&mut conn.connect().await?, command).await,
        Command::Produce { conn, args } => produce::run(&mut conn.connect().await?, args).await,
        Command::Consume { conn, args } => consume::run(&mut conn.connect().await?, args, conn.json).await,
    }
}

/// `key=value` as a pair (config settings, headers).
pub fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{text:?}: expected KEY=VALUE")),
    }
}
