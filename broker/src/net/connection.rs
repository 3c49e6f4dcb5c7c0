//! One client connection: framing, header decoding, dispatch, ordered replies.
//!
//! Kafka's rules that this module enforces (docs/kafka-compatibility.md sections 1, 2 and 6):
//! - a frame is `int32 size` + `size` bytes; a size above
//!   `socket.request.max.bytes` (or below what a header needs) closes the
//!   connection without a response;
//! - an unknown API key, or a version outside the advertised range of any API
//!   other than ApiVersions, closes the connection;
//! - an ApiVersions request at a version newer than ours gets a v0-format
//!   UNSUPPORTED_VERSION response listing the ApiVersions range (KIP-511);
//! - a body that does not decode closes the connection;
//! - requests are handled one at a time and answered in order; acks=0 produce
//!   requests get no response at all. An acks=all produce appends in turn but
//!   its answer waits for replication ([`Outcome::Deferred`]): the writer task
//!   awaits it in its place in the queue while the next requests are read, so a
//!   producer's pipelined requests do not each wait a replication round trip.
//!
//! Authentication happens here, before dispatch (see `crate::security`): a TLS listener's
//! handshake runs first (bounded by `connections.max.idle.ms`), and on a SASL listener only
//! ApiVersions, SaslHandshake and SaslAuthenticate pass until the [`SaslSession`] has
//! authenticated the client (or while an expired KIP-368 session awaits re-authentication).
//! Fetched record data is sent with sendfile(2) on plaintext sockets; on TLS it is read from
//! the log file and encrypted, since the kernel cannot encrypt what sendfile moves.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use klamm_protocol::header::decode_request_header;
use klamm_protocol::messages::RequestKind;
use klamm_protocol::{left_out, ApiKey};
use klamm_storage::FileRegion;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, Instrument};

use super::frame_reader::FrameReader;
use crate::handlers::{self, Outcome, RequestContext};
use crate::security::sasl::{Reply, SaslSession};
use crate::security::{ListenerSecurity, ANONYMOUS};
use crate::server::Broker;

type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// The write side of a connection: a plain socket (record data by sendfile) or TLS.
enum Writer {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream>),
}

impl Writer {
    async fn shutdown(&mut self) {
        let _ = match self {
            Writer::Plain(w) => w.shutdown().await,
            Writer::Tls(w) => w.shutdown().await,
        };
    }
}

/// Responses waiting for the writer task; bounded so a client that stops
/// reading eventually stops the reader too (back-pressure instead of memory).
const WRITE_QUEUE_DEPTH: usize = 64;

/// A response in the writer's queue: ready, or still being completed.
enum Queued {
    Ready(ResponseFrame),
    Deferred(std::pin::Pin<Box<dyn std::future::Future<Output = Option<ResponseFrame>> + Send>>),
}

/// An encoded response: its bytes, with record data to insert from log files
/// at the given positions (empty for most responses).
pub struct ResponseFrame {
    bytes: Bytes,
    from_files: Vec<(usize, FileRegion)>,
}

impl ResponseFrame {
    fn in_memory(bytes: Bytes) -> ResponseFrame {
        ResponseFrame { bytes, from_files: Vec::new() }
    }

    /// Writes the frame: the bytes in order, each file region sent from its
    /// file in its place. Fails (and the connection must close) if a region's
    /// file was truncated under the send, since the frame size is already out.
    async fn write_to(&self, out: &mut Writer) -> std::io::Result<()> {
        match out {
            Writer::Plain(out) => {
                let mut cursor = 0;
                for (at, region) in &self.from_files {
                    out.write_all(&self.bytes[cursor..*at]).await?;
                    send_region(out.as_ref(), region).await?;
                    cursor = *at;
                }
                out.write_all(&self.bytes[cursor..]).await
            }
            Writer::Tls(out) => {
                let mut cursor = 0;
                for (at, region) in &self.from_files {
                    out.write_all(&self.bytes[cursor..*at]).await?;
                    write_region_copied(out, region).await?;
                    cursor = *at;
                }
                out.write_all(&self.bytes[cursor..]).await?;
                // rustls buffers plaintext; push the records out now.
                out.flush().await
            }
        }
    }
}

/// Sends a file region through TLS: read from the file (off the runtime's threads) and
/// written, to be encrypted, like any other bytes.
async fn write_region_copied(out: &mut (impl AsyncWrite + Unpin), region: &FileRegion) -> std::io::Result<()> {
    let region = region.clone();
    let expected = region.len();
    let bytes = tokio::task::spawn_blocking(move || region.read())
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    if bytes.len() != expected {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "log segment shrank while it was being sent"));
    }
    out.write_all(&bytes).await
}

/// Sends a file region to the socket with sendfile(2): the kernel moves the
/// page-cache pages to the socket without a copy through user space.
async fn send_region(socket: &TcpStream, region: &FileRegion) -> std::io::Result<()> {
    let mut offset = region.position();
    let end = offset + region.len() as u64;
    while offset < end {
        socket.writable().await?;
        let sent = socket.try_io(tokio::io::Interest::WRITABLE, || {
            let count = (end - offset).min(1 << 30) as usize;
            rustix::fs::sendfile(socket, region.file(), Some(&mut offset), count).map_err(std::io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "log segment shrank while it was being sent"));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Smallest possible request: api_key + api_version + correlation_id + client_id length.
const MIN_FRAME_BYTES: i32 = 10;

/// A connection's authentication state: its TLS principal and, on a SASL listener, the
/// SASL session that decides which requests may pass.
struct Auth {
    tls_principal: Option<String>,
    sasl: Option<SaslSession>,
}

impl Auth {
    fn principal(&self) -> String {
        match &self.sasl {
            Some(s) => s.principal().unwrap_or_else(|| ANONYMOUS.to_string()),
            None => self.tls_principal.clone().unwrap_or_else(|| ANONYMOUS.to_string()),
        }
    }

    fn authenticated(&self) -> bool {
        self.sasl.as_ref().is_none_or(|s| s.principal().is_some())
    }
}

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    listener: String,
    security: Arc<ListenerSecurity>,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let span = tracing::debug_span!("connection", %peer, listener = %listener);
    serve_inner(stream, peer, listener, security, broker, shutdown).instrument(span).await
}

/// How long a client may take to finish the TLS handshake and SASL authentication: Kafka's
/// idle timeout covers connections that are still authenticating too.
fn authentication_timeout(broker: &Broker) -> std::time::Duration {
    std::time::Duration::from_millis(broker.config.connections_max_idle_ms.clamp(1, i64::MAX) as u64)
}

async fn serve_inner(
    stream: TcpStream,
    peer: SocketAddr,
    listener: String,
    security: Arc<ListenerSecurity>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let auth_deadline = tokio::time::Instant::now() + authentication_timeout(&broker);
    let (read_half, mut write_half, tls_principal): (Box<dyn AsyncRead + Send + Unpin>, Writer, Option<String>) = match &security.tls {
        None => {
            let (r, w) = stream.into_split();
            (Box::new(r), Writer::Plain(w), None)
        }
        Some(tls) => {
            let tls_stream = match tokio::time::timeout_at(auth_deadline, tls.acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    info!(%peer, listener = %listener, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    info!(%peer, listener = %listener, "TLS handshake timed out");
                    return;
                }
            };
            let principal = match client_certificate_principal(&tls_stream, tls) {
                Ok(p) => p,
                Err(e) => {
                    info!(%peer, listener = %listener, error = %e, "client certificate refused");
                    return;
                }
            };
            let (r, w) = tokio::io::split(tls_stream);
            (Box::new(r), Writer::Tls(w), principal)
        }
    };
    let mut auth = Auth {
        tls_principal,
        sasl: security.sasl.clone().map(|s| SaslSession::new(s, broker.config.connections_max_reauth_ms)),
    };
    let mut frames = FrameReader::new(read_half);
    let (tx, mut rx) = mpsc::channel::<Queued>(WRITE_QUEUE_DEPTH);
    let writer = tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            let frame = match item {
                Queued::Ready(frame) => frame,
                Queued::Deferred(pending) => match pending.await {
                    Some(frame) => frame,
                    None => break,
                },
            };
            if let Err(e) = frame.write_to(&mut write_half).await {
                debug!(error = %e, "closing connection: response write failed");
                break;
            }
        }
        write_half.shutdown().await;
    });

    let max_frame = broker.config.socket_request_max_bytes;
    loop {
        // Until authenticated, a client that stalls is closed at the deadline.
        let deadline = if auth.authenticated() { None } else { Some(auth_deadline) };
        let size = tokio::select! {
            r = frames.next_size() => match r {
                Some(size) => size,
                None => break, // EOF or reset: the client went away.
            },
            _ = async { tokio::time::sleep_until(deadline.unwrap_or(auth_deadline)).await }, if deadline.is_some() => {
                info!(%peer, listener = %listener, "closing connection: SASL authentication did not complete in time");
                break;
            }
            _ = shutdown.changed() => break,
        };
        // Before authentication frames are bounded by the SASL token limit (Kafka's
        // SaslServerAuthenticator does likewise), so an unauthenticated client cannot make
        // the broker allocate socket.request.max.bytes.
        let limit = if auth.authenticated() { max_frame } else { max_frame.min(crate::security::sasl::MAX_TOKEN_BYTES as i32) };
        let raw_token = auth.sasl.as_ref().is_some_and(SaslSession::expects_raw_token);
        if size < if raw_token { 0 } else { MIN_FRAME_BYTES } || size > limit {
            info!(%peer, listener = %listener, size, limit, "closing connection: frame size out of bounds");
            break;
        }
        let Some(frame) = frames.body(size as usize).await else {
            break;
        };
        let result = if raw_token {
            raw_sasl_token(&broker, &mut auth, peer, &frame).await
        } else {
            handle_frame(&broker, &listener, peer, &mut auth, frame).await
        };
        match result {
            FrameResult::Reply(bytes) => {
                if tx.send(Queued::Ready(bytes)).await.is_err() {
                    break;
                }
            }
            FrameResult::ReplyAndClose(bytes) => {
                let _ = tx.send(Queued::Ready(bytes)).await;
                break;
            }
            FrameResult::Deferred(pending) => {
                if tx.send(Queued::Deferred(pending)).await.is_err() {
                    break;
                }
            }
            FrameResult::Silent => {}
            FrameResult::Close(reason) => {
                debug!(reason, "closing connection");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// The principal of a TLS client: `User:<mapped subject DN>` of its certificate, or None
/// without one. A certificate no mapping rule matches fails the connection, as in Kafka.
fn client_certificate_principal(stream: &TlsStream, tls: &crate::security::tls::TlsListener) -> anyhow::Result<Option<String>> {
    let Some(cert) = stream.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return Ok(None);
    };
    let dn = crate::security::tls::subject_dn(cert)?;
    let name = tls.principal_rules.map(&dn).ok_or_else(|| anyhow::anyhow!("no ssl.principal.mapping.rules rule matches {dn}"))?;
    Ok(Some(format!("User:{name}")))
}

/// Kafka answers a failed login after `connection.failed.authentication.delay.ms`, which
/// slows down password guessing; the connection closes afterwards.
async fn failed_authentication_delay(broker: &Broker) {
    let ms = broker.config.connection_failed_authentication_delay_ms.max(0) as u64;
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// A raw SASL token (after SaslHandshake v0): answered with a size-prefixed raw token.
async fn raw_sasl_token(broker: &Arc<Broker>, auth: &mut Auth, peer: SocketAddr, token: &[u8]) -> FrameResult {
    let Some(sasl) = auth.sasl.as_mut() else {
        return FrameResult::Close("raw SASL token on a listener without SASL");
    };
    let image = broker.metadata.image();
    let mechanism = sasl.mechanism_in_progress();
    let reply = sasl.authenticate(0, token, |user, mechanism| image.scram_credential(user, mechanism).cloned());
    count_authentication(broker, mechanism, sasl, matches!(reply, Reply::SendAndClose(_)));
    match reply {
        Reply::Send(response) => {
            let mut buf = BytesMut::with_capacity(4 + response.auth_bytes.len());
            buf.put_i32(response.auth_bytes.len() as i32);
            buf.put_slice(&response.auth_bytes);
            FrameResult::Reply(ResponseFrame::in_memory(buf.freeze()))
        }
        Reply::SendAndClose(response) => {
            info!(%peer, error = response.error_message.as_deref().unwrap_or(""), "SASL authentication failed");
            failed_authentication_delay(broker).await;
            FrameResult::Close("SASL authentication failed")
        }
    }
}

/// SaslHandshake / SaslAuthenticate on a SASL listener, answered from the connection's session.
async fn sasl_request(broker: &Arc<Broker>, sasl: &mut SaslSession, peer: SocketAddr, api_key: ApiKey, version: i16, correlation_id: i32, request: RequestKind) -> FrameResult {
    use klamm_protocol::messages::ResponseKind;
    let (reply, failure) = match request {
        RequestKind::SaslHandshake(r) => match sasl.handshake(version, &r.mechanism) {
            Reply::Send(resp) => (Reply::Send(ResponseKind::from(resp)), None),
            Reply::SendAndClose(resp) => (Reply::SendAndClose(ResponseKind::from(resp)), Some(format!("SaslHandshake for mechanism {:?} refused", r.mechanism))),
        },
        RequestKind::SaslAuthenticate(r) => {
            let image = broker.metadata.image();
            let mechanism = sasl.mechanism_in_progress();
            let reply = sasl.authenticate(version, &r.auth_bytes, |user, mechanism| image.scram_credential(user, mechanism).cloned());
            count_authentication(broker, mechanism, sasl, matches!(reply, Reply::SendAndClose(_)));
            match reply {
                Reply::Send(resp) => (Reply::Send(ResponseKind::from(resp)), None),
                Reply::SendAndClose(resp) => {
                    let message = resp.error_message.clone().unwrap_or_default();
                    (Reply::SendAndClose(ResponseKind::from(resp)), Some(message))
                }
            }
        }
        _ => return FrameResult::Close("not a SASL request"),
    };
    let (response, close) = match reply {
        Reply::Send(r) => (r, false),
        Reply::SendAndClose(r) => (r, true),
    };
    if let Some(message) = failure {
        info!(%peer, error = %message, "SASL authentication failed");
        failed_authentication_delay(broker).await;
    }
    match encode_response(api_key, version, correlation_id, &response) {
        Ok(bytes) if close => FrameResult::ReplyAndClose(ResponseFrame::in_memory(bytes)),
        Ok(bytes) => FrameResult::Reply(ResponseFrame::in_memory(bytes)),
        Err(_) => FrameResult::Close("response encoding failed"),
    }
}

/// Counts a finished SASL exchange of `mechanism` for `/metrics`: a failure, or a success
/// once the session is no longer mid-exchange (SCRAM takes two round trips).
fn count_authentication(broker: &Broker, mechanism: Option<&'static str>, sasl: &SaslSession, failed: bool) {
    let Some(mechanism) = mechanism else { return };
    if failed {
        broker.metrics.auth_failures.add(mechanism, 1);
    } else if sasl.mechanism_in_progress().is_none() {
        broker.metrics.auth_successes.add(mechanism, 1);
    }
}

enum FrameResult {
    Reply(ResponseFrame),
    /// Send, then close (a failed SASL login).
    ReplyAndClose(ResponseFrame),
    Deferred(std::pin::Pin<Box<dyn std::future::Future<Output = Option<ResponseFrame>> + Send>>),
    Silent,
    Close(&'static str),
}

async fn handle_frame(
    broker: &Arc<Broker>,
    listener: &str,
    peer: SocketAddr,
    auth: &mut Auth,
    mut frame: Bytes,
) -> FrameResult {
    let (header, api_key) = match decode_request_header(&mut frame) {
        Ok(h) => h,
        Err(_) => return FrameResult::Close("undecodable request header"),
    };
    let Some(api_key) = api_key else {
        return FrameResult::Close("unknown api key");
    };
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;

    if api_key == ApiKey::ApiVersions && !handlers::is_supported(api_key, version) {
        // KIP-511: answer in the v0 format with UNSUPPORTED_VERSION and our range.
        return FrameResult::Reply(ResponseFrame::in_memory(handlers::api_versions::unsupported_version_response(correlation_id)));
    }
    if !handlers::is_supported(api_key, version) {
        return FrameResult::Close("unsupported api version");
    }
    let request = match RequestKind::decode(api_key, version, &mut frame) {
        Ok(r) => r,
        Err(_) => return FrameResult::Close("undecodable request body"),
    };
    // Let go of the frame: a produce request's records are then the only
    // reference to their bytes and can be stamped in place (no copy).
    drop(frame);
    if let Some(sasl) = auth.sasl.as_mut() {
        match api_key {
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => {
                return sasl_request(broker, sasl, peer, api_key, version, correlation_id, request).await;
            }
            ApiKey::ApiVersions => {}
            _ if sasl.blocks_requests(std::time::Instant::now()) => {
                info!(%peer, api_key = api_key.name(), "closing connection: request before SASL authentication completed");
                return FrameResult::Close("request before SASL authentication");
            }
            _ => {}
        }
    }
    let span = tracing::debug_span!(
        "request",
        api_key = api_key.name(),
        api_version = version,
        correlation_id,
        client_id = header.client_id.as_deref().unwrap_or("")
    );
    let ctx = RequestContext {
        broker: broker.clone(),
        api_key,
        api_version: version,
        correlation_id,
        client_id: header.client_id.clone().unwrap_or_default(),
        listener: listener.to_string(),
        peer,
        principal: auth.principal(),
    };
    let mut timer = crate::metrics::requests::RequestTimer::start();
    let outcome = timer.scope(handlers::handle(&ctx, request).instrument(span)).await;
    if !matches!(outcome, Outcome::Deferred(_)) {
        timer.finish(broker, api_key, version, &ctx.client_id, listener);
    }
    match outcome {
        Outcome::Respond(response) => match encode_response(api_key, version, correlation_id, &response) {
            Ok(bytes) => FrameResult::Reply(ResponseFrame::in_memory(bytes)),
            Err(e) => {
                tracing::error!(error = %e, api_key = api_key.name(), version, "failed to encode response");
                FrameResult::Close("response encoding failed")
            }
        },
        Outcome::RespondFromFiles(response, regions) => {
            match encode_response_from_files(api_key, version, correlation_id, &response, regions) {
                Ok(frame) => FrameResult::Reply(frame),
                Err(e) => {
                    tracing::error!(error = %e, api_key = api_key.name(), version, "failed to encode response");
                    FrameResult::Close("response encoding failed")
                }
            }
        }
        Outcome::Deferred(pending) => FrameResult::Deferred(Box::pin(async move {
            // Waiting for replication is Kafka's produce purgatory, and part of the request time.
            let waiting = ctx.broker.metrics.produce_purgatory.enter();
            let response = pending.await;
            drop(waiting);
            timer.finish(&ctx.broker, api_key, version, &ctx.client_id, &ctx.listener);
            match encode_response(api_key, version, correlation_id, &response) {
                Ok(bytes) => Some(ResponseFrame::in_memory(bytes)),
                Err(e) => {
                    tracing::error!(error = %e, api_key = api_key.name(), version, "failed to encode response");
                    None
                }
            }
        })),
        Outcome::NoResponse => FrameResult::Silent,
        Outcome::Close(reason) => FrameResult::Close(reason),
    }
}

/// Frames a response: size, response header (v0 or v1 by the API's rule), body.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &klamm_protocol::messages::ResponseKind,
) -> Result<Bytes, klamm_protocol::EncodeError> {
    let mut buf = BytesMut::with_capacity(256 + records_size(body));
    buf.put_i32(0); // size, patched below
    buf.put_i32(correlation_id);
    if api_key.response_header_version(version) >= 1 {
        buf.put_u8(0); // empty tagged-field section
    }
    body.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Frames a response whose `records` placeholders stand for `regions`
/// (see [`Outcome::RespondFromFiles`]): the size covers the regions' bytes,
/// which stay in their files until the writer sends them.
pub fn encode_response_from_files(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &klamm_protocol::messages::ResponseKind,
    regions: Vec<FileRegion>,
) -> Result<ResponseFrame, klamm_protocol::EncodeError> {
    if regions.is_empty() {
        return encode_response(api_key, version, correlation_id, body).map(ResponseFrame::in_memory);
    }
    let mut buf = BytesMut::with_capacity(1024);
    buf.put_i32(0); // size, patched below
    buf.put_i32(correlation_id);
    if api_key.response_header_version(version) >= 1 {
        buf.put_u8(0); // empty tagged-field section
    }
    let (encoded, left_out) = left_out::encode_leaving_out_records(|| body.encode(&mut buf, version));
    encoded?;
    let mut regions: Vec<Option<FileRegion>> = regions.into_iter().map(Some).collect();
    let mut from_files = Vec::with_capacity(left_out.len());
    let mut size = buf.len() - 4;
    for l in left_out {
        // Every placeholder was made for one region of the same length.
        let region = regions
            .get_mut(l.key)
            .and_then(Option::take)
            .filter(|r| r.len() == l.len)
            .ok_or_else(|| klamm_protocol::EncodeError::Invalid(format!("records placeholder {} has no region of {} bytes", l.key, l.len)))?;
        size += l.len;
        from_files.push((l.at, region));
    }
    let size = i32::try_from(size).map_err(|_| klamm_protocol::EncodeError::TooLong { field: "response", len: size })?;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(ResponseFrame { bytes: buf.freeze(), from_files })
}

/// Bytes of record data a response carries, so the output buffer is sized
/// once instead of growing (and copying) while a large fetch is encoded.
fn records_size(body: &klamm_protocol::messages::ResponseKind) -> usize {
    match body {
        klamm_protocol::messages::ResponseKind::Fetch(f) => f
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()) + 128)
            .sum(),
        _ => 0,
    }
}
