//! Klamm's metadata quorum: a Raft log (openraft 0.9, `storage-v2`) whose state machine is the
//! [`MetadataImage`].
//!
//! # What it owns
//! Everything the cluster agrees on: the cluster id, broker registrations (endpoints, rack,
//! broker epoch, fenced), topics with their ids, partitions (replicas, ISR, leader, leader epoch,
//! partition epoch), topic and dynamic broker configs, and producer-id blocks. The image changes
//! **only** by applying commands committed to the log, on every node in the same order, so every
//! voter holds the same image at the same log index. It never sees client requests: the broker
//! validates requests and proposes [`MetadataCommand`]s.
//!
//! openraft types stay inside this crate (its API churns between versions); the public API is
//! [`MetadataQuorum`] (a voter), [`MetadataFollower`] (a broker-only node),
//! [`MetadataCommand`], [`CommandOutcome`], [`MetadataImage`], [`RaftError`],
//! [`parse_quorum_voters`], the [`RaftTransport`] trait and its [`TcpTransport`].
//!
//! # Commands
//! Each command carries its preconditions and [`MetadataImage::apply`] re-checks them when the
//! entry is applied; a command that fails them is *rejected*: it is still a committed log entry
//! but changes nothing, and [`MetadataQuorum::propose`] returns [`CommandOutcome::Rejected`]. A
//! retried command is therefore a no-op.
//!
//! | command | effect | rejected when |
//! |---|---|---|
//! | `InitializeCluster` | records the cluster id (proposed by `start` on a fresh cluster) | another id is recorded |
//! | `RegisterBroker` | new registration, fenced, broker epoch = log index | — (same incarnation = no-op, same epoch) |
//! | `FenceBroker` / `UnfenceBroker` | sets `fenced` | unknown broker, epoch ≠ broker epoch |
//! | `CreateTopic` | topic + partitions; leader = first replica, ISR = replicas, epochs 0 | name or id exists, bad name, partitions not `0..n`, bad replicas |
//! | `DeleteTopic` | removes the topic | unknown id |
//! | `CreatePartitions` | appends partitions `n..` | unknown id, `expected_count` ≠ n, bad numbering/replicas |
//! | `AlterConfigs` | sets and deletes keys of a topic / broker / cluster default, atomically | unknown topic, a key both set and deleted |
//! | `AllocateProducerIds` | hands out `[next, next+count)` | `count` ≤ 0, overflow |
//! | `ChangePartition` | new leader and/or ISR; `leader_epoch` +1 if the leader changed, `partition_epoch` +1 | stale `expected_partition_epoch`, ISR ⊄ replicas, leader ∉ ISR |
//! | `ReassignPartition` | starts/replaces (replicas = target + removed, adding/removing recorded; completes at once if nothing to wait for) or cancels a reassignment | stale epoch, bad target, cancel without a reassignment or needing an unclean election |
//! | `CompleteReassignment` | replicas = target, ISR minus removed, leader handed to a live target replica if removed | stale epoch, nothing running, an adding replica not in the ISR |
//!
//! # Persistence
//! All files live in [`QuorumConfig::data_dir`] and use one framing: a *record* is
//! `u32 LE length | u32 LE CRC32C(payload) | payload (JSON)`.
//! - `raft.log`: the log, one record per openraft entry (log id + command), consecutive
//!   indexes, append-only, **fsynced on every append**. On open every record is validated
//!   (length, CRC, decodable, consecutive index); the file is cut at the first bad record (a torn
//!   tail from a crash during an append, which was never acknowledged).
//! - `vote`: the last vote; `snapshot`: the last snapshot (Raft metadata + the serialized image);
//!   `purged`: the last log id removed from `raft.log`. Each holds one record and is replaced
//!   atomically: write `<name>.tmp`, fsync, rename, fsync the directory.
//! - A snapshot is built every [`QuorumTuning::snapshot_every_entries`] entries (openraft's
//!   `SnapshotPolicy::LogsSinceLast`), then openraft purges the log below it (keeping
//!   [`QuorumTuning::entries_kept_after_snapshot`]): the `purged` marker is written first, then
//!   `raft.log` is rewritten without the purged prefix (temp file + rename).
//!
//! This simple format is a first step; a later step may move the log onto `klamm-storage`'s
//! segmented log (one batch per entry, like Kafka's `__cluster_metadata` partition).
//!
//! # How a restart rebuilds the image
//! [`MetadataQuorum::start`] loads `snapshot` (if any) as the image at the snapshot's log index,
//! reads `raft.log` (skipping purged entries, cutting a torn tail) and `vote`. A single voter
//! becomes leader again at once and commits what is in its log; openraft applies those entries
//! on top of the snapshot image, and `start` returns only once the image has applied everything
//! up to the leader's read index (`ensure_linearizable`), so topics, ids and configs come back
//! identical (`last_applied_index` may have moved on by a blank entry of a new term). A voter of
//! a larger quorum rejoins as a follower; the leader sends it the entries it lacks, or, when
//! those were purged below a snapshot, the snapshot itself (InstallSnapshot), which replaces the
//! restarted voter's image and log.
//!
//! # Several voters
//! `controller.quorum.voters` ([`parse_quorum_voters`]) goes into [`QuorumConfig::voters`]; every
//! voter gets the same list. With more than one voter, [`MetadataQuorum::start`] listens on its
//! own entry with a [`TcpTransport`]; start the voters concurrently (a leader needs a majority,
//! and `start` waits for one, bounded by [`QuorumTuning::start_timeout`]). Timing defaults suit
//! a local network: heartbeat 120 ms, election timeout randomized in 600..1200 ms.
//!
//! **Bootstrap.** On first start (empty log, no vote) *every* voter calls openraft's `initialize`
//! with the configured voter set. That writes the identical membership entry at log index 0 on
//! each of them, so the order of starts does not matter and a voter that already received the
//! entry (or voted) from another answers "not allowed", which counts as done. Then every voter
//! whose image has no cluster id proposes `InitializeCluster`; the first to commit wins and
//! `start` waits until this node's image shows it. Changing the voter set of an existing
//! cluster (openraft membership changes) is not supported yet: the list must stay the same.
//!
//! **Transport.** [`RaftTransport`] carries opaque frames (JSON-encoded openraft messages and
//! Klamm's own requests) by [`RpcKind`]. [`TcpTransport`] frames them as `u32 BE length | kind |
//! status | u64 request id | payload`, with a bounded frame size, pipelined requests matched by
//! id, a separate connection per peer for InstallSnapshot (a big chunk must not delay
//! heartbeats), per-request timeouts and reconnects with capped backoff; malformed input closes
//! only the offending connection. Details in the `transport_tcp` module.
//! [`InProcessTransport`] connects quorums inside one process (tests).
//!
//! **Forwarding.** Brokers call [`MetadataQuorum::propose`] on whichever controller they run
//! with. A follower forwards the command to the leader it knows ([`RpcKind::Forward`]); the
//! receiver only writes it if it leads (no forwarding chains), otherwise it answers with its
//! leader and the sender retries there, a bounded number of times within
//! [`QuorumTuning::propose_timeout`]. Because a retry after a transport error may commit a
//! command twice, commands carry their preconditions (see above).
//!
//! **Broker-only nodes.** A `process.roles=broker` node runs a [`MetadataFollower`] instead of a
//! voter: it long-polls a controller ([`RpcKind::FetchImage`]) for the committed image once it
//! is newer than its own and publishes it on a watch channel, moving to the leader named in each
//! reply and to the next controller on failure. It keeps no log and needs no membership change,
//! unlike an openraft learner; the price is shipping the whole image per change (see
//! `follower` module docs). [`MetadataFollower::propose`] forwards like a voter does.
//!
//! # Not yet
//! Membership changes (adding/removing voters at runtime; openraft dials the addresses stored
//! in the log's membership, so changing a voter's address in the config alone does not move
//! it); `start` with several voters fails if no majority forms within `start_timeout` (30 s by
//! default) instead of waiting indefinitely like Kafka's controllers; TLS/SASL on the controller
//! connections; incremental (delta) fetches for followers; ACLs, SCRAM credentials, quotas and
//! feature levels in the image; the log on `klamm-storage`. Each applied batch clones the image
//! for the watch, and a follower fetch ships the whole image, which is fine for thousands of
//! partitions, not for millions.
//!
//! # Example
//! ```no_run
//! use std::collections::BTreeMap;
//! use klamm_raft::{CommandOutcome, MetadataCommand, MetadataQuorum, NewPartition, QuorumConfig};
//!
//! # async fn example() -> Result<(), klamm_raft::RaftError> {
//! let quorum = MetadataQuorum::start(QuorumConfig {
//!     node_id: 1,
//!     data_dir: "/var/lib/klamm/__cluster_metadata-0".into(),
//!     voters: vec![(1, "127.0.0.1:9093".into())],
//!     cluster_id: None,
//! })
//! .await?;
//! let outcome = quorum
//!     .propose(MetadataCommand::CreateTopic {
//!         name: "orders".into(),
//!         topic_id: [7; 16],
//!         partitions: vec![NewPartition { partition: 0, replicas: vec![1] }],
//!         configs: BTreeMap::new(),
//!     })
//!     .await?;
//! assert!(matches!(outcome, CommandOutcome::Applied(_)));
//! assert_eq!(quorum.image().partition("orders", 0).map(|p| p.leader), Some(1));
//! quorum.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Three controllers (one process each, same voter list) and a broker-only node:
//! ```no_run
//! use klamm_raft::{parse_quorum_voters, FollowerConfig, MetadataFollower, MetadataQuorum, QuorumConfig};
//!
//! # async fn example(node_id: i32) -> Result<(), klamm_raft::RaftError> {
//! let voters = parse_quorum_voters("1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095")?;
//! // On controller `node_id` (listens on its own voter address):
//! let quorum = MetadataQuorum::start(QuorumConfig {
//!     node_id,
//!     data_dir: format!("/var/lib/klamm-{node_id}/__cluster_metadata-0").into(),
//!     voters: voters.clone().into_iter().collect(),
//!     cluster_id: None,
//! })
//! .await?;
//! // On a broker-only node:
//! let follower = MetadataFollower::start(FollowerConfig::new(voters))?;
//! let images = follower.subscribe();
//! # drop((quorum, images));
//! # Ok(())
//! # }
//! ```

mod acls;
mod command;
mod credentials;
mod error;
mod file_format;
mod follower;
mod frame;
mod image;
mod image_invariants;
mod image_watch;
mod log_store;
mod network;
mod quorum;
mod reassignment;
mod state_machine;
mod transport_tcp;
mod types;
mod voters;

pub use command::{
    AppliedInfo, BrokerEndpoint, CommandOutcome, ConfigResource, MetadataCommand, NewPartition, RejectCode, Rejection,
};
pub use acls::AclBinding;
pub use credentials::{ScramCredential, SCRAM_MECHANISMS};
pub use error::RaftError;
pub use follower::{FollowerConfig, MetadataFollower};
pub use image_watch::wait_for_image;
pub use image::{generate_cluster_id, BrokerRegistration, MetadataImage, PartitionImage, TopicImage, NO_LEADER};
pub use network::{InProcessTransport, RaftTransport, RpcHandler, RpcKind, TransportFuture};
pub use quorum::{MetadataQuorum, QuorumConfig, QuorumStatus, QuorumTuning};
pub use transport_tcp::{TcpTransport, TcpTransportConfig};
pub use voters::parse_quorum_voters;
