"""kcat (Debian's 1.7.1, librdkafka 2.0.2) against a single klamm node."""

from __future__ import annotations

import json
import os

from conftest import run_kcat, unique_topic, wait_until
from helpers import consume, create_topic, pattern_bytes, produce_ok

# One record per message: a text line "partition offset timestamp keylen vallen headers"
# followed by the raw key and value bytes (kcat prints sizes -1 for null).
FMT = "%p %o %T %K %S %h\\n%k%s"


def parse_records(out: bytes) -> list[dict]:
    recs = []
    pos = 0
    while pos < len(out):
        nl = out.index(b"\n", pos)
        fields = out[pos:nl].decode().split(" ", 5)
        p, o, ts, klen, vlen = (int(x) for x in fields[:5])
        headers = fields[5] if len(fields) > 5 else ""
        pos = nl + 1
        key = out[pos:pos + max(klen, 0)]
        pos += max(klen, 0)
        val = out[pos:pos + max(vlen, 0)]
        pos += max(vlen, 0)
        recs.append({"partition": p, "offset": o, "ts": ts, "key": None if klen < 0 else key,
                     "value": None if vlen < 0 else val, "headers": headers})
    return recs


def kcat_consume(broker, topic, *extra: str, partition: int | None = 0) -> list[dict]:
    args = ["-b", broker.bootstrap, "-C", "-t", topic, "-e", "-q", "-f", FMT.replace("\\n", "\n")]
    if partition is not None:
        args += ["-p", str(partition)]
    return parse_records(run_kcat(args + list(extra)).stdout)


def test_metadata_lists_broker_and_topics(broker):
    t1, t2 = unique_topic("kc"), unique_topic("kc")
    create_topic(broker, t1, partitions=3)
    create_topic(broker, t2, partitions=1)
    text = run_kcat(["-b", broker.bootstrap, "-L"]).stdout.decode()
    assert f"broker 1 at 127.0.0.1:{broker.port}" in text
    assert f'topic "{t1}" with 3 partitions' in text
    assert f'topic "{t2}" with 1 partitions' in text
    md = json.loads(run_kcat(["-b", broker.bootstrap, "-L", "-J"]).stdout)
    assert md["brokers"] == [{"id": 1, "name": f"127.0.0.1:{broker.port}"}]
    assert md["controllerid"] == 1
    topics = {t["topic"]: t for t in md["topics"]}
    assert t1 in topics and t2 in topics
    parts = sorted(topics[t1]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["leader"] == 1
        assert p["replicas"] == [{"id": 1}]
        assert p["isrs"] == [{"id": 1}]
    assert "error" not in topics[t1]
    # single-topic query
    one = json.loads(run_kcat(["-b", broker.bootstrap, "-L", "-J", "-t", t2]).stdout)
    assert [t["topic"] for t in one["topics"]] == [t2]


def test_produce_keys_headers_and_consume_in_order(broker, topic):
    create_topic(broker, topic, partitions=1)
    lines = [f"key{i}:value {i} with spaces" for i in range(100)]
    run_kcat(["-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K:", "-H", "source=kcat", "-H", "run=1"],
             input=("\n".join(lines) + "\n").encode())
    recs = kcat_consume(broker, topic)
    assert [r["offset"] for r in recs] == list(range(100))
    assert [r["key"] for r in recs] == [f"key{i}".encode() for i in range(100)]
    assert [r["value"] for r in recs] == [f"value {i} with spaces".encode() for i in range(100)]
    assert all(r["headers"] == "source=kcat,run=1" for r in recs), recs[0]["headers"]
    assert all(r["ts"] > 1_600_000_000_000 for r in recs)
    # JSON envelope: the same data through kcat's -J consumer output
    js = [json.loads(line) for line in run_kcat(["-b", broker.bootstrap, "-C", "-t", topic, "-e", "-q", "-J", "-c", "3"])
          .stdout.decode().splitlines() if line.strip()]
    assert [(j["offset"], j["key"], j["payload"]) for j in js] == [(i, f"key{i}", f"value {i} with spaces") for i in range(3)]
    assert js[0]["headers"] == ["source", "kcat", "run", "1"]
    assert js[0]["partition"] == 0 and js[0]["tstype"] == "create"


def test_binary_file_values_byte_exact(broker, topic, tmp_path):
    create_topic(broker, topic, partitions=1, config={"max.message.bytes": 4 * 1024 * 1024})
    blobs = [bytes(range(256)) * 3 + b"\n\r\n\x00", os.urandom(70_000), pattern_bytes(1024 * 1024)]
    files = []
    for i, b in enumerate(blobs):
        f = tmp_path / f"blob{i}.bin"
        f.write_bytes(b)
        files.append(str(f))
    # each file given as an argument is one message
    run_kcat(["-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-k", "blobkey",
              "-X", "message.max.bytes=8388608", *files])
    recs = kcat_consume(broker, topic, "-X", "fetch.message.max.bytes=2097152")
    assert [r["offset"] for r in recs] == [0, 1, 2]
    assert [r["key"] for r in recs] == [b"blobkey"] * 3
    for b, r in zip(blobs, recs):
        assert len(r["value"]) == len(b)
        assert r["value"] == b
    # a librdkafka consumer sees the same bytes
    got = consume(broker, topic, 0, 0, 3)
    assert [g.value for g in got] == blobs


def test_null_values_and_empty_keys(broker, topic):
    create_topic(broker, topic, partitions=1)
    # -Z: empty key/value are sent as NULL
    run_kcat(["-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K:", "-Z"],
             input=b"k1:v1\nk2:\n:v3\n")
    recs = kcat_consume(broker, topic)
    assert [(r["key"], r["value"]) for r in recs] == [(b"k1", b"v1"), (b"k2", None), (None, b"v3")]
    got = consume(broker, topic, 0, 0, 3)
    assert [(g.key, g.value) for g in got] == [(b"k1", b"v1"), (b"k2", None), (None, b"v3")]


def test_offsets_beginning_specific_relative_and_count(broker, topic):
    create_topic(broker, topic, partitions=1)
    run_kcat(["-b", broker.bootstrap, "-P", "-t", topic, "-p", "0"],
             input=b"".join(f"m{i}\n".encode() for i in range(10)))
    val = lambda rs: [r["value"] for r in rs]  # noqa: E731
    assert val(kcat_consume(broker, topic, "-o", "beginning")) == [f"m{i}".encode() for i in range(10)]
    assert val(kcat_consume(broker, topic, "-o", "7")) == [b"m7", b"m8", b"m9"]
    assert val(kcat_consume(broker, topic, "-o", "-2")) == [b"m8", b"m9"]
    assert val(kcat_consume(broker, topic, "-o", "3", "-c", "2")) == [b"m3", b"m4"]
    assert kcat_consume(broker, topic, "-o", "end") == []


def test_offset_by_timestamp(broker, topic):
    create_topic(broker, topic, partitions=1)
    ts0 = 1_650_000_000_000
    produce_ok(broker, topic, [{"value": f"t{i}".encode(), "timestamp": ts0 + i * 10_000, "partition": 0}
                               for i in range(6)], {"linger.ms": 0, "batch.num.messages": 1})
    recs = kcat_consume(broker, topic, "-o", f"s@{ts0 + 25_000}")
    assert [r["offset"] for r in recs] == [3, 4, 5]
    assert [r["ts"] for r in recs] == [ts0 + 30_000, ts0 + 40_000, ts0 + 50_000]


def test_partition_selection(broker, topic):
    create_topic(broker, topic, partitions=3)
    for p in range(3):
        run_kcat(["-b", broker.bootstrap, "-P", "-t", topic, "-p", str(p)],
                 input=b"".join(f"p{p}-{i}\n".encode() for i in range(p + 2)))
    for p in range(3):
        recs = kcat_consume(broker, topic, partition=p)
        assert [r["value"] for r in recs] == [f"p{p}-{i}".encode() for i in range(p + 2)]
        assert all(r["partition"] == p for r in recs)
    # all partitions at once: every record exactly once
    everything = kcat_consume(broker, topic, partition=None)
    assert sorted((r["partition"], r["offset"]) for r in everything) == \
        [(p, o) for p in range(3) for o in range(p + 2)]


def test_kcat_and_python_client_interoperate(broker, topic):
    create_topic(broker, topic, partitions=1)
    produce_ok(broker, topic, [{"key": b"from-python", "value": b"\x00\x01binary\xff", "partition": 0,
                                "headers": [("h1", b"a")]}])
    run_kcat(["-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K:"], input=b"from-kcat:text\n")
    recs = kcat_consume(broker, topic)
    assert [(r["key"], r["value"]) for r in recs] == [(b"from-python", b"\x00\x01binary\xff"), (b"from-kcat", b"text")]
    assert recs[0]["headers"] == "h1=a"
    wait_until(lambda: len(consume(broker, topic, 0, 1, 1)) == 1, what="python consumer sees kcat record")
