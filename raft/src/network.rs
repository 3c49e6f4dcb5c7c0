//! How voters (and broker-only followers) talk to controllers.
//!
//! [`RaftTransport`] moves opaque request/response frames between nodes; it knows nothing about
//! openraft (frames are JSON-encoded messages, built and parsed inside this crate).
//! [`crate::TcpTransport`] carries them between processes; [`InProcessTransport`] connects
//! quorums living in one process (tests, and the single combined node, which never sends
//! anything because it is the only voter).
//!
//! On the receiving side the transport hands each frame to the node's [`RpcHandler`], which it
//! got from [`RaftTransport::serve`]. Besides openraft's three RPCs the handler answers
//! [`RpcKind::Forward`] (a proposal from a node that is not the leader) and
//! [`RpcKind::FetchImage`] (a long poll of the committed image by a broker-only follower).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::command::{CommandOutcome, MetadataCommand};
use crate::error::RaftError;
use crate::image::MetadataImage;
use crate::types::{Node, NodeId, Raft, TypeConfig};

/// The kind of an RPC frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcKind {
    AppendEntries,
    Vote,
    InstallSnapshot,
    /// A [`MetadataCommand`] proposed on another node, to be written by this node if it leads.
    Forward,
    /// A broker-only follower asking for the committed image once it is newer than what it has.
    FetchImage,
}

impl RpcKind {
    /// The byte identifying the kind on the wire.
    pub fn to_wire(self) -> u8 {
        match self {
            RpcKind::AppendEntries => 1,
            RpcKind::Vote => 2,
            RpcKind::InstallSnapshot => 3,
            RpcKind::Forward => 4,
            RpcKind::FetchImage => 5,
        }
    }

    /// The kind for a wire byte; `None` for unknown bytes.
    pub fn from_wire(byte: u8) -> Option<RpcKind> {
        Some(match byte {
            1 => RpcKind::AppendEntries,
            2 => RpcKind::Vote,
            3 => RpcKind::InstallSnapshot,
            4 => RpcKind::Forward,
            5 => RpcKind::FetchImage,
            _ => return None,
        })
    }
}

/// Body of a [`RpcKind::Forward`] request.
#[derive(Serialize, Deserialize)]
pub(crate) struct ForwardRequest {
    pub(crate) command: MetadataCommand,
    /// How long the receiver may wait for the commit; the sender gives up after that anyway.
    pub(crate) timeout_ms: u64,
}

/// Body of a [`RpcKind::Forward`] response.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum ForwardReply {
    /// Committed and applied on the leader.
    Done(CommandOutcome),
    /// The receiver does not lead; nothing was proposed. `leader` is its guess.
    NotLeader { leader: Option<i32> },
    /// Proposed but not committed within `timeout_ms`; it may still commit.
    Timeout,
    /// The receiver failed (e.g. it is shutting down); nothing is known about the command.
    Failed(String),
}

/// Upper bound on how long a forwarded write or an image poll may park a server task, whatever
/// the request asks for.
const MAX_SERVER_WAIT: Duration = Duration::from_secs(60);

/// Body of a [`RpcKind::FetchImage`] request.
#[derive(Serialize, Deserialize)]
pub(crate) struct FetchRequest {
    /// Reply as soon as the image has applied an entry after this index.
    pub(crate) after_index: u64,
    /// Otherwise reply `image: None` after this long.
    pub(crate) wait_ms: u64,
}

/// Body of a [`RpcKind::FetchImage`] response.
#[derive(Serialize, Deserialize)]
pub(crate) struct FetchReply {
    /// The replying node's current leader, so the follower can move to the leader (whose image
    /// is never behind another node's).
    pub(crate) leader: Option<i32>,
    /// The committed image, if newer than `after_index`.
    pub(crate) image: Option<MetadataImage>,
}

/// A boxed future returned by [`RaftTransport::send`].
pub type TransportFuture = Pin<Box<dyn Future<Output = Result<Bytes, RaftError>> + Send + 'static>>;

/// Carries Raft RPC frames between voters.
pub trait RaftTransport: Send + Sync + 'static {
    /// Sends one request frame of `kind` to voter `target` (reachable at `address`, the
    /// `host:port` from the voter list) and resolves to its response frame.
    fn send(&self, target: i32, address: &str, kind: RpcKind, request: Bytes) -> TransportFuture;

    /// Makes node `node_id` reachable: frames sent to it go to `handler`.
    fn serve(&self, node_id: i32, handler: RpcHandler) -> Result<(), RaftError>;

    /// Stops delivering frames to `node_id`.
    fn unserve(&self, node_id: i32);

    /// Releases everything the transport holds (listener, connections, tasks). Called by
    /// [`crate::MetadataQuorum::shutdown`] after Raft stopped. The default does nothing, which
    /// suits transports shared by several nodes.
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(async {})
    }
}

/// The receiving end of one node: turns a request frame into a response frame.
#[derive(Clone)]
pub struct RpcHandler {
    raft: Raft,
    image_rx: watch::Receiver<Arc<MetadataImage>>,
}

fn to_i32(id: NodeId) -> Option<i32> {
    i32::try_from(id).ok()
}

impl RpcHandler {
    pub(crate) fn new(raft: Raft, image_rx: watch::Receiver<Arc<MetadataImage>>) -> RpcHandler {
        RpcHandler { raft, image_rx }
    }

    /// Writes a forwarded command if this node leads. Never forwards further: the sender picks
    /// the next target from `NotLeader`, so a stale leader view cannot make requests loop.
    async fn forward(&self, request: ForwardRequest) -> ForwardReply {
        let wait = Duration::from_millis(request.timeout_ms).min(MAX_SERVER_WAIT);
        match tokio::time::timeout(wait, self.raft.client_write(request.command)).await {
            Err(_) => ForwardReply::Timeout,
            Ok(Ok(response)) => ForwardReply::Done(response.data),
            Ok(Err(openraft::error::RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f)))) => {
                ForwardReply::NotLeader { leader: f.leader_id.and_then(to_i32) }
            }
            Ok(Err(e)) => ForwardReply::Failed(e.to_string()),
        }
    }

    /// Long poll: waits (bounded) until the applied image moves past `after_index`.
    async fn fetch(&self, request: FetchRequest) -> FetchReply {
        let wait = Duration::from_millis(request.wait_ms).min(MAX_SERVER_WAIT);
        let mut rx = self.image_rx.clone();
        let newer = async {
            loop {
                {
                    let image = rx.borrow_and_update();
                    if image.last_applied_index > request.after_index {
                        return Some(MetadataImage::clone(&image));
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        let image = tokio::time::timeout(wait, newer).await.ok().flatten();
        let leader = self.raft.metrics().borrow().current_leader.and_then(to_i32);
        FetchReply { leader, image }
    }

    /// Handles one request frame. An `Err` means the frame could not be decoded; errors of the
    /// Raft call itself travel inside the response frame.
    pub async fn handle(&self, kind: RpcKind, request: Bytes) -> Result<Bytes, RaftError> {
        fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, RaftError> {
            serde_json::from_slice(frame).map_err(|e| RaftError::Transport(format!("undecodable request frame: {e}")))
        }
        fn encode<T: Serialize>(value: &T) -> Result<Bytes, RaftError> {
            serde_json::to_vec(value)
                .map(Bytes::from)
                .map_err(|e| RaftError::Transport(format!("unencodable response: {e}")))
        }
        match kind {
            RpcKind::AppendEntries => encode(&self.raft.append_entries(decode(&request)?).await),
            RpcKind::Vote => encode(&self.raft.vote(decode(&request)?).await),
            RpcKind::InstallSnapshot => encode(&self.raft.install_snapshot(decode(&request)?).await),
            RpcKind::Forward => encode(&self.forward(decode(&request)?).await),
            RpcKind::FetchImage => encode(&self.fetch(decode(&request)?).await),
        }
    }
}

/// Delivers frames between quorums of the same process by direct calls.
#[derive(Default)]
pub struct InProcessTransport {
    nodes: Mutex<HashMap<i32, RpcHandler>>,
}

impl InProcessTransport {
    pub fn new() -> Arc<InProcessTransport> {
        Arc::new(InProcessTransport::default())
    }
}

impl RaftTransport for InProcessTransport {
    fn send(&self, target: i32, _address: &str, kind: RpcKind, request: Bytes) -> TransportFuture {
        let handler = self.nodes.lock().unwrap_or_else(|p| p.into_inner()).get(&target).cloned();
        Box::pin(async move {
            match handler {
                Some(handler) => handler.handle(kind, request).await,
                None => Err(RaftError::Transport(format!("node {target} is not reachable"))),
            }
        })
    }

    fn serve(&self, node_id: i32, handler: RpcHandler) -> Result<(), RaftError> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).insert(node_id, handler);
        Ok(())
    }

    fn unserve(&self, node_id: i32) {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).remove(&node_id);
    }
}

/// openraft's network factory over a [`RaftTransport`].
pub(crate) struct NetworkFactory {
    pub(crate) transport: Arc<dyn RaftTransport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient { target, address: node.addr.clone(), transport: self.transport.clone() }
    }
}

/// openraft's connection to one peer.
pub(crate) struct PeerClient {
    target: NodeId,
    address: String,
    transport: Arc<dyn RaftTransport>,
}

type RemoteRaftError<E> = openraft::error::RaftError<NodeId, E>;

impl PeerClient {
    async fn call<Req, Resp, E>(&self, kind: RpcKind, request: &Req) -> Result<Resp, RPCError<NodeId, Node, RemoteRaftError<E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let frame = serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let target = i32::try_from(self.target).map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let response = self
            .transport
            .send(target, &self.address, kind, Bytes::from(frame))
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let result: Result<Resp, RemoteRaftError<E>> =
            serde_json::from_slice(&response).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RemoteRaftError<openraft::error::Infallible>>> {
        self.call(RpcKind::AppendEntries, &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Node, RemoteRaftError<InstallSnapshotError>>> {
        self.call(RpcKind::InstallSnapshot, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RemoteRaftError<openraft::error::Infallible>>> {
        self.call(RpcKind::Vote, &rpc).await
    }
}

/// Sends one [`RpcKind::Forward`] to `target` and decodes the reply. Used by voters that do not
/// lead and by broker-only followers.
pub(crate) async fn send_forward(
    transport: &dyn RaftTransport,
    target: i32,
    address: &str,
    command: &MetadataCommand,
    timeout: Duration,
) -> Result<ForwardReply, RaftError> {
    let request = ForwardRequest { command: command.clone(), timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX) };
    let frame = serde_json::to_vec(&request).map_err(|e| RaftError::Transport(format!("unencodable forward: {e}")))?;
    let response = transport.send(target, address, RpcKind::Forward, Bytes::from(frame)).await?;
    serde_json::from_slice(&response).map_err(|e| RaftError::Transport(format!("undecodable forward reply from {target}: {e}")))
}

/// Sends one [`RpcKind::FetchImage`] long poll to `target`.
pub(crate) async fn send_fetch(
    transport: &dyn RaftTransport,
    target: i32,
    address: &str,
    after_index: u64,
    wait: Duration,
) -> Result<FetchReply, RaftError> {
    let request = FetchRequest { after_index, wait_ms: wait.as_millis().try_into().unwrap_or(u64::MAX) };
    let frame = serde_json::to_vec(&request).map_err(|e| RaftError::Transport(format!("unencodable fetch: {e}")))?;
    let response = transport.send(target, address, RpcKind::FetchImage, Bytes::from(frame)).await?;
    serde_json::from_slice(&response).map_err(|e| RaftError::Transport(format!("undecodable fetch reply from {target}: {e}")))
}
