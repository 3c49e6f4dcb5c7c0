//! Compression codecs (attributes bits 0-2) and the decompression hook.
//!
//! Only [`Compression::None`] is implemented today. [`decompress`] is the one
//! place where gzip / snappy (xerial framing *and* raw blocks) / lz4 frame /
//! zstd support will be added; everything that iterates records goes through it.

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
/// batch compressed with `codec`.
///
/// Returns the payload unchanged for [`Compression::None`] and
/// [`RecordsError::UnsupportedCompression`] for every real codec until codec
/// support lands (a later issue).
pub fn decompress(codec: Compression, payload: Bytes) -> Result<Bytes, RecordsError> {
    decompress_bounded(codec, payload, usize::MAX)
}

/// Like [`decompress`], but fails with [`RecordsError::DecompressedTooLarge`]
/// as soon as the output would exceed `max_bytes` (decompression bombs).
pub fn decompress_bounded(codec: Compression, payload: Bytes, max_bytes: usize) -> Result<Bytes, RecordsError> {
    let _ = max_bytes;
    match codec {
        Compression::None => Ok(payload),
        // TODO(compression): gzip (RFC 1952), snappy (xerial framing + raw
        // block), lz4 frame, zstd frame.
        Compression::Gzip | Compression::Snappy | Compression::Lz4 | Compression::Zstd => {
            Err(RecordsError::UnsupportedCompression(codec))
        }
    }
}

/// Compresses a records section (the bytes after `recordsCount`) with `codec`,
/// in the framing Kafka's own broker writes. Encoding into memory cannot fail.
pub fn compress(codec: Compression, payload: &[u8]) -> Vec<u8> {
    match codec {
        Compression::None => payload.to_vec(),
        // TODO(compression): implemented by the codec work.
        _ => unimplemented!("compression codec {codec:?}"),
    }
}
