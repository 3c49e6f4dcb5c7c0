//! A minimal Kafka client for broker-to-broker requests (follower fetches, liveness
//! checks), over the same codec the broker serves with: one request in flight per
//! connection, every read and write bounded by a timeout, frames bounded in size.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use klamm_protocol::header::{RequestHeader, ResponseHeader};
use klamm_protocol::{Decode, Encode, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted (a follower fetch is bounded by `replica.fetch.response.max.bytes`).
const MAX_RESPONSE_BYTES: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("protocol: {0}")]
    Protocol(String),
}

pub struct KafkaClient {
    stream: TcpStream,
    client_id: String,
    next_correlation_id: i32,
}

impl KafkaClient {
    pub async fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<KafkaClient, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr)).await.map_err(|_| ClientError::Timeout)??;
        stream.set_nodelay(true)?;
        Ok(KafkaClient { stream, client_id: client_id.to_string(), next_correlation_id: 1 })
    }

    /// Sends `request` at `version` and waits (up to `timeout`) for its response.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16, timeout: Duration) -> Result<R::Response, ClientError>
    where
        R::Response: Decode,
    {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader {
            request_api_key: R::API_KEY as i16,
            request_api_version: version,
            correlation_id,
            client_id: Some(self.client_id.clone()),
            unknown_tagged_fields: Vec::new(),
        };
        let mut buf = BytesMut::with_capacity(512);
        buf.put_i32(0);
        header.encode(&mut buf, R::API_KEY.request_header_version(version)).map_err(|e| ClientError::Protocol(e.to_string()))?;
        request.encode(&mut buf, version).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let size = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        let exchange = async {
            self.stream.write_all(&buf).await?;
            let size = self.stream.read_i32().await?;
            if size < 4 || size as usize > MAX_RESPONSE_BYTES {
                return Err(ClientError::Protocol(format!("response frame of {size} bytes")));
            }
            let mut body = BytesMut::zeroed(size as usize);
            self.stream.read_exact(&mut body).await?;
            Ok::<Bytes, ClientError>(body.freeze())
        };
        let mut body = tokio::time::timeout(timeout, exchange).await.map_err(|_| ClientError::Timeout)??;
        let header = ResponseHeader::decode(&mut body, R::API_KEY.response_header_version(version)).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if header.correlation_id != correlation_id {
            return Err(ClientError::Protocol(format!("correlation id {} for request {correlation_id}", header.correlation_id)));
        }
        let response = R::Response::decode(&mut body, version).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let _ = body.remaining();
        Ok(response)
    }
}
