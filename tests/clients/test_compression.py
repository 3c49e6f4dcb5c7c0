"""Compressed batches through stock clients: every codec produced by
librdkafka (confluent-kafka, kcat), kafkajs and kafka-python and read back by
all of them byte-exact; a topic's compression.type recompressing as Kafka
does; decompression bombs refused.
"""

from __future__ import annotations

import base64
import struct

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

import kafka_wire as wire
from conftest import ok, run_kcat, run_kjs
from helpers import consume, create_topic, pattern_bytes, produce_ok, watermarks

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
# kafkajs 2.2.4 ships gzip; snappy and lz4 come from kafkajs-snappy / kafkajs-lz4
# (installed by tests/setup.sh). Its zstd codec is a native addon we do not install.
KAFKAJS_CODECS = ("none", "gzip", "snappy", "lz4")


def stored_codecs(broker, topic: str, partition: int = 0) -> list[int]:
    """The codec bits of every batch in the partition's segment files, in offset order."""
    d = broker.data_dir / f"{topic}-{partition}"
    out = []
    for seg in sorted(d.glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            out.append(attributes & 0x07)
            pos += 12 + length
    return out


def sample_messages(n: int = 60) -> list[dict]:
    """Keys, headers, a null value, an empty value, a 200 KB value."""
    msgs = []
    for i in range(n):
        m = {"key": f"user-{i % 7}".encode(), "value": f'{{"order": {i}, "item": "widget"}}'.encode() * 3,
             "headers": [("trace", f"t{i}".encode()), ("empty", b"")]}
        msgs.append(m)
    msgs[5]["value"] = None
    msgs[6]["value"] = b""
    msgs[7]["value"] = pattern_bytes(200_000)
    return msgs


def check_confluent(broker, topic, msgs):
    got = consume(broker, topic, 0, 0, len(msgs))
    assert [(g.key, g.value) for g in got] == [(m["key"], m["value"]) for m in msgs]
    assert got[0].headers == [("trace", b"t0"), ("empty", b"")]


def check_kafka_python(broker, topic, msgs):
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000,
                      max_partition_fetch_bytes=10 << 20)
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        got = []
        for m in c:
            got.append(m)
            if len(got) == len(msgs):
                break
    finally:
        c.close()
    assert [(m.key, m.value) for m in got] == [(m["key"], m["value"]) for m in msgs]
    assert got[0].headers == [("trace", b"t0"), ("empty", b"")]


def from_kjs(v):
    """A key or value as kjs.js returns it ({"b64": ...} or null)."""
    return None if v is None else base64.b64decode(v["b64"])


def to_kjs(v: bytes | None):
    return None if v is None else {"b64": base64.b64encode(v).decode()}


def check_kafkajs(broker, topic, msgs):
    res = run_kjs(broker, [{"op": "fetch", "topic": topic, "partition": 0, "offset": 0, "untilOffset": len(msgs)}])
    got = ok(res[0])["messages"]
    assert [(from_kjs(m["key"]), from_kjs(m["value"])) for m in got] == [(m["key"], m["value"]) for m in msgs]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_librdkafka_codec_read_by_every_client(broker, topic, codec):
    create_topic(broker, topic)
    msgs = sample_messages()
    produce_ok(broker, topic, msgs, conf={"compression.type": codec, "linger.ms": 50})
    # compression.type=producer (the default): stored exactly as the client compressed it.
    codecs = stored_codecs(broker, topic)
    assert codecs and all(c == CODECS[codec] for c in codecs), codecs
    check_confluent(broker, topic, msgs)
    check_kafka_python(broker, topic, msgs)
    if codec in KAFKAJS_CODECS:
        check_kafkajs(broker, topic, msgs)
    out = run_kcat(["-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "0", "-c", "3", "-e",
                    "-f", "%o:%k:%s\\n"], timeout=60).stdout.decode().splitlines()
    assert out[0] == f"0:user-0:{msgs[0]['value'].decode()}"


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4"])
def test_kafkajs_codec_read_by_every_client(broker, topic, codec):
    create_topic(broker, topic)
    msgs = [{"key": m["key"], "value": m["value"]} for m in sample_messages(40)]
    steps = [{"op": "produce", "topic": topic, "compression": codec, "messages": [
        {"key": to_kjs(m["key"]), "value": to_kjs(m["value"]), "partition": 0} for m in msgs]}]
    ok(run_kjs(broker, steps)[0])
    assert set(stored_codecs(broker, topic)) == {CODECS[codec]}
    got = consume(broker, topic, 0, 0, len(msgs))
    assert [(g.key, g.value) for g in got] == [(m["key"], m["value"]) for m in msgs]
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000)
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        kp = [m for _, m in zip(range(len(msgs)), c)]
    finally:
        c.close()
    assert [(m.key, m.value) for m in kp] == [(m["key"], m["value"]) for m in msgs]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_codec_read_by_every_client(broker, topic, codec):
    create_topic(broker, topic)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, linger_ms=20)
    try:
        futures = [p.send(topic, key=f"k{i}".encode(), value=f"value-{i}".encode() * 20, partition=0,
                          headers=[("h", str(i).encode())]) for i in range(50)]
        p.flush(30)
        assert [f.get(timeout=30).offset for f in futures] == list(range(50))
    finally:
        p.close()
    assert set(stored_codecs(broker, topic)) == {CODECS[codec]}
    got = consume(broker, topic, 0, 0, 50)
    assert [(g.key, g.value, g.headers) for g in got] == \
        [(f"k{i}".encode(), f"value-{i}".encode() * 20, [("h", str(i).encode())]) for i in range(50)]
    if codec in KAFKAJS_CODECS:
        res = run_kjs(broker, [{"op": "fetch", "topic": topic, "partition": 0, "offset": 0, "untilOffset": 50}])
        assert [from_kjs(m["value"]) for m in ok(res[0])["messages"]] == [f"value-{i}".encode() * 20 for i in range(50)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_produces_compressed(broker, topic, codec):
    create_topic(broker, topic)
    lines = "".join(f"k{i}:line {i} " + "x" * 50 + "\n" for i in range(30)).encode()
    run_kcat(["-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K:", "-z", codec], input=lines, timeout=60)
    assert set(stored_codecs(broker, topic)) == {CODECS[codec]}
    got = consume(broker, topic, 0, 0, 30)
    assert [g.value for g in got] == [f"line {i} ".encode() + b"x" * 50 for i in range(30)]


@pytest.mark.parametrize("topic_codec,producer_codec", [
    ("gzip", "lz4"), ("zstd", "none"), ("uncompressed", "zstd"), ("snappy", "gzip"), ("lz4", "snappy"),
    ("producer", "gzip"),
])
def test_topic_compression_type_recompresses(broker, topic, topic_codec, producer_codec):
    create_topic(broker, topic, config={"compression.type": topic_codec})
    msgs = sample_messages(30)
    produce_ok(broker, topic, msgs, conf={"compression.type": producer_codec, "linger.ms": 50})
    want = {"producer": CODECS[producer_codec], "uncompressed": 0}.get(topic_codec, CODECS.get(topic_codec))
    assert set(stored_codecs(broker, topic)) == {want}
    check_confluent(broker, topic, msgs)
    check_kafka_python(broker, topic, msgs)
    if want != CODECS["zstd"]:  # what is stored is what kafkajs must decode
        check_kafkajs(broker, topic, msgs)


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_python_encoded_batches_and_bombs(broker, topic, codec):
    create_topic(broker, topic, config={"max.message.bytes": "100000"})
    recs = [wire.Record(b"k%d" % i, b"v%d" % i * 50, [("h", b"x")], i) for i in range(20)]
    with broker.conn() as c:
        # Encoded by Python's codec libraries (snappy in the Java client's xerial framing).
        res = wire.produce_v3(c, topic, 0, wire.record_batch(recs, codec=codec), version=7)
        assert [(p.error_code, p.base_offset) for p in res[topic]] == [(wire.NONE, 0)]
        # 1.5 MB of zeros compress below max.message.bytes (snappy, the weakest
        # codec here, to ~70 KB) but would inflate far past it.
        bomb = wire.record_batch([wire.Record(b"k", b"\0" * 1_500_000)], codec=codec)
        assert len(bomb) < 100_000
        res = wire.produce_v3(c, topic, 0, bomb, version=7)
        assert [p.error_code for p in res[topic]] == [wire.MESSAGE_TOO_LARGE]
        # Damaged compressed bytes (CRC fixed up) are refused, the broker keeps serving.
        good = bytearray(wire.record_batch(recs, codec=codec))
        good[70:80] = b"\xff" * 10
        body = bytes(good[21:])
        damaged = bytes(good[:17]) + struct.pack(">I", wire.crc32c(body)) + body
        res = wire.produce_v3(c, topic, 0, damaged, version=7)
        assert [p.error_code for p in res[topic]] in ([wire.CORRUPT_MESSAGE], [wire.INVALID_RECORD])
    assert watermarks(broker, topic, 0) == (0, 20)
    got = consume(broker, topic, 0, 0, 20)
    assert [(g.key, g.value, g.headers) for g in got] == [(r.key, r.value, [("h", b"x")]) for r in recs]
