//! The one HTTP/1.1 server of the binary, shared by every HTTP application it serves: the
//! admin/ops routes ([`ops`]: `/metrics`, `/health`, `/ready`, the ops page) and the schema
//! registry. It owns the connection handling (hyper 1.x on tokio), body limits, query
//! decoding and fault isolation; an application only implements [`Service`].
//!
//! What the server guarantees every service (so none has to re-check it):
//! - the whole body is read before the service runs, and a body larger than `max_body` is
//!   answered 413 without reaching it (by `Content-Length` at once, or while reading a
//!   chunked body);
//! - a request hyper cannot parse gets 400 (or the connection is closed);
//! - a service call that panics is answered 500 and the server keeps serving (each call
//!   runs in its own task, so a panic is caught at the task boundary);
//! - keep-alive connections; a peer that sends headers too slowly is dropped after 30 s;
//! - `shutdown` turning true stops accepting and closes idle connections gracefully;
//! - with a TLS acceptor (the registry's `https://` listener) every connection is a TLS one:
//!   the handshake is bounded like the headers, and a client that fails it is dropped.

pub mod ops;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tracing::{debug, warn};

/// How long a client may take to send a request's headers before the connection is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One HTTP request, body already read whole.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: http::Method,
    /// Raw path, no query, e.g. `/subjects/orders-value/versions`.
    pub path: String,
    /// Percent-decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub headers: http::HeaderMap,
    /// Whole body, already bounded by the server's `max_body`.
    pub body: Bytes,
    pub peer: SocketAddr,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// A response with `Content-Type: content_type`.
    pub fn new(status: http::StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response {
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(content_type) {
            headers.insert(http::header::CONTENT_TYPE, v);
        }
        Response { status, headers, body: body.into() }
    }

    /// A JSON response (`application/json`).
    pub fn json(status: http::StatusCode, value: &serde_json::Value) -> Response {
        Response::new(status, "application/json", value.to_string())
    }

    /// A JSON error body `{"error_code": <status>, "message": ...}`.
    pub fn error(status: http::StatusCode, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "error_code": status.as_u16(), "message": message }))
    }
}

/// One HTTP application (the admin/ops routes, the schema registry). Async, object safe.
pub trait Service: Send + Sync + 'static {
    fn call(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>>;
}

/// Serves `service` on an already bound listener until `shutdown` turns true. A body larger than
/// `max_body` gets 413 without reaching the service; a malformed request gets 400 or a closed
/// connection; a panicking service call gets 500 (the server keeps serving). With `tls`, each
/// connection is accepted through it first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<dyn Service>,
    max_body: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    if *shutdown.borrow() {
        return;
    }
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let service = service.clone();
                    let shutdown = shutdown.clone();
                    match tls.clone() {
                        None => {
                            connections.spawn(serve_connection(stream, peer, service, max_body, shutdown));
                        }
                        Some(acceptor) => {
                            connections.spawn(async move {
                                match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => serve_connection(stream, peer, service, max_body, shutdown).await,
                                    Ok(Err(e)) => debug!(%peer, error = %e, "https handshake failed"),
                                    Err(_) => debug!(%peer, "https handshake timed out"),
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    // Connections close gracefully on the same signal; bound the wait.
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while connections.join_next().await.is_some() {} }).await;
    connections.abort_all();
}

async fn serve_connection<S>(stream: S, peer: SocketAddr, service: Arc<dyn Service>, max_body: usize, mut shutdown: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handler = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let service = service.clone();
        async move { Ok::<_, Infallible>(handle(req, peer, service, max_body).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), handler);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                debug!(%peer, error = %e, "http connection ended with an error");
            }
        }
        _ = stop_requested(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// Resolves once `shutdown` is true or its sender is gone.
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

async fn handle(req: hyper::Request<Incoming>, peer: SocketAddr, service: Arc<dyn Service>, max_body: usize) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let declared = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return into_hyper(too_large(max_body), true);
    }
    let body = match Limited::new(body, max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return into_hyper(too_large(max_body), true);
        }
        Err(e) => {
            debug!(%peer, error = %e, "http request body could not be read");
            return into_hyper(Response::error(http::StatusCode::BAD_REQUEST, "request body could not be read"), true);
        }
    };
    let request = Request {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(parse_query).unwrap_or_default(),
        headers: parts.headers,
        body,
        peer,
    };
    // Its own task: a panic inside the service ends that task only, and becomes a 500 here.
    let call = tokio::spawn(async move { service.call(request).await });
    match call.await {
        Ok(response) => into_hyper(response, false),
        Err(e) => {
            warn!(%peer, error = %e, "http service call failed");
            into_hyper(Response::error(http::StatusCode::INTERNAL_SERVER_ERROR, "internal server error"), false)
        }
    }
}

fn too_large(max_body: usize) -> Response {
    Response::error(http::StatusCode::PAYLOAD_TOO_LARGE, &format!("request body larger than {max_body} bytes"))
}

/// `close`: the unread rest of a body would be taken for the next request, so the
/// connection ends after this answer.
fn into_hyper(response: Response, close: bool) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(response.body));
    *out.status_mut() = response.status;
    *out.headers_mut() = response.headers;
    if close {
        out.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    out
}

/// Splits a query string into `application/x-www-form-urlencoded` pairs, percent-decoding
/// names and values (`+` is a space). Invalid escapes stay as written; invalid UTF-8 is
/// replaced, never rejected, so a route decides what it accepts.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Percent-decodes `s` (`+` as a space).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Binds an HTTP listener named by config key `key` at `address` (`host:port`); the error
/// names both, as a Kafka listener's does.
pub async fn bind(key: &str, address: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await.map_err(|e| anyhow::anyhow!("cannot bind {key}={address}: {e}"))
}

#[cfg(test)]
mod tests;
