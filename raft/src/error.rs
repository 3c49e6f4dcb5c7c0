//! The crate's error type.

use std::path::PathBuf;

/// Errors of the metadata quorum.
///
/// `Timeout` and `Transport` are transient (retry later); `Storage`, `Corrupt` and `Fatal` mean
/// the quorum on this node cannot continue and the process should stop. `NotLeader` is no longer
/// returned by `propose`, which forwards to the leader; it stays for callers matching on it.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// This node is not the Raft leader; `leader` is the current leader if known.
    #[error("not the metadata leader (leader: {leader:?})")]
    NotLeader { leader: Option<i32> },
    /// The configuration is unusable (e.g. this node is not among the voters).
    #[error("invalid quorum config: {0}")]
    Config(String),
    /// An I/O operation on the metadata log directory failed.
    #[error("metadata log I/O error at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// On-disk data that cannot be read (beyond a torn tail, which is truncated instead).
    #[error("corrupt metadata file {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// The Raft storage layer failed; the node stops serving.
    #[error("metadata storage error: {0}")]
    Storage(String),
    /// openraft stopped or failed.
    #[error("metadata quorum failed: {0}")]
    Fatal(String),
    /// `start` or `propose` did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The quorum has been shut down.
    #[error("the metadata quorum is shut down")]
    ShutDown,
    /// The log belongs to a different cluster than the configured `cluster_id`.
    #[error("cluster id mismatch: log has {stored}, config says {configured}")]
    ClusterIdMismatch { stored: String, configured: String },
    /// A transport failed to reach a peer.
    #[error("transport error: {0}")]
    Transport(String),
}
