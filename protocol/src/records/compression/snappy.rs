//! snappy through `snap`: the snappy-java ("xerial") stream framing the Java
//! client writes, and the single raw block librdkafka and kafkajs write.

use snap::raw::{decompress_len, max_compress_len, Decoder, Encoder};

use super::{corrupt, Compression, RecordsError};

/// snappy-java's stream magic: `0x82 "SNAPPY" 0x00`.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic plus the two big-endian i32 version fields.
const XERIAL_HEADER_LEN: usize = 16;
/// The version and minimum compatible version snappy-java writes (and Kafka's
/// Java broker with it).
const XERIAL_VERSION: i32 = 1;
const XERIAL_MIN_COMPATIBLE: i32 = 1;
/// Uncompressed bytes per chunk: snappy-java's default block size.
const XERIAL_BLOCK: usize = 32 * 1024;

/// Decodes either framing, told apart by the 8-byte magic (as Java,
/// librdkafka and kafkajs-snappy all do). A raw snappy block cannot be
/// mistaken for it in practice: the magic would have to be a valid varint
/// length followed by a valid tag sequence.
pub(super) fn decode(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    if input.starts_with(&XERIAL_MAGIC) {
        decode_xerial(input, limit, &mut out)?;
    } else {
        decode_block(input, limit, &mut out)?;
    }
    Ok(out)
}

/// Walks `[i32 BE length][raw block]` chunks after the 16-byte header. The
/// version fields are not checked (no reader checks them and only version 1
/// exists); a partial chunk length or a chunk running past the end is damage.
///
/// Two passes: the first adds up the chunks' declared lengths so the output
/// is allocated once, at its exact size, and a bomb is refused before any
/// allocation; the second decodes.
fn decode_xerial(input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordsError> {
    if input.len() < XERIAL_HEADER_LEN {
        return Err(corrupt(Compression::Snappy, "truncated xerial header"));
    }
    let chunks = || XerialChunks {
        rest: &input[XERIAL_HEADER_LEN..],
    };
    let mut total = 0usize;
    for chunk in chunks() {
        total = total.saturating_add(declared_len(chunk?)?);
        if total > limit {
            return Err(RecordsError::DecompressedTooLarge { limit });
        }
    }
    out.reserve_exact(total);
    for chunk in chunks() {
        decode_block(chunk?, limit, out)?;
    }
    Ok(())
}

/// The raw blocks of a xerial stream (after its header).
struct XerialChunks<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for XerialChunks<'a> {
    type Item = Result<&'a [u8], RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((len_bytes, tail)) = self.rest.split_first_chunk::<4>() else {
            self.rest = &[];
            return Some(Err(corrupt(Compression::Snappy, "truncated xerial chunk length")));
        };
        let len = u32::from_be_bytes(*len_bytes) as usize;
        if len > tail.len() {
            self.rest = &[];
            return Some(Err(corrupt(
                Compression::Snappy,
                format!("xerial chunk of {len} bytes, {} left", tail.len()),
            )));
        }
        let (block, after) = tail.split_at(len);
        self.rest = after;
        Some(Ok(block))
    }
}

/// The uncompressed length a raw block declares in its varint prefix.
fn declared_len(block: &[u8]) -> Result<usize, RecordsError> {
    decompress_len(block).map_err(|e| corrupt(Compression::Snappy, e.to_string()))
}

/// Appends one raw snappy block to `out`, refusing it *before* allocating if
/// its declared length would take `out` past `limit`. Grows `out` exactly,
/// never by doubling, so its capacity stays within the limit too.
fn decode_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordsError> {
    let len = declared_len(block)?;
    if len > limit.saturating_sub(out.len()) {
        return Err(RecordsError::DecompressedTooLarge { limit });
    }
    let start = out.len();
    out.reserve_exact(len);
    out.resize(start + len, 0);
    let written = Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(Compression::Snappy, e.to_string()))?;
    // snap already insists on the declared length; belt and braces.
    if written != len {
        return Err(corrupt(Compression::Snappy, "block shorter than its declared length"));
    }
    Ok(())
}

/// The xerial framing with 32 KiB blocks, as Kafka's Java broker writes it.
pub(super) fn encode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + input.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_MIN_COMPATIBLE.to_be_bytes());
    let mut encoder = Encoder::new();
    // An empty input still gets one (empty) chunk: see the module docs.
    let empty: [&[u8]; 1] = [&[]];
    let chunks: Box<dyn Iterator<Item = &[u8]>> = if input.is_empty() {
        Box::new(empty.into_iter())
    } else {
        Box::new(input.chunks(XERIAL_BLOCK))
    };
    for chunk in chunks {
        let len_at = out.len();
        let data_at = len_at + 4;
        out.resize(data_at + max_compress_len(chunk.len()), 0);
        // A 32 KiB chunk into a max_compress_len buffer is always accepted.
        let written = encoder
            .compress(chunk, &mut out[data_at..])
            .expect("snappy block of at most 32 KiB into a max-size buffer");
        out.truncate(data_at + written);
        // written <= max_compress_len(32 KiB), far below u32::MAX.
        out[len_at..data_at].copy_from_slice(&(written as u32).to_be_bytes());
    }
    out
}
