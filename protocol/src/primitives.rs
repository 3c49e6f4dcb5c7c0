//! Kafka's primitive wire types (docs/kafka-compatibility.md sections 3-4):
//! fixed-width big-endian integers, LEB128 varints (unsigned and zig-zag),
//! classic and compact strings / bytes / arrays, UUIDs and tagged-field
//! sections.
//!
//! Readers take `&mut Bytes` and advance it; byte fields are zero-copy
//! `Bytes` slices of the input (`split_to`). Every read checks the remaining
//! length first and returns [`DecodeError`] instead of panicking, and no
//! reader allocates from an untrusted length before checking that the input
//! actually holds that many bytes. Writers append to `BytesMut`.
//!
//! The generated message code calls these helpers instead of inlining the
//! logic, which keeps the generated code small and the crate quick to build.
//! The varint helpers are generic over [`Buf`] so the record-batch code can use
//! them on plain slices too.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
pub use crate::uuid::Uuid;

type DResult<T> = Result<T, DecodeError>;
type EResult = Result<(), EncodeError>;

// ---------------------------------------------------------------------------
// Bounds checks
// ---------------------------------------------------------------------------

/// Fails unless `buf` holds at least `n` more bytes.
#[inline]
pub fn need<B: Buf>(buf: &B, n: usize, field: &'static str) -> DResult<()> {
    if buf.remaining() < n {
        Err(DecodeError::Truncated {
            field,
            needed: n,
            remaining: buf.remaining(),
        })
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Fixed-width values
// ---------------------------------------------------------------------------

macro_rules! fixed {
    ($get:ident, $put:ident, $t:ty, $n:expr, $bget:ident, $bput:ident) => {
        #[doc = concat!("Reads a big-endian `", stringify!($t), "`.")]
        #[inline]
        pub fn $get(buf: &mut Bytes, field: &'static str) -> DResult<$t> {
            need(buf, $n, field)?;
            Ok(buf.$bget())
        }
        #[doc = concat!("Writes a big-endian `", stringify!($t), "`.")]
        #[inline]
        pub fn $put(buf: &mut BytesMut, v: $t) {
            buf.$bput(v);
        }
    };
}

fixed!(get_i8, put_i8, i8, 1, get_i8, put_i8);
fixed!(get_i16, put_i16, i16, 2, get_i16, put_i16);
fixed!(get_i32, put_i32, i32, 4, get_i32, put_i32);
fixed!(get_i64, put_i64, i64, 8, get_i64, put_i64);
fixed!(get_u16, put_u16, u16, 2, get_u16, put_u16);
fixed!(get_u32, put_u32, u32, 4, get_u32, put_u32);
fixed!(get_f64, put_f64, f64, 8, get_f64, put_f64);

/// Reads a boolean byte. Like Kafka (`readByte() != 0`), any non-zero byte is true.
#[inline]
pub fn get_bool(buf: &mut Bytes, field: &'static str) -> DResult<bool> {
    need(buf, 1, field)?;
    Ok(buf.get_u8() != 0)
}

/// Writes a boolean as 0 or 1.
#[inline]
pub fn put_bool(buf: &mut BytesMut, v: bool) {
    buf.put_u8(u8::from(v));
}

/// Reads 16 raw UUID bytes.
#[inline]
pub fn get_uuid(buf: &mut Bytes, field: &'static str) -> DResult<Uuid> {
    need(buf, 16, field)?;
    let mut b = [0u8; 16];
    buf.copy_to_slice(&mut b);
    Ok(Uuid(b))
}

/// Writes 16 raw UUID bytes.
#[inline]
pub fn put_uuid(buf: &mut BytesMut, v: &Uuid) {
    buf.put_slice(&v.0);
}

// ---------------------------------------------------------------------------
// Varints
// ---------------------------------------------------------------------------

/// Reads an UNSIGNED_VARINT (LEB128, at most 5 bytes, value must fit in 32 bits).
pub fn read_unsigned_varint<B: Buf>(buf: &mut B) -> DResult<u32> {
    let mut value: u32 = 0;
    for i in 0..5 {
        need(buf, 1, "unsigned varint")?;
        let b = buf.get_u8();
        if i == 4 && b > 0x0f {
            // The 5th byte carries only the top 4 bits; anything more is an
            // overlong/overflowing encoding (Kafka also rejects a 6th byte).
            return Err(DecodeError::VarintTooLong {
                field: "unsigned varint",
            });
        }
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::VarintTooLong {
        field: "unsigned varint",
    })
}

/// Reads an unsigned LEB128 varlong (at most 10 bytes).
pub fn read_unsigned_varlong<B: Buf>(buf: &mut B) -> DResult<u64> {
    let mut value: u64 = 0;
    for i in 0..10 {
        need(buf, 1, "unsigned varlong")?;
        let b = buf.get_u8();
        if i == 9 && b > 0x01 {
            return Err(DecodeError::VarintTooLong {
                field: "unsigned varlong",
            });
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::VarintTooLong {
        field: "unsigned varlong",
    })
}

/// Writes an UNSIGNED_VARINT.
pub fn write_unsigned_varint<B: BufMut>(buf: &mut B, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Writes an unsigned LEB128 varlong.
pub fn write_unsigned_varlong<B: BufMut>(buf: &mut B, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Reads a signed zig-zag VARINT (records: lengths, deltas, -1 = null).
pub fn read_varint<B: Buf>(buf: &mut B) -> DResult<i32> {
    let u = read_unsigned_varint(buf)?;
    Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
}

/// Reads a signed zig-zag VARLONG.
pub fn read_varlong<B: Buf>(buf: &mut B) -> DResult<i64> {
    let u = read_unsigned_varlong(buf)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

/// Writes a signed zig-zag VARINT.
pub fn write_varint<B: BufMut>(buf: &mut B, v: i32) {
    write_unsigned_varint(buf, ((v << 1) ^ (v >> 31)) as u32);
}

/// Writes a signed zig-zag VARLONG.
pub fn write_varlong<B: BufMut>(buf: &mut B, v: i64) {
    write_unsigned_varlong(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Encoded size of an UNSIGNED_VARINT.
pub fn unsigned_varint_len(v: u32) -> usize {
    match v {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0x0fff_ffff => 4,
        _ => 5,
    }
}

/// Encoded size of an unsigned varlong.
pub fn unsigned_varlong_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Encoded size of a signed zig-zag VARINT.
pub fn varint_len(v: i32) -> usize {
    unsigned_varint_len(((v << 1) ^ (v >> 31)) as u32)
}

/// Encoded size of a signed zig-zag VARLONG.
pub fn varlong_len(v: i64) -> usize {
    unsigned_varlong_len(((v << 1) ^ (v >> 63)) as u64)
}

// ---------------------------------------------------------------------------
// Length prefixes
// ---------------------------------------------------------------------------

/// Reads a length prefix and returns `None` for null. Classic: int16 (strings)
/// or int32 (bytes, arrays) with -1 = null. Compact: UNSIGNED_VARINT(len + 1),
/// 0 = null. Any other negative length is an error.
#[inline]
fn get_len(buf: &mut Bytes, flex: bool, wide: bool, field: &'static str) -> DResult<Option<usize>> {
    let len: i64 = if flex {
        i64::from(read_unsigned_varint(buf).map_err(|e| match e {
            DecodeError::Truncated {
                needed, remaining, ..
            } => DecodeError::Truncated {
                field,
                needed,
                remaining,
            },
            _ => DecodeError::VarintTooLong { field },
        })?) - 1
    } else if wide {
        i64::from(get_i32(buf, field)?)
    } else {
        i64::from(get_i16(buf, field)?)
    };
    match len {
        -1 => Ok(None),
        l if l < -1 => Err(DecodeError::InvalidLength { field, len: l }),
        l => Ok(Some(l as usize)),
    }
}

/// Writes a length prefix (`None` = null), checking it fits the prefix.
#[inline]
fn put_len(
    buf: &mut BytesMut,
    len: Option<usize>,
    flex: bool,
    wide: bool,
    field: &'static str,
) -> EResult {
    // Kafka caps compact lengths at Int32.MAX too (they become Java array sizes).
    let max = if wide || flex {
        i32::MAX as usize
    } else {
        i16::MAX as usize
    };
    match len {
        Some(l) if l > max => Err(EncodeError::TooLong { field, len: l }),
        Some(l) if flex => {
            write_unsigned_varint(buf, l as u32 + 1);
            Ok(())
        }
        None if flex => {
            write_unsigned_varint(buf, 0);
            Ok(())
        }
        Some(l) if wide => {
            buf.put_i32(l as i32);
            Ok(())
        }
        None if wide => {
            buf.put_i32(-1);
            Ok(())
        }
        Some(l) => {
            buf.put_i16(l as i16);
            Ok(())
        }
        None => {
            buf.put_i16(-1);
            Ok(())
        }
    }
}

#[inline]
fn take(buf: &mut Bytes, len: usize, field: &'static str) -> DResult<Bytes> {
    need(buf, len, field)?;
    Ok(buf.split_to(len))
}

#[inline]
fn null_check<T>(v: Option<T>, nullable: bool, field: &'static str) -> DResult<Option<T>> {
    if v.is_none() && !nullable {
        Err(DecodeError::UnexpectedNull { field })
    } else {
        Ok(v)
    }
}

// ---------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------

fn to_string(b: Bytes, field: &'static str) -> DResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::InvalidUtf8 { field })
}

/// Reads a STRING (`flex` = COMPACT_STRING); null is an error.
pub fn get_string(buf: &mut Bytes, flex: bool, field: &'static str) -> DResult<String> {
    match get_len(buf, flex, false, field)? {
        Some(l) => to_string(take(buf, l, field)?, field),
        None => Err(DecodeError::UnexpectedNull { field }),
    }
}

/// Reads a NULLABLE_STRING / COMPACT_NULLABLE_STRING; null is an error unless `nullable`.
pub fn get_opt_string(
    buf: &mut Bytes,
    flex: bool,
    nullable: bool,
    field: &'static str,
) -> DResult<Option<String>> {
    let v = match get_len(buf, flex, false, field)? {
        Some(l) => Some(to_string(take(buf, l, field)?, field)?),
        None => None,
    };
    null_check(v, nullable, field)
}

/// Writes a STRING / COMPACT_STRING.
pub fn put_string(buf: &mut BytesMut, v: &str, flex: bool, field: &'static str) -> EResult {
    put_len(buf, Some(v.len()), flex, false, field)?;
    buf.put_slice(v.as_bytes());
    Ok(())
}

/// Writes a nullable string; `None` fails unless `nullable` at `version`.
pub fn put_opt_string(
    buf: &mut BytesMut,
    v: Option<&str>,
    flex: bool,
    nullable: bool,
    field: &'static str,
    version: i16,
) -> EResult {
    match v {
        Some(s) => put_string(buf, s, flex, field),
        None if nullable => put_len(buf, None, flex, false, field),
        None => Err(EncodeError::NullNotAllowed { field, version }),
    }
}

// ---------------------------------------------------------------------------
// Bytes (and records, which use the same encoding)
// ---------------------------------------------------------------------------

/// Reads BYTES / COMPACT_BYTES as a zero-copy slice; null is an error.
pub fn get_bytes(buf: &mut Bytes, flex: bool, field: &'static str) -> DResult<Bytes> {
    match get_len(buf, flex, true, field)? {
        Some(l) => take(buf, l, field),
        None => Err(DecodeError::UnexpectedNull { field }),
    }
}

/// Reads NULLABLE_BYTES / COMPACT_NULLABLE_BYTES (also RECORDS / COMPACT_RECORDS).
pub fn get_opt_bytes(
    buf: &mut Bytes,
    flex: bool,
    nullable: bool,
    field: &'static str,
) -> DResult<Option<Bytes>> {
    let v = match get_len(buf, flex, true, field)? {
        Some(l) => Some(take(buf, l, field)?),
        None => None,
    };
    null_check(v, nullable, field)
}

/// Writes BYTES / COMPACT_BYTES.
pub fn put_bytes(buf: &mut BytesMut, v: &[u8], flex: bool, field: &'static str) -> EResult {
    put_len(buf, Some(v.len()), flex, true, field)?;
    buf.put_slice(v);
    Ok(())
}

/// Writes a `records` field: like [`put_bytes`], except that a
/// [`crate::left_out`] placeholder encoded inside
/// [`crate::left_out::encode_leaving_out_records`] gets only its length prefix.
pub fn put_records(buf: &mut BytesMut, v: &[u8], flex: bool, field: &'static str) -> EResult {
    put_len(buf, Some(v.len()), flex, true, field)?;
    if !crate::left_out::leave_out(buf.len(), v) {
        buf.put_slice(v);
    }
    Ok(())
}

/// Writes a nullable `records` field (see [`put_records`]).
pub fn put_opt_records(
    buf: &mut BytesMut,
    v: Option<&[u8]>,
    flex: bool,
    nullable: bool,
    field: &'static str,
    version: i16,
) -> EResult {
    match v {
        Some(b) => put_records(buf, b, flex, field),
        None => put_opt_bytes(buf, None, flex, nullable, field, version),
    }
}

/// Writes nullable bytes / records; `None` fails unless `nullable` at `version`.
pub fn put_opt_bytes(
    buf: &mut BytesMut,
    v: Option<&[u8]>,
    flex: bool,
    nullable: bool,
    field: &'static str,
    version: i16,
) -> EResult {
    match v {
        Some(b) => put_bytes(buf, b, flex, field),
        None if nullable => put_len(buf, None, flex, true, field),
        None => Err(EncodeError::NullNotAllowed { field, version }),
    }
}

// ---------------------------------------------------------------------------
// Arrays
// ---------------------------------------------------------------------------

/// A type that can be an array element. Implemented for the primitive element
/// types and, by the generated code, for every message struct. Going through a
/// trait (instead of a closure per call site) keeps one array reader/writer per
/// element type, which matters for the crate's compile time.
pub trait Elem: Sized {
    /// Reads one element (`flex` selects compact strings/bytes).
    fn read_elem(buf: &mut Bytes, version: i16, flex: bool, field: &'static str) -> DResult<Self>;
    /// Writes one element.
    fn write_elem(
        &self,
        buf: &mut BytesMut,
        version: i16,
        flex: bool,
        field: &'static str,
    ) -> EResult;
}

macro_rules! fixed_elem {
    ($t:ty, $get:ident, $put:ident) => {
        impl Elem for $t {
            fn read_elem(buf: &mut Bytes, _: i16, _: bool, field: &'static str) -> DResult<Self> {
                $get(buf, field)
            }
            fn write_elem(&self, buf: &mut BytesMut, _: i16, _: bool, _: &'static str) -> EResult {
                $put(buf, *self);
                Ok(())
            }
        }
    };
}

fixed_elem!(i8, get_i8, put_i8);
fixed_elem!(i16, get_i16, put_i16);
fixed_elem!(i32, get_i32, put_i32);
fixed_elem!(i64, get_i64, put_i64);
fixed_elem!(u16, get_u16, put_u16);
fixed_elem!(u32, get_u32, put_u32);
fixed_elem!(f64, get_f64, put_f64);
fixed_elem!(bool, get_bool, put_bool);

impl Elem for Uuid {
    fn read_elem(buf: &mut Bytes, _: i16, _: bool, field: &'static str) -> DResult<Self> {
        get_uuid(buf, field)
    }
    fn write_elem(&self, buf: &mut BytesMut, _: i16, _: bool, _: &'static str) -> EResult {
        put_uuid(buf, self);
        Ok(())
    }
}

impl Elem for String {
    fn read_elem(buf: &mut Bytes, _: i16, flex: bool, field: &'static str) -> DResult<Self> {
        get_string(buf, flex, field)
    }
    fn write_elem(&self, buf: &mut BytesMut, _: i16, flex: bool, field: &'static str) -> EResult {
        put_string(buf, self, flex, field)
    }
}

impl Elem for Bytes {
    fn read_elem(buf: &mut Bytes, _: i16, flex: bool, field: &'static str) -> DResult<Self> {
        get_bytes(buf, flex, field)
    }
    fn write_elem(&self, buf: &mut BytesMut, _: i16, flex: bool, field: &'static str) -> EResult {
        put_bytes(buf, self, flex, field)
    }
}

fn get_elems<T: Elem>(
    buf: &mut Bytes,
    n: usize,
    version: i16,
    flex: bool,
    field: &'static str,
) -> DResult<Vec<T>> {
    // Same guard as Kafka's generated readers: every element takes at least one
    // byte in practice, so a count above the remaining input is bogus. This also
    // bounds the allocation below by the input size.
    if n > buf.remaining() {
        return Err(DecodeError::InvalidLength {
            field,
            len: n as i64,
        });
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(T::read_elem(buf, version, flex, field)?);
    }
    Ok(v)
}

/// Reads an ARRAY / COMPACT_ARRAY; null is an error.
pub fn get_array<T: Elem>(
    buf: &mut Bytes,
    version: i16,
    flex: bool,
    field: &'static str,
) -> DResult<Vec<T>> {
    match get_len(buf, flex, true, field)? {
        Some(n) => get_elems(buf, n, version, flex, field),
        None => Err(DecodeError::UnexpectedNull { field }),
    }
}

/// Reads a nullable array; null is an error unless `nullable`.
pub fn get_opt_array<T: Elem>(
    buf: &mut Bytes,
    version: i16,
    flex: bool,
    nullable: bool,
    field: &'static str,
) -> DResult<Option<Vec<T>>> {
    let v = match get_len(buf, flex, true, field)? {
        Some(n) => Some(get_elems(buf, n, version, flex, field)?),
        None => None,
    };
    null_check(v, nullable, field)
}

/// Writes an ARRAY / COMPACT_ARRAY.
pub fn put_array<T: Elem>(
    buf: &mut BytesMut,
    v: &[T],
    version: i16,
    flex: bool,
    field: &'static str,
) -> EResult {
    put_len(buf, Some(v.len()), flex, true, field)?;
    for e in v {
        e.write_elem(buf, version, flex, field)?;
    }
    Ok(())
}

/// Writes a nullable array; `None` fails unless `nullable` at `version`.
pub fn put_opt_array<T: Elem>(
    buf: &mut BytesMut,
    v: Option<&[T]>,
    version: i16,
    flex: bool,
    nullable: bool,
    field: &'static str,
) -> EResult {
    match v {
        Some(v) => put_array(buf, v, version, flex, field),
        None if nullable => put_len(buf, None, flex, true, field),
        None => Err(EncodeError::NullNotAllowed { field, version }),
    }
}

// ---------------------------------------------------------------------------
// Nullable structs: Kafka prefixes them with an int8, -1 = null, 1 = present.
// ---------------------------------------------------------------------------

/// Reads a nullable struct (int8 marker, negative = null).
pub fn get_opt_struct<T: crate::Decode>(
    buf: &mut Bytes,
    version: i16,
    nullable: bool,
    field: &'static str,
) -> DResult<Option<T>> {
    let v = if get_i8(buf, field)? < 0 {
        None
    } else {
        Some(T::decode(buf, version)?)
    };
    null_check(v, nullable, field)
}

/// Writes a nullable struct (int8 marker, then the struct).
pub fn put_opt_struct<T: crate::Encode>(
    buf: &mut BytesMut,
    v: Option<&T>,
    version: i16,
    nullable: bool,
    field: &'static str,
) -> EResult {
    match v {
        Some(v) => {
            buf.put_i8(1);
            v.encode(buf, version)
        }
        None if nullable => {
            buf.put_i8(-1);
            Ok(())
        }
        None => Err(EncodeError::NullNotAllowed { field, version }),
    }
}

// ---------------------------------------------------------------------------
// Tagged fields (KIP-482)
// ---------------------------------------------------------------------------

/// Reader state for one struct's tag section: yields `(tag, payload)` pairs in
/// wire order and rejects duplicate or descending tags.
pub struct TagReader {
    remaining: u32,
    previous: Option<u32>,
    message: &'static str,
}

impl TagReader {
    /// Reads the tag count that starts the section.
    pub fn new(buf: &mut Bytes, message: &'static str) -> DResult<Self> {
        let remaining = read_unsigned_varint(buf)?;
        Ok(TagReader {
            remaining,
            previous: None,
            message,
        })
    }

    /// Next `(tag, payload)`, or `None` when the section is done. The payload is
    /// a zero-copy slice of exactly the announced size.
    pub fn next(&mut self, buf: &mut Bytes) -> DResult<Option<(u32, Bytes)>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let tag = read_unsigned_varint(buf)?;
        if let Some(p) = self.previous {
            if tag <= p {
                return Err(DecodeError::TagOrder {
                    message: self.message,
                    tag,
                    previous: p,
                });
            }
        }
        self.previous = Some(tag);
        let size = read_unsigned_varint(buf)? as usize;
        let data = take(buf, size, "tagged field")?;
        Ok(Some((tag, data)))
    }
}

/// Checks that a known tagged field's decoder consumed its whole payload.
pub fn finish_tag(data: &Bytes, tag: u32, size: usize, message: &'static str) -> DResult<()> {
    if data.has_remaining() {
        Err(DecodeError::TagSize {
            message,
            tag,
            size,
            used: size - data.remaining(),
        })
    } else {
        Ok(())
    }
}

/// Reads a whole tag section of a struct without known tagged fields, keeping
/// every entry in `unknown`.
pub fn get_unknown_tags(
    buf: &mut Bytes,
    message: &'static str,
    unknown: &mut Vec<(u32, Bytes)>,
) -> DResult<()> {
    let mut r = TagReader::new(buf, message)?;
    while let Some(t) = r.next(buf)? {
        unknown.push(t);
    }
    Ok(())
}

/// Collects the tagged fields of one struct and writes them sorted, together
/// with the unknown ones carried over from decoding.
#[derive(Default)]
pub struct TagWriter {
    fields: Vec<(u32, Bytes)>,
}

impl TagWriter {
    /// An empty collector.
    pub fn new() -> Self {
        TagWriter { fields: Vec::new() }
    }

    /// Adds a known tagged field whose value was encoded into `data`.
    pub fn add(&mut self, tag: u32, data: BytesMut) {
        self.fields.push((tag, data.freeze()));
    }

    /// Writes the section: count, then `tag, size, bytes` in ascending tag order.
    pub fn finish(
        mut self,
        buf: &mut BytesMut,
        unknown: &[(u32, Bytes)],
        message: &'static str,
    ) -> EResult {
        if self.fields.is_empty() {
            return put_unknown_tags(buf, unknown, message);
        }
        self.fields.extend(unknown.iter().cloned());
        write_tags(buf, &mut self.fields, message)
    }
}

fn write_tags(buf: &mut BytesMut, fields: &mut [(u32, Bytes)], message: &'static str) -> EResult {
    fields.sort_by_key(|f| f.0);
    for w in fields.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(EncodeError::DuplicateTag {
                message,
                tag: w[0].0,
            });
        }
    }
    write_unsigned_varint(buf, fields.len() as u32);
    for (tag, data) in fields.iter() {
        write_unsigned_varint(buf, *tag);
        write_unsigned_varint(buf, data.len() as u32);
        buf.put_slice(data);
    }
    Ok(())
}

/// Writes a tag section holding only `unknown` fields (the common case: a single 0 byte).
pub fn put_unknown_tags(
    buf: &mut BytesMut,
    unknown: &[(u32, Bytes)],
    message: &'static str,
) -> EResult {
    if unknown.is_empty() {
        buf.put_u8(0);
        return Ok(());
    }
    let mut v = unknown.to_vec();
    write_tags(buf, &mut v, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uv(v: u32) -> Vec<u8> {
        let mut b = BytesMut::new();
        write_unsigned_varint(&mut b, v);
        b.to_vec()
    }

    #[test]
    fn unsigned_varint_edges() {
        assert_eq!(uv(0), [0]);
        assert_eq!(uv(127), [0x7f]);
        assert_eq!(uv(128), [0x80, 0x01]);
        assert_eq!(uv(300), [0xac, 0x02]);
        assert_eq!(uv(u32::MAX), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        for v in [
            0u32,
            1,
            127,
            128,
            16383,
            16384,
            2097151,
            2097152,
            268435455,
            268435456,
            u32::MAX,
        ] {
            let enc = uv(v);
            assert_eq!(enc.len(), unsigned_varint_len(v), "{v}");
            let mut b = Bytes::from(enc);
            assert_eq!(read_unsigned_varint(&mut b).unwrap(), v);
            assert!(b.is_empty());
        }
    }

    #[test]
    fn unsigned_varint_errors() {
        // 6 bytes: too long.
        let mut b = Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        assert!(matches!(
            read_unsigned_varint(&mut b),
            Err(DecodeError::VarintTooLong { .. })
        ));
        // 5th byte overflowing 32 bits.
        let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x10]);
        assert!(matches!(
            read_unsigned_varint(&mut b),
            Err(DecodeError::VarintTooLong { .. })
        ));
        // Truncated.
        let mut b = Bytes::from_static(&[0x80, 0x80]);
        assert!(matches!(
            read_unsigned_varint(&mut b),
            Err(DecodeError::Truncated { .. })
        ));
        let mut b = Bytes::new();
        assert!(read_unsigned_varint(&mut b).is_err());
    }

    #[test]
    fn zigzag_varint_edges() {
        let cases: [(i32, &[u8]); 6] = [
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (v, enc) in cases {
            let mut b = BytesMut::new();
            write_varint(&mut b, v);
            assert_eq!(&b[..], enc, "{v}");
            assert_eq!(varint_len(v), enc.len());
            let mut r = b.freeze();
            assert_eq!(read_varint(&mut r).unwrap(), v);
            assert!(r.is_empty());
            // Also readable from a plain slice.
            let mut s: &[u8] = enc;
            assert_eq!(read_varint(&mut s).unwrap(), v);
        }
    }

    #[test]
    fn zigzag_varlong_edges() {
        for v in [
            0i64,
            -1,
            1,
            i64::from(i32::MIN),
            i64::from(i32::MAX),
            i64::MAX,
            i64::MIN,
        ] {
            let mut b = BytesMut::new();
            write_varlong(&mut b, v);
            assert_eq!(b.len(), varlong_len(v));
            let mut r = b.freeze();
            assert_eq!(read_varlong(&mut r).unwrap(), v);
            assert!(r.is_empty());
        }
        let mut b = BytesMut::new();
        write_varlong(&mut b, i64::MIN);
        assert_eq!(
            &b[..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        // 11 bytes: too long; 10th byte > 1: overflow.
        let mut r = Bytes::from_static(&[0x80; 11]);
        assert!(matches!(
            read_varlong(&mut r),
            Err(DecodeError::VarintTooLong { .. })
        ));
        let mut r =
            Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert!(matches!(
            read_varlong(&mut r),
            Err(DecodeError::VarintTooLong { .. })
        ));
        let mut r = Bytes::from_static(&[0xff, 0xff]);
        assert!(matches!(
            read_varlong(&mut r),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn compact_string_null_and_empty() {
        let mut b = Bytes::from_static(&[0x00]);
        assert_eq!(get_opt_string(&mut b, true, true, "f").unwrap(), None);
        let mut b = Bytes::from_static(&[0x00]);
        assert_eq!(
            get_string(&mut b, true, "f"),
            Err(DecodeError::UnexpectedNull { field: "f" })
        );
        let mut b = Bytes::from_static(&[0x00]);
        assert!(get_opt_string(&mut b, true, false, "f").is_err());
        let mut b = Bytes::from_static(&[0x01]);
        assert_eq!(get_string(&mut b, true, "f").unwrap(), "");
        let mut b = Bytes::from_static(&[0x03, b'h', b'i']);
        assert_eq!(get_string(&mut b, true, "f").unwrap(), "hi");

        let mut out = BytesMut::new();
        put_opt_string(&mut out, None, true, true, "f", 9).unwrap();
        put_string(&mut out, "", true, "f").unwrap();
        put_opt_string(&mut out, None, false, true, "f", 1).unwrap();
        put_string(&mut out, "", false, "f").unwrap();
        assert_eq!(&out[..], &[0x00, 0x01, 0xff, 0xff, 0x00, 0x00]);
        assert!(put_opt_string(&mut out, None, true, false, "f", 9).is_err());
    }

    #[test]
    fn classic_lengths() {
        let mut b = Bytes::from_static(&[0xff, 0xff]);
        assert_eq!(get_opt_string(&mut b, false, true, "f").unwrap(), None);
        let mut b = Bytes::from_static(&[0xff, 0xfe]);
        assert!(matches!(
            get_opt_string(&mut b, false, true, "f"),
            Err(DecodeError::InvalidLength { .. })
        ));
        let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(get_opt_bytes(&mut b, false, true, "f").unwrap(), None);
        let mut b = Bytes::from_static(&[0x00, 0x00, 0x00, 0x02, 1, 2, 3]);
        let got = get_bytes(&mut b, false, "f").unwrap();
        assert_eq!(&got[..], &[1, 2]);
        assert_eq!(&b[..], &[3]);
        let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            get_opt_array::<i8>(&mut b, 0, false, true, "f").unwrap(),
            None
        );
        let mut b = Bytes::from_static(&[0x00]);
        assert_eq!(
            get_opt_array::<i8>(&mut b, 0, true, true, "f").unwrap(),
            None
        );
        let mut b = Bytes::from_static(&[0x01]);
        assert_eq!(
            get_array::<i8>(&mut b, 0, true, "f").unwrap(),
            Vec::<i8>::new()
        );
    }

    #[test]
    fn truncated_inputs() {
        let mut b = Bytes::from_static(&[0x00, 0x05, b'a']);
        assert!(matches!(
            get_string(&mut b, false, "f"),
            Err(DecodeError::Truncated { .. })
        ));
        let mut b = Bytes::from_static(&[0x00, 0x00, 0x00]);
        assert!(matches!(
            get_i32(&mut b, "f"),
            Err(DecodeError::Truncated { .. })
        ));
        let mut b = Bytes::from_static(&[1, 2, 3]);
        assert!(get_uuid(&mut b, "f").is_err());
        let mut b = Bytes::from_static(&[0x00, 0x00, 0x00, 0x09, 1]);
        assert!(get_bytes(&mut b, false, "f").is_err());
        let mut b = Bytes::new();
        assert!(get_bool(&mut b, "f").is_err());
    }

    #[test]
    fn huge_array_count_is_rejected_without_allocating() {
        // 2 billion elements announced, 10 bytes present.
        let mut b = Bytes::from_static(&[0x77, 0x35, 0x94, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let r = get_array::<i32>(&mut b, 0, false, "f");
        assert!(matches!(r, Err(DecodeError::InvalidLength { .. })));
        let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x07, 1, 2]);
        let r = get_array::<i8>(&mut b, 0, true, "f");
        assert!(matches!(r, Err(DecodeError::InvalidLength { .. })));
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let mut b = Bytes::from_static(&[0x00, 0x02, 0xc3, 0x28]);
        assert_eq!(
            get_string(&mut b, false, "f"),
            Err(DecodeError::InvalidUtf8 { field: "f" })
        );
    }

    #[test]
    fn tag_sections() {
        let mut out = BytesMut::new();
        let mut w = TagWriter::new();
        let mut d = BytesMut::new();
        put_i32(&mut d, 7);
        w.add(3, d);
        w.finish(&mut out, &[(1, Bytes::from_static(b"x"))], "m")
            .unwrap();
        assert_eq!(&out[..], &[2, 1, 1, b'x', 3, 4, 0, 0, 0, 7]);

        let mut inp = out.freeze();
        let mut unknown = Vec::new();
        get_unknown_tags(&mut inp, "m", &mut unknown).unwrap();
        assert_eq!(unknown.len(), 2);
        assert!(inp.is_empty());

        // Out of order and duplicate tags are rejected.
        let mut bad = Bytes::from_static(&[2, 3, 0, 1, 0]);
        assert!(matches!(
            get_unknown_tags(&mut bad, "m", &mut Vec::new()),
            Err(DecodeError::TagOrder { .. })
        ));
        let mut bad = Bytes::from_static(&[2, 1, 0, 1, 0]);
        assert!(matches!(
            get_unknown_tags(&mut bad, "m", &mut Vec::new()),
            Err(DecodeError::TagOrder { .. })
        ));
        // Encoding a duplicate is an error.
        let mut w = TagWriter::new();
        w.add(1, BytesMut::new());
        assert!(w
            .finish(&mut BytesMut::new(), &[(1, Bytes::new())], "m")
            .is_err());
        // Size larger than the input.
        let mut bad = Bytes::from_static(&[1, 0, 5, 1]);
        assert!(get_unknown_tags(&mut bad, "m", &mut Vec::new()).is_err());
    }
}
