//! Broker start-up, the shared [`Broker`] state and shutdown.
//!
//! Start-up order: open the metadata quorum (which replays the metadata log),
//! register this broker through the log and unfence it, open the logs of the
//! partitions this node hosts, then bind the Kafka listeners. A task follows
//! the metadata image and creates or deletes local partitions as topics come
//! and go. Shutdown stops the listeners, closes every log cleanly (so the next
//! start skips full recovery) and stops the quorum.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use klamm_config::{BrokerConfig, LoadedConfig};
use klamm_raft::{BrokerEndpoint, MetadataCommand, MetadataQuorum, QuorumConfig};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::net::{serve_listener, BoundListener};
use crate::producer_ids::ProducerIdAllocator;
use crate::replica::ReplicaManager;
use crate::topics::rejection_error_code;
use klamm_protocol::ErrorCode;

/// State shared by every connection and background task of one broker.
pub struct Broker {
    pub node_id: i32,
    pub config: BrokerConfig,
    /// The key/value pairs the operator gave (file + overrides), reported by
    /// DescribeConfigs as static broker configs.
    pub static_config: BTreeMap<String, String>,
    pub quorum: MetadataQuorum,
    pub replicas: ReplicaManager,
    pub producer_ids: ProducerIdAllocator,
    /// The consumer-group coordinator (shards of `__consumer_offsets` led here).
    pub groups: crate::group::GroupCoordinator,
    /// The Kafka listeners actually bound (ports resolved), by listener name.
    pub bound: Vec<(String, SocketAddr)>,
}

impl Broker {
    /// Proposes a metadata command and, once it is committed and applied,
    /// brings the local partitions in line, so that what an admin handler
    /// answers already holds on this broker. A rejection maps to Kafka's
    /// error code.
    pub async fn apply_metadata(&self, command: MetadataCommand) -> Result<(), (ErrorCode, String)> {
        let outcome = self
            .quorum
            .propose(command)
            .await
            .map_err(|e| (ErrorCode::REQUEST_TIMED_OUT, format!("metadata log unavailable: {e}")))?;
        outcome.into_result().map_err(|r| (rejection_error_code(r.code), r.message))?;
        // The change is committed whatever happens locally; a local failure
        // (a log that cannot be opened) is the partition's problem, reported
        // by produce and fetch, as in Kafka where the controller answers.
        if let Err(e) = self.replicas.reconcile(&self.quorum.image()) {
            warn!(error = %e, "applying metadata to local partitions failed");
        }
        Ok(())
    }
}

/// A running broker; dropping it does not stop it, call [`RunningBroker::shutdown`].
pub struct RunningBroker {
    pub broker: Arc<Broker>,
    shutdown_tx: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl RunningBroker {
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown_tx.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.broker.replicas.close_all();
        self.broker.quorum.shutdown().await.context("stop metadata quorum")?;
        info!("broker stopped");
        Ok(())
    }
}

fn metadata_dir(config: &BrokerConfig) -> PathBuf {
    config.log_dirs[0].join("__cluster_metadata-0")
}

/// Starts a broker with `config`; returns once it accepts connections.
pub async fn start(loaded: LoadedConfig) -> anyhow::Result<RunningBroker> {
    let config = loaded.config.clone();
    let static_config = loaded.original.clone();
    let log_dir = config.log_dirs.first().cloned().context("log.dirs is empty")?;
    std::fs::create_dir_all(&log_dir).with_context(|| format!("create log dir {}", log_dir.display()))?;
    let log_dir = log_dir.canonicalize().unwrap_or(log_dir);
    info!(node_id = config.node_id, data = %log_dir.display(), "starting klamm");

    let voters = config.controller_quorum_voters.iter().map(|v| (v.id, v.host_port())).collect();
    let quorum = MetadataQuorum::start(QuorumConfig {
        node_id: config.node_id,
        data_dir: metadata_dir(&config),
        voters,
        cluster_id: config.cluster_id.clone(),
    })
    .await
    .context("start metadata quorum")?;

    // Bind listeners first so the registration carries the real ports.
    let controller_names: Vec<String> = config.controller_listener_names.clone();
    let mut bound_listeners = Vec::new();
    for l in config.listeners.iter().filter(|l| !controller_names.contains(&l.name)) {
        let b = BoundListener::bind(&l.name, &l.host, l.port)
            .await
            .with_context(|| format!("bind listener {}://{}:{}", l.name, l.host, l.port))?;
        bound_listeners.push(b);
    }
    let bound: Vec<(String, SocketAddr)> = bound_listeners.iter().map(|b| (b.name.clone(), b.local_addr)).collect();

    let endpoints = advertised_endpoints(&config, &bound);
    let registration = quorum
        .propose(MetadataCommand::RegisterBroker {
            node_id: config.node_id,
            incarnation_id: rand::random(),
            endpoints,
            rack: config.broker_rack.clone(),
        })
        .await
        .context("register broker")?
        .into_result()
        .map_err(|r| anyhow::anyhow!("broker registration rejected: {r}"))?;
    let broker_epoch = registration.broker_epoch.unwrap_or_default();

    let replicas = ReplicaManager::open(config.node_id, log_dir.clone(), loaded, &quorum.image())
        .context("open partition logs")?;

    quorum
        .propose(MetadataCommand::UnfenceBroker { node_id: config.node_id, epoch: broker_epoch })
        .await
        .context("unfence broker")?
        .into_result()
        .map_err(|r| anyhow::anyhow!("unfencing rejected: {r}"))?;

    let broker = Arc::new(Broker {
        node_id: config.node_id,
        producer_ids: ProducerIdAllocator::new(config.node_id),
        groups: crate::group::GroupCoordinator::new(config.node_id, &config),
        config,
        static_config,
        quorum,
        replicas,
        bound,
    });

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(follow_metadata(broker.clone(), shutdown_rx.clone()));
    tasks.spawn(crate::replica::maintenance::run(broker.clone(), shutdown_rx.clone()));
    tasks.spawn(crate::replica::cleaner::run(broker.clone(), shutdown_rx.clone()));
    tasks.spawn(crate::group::GroupCoordinator::run(broker.clone(), shutdown_rx.clone()));
    for l in bound_listeners {
        info!(listener = %l.name, addr = %l.local_addr, "listening");
        tasks.spawn(serve_listener(l, broker.clone(), shutdown_rx.clone()));
    }
    Ok(RunningBroker { broker, shutdown_tx, tasks })
}

/// The endpoints this broker advertises: `advertised.listeners`, with port 0
/// replaced by the port actually bound, and a wildcard host by 127.0.0.1.
fn advertised_endpoints(config: &BrokerConfig, bound: &[(String, SocketAddr)]) -> Vec<BrokerEndpoint> {
    config
        .advertised_listeners
        .iter()
        .filter(|l| !config.controller_listener_names.contains(&l.name))
        .map(|l| {
            let bound_addr = bound.iter().find(|(n, _)| n == &l.name).map(|(_, a)| *a);
            let port = if l.port == 0 { bound_addr.map(|a| a.port()).unwrap_or(0) } else { l.port };
            let host = if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" {
                "127.0.0.1".to_string()
            } else {
                l.host.clone()
            };
            BrokerEndpoint {
                listener: l.name.clone(),
                host,
                port,
                security_protocol: config
                    .listener_security_protocol_map
                    .get(&l.name)
                    .map(|p| p.name().to_string())
                    .unwrap_or_else(|| "PLAINTEXT".to_string()),
            }
        })
        .collect()
}

/// Keeps the local partitions in step with the metadata image.
async fn follow_metadata(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut images = broker.quorum.subscribe();
    loop {
        let image = images.borrow_and_update().clone();
        if let Err(e) = broker.replicas.reconcile(&image) {
            warn!(error = %e, "applying metadata to local partitions failed");
        }
        tokio::select! {
            changed = images.changed() => if changed.is_err() { break },
            _ = shutdown.changed() => if *shutdown.borrow() { break },
        }
    }
}
