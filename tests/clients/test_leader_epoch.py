"""Leader epochs seen by librdkafka (confluent-kafka): position validation with
OffsetForLeaderEpoch (KIP-320) after a leader change.

A restart of a single node moves each partition's leadership away and back
(the re-registration fences the old incarnation), so every restart raises the
leader epochs by 2. librdkafka >= 2.1 notices the new epoch in Metadata and,
because the broker advertises OffsetForLeaderEpoch, asks the leader where the
epoch of its position ended before fetching on. A wrong answer makes it
believe the log was truncated and reset the position (auto.offset.reset),
which these tests would see as records read twice.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Consumer, TopicPartition, OFFSET_END

from conftest import unique_topic
from helpers import create_topic, produce_ok, wait_for_leaders


class _Captured(logging.Handler):
    """Keeps librdkafka's log lines (delivered through the consumer's logger)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._guard = threading.Lock()  # not `lock`: Handler.handle() holds that one around emit()

    def emit(self, record):
        with self._guard:
            self.lines.append(record.getMessage())

    def grep(self, needle: str) -> list[str]:
        with self._guard:
            return [line for line in self.lines if needle.lower() in line.lower()]


def _consumer(broker, captured: _Captured) -> Consumer:
    log = logging.getLogger(f"rdkafka-{id(captured)}")
    log.setLevel(logging.DEBUG)
    log.addHandler(captured)
    log.propagate = False
    return Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": unique_topic("g"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "topic.metadata.refresh.interval.ms": 500,
        "debug": "fetch,topic",
    }, logger=log)


def _read(c: Consumer, want: int, timeout: float = 30.0, settle: float = 2.0) -> list[tuple[int, bytes]]:
    """Polls until `want` records arrived, then `settle` seconds more (to catch duplicates)."""
    got: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout
    settle_until = None
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            got.append((m.offset(), m.value()))
        if len(got) >= want and settle_until is None:
            settle_until = time.monotonic() + settle
        if settle_until is not None and time.monotonic() > settle_until:
            break
    return got


def _values(prefix: str, n: int) -> list[dict]:
    return [{"value": f"{prefix}-{i}".encode(), "partition": 0} for i in range(n)]


def test_position_survives_leader_epoch_change(broker):
    """Records consumed in epoch 0; after the leader change the position is
    validated against the new leader and consumption goes on without re-reads."""
    topic = unique_topic("epoch")
    create_topic(broker, topic, 1)
    produce_ok(broker, topic, _values("before", 5))
    captured = _Captured()
    c = _consumer(broker, captured)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        first = _read(c, 5, settle=0.5)
        assert [o for o, _ in first] == [0, 1, 2, 3, 4]
        broker.restart()
        wait_for_leaders(broker, topic, 1)
        produce_ok(broker, topic, _values("after", 3))
        rest = _read(c, 3)
        assert [o for o, _ in rest] == [5, 6, 7], f"read {rest}"
        assert [v for _, v in rest] == [b"after-0", b"after-1", b"after-2"]
        assert captured.grep("epoch validation succeeded"), \
            "librdkafka never validated its position:\n" + "\n".join(captured.lines[-40:])
        assert not captured.grep("truncation"), "\n".join(captured.grep("truncation"))
    finally:
        c.close()


def test_position_in_an_epoch_without_records(broker):
    """A position taken from ListOffsets carries the current leader epoch even
    though no record of that epoch exists yet. After the next leader change
    the leader must still say where that epoch ends (at the log end), or
    librdkafka would reset to the earliest offset and read everything again."""
    topic = unique_topic("epoch")
    create_topic(broker, topic, 1)
    produce_ok(broker, topic, _values("old", 5))
    broker.restart()
    wait_for_leaders(broker, topic, 1)
    captured = _Captured()
    c = _consumer(broker, captured)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        assert _read(c, 1, timeout=3.0) == []
        broker.restart()
        wait_for_leaders(broker, topic, 1)
        # Validation happens before anything is written in the new epoch: the position
        # (offset 5) carries an epoch in which nothing was written. As in Kafka, becoming
        # leader records the new epoch's start (5), which replaces the empty older epochs
        # starting there, so the answer is the largest epoch below with its end: offset 5.
        deadline = time.monotonic() + 30
        while not captured.grep("validation succeeded") and time.monotonic() < deadline:
            assert c.poll(0.2) is None
        assert captured.grep("validation succeeded: broker end offset 5 "), \
            "librdkafka did not validate its position as expected:\n" + "\n".join(captured.lines[-40:])
        produce_ok(broker, topic, _values("new", 3))
        rest = _read(c, 3)
        assert [o for o, _ in rest] == [5, 6, 7], f"read {rest}"
        assert not captured.grep("truncation"), "\n".join(captured.grep("truncation"))
    finally:
        c.close()
