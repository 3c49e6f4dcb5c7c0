//! klamm-protocol: the sans-IO Kafka wire codec of Klamm.
//!
//! `Bytes` in, typed values out; no tokio, no sockets, no framing I/O. The
//! crate owns:
//! - [`primitives`]: Kafka's wire primitives (fixed ints, varints, classic and
//!   compact strings/bytes/arrays, UUIDs, tagged-field sections), bounds-checked;
//! - [`messages`]: every request/response type, generated from Kafka's JSON
//!   definitions by `protocol/codegen`, plus the [`RequestKind`](messages::RequestKind)
//!   / [`ResponseKind`](messages::ResponseKind) dispatch enums;
//! - [`header`]: request/response headers and the header-version rules;
//! - [`api_key`] and [`error_code`]: the API key enum and Kafka's error codes;
//! - [`records`]: record batches (magic 2);
//! - [`left_out`]: encoding with record data left out of the buffer, for a
//!   caller that sends it from elsewhere (zero-copy fetch responses).
//!
//! Decoding never panics on malformed input: every read is checked and returns
//! [`DecodeError`]. Byte and record fields are zero-copy slices of the input.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use klamm_protocol::messages::ApiVersionsRequest;
//! use klamm_protocol::{ApiKey, Decode, Encode, Request};
//!
//! let req = ApiVersionsRequest {
//!     client_software_name: "klamm-test".into(),
//!     client_software_version: "1.0".into(),
//!     ..Default::default()
//! };
//! let mut buf = BytesMut::new();
//! req.encode(&mut buf, 3).unwrap();
//! // Compact strings (length + 1) and an empty tag section.
//! assert_eq!(&buf[..], b"\x0bklamm-test\x041.0\x00");
//!
//! let mut input: Bytes = buf.freeze();
//! let back = ApiVersionsRequest::decode(&mut input, 3).unwrap();
//! assert_eq!(back, req);
//! assert!(input.is_empty());
//! assert_eq!(ApiVersionsRequest::API_KEY, ApiKey::ApiVersions);
//! ```

use bytes::{Bytes, BytesMut};

pub mod api_key;
pub mod error;
pub mod error_code;
pub mod header;
pub mod left_out;
pub mod messages;
pub mod primitives;
pub mod records;
pub mod uuid;

pub use api_key::ApiKey;
pub use error::{DecodeError, EncodeError};
pub use error_code::ErrorCode;
pub use uuid::Uuid;

/// A value that can be written in Kafka wire format at a given version.
///
/// Fields absent from `version` are skipped silently, whatever their value
/// (the broker fills fields without checking versions); `None` in a field that
/// is not nullable at `version` is an [`EncodeError`].
pub trait Encode {
    /// Appends the encoding of `self` at `version` to `buf`.
    fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError>;
}

/// A value that can be read from Kafka wire format at a given version.
pub trait Decode: Sized {
    /// Reads one value from the front of `buf`, advancing it.
    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError>;
}

/// A top-level request body, tied to its API key and response type.
pub trait Request: Encode + Decode {
    /// The API this request belongs to.
    const API_KEY: ApiKey;
    /// The matching response body.
    type Response: Encode + Decode;
}
