//! Codec tests: round trips, fixtures written by independent implementations
//! (see `../fixtures/generate.py`), bombs, and damaged input.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// The payload the fixtures compress; same formula as `payload()` in
/// `generate.py`.
fn fixture_payload() -> Vec<u8> {
    const LEN: usize = 70_000;
    let mut out = Vec::with_capacity(LEN + 80);
    let mut i: u64 = 0;
    while out.len() < LEN {
        out.extend_from_slice(
            format!(
                "record {i:06}: the quick brown fox jumps over the lazy dog {}\n",
                i * i % 977
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(LEN);
    out
}

fn decode(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    decompress_bounded(codec, Bytes::copy_from_slice(data), limit).map(|b| b.to_vec())
}

fn is_codec_error(e: &RecordsError, codec: Compression) -> bool {
    matches!(e, RecordsError::CorruptCompressed { codec: c, .. } if *c == codec) && e.is_corrupt()
}

// ---------------------------------------------------------------- fixtures

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../fixtures/", $name, ".bin")) as &[u8],
        )
    };
}

const FIXTURES: [(Compression, (&str, &[u8])); 10] = [
    (Compression::Gzip, fixture!("gzip_single")),
    (Compression::Gzip, fixture!("gzip_two_members")),
    (Compression::Snappy, fixture!("snappy_xerial")),
    (Compression::Snappy, fixture!("snappy_raw")),
    (Compression::Lz4, fixture!("lz4_content_checksum")),
    (Compression::Lz4, fixture!("lz4_linked_block_checksum_size")),
    (Compression::Lz4, fixture!("lz4_4mb_blocks")),
    (Compression::Zstd, fixture!("zstd_content_size")),
    (Compression::Zstd, fixture!("zstd_no_content_size")),
    (Compression::Zstd, fixture!("zstd_two_frames")),
];

#[test]
fn fixtures_from_other_implementations_decode_exactly() {
    let payload = fixture_payload();
    for (codec, (name, data)) in FIXTURES {
        let out = decode(codec, data, 1 << 20).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(out == payload, "{name}: decoded {} bytes, not the payload", out.len());
        // The limit is inclusive: exactly the payload's size fits, one less does not.
        assert_eq!(decode(codec, data, payload.len()).map(|o| o.len()), Ok(payload.len()), "{name}");
        assert_eq!(
            decode(codec, data, payload.len() - 1),
            Err(RecordsError::DecompressedTooLarge { limit: payload.len() - 1 }),
            "{name}"
        );
    }
}

#[test]
fn fixture_framings_are_what_they_claim() {
    // Guards the fixtures themselves: the point is to cover these variants.
    let get = |n: &str| FIXTURES.iter().find(|(_, (name, _))| *name == n).unwrap().1 .1;
    assert!(get("snappy_xerial").starts_with(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"));
    assert!(!get("snappy_raw").starts_with(b"\x82SNAPPY"));
    // LZ4 FLG byte: independent + content checksum; linked + block checksum + size.
    assert_eq!(get("lz4_content_checksum")[4], 0b0110_0100);
    assert_eq!(get("lz4_linked_block_checksum_size")[4], 0b0101_1000);
    assert_eq!(get("lz4_4mb_blocks")[5] >> 4, 7);
    assert_eq!(zstd_safe_size(get("zstd_content_size")), Some(70_000));
    assert_eq!(zstd_safe_size(get("zstd_no_content_size")), None);
    let two = get("gzip_two_members");
    assert!(two[10..].windows(3).any(|w| w == [0x1f, 0x8b, 0x08]), "second gzip member");
}

fn zstd_safe_size(data: &[u8]) -> Option<u64> {
    ::zstd::zstd_safe::get_frame_content_size(data).unwrap()
}

#[test]
fn fixture_checksums_are_verified() {
    let payload_len = fixture_payload().len();
    for (codec, (name, data)) in FIXTURES {
        // The last byte is a checksum or trailer in every fixture except the
        // zstd frames without one and the snappy raw block's literal data.
        let mut damaged = data.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 0x55;
        match decode(codec, &damaged, 1 << 20) {
            Err(e) => assert!(is_codec_error(&e, codec), "{name}: {e:?}"),
            // Codecs without a trailing checksum may decode a flipped literal
            // or copy offset (possibly even to the same text); the output must
            // then still have the declared size.
            Ok(out) => {
                assert!(
                    matches!(name, "snappy_raw" | "snappy_xerial" | "zstd_content_size" | "zstd_two_frames"),
                    "{name}: damage went unnoticed"
                );
                assert_eq!(out.len(), payload_len, "{name}");
            }
        }
    }
}

// ---------------------------------------------------------------- encoding

#[test]
fn encodings_use_kafkas_framing() {
    let payload = fixture_payload();
    let gz = compress(Compression::Gzip, &payload);
    assert_eq!(&gz[..3], [0x1f, 0x8b, 0x08]);

    let sn = compress(Compression::Snappy, &payload);
    assert!(sn.starts_with(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"));
    // 70 000 bytes in 32 KiB chunks: three chunks.
    let chunks = snappy_chunk_count(&sn);
    assert_eq!(chunks, 3);

    let lz = compress(Compression::Lz4, &payload);
    assert_eq!(u32::from_le_bytes([lz[0], lz[1], lz[2], lz[3]]), 0x184D_2204);
    // Version 01, independent blocks, nothing else; 64 KiB blocks.
    assert_eq!(lz[4], 0b0110_0000);
    assert_eq!(lz[5], 0x40);

    let zs = compress(Compression::Zstd, &payload);
    assert_eq!(&zs[..4], [0x28, 0xB5, 0x2F, 0xFD]);
    assert_eq!(zstd_safe_size(&zs), Some(payload.len() as u64));

    assert_eq!(compress(Compression::None, &payload), payload);
}

fn snappy_chunk_count(stream: &[u8]) -> usize {
    let mut rest = &stream[16..];
    let mut n = 0;
    while !rest.is_empty() {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4 + len..];
        n += 1;
    }
    n
}

#[test]
fn empty_input_encodes_to_a_valid_stream() {
    for codec in CODECS {
        let c = compress(codec, b"");
        assert!(!c.is_empty(), "{codec:?}");
        assert_eq!(decode(codec, &c, 0), Ok(Vec::new()), "{codec:?}");
    }
    // Header plus one chunk holding an empty block: more than the 20 bytes
    // librdkafka needs before it takes the xerial path.
    assert_eq!(compress(Compression::Snappy, b"").len(), 16 + 4 + 1);
}

#[test]
fn empty_compressed_section_is_corrupt() {
    for codec in CODECS {
        let e = decode(codec, b"", 1 << 20).unwrap_err();
        assert!(is_codec_error(&e, codec), "{codec:?}: {e:?}");
    }
    assert_eq!(decompress(Compression::None, Bytes::new()), Ok(Bytes::new()));
}

#[test]
fn none_is_zero_copy() {
    let payload = Bytes::from(fixture_payload());
    let out = decompress_bounded(Compression::None, payload.clone(), 10).unwrap();
    assert_eq!(out.as_ptr(), payload.as_ptr());
    assert_eq!(out.len(), payload.len());
}

/// Payloads worth round-tripping: random (incompressible) ones from empty to
/// well past one 64 KiB lz4 block, and long repetitive ones.
fn arb_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2_000),
        proptest::collection::vec(any::<u8>(), 65_000..140_000),
        (proptest::collection::vec(any::<u8>(), 1..40), 0usize..300_000)
            .prop_map(|(unit, len)| unit.iter().copied().cycle().take(len).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_codec_round_trips(payload in arb_payload()) {
        for codec in Compression::ALL {
            let c = compress(codec, &payload);
            let out = decode(codec, &c, payload.len()).map_err(|e| TestCaseError::fail(format!("{codec:?}: {e}")))?;
            prop_assert!(out == payload, "{:?}: round trip changed {} bytes", codec, payload.len());
            if !payload.is_empty() && codec != Compression::None {
                prop_assert_eq!(
                    decode(codec, &c, payload.len() - 1),
                    Err(RecordsError::DecompressedTooLarge { limit: payload.len() - 1 })
                );
            }
        }
    }

    #[test]
    fn garbage_never_panics(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        prefix in 0usize..5,
    ) {
        // Prefix the garbage with each codec's magic so it gets past the first check.
        let magics: [&[u8]; 5] = [
            b"",
            &[0x1f, 0x8b, 0x08, 0x00],
            b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01",
            &[0x04, 0x22, 0x4d, 0x18, 0x64, 0x40],
            &[0x28, 0xB5, 0x2F, 0xFD],
        ];
        let mut input = magics[prefix].to_vec();
        input.extend_from_slice(&data);
        for codec in CODECS {
            if let Err(e) = decode(codec, &input, 1 << 20) {
                prop_assert!(
                    is_codec_error(&e, codec) || matches!(e, RecordsError::DecompressedTooLarge { .. }),
                    "{:?}: {:?}", codec, e
                );
            }
        }
    }

    #[test]
    fn damaged_streams_never_panic(
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let payload = fixture_payload();
        for (codec, (name, data)) in FIXTURES {
            let mut flipped = data.to_vec();
            let i = pos.index(flipped.len());
            flipped[i] ^= byte | 1;
            // Either an error or *some* output within the limit; never a panic.
            if let Ok(out) = decode(codec, &flipped, 1 << 20) {
                prop_assert!(out.len() <= 1 << 20);
            }
            let cut_at = cut.index(data.len());
            let multi_unit = matches!(name, "snappy_xerial" | "gzip_two_members" | "zstd_two_frames");
            check_truncated(codec, &data[..cut_at], &payload, multi_unit)?;
        }
    }
}

/// A truncated stream must fail, except where the framing has no end marker
/// at that point: a stream of several units (xerial chunks, gzip members,
/// zstd frames) cut exactly between two decodes to a strict prefix (the
/// batch's record count catches those).
fn check_truncated(codec: Compression, cut: &[u8], payload: &[u8], multi_unit: bool) -> Result<(), TestCaseError> {
    match decode(codec, cut, 1 << 20) {
        Err(e) => prop_assert!(is_codec_error(&e, codec), "{:?}: {:?}", codec, e),
        Ok(out) => {
            prop_assert!(multi_unit, "{:?}: a stream cut at {} decoded", codec, cut.len());
            prop_assert!(out.len() < payload.len() && payload.starts_with(&out));
        }
    }
    Ok(())
}

#[test]
fn every_truncation_of_our_encodings_fails() {
    // Small enough to try every cut; long enough for several lz4 blocks.
    let payload: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8 ^ (i >> 9) as u8).collect();
    for codec in CODECS {
        let c = compress(codec, &payload);
        let step = (c.len() / 400).max(1);
        for cut_at in (0..c.len()).step_by(step).chain([c.len() - 1]) {
            // Only snappy's xerial framing is several units (32 KiB chunks).
            check_truncated(codec, &c[..cut_at], &payload, codec == Compression::Snappy).unwrap();
        }
    }
}

#[test]
fn lz4_frame_cut_after_a_block_is_corrupt() {
    // lz4_flex alone would return the first 64 KiB and call it a day.
    let payload = fixture_payload();
    let c = compress(Compression::Lz4, &payload);
    let first_block = u32::from_le_bytes([c[7], c[8], c[9], c[10]]) & 0x7FFF_FFFF;
    let cut = 7 + 4 + first_block as usize;
    let e = decode(Compression::Lz4, &c[..cut], 1 << 20).unwrap_err();
    assert!(is_codec_error(&e, Compression::Lz4), "{e:?}");
}

#[test]
fn trailing_bytes_after_the_stream_are_corrupt() {
    let payload = fixture_payload();
    for codec in CODECS {
        let mut c = compress(codec, &payload);
        c.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6]);
        let e = decode(codec, &c, 1 << 20).unwrap_err();
        assert!(is_codec_error(&e, codec), "{codec:?}: {e:?}");
    }
}

#[test]
fn snappy_xerial_chunk_past_the_end_is_corrupt() {
    let mut c = compress(Compression::Snappy, b"hello hello hello");
    c[16..20].copy_from_slice(&1000u32.to_be_bytes());
    assert!(is_codec_error(&decode(Compression::Snappy, &c, 1 << 20).unwrap_err(), Compression::Snappy));
    // Too short for even the header.
    assert!(is_codec_error(
        &decode(Compression::Snappy, b"\x82SNAPPY\x00\x00\x00", 1 << 20).unwrap_err(),
        Compression::Snappy
    ));
}

// ---------------------------------------------------------------- bombs

/// Counts the largest single allocation made on the current thread while
/// armed, so bomb tests can show that nothing near the inflated size was
/// ever requested. (libzstd allocates with C malloc and is not seen here;
/// its window is bounded separately, see `zstd.rs`.)
#[allow(unsafe_code)]
mod alloc_probe {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ARMED: Cell<bool> = const { Cell::new(false) };
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    pub struct Probe;

    fn note(size: usize) {
        // try_with: the allocator may run while thread-locals are torn down.
        let armed = ARMED.try_with(Cell::get).unwrap_or(false);
        if armed {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    }

    // SAFETY: every call is forwarded unchanged to the system allocator;
    // `note` only touches const-initialised thread-locals, which never allocate.
    unsafe impl GlobalAlloc for Probe {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            System.alloc(layout)
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            System.alloc_zeroed(layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            System.realloc(ptr, layout, new_size)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
    }

    #[global_allocator]
    static GLOBAL: Probe = Probe;

    /// Runs `f`, returning its result and the largest allocation it made.
    pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
        LARGEST.with(|l| l.set(0));
        ARMED.with(|a| a.set(true));
        let out = f();
        ARMED.with(|a| a.set(false));
        (out, LARGEST.with(Cell::get))
    }
}

pub(crate) use alloc_probe::largest_allocation;

const BOMB_SIZE: usize = 100 << 20;
const BOMB_LIMIT: usize = 1 << 20;

#[test]
fn bombs_stop_at_the_limit_without_inflating() {
    let zeros = vec![0u8; BOMB_SIZE];
    for codec in CODECS {
        let bomb = Bytes::from(compress(codec, &zeros));
        assert!(bomb.len() < BOMB_SIZE / 16, "{codec:?}: {} bytes is no bomb", bomb.len());
        let (result, largest) =
            largest_allocation(|| decompress_bounded(codec, bomb, BOMB_LIMIT).map(|o| o.len()));
        assert_eq!(result, Err(RecordsError::DecompressedTooLarge { limit: BOMB_LIMIT }), "{codec:?}");
        // The output buffer may reach the limit; codec state is small.
        assert!(largest <= BOMB_LIMIT + (256 << 10), "{codec:?}: allocated {largest} bytes at once");
    }
}

#[test]
fn raw_snappy_bomb_is_refused_before_allocating() {
    // A raw block whose varint header claims 100 MB: refused from the header.
    let bomb = Bytes::from(snap::raw::Encoder::new().compress_vec(&vec![0u8; BOMB_SIZE]).unwrap());
    let (result, largest) =
        largest_allocation(|| decompress_bounded(Compression::Snappy, bomb, BOMB_LIMIT).map(|o| o.len()));
    assert_eq!(result, Err(RecordsError::DecompressedTooLarge { limit: BOMB_LIMIT }));
    assert!(largest < 4096, "allocated {largest} bytes");
}

#[test]
fn bomb_limit_zero_and_exact() {
    let payload = fixture_payload();
    for codec in CODECS {
        let c = compress(codec, &payload);
        assert_eq!(decode(codec, &c, 0), Err(RecordsError::DecompressedTooLarge { limit: 0 }));
        assert_eq!(decode(codec, &c, payload.len()).unwrap(), payload);
    }
}

/// Writes our encodings of the fixture payload to `$KLAMM_CODEC_OUT`, for
/// checking by hand that independent decoders read them (see generate.py's
/// docstring). Not a test of its own, hence ignored.
#[test]
#[ignore = "manual: export encodings for the Python cross-check"]
fn export_encodings_for_python_check() {
    let dir = std::env::var("KLAMM_CODEC_OUT").expect("set KLAMM_CODEC_OUT");
    let payload = fixture_payload();
    for (codec, name) in [
        (Compression::Gzip, "gzip"),
        (Compression::Snappy, "snappy"),
        (Compression::Lz4, "lz4"),
        (Compression::Zstd, "zstd"),
    ] {
        std::fs::write(format!("{dir}/ours_{name}.bin"), compress(codec, &payload)).unwrap();
        std::fs::write(format!("{dir}/ours_{name}_empty.bin"), compress(codec, b"")).unwrap();
    }
}
