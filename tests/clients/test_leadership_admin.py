"""Leadership admin APIs through stock clients on a real 3-node cluster (the
`cluster` fixture of test_cluster.py): ElectLeaders with confluent-kafka's
AdminClient.elect_leaders and kafka-python's KafkaAdminClient.elect_leaders.

With replication factor 1 every partition is led by its only (preferred)
replica, so an election is never needed while its broker lives, and neither
kind of election can help once that broker is gone. Moving leadership between
live replicas is checked in the Rust tests (tests/tests/admin_oracle.rs).
"""

from __future__ import annotations

import signal

from confluent_kafka import ElectionType, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient

from conftest import unique_topic, wait_until
from test_cluster import SESSION_TIMEOUT_MS, bootstrap, cluster, leaders  # noqa: F401 (fixture)

PARTITIONS = 6


def _elect(admin: AdminClient, kind, tps) -> dict:
    """{(topic, partition): error code or None} (the values are KafkaError, not exceptions)"""
    # No timeout keywords: confluent-kafka 2.16.1's binding rejects them (a TypeError or a
    # SystemError from its argument parser); the defaults are socket.timeout.ms (60 s).
    result = admin.elect_leaders(kind, tps).result(70)
    return {(tp.topic, tp.partition): (None if err is None else err.code()) for tp, err in result.items()}


def test_elect_leaders(cluster):
    nodes = cluster
    bs = bootstrap(nodes)
    admin = AdminClient({"bootstrap.servers": bs})
    topic = unique_topic("elect")
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(20)
    wait_until(lambda: all(l >= 0 for l in leaders(bs, topic).values()) and len(leaders(bs, topic)) == PARTITIONS,
               what="leaders for every partition")
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    # Every partition is led by its preferred replica: nothing to do.
    for kind in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        got = _elect(admin, kind, tps)
        assert got == {(topic, p): KafkaError.ELECTION_NOT_NEEDED for p in range(PARTITIONS)}, (kind, got)
    # All partitions: those that need nothing are left out of the answer.
    assert _elect(admin, ElectionType.PREFERRED, None) == {}
    # An unknown partition.
    got = _elect(admin, ElectionType.PREFERRED, [TopicPartition(topic, 99)])
    assert got == {(topic, 99): KafkaError.UNKNOWN_TOPIC_OR_PART}

    kp = KafkaAdminClient(bootstrap_servers=bs)
    try:
        r = kp.elect_leaders(0, {topic: [0, 1]}, raise_errors=False)
        codes = {(t.topic, p.partition_id): p.error_code for t in r.replica_election_results for p in t.partition_result}
        assert codes == {(topic, 0): 84, (topic, 1): 84}, codes  # ELECTION_NOT_NEEDED
    finally:
        kp.close()

    # SIGKILL node 3: once it is fenced, its partitions have no live replica at all.
    before = leaders(bs, topic)
    victim = nodes[2]
    victim_parts = [p for p, l in before.items() if l == 3]
    assert victim_parts, before
    victim.stop(signal.SIGKILL)
    obs = bootstrap(nodes[:2])
    admin = AdminClient({"bootstrap.servers": obs})
    wait_until(lambda: all(leaders(obs, topic)[p] == -1 for p in victim_parts),
               timeout=SESSION_TIMEOUT_MS / 1000 + 20, what="node 3's partitions to lose their leader")
    victim_tps = [TopicPartition(topic, p) for p in victim_parts]
    assert _elect(admin, ElectionType.PREFERRED, victim_tps) == \
        {(topic, p): KafkaError.PREFERRED_LEADER_NOT_AVAILABLE for p in victim_parts}
    assert _elect(admin, ElectionType.UNCLEAN, victim_tps) == \
        {(topic, p): KafkaError.ELIGIBLE_LEADERS_NOT_AVAILABLE for p in victim_parts}

    # Back again: the controller hands node 3 its partitions; nothing left to elect.
    victim.start()
    wait_until(lambda: leaders(bs, topic) == before, timeout=30, what="node 3 to lead its partitions again")
    assert _elect(AdminClient({"bootstrap.servers": bs}), ElectionType.PREFERRED, None) == {}
