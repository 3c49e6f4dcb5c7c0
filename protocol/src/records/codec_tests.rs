//! Compressed batches end to end: builder → parse → records for every codec,
//! recompression between every pair, bombs and damage at the batch level,
//! and whole batches written by kafka-python.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::compression::tests::largest_allocation;
use super::*;

const CODECS: [Compression; 5] = Compression::ALL;

/// A batch exercising every header field the builder can set, records with
/// and without keys, values and headers, a gap in offset deltas and a tail
/// gap (lastOffsetDelta beyond the last record).
fn rich_builder(codec: Compression) -> RecordBatchBuilder {
    let big = vec![b'z'; 100_000];
    let mut b = RecordBatchBuilder::new(1_000_000)
        .compression(codec)
        .partition_leader_epoch(7)
        .producer(99, 4, 1234)
        .transactional(true)
        .timestamp_type(TimestampType::LogAppendTime)
        .last_offset_delta(12);
    b.push(1_000, Some(b"k0"), Some(b"v0"), &[("h", Some(b"x")), ("null", None)]);
    b.push(1_010, None, Some(&big), &[]);
    b.push_at(5, 990, Some(b""), None, &[("empty", Some(b""))]);
    b.push_at(9, 1_020, Some(b"k9"), Some(b"v9"), &[]);
    b
}

fn parse(bytes: Bytes) -> RecordBatch {
    let (batch, rest) = RecordBatch::parse(bytes).unwrap();
    assert!(rest.is_empty());
    batch
}

fn records_of(batch: &RecordBatch) -> Vec<Record> {
    batch.records().collect::<Result<_, _>>().unwrap()
}

/// Every header field except codec bits, batchLength and CRC.
fn header_fields(b: &RecordBatch) -> impl PartialEq + std::fmt::Debug {
    (
        (b.base_offset(), b.partition_leader_epoch(), b.magic(), b.attributes().0 & !0x07),
        (b.last_offset_delta(), b.base_timestamp(), b.max_timestamp()),
        (b.producer_id(), b.producer_epoch(), b.base_sequence(), b.records_count()),
    )
}

/// Replaces the records section of `batch` and sets `codec`, fixing up
/// batchLength and CRC, so tests can frame arbitrary sections.
fn with_section(batch: &Bytes, codec: Compression, section: &[u8]) -> Bytes {
    let mut out = BytesMut::from(&batch[..RECORD_BATCH_OVERHEAD]);
    out.extend_from_slice(section);
    let len = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&len.to_be_bytes());
    let attrs = (u16::from_be_bytes([out[21], out[22]]) & !0x07) | codec.bits();
    out[21..23].copy_from_slice(&attrs.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

#[test]
fn builder_parse_iterate_every_codec() {
    let plain = parse(rich_builder(Compression::None).build());
    let expected = records_of(&plain);
    assert_eq!(expected.len(), 4);
    for codec in CODECS {
        let batch = parse(rich_builder(codec).build());
        batch.validate().unwrap();
        assert_eq!(batch.compression(), Ok(codec));
        assert_eq!(header_fields(&batch), header_fields(&plain), "{codec:?}");
        if codec != Compression::None {
            // The 100 KB of 'z' must actually have been compressed.
            assert!(batch.size() < plain.size() / 10, "{codec:?}: {} bytes", batch.size());
        }
        assert_eq!(records_of(&batch), expected, "{codec:?}");
        let bounded: Vec<Record> = batch.records_bounded(1 << 20).collect::<Result<_, _>>().unwrap();
        assert_eq!(bounded, expected, "{codec:?}");
    }
}

#[test]
fn records_bounded_refuses_what_inflates_past_the_limit() {
    for codec in CODECS.into_iter().filter(|c| *c != Compression::None) {
        let batch = parse(rich_builder(codec).build());
        let inflated = compress(Compression::None, &batch_section_plain()).len();
        let items: Vec<_> = batch.records_bounded(inflated - 1).collect();
        assert_eq!(items, vec![Err(RecordsError::DecompressedTooLarge { limit: inflated - 1 })], "{codec:?}");
        assert_eq!(batch.records_bounded(inflated).filter(Result::is_ok).count(), 4, "{codec:?}");
    }
    // Uncompressed batches are already in memory: the limit does not apply.
    let plain = parse(rich_builder(Compression::None).build());
    assert_eq!(plain.records_bounded(0).filter(Result::is_ok).count(), 4);
}

fn batch_section_plain() -> Bytes {
    parse(rich_builder(Compression::None).build()).records_payload()
}

#[test]
fn batch_level_bomb_is_refused_without_inflating() {
    let zeros = vec![0u8; 64 << 20];
    let template = rich_builder(Compression::None).build();
    for codec in CODECS.into_iter().filter(|c| *c != Compression::None) {
        let batch = parse(with_section(&template, codec, &compress(codec, &zeros)));
        batch.validate().unwrap(); // header-only for compressed batches
        let (items, largest) = largest_allocation(|| batch.records_bounded(1 << 20).collect::<Vec<_>>());
        assert_eq!(items, vec![Err(RecordsError::DecompressedTooLarge { limit: 1 << 20 })], "{codec:?}");
        assert!(largest <= (1 << 20) + (256 << 10), "{codec:?}: {largest} bytes at once");
        let e = recompress_batch(&batch, Compression::None, 1 << 20).unwrap_err();
        assert_eq!(e, RecordsError::DecompressedTooLarge { limit: 1 << 20 });
    }
}

#[test]
fn recompress_between_every_pair_preserves_everything() {
    for source in CODECS {
        let original = parse(rich_builder(source).build());
        let expected = records_of(&original);
        for target in CODECS {
            let out = recompress_batch(&original, target, 1 << 20)
                .unwrap_or_else(|e| panic!("{source:?} -> {target:?}: {e}"));
            if source == target {
                // Zero copy: the very same bytes.
                assert_eq!(out.as_ptr(), original.as_bytes().as_ptr());
                assert_eq!(out.len(), original.size());
                continue;
            }
            let again = parse(out);
            again.validate().unwrap();
            assert_eq!(again.compression(), Ok(target));
            assert_eq!(again.crc(), again.compute_crc());
            assert_eq!(header_fields(&again), header_fields(&original), "{source:?} -> {target:?}");
            let records = records_of(&again);
            assert_eq!(records, expected, "{source:?} -> {target:?}");
            for (r, e) in records.iter().zip(&expected) {
                assert_eq!(r.offset(again.base_offset()), e.offset(original.base_offset()));
                assert_eq!(r.timestamp(again.base_timestamp()), e.timestamp(original.base_timestamp()));
            }
        }
    }
}

#[test]
fn recompress_keeps_control_and_delete_horizon_bits() {
    let marker = build_end_txn_marker(
        40,
        8,
        2,
        EndTransactionMarker { commit: true, coordinator_epoch: 5 },
        1_234,
    );
    // Set the delete-horizon bit too (compaction sets it on retained batches).
    let mut buf = BytesMut::from(&marker[..]);
    buf[22] |= 0x40;
    let marker = with_section(&buf.freeze(), Compression::None, &parse(marker.clone()).records_payload());
    let batch = parse(marker);
    for target in [Compression::Zstd, Compression::Snappy] {
        let out = parse(recompress_batch(&batch, target, 1 << 20).unwrap());
        out.validate().unwrap();
        assert!(out.is_control() && out.is_transactional() && out.has_delete_horizon());
        assert_eq!(header_fields(&out), header_fields(&batch));
        let back = parse(recompress_batch(&out, Compression::None, 1 << 20).unwrap());
        assert_eq!(back.as_bytes(), batch.as_bytes(), "{target:?} and back is the original");
        let record = records_of(&out).remove(0);
        assert_eq!(
            EndTransactionMarker::from_record(&record).unwrap(),
            Some(EndTransactionMarker { commit: true, coordinator_epoch: 5 })
        );
    }
}

#[test]
fn recompress_refuses_damaged_batches() {
    // A bad CRC must not be laundered into a good one.
    let good = rich_builder(Compression::Gzip).build();
    let mut bad = BytesMut::from(&good[..]);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let bad = parse(bad.freeze());
    assert!(matches!(
        recompress_batch(&bad, Compression::Lz4, 1 << 20),
        Err(RecordsError::CrcMismatch { .. })
    ));
    // A valid CRC over a section whose records do not parse.
    let junk = parse(with_section(&good, Compression::Zstd, &compress(Compression::Zstd, b"\x7fnot records")));
    junk.validate().unwrap();
    let e = recompress_batch(&junk, Compression::Gzip, 1 << 20).unwrap_err();
    assert!(e.is_corrupt(), "{e:?}");
    // A damaged stream.
    let stream = parse(with_section(&good, Compression::Lz4, b"\x04\x22\x4d\x18garbage"));
    let e = recompress_batch(&stream, Compression::None, 1 << 20).unwrap_err();
    assert!(matches!(e, RecordsError::CorruptCompressed { codec: Compression::Lz4, .. }), "{e:?}");
    // The same codec is returned untouched, damaged or not: nothing is checked.
    assert_eq!(recompress_batch(&bad, Compression::Gzip, 0).unwrap(), bad.as_bytes());
}

#[test]
fn empty_compressed_batches() {
    let empty = RecordBatchBuilder::new(5).producer(1, 1, 0).build();
    for codec in CODECS.into_iter().filter(|c| *c != Compression::None) {
        // Zero records, empty section: nothing to iterate, as Kafka's readers do.
        let batch = parse(with_section(&empty, codec, b""));
        batch.validate().unwrap();
        assert_eq!(batch.records().count(), 0, "{codec:?}");
        let plain = parse(recompress_batch(&batch, Compression::None, 1 << 20).unwrap());
        assert_eq!(plain.as_bytes(), &empty);
        // Built through the builder: a real (empty) stream.
        let built = parse(RecordBatchBuilder::new(5).compression(codec).build());
        built.validate().unwrap();
        assert!(!built.records_payload().is_empty(), "{codec:?}");
        assert_eq!(built.records().count(), 0, "{codec:?}");
    }
    // One declared record and an empty section is damage.
    let one = RecordBatchBuilder::new(0).record(1, None, Some(b"v")).build();
    let batch = parse(with_section(&one, Compression::Zstd, b""));
    let items: Vec<_> = batch.records().collect();
    assert!(matches!(&items[..], [Err(RecordsError::CorruptCompressed { .. })]), "{items:?}");
}

#[test]
fn xerial_cut_between_chunks_fails_the_record_count() {
    // A stream that decodes (xerial has no end marker) but lost records.
    let mut b = RecordBatchBuilder::new(0);
    let value = vec![7u8; 1_000];
    for i in 0..100 {
        b.push(i, None, Some(&value), &[]);
    }
    let built = b.compression(Compression::Snappy).build();
    let batch = parse(built.clone());
    let section = batch.records_payload();
    let first_chunk = u32::from_be_bytes([section[16], section[17], section[18], section[19]]) as usize;
    let cut = parse(with_section(&built, Compression::Snappy, &section[..16 + 4 + first_chunk]));
    let items: Vec<_> = cut.records().collect();
    let last = items.last().unwrap();
    assert!(matches!(last, Err(e) if e.is_corrupt()), "{last:?}");
    assert!(recompress_batch(&cut, Compression::None, 1 << 20).is_err());
}

// ---------------------------------------------------------- kafka-python

const KAFKA_PYTHON_BATCHES: [(Compression, &[u8]); 4] = [
    (Compression::Gzip, include_bytes!("fixtures/kafka_python_batch_gzip.bin")),
    (Compression::Snappy, include_bytes!("fixtures/kafka_python_batch_snappy.bin")),
    (Compression::Lz4, include_bytes!("fixtures/kafka_python_batch_lz4.bin")),
    (Compression::Zstd, include_bytes!("fixtures/kafka_python_batch_zstd.bin")),
];

fn value(n: u8) -> Vec<u8> {
    let mut v = b"value ".repeat(40);
    v.push(n);
    v
}

#[test]
fn kafka_python_batches_decode() {
    for (codec, bytes) in KAFKA_PYTHON_BATCHES {
        let batch = parse(Bytes::from_static(bytes));
        batch.validate().unwrap();
        assert_eq!(batch.compression(), Ok(codec));
        assert_eq!(
            (batch.producer_id(), batch.producer_epoch(), batch.base_sequence()),
            (4242, 3, 17)
        );
        assert_eq!((batch.records_count(), batch.last_offset_delta()), (4, 3));
        assert_eq!(batch.base_timestamp(), 1_700_000_000_000);
        assert_eq!(batch.max_timestamp(), 1_700_000_000_005);
        let records: Vec<Record> = batch.records_bounded(1 << 16).collect::<Result<_, _>>().unwrap();
        let got: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.offset(batch.base_offset()),
                    r.timestamp(batch.base_timestamp()),
                    r.key.as_deref().map(<[u8]>::to_vec),
                    r.value.as_deref().map(<[u8]>::to_vec),
                    r.headers.clone(),
                )
            })
            .collect();
        let h = |k: &str, v: &'static [u8]| (k.to_owned(), Some(Bytes::from_static(v)));
        let want = vec![
            (0, 1_700_000_000_000, Some(b"key-0".to_vec()), Some(value(b'0')), vec![h("h1", b"v1"), h("h2", b"")]),
            (1, 1_700_000_000_005, None, Some(value(b'1')), vec![]),
            (2, 1_700_000_000_003, Some(Vec::new()), None, vec![]),
            (3, 1_699_999_999_999, Some(b"key-3".to_vec()), Some(value(b'3')), vec![h("h3", b"xxxxxxxxxx")]),
        ];
        assert_eq!(got, want, "{codec:?}");
        for target in CODECS {
            let out = parse(recompress_batch(&batch, target, 1 << 16).unwrap());
            out.validate().unwrap();
            assert_eq!(records_of(&out), records, "{codec:?} -> {target:?}");
        }
    }
}

// ---------------------------------------------------------- properties

#[derive(Debug, Clone)]
struct Rec {
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn arb_rec() -> impl Strategy<Value = Rec> {
    (
        -1_000i64..1_000,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            (any::<u8>(), 0usize..20_000).prop_map(|(b, n)| vec![b; n]),
        ]),
        proptest::collection::vec(
            ("[a-z]{0,8}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20))),
            0..3,
        ),
    )
        .prop_map(|(ts, key, value, headers)| Rec { ts, key, value, headers })
}

fn arb_codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn compressed_batches_round_trip(
        recs in proptest::collection::vec(arb_rec(), 0..12),
        codec in arb_codec(),
        target in arb_codec(),
    ) {
        let build = |c: Compression| {
            let mut b = RecordBatchBuilder::new(77).compression(c).producer(5, 6, 7);
            for r in &recs {
                let headers: Vec<(&str, Option<&[u8]>)> =
                    r.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
                b.push(1_700_000_000_000 + r.ts, r.key.as_deref(), r.value.as_deref(), &headers);
            }
            b.build()
        };
        let plain = parse(build(Compression::None));
        let batch = parse(build(codec));
        batch.validate().unwrap();
        let expected = records_of(&plain);
        prop_assert_eq!(records_of(&batch), expected.clone());
        let out = parse(recompress_batch(&batch, target, 1 << 22).unwrap());
        out.validate().unwrap();
        prop_assert_eq!(out.compression(), Ok(target));
        prop_assert_eq!(records_of(&out), expected);
        prop_assert_eq!(header_fields(&out), header_fields(&batch));
    }
}
