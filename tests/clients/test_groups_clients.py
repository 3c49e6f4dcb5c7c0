"""Group-based consumption (subscribe, commit, resume) through the stock clients.

Consumer groups are served, so a broker that stops advertising FindCoordinator
(API key 10) fails these tests instead of skipping them.
"""

from __future__ import annotations

import base64
import time

import pytest
from confluent_kafka import Consumer
from kafka import KafkaConsumer

from conftest import ok, run_kjs, unique_topic
from helpers import create_topic, produce_ok

FIND_COORDINATOR = 10


@pytest.fixture
def group_broker(broker):
    keys = broker.api_versions()
    assert FIND_COORDINATOR in keys, \
        "broker does not advertise FindCoordinator (API key 10): consumer groups are not served"
    return broker


def _seed(broker, topic, n=30, partitions=3):
    create_topic(broker, topic, partitions=partitions)
    produce_ok(broker, topic, [{"key": f"k{i}".encode(), "value": f"v{i}".encode(), "partition": i % partitions}
                               for i in range(n)])


def test_kafkajs_consumer_run_reads_everything(group_broker, topic):
    _seed(group_broker, topic)
    r = run_kjs(group_broker, [{"op": "consumeGroup", "topic": topic, "groupId": unique_topic("g"),
                                "count": 30, "timeoutMs": 60000}], timeout=120)
    msgs = ok(r[0])["messages"]
    assert sorted(base64.b64decode(m["value"]["b64"]) for m in msgs) == sorted(f"v{i}".encode() for i in range(30))


def _ck_group_consumer(broker, group):
    return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "session.timeout.ms": 10000})


def _ck_read(c, n, timeout=60):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += [m for m in c.consume(n - len(out), 0.5) if not m.error()]
    return out


def test_confluent_subscribe_commit_and_resume(group_broker, topic):
    _seed(group_broker, topic)
    group = unique_topic("g")
    c = _ck_group_consumer(group_broker, group)
    try:
        c.subscribe([topic])
        first = _ck_read(c, 30)
        assert sorted(m.value() for m in first) == sorted(f"v{i}".encode() for i in range(30))
        c.commit(asynchronous=False)
    finally:
        c.close()
    produce_ok(group_broker, topic, [{"value": b"later", "partition": 1}])
    c = _ck_group_consumer(group_broker, group)
    try:
        c.subscribe([topic])
        rest = _ck_read(c, 1)
        assert [(m.partition(), m.offset(), m.value()) for m in rest] == [(1, 10, b"later")]
    finally:
        c.close()


def test_kafka_python_group_consumer(group_broker, topic):
    _seed(group_broker, topic)
    c = KafkaConsumer(topic, bootstrap_servers=group_broker.bootstrap, group_id=unique_topic("g"),
                      auto_offset_reset="earliest", enable_auto_commit=False, request_timeout_ms=20000)
    try:
        out = []
        deadline = time.monotonic() + 60
        while len(out) < 30 and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out += recs
        c.commit()
    finally:
        c.close()
    assert sorted(r.value for r in out) == sorted(f"v{i}".encode() for i in range(30))


def test_offset_metadata_limit_follows_broker_config(broker_factory, topic):
    """offset.metadata.max.bytes: longer commit metadata gets
    OFFSET_METADATA_TOO_LARGE, shorter metadata comes back on fetch."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition
    broker = broker_factory({"offset.metadata.max.bytes": "64"})
    create_topic(broker, topic)
    produce_ok(broker, topic, [{"value": b"v%d" % i} for i in range(3)])
    group = unique_topic("g-meta")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        errors = []
        try:
            result = c.commit(offsets=[TopicPartition(topic, 0, 2, metadata="m" * 100)], asynchronous=False)
            errors = [tp.error for tp in result if tp.error is not None]
        except KafkaException as e:
            errors = [e.args[0]]
        assert errors and errors[0].code() == KafkaError.OFFSET_METADATA_TOO_LARGE, errors
        # (librdkafka sends the metadata string with its NUL terminator, so stay below the limit.)
        c.commit(offsets=[TopicPartition(topic, 0, 2, metadata="m" * 40)], asynchronous=False)
        committed = c.committed([TopicPartition(topic, 0)], timeout=20)
        assert committed[0].offset == 2 and committed[0].metadata == "m" * 40
    finally:
        c.close()
