//! Request and response headers (docs/kafka-compatibility.md section 1).
//!
//! The header structs are the generated [`RequestHeader`] / [`ResponseHeader`]
//! (decode/encode them with the *header* version, see
//! [`ApiKey::request_header_version`] and [`ApiKey::response_header_version`]).
//! This module adds [`decode_request_header`], which picks the header version
//! from the api key and version at the front of a request.

use bytes::Bytes;

use crate::api_key::ApiKey;
use crate::error::DecodeError;
use crate::Decode;

pub use crate::messages::request_header::RequestHeader;
pub use crate::messages::response_header::ResponseHeader;

/// Decodes the request header at the front of `buf` (the frame without its
/// size prefix), returning it and the api key if known.
///
/// The header version follows from the api key and version (2 when that
/// version is flexible, else 1; 0 only for ControlledShutdown v0). An unknown
/// api key is read as header v1 so the correlation id is still available for
/// logging before the connection is closed. A known key at a version outside the
/// spec range uses the flexible rule too (an ApiVersions v5 request gets header
/// v2), because the broker must still answer it.
pub fn decode_request_header(
    buf: &mut Bytes,
) -> Result<(RequestHeader, Option<ApiKey>), DecodeError> {
    if buf.len() < 4 {
        return Err(DecodeError::Truncated {
            field: "RequestHeader",
            needed: 4,
            remaining: buf.len(),
        });
    }
    let key = i16::from_be_bytes([buf[0], buf[1]]);
    let version = i16::from_be_bytes([buf[2], buf[3]]);
    let api = ApiKey::try_from(key).ok();
    let header_version = match api {
        Some(a) => a.request_header_version(version),
        None => 1,
    };
    let header = RequestHeader::decode(buf, header_version)?;
    Ok((header, api))
}
