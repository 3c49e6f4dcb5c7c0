//! Unit and property tests for the records module.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn must_sample() -> Bytes {
    RecordBatchBuilder::new(100)
        .producer(7, 1, 42)
        .record(1_000, Some(b"k1"), Some(b"v1"))
        .record_with_headers(1_005, None, None, &[("h", Some(b"x")), ("n", None)])
        .record(999, Some(b""), Some(b"v3"))
        .build()
}

#[test]
fn header_fields() {
    let (b, rest) = RecordBatch::parse(must_sample()).unwrap();
    assert!(rest.is_empty());
    b.validate().unwrap();
    assert_eq!(b.base_offset(), 100);
    assert_eq!(b.magic(), 2);
    assert_eq!(b.size(), 12 + b.batch_length() as usize);
    assert_eq!(b.records_count(), 3);
    assert_eq!(b.last_offset_delta(), 2);
    assert_eq!(b.last_offset(), 102);
    assert_eq!(b.next_offset(), 103);
    assert_eq!(b.base_timestamp(), 1_000);
    assert_eq!(b.max_timestamp(), 1_005);
    assert_eq!(b.producer_id(), 7);
    assert_eq!(b.producer_epoch(), 1);
    assert_eq!(b.base_sequence(), 42);
    assert_eq!(b.partition_leader_epoch(), -1);
    assert_eq!(b.compression(), Ok(Compression::None));
    assert_eq!(b.timestamp_type(), TimestampType::CreateTime);
    assert!(!b.is_transactional() && !b.is_control() && !b.has_delete_horizon());
    assert_eq!(b.crc(), b.compute_crc());
}

#[test]
fn records_round_trip() {
    let (b, _) = RecordBatch::parse(must_sample()).unwrap();
    let recs: Vec<Record> = b.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(recs[0].value.as_deref(), Some(&b"v1"[..]));
    assert_eq!(recs[0].offset(b.base_offset()), 100);
    assert_eq!(recs[1].key, None);
    assert_eq!(recs[1].value, None);
    assert_eq!(
        recs[1].headers,
        vec![("h".to_owned(), Some(Bytes::from_static(b"x"))), ("n".to_owned(), None)]
    );
    assert_eq!(recs[1].timestamp(b.base_timestamp()), 1_005);
    assert_eq!(recs[2].key.as_deref(), Some(&b""[..]));
    assert_eq!(recs[2].timestamp(b.base_timestamp()), 999);
    assert_eq!(recs[2].offset_delta, 2);
}

#[test]
fn empty_batch_is_valid() {
    let bytes = RecordBatchBuilder::new(5).build();
    assert_eq!(bytes.len(), RECORD_BATCH_OVERHEAD);
    let (b, _) = RecordBatch::parse(bytes).unwrap();
    b.validate().unwrap();
    assert_eq!(b.records_count(), 0);
    assert_eq!(b.max_timestamp(), -1);
    assert_eq!(b.records().count(), 0);
}

#[test]
fn gaps_in_offset_deltas() {
    let mut builder = RecordBatchBuilder::new(0).last_offset_delta(9);
    builder.push_at(3, 1, None, Some(b"a"), &[]);
    builder.push_at(7, 2, None, Some(b"b"), &[]);
    let (b, _) = RecordBatch::parse(builder.build()).unwrap();
    b.validate().unwrap();
    assert_eq!(b.last_offset(), 9);
    let deltas: Vec<i32> = b.records().map(|r| r.unwrap().offset_delta).collect();
    assert_eq!(deltas, vec![3, 7]);
}

#[test]
fn stamping_in_place() {
    let mut buf = BytesMut::from(&must_sample()[..]);
    let crc_before = RecordBatch::parse(buf.clone().freeze()).unwrap().0.crc();
    set_base_offset(&mut buf, 1 << 40).unwrap();
    set_partition_leader_epoch(&mut buf, 17).unwrap();
    let (b, _) = RecordBatch::parse(buf.clone().freeze()).unwrap();
    b.validate().unwrap();
    assert_eq!(b.crc(), crc_before);
    assert_eq!(b.base_offset(), 1 << 40);
    assert_eq!(b.partition_leader_epoch(), 17);

    set_log_append_time(&mut buf, 123_456).unwrap();
    let (b, _) = RecordBatch::parse(buf.freeze()).unwrap();
    b.validate().unwrap();
    assert_ne!(b.crc(), crc_before);
    assert_eq!(b.max_timestamp(), 123_456);
    assert_eq!(b.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(b.base_offset(), 1 << 40);

    assert!(set_base_offset(&mut [0u8; 10], 1).is_err());
}

#[test]
fn control_marker() {
    let m = EndTransactionMarker {
        commit: true,
        coordinator_epoch: 9,
    };
    let (b, _) = RecordBatch::parse(build_end_txn_marker(4, 77, 3, m, 50)).unwrap();
    b.validate().unwrap();
    assert!(b.is_control() && b.is_transactional());
    assert_eq!(b.producer_id(), 77);
    assert_eq!(b.producer_epoch(), 3);
    let rec = b.records().next().unwrap().unwrap();
    assert_eq!(rec.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
    assert_eq!(rec.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 9][..]));
    assert_eq!(EndTransactionMarker::from_record(&rec).unwrap(), Some(m));
    let abort = EndTransactionMarker {
        commit: false,
        coordinator_epoch: -1,
    };
    let (b, _) = RecordBatch::parse(build_end_txn_marker(0, 1, 0, abort, 0)).unwrap();
    let rec = b.records().next().unwrap().unwrap();
    assert_eq!(
        ControlRecordType::parse_key(rec.key.as_deref().unwrap()).unwrap(),
        ControlRecordType::Abort
    );
    assert_eq!(EndTransactionMarker::from_record(&rec).unwrap(), Some(abort));
}

#[test]
fn bad_magic_is_distinct() {
    let mut buf = BytesMut::from(&must_sample()[..]);
    buf[16] = 1;
    let (b, _) = RecordBatch::parse(buf.freeze()).unwrap();
    let err = b.validate().unwrap_err();
    assert_eq!(err, RecordsError::InvalidMagic(1));
    assert!(!err.is_corrupt());
}

#[test]
fn legacy_message_short_length_reports_magic() {
    // A v0 message: offset, size 14, crc, magic 0 ...
    let mut buf = vec![0u8; 26];
    buf[8..12].copy_from_slice(&14i32.to_be_bytes());
    assert_eq!(
        RecordBatch::parse(Bytes::from(buf)).unwrap_err(),
        RecordsError::InvalidMagic(0)
    );
}

#[test]
fn plain_records_flagged_gzip_are_corrupt() {
    let mut buf = BytesMut::from(&must_sample()[..]);
    buf[22] |= 1; // gzip, but the section is plain records
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    let (b, _) = RecordBatch::parse(buf.freeze()).unwrap();
    b.validate().unwrap(); // header is valid; records are not walked
    let items: Vec<_> = b.records().collect();
    assert_eq!(items.len(), 1);
    match &items[0] {
        Err(e @ RecordsError::CorruptCompressed { codec: Compression::Gzip, .. }) => {
            assert!(e.is_corrupt())
        }
        other => panic!("expected a corrupt gzip stream, got {other:?}"),
    }
}

#[test]
fn unknown_codec_rejected() {
    let mut buf = BytesMut::from(&must_sample()[..]);
    buf[22] |= 7;
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    let (b, _) = RecordBatch::parse(buf.freeze()).unwrap();
    assert_eq!(b.validate(), Err(RecordsError::UnknownCompression(7)));
}

#[test]
fn count_mismatch_detected() {
    let mut buf = BytesMut::from(&must_sample()[..]);
    buf[57..61].copy_from_slice(&2i32.to_be_bytes());
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    let (b, _) = RecordBatch::parse(buf.freeze()).unwrap();
    assert!(matches!(b.validate(), Err(RecordsError::InvalidRecordCount(_))));
}

#[test]
fn iter_batches_with_truncated_tail() {
    let a = RecordBatchBuilder::new(0).record(1, None, Some(b"a")).build();
    let b = RecordBatchBuilder::new(1).record(2, None, Some(b"bb")).build();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&a);
    buf.extend_from_slice(&b);
    buf.extend_from_slice(&a[..a.len() - 3]);
    let mut it = iter_batches(buf.freeze());
    assert_eq!(it.next().unwrap().unwrap().base_offset(), 0);
    assert_eq!(it.next().unwrap().unwrap().base_offset(), 1);
    assert_eq!(it.position(), a.len() + b.len());
    match it.next() {
        Some(Err(RecordsError::Truncated { position, .. })) => {
            assert_eq!(position, a.len() + b.len())
        }
        other => panic!("expected truncation, got {other:?}"),
    }
    assert!(it.next().is_none());
    assert_eq!(it.position(), a.len() + b.len());
}

#[test]
fn parse_rejects_short_buffers() {
    assert!(matches!(
        RecordBatch::parse(Bytes::from_static(&[0; 5])),
        Err(RecordsError::Truncated { .. })
    ));
    let full = must_sample();
    assert!(matches!(
        RecordBatch::parse(full.slice(..full.len() - 1)),
        Err(RecordsError::Truncated { .. })
    ));
}

type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Option<Vec<u8>>)>);

fn arb_record() -> impl Strategy<Value = Rec> {
    (
        -1_000_000i64..1_000_000,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::collection::vec(
            ("[a-z]{0,5}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8))),
            0..3,
        ),
    )
}

fn must_build(base: i64, recs: &[Rec], txn: bool) -> Bytes {
    let mut builder = RecordBatchBuilder::new(base).transactional(txn).producer(5, 0, 0);
    for (ts, k, v, h) in recs {
        let headers: Vec<(&str, Option<&[u8]>)> =
            h.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        builder.push(*ts, k.as_deref(), v.as_deref(), &headers);
    }
    builder.build()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn built_batches_round_trip(base in 0i64..1 << 50, recs in proptest::collection::vec(arb_record(), 0..10), txn in any::<bool>()) {
        let bytes = must_build(base, &recs, txn);
        let (b, rest) = RecordBatch::parse(bytes).unwrap();
        prop_assert!(rest.is_empty());
        b.validate().unwrap();
        prop_assert_eq!(b.records_count() as usize, recs.len());
        prop_assert_eq!(b.is_transactional(), txn);
        let got: Vec<Record> = b.records().collect::<Result<_, _>>().unwrap();
        for (i, (r, (ts, k, v, h))) in got.iter().zip(&recs).enumerate() {
            prop_assert_eq!(r.offset_delta as usize, i);
            prop_assert_eq!(r.timestamp(b.base_timestamp()), *ts);
            prop_assert_eq!(r.key.as_deref(), k.as_deref());
            prop_assert_eq!(r.value.as_deref(), v.as_deref());
            prop_assert_eq!(r.headers.len(), h.len());
        }
        if let Some(max) = recs.iter().map(|r| r.0).max() {
            prop_assert_eq!(b.max_timestamp(), max);
        }
        prop_assert_eq!(summaries_of_records(&b), b.records().summaries().collect::<Vec<_>>());
    }

    #[test]
    fn flipped_crc_byte_fails(recs in proptest::collection::vec(arb_record(), 1..5), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let bytes = must_build(0, &recs, false);
        let mut buf = BytesMut::from(&bytes[..]);
        let at = CRC_START + pos.index(buf.len() - CRC_START);
        buf[at] ^= 1 << bit;
        let (b, _) = RecordBatch::parse(buf.freeze()).unwrap();
        prop_assert!(b.validate().is_err());
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        for b in iter_batches(Bytes::from(data.clone())).flatten() {
            let _ = b.validate();
            let _ = b.records().count();
            let _ = (b.last_offset(), b.next_offset(), b.compression(), b.max_timestamp());
        }
        let mut buf = data;
        let _ = set_log_append_time(&mut buf, 1);
        let _ = set_base_offset(&mut buf, 1);
    }

    #[test]
    fn random_record_section_never_panics(garbage in proptest::collection::vec(any::<u8>(), 0..200), count in -2i32..20, lod in -2i32..20) {
        // A well-framed header with a valid CRC over garbage records.
        let mut buf = BytesMut::from(&RecordBatchBuilder::new(0).build()[..]);
        buf.extend_from_slice(&garbage);
        let len = (buf.len() - 12) as i32;
        buf[8..12].copy_from_slice(&len.to_be_bytes());
        buf[57..61].copy_from_slice(&count.to_be_bytes());
        buf[23..27].copy_from_slice(&lod.to_be_bytes());
        let crc = crc32c::crc32c(&buf[21..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        let (b, _) = RecordBatch::parse(buf.freeze()).unwrap();
        let _ = b.validate();
        let _ = b.records().count();
        // The allocation-free walk accepts and rejects exactly what the full one does.
        prop_assert_eq!(summaries_of_records(&b), b.records().summaries().collect::<Vec<_>>());
    }
}

/// What `Records::summaries` must yield: the full walk, summarised.
fn summaries_of_records(b: &RecordBatch) -> Vec<Result<RecordSummary, RecordsError>> {
    b.records()
        .map(|r| {
            r.map(|r| RecordSummary { timestamp_delta: r.timestamp_delta, offset_delta: r.offset_delta, has_key: r.key.is_some() })
        })
        .collect()
}

/// Re-encodes `orig` keeping the records `keep` selects, as the log cleaner
/// does, through [`RecordBatchBuilder::like`].
fn rebuild(orig: &RecordBatch, horizon: Option<i64>, keep: impl Fn(&Record) -> bool) -> RecordBatch {
    let mut b = RecordBatchBuilder::like(orig).unwrap();
    if let Some(h) = horizon {
        b = b.delete_horizon(h);
    }
    for r in orig.records() {
        let r = r.unwrap();
        if keep(&r) {
            b.push_record(r.timestamp(orig.base_timestamp()), r);
        }
    }
    let (batch, rest) = RecordBatch::parse(b.build()).unwrap();
    assert!(rest.is_empty());
    batch.validate().unwrap();
    batch
}

/// A record with absolute offset and timestamp: (offset, timestamp,
/// attributes, key, value, headers).
type AbsoluteRecord = (i64, i64, i8, Option<Bytes>, Option<Bytes>, Vec<(String, Option<Bytes>)>);

fn absolute(batch: &RecordBatch) -> Vec<AbsoluteRecord> {
    batch
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset(batch.base_offset()),
                r.timestamp(batch.base_timestamp()),
                r.attributes,
                r.key,
                r.value,
                r.headers,
            )
        })
        .collect()
}

#[test]
fn like_keeping_every_record_reproduces_the_batch() {
    for codec in [Compression::None, Compression::Gzip, Compression::Lz4] {
        let orig = RecordBatchBuilder::new(500)
            .partition_leader_epoch(4)
            .producer(9, 2, 17)
            .compression(codec)
            .record_with_headers(2_000, Some(b"a"), Some(b"1"), &[("h", Some(b"x")), ("n", None)])
            .record(1_990, Some(b"b"), None)
            .record(2_010, None, Some(b"3"))
            .build();
        let (batch, _) = RecordBatch::parse(orig.clone()).unwrap();
        assert_eq!(rebuild(&batch, None, |_| true).into_bytes(), orig, "{codec:?}");
    }
}

#[test]
fn like_keeps_offsets_timestamps_headers_and_producer_fields() {
    let mut b = RecordBatchBuilder::new(1_000)
        .partition_leader_epoch(3)
        .producer(42, 5, 100)
        .compression(Compression::Snappy);
    b.push_at(0, 10_000, Some(b"k0"), Some(b"v0"), &[("h0", Some(b"x"))]);
    b.push_at(2, 10_050, Some(b"k1"), None, &[]);
    b.push_at(5, 9_990, Some(b"k2"), Some(b"v2"), &[("h2", None)]);
    let (orig, _) = RecordBatch::parse(b.build()).unwrap();

    // Drop the first record: the survivors keep offsets, timestamps and
    // headers; the header keeps lastOffsetDelta and the producer fields.
    let kept = rebuild(&orig, None, |r| r.offset_delta != 0);
    assert_eq!(absolute(&kept), absolute(&orig)[1..].to_vec());
    assert_eq!(kept.base_offset(), 1_000);
    assert_eq!(kept.last_offset_delta(), 5);
    assert_eq!(kept.records_count(), 2);
    assert_eq!(kept.partition_leader_epoch(), 3);
    assert_eq!((kept.producer_id(), kept.producer_epoch(), kept.base_sequence()), (42, 5, 100));
    assert_eq!(kept.compression(), Ok(Compression::Snappy));
    assert_eq!(kept.base_timestamp(), 10_050);
    assert_eq!(kept.max_timestamp(), 10_050);
    assert!(!kept.has_delete_horizon());

    // With a delete horizon: bit 6 set, baseTimestamp is the horizon, record
    // timestamps unchanged.
    let horizon = rebuild(&kept, Some(99_000), |_| true);
    assert!(horizon.has_delete_horizon());
    assert_eq!(horizon.base_timestamp(), 99_000);
    assert_eq!(horizon.max_timestamp(), 10_050);
    assert_eq!(absolute(&horizon), absolute(&kept));
    // Re-encoding clears the bit unless asked again.
    assert!(!rebuild(&horizon, None, |_| true).has_delete_horizon());
}

#[test]
fn like_keeps_log_append_time_and_transactional_bits() {
    let orig = RecordBatchBuilder::new(0)
        .producer(1, 0, 0)
        .transactional(true)
        .record(100, Some(b"a"), Some(b"1"))
        .record(200, Some(b"b"), Some(b"2"))
        .build();
    let mut stamped = BytesMut::from(&orig[..]);
    set_log_append_time(&mut stamped, 7_777).unwrap();
    let (orig, _) = RecordBatch::parse(stamped.freeze()).unwrap();
    let kept = rebuild(&orig, None, |r| r.offset_delta == 0);
    assert_eq!(kept.timestamp_type(), TimestampType::LogAppendTime);
    assert!(kept.is_transactional());
    assert_eq!(kept.max_timestamp(), 7_777);
    assert_eq!(kept.records_count(), 1);
    assert_eq!(kept.last_offset_delta(), 1);

    // The empty stand-in the cleaner keeps for a producer's last batch.
    let empty = RecordBatchBuilder::like(&orig)
        .unwrap()
        .compression(Compression::None)
        .base_timestamp(orig.max_timestamp())
        .build();
    let (empty, _) = RecordBatch::parse(empty).unwrap();
    empty.validate().unwrap();
    assert_eq!(empty.records_count(), 0);
    assert_eq!(empty.last_offset(), 1);
    assert_eq!((empty.base_timestamp(), empty.max_timestamp()), (7_777, 7_777));
    assert!(empty.is_transactional());
}
