//! Reading request frames off a connection with as few copies as possible.
//!
//! A frame is `int32 size` + `size` bytes. Small frames are split off a
//! shared read buffer (one `read` can bring several pipelined requests). A
//! frame larger than what is buffered gets its own buffer, and the rest of it
//! is read from the socket straight into place, so a 1 MB produce request is
//! copied once (kernel to user) and never again: its buffer is then owned by
//! the request alone, which lets the produce path stamp offsets in place.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much one read asks the socket for when filling the shared buffer.
const READ_CHUNK: usize = 64 * 1024;

pub struct FrameReader<R> {
    socket: R,
    buffered: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(socket: R) -> FrameReader<R> {
        FrameReader { socket, buffered: BytesMut::new() }
    }

    /// Reads until at least `want` bytes are buffered; false at end of stream
    /// or on an error. Cancel-safe: bytes read are kept in the buffer.
    async fn fill(&mut self, want: usize) -> bool {
        while self.buffered.len() < want {
            if self.buffered.capacity() - self.buffered.len() < READ_CHUNK / 4 {
                self.buffered.reserve(READ_CHUNK);
            }
            match self.socket.read_buf(&mut self.buffered).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
        true
    }

    /// The next frame's size prefix; None when the client went away.
    /// Cancel-safe (a partial prefix stays buffered).
    pub async fn next_size(&mut self) -> Option<i32> {
        if !self.fill(4).await {
            return None;
        }
        Some(self.buffered.get_i32())
    }

    /// The frame body of `size` bytes; None if the connection ends early.
    pub async fn body(&mut self, size: usize) -> Option<Bytes> {
        if self.buffered.len() >= size {
            let frame = self.buffered.split_to(size);
            if self.buffered.is_empty() {
                // Let the frame own its allocation alone (see the module doc).
                self.buffered = BytesMut::new();
            }
            return Some(frame.freeze());
        }
        let mut frame = BytesMut::with_capacity(size);
        frame.extend_from_slice(&self.buffered);
        self.buffered.clear();
        while frame.len() < size {
            let missing = (size - frame.len()) as u64;
            match (&mut self.socket).take(missing).read_buf(&mut frame).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        Some(frame.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of every size, pipelined and split at odd places, come out whole
    /// and in order.
    #[tokio::test]
    async fn frames_in_any_split_come_out_whole() {
        let sizes = [10usize, 3, 70_000, 1, 200_000, 64 * 1024, 5];
        let mut wire = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            wire.extend_from_slice(&(n as i32).to_be_bytes());
            wire.extend((0..n).map(|j| (i * 31 + j) as u8));
        }
        for chunk in [1usize, 7, 4096, 100_000] {
            let (mut tx, rx) = tokio::io::duplex(chunk.max(64));
            let data = wire.clone();
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for piece in data.chunks(chunk) {
                    tx.write_all(piece).await.unwrap();
                }
            });
            let mut reader = FrameReader::new(rx);
            for (i, &n) in sizes.iter().enumerate() {
                assert_eq!(reader.next_size().await, Some(n as i32));
                let body = reader.body(n).await.expect("body");
                assert!(body.iter().enumerate().all(|(j, &b)| b == (i * 31 + j) as u8), "frame {i}, chunk {chunk}");
            }
            writer.await.unwrap();
            assert_eq!(reader.next_size().await, None);
        }
    }

    /// A large frame read straight into place is the only owner of its buffer.
    #[tokio::test]
    async fn a_large_frame_owns_its_buffer() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        use tokio::io::AsyncWriteExt;
        let n = 300_000usize;
        tx.write_all(&(n as i32).to_be_bytes()).await.unwrap();
        tx.write_all(&vec![1u8; n]).await.unwrap();
        let mut reader = FrameReader::new(rx);
        assert_eq!(reader.next_size().await, Some(n as i32));
        let body = reader.body(n).await.unwrap();
        assert!(body.try_into_mut().is_ok());
    }

    #[tokio::test]
    async fn a_short_stream_ends_the_frame() {
        let (mut tx, rx) = tokio::io::duplex(1024);
        use tokio::io::AsyncWriteExt;
        tx.write_all(&100i32.to_be_bytes()).await.unwrap();
        tx.write_all(&[0u8; 10]).await.unwrap();
        drop(tx);
        let mut reader = FrameReader::new(rx);
        assert_eq!(reader.next_size().await, Some(100));
        assert_eq!(reader.body(100).await, None);
    }
}
