//! The server's guarantees, checked over real sockets with hand-written HTTP/1.1.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Echoes method, path, query and body; panics on `/panic`.
struct Echo;

impl Service for Echo {
    fn call(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(async move {
            if req.path == "/panic" {
                panic!("service panicked on purpose");
            }
            let query: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let value = serde_json::json!({
                "method": req.method.as_str(),
                "path": req.path,
                "query": query,
                "body": String::from_utf8_lossy(&req.body),
                "peer_loopback": req.peer.ip().is_loopback(),
            });
            Response::json(http::StatusCode::OK, &value)
        })
    }
}

async fn start(max_body: usize) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, Arc::new(Echo), max_body, None, rx));
    (addr, tx, task)
}

/// Reads one response (headers + Content-Length body) from `stream`.
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, head, body);
            }
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await.expect("response in time").unwrap();
        assert!(n > 0, "connection closed before a full response: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    read_response(&mut s).await
}

#[tokio::test]
async fn request_fields_reach_the_service() {
    let (addr, _tx, _task) = start(1024).await;
    let raw = b"POST /subjects/a%2Fb/versions?x=1&name=hello%20w+orld&flag HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";
    let (status, head, body) = exchange(addr, raw).await;
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/subjects/a%2Fb/versions");
    assert_eq!(v["query"], serde_json::json!(["x=1", "name=hello w orld", "flag="]));
    assert_eq!(v["body"], "hello");
    assert_eq!(v["peer_loopback"], true);
}

#[tokio::test]
async fn oversized_body_is_413_without_reaching_the_service() {
    let (addr, _tx, _task) = start(8).await;
    let (status, _, body) = exchange(addr, b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n123456789").await;
    assert_eq!(status, 413);
    assert!(body.contains("larger than 8"), "{body}");
    // Chunked: the limit applies while reading.
    let chunked = b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n";
    let (status, _, _) = exchange(addr, chunked).await;
    assert_eq!(status, 413);
    // At the limit it passes.
    let (status, _, body) = exchange(addr, b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n12345678").await;
    assert_eq!(status, 200);
    assert!(body.contains("12345678"));
}

#[tokio::test]
async fn garbage_gets_400_or_a_closed_connection() {
    let (addr, _tx, _task) = start(1024).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x00\x01 this is not http\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.expect("closed in time").unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || text.starts_with("HTTP/1.1 400"), "{text}");
    // The server still serves.
    let (status, _, _) = exchange(addr, b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let (addr, _tx, _task) = start(1024).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    for i in 0..3 {
        s.write_all(format!("GET /n/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).await.unwrap();
        let (status, _, body) = read_response(&mut s).await;
        assert_eq!(status, 200);
        assert!(body.contains(&format!("/n/{i}")), "{body}");
    }
}

#[tokio::test]
async fn a_panicking_service_gets_500_and_the_server_keeps_serving() {
    let (addr, _tx, _task) = start(1024).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let (status, _, _) = read_response(&mut s).await;
    assert_eq!(status, 500);
    // Same connection, then a new one.
    s.write_all(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    assert_eq!(exchange(addr, b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n").await.0, 200);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let (addr, tx, task) = start(1024).await;
    assert_eq!(exchange(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await.0, 200);
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("serve returns").unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[test]
fn query_decoding() {
    assert_eq!(parse_query("a=1&b=%41%2b+c&&d"), vec![("a".into(), "1".into()), ("b".into(), "A+ c".into()), ("d".into(), "".into())]);
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%zz%4"), "%zz%4");
    assert_eq!(percent_decode("%C3%A9"), "é");
    assert_eq!(percent_decode("%FF"), "\u{FFFD}");
}

#[tokio::test]
async fn bind_failure_names_key_and_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = bind("klamm.http.listener", &addr).await.unwrap_err().to_string();
    assert!(err.contains("klamm.http.listener") && err.contains(&addr), "{err}");
}
