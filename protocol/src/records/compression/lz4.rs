//! LZ4 frame format (magic `0x184D2204`, KIP-57) through `lz4_flex`.

use std::io::Write;

use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use super::{corrupt, read_bounded, Compression, RecordsError};

const FRAME_MAGIC: u32 = 0x184D_2204;
/// Frame header flag bits (FLG byte).
const FLG_VERSION_MASK: u8 = 0b1100_0000;
const FLG_VERSION_01: u8 = 0b0100_0000;
const FLG_BLOCK_CHECKSUM: u8 = 0b0001_0000;
const FLG_CONTENT_SIZE: u8 = 0b0000_1000;
const FLG_CONTENT_CHECKSUM: u8 = 0b0000_0100;
const FLG_RESERVED: u8 = 0b0000_0010;
const FLG_DICT_ID: u8 = 0b0000_0001;
/// High bit of a block size: the block is stored uncompressed.
const BLOCK_UNCOMPRESSED: u32 = 0x8000_0000;

/// Decodes one or more concatenated LZ4 frames, whatever their flags (block
/// checksums, content checksum, content size, linked or independent blocks,
/// 64 KiB to 4 MiB blocks). lz4_flex verifies the checksums and content size.
pub(super) fn decode(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    // lz4_flex treats an input that ends right after a block as a finished
    // frame; a stream cut there would decode to a silently shorter payload.
    // Walking the framing first turns that into an error and also rejects
    // the legacy format and dictionaries, which Kafka never uses.
    check_frames(input)?;
    let hint = input.len().saturating_mul(4);
    read_bounded(Compression::Lz4, FrameDecoder::new(input), limit, hint)
}

/// Checks that `input` is a sequence of complete LZ4 frames: header fields
/// valid, every block within the declared maximum and fully present, an end
/// mark (and content checksum, if flagged) closing each frame. Does not
/// decompress or verify checksums; the decoder does that.
fn check_frames(input: &[u8]) -> Result<(), RecordsError> {
    let mut rest = input;
    while !rest.is_empty() {
        rest = check_frame(rest)?;
    }
    Ok(())
}

/// Checks one frame at the start of `input`, returning what follows it.
fn check_frame(input: &[u8]) -> Result<&[u8], RecordsError> {
    let mut r = Cursor { rest: input };
    let magic = r.u32_le("frame magic")?;
    if magic != FRAME_MAGIC {
        return Err(corrupt(Compression::Lz4, format!("bad frame magic {magic:#010x}")));
    }
    let flg = r.u8("frame flags")?;
    let bd = r.u8("block descriptor")?;
    if flg & FLG_VERSION_MASK != FLG_VERSION_01 || flg & FLG_RESERVED != 0 {
        return Err(corrupt(Compression::Lz4, format!("unsupported frame flags {flg:#04x}")));
    }
    if flg & FLG_DICT_ID != 0 {
        return Err(corrupt(Compression::Lz4, "frames with a dictionary are not supported"));
    }
    let max_block = match (bd >> 4) & 0x07 {
        4 => 64 * 1024,
        5 => 256 * 1024,
        6 => 1024 * 1024,
        7 => 4 * 1024 * 1024,
        _ => return Err(corrupt(Compression::Lz4, format!("bad block descriptor {bd:#04x}"))),
    };
    if bd & 0x8F != 0 {
        return Err(corrupt(Compression::Lz4, format!("bad block descriptor {bd:#04x}")));
    }
    if flg & FLG_CONTENT_SIZE != 0 {
        r.skip(8, "content size")?;
    }
    r.skip(1, "header checksum")?;
    loop {
        let word = r.u32_le("block size")?;
        if word == 0 {
            break; // end mark
        }
        let size = (word & !BLOCK_UNCOMPRESSED) as usize;
        if size > max_block {
            return Err(corrupt(
                Compression::Lz4,
                format!("block of {size} bytes exceeds the frame's {max_block}"),
            ));
        }
        r.skip(size, "block data")?;
        if flg & FLG_BLOCK_CHECKSUM != 0 {
            r.skip(4, "block checksum")?;
        }
    }
    if flg & FLG_CONTENT_CHECKSUM != 0 {
        r.skip(4, "content checksum")?;
    }
    Ok(r.rest)
}

/// A forward-only reader over a slice whose every step reports truncation.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], RecordsError> {
        if self.rest.len() < n {
            return Err(corrupt(Compression::Lz4, format!("truncated frame: {what}")));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn skip(&mut self, n: usize, what: &str) -> Result<(), RecordsError> {
        self.take(n, what).map(|_| ())
    }
    fn u8(&mut self, what: &str) -> Result<u8, RecordsError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32_le(&mut self, what: &str) -> Result<u32, RecordsError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// One frame as the Java producer writes it: 64 KiB independent blocks, no
/// block or content checksum (the batch CRC covers the bytes), no content
/// size.
pub(super) fn encode(input: &[u8]) -> Vec<u8> {
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent)
        .block_checksums(false)
        .content_checksum(false)
        .content_size(None);
    let mut encoder =
        FrameEncoder::with_frame_info(info, Vec::with_capacity(input.len() / 2 + 64));
    // Errors can only come from the inner writer, and a Vec never fails.
    encoder.write_all(input).expect("lz4 into a Vec cannot fail");
    encoder.finish().expect("lz4 into a Vec cannot fail")
}
