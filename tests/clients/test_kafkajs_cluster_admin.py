"""kafkajs 2.2.4 admin APIs on a real 3-node cluster (cluster_fixture.py's `cluster3`),
driven through tests/clients/node/kjs.js as in test_kafkajs.py.

- `admin.fetchTopicMetadata` reports a replication-factor-3 topic as the cluster has it
  (leader, replicas, ISR, offline replicas; the same as the harness's own raw Metadata
  view), from every node, and follows a broker's controlled shutdown and return: out of every
  ISR and offline while it is away, back in once it caught up.
- `admin.alterPartitionReassignments` moves a partition to two other brokers. While one of them
  is paused the reassignment cannot finish, so `admin.listPartitionReassignments` shows it
  running (target plus removed replica, adding and removing replicas) and fetchTopicMetadata
  the widened replica list; once the broker resumes, the listing empties, the metadata shows
  the target replicas with the first of them leading, the records moved with the partition and
  the old broker dropped its copy. Invalid assignments are refused per partition with Kafka's
  codes.
"""

from __future__ import annotations

import base64

from cluster_fixture import Cluster, cluster3  # noqa: F401 - fixture
from conftest import ok, run_kjs, unique_topic, wait_until

BROKERS = [1, 2, 3]


def kjs_metadata(via, topic: str) -> dict[int, dict]:
    """kafkajs' fetchTopicMetadata of `topic` through node `via`: partition id -> partition."""
    [md] = ok(run_kjs(via, [{"op": "fetchTopicMetadata", "topics": [topic]}])[0])["topics"]
    assert md["name"] == topic
    return {p["partitionId"]: p for p in md["partitions"]}


def bytes_of(v: dict | None) -> bytes | None:
    """A value as kjs.js returns it ({"b64": ...} or null)."""
    return None if v is None else base64.b64decode(v["b64"])


def kjs_reassignments(via, topics: list[dict] | None = None) -> dict:
    step = {"op": "listPartitionReassignments"}
    if topics is not None:
        step["topics"] = topics
    return ok(run_kjs(via, [step])[0])


def assert_same_as_harness(c: Cluster, topic: str, kjs: dict[int, dict]) -> None:
    """kafkajs' view equals what the harness reads with its own Metadata v1 request."""
    harness = c.partitions(topic)
    assert sorted(kjs) == sorted(harness)
    for pid, p in kjs.items():
        h = harness[pid]
        assert (p["partitionErrorCode"], p["leader"], p["replicas"], sorted(p["isr"])) == \
            (h.error, h.leader, list(h.replicas), sorted(h.isr)), (pid, p, h)


def test_fetch_topic_metadata_of_an_rf3_topic(cluster3):
    c = cluster3
    topic = unique_topic("kjs-rf3")
    r = run_kjs(c.node(1), [{"op": "createTopics", "topics": [{"topic": topic, "numPartitions": 3, "replicationFactor": 3}]}])
    assert ok(r[0]) is True
    c.wait_healthy([topic], {topic: 3}, timeout=30, want_isr=3)

    leaders = set()
    for node in c.nodes:
        parts = kjs_metadata(node, topic)
        assert sorted(parts) == [0, 1, 2]
        for pid, p in parts.items():
            assert p["partitionErrorCode"] == 0, p
            assert sorted(p["replicas"]) == BROKERS and sorted(p["isr"]) == BROKERS, p
            assert p["leader"] == p["replicas"][0], p  # the preferred replica leads a new topic
            assert p["offlineReplicas"] == [], p
            leaders.add(p["leader"])
        assert_same_as_harness(c, topic, parts)
    assert leaders == set(BROKERS), "three partitions on three brokers: one leader each"

    # Broker 3 shuts down (controlled): it leaves every ISR and is listed offline; the
    # replica lists stay, and no partition is led by it.
    before = kjs_metadata(c.node(1), topic)
    rc, _ = c.node(3).terminate()
    assert rc == 0, c.node(3).log_tail()

    def away():
        parts = kjs_metadata(c.node(1), topic)
        return all(3 not in p["isr"] and p["offlineReplicas"] == [3] for p in parts.values()) and parts

    parts = wait_until(away, timeout=30, interval=0.5, what="broker 3 out of every ISR and offline")
    for pid, p in parts.items():
        assert p["replicas"] == before[pid]["replicas"], (pid, p)
        assert sorted(p["isr"]) == [1, 2] and p["leader"] in (1, 2), (pid, p)
        assert p["partitionErrorCode"] == 0, (pid, p)
    assert_same_as_harness(c, topic, parts)

    # Back again: it catches up and rejoins every ISR.
    c.node(3).start()
    c.wait_healthy([topic], {topic: 3}, timeout=60, want_isr=3)
    parts = kjs_metadata(c.node(2), topic)
    for pid, p in parts.items():
        assert p["replicas"] == before[pid]["replicas"] and sorted(p["isr"]) == BROKERS, (pid, p)
        assert p["offlineReplicas"] == [], (pid, p)
    assert_same_as_harness(c, topic, parts)


def test_alter_and_list_partition_reassignments(cluster3):
    c = cluster3
    topic = unique_topic("kjs-move")
    values = [f"v{i}" for i in range(20)]
    r = run_kjs(c.node(1), [
        {"op": "createTopics", "topics": [{"topic": topic, "numPartitions": 1, "replicationFactor": 1}]},
        {"op": "produce", "topic": topic, "acks": -1, "messages": [{"value": v, "partition": 0} for v in values]},
        {"op": "describeCluster"},
    ])
    assert ok(r[0]) is True
    assert ok(r[1])[0]["errorCode"] == 0
    controller = ok(r[2])["controller"]
    [source] = kjs_metadata(c.node(1), topic)[0]["replicas"]

    # Target: the two other brokers. The second of them (`late`) is not the controller, so it
    # can be paused without stopping the metadata quorum's leader.
    others = [b for b in BROKERS if b != source]
    late = next(b for b in others if b != controller)
    first = next(b for b in others if b != late)
    target = [first, late]
    via = c.node(first)  # kafkajs' bootstrap: never the paused broker
    running = {"topics": [{"name": topic, "partitions": [
        {"partition": 0, "replicas": target + [source], "addingReplicas": target, "removingReplicas": [source]}]}]}

    c.node(late).pause()
    try:
        r = run_kjs(via, [
            {"op": "alterPartitionReassignments",
             "topics": [{"topic": topic, "partitionAssignment": [{"partition": 0, "replicas": target}]}]},
            {"op": "listPartitionReassignments", "topics": [{"topic": topic, "partitions": [0]}]},
            {"op": "listPartitionReassignments"},
        ])
        assert ok(r[0]) is None
        assert ok(r[1]) == running
        assert ok(r[2]) == running
        # `first` copies the partition and joins the ISR; `late` cannot, so it keeps running.
        wait_until(lambda: first in kjs_metadata(via, topic)[0]["isr"], timeout=30, interval=0.5,
                   what=f"broker {first} in the ISR")
        p = kjs_metadata(via, topic)[0]
        assert (p["leader"], p["replicas"], sorted(p["isr"])) == (source, target + [source], sorted([source, first])), p
        assert kjs_reassignments(via) == running
    finally:
        c.node(late).resume()

    # `late` comes back, catches up, and the reassignment completes: the source leaves and
    # hands the leadership to the first target replica.
    wait_until(lambda: kjs_reassignments(via) == {"topics": []}, timeout=60, interval=0.5,
               what="the reassignment to complete")
    p = kjs_metadata(via, topic)[0]
    assert (p["partitionErrorCode"], p["leader"], p["replicas"], sorted(p["isr"]), p["offlineReplicas"]) == \
        (0, first, target, sorted(target), []), p
    assert_same_as_harness(c, topic, {0: p})
    wait_until(lambda: not c.node(source).partition_dir(topic, 0).exists(), timeout=30,
               what=f"broker {source} to delete its copy")

    # The records moved with it, and the new replicas take acks=all writes.
    r = run_kjs(via, [
        {"op": "fetch", "topic": topic, "partition": 0, "offset": 0, "untilOffset": len(values)},
        {"op": "produce", "topic": topic, "acks": -1, "messages": [{"value": "after-move", "partition": 0}]},
        {"op": "fetch", "topic": topic, "partition": 0, "offset": len(values), "untilOffset": len(values) + 1},
    ])
    got = ok(r[0])
    assert [bytes_of(m["value"]) for m in got["messages"]] == [v.encode() for v in values]
    assert [m["offset"] for m in got["messages"]] == [str(i) for i in range(len(values))]
    sent = ok(r[1])
    assert [(x["errorCode"], x["baseOffset"]) for x in sent] == [(0, str(len(values)))]
    assert [bytes_of(m["value"]) for m in ok(r[2])["messages"]] == [b"after-move"]

    # Invalid assignments: refused per partition, nothing starts.
    def refused(replicas, partition=0):
        [res] = run_kjs(via, [{"op": "alterPartitionReassignments",
                              "topics": [{"topic": topic, "partitionAssignment": [{"partition": partition, "replicas": replicas}]}]}])
        assert not res["ok"], res
        err = res["error"]
        assert err["name"] == "KafkaJSAggregateError", err
        return [(e["type"], e["topic"], e["partition"]) for e in err["errors"]]

    assert refused([first, first]) == [("INVALID_REPLICA_ASSIGNMENT", topic, 0)]
    assert refused([first, 42]) == [("INVALID_REPLICA_ASSIGNMENT", topic, 0)]
    assert refused([source], partition=7) == [("UNKNOWN_TOPIC_OR_PARTITION", topic, 7)]
    assert kjs_reassignments(via) == {"topics": []}
    assert kjs_reassignments(via, [{"topic": topic, "partitions": [0]}, {"topic": "no-such-" + topic, "partitions": [0]}]) == \
        {"topics": []}
    assert kjs_metadata(via, topic)[0]["replicas"] == target
