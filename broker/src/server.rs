//! Node start-up by `process.roles`, the shared [`Broker`] state and shutdown.
//!
//! [`start_node`] picks what to run:
//! - `broker,controller` (the embedded single node too): a voter of the metadata quorum
//!   ([`MetadataSource::Voter`]) that also serves Kafka clients;
//! - `controller`: a voter only ([`RunningController`]): no Kafka listener, no partitions;
//! - `broker`: a [`MetadataSource::Follower`] of the controllers in `controller.quorum.voters`.
//!
//! Every voter also runs the [`crate::controller`] task, which acts only while this node is
//! the active controller (fencing brokers that stopped answering, electing leaders).
//!
//! Broker start-up order: start the metadata source (a voter replays the metadata log),
//! bind the Kafka listeners (so the registration carries the real ports), register this
//! broker through the log, open the logs of the partitions this node hosts (on a blocking
//! thread), start the [`Reconciler`], unfence, and wait until the reconciler has taken up the
//! partitions unfencing handed back. From then on the reconciler creates or deletes local
//! partitions as topics come and go; a second task asks to be unfenced again when needed.
//! Shutdown is Kafka's controlled shutdown: first, when other brokers exist, this broker is
//! fenced through the metadata log, which moves its leaderships to other ISR members and
//! takes it out of the ISRs (clients see NOT_LEADER_OR_FOLLOWER and find the new leaders at
//! once instead of after the session timeout); then the listeners and tasks stop, every log
//! is closed cleanly (so the next start skips full recovery) and the quorum stops.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use klamm_config::{BrokerConfig, LoadedConfig};
use klamm_raft::{
    BrokerEndpoint, CommandOutcome, FollowerConfig, MetadataCommand, MetadataFollower, MetadataQuorum, QuorumConfig, QuorumTuning,
    TcpTransport, TcpTransportConfig,
};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::metadata::MetadataSource;
use crate::net::{serve_listener, BoundListener};
use crate::producer_ids::ProducerIdAllocator;
use crate::replica::reconciler::Reconciler;
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
    /// The metadata image and proposals (a quorum voter or a follower of the controllers).
    pub metadata: MetadataSource,
    /// The broker epoch of this broker's registration.
    pub broker_epoch: i64,
    pub replicas: Arc<ReplicaManager>,
    /// The task that keeps `replicas` in step with the metadata image.
    pub reconciler: Reconciler,
    pub producer_ids: ProducerIdAllocator,
    /// The consumer-group coordinator (shards of `__consumer_offsets` led here).
    pub groups: crate::group::GroupCoordinator,
    /// The transaction coordinator (shards of `__transaction_state` led here).
    pub txns: crate::txn::TxnCoordinator,
    /// The Kafka listeners actually bound (ports resolved), by listener name.
    pub bound: Vec<(String, SocketAddr)>,
    /// Set when a controlled shutdown begins: from then on this broker stays fenced.
    pub shutting_down: std::sync::atomic::AtomicBool,
    /// ACL enforcement (`authorizer.class.name`, `super.users`, ...).
    pub authorizer: crate::security::authorizer::Authorizer,
    /// How follower fetches connect to the leaders' inter-broker listener (TLS, SASL login).
    pub inter_broker_security: crate::security::client::ClientSecurity,
    /// Schema ids the registry's store has applied, for broker-side schema validation.
    pub schema_ids: crate::registry::KnownSchemaIds,
    /// What the data path counts for `/metrics` (relaxed atomics, see `crate::metrics`).
    pub metrics: Arc<crate::metrics::BrokerMetrics>,
}

impl Broker {
    /// Proposes a metadata command and, once it is committed and applied,
    /// waits for the reconciler to bring the local partitions in line, so that
    /// what an admin handler answers already holds on this broker. A rejection maps to Kafka's
    /// error code.
    pub async fn apply_metadata(&self, command: MetadataCommand) -> Result<(), (ErrorCode, String)> {
        let outcome = self
            .metadata
            .propose(command)
            .await
            .map_err(|e| (ErrorCode::REQUEST_TIMED_OUT, format!("metadata log unavailable: {e}")))?;
        let applied = outcome.into_result().map_err(|r| (rejection_error_code(r.code), r.message))?;
        // The change is committed whatever happens locally; a local failure
        // (a log that cannot be opened) is the partition's problem, reported
        // by produce and fetch, as in Kafka where the controller answers.
        self.reconciler.caught_up(applied.log_index).await;
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
        self.broker.shutting_down.store(true, std::sync::atomic::Ordering::SeqCst);
        // Bounded: with the quorum going down too (a whole cluster stopping) nobody may commit.
        if tokio::time::timeout(Duration::from_secs(5), fence_self(&self.broker)).await.is_err() {
            warn!("fencing this broker on shutdown timed out; the controller fences it after the session timeout");
        }
        let _ = self.shutdown_tx.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.broker.replicas.close_all();
        self.broker.metadata.shutdown().await.context("stop metadata quorum")?;
        info!("broker stopped");
        Ok(())
    }
}

/// Controlled shutdown of a multi-broker cluster: fencing this broker moves its leaderships
/// to other in-sync replicas and takes it out of the ISRs (the metadata image does that when
/// it applies the fence; a partition with no other ISR member goes leaderless). A single
/// node skips this, so that it restarts exactly as it stopped.
async fn fence_self(broker: &Broker) {
    let image = broker.metadata.image();
    if image.brokers.keys().all(|id| *id == broker.node_id) {
        return;
    }
    let fence = MetadataCommand::FenceBroker { node_id: broker.node_id, epoch: broker.broker_epoch };
    match broker.metadata.propose(fence).await {
        Ok(outcome) => {
            if let CommandOutcome::Applied(info) = outcome {
                broker.reconciler.caught_up(info.log_index).await;
            }
            info!("controlled shutdown: leaderships moved away");
        }
        Err(e) => warn!(error = %e, "fencing this broker on shutdown failed"),
    }
}

/// A controller-only node (`process.roles=controller`): a quorum voter and nothing else.
pub struct RunningController {
    pub quorum: MetadataQuorum,
    shutdown_tx: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl RunningController {
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown_tx.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.quorum.shutdown().await.context("stop metadata quorum")?;
        info!("controller stopped");
        Ok(())
    }
}

/// What [`start_node`] started, by `process.roles`.
pub enum RunningNode {
    Broker(RunningBroker),
    Controller(RunningController),
}

impl RunningNode {
    pub async fn shutdown(self) -> anyhow::Result<()> {
        match self {
            RunningNode::Broker(b) => b.shutdown().await,
            RunningNode::Controller(c) => c.shutdown().await,
        }
    }
}

/// Starts what `process.roles` asks for: a broker (combined with a controller or not) or a
/// controller only.
pub async fn start_node(loaded: LoadedConfig) -> anyhow::Result<RunningNode> {
    if loaded.config.is_broker() {
        return Ok(RunningNode::Broker(start(loaded).await?));
    }
    let config = loaded.config;
    let log_dir = prepare_log_dir(&config)?;
    info!(node_id = config.node_id, data = %log_dir.display(), "starting klamm controller");
    let quorum = start_quorum(&config).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(crate::controller::run(quorum.clone(), controller_settings(&config)?, shutdown_rx));
    info!(voters = ?quorum_voters(&config), "controller running");
    Ok(RunningNode::Controller(RunningController { quorum, shutdown_tx, tasks }))
}

fn controller_settings(config: &BrokerConfig) -> anyhow::Result<crate::controller::Settings> {
    let mut probe_security = crate::security::client::ClientSecurity::inter_broker(config)?;
    probe_security.sasl = None;
    Ok(crate::controller::Settings {
        session_timeout: Duration::from_millis(config.broker_session_timeout_ms.max(1) as u64),
        unclean_leader_election: config.unclean_leader_election_enable,
        leader_balance: crate::controller::leader_balance::Settings::from_config(config),
        inter_broker_listener: config.inter_broker_listener_name.clone(),
        probe_security,
        ..Default::default()
    })
}

fn quorum_voters(config: &BrokerConfig) -> Vec<(i32, String)> {
    config.controller_quorum_voters.iter().map(|v| (v.id, v.host_port())).collect()
}

fn prepare_log_dir(config: &BrokerConfig) -> anyhow::Result<PathBuf> {
    let log_dir = config.log_dirs.first().cloned().context("log.dirs is empty")?;
    std::fs::create_dir_all(&log_dir).with_context(|| format!("create log dir {}", log_dir.display()))?;
    Ok(log_dir.canonicalize().unwrap_or(log_dir))
}

/// Starts this node's voter, after checking that its entry in `controller.quorum.voters`
/// is the controller listener it is configured with (the quorum binds the voter address,
/// so a mismatch would silently listen somewhere else than `listeners` says).
async fn start_quorum(config: &BrokerConfig) -> anyhow::Result<MetadataQuorum> {
    let voters = quorum_voters(config);
    if let Some(own) = config.controller_quorum_voters.iter().find(|v| v.id == config.node_id) {
        let listener = config.listeners.iter().find(|l| config.controller_listener_names.contains(&l.name));
        if let Some(l) = listener {
            let wildcard = l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::";
            if l.port != own.port || (!wildcard && !l.host.eq_ignore_ascii_case(&own.host)) {
                anyhow::bail!(
                    "controller.quorum.voters names {} for node {}, but the controller listener {} is {}:{}; they must match",
                    own.host_port(),
                    config.node_id,
                    l.name,
                    l.host,
                    l.port
                );
            }
        }
    } else if voters.len() > 1 {
        anyhow::bail!(
            "node {} has process.roles containing controller but is not in controller.quorum.voters",
            config.node_id
        );
    }
    let single_controller_only = voters.len() == 1 && !config.is_broker();
    let own_address = voters.iter().find(|(id, _)| *id == config.node_id).map(|(_, a)| a.clone());
    let quorum_config = QuorumConfig {
        node_id: config.node_id,
        data_dir: metadata_dir(config),
        voters,
        cluster_id: config.cluster_id.clone(),
    };
    match own_address {
        // A lone voter normally talks to nobody (the embedded single node stays off the
        // network, as before), but a controller-only node exists to serve broker-only nodes:
        // it must listen on its controller listener even without other voters.
        Some(address) if single_controller_only => {
            let transport = TcpTransport::bind(&address, TcpTransportConfig::default())
                .await
                .with_context(|| format!("bind controller listener {address}"))?;
            MetadataQuorum::start_with(quorum_config, QuorumTuning::default(), transport)
                .await
                .context("start metadata quorum")
        }
        _ => MetadataQuorum::start(quorum_config).await.context("start metadata quorum"),
    }
}

fn metadata_dir(config: &BrokerConfig) -> PathBuf {
    config.log_dirs[0].join("__cluster_metadata-0")
}

/// Starts a broker with `config`; returns once it accepts connections.
pub async fn start(loaded: LoadedConfig) -> anyhow::Result<RunningBroker> {
    let config = loaded.config.clone();
    let static_config = loaded.original.clone();
    anyhow::ensure!(config.is_broker(), "process.roles has no broker role; use start_node");
    let log_dir = prepare_log_dir(&config)?;
    info!(node_id = config.node_id, data = %log_dir.display(), "starting klamm");
    // TLS files are read before anything binds, so a bad one stops start-up with no port open.
    let controller_names: Vec<String> = config.controller_listener_names.clone();
    let mut security = std::collections::HashMap::new();
    for l in config.listeners.iter().filter(|l| !controller_names.contains(&l.name)) {
        security.insert(l.name.clone(), Arc::new(crate::security::ListenerSecurity::for_listener(&config, &l.name)?));
    }
    let inter_broker_security = crate::security::client::ClientSecurity::inter_broker(&config)?;

    // The ops listener comes up first, so probes see /health and a 503 /ready during start-up.
    // Dropping `shutdown_tx` (a failed start) stops it too.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let ops = crate::http::ops::OpsState::new(config.node_id);
    if let Some(address) = &config.klamm_http_listener {
        let listener = crate::http::bind("klamm.http.listener", address).await?;
        info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "ops HTTP listener (/metrics, /health, /ready, /)");
        let service = crate::http::ops::OpsService::new(ops.clone());
        tasks.spawn(crate::http::serve(listener, service, crate::http::ops::MAX_BODY, None, shutdown_rx.clone()));
    }

    let metadata = if config.is_controller() {
        MetadataSource::Voter(start_quorum(&config).await?)
    } else {
        let controllers = quorum_voters(&config).into_iter().collect();
        let follower = MetadataFollower::start(FollowerConfig::new(controllers)).context("start metadata follower")?;
        MetadataSource::Follower(follower)
    };
    ops.set_metadata(metadata.clone());

    // Bind listeners first so the registration carries the real ports.
    let mut bound_listeners = Vec::new();
    for l in config.listeners.iter().filter(|l| !controller_names.contains(&l.name)) {
        let mut b = BoundListener::bind(&l.name, &l.host, l.port)
            .await
            .with_context(|| format!("bind listener {}://{}:{}", l.name, l.host, l.port))?;
        if let Some(s) = security.get(&l.name) {
            b.security = s.clone();
        }
        bound_listeners.push(b);
    }
    let bound: Vec<(String, SocketAddr)> = bound_listeners.iter().map(|b| (b.name.clone(), b.local_addr)).collect();

    let endpoints = advertised_endpoints(&config, &bound);
    let registration = metadata
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
    ops.set_registered(broker_epoch);

    // A partition that cannot be opened is served as offline, not fatal (see `replica`).
    // Opening and recovering logs is disk work: off the async workers.
    let (node_id, image) = (config.node_id, metadata.image());
    let replicas = tokio::task::spawn_blocking(move || ReplicaManager::open(node_id, log_dir, loaded, &image))
        .await
        .context("open hosted partitions")?;
    let replicas = Arc::new(replicas);

    let (reconciler, reconcile_task) = Reconciler::new(replicas.clone(), metadata.subscribe(), shutdown_rx.clone());
    tasks.spawn(reconcile_task);

    let unfenced = metadata
        .propose(MetadataCommand::UnfenceBroker { node_id: config.node_id, epoch: broker_epoch })
        .await
        .context("unfence broker")?
        .into_result()
        .map_err(|r| anyhow::anyhow!("unfencing rejected: {r}"))?;
    // Unfencing handed this broker back the partitions only it can lead: take them up
    // before serving.
    reconciler.caught_up(unfenced.log_index).await;
    ops.set_caught_up();

    let authorizer = crate::security::authorizer::Authorizer::from_config(&config);
    let broker = Arc::new(Broker {
        node_id: config.node_id,
        producer_ids: ProducerIdAllocator::new(config.node_id),
        groups: crate::group::GroupCoordinator::new(config.node_id, &config),
        txns: crate::txn::TxnCoordinator::new(config.node_id, &config),
        config,
        static_config,
        metadata,
        broker_epoch,
        replicas,
        reconciler,
        bound,
        shutting_down: std::sync::atomic::AtomicBool::new(false),
        authorizer,
        inter_broker_security,
        schema_ids: crate::registry::KnownSchemaIds::default(),
        metrics: Arc::default(),
    });

    tasks.spawn(unfence_when_fenced(broker.clone(), shutdown_rx.clone()));
    if let Some(quorum) = broker.metadata.quorum() {
        tasks.spawn(crate::controller::run(quorum.clone(), controller_settings(&broker.config)?, shutdown_rx.clone()));
    }
    let maintenance = crate::replica::maintenance::Settings::from_config(&broker.config);
    tasks.spawn(crate::replica::maintenance::run(broker.replicas.clone(), maintenance, shutdown_rx.clone()));
    let fetchers = crate::replica::fetcher::FetcherContext {
        replicas: broker.replicas.clone(),
        metadata: broker.metadata.clone(),
        settings: Arc::new(crate::replica::fetcher::FetcherSettings::from_config(broker.node_id, &broker.config)),
        inter_broker_security: broker.inter_broker_security.clone(),
    };
    tasks.spawn(crate::replica::fetcher::run(fetchers, shutdown_rx.clone()));
    let lag_max_ms = broker.config.replica_lag_time_max_ms;
    let (replicas, metadata, reconciler) = (broker.replicas.clone(), broker.metadata.clone(), broker.reconciler.clone());
    let metrics = broker.metrics.clone();
    tasks.spawn(crate::replica::isr::run(replicas, metadata, reconciler, lag_max_ms, metrics, shutdown_rx.clone()));
    tasks.spawn(crate::replica::cleaner::run(broker.replicas.clone(), broker.config.log_cleaner_enable, shutdown_rx.clone()));
    tasks.spawn(crate::group::GroupCoordinator::run(broker.clone(), shutdown_rx.clone()));
    tasks.spawn(crate::txn::TxnCoordinator::run(broker.clone(), shutdown_rx.clone()));
    let per_ip = Arc::new(crate::net::ip_limits::ConnectionsPerIp::default());
    for l in bound_listeners {
        info!(listener = %l.name, addr = %l.local_addr, "listening");
        tasks.spawn(serve_listener(l, broker.clone(), per_ip.clone(), shutdown_rx.clone()));
    }
    if let Some(address) = &broker.config.klamm_schema_registry_listener {
        // The schema registry: its store follows `_schemas` on every broker, and the REST
        // API answers on each (a write goes to the `_schemas` leader through the log).
        // The keystore is read before binding, so a bad one stops start-up with nothing half open.
        let security = &broker.config.klamm_schema_registry_security;
        let tls = match &security.ssl {
            Some(ssl) => Some(crate::security::tls::listener_tls("klamm.schema.registry.listener", ssl)?.acceptor),
            None => None,
        };
        let listener = crate::http::bind("klamm.schema.registry.listener", address).await?;
        info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "schema registry listener");
        let store = crate::registry::store::Store::new(broker.clone());
        tasks.spawn(crate::registry::store::run(store.clone(), shutdown_rx.clone()));
        let auth = security.basic_auth.then(|| {
            let metadata = broker.metadata.clone();
            let lookup: crate::registry::auth::CredentialLookup =
                Arc::new(move |user: &str, mechanism: &str| metadata.image().scram_credential(user, mechanism).cloned());
            Arc::new(crate::registry::auth::BasicAuth::new(&broker.config, lookup))
        });
        info!(tls = tls.is_some(), basic_auth = auth.is_some(), "schema registry security");
        let service = crate::registry::service::RegistryService::new(store, auth);
        tasks.spawn(crate::http::serve(listener, service, crate::registry::service::MAX_BODY, tls, shutdown_rx.clone()));
    }
    ops.set_serving(broker.clone());
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

/// Asks to be unfenced when the controller fenced this running broker (it stopped answering
/// for a while — paused, overloaded, cut off — and is back): Kafka's broker does the same
/// through its heartbeats. (The [`Reconciler`] follows the image for the partitions.)
async fn unfence_when_fenced(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut images = broker.metadata.subscribe();
    let mut last_unfence_attempt: Option<tokio::time::Instant> = None;
    loop {
        let image = images.borrow_and_update().clone();
        let fenced = image.broker(broker.node_id).is_some_and(|b| b.fenced && b.epoch == broker.broker_epoch);
        let recently = last_unfence_attempt.is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        if fenced && !recently && !broker.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            last_unfence_attempt = Some(tokio::time::Instant::now());
            let b = broker.clone();
            tokio::spawn(async move {
                info!("this broker was fenced while running; asking to be unfenced");
                let unfence = MetadataCommand::UnfenceBroker { node_id: b.node_id, epoch: b.broker_epoch };
                if let Err(e) = b.metadata.propose(unfence).await {
                    warn!(error = %e, "unfencing failed; retrying");
                }
            });
        }
        // Retry even when no new image arrives: the unfence proposal may have failed.
        if fenced {
            tokio::select! {
                changed = images.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => if *shutdown.borrow() { break },
            }
            continue;
        }
        tokio::select! {
            changed = images.changed() => if changed.is_err() { break },
            _ = shutdown.changed() => if *shutdown.borrow() { break },
        }
    }
}
