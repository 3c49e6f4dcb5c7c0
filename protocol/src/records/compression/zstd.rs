//! zstd through the `zstd` crate (libzstd, compiled from the bundled C).

use zstd::stream::read::Decoder;

use super::{corrupt, read_bounded, Compression, RecordsError};

/// libzstd's own default window limit (128 MiB), made explicit: Java
/// producers stream without a content size, so their frames announce the
/// window of the compression level (up to 2^27 at level 22) regardless of
/// how small the batch is. Refusing those would reject legitimate batches.
const WINDOW_LOG_MAX: u32 = 27;

/// Kafka's default `compression.zstd.level`.
const LEVEL: i32 = 3;

/// Decodes one or more concatenated zstd frames (skippable frames are
/// skipped by libzstd), with or without a declared content size.
pub(super) fn decode(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    // A first frame that declares more than the limit is a bomb we can refuse
    // without decoding anything. Otherwise the declared size (if any) is a
    // good initial buffer; libzstd checks it against what actually decodes.
    let declared = match zstd::zstd_safe::get_frame_content_size(input) {
        Ok(Some(size)) => Some(size),
        Ok(None) => None,
        Err(_) => return Err(corrupt(Compression::Zstd, "bad zstd frame header")),
    };
    if let Some(size) = declared {
        if size > limit as u64 {
            return Err(RecordsError::DecompressedTooLarge { limit });
        }
    }
    let hint = declared.map_or(input.len().saturating_mul(4), |size| size as usize);
    let mut decoder = Decoder::with_buffer(input)
        .map_err(|e| corrupt(Compression::Zstd, e.to_string()))?;
    decoder
        .window_log_max(WINDOW_LOG_MAX)
        .map_err(|e| corrupt(Compression::Zstd, e.to_string()))?;
    read_bounded(Compression::Zstd, decoder, limit, hint)
}

/// One frame at level 3 with the content size recorded (single-shot
/// compression knows it), no checksum: the batch CRC already covers it.
pub(super) fn encode(input: &[u8]) -> Vec<u8> {
    // Only fails if libzstd cannot allocate its context or the input exceeds
    // what a frame can hold (far beyond a batch's i32 length).
    zstd::bulk::compress(input, LEVEL).expect("zstd compression into memory cannot fail")
}
