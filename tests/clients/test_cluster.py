"""A real 3-node cluster (cluster_fixture.py's `cluster3`: three `klamm`
processes, combined broker+controller nodes, one metadata quorum over loopback)
driven by confluent-kafka and kcat.

Checks that every node lists all brokers and every partition's leader, that
partitions spread over the nodes, that produce/consume and a consumer group
work across leaders, that replication factor 3 is accepted and 4 on 3 brokers
is refused (replication itself: test_replication.py, test_chaos.py), and that a node
killed with SIGKILL leaves its partitions leaderless (the others keep
working) until it restarts and leads them again with their data.
"""

from __future__ import annotations

import re
import signal

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_fixture import SESSION_TIMEOUT_MS, cluster3  # noqa: F401 - fixture
from conftest import run_kcat, unique_topic, wait_until

PARTITIONS = 6
PER_PARTITION = 4


def leaders(bs: str, topic: str) -> dict[int, int]:
    md = AdminClient({"bootstrap.servers": bs}).list_topics(topic, timeout=10)
    t = md.topics[topic]
    return {p.id: p.leader for p in t.partitions.values()}


def produce(bs: str, topic: str, partition: int, values: list[str], timeout_ms: int = 15000) -> list:
    """Produces and flushes; returns the delivery errors (None for success)."""
    errors: list = []
    p = Producer({"bootstrap.servers": bs, "message.timeout.ms": timeout_ms, "retry.backoff.ms": 200})
    for v in values:
        p.produce(topic, v.encode(), partition=partition, on_delivery=lambda err, msg: errors.append(err))
    p.flush(timeout_ms / 1000 + 10)
    return errors


def read_partition(bs: str, topic: str, partition: int, count: int, timeout: float = 20.0) -> list[str]:
    c = Consumer({"bootstrap.servers": bs, "group.id": unique_topic("g"), "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        got: list[str] = []

        def step():
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value().decode())
            return len(got) >= count

        wait_until(step, timeout=timeout, interval=0, what=f"{count} records of {topic}-{partition}")
        return got
    finally:
        c.close()


def test_three_node_cluster(cluster3):
    nodes = cluster3.nodes
    bs = cluster3.bootstrap()
    admin = AdminClient({"bootstrap.servers": bs})
    topic = unique_topic("spread")
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(20)
    # Replication factor 3 is accepted: one replica per node, all in sync.
    rf3 = "rf3-" + topic
    admin.create_topics([NewTopic(rf3, 1, 3)])[rf3].result(20)
    wait_until(lambda: (lambda p: sorted(p.replicas) == [1, 2, 3] and sorted(p.isrs) == [1, 2, 3])(
        admin.list_topics(rf3, timeout=10).topics[rf3].partitions[0]), timeout=20,
        what=f"{rf3} to list 3 replicas, all in the ISR")
    # ... but not more replicas than brokers.
    rf4 = "rf4-" + topic
    with pytest.raises(KafkaException) as refused:
        admin.create_topics([NewTopic(rf4, 1, 4)])[rf4].result(20)
    assert refused.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    assert "3 broker" in refused.value.args[0].str().lower()

    # Every node alone reports the 3 brokers and the same leaders, spread over all nodes.
    seen = None
    for b in nodes:
        md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(topic, timeout=10)
        assert sorted(md.brokers) == [1, 2, 3], md.brokers
        assert sorted((x.host, x.port) for x in md.brokers.values()) == sorted(("127.0.0.1", n.port) for n in nodes)
        ls = {p.id: p.leader for p in md.topics[topic].partitions.values()}
        assert set(ls.values()) == {1, 2, 3}, ls
        assert seen is None or seen == ls
        seen = ls
        out = run_kcat(["-b", b.bootstrap, "-L", "-t", topic]).stdout.decode()
        assert re.search(r"3 brokers:", out), out
        for n in nodes:
            assert f"127.0.0.1:{n.port}" in out, out
        for pid, leader in ls.items():
            assert re.search(rf"partition {pid}, leader {leader},", out), out

    for p in range(PARTITIONS):
        errs = produce(bs, topic, p, [f"p{p}-m{i}" for i in range(PER_PARTITION)])
        assert errs == [None] * PER_PARTITION, errs
    for p in range(PARTITIONS):
        got = read_partition(bs, topic, p, PER_PARTITION)
        assert got == [f"p{p}-m{i}" for i in range(PER_PARTITION)]

    # A consumer group reads every partition (its coordinator may be on any node).
    c = Consumer({"bootstrap.servers": bs, "group.id": unique_topic("grp"), "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        got: set[str] = set()

        def step():
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.add(m.value().decode())
            return len(got) >= PARTITIONS * PER_PARTITION

        wait_until(step, timeout=40, interval=0, what="the group to read every partition")
        c.commit(asynchronous=False)
    finally:
        c.close()

    # SIGKILL node 3: after the session timeout its partitions have no leader; the rest work.
    victim = nodes[2]
    others = [b for b in nodes if b is not victim]
    victim_parts = [p for p, l in seen.items() if l == 3]
    other_parts = [p for p, l in seen.items() if l != 3]
    assert victim_parts and other_parts
    victim.stop(signal.SIGKILL)
    obs = cluster3.bootstrap(others)
    wait_until(lambda: all(leaders(obs, topic)[p] == -1 for p in victim_parts),
               timeout=SESSION_TIMEOUT_MS / 1000 + 20, what="node 3's partitions to lose their leader")
    md = AdminClient({"bootstrap.servers": obs}).list_topics(topic, timeout=10)
    assert sorted(md.brokers) == [1, 2]
    for p in victim_parts:
        assert md.topics[topic].partitions[p].error.code() == KafkaError.LEADER_NOT_AVAILABLE
    errs = produce(obs, topic, victim_parts[0], ["lost"], timeout_ms=3000)
    assert len(errs) == 1 and errs[0] is not None, errs
    assert errs[0].retriable() or errs[0].code() == KafkaError._MSG_TIMED_OUT, errs[0]
    for p in other_parts:
        assert produce(obs, topic, p, [f"p{p}-after"]) == [None]

    # Restart node 3 on the same ports and data: it leads its partitions again, data intact.
    victim.start()
    wait_until(lambda: all(leaders(bs, topic)[p] == 3 for p in victim_parts),
               timeout=30, what="node 3 to lead its partitions again")
    for p in victim_parts:
        assert read_partition(bs, topic, p, PER_PARTITION) == [f"p{p}-m{i}" for i in range(PER_PARTITION)]
        assert produce(bs, topic, p, [f"p{p}-back"]) == [None]
    for p in other_parts:
        assert read_partition(bs, topic, p, PER_PARTITION + 1)[-1] == f"p{p}-after"
