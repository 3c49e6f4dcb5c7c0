//! gzip (RFC 1952) through `flate2` with its pure-Rust miniz_oxide backend.

use std::io::Write;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::{read_bounded, Compression, RecordsError};

/// Decodes every member of a gzip stream. Several members are legal RFC 1952
/// and some writers (e.g. ones that flush per record) produce them; each
/// member's CRC-32 and length trailer is checked by flate2 as it ends.
pub(super) fn decode(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    // Record data typically deflates 3-5x; start there and let the reader grow.
    let hint = input.len().saturating_mul(4);
    read_bounded(Compression::Gzip, MultiGzDecoder::new(input), limit, hint)
}

/// One member at the default level (6), what Java's `GZIPOutputStream` writes.
pub(super) fn encode(input: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(input.len() / 2 + 64),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail, and deflate has no input it rejects.
    encoder.write_all(input).expect("gzip into a Vec cannot fail");
    encoder.finish().expect("gzip into a Vec cannot fail")
}
