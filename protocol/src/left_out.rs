//! Record data that an encoder leaves out of its output buffer, so that it can
//! be sent from somewhere else (a broker sends fetched batches straight from
//! its log files with `sendfile`, instead of copying them into the response).
//!
//! How it is used:
//! 1. put a [`placeholder`] of the right length, under a key of the caller's
//!    choosing, in each `records` field that should be left out;
//! 2. encode inside [`encode_leaving_out_records`]: a `records` field holding a
//!    placeholder gets its length prefix written, but not its bytes, and the
//!    call returns where each left-out range belongs ([`LeftOut`]);
//! 3. write the buffer with the real bytes of each key inserted at its `at`.
//!
//! A placeholder is an ordinary [`Bytes`] that views a static zeroed region.
//! Nothing ever writes that region, so it occupies address space but no
//! memory. Outside [`encode_leaving_out_records`] a placeholder encodes as
//! zeros like any other bytes (encoding stays total, and a test that encodes a
//! response normally still gets a valid frame of the right size).
//!
//! The collector is thread-local: encoding is synchronous, so the whole
//! encode runs on the thread that started it.

use std::cell::RefCell;

use bytes::Bytes;

/// Longest record data one placeholder can stand for.
pub const MAX_PLACEHOLDER_LEN: usize = 64 << 20;
/// Number of distinct keys (placeholders per encoded message).
pub const MAX_PLACEHOLDER_KEYS: usize = 4096;

/// The region placeholders view. A placeholder for key `k` starts at byte `k`,
/// so its address says which key it is.
static REGION: [u8; MAX_PLACEHOLDER_LEN + MAX_PLACEHOLDER_KEYS] = [0; MAX_PLACEHOLDER_LEN + MAX_PLACEHOLDER_KEYS];

/// One range of record data left out of an encoded buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftOut {
    /// Position in the encoded buffer where the data belongs (the length
    /// prefix is already written just before it).
    pub at: usize,
    /// The key the placeholder was made with.
    pub key: usize,
    /// Number of bytes left out.
    pub len: usize,
}

thread_local! {
    static COLLECTOR: RefCell<Option<Vec<LeftOut>>> = const { RefCell::new(None) };
}

/// A stand-in for `len` bytes of record data under `key`; None if `len` is 0
/// or above [`MAX_PLACEHOLDER_LEN`], or `key` is not below
/// [`MAX_PLACEHOLDER_KEYS`] (the caller then sends the data itself).
pub fn placeholder(key: usize, len: usize) -> Option<Bytes> {
    if len == 0 || len > MAX_PLACEHOLDER_LEN || key >= MAX_PLACEHOLDER_KEYS {
        return None;
    }
    Some(Bytes::from_static(&REGION[key..key + len]))
}

/// Runs `encode` and returns its result with the ranges it left out, in the
/// order they appear in the output. Positions are relative to the length the
/// output buffer had when `encode` started writing into it, i.e. absolute
/// positions in that buffer.
pub fn encode_leaving_out_records<T>(encode: impl FnOnce() -> T) -> (T, Vec<LeftOut>) {
    let previous = COLLECTOR.with(|c| c.borrow_mut().replace(Vec::new()));
    let result = encode();
    let left_out = COLLECTOR.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous)).unwrap_or_default();
    (result, left_out)
}

/// Called by the records encoder after the length prefix: true when `data` is
/// a placeholder and a collector is active (the bytes must then not be
/// written); the range is recorded at `at`.
pub(crate) fn leave_out(at: usize, data: &[u8]) -> bool {
    let base = REGION.as_ptr() as usize;
    let start = data.as_ptr() as usize;
    if data.is_empty() || start < base || start >= base + MAX_PLACEHOLDER_KEYS {
        return false;
    }
    COLLECTOR.with(|c| match c.borrow_mut().as_mut() {
        Some(list) => {
            list.push(LeftOut { at, key: start - base, len: data.len() });
            true
        }
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::fetch_response::{FetchResponse, FetchableTopicResponse, PartitionData};
    use crate::Encode;
    use bytes::BytesMut;

    fn response(records: Vec<Option<Bytes>>) -> FetchResponse {
        FetchResponse {
            responses: vec![FetchableTopicResponse {
                topic: "t".into(),
                partitions: records
                    .into_iter()
                    .enumerate()
                    .map(|(i, records)| PartitionData { partition_index: i as i32, records, ..Default::default() })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Encoding with placeholders and inserting the real data where the
    /// encoder says gives exactly the bytes of a normal encoding, at every
    /// version (classic and flexible).
    #[test]
    fn splicing_the_data_back_gives_the_normal_encoding() {
        let data: Vec<Bytes> = vec![Bytes::from(vec![7u8; 300]), Bytes::new(), Bytes::from(vec![9u8; 70_000])];
        for version in 4..=16i16 {
            let mut normal = BytesMut::new();
            response(data.iter().cloned().map(Some).collect()).encode(&mut normal, version).unwrap();

            let with_placeholders: Vec<Option<Bytes>> =
                data.iter().enumerate().map(|(k, d)| placeholder(k, d.len()).or_else(|| Some(d.clone()))).collect();
            let mut out = BytesMut::from(&b"head"[..]);
            let (result, left_out) = encode_leaving_out_records(|| response(with_placeholders.clone()).encode(&mut out, version));
            result.unwrap();
            assert_eq!(left_out.len(), 2, "the empty records are not a placeholder");
            let mut spliced = Vec::new();
            let mut cursor = 4;
            for l in &left_out {
                spliced.extend_from_slice(&out[cursor..l.at]);
                spliced.extend_from_slice(&data[l.key][..l.len]);
                cursor = l.at;
            }
            spliced.extend_from_slice(&out[cursor..]);
            assert_eq!(spliced, &normal[..], "version {version}");
        }
    }

    #[test]
    fn outside_the_collector_a_placeholder_is_zeros() {
        let p = placeholder(3, 10).unwrap();
        let mut plain = BytesMut::new();
        response(vec![Some(p)]).encode(&mut plain, 12).unwrap();
        let mut zeros = BytesMut::new();
        response(vec![Some(Bytes::from(vec![0u8; 10]))]).encode(&mut zeros, 12).unwrap();
        assert_eq!(plain, zeros);
    }

    #[test]
    fn limits() {
        assert!(placeholder(0, 0).is_none());
        assert!(placeholder(0, MAX_PLACEHOLDER_LEN + 1).is_none());
        assert!(placeholder(MAX_PLACEHOLDER_KEYS, 1).is_none());
        assert_eq!(placeholder(MAX_PLACEHOLDER_KEYS - 1, MAX_PLACEHOLDER_LEN).unwrap().len(), MAX_PLACEHOLDER_LEN);
    }
}
