//! [`MetadataFollower`]: the committed metadata on a broker-only node (`process.roles=broker`).
//!
//! A broker-only node does not vote and keeps no metadata log. It long-polls a controller with
//! [`RpcKind::FetchImage`] ("send me the image once it has applied something after index N") and
//! publishes each newer image on a watch channel. Why a pull of whole images rather than an
//! openraft learner: a learner has to be added to the membership by the leader (a membership
//! change per broker, which must be undone when the broker goes away for good) and needs its own
//! persistent log and vote; the pull needs neither, works against any controller, and a restarted
//! broker simply fetches the current image. The cost is shipping the whole image per change,
//! which is fine for the metadata sizes Klamm targets (thousands of partitions), not millions.
//!
//! Every controller's image is a committed prefix of the log (openraft applies only committed
//! entries), so whatever a controller returns is valid; the follower only takes images whose
//! `last_applied_index` is higher than its own, so it never moves backwards when it switches to a
//! lagging controller. Each reply names the replying controller's leader, and the follower moves
//! to the leader, whose image is never behind the others'. When a controller fails the follower
//! tries the next one, with a capped backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::command::{CommandOutcome, MetadataCommand};
use crate::error::RaftError;
use crate::image::MetadataImage;
use crate::image_watch::wait_for_image;
use crate::network::{send_fetch, send_forward, ForwardReply, RaftTransport};
use crate::transport_tcp::{TcpTransport, TcpTransportConfig};

/// Settings of a [`MetadataFollower`].
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// The controllers (`controller.quorum.voters`, see [`crate::parse_quorum_voters`]).
    pub controllers: BTreeMap<i32, String>,
    /// How long one fetch waits on the controller for a newer image.
    pub poll_wait: Duration,
    /// Cap of the pause between failed fetches.
    pub max_backoff: Duration,
    /// Bound on one [`MetadataFollower::propose`].
    pub propose_timeout: Duration,
}

impl FollowerConfig {
    pub fn new(controllers: BTreeMap<i32, String>) -> FollowerConfig {
        FollowerConfig {
            controllers,
            poll_wait: Duration::from_secs(5),
            max_backoff: Duration::from_secs(1),
            propose_timeout: Duration::from_secs(10),
        }
    }
}

/// Follows the committed metadata image of a controller quorum without voting. Cheap to clone.
#[derive(Clone)]
pub struct MetadataFollower {
    inner: Arc<FollowerInner>,
}

struct FollowerInner {
    cfg: FollowerConfig,
    transport: Arc<dyn RaftTransport>,
    image_rx: watch::Receiver<Arc<MetadataImage>>,
    /// The controller the poller believes leads; `propose` starts there.
    leader_rx: watch::Receiver<Option<i32>>,
    stop_tx: watch::Sender<bool>,
    poller: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for MetadataFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataFollower")
            .field("controllers", &self.inner.cfg.controllers)
            .field("last_applied_index", &self.inner.image_rx.borrow().last_applied_index)
            .finish()
    }
}

impl MetadataFollower {
    /// Starts following over a client-only [`TcpTransport`]. Returns at once; the image is
    /// empty (`last_applied_index` 0) until the first fetch succeeds, see
    /// [`MetadataFollower::wait_for_index`].
    pub fn start(cfg: FollowerConfig) -> Result<MetadataFollower, RaftError> {
        MetadataFollower::start_with(cfg, TcpTransport::client(TcpTransportConfig::default()))
    }

    /// [`MetadataFollower::start`] over an explicit transport. Must run inside a Tokio runtime.
    pub fn start_with(cfg: FollowerConfig, transport: Arc<dyn RaftTransport>) -> Result<MetadataFollower, RaftError> {
        if cfg.controllers.is_empty() {
            return Err(RaftError::Config("a metadata follower needs at least one controller".into()));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| RaftError::Config("MetadataFollower::start must run inside a Tokio runtime".into()))?;
        let (image_tx, image_rx) = watch::channel(Arc::new(MetadataImage::default()));
        let (leader_tx, leader_rx) = watch::channel(None);
        let (stop_tx, stop_rx) = watch::channel(false);
        let poller = runtime.spawn(poll(cfg.clone(), transport.clone(), image_tx, leader_tx, stop_rx));
        Ok(MetadataFollower {
            inner: Arc::new(FollowerInner {
                cfg,
                transport,
                image_rx,
                leader_rx,
                stop_tx,
                poller: std::sync::Mutex::new(Some(poller)),
            }),
        })
    }

    /// The latest image fetched.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.inner.image_rx.borrow().clone()
    }

    /// A receiver that sees every newer image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image_rx.clone()
    }

    /// The controller the last reply named as the Raft leader (the active controller), if any.
    pub fn leader_id(&self) -> Option<i32> {
        *self.inner.leader_rx.borrow()
    }

    /// Waits (bounded) until the image has applied log index `index` (e.g. the `log_index` of a
    /// proposal's outcome, to read one's own write).
    pub async fn wait_for_index(&self, index: u64, timeout: Duration) -> Result<Arc<MetadataImage>, RaftError> {
        let mut rx = self.inner.image_rx.clone();
        wait_for_image(&mut rx, |image| image.last_applied_index >= index, timeout, &format!("reach index {index}")).await
    }

    /// Proposes `cmd` through the controllers: to the known leader first, otherwise to each
    /// controller in turn, following "not the leader" answers. Same semantics and caveats as
    /// [`crate::MetadataQuorum::propose`]; the follower's own image shows the effect once the next
    /// fetch returns (see [`MetadataFollower::wait_for_index`]).
    pub async fn propose(&self, cmd: MetadataCommand) -> Result<CommandOutcome, RaftError> {
        let name = cmd.name();
        let timeout = self.inner.cfg.propose_timeout;
        let deadline = Instant::now() + timeout;
        let ids: Vec<i32> = self.inner.cfg.controllers.keys().copied().collect();
        let mut hint = *self.inner.leader_rx.borrow();
        let mut next = 0usize;
        let mut last_error = String::from("no controller reachable");
        for attempt in 0u32.. {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || *self.inner.stop_tx.borrow() {
                break;
            }
            let target = match hint.take().filter(|id| self.inner.cfg.controllers.contains_key(id)) {
                Some(id) => id,
                None => {
                    next += 1;
                    ids[next % ids.len()]
                }
            };
            let address = &self.inner.cfg.controllers[&target];
            match send_forward(&*self.inner.transport, target, address, &cmd, remaining).await {
                Ok(ForwardReply::Done(outcome)) => return Ok(outcome),
                Ok(ForwardReply::Timeout) => {
                    return Err(RaftError::Timeout(format!("{name} not committed by controller {target} within {timeout:?}")))
                }
                Ok(ForwardReply::NotLeader { leader }) => {
                    last_error = format!("controller {target} is not the leader (it names {leader:?})");
                    // Follow the hint after the usual pause: two controllers naming each
                    // other during an election must not turn this into a busy loop.
                    hint = leader.filter(|l| *l != target);
                }
                Ok(ForwardReply::Failed(message)) => last_error = format!("controller {target} failed: {message}"),
                Err(e) => last_error = format!("controller {target}: {e}"),
            }
            let pause = Duration::from_millis(50u64 << attempt.min(3));
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        Err(RaftError::Timeout(format!("{name} not committed within {timeout:?}: {last_error}")))
    }

    /// Stops polling and closes the transport. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop_tx.send(true);
        let poller = self.inner.poller.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(poller) = poller {
            poller.abort();
            let _ = poller.await;
        }
        self.inner.transport.close().await;
    }
}

/// The fetch loop: see the module docs.
async fn poll(
    cfg: FollowerConfig,
    transport: Arc<dyn RaftTransport>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    leader_tx: watch::Sender<Option<i32>>,
    mut stop: watch::Receiver<bool>,
) {
    let ids: Vec<i32> = cfg.controllers.keys().copied().collect();
    let mut target = ids[0];
    let mut failures = 0u32;
    loop {
        let after_index = image_tx.borrow().last_applied_index;
        let address = &cfg.controllers[&target];
        let fetched = tokio::select! {
            fetched = send_fetch(&*transport, target, address, after_index, cfg.poll_wait) => fetched,
            _ = stop.changed() => return,
        };
        match fetched {
            Ok(reply) => {
                failures = 0;
                if let Some(image) = reply.image {
                    if image.last_applied_index > image_tx.borrow().last_applied_index {
                        image_tx.send_replace(Arc::new(image));
                    }
                }
                leader_tx.send_replace(reply.leader);
                match reply.leader {
                    Some(leader) if cfg.controllers.contains_key(&leader) => target = leader,
                    // A controller without a leader may be cut off from the quorum: try another.
                    None => target = next_id(&ids, target),
                    Some(_) => {}
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::debug!(controller = target, failures, "metadata follower: fetch failed: {e}");
                target = next_id(&ids, target);
                // Back off only once every controller failed in a row.
                if (failures as usize).checked_rem(ids.len()) == Some(0) {
                    let rounds = (failures as usize / ids.len()).min(5) as u32;
                    let pause = Duration::from_millis(50u64 << rounds).min(cfg.max_backoff);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }
}

fn next_id(ids: &[i32], current: i32) -> i32 {
    let position = ids.iter().position(|id| *id == current).unwrap_or(0);
    ids[(position + 1) % ids.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_rejects_bad_setups_without_panicking() {
        let one = BTreeMap::from([(1, "127.0.0.1:9093".to_string())]);
        // Outside a runtime.
        assert!(matches!(MetadataFollower::start(FollowerConfig::new(one)), Err(RaftError::Config(_))));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            assert!(matches!(MetadataFollower::start(FollowerConfig::new(BTreeMap::new())), Err(RaftError::Config(_))));
        });
    }

    #[tokio::test]
    async fn propose_without_reachable_controllers_times_out_with_a_reason() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut cfg = FollowerConfig::new(BTreeMap::from([(1, format!("127.0.0.1:{port}"))]));
        cfg.propose_timeout = Duration::from_millis(500);
        let follower = MetadataFollower::start(cfg).expect("start");
        let result = follower.propose(MetadataCommand::InitializeCluster { cluster_id: "x".into() }).await;
        match result {
            Err(RaftError::Timeout(message)) => assert!(message.contains("controller 1"), "{message}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(follower.image().last_applied_index, 0);
        follower.shutdown().await;
    }
}
