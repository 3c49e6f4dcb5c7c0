//! Error types of the codec: [`DecodeError`] for malformed or unsupported
//! input and [`EncodeError`] for values that cannot be put on the wire at the
//! requested version.
//!
//! Errors carry the field (`"ProduceRequest.acks"`-style names from the
//! generated code, or a primitive name such as `"varint"`) so a broker log line
//! says where a bad request went wrong.

use thiserror::Error;

/// Why decoding failed. Decoding never panics; every malformed input ends here.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the field was complete.
    #[error("truncated input reading {field}: needed {needed} bytes, {remaining} remaining")]
    Truncated {
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    /// A varint ran past its maximum length (5 bytes for 32 bits, 10 for 64).
    #[error("varint too long reading {field}")]
    VarintTooLong { field: &'static str },
    /// A length or count that cannot be valid (negative, or larger than the rest of the input).
    #[error("invalid length {len} for {field}")]
    InvalidLength { field: &'static str, len: i64 },
    /// A null where the field is not nullable at this version.
    #[error("null value for non-nullable field {field}")]
    UnexpectedNull { field: &'static str },
    /// A string that is not valid UTF-8.
    #[error("invalid UTF-8 in {field}")]
    InvalidUtf8 { field: &'static str },
    /// A boolean byte other than 0 or 1 is accepted by Kafka (non-zero = true),
    /// so there is no bool error; this covers other enumerated values.
    #[error("invalid value {value} for {field}")]
    InvalidValue { field: &'static str, value: i64 },
    /// The message does not exist at this version (outside `validVersions`).
    #[error("unsupported version {version} of {message}")]
    UnsupportedVersion { message: &'static str, version: i16 },
    /// The api key is not one this crate knows.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// Tagged fields must appear once each, in strictly ascending order.
    #[error(
        "tagged field {tag} out of order or duplicated in {message} (previous tag {previous})"
    )]
    TagOrder {
        message: &'static str,
        tag: u32,
        previous: u32,
    },
    /// A known tagged field did not use exactly the bytes its size announced.
    #[error("tagged field {tag} of {message}: size {size} but the value used {used} bytes")]
    TagSize {
        message: &'static str,
        tag: u32,
        size: usize,
        used: usize,
    },
    /// Anything else, with a description.
    #[error("{0}")]
    Invalid(String),
}

/// Why encoding failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A `None` in a field that is not nullable at the target version.
    #[error("null value for non-nullable field {field} at version {version}")]
    NullNotAllowed { field: &'static str, version: i16 },
    /// A string, byte array or array longer than its length prefix can express.
    #[error("{field} is too long ({len} items/bytes) for its length prefix")]
    TooLong { field: &'static str, len: usize },
    /// The message does not exist at this version (outside `validVersions`).
    #[error("unsupported version {version} of {message}")]
    UnsupportedVersion { message: &'static str, version: i16 },
    /// Two tagged fields with the same tag (a known field and an unknown one, or two unknown ones).
    #[error("duplicate tagged field {tag} in {message}")]
    DuplicateTag { message: &'static str, tag: u32 },
    /// Anything else, with a description.
    #[error("{0}")]
    Invalid(String),
}
