//! Compression codecs of a record batch's records section (attributes bits
//! 0-2): decoding with a bomb limit, encoding, and the shared bounded reader.
//!
//! This module owns the *codec framing* of the bytes after `recordsCount`;
//! the batch header, CRC and record layout belong to the sibling modules.
//! Everything that iterates records of a compressed batch comes through
//! [`decompress_bounded`], so the limit and error classification live here.
//!
//! # Framing per codec
//!
//! | codec  | decodes                                             | encodes                                  |
//! |--------|-----------------------------------------------------|------------------------------------------|
//! | gzip   | RFC 1952, one or more concatenated members          | one member, default level (Java's)       |
//! | snappy | xerial/snappy-java framing *and* a raw snappy block | xerial framing, 32 KiB blocks            |
//! | lz4    | LZ4 frame(s), magic `0x184D2204`, any flags         | one frame, 64 KiB independent blocks     |
//! | zstd   | zstd frame(s), with or without content size         | one frame with content size, level 3     |
//!
//! Why these choices:
//!
//! * **snappy**: the Java client writes snappy-java's stream framing (an
//!   8-byte magic `0x82 "SNAPPY" 0x00`, two big-endian i32 version fields,
//!   then `[i32 BE length][raw block]` chunks), while librdkafka, kafkajs and
//!   others write one raw block. Every mainstream reader (Java, librdkafka,
//!   kafkajs-snappy) tells the two apart by the 8-byte magic and ignores the
//!   version fields, so we do the same. We *write* the xerial framing, as
//!   Kafka's Java broker does, because every client reads it. An empty input
//!   is encoded as the header plus one chunk holding an empty block, because
//!   librdkafka only takes the xerial path when more than 20 bytes follow.
//! * **lz4**: Kafka (KIP-57) uses the standard LZ4 frame format. Our encoder
//!   mirrors the Java producer's (64 KiB blocks, independent, no checksums,
//!   no content size). The decoder accepts what any LZ4 frame writer
//!   produces; before decoding we walk the frame structure ourselves so a
//!   stream cut at a block boundary is reported as corrupt instead of being
//!   silently shortened.
//! * **zstd**: libzstd via the `zstd` crate, since there is no mature pure-Rust
//!   encoder. The decoder keeps libzstd's default window limit (2^27): Java
//!   producers stream without a content size, so their window is set by the
//!   level alone and can exceed a small output limit while being legitimate.
//!   The window is allocated lazily by the OS; only bytes actually decoded
//!   are touched, and our output buffer never grows past the limit.
//!
//! # The output limit
//!
//! [`decompress_bounded`] never holds more than `max_bytes` of output: the
//! streaming codecs are read through [`read_bounded`], which grows its
//! buffer geometrically but never past the limit and probes a single byte
//! before declaring the output too large; snappy's declared block lengths
//! are checked against the remaining budget *before* allocating. Codec
//! working memory is separate and bounded by a constant that does not
//! depend on the claimed output: gzip a 32 KiB window, lz4 at most
//! 3 × 4 MiB + 64 KiB (linked 4 MiB blocks), zstd its window (above).

mod gzip;
mod lz4;
mod snappy;
mod zstd;

#[cfg(test)]
pub(crate) mod tests;

use std::io::{self, Read};

use bytes::Bytes;

use super::RecordsError;

/// Codec of a batch's records (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    /// Every codec, in attribute-bit order (handy for tests and config checks).
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Decodes the low three attribute bits.
    pub fn from_bits(bits: u8) -> Result<Compression, RecordsError> {
        match bits & 0x07 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(RecordsError::UnknownCompression(other)),
        }
    }

    /// The attribute bits for this codec.
    pub fn bits(self) -> u16 {
        self as u16
    }
}

/// Decompresses the records section (everything after `recordsCount`) of a
/// batch compressed with `codec`, without an output limit.
///
/// Only for trusted input (our own log); anything from the network should go
/// through [`decompress_bounded`].
pub fn decompress(codec: Compression, payload: Bytes) -> Result<Bytes, RecordsError> {
    decompress_bounded(codec, payload, usize::MAX)
}

/// Like [`decompress`], but fails with [`RecordsError::DecompressedTooLarge`]
/// as soon as the output would exceed `max_bytes` (decompression bombs),
/// without ever holding more than `max_bytes` of output.
///
/// A damaged or truncated stream yields [`RecordsError::CorruptCompressed`].
/// [`Compression::None`] returns `payload` itself (zero copy, no limit: the
/// bytes are already in memory).
pub fn decompress_bounded(
    codec: Compression,
    payload: Bytes,
    max_bytes: usize,
) -> Result<Bytes, RecordsError> {
    if codec == Compression::None {
        return Ok(payload);
    }
    // No codec's framing is empty (even an empty input encodes to a header),
    // so an empty section is damage, not "no records".
    if payload.is_empty() {
        return Err(corrupt(codec, "empty compressed stream"));
    }
    let out = match codec {
        Compression::None => return Ok(payload),
        Compression::Gzip => gzip::decode(&payload, max_bytes)?,
        Compression::Snappy => snappy::decode(&payload, max_bytes)?,
        Compression::Lz4 => lz4::decode(&payload, max_bytes)?,
        Compression::Zstd => zstd::decode(&payload, max_bytes)?,
    };
    Ok(Bytes::from(out))
}

/// Compresses a records section (the bytes after `recordsCount`) with `codec`,
/// in the framing Kafka's own broker writes. Encoding into memory cannot fail.
pub fn compress(codec: Compression, payload: &[u8]) -> Vec<u8> {
    match codec {
        Compression::None => payload.to_vec(),
        Compression::Gzip => gzip::encode(payload),
        Compression::Snappy => snappy::encode(payload),
        Compression::Lz4 => lz4::encode(payload),
        Compression::Zstd => zstd::encode(payload),
    }
}

/// The error for a damaged stream of `codec`.
fn corrupt(codec: Compression, reason: impl Into<String>) -> RecordsError {
    RecordsError::CorruptCompressed {
        codec,
        reason: reason.into(),
    }
}

/// Smallest buffer [`read_bounded`] starts with, so tiny hints do not cause
/// a string of tiny reallocations.
const MIN_READ_BUFFER: usize = 4 * 1024;

/// Reads `reader` to its end into a new `Vec`, failing with
/// [`RecordsError::DecompressedTooLarge`] once more than `limit` bytes come
/// out. The buffer starts at `hint` (clamped) and doubles, but is never
/// larger than `limit`: when it is full at the limit, a one-byte probe tells
/// whether the stream really has more.
///
/// Reading to the end matters: that is where gzip checks its CRC and length
/// trailer and zstd/lz4 notice a missing end of frame.
fn read_bounded<R: Read>(
    codec: Compression,
    mut reader: R,
    limit: usize,
    hint: usize,
) -> Result<Vec<u8>, RecordsError> {
    let mut buf = vec![0u8; hint.max(MIN_READ_BUFFER).min(limit)];
    let mut len = 0usize;
    loop {
        if len == buf.len() {
            if len >= limit {
                let mut probe = [0u8; 1];
                return match read_retrying(&mut reader, &mut probe) {
                    Ok(0) => {
                        buf.truncate(len);
                        Ok(buf)
                    }
                    Ok(_) => Err(RecordsError::DecompressedTooLarge { limit }),
                    Err(e) => Err(io_corrupt(codec, e)),
                };
            }
            let grown = len.saturating_mul(2).max(MIN_READ_BUFFER).min(limit);
            // Exact, or Vec's own amortised doubling could overshoot the limit.
            buf.reserve_exact(grown - len);
            buf.resize(grown, 0);
        }
        match read_retrying(&mut reader, &mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                return Ok(buf);
            }
            Ok(n) => len += n,
            Err(e) => return Err(io_corrupt(codec, e)),
        }
    }
}

/// `Read::read`, retrying on `Interrupted` (which in-memory readers do not
/// produce, but the contract allows).
fn read_retrying<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn io_corrupt(codec: Compression, e: io::Error) -> RecordsError {
    corrupt(codec, e.to_string())
}
