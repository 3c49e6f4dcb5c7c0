"""confluent-kafka (librdkafka) helpers shared by the test files.

All loops are bounded by a deadline; every client is closed before returning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

MiB = 1024 * 1024


def pattern_bytes(n: int, seed: int = 0) -> bytes:
    """Deterministic non-repeating-looking bytes: byte i = (i * 31 + 7 + seed) % 251.

    (seed 0 matches the {"pattern": n} value of tests/clients/node/kjs.js.)
    """
    return bytes(((i * 31 + 7 + seed) % 251) for i in range(n))


def admin(broker, **conf) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000, **conf})


def create_topic(broker, name: str, partitions: int = 1, config: dict | None = None,
                 timeout: float = 30.0) -> None:
    """Creates a topic with confluent-kafka's AdminClient and waits until every
    partition has a leader in the metadata."""
    a = admin(broker)
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                   config={k: str(v) for k, v in (config or {}).items()})],
                         operation_timeout=timeout, request_timeout=timeout)
    fs[name].result(timeout=timeout)
    wait_for_leaders(broker, name, partitions, timeout=timeout)


def wait_for_leaders(broker, name: str, partitions: int, timeout: float = 30.0) -> None:
    a = admin(broker)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        last = t
        if t is not None and t.error is None and len(t.partitions) == partitions and \
                all(p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"topic {name} has no leader for all {partitions} partitions after {timeout}s: {last}")


@dataclass
class Delivered:
    partition: int
    offset: int
    error: KafkaError | None
    timestamp: tuple[int, int] | None = None
    key: bytes | None = None


def produce(broker, topic: str, msgs: list[dict], conf: dict | None = None,
            timeout: float = 60.0) -> list[Delivered]:
    """Produces msgs (dicts with value, key, headers, timestamp, partition) and
    returns one delivery report per message, in the order they were sent."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": int(timeout * 1000) - 5000, **(conf or {})})
    reports: list[Delivered | None] = [None] * len(msgs)

    def cb(i):
        def _cb(err, m):
            reports[i] = Delivered(m.partition(), m.offset(), err, m.timestamp(), m.key())
        return _cb

    deadline = time.monotonic() + timeout
    for i, m in enumerate(msgs):
        kw = {k: m[k] for k in ("key", "headers", "timestamp", "partition") if k in m and m[k] is not None}
        while True:
            try:
                p.produce(topic, value=m.get("value"), on_delivery=cb(i), **kw)
                break
            except BufferError:  # local queue full: serve callbacks and retry (bounded)
                if time.monotonic() > deadline:
                    raise
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(max(1.0, deadline - time.monotonic()))
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"
    assert all(r is not None for r in reports)
    return reports  # type: ignore[return-value]


def produce_ok(broker, topic: str, msgs: list[dict], conf: dict | None = None,
               timeout: float = 60.0) -> list[Delivered]:
    reports = produce(broker, topic, msgs, conf, timeout)
    errors = [r.error for r in reports if r.error is not None]
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0]}"
    return reports


@dataclass
class Got:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] | None
    timestamp: tuple[int, int]


def consumer(broker, **conf) -> Consumer:
    return Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": "klamm-tests-assign",  # librdkafka requires one; no commits are made
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
        **conf,
    })


def consume(broker, topic: str, partition: int, offset: int, count: int,
            timeout: float = 30.0, conf: dict | None = None) -> list[Got]:
    """Reads `count` messages from topic/partition starting at `offset` with
    assign() (no group membership). Fails if fewer arrive within `timeout`."""
    return consume_many(broker, [(topic, partition, offset)], count, timeout, conf)


def consume_many(broker, tps: list[tuple[str, int, int]], count: int,
                 timeout: float = 30.0, conf: dict | None = None) -> list[Got]:
    c = consumer(broker, **(conf or {}))
    out: list[Got] = []
    try:
        c.assign([TopicPartition(t, p, o) for t, p, o in tps])
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            batch = c.consume(num_messages=min(10000, count - len(out)), timeout=0.5)
            for m in batch:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(m.error())
                out.append(Got(m.partition(), m.offset(), m.key(), m.value(), m.headers(), m.timestamp()))
    finally:
        c.close()
    assert len(out) >= count, f"got {len(out)} of {count} messages within {timeout}s"
    return out


def watermarks(broker, topic: str, partition: int, timeout: float = 10.0) -> tuple[int, int]:
    c = consumer(broker)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
    finally:
        c.close()
