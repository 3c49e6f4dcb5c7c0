//! How voters talk to each other.
//!
//! [`RaftTransport`] moves opaque request/response frames between nodes; it knows nothing about
//! openraft (frames are JSON-encoded openraft messages, built and parsed inside this crate). A TCP
//! transport for a multi-controller cluster implements the same trait later. [`InProcessTransport`]
//! connects quorums living in one process (tests, and the single combined node, which never sends
//! anything because it is the only voter).
//!
//! On the receiving side the transport hands each frame to the node's [`RpcHandler`], which it
//! got from [`RaftTransport::serve`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::RaftError;
use crate::types::{Node, NodeId, Raft, TypeConfig};

/// The kind of a Raft RPC frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcKind {
    AppendEntries,
    Vote,
    InstallSnapshot,
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
}

/// The receiving end of one node: turns a request frame into a response frame.
#[derive(Clone)]
pub struct RpcHandler {
    raft: Raft,
}

impl RpcHandler {
    pub(crate) fn new(raft: Raft) -> RpcHandler {
        RpcHandler { raft }
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
