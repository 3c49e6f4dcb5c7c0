"""kafkajs 2.2.4 (node, tests/clients/node/kjs.js) against a single klamm node.

kafkajs reads records here with its own Fetch request and record decoder
(the code its consumer uses) on an explicitly chosen partition, without a
consumer group; group-based consumption lives in test_groups_clients.py.
"""

from __future__ import annotations

import base64

from conftest import ok, run_kjs, unique_topic
from helpers import MiB, consume, create_topic, pattern_bytes, produce_ok


def b64(b: bytes) -> dict:
    return {"b64": base64.b64encode(b).decode()}


def unb64(v):
    return None if v is None else base64.b64decode(v["b64"])


def test_admin_create_topics_and_metadata(broker):
    t = unique_topic("kjs")
    r = run_kjs(broker, [
        {"op": "createTopics", "topics": [{"topic": t, "numPartitions": 3, "replicationFactor": 1,
                                           "configs": {"retention.ms": "3600000"}}]},
        {"op": "createTopics", "topics": [{"topic": t, "numPartitions": 3, "replicationFactor": 1}]},
        {"op": "fetchTopicMetadata", "topics": [t]},
        {"op": "listTopics"},
        {"op": "describeConfigs", "resources": [{"type": "TOPIC", "name": t, "configNames": ["retention.ms", "cleanup.policy"]}]},
        {"op": "describeCluster"},
    ])
    assert ok(r[0]) is True  # created
    assert ok(r[1]) is False  # already there: kafkajs returns false, not an error
    md = ok(r[2])["topics"]
    assert [x["name"] for x in md] == [t]
    parts = sorted(md[0]["partitions"], key=lambda p: p["partitionId"])
    assert [p["partitionId"] for p in parts] == [0, 1, 2]
    assert all(p["leader"] == 1 and p["replicas"] == [1] and p["isr"] == [1] and p["partitionErrorCode"] == 0
               for p in parts)
    assert t in ok(r[3])
    res = ok(r[4])["resources"]
    assert res[0]["errorCode"] == 0 and res[0]["resourceName"] == t
    entries = {e["configName"]: e for e in res[0]["configEntries"]}
    assert set(entries) == {"retention.ms", "cleanup.policy"}
    assert entries["retention.ms"]["configValue"] == "3600000"
    assert entries["retention.ms"]["isDefault"] is False
    assert entries["cleanup.policy"]["configValue"] == "delete"
    assert entries["cleanup.policy"]["isDefault"] is True
    cl = ok(r[5])
    assert [(b["nodeId"], b["host"], b["port"]) for b in cl["brokers"]] == [(1, "127.0.0.1", broker.port)]
    assert cl["controller"] == 1
    assert cl["clusterId"]


def test_produce_keys_headers_timestamps_nulls_and_fetch(broker, topic):
    create_topic(broker, topic, partitions=1)
    ts0 = 1_710_000_000_000
    msgs = [
        {"key": "k0", "value": "hello", "timestamp": ts0, "partition": 0, "headers": {"h1": "a", "bin": b64(b"\x00\xff")}},
        {"key": None, "value": "no key", "timestamp": ts0 + 1, "partition": 0},
        {"key": "tomb", "value": None, "timestamp": ts0 + 2, "partition": 0},
        {"key": b64(bytes(range(256))), "value": b64(bytes(range(256))[::-1]), "timestamp": ts0 + 3, "partition": 0},
        {"key": "multi", "value": "m", "timestamp": ts0 + 4, "partition": 0, "headers": {"h": ["x", "y"]}},
    ]
    r = run_kjs(broker, [
        {"op": "produce", "topic": topic, "acks": -1, "messages": msgs},
        {"op": "fetch", "topic": topic, "partition": 0, "offset": 0, "untilOffset": 5},
    ])
    sent = ok(r[0])
    assert [(x["topicName"], x["partition"], x["errorCode"], x["baseOffset"]) for x in sent] == [(topic, 0, 0, "0")]
    got = ok(r[1])
    assert got["highWatermark"] == "5"
    m = got["messages"]
    assert [x["offset"] for x in m] == ["0", "1", "2", "3", "4"]
    assert [x["timestamp"] for x in m] == [str(ts0 + i) for i in range(5)]
    assert unb64(m[0]["key"]) == b"k0" and unb64(m[0]["value"]) == b"hello"
    assert {k: unb64(v) for k, v in m[0]["headers"].items()} == {"h1": b"a", "bin": b"\x00\xff"}
    assert m[1]["key"] is None and unb64(m[1]["value"]) == b"no key"
    assert unb64(m[2]["key"]) == b"tomb" and m[2]["value"] is None
    assert unb64(m[3]["key"]) == bytes(range(256)) and unb64(m[3]["value"]) == bytes(range(256))[::-1]
    assert [unb64(v) for v in m[4]["headers"]["h"]] == [b"x", b"y"]
    # librdkafka reads the kafkajs records identically
    c = consume(broker, topic, 0, 0, 5)
    assert [(g.key, g.value) for g in c] == [(b"k0", b"hello"), (None, b"no key"), (b"tomb", None),
                                             (bytes(range(256)), bytes(range(256))[::-1]), (b"multi", b"m")]
    assert c[0].headers == [("h1", b"a"), ("bin", b"\x00\xff")]
    assert c[4].headers == [("h", b"x"), ("h", b"y")]


def test_produce_acks_all_one_zero(broker, topic):
    create_topic(broker, topic, partitions=1)
    r = run_kjs(broker, [
        {"op": "produce", "topic": topic, "acks": -1, "messages": [{"value": "a-all", "partition": 0}]},
        {"op": "produce", "topic": topic, "acks": 1, "messages": [{"value": "a-one", "partition": 0}]},
        {"op": "produce", "topic": topic, "acks": 0, "messages": [{"value": "a-zero", "partition": 0}]},
        {"op": "produce", "topic": topic, "acks": 1, "messages": [{"value": "after", "partition": 0}]},
        {"op": "fetch", "topic": topic, "partition": 0, "offset": 0, "untilOffset": 4},
    ])
    assert ok(r[0])[0]["baseOffset"] == "0"
    assert ok(r[1])[0]["baseOffset"] == "1"
    ok(r[2])  # acks=0: no response to wait for
    assert ok(r[3])[0]["baseOffset"] == "3"
    assert [unb64(x["value"]) for x in ok(r[4])["messages"]] == [b"a-all", b"a-one", b"a-zero", b"after"]


def test_one_mib_value(broker, topic):
    create_topic(broker, topic, partitions=1, config={"max.message.bytes": 4 * MiB})
    r = run_kjs(broker, [
        {"op": "produce", "topic": topic, "acks": -1,
         "messages": [{"key": "big", "value": {"pattern": MiB}, "partition": 0}]},
        {"op": "fetch", "topic": topic, "partition": 0, "offset": 0, "untilOffset": 1,
         "maxBytes": 4 * MiB, "partitionMaxBytes": 2 * MiB},
    ], timeout=180)
    assert ok(r[0])[0]["baseOffset"] == "0"
    m = ok(r[1])["messages"]
    assert len(m) == 1
    assert unb64(m[0]["value"]) == pattern_bytes(MiB)
    assert consume(broker, topic, 0, 0, 1)[0].value == pattern_bytes(MiB)


def test_fetch_topic_offsets_and_by_timestamp(broker, topic):
    create_topic(broker, topic, partitions=3)
    ts0 = 1_720_000_000_000
    batches = [[{"value": f"p{p}-{i}", "partition": p, "timestamp": ts0 + i * 1000} ] for p in range(3) for i in range(p + 1)]
    r = run_kjs(broker, [
        {"op": "produce", "topic": topic, "acks": -1, "batches": batches},
        {"op": "fetchTopicOffsets", "topic": topic},
        {"op": "fetchTopicOffsetsByTimestamp", "topic": topic, "timestamp": ts0 + 500},
        {"op": "fetchTopicOffsetsByTimestamp", "topic": topic, "timestamp": ts0 + 10**9},
    ])
    ok(r[0])
    offs = sorted(ok(r[1]), key=lambda x: x["partition"])
    assert [(x["partition"], x["low"], x["high"], x["offset"]) for x in offs] == \
        [(0, "0", "1", "1"), (1, "0", "2", "2"), (2, "0", "3", "3")]
    by_ts = {x["partition"]: x["offset"] for x in ok(r[2])}
    # first record at or after ts0+0.5s: none in p0 (kafkajs then reports the end offset)
    assert by_ts == {0: "1", 1: "1", 2: "1"}
    by_ts_future = {x["partition"]: x["offset"] for x in ok(r[3])}
    assert by_ts_future == {0: "1", 1: "2", 2: "3"}


def test_delete_topics_and_create_partitions(broker):
    t1, t2 = unique_topic("kjs"), unique_topic("kjs")
    r = run_kjs(broker, [
        {"op": "createTopics", "topics": [{"topic": t1, "numPartitions": 1, "replicationFactor": 1},
                                          {"topic": t2, "numPartitions": 2, "replicationFactor": 1}]},
        {"op": "createPartitions", "topicPartitions": [{"topic": t2, "count": 4}]},
        {"op": "fetchTopicMetadata", "topics": [t2]},
        {"op": "produce", "topic": t2, "acks": -1, "messages": [{"value": "in-p3", "partition": 3}]},
        {"op": "deleteTopics", "topics": [t1]},
        {"op": "listTopics"},
        {"op": "createPartitions", "topicPartitions": [{"topic": t2, "count": 3}]},
    ])
    assert ok(r[0]) is True
    ok(r[1])
    assert sorted(p["partitionId"] for p in ok(r[2])["topics"][0]["partitions"]) == [0, 1, 2, 3]
    assert ok(r[3])[0]["partition"] == 3 and ok(r[3])[0]["baseOffset"] == "0"
    ok(r[4])
    topics = ok(r[5])
    assert t1 not in topics and t2 in topics
    assert not r[6]["ok"], "shrinking partitions must fail"
    assert "INVALID_PARTITIONS" in str(r[6]["error"])


def test_alter_configs(broker, topic):
    create_topic(broker, topic, partitions=1, config={"retention.ms": "3600000"})
    r = run_kjs(broker, [
        {"op": "alterConfigs", "resources": [{"type": "TOPIC", "name": topic, "configs": {"retention.ms": "120000"}}]},
        {"op": "describeConfigs", "resources": [{"type": "TOPIC", "name": topic, "configNames": ["retention.ms"]}]},
        {"op": "alterConfigs", "validateOnly": True,
         "resources": [{"type": "TOPIC", "name": topic, "configs": {"retention.ms": "999"}}]},
        {"op": "describeConfigs", "resources": [{"type": "TOPIC", "name": topic, "configNames": ["retention.ms"]}]},
        {"op": "describeConfigs", "resources": [{"type": "BROKER", "name": "1", "configNames": ["num.partitions"]}]},
    ])
    res = ok(r[0])["resources"]
    assert res[0]["errorCode"] == 0
    assert ok(r[1])["resources"][0]["configEntries"][0]["configValue"] == "120000"
    ok(r[2])
    assert ok(r[3])["resources"][0]["configEntries"][0]["configValue"] == "120000", "validateOnly must not change"
    b = ok(r[4])["resources"][0]
    assert b["errorCode"] == 0
    assert [(e["configName"], e["configValue"]) for e in b["configEntries"]] == [("num.partitions", "1")]


def test_kafkajs_reads_librdkafka_records(broker, topic):
    create_topic(broker, topic, partitions=2)
    produce_ok(broker, topic, [{"key": f"k{i}".encode(), "value": f"v{i}".encode(), "partition": 1,
                                "headers": [("n", str(i).encode())], "timestamp": 1_700_000_000_000 + i}
                               for i in range(30)], {"enable.idempotence": True})
    r = run_kjs(broker, [{"op": "fetch", "topic": topic, "partition": 1, "offset": 10, "untilOffset": 30}])
    m = ok(r[0])["messages"]
    assert [int(x["offset"]) for x in m] == list(range(10, 30))
    assert [unb64(x["key"]) for x in m] == [f"k{i}".encode() for i in range(10, 30)]
    assert [unb64(x["headers"]["n"]) for x in m] == [str(i).encode() for i in range(10, 30)]
    assert [int(x["timestamp"]) for x in m] == [1_700_000_000_000 + i for i in range(10, 30)]
