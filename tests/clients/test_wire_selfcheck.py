"""Self-checks of kafka_wire.py (no broker): the hand-written encoders agree with
published check values and with kafka-python's independent implementation, so
a bad-input test that fails points at the broker, not at the test's encoder."""

from __future__ import annotations

import pytest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

import kafka_wire as wire


def test_crc32c_check_values():
    # RFC 3720 (iSCSI) appendix B.4 and the usual "123456789" check value
    assert wire.crc32c_py(b"123456789") == 0xE3069283
    assert wire.crc32c_py(bytes(32)) == 0x8A9136AA
    assert wire.crc32c_py(b"\xff" * 32) == 0x62A8AB43
    assert wire.crc32c_py(bytes(range(32))) == 0x46DD794E
    for data in (b"", b"a", bytes(range(256)) * 3):
        assert wire.crc32c(data) == wire.crc32c_py(data)


@pytest.mark.parametrize("value,encoded", [
    (0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-64, b"\x7f"), (64, b"\x80\x01"), (300, b"\xd8\x04"),
])
def test_zigzag_varint(value, encoded):
    assert wire.varint(value) == encoded


def test_unsigned_varint_and_compact_string():
    assert wire.uvarint(0) == b"\x00"
    assert wire.uvarint(127) == b"\x7f"
    assert wire.uvarint(128) == b"\x80\x01"
    assert wire.compact_string(None) == b"\x00"
    assert wire.compact_string("") == b"\x01"
    assert wire.compact_string("ab") == b"\x03ab"
    r = wire.Reader(wire.uvarint(300) + wire.compact_string("xyz") + b"\x00")
    assert r.uvarint() == 300
    assert r.compact_string() == "xyz"
    r.skip_tags()
    assert r.remaining() == 0


def test_request_header_v1_and_v2():
    assert wire.request_header(18, 0, 7, "c") == b"\x00\x12\x00\x00\x00\x00\x00\x07\x00\x01c"
    assert wire.request_header(18, 3, 7, "c", flexible=True) == b"\x00\x12\x00\x03\x00\x00\x00\x07\x00\x01c\x00"
    assert wire.request_header(3, 1, 1, None) == b"\x00\x03\x00\x01\x00\x00\x00\x01\xff\xff"


def test_record_batch_matches_kafka_python_builder():
    ts = 1_700_000_000_000
    recs = [(b"k1", b"v1", [("h", b"x"), ("n", None)], 0), (None, b"v2", [], 3), (b"k3", None, [], 7)]
    ours = wire.record_batch([wire.Record(k, v, h, d) for k, v, h, d in recs], ts)
    ref = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                    producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i, (k, v, h, d) in enumerate(recs):
        ref.append(i, ts + d, k, v, h)
    ref_bytes = bytes(ref.build())
    # kafka-python writes partitionLeaderEpoch 0, producers like Java and librdkafka write -1;
    # bytes 12..16 lie outside the CRC, everything else must be identical
    assert ours[:12] == ref_bytes[:12]
    assert ours[16:] == ref_bytes[16:]
    parsed = DefaultRecordBatch(ours)
    assert parsed.validate_crc()
    got = [(r.key, r.value, list(r.headers), r.timestamp) for r in parsed]
    assert got == [(k, v, h, ts + d) for k, v, h, d in recs]


def test_corrupted_batch_fails_crc_check():
    bad = wire.record_batch([wire.Record(b"k", b"v" * 100)], 1, corrupt_crc=True)
    good = wire.record_batch([wire.Record(b"k", b"v" * 100)], 1)
    assert len(bad) == len(good)
    assert sum(a != b for a, b in zip(bad, good)) == 1
    assert DefaultRecordBatch(good).validate_crc()
    assert not DefaultRecordBatch(bad).validate_crc()
    old_magic = wire.record_batch([wire.Record(b"k", b"v")], 1, magic=1)
    hdr = wire.parse_record_batch_header(old_magic)
    assert hdr["magic"] == 1 and hdr["batch_length"] == len(old_magic) - 12
