//! The Kafka `uuid` type: 16 raw bytes on the wire, shown as URL-safe base64
//! without padding (22 characters), the way Kafka prints topic ids.

use std::fmt;
use std::str::FromStr;

/// A Kafka UUID (topic id, directory id, ...). All-zero means "no id"
/// (e.g. Metadata answers by-name queries for unknown topics with it).
#[derive(Copy, Clone, Eq, PartialEq, Hash, Ord, PartialOrd, Default, Debug)]
pub struct Uuid(pub [u8; 16]);

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Uuid {
    /// The all-zero id Kafka uses for "unknown/none".
    pub const ZERO: Uuid = Uuid([0; 16]);

    /// True for [`Uuid::ZERO`].
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl From<[u8; 16]> for Uuid {
    fn from(b: [u8; 16]) -> Self {
        Uuid(b)
    }
}

impl fmt::Display for Uuid {
    /// URL-safe base64 without padding, as `org.apache.kafka.common.Uuid#toString`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 22];
        let mut o = 0;
        for chunk in self.0.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            // 3 bytes -> 4 chars; the final single byte -> 2 chars (no padding).
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out[o] = B64[((n >> (18 - 6 * i)) & 0x3f) as usize];
                o += 1;
            }
        }
        // Every byte of `out` comes from the ASCII alphabet above.
        f.write_str(std::str::from_utf8(&out[..o]).map_err(|_| fmt::Error)?)
    }
}

/// Error parsing a [`Uuid`] from its base64 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseUuidError;

impl fmt::Display for ParseUuidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid base64 uuid")
    }
}

impl std::error::Error for ParseUuidError {}

impl FromStr for Uuid {
    type Err = ParseUuidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != 22 {
            return Err(ParseUuidError);
        }
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut out = [0u8; 16];
        let mut o = 0;
        for &c in s {
            let v = B64.iter().position(|&x| x == c).ok_or(ParseUuidError)? as u32;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                if o < 16 {
                    out[o] = (bits >> nbits) as u8;
                    o += 1;
                }
                bits &= (1 << nbits) - 1;
            }
        }
        // 22 chars = 132 bits: 128 data bits plus 4 bits that must be zero.
        if o != 16 || bits != 0 {
            return Err(ParseUuidError);
        }
        Ok(Uuid(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_roundtrip() {
        assert_eq!(Uuid::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        let u = Uuid([
            0xfb, 0xff, 0xbf, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xff,
        ]);
        let s = u.to_string();
        assert_eq!(s.len(), 22);
        assert!(s.starts_with("-_-_"));
        assert_eq!(s.parse::<Uuid>().unwrap(), u);
        assert!("short".parse::<Uuid>().is_err());
        assert!(Uuid::ZERO.is_zero());
    }
}
