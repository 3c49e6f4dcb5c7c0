//! ApiVersions (key 18): what this broker serves, generated from the registry.

use bytes::{BufMut, Bytes, BytesMut};
use klamm_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use klamm_protocol::messages::ApiVersionsRequest;
use klamm_protocol::{ApiKey, ErrorCode};

use super::{RequestContext, SUPPORTED};

pub fn handle(ctx: &RequestContext, request: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse {
        api_keys: SUPPORTED
            .iter()
            .map(|a| ApiVersion {
                api_key: a.key.as_i16(),
                min_version: a.min_version,
                max_version: a.max_version,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    // v3+ carries the client's software name/version; Kafka validates both
    // against a fixed pattern and answers INVALID_REQUEST otherwise.
    if ctx.api_version >= 3
        && !(valid_software_field(&request.client_software_name)
            && valid_software_field(&request.client_software_version))
    {
        response.error_code = ErrorCode::INVALID_REQUEST.code();
    }
    response
}

/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`
fn valid_software_field(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-' || *b == b'.')
        }
        _ => false,
    }
}

/// The KIP-511 answer to an ApiVersions request newer than we know: the v0
/// body (error code, then the ApiVersions entry alone), response header v0.
pub fn unsupported_version_response(correlation_id: i32) -> Bytes {
    let (min, max) = super::supported_range(ApiKey::ApiVersions).expect("ApiVersions is always served");
    let mut buf = BytesMut::with_capacity(24);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    buf.put_i16(ErrorCode::UNSUPPORTED_VERSION.code());
    buf.put_i32(1);
    buf.put_i16(ApiKey::ApiVersions.as_i16());
    buf.put_i16(min);
    buf.put_i16(max);
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_field_pattern() {
        assert!(valid_software_field("librdkafka"));
        assert!(valid_software_field("2.0.2"));
        assert!(valid_software_field("a"));
        assert!(valid_software_field("apache-kafka-java"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-abc"));
        assert!(!valid_software_field("abc."));
        assert!(!valid_software_field("a b"));
    }

    #[test]
    fn unsupported_version_body_is_v0_format() {
        let b = unsupported_version_response(7);
        assert_eq!(&b[0..4], &((b.len() - 4) as i32).to_be_bytes());
        assert_eq!(&b[4..8], &7i32.to_be_bytes());
        assert_eq!(&b[8..10], &35i16.to_be_bytes());
        assert_eq!(&b[10..14], &1i32.to_be_bytes());
        assert_eq!(&b[14..16], &18i16.to_be_bytes());
    }
}
