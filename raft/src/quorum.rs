//! [`MetadataQuorum`]: starting, proposing to and stopping this node's Raft voter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, InitializeError};
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use tokio::sync::watch;

use crate::command::{CommandOutcome, MetadataCommand, RejectCode};
use crate::error::RaftError;
use crate::image::{generate_cluster_id, MetadataImage};
use crate::log_store::LogStore;
use crate::network::{InProcessTransport, NetworkFactory, RaftTransport, RpcHandler};
use crate::state_machine::{SnapshotStore, StateMachine};
use crate::types::{NodeId, Raft};

/// Where this node's metadata log lives and who votes.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// This node's id (`node.id`).
    pub node_id: i32,
    /// Directory of the metadata log, e.g. `<log.dirs[0]>/__cluster_metadata-0`.
    pub data_dir: PathBuf,
    /// The voters as `(node id, host:port)` (`controller.quorum.voters`). Empty means "this node
    /// alone".
    pub voters: Vec<(i32, String)>,
    /// The cluster id to use on a fresh cluster, and to check against on later starts. `None`
    /// generates one on the first start.
    pub cluster_id: Option<String>,
}

/// Timing knobs; the defaults suit production, tests shrink the snapshot interval.
#[derive(Clone, Debug)]
pub struct QuorumTuning {
    /// Build a snapshot every this many applied entries.
    pub snapshot_every_entries: u64,
    /// Entries kept in the log below the latest snapshot (they help lagging followers).
    pub entries_kept_after_snapshot: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// Bound on `start` waiting for a leader and a caught-up image.
    pub start_timeout: Duration,
    /// Bound on one `propose`.
    pub propose_timeout: Duration,
}

impl Default for QuorumTuning {
    fn default() -> Self {
        QuorumTuning {
            snapshot_every_entries: 1000,
            entries_kept_after_snapshot: 100,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            heartbeat_interval_ms: 50,
            start_timeout: Duration::from_secs(10),
            propose_timeout: Duration::from_secs(10),
        }
    }
}

/// A handle to this node's metadata quorum. Cheap to clone (`Send + Sync`); all clones share
/// one Raft node. Call [`MetadataQuorum::shutdown`] before dropping the last clone: openraft's
/// tasks keep running (and keep the files open) until then.
#[derive(Clone)]
pub struct MetadataQuorum {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MetadataQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataQuorum")
            .field("node_id", &self.inner.node_id)
            .field("leader_id", &self.leader_id())
            .field("last_applied_index", &self.inner.image_rx.borrow().last_applied_index)
            .field("shut_down", &self.inner.shut_down.load(Ordering::Relaxed))
            .finish()
    }
}

struct Inner {
    node_id: i32,
    raft: Raft,
    image_rx: watch::Receiver<Arc<MetadataImage>>,
    transport: Arc<dyn RaftTransport>,
    snapshots: Arc<SnapshotStore>,
    propose_timeout: Duration,
    shut_down: AtomicBool,
}

fn fatal(e: impl std::fmt::Display) -> RaftError {
    RaftError::Fatal(e.to_string())
}

fn from_fatal(e: Fatal<NodeId>) -> RaftError {
    match e {
        Fatal::Stopped => RaftError::ShutDown,
        Fatal::StorageError(e) => RaftError::Storage(e.to_string()),
        other => fatal(other),
    }
}

fn to_i32(id: NodeId) -> Option<i32> {
    i32::try_from(id).ok()
}

impl MetadataQuorum {
    /// Opens the log in `cfg.data_dir`, replays it, initializes a fresh single-voter cluster and
    /// waits (bounded) until this node leads and its image is caught up.
    pub async fn start(cfg: QuorumConfig) -> Result<MetadataQuorum, RaftError> {
        MetadataQuorum::start_with(cfg, QuorumTuning::default(), InProcessTransport::new()).await
    }

    /// [`MetadataQuorum::start`] with explicit timing and transport.
    pub async fn start_with(
        cfg: QuorumConfig,
        tuning: QuorumTuning,
        transport: Arc<dyn RaftTransport>,
    ) -> Result<MetadataQuorum, RaftError> {
        let node_id = cfg.node_id;
        let voters = normalize_voters(&cfg)?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| RaftError::Io { path: cfg.data_dir.clone(), source: e })?;

        let dir = cfg.data_dir.clone();
        let single_voter = voters.len() == 1;
        let (log_store, sm, image_rx, recovery) = tokio::task::spawn_blocking(move || {
            let (mut log_store, recovery) = LogStore::open(&dir)?;
            let (sm, image_rx) = StateMachine::open(&dir)?;
            if single_voter && log_store.is_empty() && !sm.has_snapshot() && log_store.has_vote() {
                // The whole log was lost (e.g. cut before its first entry): a vote without a log
                // would make openraft treat the node as initialized, yet it has no membership.
                // With one voter nobody else has seen the vote, so start over cleanly.
                tracing::warn!(dir = %dir.display(), "metadata log is empty but a vote exists: resetting the vote");
                log_store.reset_vote()?;
            }
            Ok::<_, RaftError>((log_store, sm, image_rx, recovery))
        })
        .await
        .map_err(fatal)??;
        tracing::info!(
            node_id,
            dir = %cfg.data_dir.display(),
            entries = recovery.entries,
            truncated_bytes = recovery.truncated_bytes,
            "metadata log opened"
        );

        let config = Config {
            cluster_name: "klamm-metadata".to_string(),
            election_timeout_min: tuning.election_timeout_min_ms,
            election_timeout_max: tuning.election_timeout_max_ms,
            heartbeat_interval: tuning.heartbeat_interval_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_every_entries),
            max_in_snapshot_log_to_keep: tuning.entries_kept_after_snapshot,
            purge_batch_size: 1,
            ..Config::default()
        }
        .validate()
        .map_err(|e| RaftError::Config(e.to_string()))?;

        let snapshots = sm.snapshot_store();
        let network = NetworkFactory { transport: transport.clone() };
        let raft = Raft::new(node_id as NodeId, Arc::new(config), network, log_store, sm).await.map_err(from_fatal)?;
        transport.serve(node_id, RpcHandler::new(raft.clone()))?;
        let quorum = MetadataQuorum {
            inner: Arc::new(Inner {
                node_id,
                raft,
                image_rx,
                transport,
                snapshots,
                propose_timeout: tuning.propose_timeout,
                shut_down: AtomicBool::new(false),
            }),
        };
        match quorum.bootstrap(&cfg, &voters, tuning.start_timeout).await {
            Ok(()) => Ok(quorum),
            Err(e) => {
                if let Err(stop_err) = quorum.shutdown().await {
                    tracing::warn!(error = %stop_err, "metadata quorum: shutdown after failed start");
                }
                Err(e)
            }
        }
    }

    async fn bootstrap(&self, cfg: &QuorumConfig, voters: &BTreeMap<NodeId, BasicNode>, timeout: Duration) -> Result<(), RaftError> {
        let raft = &self.inner.raft;
        let me = cfg.node_id as NodeId;
        let initialized = raft.is_initialized().await.map_err(from_fatal)?;
        // The lowest voter id initializes a fresh cluster; with one voter that is this node.
        if !initialized && voters.keys().next() == Some(&me) {
            tracing::info!(node_id = cfg.node_id, voters = voters.len(), "metadata quorum: initializing membership");
            match raft.initialize(voters.clone()).await {
                Ok(()) => {}
                Err(openraft::error::RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(openraft::error::RaftError::APIError(e)) => return Err(RaftError::Config(e.to_string())),
                Err(openraft::error::RaftError::Fatal(e)) => return Err(from_fatal(e)),
            }
        }

        let single = voters.len() == 1;
        let wait = async {
            let mut metrics = raft.metrics();
            loop {
                {
                    let m = metrics.borrow_and_update();
                    if let Err(e) = &m.running_state {
                        return Err(from_fatal(e.clone()));
                    }
                    let ready = if single { m.state == ServerState::Leader } else { m.current_leader.is_some() };
                    if ready {
                        break;
                    }
                }
                metrics.changed().await.map_err(|_| RaftError::ShutDown)?;
            }
            if single || raft.current_leader().await == Some(me) {
                // Waits until the leader's first entry of its term is committed and applied, so
                // the image reflects everything in the log.
                raft.ensure_linearizable().await.map_err(|e| match e {
                    openraft::error::RaftError::Fatal(f) => from_fatal(f),
                    openraft::error::RaftError::APIError(e) => fatal(e),
                })?;
            }
            Ok(())
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| RaftError::Timeout(format!("no metadata leader elected within {timeout:?}")))??;

        let stored = self.image().cluster_id.clone();
        if stored.is_empty() {
            if self.leader_id() == Some(cfg.node_id) {
                let cluster_id = cfg.cluster_id.clone().unwrap_or_else(generate_cluster_id);
                match self.propose(MetadataCommand::InitializeCluster { cluster_id: cluster_id.clone() }).await? {
                    CommandOutcome::Applied(_) => tracing::info!(%cluster_id, "metadata quorum: cluster id recorded"),
                    CommandOutcome::Rejected(r) if r.code == RejectCode::ClusterIdMismatch => {
                        return Err(RaftError::ClusterIdMismatch { stored: self.image().cluster_id.clone(), configured: cluster_id })
                    }
                    CommandOutcome::Rejected(r) => return Err(RaftError::Config(r.to_string())),
                }
            }
        } else if let Some(configured) = &cfg.cluster_id {
            if *configured != stored {
                return Err(RaftError::ClusterIdMismatch { stored, configured: configured.clone() });
            }
        }
        tracing::info!(node_id = cfg.node_id, cluster_id = %self.image().cluster_id, last_applied_index = self.image().last_applied_index, "metadata quorum started");
        Ok(())
    }

    /// Proposes `cmd` and returns once it is committed and applied; the image watch already
    /// shows its effect then. A command whose preconditions failed is `Ok(Rejected)`.
    ///
    /// Errors: [`RaftError::NotLeader`] on a follower (nothing was proposed);
    /// [`RaftError::Timeout`] after [`QuorumTuning::propose_timeout`], in which case the command
    /// may still commit later (commands carry preconditions, so re-proposing is safe);
    /// [`RaftError::ShutDown`] after `shutdown`; `Storage`/`Fatal` when the node failed.
    pub async fn propose(&self, cmd: MetadataCommand) -> Result<CommandOutcome, RaftError> {
        if self.inner.shut_down.load(Ordering::Acquire) {
            return Err(RaftError::ShutDown);
        }
        let name = cmd.name();
        let write = self.inner.raft.client_write(cmd);
        let result = tokio::time::timeout(self.inner.propose_timeout, write)
            .await
            .map_err(|_| RaftError::Timeout(format!("{name} not committed within {:?}", self.inner.propose_timeout)))?;
        match result {
            Ok(response) => Ok(response.data),
            Err(openraft::error::RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(RaftError::NotLeader { leader: f.leader_id.and_then(to_i32) })
            }
            Err(openraft::error::RaftError::APIError(e)) => Err(fatal(e)),
            Err(openraft::error::RaftError::Fatal(e)) => Err(from_fatal(e)),
        }
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.inner.image_rx.borrow().clone()
    }

    /// A receiver that sees every new image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image_rx.clone()
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.inner.node_id
    }

    /// The current Raft leader as far as this node knows.
    pub fn leader_id(&self) -> Option<i32> {
        self.inner.raft.metrics().borrow().current_leader.and_then(to_i32)
    }

    /// Whether this node is the Raft leader (the active controller).
    pub fn is_leader(&self) -> bool {
        self.leader_id() == Some(self.inner.node_id)
    }

    /// Stops the Raft node; later `propose` calls fail with [`RaftError::ShutDown`]. Idempotent.
    pub async fn shutdown(&self) -> Result<(), RaftError> {
        if self.inner.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.transport.unserve(self.inner.node_id);
        let stopped = self.inner.raft.shutdown().await.map_err(fatal);
        // openraft builds snapshots in background tasks that may outlive the core: wait for a
        // write in progress and refuse later ones, so nothing touches the directory after this.
        let snapshots = self.inner.snapshots.clone();
        tokio::task::spawn_blocking(move || snapshots.close()).await.map_err(fatal)?;
        stopped?;
        tracing::info!(node_id = self.inner.node_id, "metadata quorum stopped");
        Ok(())
    }
}

fn normalize_voters(cfg: &QuorumConfig) -> Result<BTreeMap<NodeId, BasicNode>, RaftError> {
    if cfg.node_id < 0 {
        return Err(RaftError::Config(format!("node id {} is negative", cfg.node_id)));
    }
    if cfg.voters.is_empty() {
        return Ok(BTreeMap::from([(cfg.node_id as NodeId, BasicNode::new(""))]));
    }
    let mut seen = BTreeSet::new();
    let mut voters = BTreeMap::new();
    for (id, addr) in &cfg.voters {
        if *id < 0 || !seen.insert(*id) {
            return Err(RaftError::Config(format!("invalid or duplicate voter id {id}")));
        }
        voters.insert(*id as NodeId, BasicNode::new(addr));
    }
    if !seen.contains(&cfg.node_id) {
        return Err(RaftError::Config(format!("node {} is not among the voters {:?}", cfg.node_id, cfg.voters)));
    }
    Ok(voters)
}
