//! [`TcpTransport`]: the [`RaftTransport`] between processes.
//!
//! # Framing
//! Every frame, in both directions, is
//!
//! ```text
//! u32 BE length (of everything after it) | u8 kind | u8 status | u64 BE request id | payload
//! ```
//!
//! `kind` is [`RpcKind::to_wire`]; `status` is 0 for a request, 1 for a response whose payload is
//! the handler's answer, 2 for a response whose payload is a UTF-8 error message (the request
//! could not be handled, e.g. undecodable JSON or nobody serving). A length below the 10 header
//! bytes or above `10 + max_frame_bytes`, an unknown kind or an unexpected status is a protocol
//! violation: the connection is closed (only that one), pending requests on it fail, and the
//! next request opens a new connection.
//!
//! # Connections
//! A sender keeps up to two persistent connections per peer address: the *control* lane
//! (AppendEntries, Vote, Forward, FetchImage) and the *bulk* lane (InstallSnapshot), so that a
//! multi-megabyte snapshot chunk on the wire never delays a heartbeat behind it. Requests on a
//! lane are pipelined: each gets a fresh request id, and responses, which the server may send in
//! any order, are matched by that id. Every request has a timeout (by kind, see
//! [`TcpTransportConfig`]). A connection that fails is dropped; the next request reconnects. After
//! failed connects, further attempts to that address wait out an exponential backoff (capped) and
//! fail fast meanwhile, so an unreachable voter costs no connect storm.
//!
//! # Serving
//! [`TcpTransport::bind`] binds the listener at once (port 0 allowed; see
//! [`TcpTransport::local_addr`]), [`RaftTransport::serve`] installs the node's [`RpcHandler`].
//! Each request is handled in its own task (bounded per connection), so a forwarded write or an
//! image long poll does not hold up the AppendEntries behind it. [`RaftTransport::close`] stops
//! the listener and every connection task.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::error::RaftError;
use crate::frame::{encode_frame, read_frame, HEADER_LEN, STATUS_ERROR, STATUS_OK, STATUS_REQUEST};
use crate::network::{RaftTransport, RpcHandler, RpcKind, TransportFuture};


/// Limits and timeouts of a [`TcpTransport`].
#[derive(Clone, Debug)]
pub struct TcpTransportConfig {
    /// Largest payload accepted or sent. Must exceed openraft's snapshot chunk (3 MiB by
    /// default) and a serialized image (a broker-only follower fetches it whole).
    pub max_frame_bytes: usize,
    pub connect_timeout: Duration,
    /// AppendEntries and Vote. openraft cancels them sooner on its own; this is a backstop.
    pub rpc_timeout: Duration,
    /// One InstallSnapshot chunk.
    pub snapshot_timeout: Duration,
    /// Forward and FetchImage, which wait on the server side by design.
    pub long_timeout: Duration,
    /// First wait after a failed connect; doubles per failure up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Requests of one incoming connection handled at once; further frames wait (backpressure).
    pub max_in_flight_per_connection: usize,
    /// Incoming connections served at once; further ones are closed right after accept.
    pub max_incoming_connections: usize,
}

impl Default for TcpTransportConfig {
    fn default() -> Self {
        TcpTransportConfig {
            max_frame_bytes: 64 << 20,
            connect_timeout: Duration::from_secs(1),
            rpc_timeout: Duration::from_secs(5),
            snapshot_timeout: Duration::from_secs(60),
            long_timeout: Duration::from_secs(70),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            max_in_flight_per_connection: 64,
            max_incoming_connections: 256,
        }
    }
}

/// A [`RaftTransport`] over TCP (see the module docs for the wire format).
pub struct TcpTransport {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport").field("local_addr", &self.shared.local_addr).finish()
    }
}

struct Shared {
    cfg: TcpTransportConfig,
    local_addr: Option<SocketAddr>,
    handler: RwLock<Option<RpcHandler>>,
    peers: Mutex<HashMap<(String, Lane), Arc<Peer>>>,
    next_request_id: AtomicU64,
    closed: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Lane {
    Control,
    Bulk,
}

/// Outgoing connection state for one (address, lane).
struct Peer {
    address: String,
    state: tokio::sync::Mutex<PeerState>,
}

#[derive(Default)]
struct PeerState {
    conn: Option<Arc<Conn>>,
    failed_connects: u32,
    retry_at: Option<Instant>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Bytes, RaftError>>>>>;

/// One live outgoing connection: a writer task fed by `frames` and a reader task that completes
/// `pending` by request id.
struct Conn {
    frames: mpsc::Sender<Bytes>,
    pending: Pending,
    dead: Arc<AtomicBool>,
}

/// Fails every request still waiting on a connection that just died.
fn fail_pending(pending: &Pending, dead: &AtomicBool, why: &str) {
    dead.store(true, Ordering::Release);
    let waiting: Vec<_> = pending.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
    for (_, tx) in waiting {
        let _ = tx.send(Err(RaftError::Transport(why.to_string())));
    }
}

/// Removes a request's pending slot when its caller gives up (timeout or cancellation).
struct PendingGuard {
    pending: Pending,
    id: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl TcpTransport {
    /// Binds the listener at `address` (`host:port`) and starts accepting. Frames arrive at the
    /// handler installed by [`RaftTransport::serve`]; until then requests get an error response.
    pub async fn bind(address: &str, cfg: TcpTransportConfig) -> Result<Arc<TcpTransport>, RaftError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| RaftError::Transport(format!("cannot listen on {address}: {e}")))?;
        let local_addr = listener.local_addr().ok();
        let transport = TcpTransport::new(cfg, local_addr);
        let shared = transport.shared.clone();
        let accept = tokio::spawn(accept_loop(shared.clone(), listener));
        shared.track(accept);
        tracing::info!(?local_addr, "metadata transport listening");
        Ok(transport)
    }

    /// A transport that only sends (a broker-only follower).
    pub fn client(cfg: TcpTransportConfig) -> Arc<TcpTransport> {
        TcpTransport::new(cfg, None)
    }

    fn new(mut cfg: TcpTransportConfig, local_addr: Option<SocketAddr>) -> Arc<TcpTransport> {
        // The length prefix is a u32 that also counts the header.
        cfg.max_frame_bytes = cfg.max_frame_bytes.min(u32::MAX as usize - HEADER_LEN);
        let (shutdown_tx, _) = watch::channel(false);
        Arc::new(TcpTransport {
            shared: Arc::new(Shared {
                cfg,
                local_addr,
                handler: RwLock::new(None),
                peers: Mutex::new(HashMap::new()),
                next_request_id: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                shutdown_tx,
                tasks: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The address the listener is bound to (`None` for a client-only transport).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr
    }

    /// Stops the listener and all connections; pending and later requests fail. Idempotent.
    pub async fn shutdown(&self) {
        self.shared.shutdown().await;
    }
}

impl Shared {
    fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.handler.write().unwrap_or_else(|p| p.into_inner()).take();
        let _ = self.shutdown_tx.send(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in &tasks {
            task.abort();
        }
        // Awaiting the aborted tasks guarantees the listener socket is closed on return, so a
        // restarted node can bind the same port right away.
        for task in tasks {
            let _ = task.await;
        }
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn timeout_for(&self, kind: RpcKind) -> Duration {
        match kind {
            RpcKind::AppendEntries | RpcKind::Vote => self.cfg.rpc_timeout,
            RpcKind::InstallSnapshot => self.cfg.snapshot_timeout,
            RpcKind::Forward | RpcKind::FetchImage => self.cfg.long_timeout,
        }
    }

    fn peer(&self, address: &str, lane: Lane) -> Arc<Peer> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .entry((address.to_string(), lane))
            .or_insert_with(|| Arc::new(Peer { address: address.to_string(), state: tokio::sync::Mutex::new(PeerState::default()) }))
            .clone()
    }

    async fn call(self: Arc<Self>, address: String, kind: RpcKind, payload: Bytes) -> Result<Bytes, RaftError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(RaftError::ShutDown);
        }
        if payload.len() > self.cfg.max_frame_bytes {
            return Err(RaftError::Transport(format!(
                "{kind:?} request of {} bytes exceeds the {} byte frame limit",
                payload.len(),
                self.cfg.max_frame_bytes
            )));
        }
        let lane = if kind == RpcKind::InstallSnapshot { Lane::Bulk } else { Lane::Control };
        let peer = self.peer(&address, lane);
        let timeout = self.timeout_for(kind);
        let exchange = async {
            let conn = self.connection(&peer).await?;
            let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            conn.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
            let _guard = PendingGuard { pending: conn.pending.clone(), id };
            if conn.dead.load(Ordering::Acquire) {
                // The reader died between `connection` and the insert; its drain missed us.
                return Err(RaftError::Transport(format!("connection to {address} closed")));
            }
            conn.frames
                .send(encode_frame(kind.to_wire(), STATUS_REQUEST, id, &payload))
                .await
                .map_err(|_| RaftError::Transport(format!("connection to {address} closed")))?;
            rx.await.map_err(|_| RaftError::Transport(format!("connection to {address} closed")))?
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(RaftError::Timeout(format!("{kind:?} to {address}: no response within {timeout:?}"))),
        }
    }

    /// The live connection of `peer`, connecting if there is none (unless backing off).
    async fn connection(self: &Arc<Self>, peer: &Peer) -> Result<Arc<Conn>, RaftError> {
        let mut state = peer.state.lock().await;
        if let Some(conn) = &state.conn {
            if !conn.dead.load(Ordering::Acquire) {
                return Ok(conn.clone());
            }
            state.conn = None;
        }
        if let Some(retry_at) = state.retry_at {
            if Instant::now() < retry_at {
                return Err(RaftError::Transport(format!("{} unreachable (backing off)", peer.address)));
            }
        }
        let connect = tokio::time::timeout(self.cfg.connect_timeout, TcpStream::connect(peer.address.as_str())).await;
        let stream = match connect {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(self.connect_failed(&mut state, &peer.address, e.to_string())),
            Err(_) => return Err(self.connect_failed(&mut state, &peer.address, "connect timed out".into())),
        };
        // Small frames (votes, heartbeats) must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        state.failed_connects = 0;
        state.retry_at = None;
        let (reader, writer) = stream.into_split();
        let (frames_tx, frames_rx) = mpsc::channel::<Bytes>(64);
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let dead = Arc::new(AtomicBool::new(false));
        let conn = Arc::new(Conn { frames: frames_tx, pending: pending.clone(), dead: dead.clone() });
        self.track(tokio::spawn(client_writer(writer, frames_rx, pending.clone(), dead.clone(), self.shutdown_tx.subscribe())));
        self.track(tokio::spawn(client_reader(
            reader,
            self.cfg.max_frame_bytes,
            pending,
            dead,
            peer.address.clone(),
            self.shutdown_tx.subscribe(),
        )));
        state.conn = Some(conn.clone());
        Ok(conn)
    }

    fn connect_failed(&self, state: &mut PeerState, address: &str, why: String) -> RaftError {
        state.failed_connects = state.failed_connects.saturating_add(1);
        let exp = state.failed_connects.saturating_sub(1).min(16);
        let backoff = self.cfg.backoff_initial.saturating_mul(1u32 << exp).min(self.cfg.backoff_max);
        state.retry_at = Some(Instant::now() + backoff);
        tracing::debug!(address, failures = state.failed_connects, ?backoff, "metadata transport: connect failed: {why}");
        RaftError::Transport(format!("cannot connect to {address}: {why}"))
    }
}

async fn client_writer<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut frames: mpsc::Receiver<Bytes>,
    pending: Pending,
    dead: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let frame = tokio::select! {
            frame = frames.recv() => frame,
            _ = shutdown.changed() => None,
        };
        let Some(frame) = frame else { break };
        if let Err(e) = writer.write_all(&frame).await {
            fail_pending(&pending, &dead, &format!("write failed: {e}"));
            return;
        }
    }
    fail_pending(&pending, &dead, "connection closed");
}

async fn client_reader<R: AsyncRead + Unpin>(
    mut reader: R,
    max_payload: usize,
    pending: Pending,
    dead: Arc<AtomicBool>,
    address: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let why = loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, max_payload) => frame,
            _ = shutdown.changed() => break "transport shut down".to_string(),
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break format!("{address} closed the connection"),
            Err(e) => break format!("connection to {address} failed: {e}"),
        };
        let result = match frame.status {
            STATUS_OK => Ok(frame.payload),
            STATUS_ERROR => Err(RaftError::Transport(format!(
                "{address} could not handle the request: {}",
                String::from_utf8_lossy(&frame.payload)
            ))),
            other => break format!("{address} sent a frame with status {other}"),
        };
        // A response for an id nobody waits for is a request that timed out: drop it.
        if let Some(tx) = pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&frame.id) {
            let _ = tx.send(result);
        }
    };
    tracing::debug!("metadata transport: {why}");
    fail_pending(&pending, &dead, &why);
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut shutdown = shared.shutdown_tx.subscribe();
    let connections = Arc::new(Semaphore::new(shared.cfg.max_incoming_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, remote)) => {
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    tracing::warn!(%remote, "metadata transport: too many incoming connections, closing this one");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let serve = serve_connection(shared.clone(), stream, remote);
                let task = tokio::spawn(async move {
                    serve.await;
                    drop(permit);
                });
                shared.track(task);
            }
            Err(e) => {
                // E.g. too many open files: pause instead of spinning.
                tracing::warn!("metadata transport: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one incoming connection until the peer closes it, it violates the protocol, or the
/// transport shuts down. Each request runs in its own task; a writer task sends the responses.
async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, remote: SocketAddr) {
    let (mut reader, mut writer) = stream.into_split();
    let (responses_tx, mut responses_rx) = mpsc::channel::<Bytes>(64);
    let writer_task = tokio::spawn(async move {
        while let Some(frame) = responses_rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(shared.cfg.max_in_flight_per_connection.max(1)));
    let mut shutdown = shared.shutdown_tx.subscribe();
    let mut handlers = tokio::task::JoinSet::new();
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, shared.cfg.max_frame_bytes) => frame,
            _ = shutdown.changed() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(%remote, "metadata transport: closing connection: {e}");
                break;
            }
        };
        let kind = match (frame.status, RpcKind::from_wire(frame.kind)) {
            (STATUS_REQUEST, Some(kind)) => kind,
            (status, _) => {
                tracing::debug!(%remote, kind = frame.kind, status, "metadata transport: closing connection: not a request frame");
                break;
            }
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        let handler = shared.handler.read().unwrap_or_else(|p| p.into_inner()).clone();
        let responses = responses_tx.clone();
        let max = shared.cfg.max_frame_bytes;
        handlers.spawn(async move {
            let result = match handler {
                Some(handler) => handler.handle(kind, frame.payload).await,
                None => Err(RaftError::Transport("node is not serving".into())),
            };
            let response = match result {
                Ok(body) if body.len() <= max => encode_frame(frame.kind, STATUS_OK, frame.id, &body),
                Ok(body) => {
                    let message = format!("response of {} bytes exceeds the {max} byte frame limit", body.len());
                    encode_frame(frame.kind, STATUS_ERROR, frame.id, message.as_bytes())
                }
                Err(e) => encode_frame(frame.kind, STATUS_ERROR, frame.id, e.to_string().as_bytes()),
            };
            let _ = responses.send(response).await;
            drop(permit);
        });
        // Reap finished handlers so the set does not grow on a long-lived connection.
        while handlers.try_join_next().is_some() {}
    }
    // Dropping the set aborts handlers still running; their responses could not be sent anyway.
    drop(handlers);
    drop(responses_tx);
    writer_task.abort();
}

impl RaftTransport for TcpTransport {
    fn send(&self, _target: i32, address: &str, kind: RpcKind, request: Bytes) -> TransportFuture {
        Box::pin(self.shared.clone().call(address.to_string(), kind, request))
    }

    fn serve(&self, _node_id: i32, handler: RpcHandler) -> Result<(), RaftError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(RaftError::ShutDown);
        }
        *self.shared.handler.write().unwrap_or_else(|p| p.into_inner()) = Some(handler);
        Ok(())
    }

    fn unserve(&self, _node_id: i32) {
        self.shared.handler.write().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let shared = self.shared.clone();
        Box::pin(async move { shared.shutdown().await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_peer_fails_fast_while_backing_off() {
        // A port that was bound and released: nothing listens there.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let transport = TcpTransport::client(TcpTransportConfig { backoff_initial: Duration::from_secs(30), ..Default::default() });
        let first = transport.send(1, &addr.to_string(), RpcKind::Vote, Bytes::from_static(b"{}")).await;
        assert!(matches!(first, Err(RaftError::Transport(_))), "{first:?}");
        let second = transport.send(1, &addr.to_string(), RpcKind::Vote, Bytes::from_static(b"{}")).await;
        match second {
            Err(RaftError::Transport(m)) => assert!(m.contains("backing off"), "{m}"),
            other => panic!("expected a backoff error, got {other:?}"),
        }
        transport.shutdown().await;
    }
}
