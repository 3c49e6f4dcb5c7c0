"""Topic policies a user relies on, driven through stock clients: retention
deleting old segments (and consumers resetting past the new log start),
DeleteRecords, keyless records refused on compacted topics, timestamp bounds,
LogAppendTime.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
from kafka import KafkaAdminClient, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import InvalidRecordError, InvalidTimestampError

from conftest import wait_until
from helpers import admin, consumer, consume, create_topic, produce, produce_ok, watermarks

DAY_MS = 24 * 3600 * 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _alter_topic(broker, topic: str, **configs: str) -> None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(k.replace("_", "."), v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()])
    a = admin(broker)  # keep the handle alive until the future resolves
    a.incremental_alter_configs([resource])[resource].result(timeout=30)


def _delete_records_error(broker, topic: str, partition: int, offset: int) -> str:
    """DeleteRecords through confluent-kafka that must fail; returns the error text."""
    a = admin(broker)  # keep the handle alive until the future resolves
    futures = a.delete_records([TopicPartition(topic, partition, offset)], request_timeout=30, operation_timeout=30)
    with pytest.raises(Exception) as info:
        list(futures.values())[0].result(timeout=30)
    return str(info.value)


def test_retention_ms_deletes_old_segments_and_consumers_reset(broker_factory, topic):
    broker = broker_factory({"log.retention.check.interval.ms": "300"})
    # Small segments so that retention has whole segments to delete.
    create_topic(broker, topic, config={"internal.segment.bytes": "2000"})
    old = _now_ms() - 2 * DAY_MS
    # linger 0 and one flush per record: one batch per record, several segments.
    for i in range(30):
        produce_ok(broker, topic, [{"key": b"k", "value": b"old-%02d" % i + b"." * 100, "timestamp": old + i}],
                   conf={"linger.ms": 0})
    produce_ok(broker, topic, [{"key": b"k", "value": b"new-%02d" % i, "timestamp": _now_ms()} for i in range(10)])
    assert watermarks(broker, topic, 0) == (0, 40)

    # Lowering retention.ms on the live topic deletes the expired segments at the next check.
    _alter_topic(broker, topic, retention_ms=str(3600 * 1000))
    low = wait_until(lambda: watermarks(broker, topic, 0)[0] or None, 20, what="log start offset moves")
    assert 0 < low <= 30, low
    assert watermarks(broker, topic, 0)[1] == 40
    # Every record of the unexpired tail is still there.
    got = consume(broker, topic, 0, low, 40 - low)
    assert [g.offset for g in got] == list(range(low, 40))
    assert [g.value for g in got][-10:] == [b"new-%02d" % i for i in range(10)]

    # A consumer positioned before the log start: auto.offset.reset=earliest
    # resets to it, auto.offset.reset=error reports the out-of-range position.
    got = consume(broker, topic, 0, 0, 1, conf={"auto.offset.reset": "earliest"})
    assert got[0].offset == low
    c = consumer(broker, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error():
                err = m.error()
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
    finally:
        c.close()

    # The new log start survives a restart.
    broker.restart()
    assert watermarks(broker, topic, 0) == (low, 40)


def test_delete_records_with_confluent_and_kafka_python(broker, topic):
    create_topic(broker, topic, partitions=2)
    produce_ok(broker, topic, [{"value": b"v%d" % i, "partition": i % 2} for i in range(40)])
    assert watermarks(broker, topic, 0) == (0, 20)

    # confluent-kafka (librdkafka DeleteRecords).
    a = admin(broker)
    futures = a.delete_records([TopicPartition(topic, 0, 7)], request_timeout=30, operation_timeout=30)
    (tp, fut), = futures.items()
    assert fut.result(timeout=30).low_watermark == 7
    assert watermarks(broker, topic, 0) == (7, 20)
    got = consume(broker, topic, 0, 0, 13, conf={"auto.offset.reset": "earliest"})
    assert [g.offset for g in got] == list(range(7, 20))
    assert got[0].value == b"v14"

    # Past the high watermark: OFFSET_OUT_OF_RANGE, nothing changes.
    error = _delete_records_error(broker, topic, 0, 21)
    assert "OFFSET_OUT_OF_RANGE" in error or "out of range" in error.lower()
    assert watermarks(broker, topic, 0) == (7, 20)

    # kafka-python, offset -1 = up to the high watermark, on the other partition.
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        result = kp.delete_records({KpTopicPartition(topic, 1): -1})
    finally:
        kp.close()
    assert watermarks(broker, topic, 1) == (20, 20)
    assert result[KpTopicPartition(topic, 1)]["low_watermark"] == 20
    # Producing continues at the old end; the log start survives a restart.
    produce_ok(broker, topic, [{"value": b"after", "partition": 1}])
    broker.restart()
    assert watermarks(broker, topic, 0) == (7, 20)
    assert watermarks(broker, topic, 1) == (20, 21)
    assert consume(broker, topic, 1, 20, 1)[0].value == b"after"


def test_delete_records_refused_on_compact_only_topic(broker, topic):
    create_topic(broker, topic, config={"cleanup.policy": "compact"})
    produce_ok(broker, topic, [{"key": b"k", "value": b"v"}])
    error = _delete_records_error(broker, topic, 0, 1)
    assert "POLICY_VIOLATION" in error or "policy" in error.lower()
    assert watermarks(broker, topic, 0) == (0, 1)


def test_keyless_records_are_refused_on_compacted_topics(broker, topic):
    create_topic(broker, topic, config={"cleanup.policy": "compact"})
    # confluent-kafka: the batch with a keyless record fails with INVALID_RECORD.
    reports = produce(broker, topic, [{"value": b"no key"}], conf={"enable.idempotence": False, "retries": 0})
    assert reports[0].error is not None and reports[0].error.code() == KafkaError.INVALID_RECORD, reports[0].error
    produce_ok(broker, topic, [{"key": b"k1", "value": b"with key"}])
    # kafka-python gets the same error class.
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    try:
        with pytest.raises(InvalidRecordError):
            p.send(topic, value=b"no key either").get(timeout=30)
        assert p.send(topic, key=b"k2", value=b"ok").get(timeout=30).offset == 1
    finally:
        p.close()
    # Nothing of the refused batches was stored.
    assert watermarks(broker, topic, 0) == (0, 2)
    # A topic with compact,delete refuses keyless records too; delete alone accepts them.
    _alter_topic(broker, topic, cleanup_policy="compact,delete")
    reports = produce(broker, topic, [{"value": b"still no key"}], conf={"enable.idempotence": False, "retries": 0})
    assert reports[0].error is not None and reports[0].error.code() == KafkaError.INVALID_RECORD
    _alter_topic(broker, topic, cleanup_policy="delete")
    produce_ok(broker, topic, [{"value": b"keyless is fine now"}])


def test_timestamps_outside_the_topic_bounds_are_refused(broker, topic):
    create_topic(broker, topic, config={"message.timestamp.before.max.ms": str(3600 * 1000),
                                        "message.timestamp.after.max.ms": str(3600 * 1000)})
    now = _now_ms()
    reports = produce(broker, topic, [{"value": b"too old", "timestamp": now - DAY_MS}],
                      conf={"enable.idempotence": False, "retries": 0})
    assert reports[0].error is not None and reports[0].error.code() == KafkaError.INVALID_TIMESTAMP, reports[0].error
    reports = produce(broker, topic, [{"value": b"too new", "timestamp": now + DAY_MS}],
                      conf={"enable.idempotence": False, "retries": 0})
    assert reports[0].error is not None and reports[0].error.code() == KafkaError.INVALID_TIMESTAMP
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    try:
        with pytest.raises(InvalidTimestampError):
            p.send(topic, value=b"kp too old", timestamp_ms=now - DAY_MS).get(timeout=30)
    finally:
        p.close()
    produce_ok(broker, topic, [{"value": b"in range", "timestamp": now - 60_000}])
    assert watermarks(broker, topic, 0) == (0, 1)
    # With LogAppendTime the producer's timestamp is replaced, not checked.
    _alter_topic(broker, topic, message_timestamp_type="LogAppendTime")
    before = _now_ms()
    produce_ok(broker, topic, [{"value": b"stamped by the broker", "timestamp": now - DAY_MS}])
    got = consume(broker, topic, 0, 1, 1)
    kind, ts = got[0].timestamp
    assert kind == 2 and before - 1000 <= ts <= _now_ms() + 1000, got[0].timestamp  # TIMESTAMP_LOG_APPEND_TIME


def test_incremental_alter_configs_append_subtract_and_validate_only(broker, topic):
    create_topic(broker, topic, config={"cleanup.policy": "delete"})
    a = admin(broker)

    def alter(op, key, value, validate_only=False):
        r = ConfigResource(ConfigResource.Type.TOPIC, topic,
                           incremental_configs=[ConfigEntry(key, value, incremental_operation=op)])
        a.incremental_alter_configs([r], validate_only=validate_only)[r].result(timeout=30)

    def current(key):
        r = ConfigResource(ConfigResource.Type.TOPIC, topic)
        return a.describe_configs([r])[r].result(timeout=30)[key].value

    alter(AlterConfigOpType.APPEND, "cleanup.policy", "compact")
    assert current("cleanup.policy") == "delete,compact"
    # validate_only checks but changes nothing.
    alter(AlterConfigOpType.SUBTRACT, "cleanup.policy", "delete", validate_only=True)
    assert current("cleanup.policy") == "delete,compact"
    alter(AlterConfigOpType.SUBTRACT, "cleanup.policy", "delete")
    assert current("cleanup.policy") == "compact"
    # The change is live: keyless records are now refused.
    reports = produce(broker, topic, [{"value": b"no key"}], conf={"enable.idempotence": False, "retries": 0})
    assert reports[0].error is not None and reports[0].error.code() == KafkaError.INVALID_RECORD
    alter(AlterConfigOpType.DELETE, "cleanup.policy", None)
    assert current("cleanup.policy") == "delete"
    with pytest.raises(Exception):
        alter(AlterConfigOpType.SET, "cleanup.policy", "shred")
    # Survives a restart.
    alter(AlterConfigOpType.SET, "retention.ms", "123456789")
    broker.restart()
    a = admin(broker)
    assert current("retention.ms") == "123456789"


def test_offsets_for_times_on_a_log_append_time_topic(broker, topic):
    create_topic(broker, topic, config={"message.timestamp.type": "LogAppendTime"})
    stamps = []
    for i in range(3):
        produce_ok(broker, topic, [{"value": b"v%d" % i, "timestamp": 1_000 + i}])  # replaced by the broker
        stamps.append(consume(broker, topic, 0, i, 1)[0].timestamp[1])
        time.sleep(0.05)
    assert stamps == sorted(stamps) and stamps[0] > _now_ms() - 60_000
    c = consumer(broker)
    try:
        for want, ts in enumerate(stamps):
            res = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=15)
            assert res[0].offset == want, (want, ts, res)
        res = c.offsets_for_times([TopicPartition(topic, 0, stamps[-1] + 1)], timeout=15)
        assert res[0].offset == -1  # past every timestamp: end (-1)
    finally:
        c.close()
