//! A minimal Kafka client for broker-to-broker requests (follower fetches, liveness
//! checks), over the same codec the broker serves with: one request in flight per
//! connection, every read and write bounded by a timeout, frames bounded in size.
//! On a secured inter-broker listener it speaks TLS and logs in with SASL
//! ([`KafkaClient::connect_secured`], settings from `crate::security::client`).

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use klamm_protocol::header::{RequestHeader, ResponseHeader};
use klamm_protocol::{Decode, Encode, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::security::client::ClientSecurity;

/// A plain or TLS connection.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

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
    stream: Box<dyn Stream>,
    client_id: String,
    next_correlation_id: i32,
}

impl KafkaClient {
    pub async fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<KafkaClient, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr)).await.map_err(|_| ClientError::Timeout)??;
        stream.set_nodelay(true)?;
        Ok(KafkaClient { stream: Box::new(stream), client_id: client_id.to_string(), next_correlation_id: 1 })
    }

    /// Connects with the inter-broker listener's security: TLS (the peer's certificate must
    /// match the host of `addr`), then a SASL login, each bounded by `timeout`.
    pub async fn connect_secured(addr: &str, client_id: &str, timeout: Duration, security: &ClientSecurity) -> Result<KafkaClient, ClientError> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr)).await.map_err(|_| ClientError::Timeout)??;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match &security.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| ClientError::Protocol(format!("server name {host}: {e}")))?;
                let connector = tokio_rustls::TlsConnector::from(tls.clone());
                Box::new(tokio::time::timeout(timeout, connector.connect(name, tcp)).await.map_err(|_| ClientError::Timeout)??)
            }
        };
        let mut client = KafkaClient { stream, client_id: client_id.to_string(), next_correlation_id: 1 };
        if let Some(login) = &security.sasl {
            client.sasl_login(login, timeout).await?;
        }
        Ok(client)
    }

    /// SaslHandshake v1 + SaslAuthenticate v2 exchanges (KIP-152) for PLAIN or SCRAM.
    async fn sasl_login(&mut self, login: &crate::security::client::SaslLogin, timeout: Duration) -> Result<(), ClientError> {
        use klamm_config::security::SaslMechanism;
        use klamm_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
        let refused = |what: &str, code: i16, message: Option<String>| {
            ClientError::Protocol(format!("SASL {what} refused with error {code}: {}", message.unwrap_or_default()))
        };
        let handshake = SaslHandshakeRequest { mechanism: login.mechanism.name().to_string(), ..Default::default() };
        let r = self.send(&handshake, 1, timeout).await?;
        if r.error_code != 0 {
            return Err(refused("handshake", r.error_code, None));
        }
        let authenticate = |bytes: Vec<u8>| SaslAuthenticateRequest { auth_bytes: Bytes::from(bytes), ..Default::default() };
        match login.mechanism {
            SaslMechanism::Plain => {
                let token = format!("\0{}\0{}", login.username, login.password).into_bytes();
                let r = self.send(&authenticate(token), 2, timeout).await?;
                if r.error_code != 0 {
                    return Err(refused("login", r.error_code, r.error_message));
                }
            }
            m => {
                let mut scram = crate::security::scram::ScramClient::new(m, &login.username, &login.password);
                let r = self.send(&authenticate(scram.first_message().into_bytes()), 2, timeout).await?;
                if r.error_code != 0 {
                    return Err(refused("login", r.error_code, r.error_message));
                }
                let last = scram.final_message(&String::from_utf8_lossy(&r.auth_bytes)).map_err(ClientError::Protocol)?;
                let r = self.send(&authenticate(last.into_bytes()), 2, timeout).await?;
                if r.error_code != 0 {
                    return Err(refused("login", r.error_code, r.error_message));
                }
                scram.verify_server_final(&String::from_utf8_lossy(&r.auth_bytes)).map_err(ClientError::Protocol)?;
            }
        }
        Ok(())
    }

    /// The framed request (size, header, body) and its correlation id.
    fn frame<R: Request>(&mut self, request: &R, version: i16) -> Result<(i32, BytesMut), ClientError> {
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
        Ok((correlation_id, buf))
    }

    /// Sends `request` at `version` without reading a response: for the one request the
    /// broker never answers, a Produce with `acks=0` (the admin CLI's `produce --acks 0`).
    pub async fn send_without_response<R: Request>(&mut self, request: &R, version: i16, timeout: Duration) -> Result<(), ClientError> {
        let (_, buf) = self.frame(request, version)?;
        let write = async {
            self.stream.write_all(&buf).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(timeout, write).await.map_err(|_| ClientError::Timeout)??;
        Ok(())
    }

    /// Sends `request` at `version` and waits (up to `timeout`) for its response.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16, timeout: Duration) -> Result<R::Response, ClientError>
    where
        R::Response: Decode,
    {
        let (correlation_id, buf) = self.frame(request, version)?;
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
