"""kafka-python (pure Python client) against a single klamm node."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from conftest import unique_topic, wait_until
from helpers import MiB, consume, create_topic, pattern_bytes, produce_ok

CLIENT_TIMEOUTS = {"request_timeout_ms": 20000}


def producer(broker, **conf) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, **CLIENT_TIMEOUTS, **conf)


def assigned_consumer(broker, **conf) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", **CLIENT_TIMEOUTS, **conf)


def read(c: KafkaConsumer, count: int, timeout: float = 30.0) -> list:
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=500, max_records=count - len(out)).values():
            out.extend(recs)
    assert len(out) >= count, f"got {len(out)} of {count} records within {timeout}s"
    return sorted(out, key=lambda r: (r.partition, r.offset))


def admin_client(broker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, **CLIENT_TIMEOUTS)


@pytest.mark.parametrize("idempotence", [True, False], ids=["idempotent", "plain"])
def test_send_returns_metadata_and_consumer_reads_back(broker, topic, idempotence):
    create_topic(broker, topic, partitions=2)
    p = producer(broker, acks="all", enable_idempotence=idempotence)
    ts0 = 1_690_000_000_000
    try:
        metas = []
        for i in range(20):
            fut = p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 2,
                         headers=[("idx", str(i).encode()), ("empty", b"")], timestamp_ms=ts0 + i)
            metas.append(fut)
        p.flush(timeout=30)
        metas = [f.get(timeout=30) for f in metas]
    finally:
        p.close(timeout=10)
    assert [(m.topic, m.partition) for m in metas] == [(topic, i % 2) for i in range(20)]
    assert [m.offset for m in metas if m.partition == 0] == list(range(10))
    assert [m.offset for m in metas if m.partition == 1] == list(range(10))
    c = assigned_consumer(broker)
    try:
        c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        c.seek(TopicPartition(topic, 0), 0)
        c.seek(TopicPartition(topic, 1), 0)
        recs = read(c, 20)
    finally:
        c.close()
    for r in recs:
        i = int(r.value[1:])
        assert r.partition == i % 2
        assert r.key == f"k{i}".encode()
        assert r.timestamp == ts0 + i
        assert list(r.headers) == [("idx", str(i).encode()), ("empty", b"")]
    assert [r.offset for r in recs if r.partition == 1] == list(range(10))


def test_seek_and_offset_queries(broker, topic):
    create_topic(broker, topic, partitions=1)
    ts0 = 1_680_000_000_000
    produce_ok(broker, topic, [{"value": f"r{i}".encode(), "timestamp": ts0 + i * 100, "partition": 0}
                               for i in range(25)], {"linger.ms": 0, "batch.num.messages": 5})
    tp = TopicPartition(topic, 0)
    c = assigned_consumer(broker)
    try:
        c.assign([tp])
        assert c.beginning_offsets([tp], timeout_ms=15000) == {tp: 0}
        assert c.end_offsets([tp], timeout_ms=15000) == {tp: 25}
        ot = c.offsets_for_times({tp: ts0 + 1250}, timeout_ms=15000)[tp]
        assert (ot.offset, ot.timestamp) == (13, ts0 + 1300)
        assert c.offsets_for_times({tp: ts0 + 10**9}, timeout_ms=15000)[tp] is None
        c.seek(tp, 20)
        recs = read(c, 5)
        assert [(r.offset, r.value) for r in recs] == [(i, f"r{i}".encode()) for i in range(20, 25)]
        c.seek_to_beginning(tp)
        recs = read(c, 3)
        assert [r.offset for r in recs[:3]] == [0, 1, 2]
    finally:
        c.close()


def test_null_value_and_large_value(broker, topic):
    create_topic(broker, topic, partitions=1, config={"max.message.bytes": 4 * MiB})
    big = pattern_bytes(MiB, 5)
    p = producer(broker, acks=1, max_request_size=8 * MiB)
    try:
        m1 = p.send(topic, key=b"tomb", value=None, partition=0).get(timeout=30)
        m2 = p.send(topic, key=b"big", value=big, partition=0).get(timeout=60)
    finally:
        p.close(timeout=10)
    assert (m1.offset, m2.offset) == (0, 1)
    c = assigned_consumer(broker, max_partition_fetch_bytes=2 * MiB, fetch_max_bytes=64 * MiB)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        recs = read(c, 2, timeout=60)
    finally:
        c.close()
    assert (recs[0].key, recs[0].value) == (b"tomb", None)
    assert recs[1].key == b"big" and recs[1].value == big


def test_admin_create_describe_delete_topics(broker):
    t = unique_topic("kp")
    a = admin_client(broker)
    try:
        res = a.create_topics({t: {"num_partitions": 3, "replication_factor": 1,
                                   "configs": {"retention.ms": "86400000"}}}, timeout_ms=15000)
        assert [(x["name"], x["error_code"]) for x in res["topics"]] == [(t, 0)]
        wait_until(lambda: t in a.list_topics(), what="topic listed")
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics({t: {"num_partitions": 1, "replication_factor": 1}}, timeout_ms=15000)
        cfg = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)], config_filter="all")
        entries = cfg["topic"][t]
        assert entries["retention.ms"]["value"] == "86400000"
        assert entries["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert entries["cleanup.policy"]["value"] == "delete"
        assert entries["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
        bcfg = a.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")], config_filter="all")
        assert bcfg["broker"]["1"]["auto.create.topics.enable"]["value"] == "true"
        desc = a.describe_topics([t])
        assert len(desc) == 1 and desc[0]["name"] == t and desc[0]["error_code"] == 0
        assert sorted(p["partition_index"] for p in desc[0]["partitions"]) == [0, 1, 2]
        assert all(p["leader_id"] == 1 for p in desc[0]["partitions"])
        res = a.delete_topics([t], timeout_ms=15000)
        assert [(x["name"], x["error_code"]) for x in res["topics"]] == [(t, 0)]
        wait_until(lambda: t not in a.list_topics(), what="topic gone")
        with pytest.raises(UnknownTopicOrPartitionError):
            a.delete_topics([t], timeout_ms=15000)
    finally:
        a.close()


def test_admin_create_partitions_and_cluster(broker, topic):
    create_topic(broker, topic, partitions=2)
    a = admin_client(broker)
    try:
        a.create_partitions({topic: 5}, timeout_ms=15000)
        wait_until(lambda: len(a.describe_topics([topic])[0]["partitions"]) == 5, what="5 partitions")
        cl = a.describe_cluster()
        assert [b["broker_id"] for b in cl["brokers"]] == [1]
        assert cl["brokers"][0]["host"] == "127.0.0.1"
        assert cl["brokers"][0]["port"] == broker.port
        assert cl["controller_id"] == 1
        assert cl["cluster_id"]
    finally:
        a.close()
    # the new partition takes records
    rep = produce_ok(broker, topic, [{"value": b"p4", "partition": 4}])
    assert (rep[0].partition, rep[0].offset) == (4, 0)
    assert consume(broker, topic, 4, 0, 1)[0].value == b"p4"
