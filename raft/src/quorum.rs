//! [`MetadataQuorum`]: starting, proposing to and stopping this node's Raft voter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, Fatal, InitializeError};
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use tokio::sync::watch;

use crate::command::{CommandOutcome, MetadataCommand, RejectCode};
use crate::error::RaftError;
use crate::image::{generate_cluster_id, MetadataImage};
use crate::image_watch::wait_for_image;
use crate::log_store::LogStore;
use crate::network::{send_forward, ForwardReply, InProcessTransport, NetworkFactory, RaftTransport, RpcHandler};
use crate::transport_tcp::{TcpTransport, TcpTransportConfig};
use crate::state_machine::{SnapshotStore, StateMachine};
use crate::types::{NodeId, Raft};

/// Where this node's metadata log lives and who votes.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// This node's id (`node.id`).
    pub node_id: i32,
    /// Directory of the metadata log, e.g. `<log.dirs[0]>/__cluster_metadata-0`.
    pub data_dir: PathBuf,
    /// The voters as `(node id, host:port)` (`controller.quorum.voters`, see
    /// [`crate::parse_quorum_voters`]). Empty means "this node alone". Every voter must be
    /// started with the same list: on a fresh cluster each one initializes this membership.
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
    /// Also openraft's timeout of one AppendEntries.
    pub heartbeat_interval_ms: u64,
    /// Timeout of one InstallSnapshot chunk (including, for the last one, installing the
    /// snapshot on the receiver). openraft's default (200 ms) is too tight for a multi-megabyte
    /// image, and a chunk that always times out would keep a lagging voter behind forever.
    pub install_snapshot_timeout_ms: u64,
    /// Size of one InstallSnapshot chunk (before JSON encoding, which can make it ~4x larger);
    /// must stay well below [`TcpTransportConfig::max_frame_bytes`].
    pub snapshot_chunk_bytes: u64,
    /// Bound on `start` waiting for a leader and a caught-up image.
    pub start_timeout: Duration,
    /// Bound on one `propose`, including forwarding to the leader and waiting for one.
    pub propose_timeout: Duration,
    /// Attempts of one `propose` across leader changes (each ends in a write on the leader, a
    /// "not the leader" answer or a transport error) before it gives up.
    pub propose_attempts: u32,
}

impl Default for QuorumTuning {
    fn default() -> Self {
        QuorumTuning {
            snapshot_every_entries: 1000,
            entries_kept_after_snapshot: 100,
            // Local-network values: a heartbeat well below the election timeout, and a wide
            // randomization range so that two voters rarely time out together.
            election_timeout_min_ms: 600,
            election_timeout_max_ms: 1200,
            heartbeat_interval_ms: 120,
            install_snapshot_timeout_ms: 10_000,
            snapshot_chunk_bytes: 1 << 20,
            start_timeout: Duration::from_secs(30),
            propose_timeout: Duration::from_secs(10),
            propose_attempts: 20,
        }
    }
}

/// The state of the metadata quorum as one voter sees it ([`MetadataQuorum::status`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: i32,
    /// The Raft leader (the active controller), if known.
    pub leader: Option<i32>,
    /// The Raft term (Kafka's quorum epoch).
    pub term: u64,
    /// Index of the last entry in this node's log.
    pub last_log_index: u64,
    /// Index of the last entry applied to the image (committed entries only).
    pub last_applied_index: u64,
    pub voters: Vec<i32>,
    /// On the leader: how many entries each voter's log is behind the leader's end.
    pub voter_lag: Vec<(i32, u64)>,
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
    /// Voter id -> `host:port`, to address forwarded proposals.
    voters: BTreeMap<i32, String>,
    snapshots: Arc<SnapshotStore>,
    propose_timeout: Duration,
    propose_attempts: u32,
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
    /// Opens the log in `cfg.data_dir`, replays it, initializes the membership on a fresh
    /// cluster and waits (bounded by [`QuorumTuning::start_timeout`]) until a leader is known and
    /// the cluster id is in this node's image.
    ///
    /// With one voter nothing is sent over the network. With several, this node listens on its
    /// own entry of `cfg.voters` with a [`TcpTransport`] (default [`TcpTransportConfig`]); a
    /// leader needs a majority, so start the voters concurrently (separate processes) rather
    /// than one after the other.
    pub async fn start(cfg: QuorumConfig) -> Result<MetadataQuorum, RaftError> {
        let transport: Arc<dyn RaftTransport> = if cfg.voters.len() > 1 {
            let own = cfg
                .voters
                .iter()
                .find(|(id, _)| *id == cfg.node_id)
                .map(|(_, address)| address.clone())
                .ok_or_else(|| RaftError::Config(format!("node {} is not among the voters {:?}", cfg.node_id, cfg.voters)))?;
            TcpTransport::bind(&own, TcpTransportConfig::default()).await?
        } else {
            InProcessTransport::new()
        };
        MetadataQuorum::start_with(cfg, QuorumTuning::default(), transport).await
    }

    /// [`MetadataQuorum::start`] with explicit timing and transport. The quorum owns the
    /// transport from here on: [`MetadataQuorum::shutdown`] (or a failed start) closes it.
    pub async fn start_with(
        cfg: QuorumConfig,
        tuning: QuorumTuning,
        transport: Arc<dyn RaftTransport>,
    ) -> Result<MetadataQuorum, RaftError> {
        let started = MetadataQuorum::open_and_bootstrap(cfg, tuning, transport.clone()).await;
        if started.is_err() {
            // Failures before the Raft node exists (e.g. an unreadable log) would otherwise
            // leave a listener behind.
            transport.close().await;
        }
        started
    }

    async fn open_and_bootstrap(
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
            install_snapshot_timeout: tuning.install_snapshot_timeout_ms,
            snapshot_max_chunk_size: tuning.snapshot_chunk_bytes.max(1),
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
        let voter_addresses = voters
            .iter()
            .filter_map(|(id, node)| Some((to_i32(*id)?, node.addr.clone())))
            .collect();
        let quorum = MetadataQuorum {
            inner: Arc::new(Inner {
                node_id,
                raft: raft.clone(),
                image_rx: image_rx.clone(),
                transport: transport.clone(),
                voters: voter_addresses,
                snapshots,
                propose_timeout: tuning.propose_timeout,
                propose_attempts: tuning.propose_attempts.max(1),
                shut_down: AtomicBool::new(false),
            }),
        };
        if let Err(e) = transport.serve(node_id, RpcHandler::new(raft, image_rx)) {
            let _ = quorum.shutdown().await;
            return Err(e);
        }
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
        // Every voter of a fresh cluster initializes the same membership (the configured voter
        // list). openraft writes it as the identical entry at index 0 on each of them, so it
        // does not matter who does it first or whether a voter joins late; a node that has
        // meanwhile received that entry (or a vote) from another voter answers `NotAllowed`,
        // which is success here. Waiting for "the lowest id" instead would leave the cluster
        // unformed while that one voter is down.
        if !initialized {
            tracing::info!(node_id = cfg.node_id, voters = voters.len(), "metadata quorum: initializing membership");
            match raft.initialize(voters.clone()).await {
                Ok(()) => {}
                Err(openraft::error::RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(openraft::error::RaftError::APIError(e)) => return Err(RaftError::Config(e.to_string())),
                Err(openraft::error::RaftError::Fatal(e)) => return Err(from_fatal(e)),
            }
        }
        let single = voters.len() == 1;
        if initialized && single {
            // A restarted single voter would otherwise sit out a whole election timeout before
            // electing itself; nobody else can be leader, so start the election now.
            if let Err(e) = raft.trigger().elect().await {
                tracing::debug!(error = %e, "metadata quorum: could not trigger an election");
            }
        }

        let wait = async {
            let mut metrics = raft.metrics();
            loop {
                {
                    let m = metrics.borrow_and_update();
                    if let Err(e) = &m.running_state {
                        return Err(from_fatal(e.clone()));
                    }
                    // A restarted voter may name itself leader (from its persisted vote) before
                    // it has won an election in this run: only the `Leader` state counts then.
                    let ready = match m.current_leader {
                        Some(leader) if leader == me => m.state == ServerState::Leader,
                        Some(_) => !single,
                        None => false,
                    };
                    if ready {
                        break;
                    }
                }
                metrics.changed().await.map_err(|_| RaftError::ShutDown)?;
            }
            if raft.metrics().borrow().state == ServerState::Leader {
                // Waits until the leader's first entry of its term is committed and applied, so
                // the image reflects everything in the log. Losing the leadership meanwhile is
                // fine: the cluster-id step below waits for the image anyway.
                // "Quorum not enough" is transient while the peers' connections come up (they
                // may be backing off after this node was unreachable): retry within the bound.
                loop {
                    match raft.ensure_linearizable().await {
                        Ok(_) => break,
                        Err(openraft::error::RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => break,
                        Err(openraft::error::RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                            tracing::debug!(error = %e, "metadata quorum: leadership not confirmed yet");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(openraft::error::RaftError::Fatal(f)) => return Err(from_fatal(f)),
                    }
                }
            }
            Ok(())
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| RaftError::Timeout(format!("no metadata leader elected within {timeout:?}")))??;

        // Any voter whose image has no cluster id proposes one (forwarded to the leader). The
        // first committed id wins; later ones are rejected as mismatches, which only matters when
        // this node was configured with a different id. A follower's image may merely lag, so
        // either way wait until the id shows up locally: that also means the follower has caught
        // up with the log at least that far.
        //
        // A restarted voter may still believe in a leader that is gone (its view comes from the
        // persisted vote) until a new one is elected, so a single propose can time out; retry
        // within `start_timeout`. Re-proposing is harmless: the same id again is a no-op, another
        // id is rejected.
        if self.image().cluster_id.is_empty() {
            let deadline = Instant::now() + timeout;
            let cluster_id = cfg.cluster_id.clone().unwrap_or_else(generate_cluster_id);
            let index = loop {
                match self.propose(MetadataCommand::InitializeCluster { cluster_id: cluster_id.clone() }).await {
                    Ok(CommandOutcome::Applied(info)) => {
                        tracing::info!(%cluster_id, "metadata quorum: cluster id recorded");
                        break info.log_index;
                    }
                    Ok(CommandOutcome::Rejected(r)) if r.code == RejectCode::ClusterIdMismatch => break 0,
                    Ok(CommandOutcome::Rejected(r)) => return Err(RaftError::Config(r.to_string())),
                    Err(RaftError::Timeout(why)) if Instant::now() < deadline && self.image().cluster_id.is_empty() => {
                        tracing::info!("metadata quorum: cluster id not recorded yet, retrying: {why}");
                    }
                    // The image caught up meanwhile (the id was already in the log).
                    Err(RaftError::Timeout(_)) if !self.image().cluster_id.is_empty() => break 0,
                    Err(e) => return Err(e),
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            let ready = |image: &MetadataImage| image.last_applied_index >= index && !image.cluster_id.is_empty();
            wait_for_image(&mut self.inner.image_rx.clone(), ready, remaining, "catch up").await?;
        }
        let stored = self.image().cluster_id.clone();
        if let Some(configured) = &cfg.cluster_id {
            if *configured != stored {
                return Err(RaftError::ClusterIdMismatch { stored, configured: configured.clone() });
            }
        }
        tracing::info!(node_id = cfg.node_id, cluster_id = %self.image().cluster_id, last_applied_index = self.image().last_applied_index, "metadata quorum started");
        Ok(())
    }

    /// Proposes `cmd` and returns once it is committed and applied on the leader. On the leader
    /// the image watch already shows its effect then; a follower applies it shortly after. A
    /// command whose preconditions failed is `Ok(Rejected)`.
    ///
    /// On a follower the command is forwarded to the leader ([`crate::RpcKind::Forward`]). Up to
    /// [`QuorumTuning::propose_attempts`] attempts are made within
    /// [`QuorumTuning::propose_timeout`], waiting for a leader when none is known and following
    /// "not the leader" answers. A transport error after the request may have reached the leader
    /// is retried as well, so a command can be committed twice; commands carry preconditions,
    /// which makes the second copy a rejected no-op (except `AllocateProducerIds`, which then
    /// wastes one block).
    ///
    /// Errors: [`RaftError::Timeout`] when no leader was reachable or the command was not
    /// committed in time (it may still commit later); [`RaftError::ShutDown`] after `shutdown`;
    /// `Storage`/`Fatal` when the node failed.
    pub async fn propose(&self, cmd: MetadataCommand) -> Result<CommandOutcome, RaftError> {
        let name = cmd.name();
        let timeout = self.inner.propose_timeout;
        let deadline = Instant::now() + timeout;
        let me = self.inner.node_id;
        let mut last_error = "no metadata leader known".to_string();
        for attempt in 0..self.inner.propose_attempts {
            if self.inner.shut_down.load(Ordering::Acquire) {
                return Err(RaftError::ShutDown);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match self.leader_id() {
                Some(leader) if leader == me => {
                    match tokio::time::timeout(remaining, self.inner.raft.client_write(cmd.clone())).await {
                        Err(_) => return Err(RaftError::Timeout(format!("{name} not committed within {timeout:?}"))),
                        Ok(Ok(response)) => return Ok(response.data),
                        Ok(Err(openraft::error::RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                            last_error = format!("node {me} lost the leadership");
                        }
                        Ok(Err(openraft::error::RaftError::APIError(e))) => return Err(fatal(e)),
                        Ok(Err(openraft::error::RaftError::Fatal(e))) => return Err(from_fatal(e)),
                    }
                }
                Some(leader) => match self.inner.voters.get(&leader) {
                    None => last_error = format!("leader {leader} is not a configured voter"),
                    Some(address) => match send_forward(&*self.inner.transport, leader, address, &cmd, remaining).await {
                        Ok(ForwardReply::Done(outcome)) => return Ok(outcome),
                        Ok(ForwardReply::Timeout) => {
                            return Err(RaftError::Timeout(format!("{name} not committed by leader {leader} within {timeout:?}")))
                        }
                        Ok(ForwardReply::NotLeader { leader: hint }) => {
                            last_error = format!("node {leader} is no longer the leader (it names {hint:?})");
                        }
                        Ok(ForwardReply::Failed(message)) => last_error = format!("leader {leader} failed: {message}"),
                        Err(e) => last_error = format!("forwarding to leader {leader}: {e}"),
                    },
                },
                None => {}
            }
            // Give the election (or the reconnect) time: 50, 100, 200, 400, 400... ms.
            let pause = Duration::from_millis(50u64 << attempt.min(3));
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        Err(RaftError::Timeout(format!("{name} not committed within {timeout:?}: {last_error}")))
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

    /// The quorum as this node sees it, for `/metrics` and the ops page. `voter_lag` (entries
    /// each voter is behind this node's log end) is known only on the leader.
    pub fn status(&self) -> QuorumStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let last_log_index = m.last_log_index.unwrap_or(0);
        let voter_lag = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .filter_map(|(id, matched)| Some((to_i32(*id)?, last_log_index.saturating_sub(matched.map(|l| l.index).unwrap_or(0)))))
                    .collect()
            })
            .unwrap_or_default();
        QuorumStatus {
            node_id: self.inner.node_id,
            leader: m.current_leader.and_then(to_i32),
            term: m.current_term,
            last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            voters: m.membership_config.voter_ids().filter_map(to_i32).collect(),
            voter_lag,
        }
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
        self.inner.transport.close().await;
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
