"""Fetch responses are sent straight from the log files (sendfile, with the records left out
of the encoded response and spliced in by the connection). These tests read back, byte for
byte, the cases where that path has edges, with librdkafka (confluent-kafka) and the pure
Python kafka-python, whose fetch parsers are independent of each other:

- many small segments, so fetches start and end at segment boundaries (one response region
  per partition, cut at a segment's end);
- several partitions in one response (several regions, each in its place among the
  partition headers);
- a record larger than the client's per-partition fetch size (KIP-74: the first batch goes
  whole);
- small fetch sizes (responses cut at batch boundaries found through the offset index);
- a compacted topic read after the cleaner rewrote its segments.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition

from helpers import MiB, consume_many, create_topic, pattern_bytes, produce_ok

PARTITIONS = 4


def _messages(n: int) -> list[dict]:
    msgs = []
    for i in range(n):
        size = 300_000 if i == n // 2 else 1 + (i * 97) % 3000
        msgs.append({"key": f"k{i % 13}".encode(), "value": pattern_bytes(size, seed=i),
                     "partition": i % PARTITIONS, "headers": [("i", str(i).encode())]})
    return msgs


def _kafka_python_read(broker, topic: str, count: int, **conf) -> list:
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=20000, **conf)
    try:
        c.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        for p in range(PARTITIONS):
            c.seek(TopicPartition(topic, p), 0)
        out = []
        deadline = time.monotonic() + 60
        while len(out) < count and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        return out
    finally:
        c.close()


def _read_to_end(broker, topic: str) -> list:
    """Partition 0 from its start to its high watermark (the last offset always survives
    compaction: it is in the active segment), with kafka-python, in offset order."""
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=20000)
    tp = TopicPartition(topic, 0)
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = c.end_offsets([tp])[tp]
        out = []
        deadline = time.monotonic() + 30
        while (not out or out[-1].offset < end - 1) and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        assert out and out[-1].offset == end - 1, f"read up to {out[-1].offset if out else None}, end {end}"
        return out
    finally:
        c.close()


def test_segments_partitions_and_fetch_sizes_read_back_exactly(broker_factory, topic):
    b = broker_factory()
    create_topic(b, topic, partitions=PARTITIONS, config={"internal.segment.bytes": "16384", "max.message.bytes": str(MiB)})
    msgs = _messages(400)
    reports = produce_ok(b, topic, msgs, {"linger.ms": 0, "batch.num.messages": 7})
    expected = {(r.partition, r.offset): m for r, m in zip(reports, msgs)}
    assert len(expected) == len(msgs)

    # librdkafka wants fetch.max.bytes >= message.max.bytes (a client-side setting here).
    for conf in ({}, {"fetch.max.bytes": 5000, "message.max.bytes": 5000, "max.partition.fetch.bytes": 3000},
                 {"fetch.max.bytes": 100_000, "message.max.bytes": 100_000, "max.partition.fetch.bytes": 20_000}):
        got = consume_many(b, [(topic, p, 0) for p in range(PARTITIONS)], len(msgs), timeout=60, conf=conf)
        assert len(got) == len(msgs), conf
        for g in got:
            m = expected[(g.partition, g.offset)]
            assert (g.key, g.value, g.headers) == (m["key"], m["value"], m["headers"]), (conf, g.partition, g.offset)

    for conf in ({}, {"max_partition_fetch_bytes": 4000, "fetch_max_bytes": 10_000}):
        got = _kafka_python_read(b, topic, len(msgs), **conf)
        assert sorted((r.partition, r.offset) for r in got) == sorted(expected), conf
        for r in got:
            m = expected[(r.partition, r.offset)]
            assert (r.key, r.value) == (m["key"], m["value"]), (conf, r.partition, r.offset)


def test_compacted_topic_reads_back_after_cleaning(broker_factory, topic):
    b = broker_factory({"log.cleaner.backoff.ms": "200"})
    create_topic(b, topic, partitions=1, config={
        "cleanup.policy": "compact", "internal.segment.bytes": "8192", "min.cleanable.dirty.ratio": "0.01"})
    rounds = 6
    msgs = [{"key": f"user-{i % 20}".encode(), "value": pattern_bytes(200 + i % 50, seed=i), "partition": 0}
            for i in range(20 * rounds)]
    for start in range(0, len(msgs), 20):
        produce_ok(b, topic, msgs[start:start + 20], {"linger.ms": 0})
        time.sleep(0.2)
    latest = {m["key"]: m["value"] for m in msgs}
    # Wait (bounded) until the cleaner has rewritten the old segments: a full read then
    # has far fewer records than were written, and every key's value is its latest.
    deadline = time.monotonic() + 60
    while True:
        got = _read_to_end(b, topic)
        values = {}
        for r in got:
            values[r.key] = r.value
        if len(got) < len(msgs) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(got) < len(msgs), "the cleaner never compacted the topic"
    assert values == latest
