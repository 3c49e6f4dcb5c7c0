"""Bad input at the wire, sent with raw sockets (kafka_wire.py).

Each case checks Kafka's answer (an error code, or the connection closed where
Kafka closes it), that other connections keep working, that nothing stored
before is lost, and that a normal client still produces and consumes after.
"""

from __future__ import annotations

import os
import struct

import pytest

import kafka_wire as wire
from conftest import unique_topic
from helpers import consume, create_topic, produce_ok, wait_for_leaders, watermarks

MiB = 1024 * 1024


def seed(broker, n: int = 5) -> str:
    """A topic with n records stored before the bad input."""
    t = unique_topic("seed")
    create_topic(broker, t, partitions=1)
    produce_ok(broker, t, [{"key": b"seed", "value": f"s{i}".encode(), "partition": 0} for i in range(n)])
    return t


def assert_healthy(broker, seeded: str, n: int = 5) -> None:
    """The broker still answers, still has the seeded records, and takes new ones."""
    assert broker.is_running(), "broker process died"
    with broker.conn() as c:
        assert wire.api_versions(c, 0).error_code == 0
    got = consume(broker, seeded, 0, 0, n)
    assert [g.value for g in got] == [f"s{i}".encode() for i in range(n)]
    after = produce_ok(broker, seeded, [{"value": b"after-bad-input", "partition": 0}])
    assert after[0].offset == watermarks(broker, seeded, 0)[1] - 1
    assert consume(broker, seeded, 0, after[0].offset, 1)[0].value == b"after-bad-input"


def assert_closed_or_error_response(conn: wire.Conn, corr: int) -> None:
    """Kafka closes the connection on an unparsable request; an error response
    carrying our correlation id is also acceptable. Silence is not."""
    got = conn.wait_closed_or_frame(timeout=10)
    if got is None:
        return
    assert len(got) >= 8, f"connection neither closed nor answered within 10 s (got {got!r})"
    (size, rcorr) = struct.unpack(">ii", got[:8])
    assert rcorr == corr, f"unexpected response {got[:32]!r}"


# ---------------------------------------------------------------- framing


def test_oversized_frame_closes_connection_others_keep_working(broker_factory):
    b = broker_factory(socket_request_max_bytes=1048576)
    seeded = seed(b)
    other = b.conn()
    try:
        assert wire.api_versions(other, 0).error_code == 0
        with b.conn() as bad:
            bad.send_raw(struct.pack(">i", 2 * MiB) + wire.request_header(wire.API_VERSIONS, 0, 1) + b"\x00" * 1000)
            assert bad.wait_closed(timeout=10) is None, "a frame over socket.request.max.bytes must close the connection"
        # the already-open connection is unaffected
        assert wire.api_versions(other, 0).error_code == 0
        with b.conn() as c:
            md = wire.metadata_v1(c, [seeded])
            assert md.topics[seeded].error_code == 0
    finally:
        other.close()
    # a request just under the limit is served
    with b.conn() as c:
        res = wire.produce_v3(c, seeded, 0, wire.record_batch([wire.Record(None, b"y" * (900 * 1024))]))
        assert res[seeded][0].error_code == wire.NONE
    got = consume(b, seeded, 0, 5, 1)
    assert got[0].value == b"y" * (900 * 1024)
    assert_healthy(b, seeded, 5)


@pytest.mark.parametrize("case", ["truncated-body", "random-bytes", "shorter-than-header", "negative-size"])
def test_garbage_requests_do_not_hurt_the_broker(broker, case):
    seeded = seed(broker)
    other = broker.conn()
    try:
        with broker.conn() as bad:
            if case == "truncated-body":
                # a Produce v3 header, then a body that ends in the middle of transactional_id
                payload = wire.request_header(wire.PRODUCE, 3, 77) + b"\x00\x20ab"
                bad.send_raw(wire.frame(payload))
                assert_closed_or_error_response(bad, 77)
            elif case == "random-bytes":
                payload = struct.pack(">hhi", wire.METADATA, 1, 78) + os.urandom(200)
                bad.send_raw(wire.frame(payload))
                assert_closed_or_error_response(bad, 78)
            elif case == "shorter-than-header":
                bad.send_raw(wire.frame(b"\x00\x03\x00"))
                assert bad.wait_closed(timeout=10) is None
            else:
                bad.send_raw(struct.pack(">i", -5) + b"\x00" * 16)
                assert bad.wait_closed(timeout=10) is None
        assert wire.api_versions(other, 0).error_code == 0
    finally:
        other.close()
    assert_healthy(broker, seeded)


def test_frame_cut_off_by_client_disconnect(broker):
    seeded = seed(broker)
    with broker.conn() as bad:
        # announce 1000 bytes, send 30, go away
        bad.send_raw(struct.pack(">i", 1000) + wire.request_header(wire.METADATA, 1, 5) + b"\x00" * 5)
    with broker.conn() as bad2:
        bad2.send_raw(struct.pack(">i", 1000)[:2])
    assert_healthy(broker, seeded)


def test_unknown_api_key_closes_connection(broker):
    seeded = seed(broker)
    with broker.conn() as bad:
        bad.send_raw(wire.frame(wire.request_header(32000, 0, 9) + b"\x00" * 8))
        assert bad.wait_closed(timeout=10) is None, "Kafka closes the connection on an unknown API key"
    assert_healthy(broker, seeded)


def test_unsupported_version_of_known_api_closes_connection(broker):
    seeded = seed(broker)
    with broker.conn() as bad:
        bad.send_raw(wire.frame(wire.request_header(wire.METADATA, 999, 10, flexible=True) + b"\x01\x00\x00"))
        assert bad.wait_closed(timeout=10) is None, "Kafka closes the connection on an unsupported version"
    assert_healthy(broker, seeded)


# ---------------------------------------------------------------- ApiVersions


def test_api_versions_too_new_gets_v0_format_error_35(broker):
    with broker.conn() as c:
        # v99 is flexible by the rule (>= 3), so it goes with request header v2
        body = wire.compact_string("klamm-tests") + wire.compact_string("1.0") + wire.EMPTY_TAGS
        r = wire.api_versions_raw(c, 99, body, flexible=True)
        err = r.i16()
        entries = r.array(lambda rr: (rr.i16(), rr.i16(), rr.i16()))
        assert err == wire.UNSUPPORTED_VERSION
        assert entries is not None
        keys = {k: (lo, hi) for k, lo, hi in entries}
        assert 18 in keys, f"the fallback response must list ApiVersions (key 18): {entries}"
        lo, hi = keys[18]
        assert lo == 0 and hi >= 3
        assert r.remaining() == 0, "v0 format: nothing after the api_keys array"
        # the connection stays usable: the client retries at a version the broker listed
        again = wire.api_versions(c, min(hi, 3))
        assert again.error_code == 0
        assert 18 in again.api_keys


def test_api_versions_every_version_and_client_needs(broker):
    with broker.conn() as c:
        seen = {}
        for v in range(4):
            resp = wire.api_versions(c, v)
            assert resp.error_code == 0, f"ApiVersions v{v}"
            seen[v] = resp.api_keys
    assert seen[0] == seen[1] == seen[2] == seen[3]
    keys = seen[3]
    for k in (0, 1, 2, 3, 18, 19, 20, 22, 32, 33, 37, 44, 60):
        assert k in keys, f"API key {k} not advertised"
    lo, hi = keys[0]
    assert lo <= 3 <= 7 <= hi, f"Produce {lo}-{hi}: librdkafka 2.0.2 needs v3 (MsgVer2), kafkajs uses v7"
    lo, hi = keys[1]
    assert lo <= 4 and hi >= 11, f"Fetch {lo}-{hi}: librdkafka 2.0.2 needs v4, kafkajs/kcat use up to v11"
    assert keys[18][0] == 0 and keys[18][1] >= 3


# ---------------------------------------------------------------- records


def test_corrupted_crc_gets_corrupt_message(broker):
    seeded = seed(broker)
    with broker.conn() as c:
        wire.pick_version(wire.api_versions(c, 0).api_keys, wire.PRODUCE, 3, 3)
        bad = wire.record_batch([wire.Record(b"k", b"v" * 100)], corrupt_crc=True)
        res = wire.produce_v3(c, seeded, 0, bad)
        assert [(p.index, p.error_code) for p in res[seeded]] == [(0, wire.CORRUPT_MESSAGE)]
        # nothing was appended; a correct batch on the same connection gets offset 5
        good = wire.record_batch([wire.Record(b"k", b"good")])
        res = wire.produce_v3(c, seeded, 0, good)
        assert [(p.error_code, p.base_offset) for p in res[seeded]] == [(wire.NONE, 5)]
    assert consume(broker, seeded, 0, 5, 1)[0].value == b"good"
    assert_healthy(broker, seeded)


def test_wrong_magic_gets_invalid_record(broker):
    seeded = seed(broker)
    with broker.conn() as c:
        bad = wire.record_batch([wire.Record(b"k", b"v")], magic=1)
        res = wire.produce_v3(c, seeded, 0, bad)
        assert [(p.index, p.error_code) for p in res[seeded]] == [(0, wire.INVALID_RECORD)]
    assert watermarks(broker, seeded, 0) == (0, 5)
    assert_healthy(broker, seeded)


def test_raw_batch_with_headers_reads_back_through_clients(broker):
    seeded = seed(broker)
    recs = [wire.Record(b"raw-k", b"raw-v", [("h", b"1"), ("nul", None)], 0),
            wire.Record(None, None, [], 5),
            wire.Record(b"", b"\x00" * 10, [], 10)]
    with broker.conn() as c:
        res = wire.produce_v3(c, seeded, 0, wire.record_batch(recs, base_timestamp=1_650_000_000_000))
        assert [(p.error_code, p.base_offset) for p in res[seeded]] == [(wire.NONE, 5)]
    got = consume(broker, seeded, 0, 5, 3)
    assert [(g.offset, g.key, g.value) for g in got] == [(5, b"raw-k", b"raw-v"), (6, None, None), (7, b"", b"\x00" * 10)]
    assert got[0].headers == [("h", b"1"), ("nul", None)]
    assert [g.timestamp[1] for g in got] == [1_650_000_000_000, 1_650_000_000_005, 1_650_000_000_010]


def test_batch_over_topic_max_message_bytes_gets_message_too_large(broker):
    seeded = seed(broker)
    t = unique_topic("small")
    with broker.conn() as c:
        v = wire.pick_version(wire.api_versions(c, 0).api_keys, wire.CREATE_TOPICS, 2, 4)
        res = wire.create_topics(c, [(t, 1, 1, {"max.message.bytes": "1024"})], version=v)
        assert res[t].error_code == wire.NONE, res[t]
    wait_for_leaders(broker, t, 1)
    with broker.conn() as c:
        res = wire.produce_v3(c, t, 0, wire.record_batch([wire.Record(b"k", b"x" * 4000)]))
        assert [(p.index, p.error_code) for p in res[t]] == [(0, wire.MESSAGE_TOO_LARGE)]
        res = wire.produce_v3(c, t, 0, wire.record_batch([wire.Record(b"k", b"x" * 500)]))
        assert [(p.error_code, p.base_offset) for p in res[t]] == [(wire.NONE, 0)]
    assert watermarks(broker, t, 0) == (0, 1)
    assert_healthy(broker, seeded)


def test_batch_over_broker_message_max_bytes_gets_message_too_large(broker_factory):
    b = broker_factory(message_max_bytes=2048)
    seeded = seed(b)
    with b.conn() as c:
        res = wire.produce_v3(c, seeded, 0, wire.record_batch([wire.Record(b"k", b"z" * 5000)]))
        assert [(p.index, p.error_code) for p in res[seeded]] == [(0, wire.MESSAGE_TOO_LARGE)]
    assert watermarks(b, seeded, 0) == (0, 5)
    assert_healthy(b, seeded)


# ---------------------------------------------------------------- topic names


def test_invalid_topic_names_get_invalid_topic_exception(broker):
    seeded = seed(broker)
    bad_names = ["bad/name", "a" * 250, ".", "..", "", "has space", "ünïcode"]
    ok_name = "b" * 249
    with broker.conn() as c:
        v = wire.pick_version(wire.api_versions(c, 0).api_keys, wire.CREATE_TOPICS, 2, 4)
        res = wire.create_topics(c, [(n, 1, 1, {}) for n in bad_names] + [(ok_name, 1, 1, {})], version=v)
    for n in bad_names:
        assert n in res, f"no result for {n!r}"
        assert res[n].error_code == wire.INVALID_TOPIC_EXCEPTION, f"{n!r}: {res[n]}"
    assert res[ok_name].error_code == wire.NONE, "a 249-character name is valid"
    with broker.conn() as c:
        md = wire.metadata_v1(c, None)
        assert ok_name in md.topics
        assert not any(n in md.topics for n in bad_names)
    assert_healthy(broker, seeded)
