//! Where this broker gets its metadata from, by `process.roles`.
//!
//! - `broker,controller` (and the embedded single node): the node is a voter of the Raft
//!   metadata quorum ([`MetadataQuorum`]) and reads the image it applies itself.
//! - `broker`: the node does not vote; a [`MetadataFollower`] long-polls the controllers
//!   listed in `controller.quorum.voters` for the committed image and forwards proposals.
//!
//! [`MetadataSource`] hides the difference from handlers and background tasks: both read an
//! immutable image, subscribe to newer ones and propose commands. [`MetadataSource::propose`]
//! also waits until the *local* image shows an applied command, because a proposal forwarded to
//! the leader commits there before this node has applied it, and handlers answer from the
//! local image right after proposing (read your own writes).

use std::sync::Arc;
use std::time::Duration;

use klamm_raft::{wait_for_image, CommandOutcome, MetadataCommand, MetadataFollower, MetadataImage, MetadataQuorum, RaftError};
use tokio::sync::watch;

/// How long a proposer waits for its own applied command to reach the local image. The
/// follower's long-poll returns as soon as the image changes, so this is only hit when the
/// controllers become unreachable right after committing.
const OWN_WRITE_WAIT: Duration = Duration::from_secs(10);

/// The metadata of this node: a quorum voter or a follower of the controllers.
#[derive(Clone)]
pub enum MetadataSource {
    Voter(MetadataQuorum),
    Follower(MetadataFollower),
}

impl MetadataSource {
    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        match self {
            MetadataSource::Voter(q) => q.image(),
            MetadataSource::Follower(f) => f.image(),
        }
    }

    /// A receiver that sees every newer image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        match self {
            MetadataSource::Voter(q) => q.subscribe(),
            MetadataSource::Follower(f) => f.subscribe(),
        }
    }

    /// The node id of the active controller (the Raft leader) as far as this node knows.
    pub fn active_controller(&self) -> Option<i32> {
        match self {
            MetadataSource::Voter(q) => q.leader_id(),
            MetadataSource::Follower(f) => f.leader_id(),
        }
    }

    /// The voter handle when this node is a controller.
    pub fn quorum(&self) -> Option<&MetadataQuorum> {
        match self {
            MetadataSource::Voter(q) => Some(q),
            MetadataSource::Follower(_) => None,
        }
    }

    /// Proposes `cmd` and, when it was applied, waits (bounded) until the local image has
    /// applied it too.
    pub async fn propose(&self, cmd: MetadataCommand) -> Result<CommandOutcome, RaftError> {
        let outcome = match self {
            MetadataSource::Voter(q) => q.propose(cmd).await?,
            MetadataSource::Follower(f) => f.propose(cmd).await?,
        };
        if let CommandOutcome::Applied(info) = &outcome {
            let index = info.log_index;
            let what = format!("reach index {index} locally");
            wait_for_image(&mut self.subscribe(), |image| image.last_applied_index >= index, OWN_WRITE_WAIT, &what).await?;
        }
        Ok(outcome)
    }

    /// Stops the voter or the follower. Idempotent.
    pub async fn shutdown(&self) -> Result<(), RaftError> {
        match self {
            MetadataSource::Voter(q) => q.shutdown().await,
            MetadataSource::Follower(f) => {
                f.shutdown().await;
                Ok(())
            }
        }
    }
}

/// `host:port` of broker `node`'s listener named `listener` (or its first
/// listener) in `image`: where inter-broker requests (follower fetches,
/// transaction verification and markers) go.
pub(crate) fn broker_address(image: &klamm_raft::MetadataImage, listener: &str, node: i32) -> Option<String> {
    let registration = image.broker(node)?;
    let endpoint = registration.endpoints.iter().find(|e| e.listener == listener).or_else(|| registration.endpoints.first())?;
    Some(format!("{}:{}", endpoint.host, endpoint.port))
}
