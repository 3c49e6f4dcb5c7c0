"""auto.create.topics.enable: on (Kafka's default) creates unknown topics with
num.partitions; off makes them fail with UNKNOWN_TOPIC_OR_PARTITION."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError
from kafka import KafkaProducer

import kafka_wire as wire
from conftest import ok, run_kcat, run_kjs, unique_topic, wait_until
from helpers import admin, consume, produce, produce_ok, wait_for_leaders


def test_librdkafka_producer_auto_creates_with_num_partitions(broker_factory):
    b = broker_factory(num_partitions=3)
    t = unique_topic("auto")
    reports = produce_ok(b, t, [{"key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(30)])
    assert {r.partition for r in reports} <= {0, 1, 2}
    wait_for_leaders(b, t, 3)
    md = admin(b).list_topics(topic=t, timeout=10)
    assert sorted(md.topics[t].partitions) == [0, 1, 2]
    total = sum(len(consume(b, t, p, 0, sum(1 for r in reports if r.partition == p))) for p in range(3))
    assert total == 30


def test_default_broker_auto_creates_one_partition_topic(broker):
    t = unique_topic("auto")
    run_kcat(["-b", broker.bootstrap, "-P", "-t", t], input=b"a\nb\n")
    wait_for_leaders(broker, t, 1)
    assert [g.value for g in consume(broker, t, 0, 0, 2)] == [b"a", b"b"]


def test_metadata_request_auto_creates_and_kafkajs_kafka_python_produce(broker_factory):
    b = broker_factory(num_partitions=3)
    t_wire, t_kjs, t_kp = unique_topic("w"), unique_topic("kjs"), unique_topic("kp")
    # Metadata v1 always asks for auto-creation: first answer may be LEADER_NOT_AVAILABLE (5)
    with b.conn() as c:
        first = wire.metadata_v1(c, [t_wire]).topics[t_wire]
        assert first.error_code in (wire.NONE, 5), first
    def created():
        with b.conn() as c:
            tm = wire.metadata_v1(c, [t_wire]).topics[t_wire]
            return tm.error_code == 0 and len(tm.partitions) == 3 and all(p.leader == 1 for p in tm.partitions)
    wait_until(created, what="auto-created topic with 3 partitions")
    r = run_kjs(b, [{"op": "produce", "topic": t_kjs, "acks": -1, "messages": [{"value": "x"}]},
                    {"op": "fetchTopicMetadata", "topics": [t_kjs]}])
    assert ok(r[0])[0]["errorCode"] == 0
    assert len(ok(r[1])["topics"][0]["partitions"]) == 3
    p = KafkaProducer(bootstrap_servers=b.bootstrap, request_timeout_ms=20000, max_block_ms=20000)
    try:
        meta = p.send(t_kp, value=b"kp").get(timeout=30)
    finally:
        p.close(timeout=10)
    assert meta.offset == 0 and meta.topic == t_kp
    wait_for_leaders(b, t_kp, 3)


def test_auto_create_disabled_fails_with_unknown_topic(broker_factory):
    b = broker_factory(auto_create_topics_enable="false")
    t = unique_topic("noauto")
    with b.conn() as c:
        md = wire.metadata_v1(c, [t])
        assert md.topics[t].error_code == wire.UNKNOWN_TOPIC_OR_PARTITION
        res = wire.produce_v3(c, t, 0, wire.record_batch([wire.Record(b"k", b"v")]))
        assert [(x.index, x.error_code) for x in res[t]] == [(0, wire.UNKNOWN_TOPIC_OR_PARTITION)]
    # librdkafka producer: delivery fails, the topic is not created
    reports = produce(b, t, [{"value": b"v"}], {"topic.metadata.propagation.max.ms": 1000,
                                                 "message.timeout.ms": 5000}, timeout=30)
    assert reports[0].error is not None
    assert reports[0].error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), reports[0].error
    # kcat reports the failure too
    proc = run_kcat(["-b", b.bootstrap, "-P", "-t", t, "-X", "topic.metadata.propagation.max.ms=1000",
                     "-X", "message.timeout.ms=5000"], input=b"x\n", check=False)
    assert b"nknown topic" in proc.stderr, proc.stderr
    # kafkajs
    r = run_kjs(b, [{"op": "produce", "topic": t, "acks": -1, "retries": 1, "messages": [{"value": "x"}]}])
    assert not r[0]["ok"]
    assert "UNKNOWN_TOPIC_OR_PARTITION" in str(r[0]["error"]) or "not present in metadata" in str(r[0]["error"]) \
        or "does not host this topic-partition" in str(r[0]["error"]), r[0]["error"]
    time.sleep(0.5)
    assert t not in admin(b).list_topics(timeout=10).topics
    # explicit creation still works
    from helpers import create_topic
    create_topic(b, t, partitions=2)
    assert produce_ok(b, t, [{"value": b"ok", "partition": 1}])[0].offset == 0
