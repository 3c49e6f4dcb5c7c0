//! [`recompress_batch`]: re-encode a batch's records section with another
//! codec, for topics whose `compression.type` differs from the producer's.

use bytes::{Bytes, BytesMut};

use super::batch::RecordBatch;
use super::compression::{compress, Compression};
use super::record::{records_section, Records};
use super::{RecordsError, CRC_START, LOG_OVERHEAD, RECORD_BATCH_OVERHEAD};

/// Attribute bits that hold the codec; every other bit is carried over.
const CODEC_MASK: u16 = 0x07;

/// Returns `batch` with its records section re-encoded with `target`.
///
/// Every header field is kept (base offset, partition leader epoch, magic,
/// the non-codec attribute bits — timestamp type, transactional, control,
/// delete horizon —, lastOffsetDelta, base and max timestamp, producer id,
/// epoch and base sequence, records count); only the codec bits,
/// batchLength and the CRC change. The records themselves are not re-encoded
/// byte by byte: the section is decompressed and compressed as a whole.
///
/// When `target` is already the batch's codec the input bytes are returned
/// as they are (zero copy, nothing checked). Otherwise the batch must pass
/// [`RecordBatch::validate_header`] and its records must parse — a new CRC
/// must not launder a damaged batch — and the section may inflate to at
/// most `max_decompressed` bytes.
pub fn recompress_batch(
    batch: &RecordBatch,
    target: Compression,
    max_decompressed: usize,
) -> Result<Bytes, RecordsError> {
    let source = batch.compression()?;
    if source == target {
        return Ok(batch.as_bytes().clone());
    }
    batch.validate_header()?;
    let section = records_section(batch, max_decompressed)?;
    for record in Records::from_section(section.clone(), batch, None) {
        record?;
    }

    let encoded = match target {
        Compression::None => None,
        codec => Some(compress(codec, &section)),
    };
    let body: &[u8] = encoded.as_deref().unwrap_or(&section);

    let header = &batch.as_bytes()[..RECORD_BATCH_OVERHEAD];
    let mut out = BytesMut::with_capacity(RECORD_BATCH_OVERHEAD + body.len());
    out.extend_from_slice(header);
    out.extend_from_slice(body);

    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| {
        RecordsError::InvalidBatchLength(i32::MAX) // a section this large cannot be framed
    })?;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = u16::from_be_bytes([header[21], header[22]]);
    let attributes = (attributes & !CODEC_MASK) | target.bits();
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}
