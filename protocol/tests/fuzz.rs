//! Fuzz-style property: arbitrary bytes fed to the request and response
//! decoders of every API at every spec version must return (Ok or Err), never
//! panic, and never try to allocate from an untrusted length.

use bytes::Bytes;
use klamm_protocol::header::decode_request_header;
use klamm_protocol::messages::{RequestKind, ResponseKind};
use klamm_protocol::ApiKey;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..96)) {
        let input = Bytes::from(data);
        for &key in ApiKey::ALL {
            let (lo, hi) = key.spec_versions();
            for v in lo..=hi {
                let mut b = input.clone();
                let _ = RequestKind::decode(key, v, &mut b);
                let mut b = input.clone();
                let _ = ResponseKind::decode(key, v, &mut b);
            }
        }
        let mut b = input.clone();
        let _ = decode_request_header(&mut b);
    }

    /// Inputs that start with a plausible huge count/length: the classic and
    /// compact length prefixes maxed out.
    #[test]
    fn huge_lengths_are_rejected(prefix in prop_oneof![
            Just(vec![0x7f, 0xff, 0xff, 0xff]),
            Just(vec![0xff, 0xff, 0xff, 0xff, 0x07]),
            Just(vec![0x7f, 0xff]),
        ],
        tail in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut data = prefix;
        data.extend(tail);
        let input = Bytes::from(data);
        for &key in ApiKey::ALL {
            let (lo, hi) = key.spec_versions();
            for v in lo..=hi {
                let _ = RequestKind::decode(key, v, &mut input.clone());
                let _ = ResponseKind::decode(key, v, &mut input.clone());
            }
        }
    }
}
