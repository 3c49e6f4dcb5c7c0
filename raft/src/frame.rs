//! The frame format of [`crate::TcpTransport`] (see its module docs):
//! `u32 BE length | u8 kind | u8 status | u64 BE request id | payload`, the length counting
//! everything after itself.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes after the length prefix that are not payload: kind, status, request id.
pub(crate) const HEADER_LEN: usize = 1 + 1 + 8;
pub(crate) const STATUS_REQUEST: u8 = 0;
pub(crate) const STATUS_OK: u8 = 1;
pub(crate) const STATUS_ERROR: u8 = 2;

/// A decoded frame.
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) status: u8,
    pub(crate) id: u64,
    pub(crate) payload: Bytes,
}

/// Builds one frame; `payload.len()` must not exceed the transport's `max_frame_bytes`.
pub(crate) fn encode_frame(kind: u8, status: u8, id: u64, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + HEADER_LEN + payload.len());
    // The caller checked `payload.len()` against `max_frame_bytes`, which is far below u32::MAX.
    buf.put_u32((HEADER_LEN + payload.len()) as u32);
    buf.put_u8(kind);
    buf.put_u8(status);
    buf.put_u64(id);
    buf.put_slice(payload);
    buf.freeze()
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames; `Err` is an I/O error or
/// a protocol violation (the caller closes the connection either way).
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max_payload: usize) -> Result<Option<Frame>, String> {
    let mut len_buf = [0u8; 4];
    match reader.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let len = u32::from_be_bytes(len_buf) as usize;
    if len < HEADER_LEN || len - HEADER_LEN > max_payload {
        return Err(format!("bad frame length {len}"));
    }
    let mut header = [0u8; HEADER_LEN];
    reader.read_exact(&mut header).await.map_err(|e| e.to_string())?;
    // Grow the buffer as bytes arrive instead of trusting the length prefix up front: a peer
    // announcing a maximal frame and then trickling bytes must not pin that much memory.
    let payload_len = len - HEADER_LEN;
    let mut payload = Vec::with_capacity(payload_len.min(64 << 10));
    (&mut *reader).take(payload_len as u64).read_to_end(&mut payload).await.map_err(|e| e.to_string())?;
    if payload.len() != payload_len {
        return Err(format!("stream ended inside a frame ({} of {payload_len} payload bytes)", payload.len()));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[2..]);
    Ok(Some(Frame { kind: header[0], status: header[1], id: u64::from_be_bytes(id), payload: Bytes::from(payload) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_lengths_are_rejected() {
        let frame = encode_frame(4, STATUS_REQUEST, 42, b"hello");
        let mut slice = &frame[..];
        let decoded = read_frame(&mut slice, 1024).await.expect("read").expect("a frame");
        assert_eq!((decoded.kind, decoded.status, decoded.id, &decoded.payload[..]), (4, 0, 42, &b"hello"[..]));
        assert!(read_frame(&mut &[][..], 1024).await.expect("eof").is_none());

        let too_big = encode_frame(1, STATUS_REQUEST, 1, &[0u8; 100]);
        assert!(read_frame(&mut &too_big[..], 99).await.is_err());
        let too_short = [0u8, 0, 0, 3, 1, 0, 0];
        assert!(read_frame(&mut &too_short[..], 1024).await.is_err());
        // Truncated in the payload.
        assert!(read_frame(&mut &frame[..frame.len() - 1], 1024).await.is_err());
    }
}
