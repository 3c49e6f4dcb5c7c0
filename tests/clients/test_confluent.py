"""confluent-kafka (librdkafka 2.x wheel) against a single klamm node."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (TIMESTAMP_CREATE_TIME, Consumer, KafkaError, KafkaException,
                             TopicPartition)
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic, ResourceType)

from conftest import unique_topic, wait_until
from helpers import (MiB, admin, consume, consumer, create_topic, pattern_bytes, produce,
                     produce_ok, wait_for_leaders, watermarks)


def _describe(broker, rtype, name) -> dict:
    a = admin(broker)
    fs = a.describe_configs([ConfigResource(rtype, name)], request_timeout=15)
    (f,) = fs.values()
    return f.result(timeout=20)


# ---------------------------------------------------------------- producer


@pytest.mark.parametrize("idempotence", [True, False], ids=["idempotent", "plain"])
def test_producer_delivery_reports_have_consecutive_offsets(broker, topic, idempotence):
    create_topic(broker, topic, partitions=1)
    msgs = [{"key": f"k{i}".encode(), "value": f"value-{i}".encode(), "partition": 0} for i in range(50)]
    reports = produce_ok(broker, topic, msgs,
                         {"acks": "all", "enable.idempotence": idempotence, "linger.ms": 5})
    assert [r.partition for r in reports] == [0] * 50
    assert [r.offset for r in reports] == list(range(50))
    assert watermarks(broker, topic, 0) == (0, 50)


@pytest.mark.parametrize("acks", ["all", "1", "0"])
def test_producer_acks_levels_store_records(broker, topic, acks):
    create_topic(broker, topic, partitions=1)
    msgs = [{"value": f"a{acks}-{i}".encode(), "partition": 0} for i in range(20)]
    reports = produce_ok(broker, topic, msgs, {"acks": acks, "enable.idempotence": False})
    if acks != "0":
        assert [r.offset for r in reports] == list(range(20))
    # acks=0 gets no offsets back; the records must still be stored
    wait_until(lambda: watermarks(broker, topic, 0)[1] == 20, what="high watermark 20")
    got = consume(broker, topic, 0, 0, 20)
    assert [g.value for g in got] == [m["value"] for m in msgs]
    assert [g.offset for g in got] == list(range(20))


def test_roundtrip_keys_values_headers_timestamps_nulls(broker, topic):
    create_topic(broker, topic, partitions=1)
    ts0 = 1_700_000_000_000
    msgs = [
        {"key": b"k0", "value": b"plain", "timestamp": ts0, "partition": 0},
        {"key": None, "value": b"no key", "timestamp": ts0 + 1, "partition": 0},
        {"key": b"tomb", "value": None, "timestamp": ts0 + 2, "partition": 0},
        {"key": b"", "value": b"", "timestamp": ts0 + 3, "partition": 0},
        {"key": bytes(range(256)), "value": bytes(range(255, -1, -1)) * 4, "timestamp": ts0 + 4, "partition": 0},
        {"key": b"h", "value": b"with headers", "timestamp": ts0 + 5, "partition": 0,
         "headers": [("trace", b"abc"), ("trace", b"def"), ("empty", b""), ("null", None), ("bin", b"\x00\xff\n")]},
        {"key": "ключ".encode(), "value": "значение ✓".encode(), "timestamp": ts0 - 86_400_000, "partition": 0},
    ]
    reports = produce_ok(broker, topic, msgs, {"enable.idempotence": True})
    assert [r.offset for r in reports] == list(range(len(msgs)))
    got = consume(broker, topic, 0, 0, len(msgs))
    for m, g in zip(msgs, got):
        assert g.key == m["key"]
        assert g.value == m["value"]
        assert g.timestamp == (TIMESTAMP_CREATE_TIME, m["timestamp"])
    assert got[2].value is None, "a null value (tombstone) must stay null, not become empty"
    assert got[1].key is None
    assert got[3].key == b"" and got[3].value == b""
    assert got[5].headers == [("trace", b"abc"), ("trace", b"def"), ("empty", b""), ("null", None), ("bin", b"\x00\xff\n")]
    assert got[0].headers is None


def test_one_mib_values_roundtrip_byte_exact(broker, topic):
    create_topic(broker, topic, partitions=1, config={"max.message.bytes": 4 * MiB})
    values = [pattern_bytes(MiB, seed) for seed in range(3)]
    msgs = [{"key": f"big{i}".encode(), "value": v, "partition": 0} for i, v in enumerate(values)]
    reports = produce_ok(broker, topic, msgs, {"message.max.bytes": 8 * MiB, "linger.ms": 5})
    assert [r.offset for r in reports] == [0, 1, 2]
    got = consume(broker, topic, 0, 0, 3, timeout=60,
                  conf={"fetch.message.max.bytes": 2 * MiB, "receive.message.max.bytes": 64 * MiB})
    assert [g.key for g in got] == [b"big0", b"big1", b"big2"]
    for v, g in zip(values, got):
        assert len(g.value) == MiB
        assert g.value == v


def test_keyed_messages_spread_over_partitions_and_keep_order(broker, topic):
    create_topic(broker, topic, partitions=3)
    msgs = [{"key": f"key-{i % 7}".encode(), "value": f"{i}".encode()} for i in range(210)]
    reports = produce_ok(broker, topic, msgs)
    by_part: dict[int, list[tuple[int, bytes]]] = {}
    for m, r in zip(msgs, reports):
        by_part.setdefault(r.partition, []).append((r.offset, m["value"]))
    assert len(by_part) >= 2, "7 distinct keys should land on more than one of 3 partitions"
    for p, sent in by_part.items():
        assert [o for o, _ in sent] == list(range(len(sent)))
        got = consume(broker, topic, p, 0, len(sent))
        assert [g.value for g in got] == [v for _, v in sent]
    # the same key always goes to the same partition
    keys_by_part = {p: {msgs[int(v)]["key"] for _, v in sent} for p, sent in by_part.items()}
    all_keys = [k for ks in keys_by_part.values() for k in ks]
    assert len(all_keys) == len(set(all_keys)) == 7


# ---------------------------------------------------------------- consumer


def test_assign_at_offset_reads_from_there(broker, topic):
    create_topic(broker, topic, partitions=2)
    produce_ok(broker, topic, [{"value": f"p1-{i}".encode(), "partition": 1} for i in range(30)])
    got = consume(broker, topic, 1, 17, 13)
    assert [g.offset for g in got] == list(range(17, 30))
    assert [g.value for g in got] == [f"p1-{i}".encode() for i in range(17, 30)]
    assert all(g.partition == 1 for g in got)
    assert watermarks(broker, topic, 0) == (0, 0)


def test_assign_offset_beginning_and_end(broker, topic):
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END
    create_topic(broker, topic, partitions=1)
    produce_ok(broker, topic, [{"value": f"v{i}".encode(), "partition": 0} for i in range(5)])
    got = consume(broker, topic, 0, OFFSET_BEGINNING, 5)
    assert [g.offset for g in got] == list(range(5))
    # OFFSET_END: only records produced after the position was resolved arrive
    c = consumer(broker)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        early = []
        deadline = time.monotonic() + 3  # let librdkafka resolve "latest" (ListOffsets)
        while time.monotonic() < deadline:
            early += [m for m in c.consume(10, 0.2) if not m.error()]
        assert early == [], "nothing before the end offset may be delivered"
        produce_ok(broker, topic, [{"value": b"after-end", "partition": 0}])
        deadline = time.monotonic() + 20
        got2 = []
        while not got2 and time.monotonic() < deadline:
            got2 = [m for m in c.consume(1, 0.5) if not m.error()]
        assert [(m.offset(), m.value()) for m in got2] == [(5, b"after-end")]
    finally:
        c.close()


def test_watermarks_and_offsets_for_times(broker, topic):
    create_topic(broker, topic, partitions=1)
    ts0 = 1_600_000_000_000
    msgs = [{"value": f"t{i}".encode(), "timestamp": ts0 + i * 1000, "partition": 0} for i in range(10)]
    # one record per batch, so timestamp lookups are exercised across batches
    produce_ok(broker, topic, msgs[:5], {"linger.ms": 0, "batch.num.messages": 1})
    produce_ok(broker, topic, msgs[5:], {"linger.ms": 0, "batch.num.messages": 1})
    assert watermarks(broker, topic, 0) == (0, 10)
    c = consumer(broker)
    try:
        res = c.offsets_for_times([TopicPartition(topic, 0, ts0 + 3500)], timeout=15)
        assert res[0].offset == 4  # first record with timestamp >= ts0+3.5s
        res = c.offsets_for_times([TopicPartition(topic, 0, ts0)], timeout=15)
        assert res[0].offset == 0
        res = c.offsets_for_times([TopicPartition(topic, 0, ts0 + 9000)], timeout=15)
        assert res[0].offset == 9
        res = c.offsets_for_times([TopicPartition(topic, 0, ts0 + 60_000)], timeout=15)
        assert res[0].offset in (-1, 10), "no record at/after the timestamp: OFFSET_END (-1)"
    finally:
        c.close()


# ---------------------------------------------------------------- admin


def test_admin_create_topic_with_configs_and_list(broker, topic):
    a = admin(broker)
    fs = a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                   config={"retention.ms": "3600000", "cleanup.policy": "delete"})],
                         operation_timeout=15)
    assert fs[topic].result(timeout=20) is None
    wait_for_leaders(broker, topic, 3)
    md = a.list_topics(timeout=10)
    assert topic in md.topics
    t = md.topics[topic]
    assert sorted(t.partitions) == [0, 1, 2]
    for p in t.partitions.values():
        assert p.leader == 1 and p.replicas == [1] and p.isrs == [1]
    assert list(md.brokers) == [1]
    assert md.brokers[1].host == "127.0.0.1" and md.brokers[1].port == broker.port
    cfg = _describe(broker, ResourceType.TOPIC, topic)
    assert cfg["retention.ms"].value == "3600000"
    src = cfg["retention.ms"].source
    assert getattr(src, "value", src) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not cfg["retention.ms"].is_default
    # an unset topic config shows the broker default
    assert cfg["segment.bytes"].value == str(1024 * 1024 * 1024)
    assert cfg["segment.bytes"].is_default


def test_admin_create_topic_validate_only_creates_nothing(broker, topic):
    a = admin(broker)
    fs = a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)],
                         validate_only=True, operation_timeout=15)
    assert fs[topic].result(timeout=20) is None
    time.sleep(0.5)
    assert topic not in a.list_topics(timeout=10).topics


def test_admin_create_existing_topic_fails(broker, topic):
    create_topic(broker, topic, partitions=1)
    a = admin(broker)
    fs = a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], operation_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


def test_admin_create_topic_invalid_partitions_or_rf(broker):
    a = admin(broker)
    t1, t2 = unique_topic(), unique_topic()
    fs = a.create_topics([NewTopic(t1, num_partitions=1, replication_factor=3)], operation_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[t1].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    fs = a.create_topics([NewTopic(t2, num_partitions=0, replication_factor=1)], operation_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[t2].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS


def test_admin_delete_topic(broker, topic):
    create_topic(broker, topic, partitions=2)
    produce_ok(broker, topic, [{"value": b"x", "partition": 1}])
    a = admin(broker)
    fs = a.delete_topics([topic], operation_timeout=15)
    assert fs[topic].result(timeout=20) is None
    wait_until(lambda: topic not in a.list_topics(timeout=10).topics, what="topic gone from metadata")
    fs = a.delete_topics([topic], operation_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_admin_create_partitions(broker, topic):
    create_topic(broker, topic, partitions=1)
    a = admin(broker)
    fs = a.create_partitions([NewPartitions(topic, 4)], operation_timeout=15)
    assert fs[topic].result(timeout=20) is None
    wait_for_leaders(broker, topic, 4)
    reports = produce_ok(broker, topic, [{"value": b"p3", "partition": 3}])
    assert (reports[0].partition, reports[0].offset) == (3, 0)
    assert consume(broker, topic, 3, 0, 1)[0].value == b"p3"
    # shrinking is invalid
    fs = a.create_partitions([NewPartitions(topic, 2)], operation_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS


def test_admin_alter_configs_replaces_and_incremental_updates(broker, topic):
    create_topic(broker, topic, partitions=1, config={"retention.ms": "3600000", "segment.ms": "600000"})
    a = admin(broker)
    # incremental SET
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    for f in a.incremental_alter_configs([res]).values():
        f.result(timeout=20)
    cfg = _describe(broker, ResourceType.TOPIC, topic)
    assert cfg["retention.ms"].value == "7200000"
    assert cfg["segment.ms"].value == "600000"
    # incremental DELETE reverts to the default
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("segment.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    for f in a.incremental_alter_configs([res]).values():
        f.result(timeout=20)
    cfg = _describe(broker, ResourceType.TOPIC, topic)
    assert cfg["segment.ms"].value == str(7 * 24 * 3600 * 1000)
    assert cfg["segment.ms"].is_default
    # legacy AlterConfigs replaces the whole set of topic overrides
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"cleanup.policy": "compact"})
    for f in a.alter_configs([res]).values():
        f.result(timeout=20)
    cfg = _describe(broker, ResourceType.TOPIC, topic)
    assert cfg["cleanup.policy"].value == "compact"
    assert cfg["retention.ms"].value == str(7 * 24 * 3600 * 1000)
    assert cfg["retention.ms"].is_default


def test_admin_alter_configs_rejects_unknown_and_invalid(broker, topic):
    create_topic(broker, topic, partitions=1)
    a = admin(broker)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "not-a-number", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as ei:
        for f in a.incremental_alter_configs([res]).values():
            f.result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("no.such.topic.config", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as ei:
        for f in a.incremental_alter_configs([res]).values():
            f.result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG
    cfg = _describe(broker, ResourceType.TOPIC, topic)
    assert cfg["retention.ms"].value == str(7 * 24 * 3600 * 1000)
    assert "no.such.topic.config" not in cfg


def test_admin_describe_broker_configs_reflect_overrides(broker_factory):
    b = broker_factory(num_partitions=3, log_retention_ms=123456789)
    cfg = _describe(b, ResourceType.BROKER, "1")
    assert cfg["num.partitions"].value == "3"
    assert cfg["auto.create.topics.enable"].value == "true"
    assert cfg["log.retention.ms"].value == "123456789"
    # a new topic inherits the broker default as its retention.ms
    t = unique_topic()
    create_topic(b, t, partitions=1)
    tcfg = _describe(b, ResourceType.TOPIC, t)
    assert tcfg["retention.ms"].value == "123456789"
    # Kafka reports the synonym it came from: a static broker setting, so not "default"
    src = tcfg["retention.ms"].source
    assert getattr(src, "value", src) == ConfigSource.STATIC_BROKER_CONFIG.value
    assert not tcfg["retention.ms"].is_default
    # an untouched one is DEFAULT_CONFIG
    src = tcfg["cleanup.policy"].source
    assert tcfg["cleanup.policy"].value == "delete"
    assert getattr(src, "value", src) == ConfigSource.DEFAULT_CONFIG.value
    assert tcfg["cleanup.policy"].is_default


def test_admin_describe_cluster(broker):
    a = admin(broker)
    desc = a.describe_cluster(request_timeout=15).result(timeout=20)
    assert desc.cluster_id, "cluster id must be non-empty"
    assert [n.id for n in desc.nodes] == [1]
    assert desc.nodes[0].host == "127.0.0.1" and desc.nodes[0].port == broker.port
    assert desc.controller is not None and desc.controller.id == 1


def test_list_topics_metadata_for_unknown_topic_without_autocreate(broker_factory):
    b = broker_factory(auto_create_topics_enable="false")
    c = consumer(b, **{"allow.auto.create.topics": False})
    try:
        md = c.list_topics(topic="no-such-topic", timeout=10)
        t = md.topics["no-such-topic"]
        assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    finally:
        c.close()


def test_message_too_large_for_topic_is_rejected(broker, topic):
    create_topic(broker, topic, partitions=1, config={"max.message.bytes": 2048})
    reports = produce(broker, topic, [{"value": b"x" * 8192, "partition": 0}],
                      {"enable.idempotence": False, "message.send.max.retries": 0})
    assert reports[0].error is not None
    assert reports[0].error.code() == KafkaError.MSG_SIZE_TOO_LARGE
    # the topic still takes normal records
    assert produce_ok(broker, topic, [{"value": b"small", "partition": 0}])[0].offset == 0
    assert consume(broker, topic, 0, 0, 1)[0].value == b"small"
