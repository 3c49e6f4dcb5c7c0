//! Zig-zag varint adapters for record encoding.
//!
//! Thin wrappers over [`crate::primitives`] with the slice-and-position
//! interface the record parser uses, mapping decode errors to
//! [`RecordsError::InvalidVarint`]. Encodings: docs/kafka-compatibility.md section 3.

use crate::primitives;

use super::RecordsError;

/// Reads a zig-zag encoded 32-bit varint at `*pos`, advancing `*pos`.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, RecordsError> {
    let mut rest = buf.get(*pos..).ok_or(RecordsError::InvalidVarint)?;
    let before = rest.len();
    let v = primitives::read_varint(&mut rest).map_err(|_| RecordsError::InvalidVarint)?;
    *pos += before - rest.len();
    Ok(v)
}

/// Reads a zig-zag encoded 64-bit varlong at `*pos`, advancing `*pos`.
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, RecordsError> {
    let mut rest = buf.get(*pos..).ok_or(RecordsError::InvalidVarint)?;
    let before = rest.len();
    let v = primitives::read_varlong(&mut rest).map_err(|_| RecordsError::InvalidVarint)?;
    *pos += before - rest.len();
    Ok(v)
}

/// Appends a zig-zag varint.
pub(crate) fn write_varint(out: &mut Vec<u8>, value: i32) {
    primitives::write_varint(out, value);
}

/// Appends a zig-zag varlong.
pub(crate) fn write_varlong(out: &mut Vec<u8>, value: i64) {
    primitives::write_varlong(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_edges() {
        for v in [0, 1, -1, 63, -64, 64, i32::MAX, i32::MIN] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert!(out.len() <= 5);
            let mut pos = 0;
            assert_eq!(read_varint(&out, &mut pos).unwrap(), v);
            assert_eq!(pos, out.len());
        }
        for v in [0, 1, -1, i64::MAX, i64::MIN, 1 << 40] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            assert!(out.len() <= 10);
            let mut pos = 0;
            assert_eq!(read_varlong(&out, &mut pos).unwrap(), v);
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn known_encodings() {
        let mut out = Vec::new();
        write_varint(&mut out, -1);
        assert_eq!(out, [0x01]);
        out.clear();
        write_varint(&mut out, 300);
        assert_eq!(out, [0xd8, 0x04]);
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        let mut pos = 0;
        assert!(read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varint(&[0x80], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f], &mut pos).is_err());
    }
}
