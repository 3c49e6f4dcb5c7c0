"""Leadership admin APIs through stock clients on a real 3-node cluster
(cluster_fixture.py's `cluster3`): ElectLeaders with confluent-kafka's
AdminClient.elect_leaders and kafka-python's KafkaAdminClient.elect_leaders;
DescribeTopicPartitions (paginated) with kafka-python's describe_topic_partitions;
the controller id of Metadata and DescribeCluster; partition reassignment with
kafka-python's alter_partition_reassignments / list_partition_reassignments,
moving data between brokers through replication; a preferred election that
moves leadership back after a restart (replication factor 3).

With replication factor 1 every partition is led by its only (preferred)
replica, so an election is never needed while its broker lives, and neither
kind of election can help once that broker is gone; test_preferred_election
uses replication factor 3.
"""

from __future__ import annotations

import signal

from confluent_kafka import ElectionType, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka import TopicPartition as KTopicPartition

from cluster_fixture import SESSION_TIMEOUT_MS, cluster3  # noqa: F401 - fixture
from conftest import unique_topic, wait_until
from test_cluster import leaders, read_partition

PARTITIONS = 6


def _elect(admin: AdminClient, kind, tps) -> dict:
    """{(topic, partition): error code or None} (the values are KafkaError, not exceptions)"""
    # No timeout keywords: confluent-kafka 2.16.1's binding rejects them (a TypeError or a
    # SystemError from its argument parser); the defaults are socket.timeout.ms (60 s).
    result = admin.elect_leaders(kind, tps).result(70)
    return {(tp.topic, tp.partition): (None if err is None else err.code()) for tp, err in result.items()}


def _topic_with_leaders(admin: AdminClient, bs: str, prefix: str) -> str:
    """Creates a fresh topic of PARTITIONS partitions (RF 1) and waits until each has a leader."""
    topic = unique_topic(prefix)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(20)
    wait_until(lambda: len(leaders(bs, topic)) == PARTITIONS and all(l >= 0 for l in leaders(bs, topic).values()),
               what="leaders for every partition")
    return topic


def test_elect_leaders(cluster3):
    nodes = cluster3.nodes
    bs = cluster3.bootstrap()
    admin = AdminClient({"bootstrap.servers": bs})
    topic = _topic_with_leaders(admin, bs, "elect")
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
    obs = cluster3.bootstrap(nodes[:2])
    wait_until(lambda: all(leaders(obs, topic)[p] == -1 for p in victim_parts),
               timeout=SESSION_TIMEOUT_MS / 1000 + 20, what="node 3's partitions to lose their leader")
    # A new client: one that learnt the controller id before node 3 was fenced may still name
    # node 3 (if it was the active controller) and wait for it until its metadata refreshes.
    admin = AdminClient({"bootstrap.servers": obs})
    victim_tps = [TopicPartition(topic, p) for p in victim_parts]
    assert _elect(admin, ElectionType.PREFERRED, victim_tps) == \
        {(topic, p): KafkaError.PREFERRED_LEADER_NOT_AVAILABLE for p in victim_parts}
    assert _elect(admin, ElectionType.UNCLEAN, victim_tps) == \
        {(topic, p): KafkaError.ELIGIBLE_LEADERS_NOT_AVAILABLE for p in victim_parts}

    # Back again: the controller hands node 3 its partitions; nothing left to elect.
    victim.start()
    wait_until(lambda: leaders(bs, topic) == before, timeout=30, what="node 3 to lead its partitions again")
    assert _elect(AdminClient({"bootstrap.servers": bs}), ElectionType.PREFERRED, None) == {}


def _describe_all(kp: KafkaAdminClient, topics: list[str], limit: int) -> tuple[list[dict], int]:
    """Every page of describe_topic_partitions; returns the topics (pages merged) and the page count."""
    merged: dict[str, dict] = {}
    cursor, pages = None, 0
    while True:
        page = kp.describe_topic_partitions(topics, response_partition_limit=limit, cursor=cursor)
        pages += 1
        for t in page["topics"]:
            merged.setdefault(t["name"], {**t, "partitions": []})["partitions"].extend(t["partitions"])
        cursor = page["next_cursor"]
        if cursor is None or pages > 50:
            return list(merged.values()), pages


def test_describe_topic_partitions_and_controller(cluster3):
    nodes = cluster3.nodes
    bs = cluster3.bootstrap()
    admin = AdminClient({"bootstrap.servers": bs})
    topic = _topic_with_leaders(admin, bs, "dtp")
    before = leaders(bs, topic)

    # Every node names the same controller, and it is one of the listed brokers.
    controllers = set()
    for b in nodes:
        node_admin = AdminClient({"bootstrap.servers": b.bootstrap})  # kept alive until the future resolves
        md = node_admin.list_topics(timeout=10)
        controllers.add(md.controller_id)
        assert md.controller_id in md.brokers, (md.controller_id, md.brokers)
        cluster_info = node_admin.describe_cluster().result(10)
        assert cluster_info.controller.id == md.controller_id
    assert len(controllers) == 1, controllers

    kp = KafkaAdminClient(bootstrap_servers=bs)
    try:
        topics, pages = _describe_all(kp, [topic], limit=4)
        assert pages == 2, pages
        [t] = topics
        assert t["error_code"] == 0 and not t["is_internal"]
        parts = {p["partition_index"]: p for p in t["partitions"]}
        assert sorted(parts) == list(range(PARTITIONS))
        for pid, p in parts.items():
            assert (p["error_code"], p["leader_id"]) == (0, before[pid])
            assert p["replica_nodes"] == p["isr_nodes"] == [before[pid]]
            assert p["offline_replicas"] == []
        missing = kp.describe_topic_partitions(["no-such-" + topic])["topics"]
        assert [(x["name"], x["error_code"]) for x in missing] == [("no-such-" + topic, 3)]
    finally:
        kp.close()

    # SIGKILL node 3: its partitions are leaderless with an offline replica.
    victim = nodes[2]
    victim_parts = [p for p, l in before.items() if l == 3]
    assert victim_parts
    victim.stop(signal.SIGKILL)
    obs = cluster3.bootstrap(nodes[:2])
    wait_until(lambda: all(leaders(obs, topic)[p] == -1 for p in victim_parts),
               timeout=SESSION_TIMEOUT_MS / 1000 + 20, what="node 3's partitions to lose their leader")
    kp = KafkaAdminClient(bootstrap_servers=obs)
    try:
        [t], _ = _describe_all(kp, [topic], limit=2000)
        for p in t["partitions"]:
            if p["partition_index"] in victim_parts:
                assert (p["error_code"], p["leader_id"]) == (5, -1), p  # LEADER_NOT_AVAILABLE
                assert p["offline_replicas"] == [3] and p["isr_nodes"] == [3], p
            else:
                assert p["error_code"] == 0 and p["offline_replicas"] == [], p
        # The survivors agree on a controller among themselves.
        ids = {AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10).controller_id for b in nodes[:2]}
        assert len(ids) == 1 and ids <= {1, 2}, ids
    finally:
        kp.close()


def _partition(bs: str, topic: str, partition: int = 0):
    md = AdminClient({"bootstrap.servers": bs}).list_topics(topic, timeout=10)
    return md.topics[topic].partitions[partition]


def _produce(bs: str, topic: str, values: list[str]) -> None:
    p = Producer({"bootstrap.servers": bs, "acks": "all", "message.timeout.ms": 20000})
    errors = []
    for v in values:
        p.produce(topic, v.encode(), partition=0, on_delivery=lambda err, _m: errors.append(err))
    p.flush(30)
    assert errors == [None] * len(values), errors


def test_partition_reassignment(cluster3):
    bs = cluster3.bootstrap()
    admin = AdminClient({"bootstrap.servers": bs})
    topic = unique_topic("move")
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1, replica_assignment=[[1]])])[topic].result(20)
    wait_until(lambda: _partition(bs, topic).leader == 1, what="broker 1 to lead the partition")
    before = [f"v{i}" for i in range(20)]
    _produce(bs, topic, before)

    kp = KafkaAdminClient(bootstrap_servers=bs)
    try:
        tp = KTopicPartition(topic, 0)
        # Move it to brokers 2 and 3: they replicate it from 1, then 1 drops out and 2 leads.
        assert kp.alter_partition_reassignments({tp: [2, 3]}) == {tp: None}
        wait_until(lambda: kp.list_partition_reassignments() == {}, what="the reassignment to complete")
        p = _partition(bs, topic)
        assert (p.replicas, sorted(p.isrs), p.leader) == ([2, 3], [2, 3], 2), (p.replicas, p.isrs, p.leader)
        assert read_partition(bs, topic, 0, len(before), timeout=30) == before
        _produce(bs, topic, ["after-move"])

        # Grow it to three replicas with 1 at the end.
        assert kp.alter_partition_reassignments({tp: [2, 3, 1]}) == {tp: None}
        wait_until(lambda: kp.list_partition_reassignments() == {} and sorted(_partition(bs, topic).isrs) == [1, 2, 3],
                   what="broker 1 to catch up again")
        assert _partition(bs, topic).replicas == [2, 3, 1]

        # Errors are reported per partition.
        errors = kp.alter_partition_reassignments({tp: [2, 2], KTopicPartition(topic, 5): [1]})
        assert {t.partition: e.__name__ for t, e in errors.items()} == \
            {0: "InvalidReplicationAssignmentError", 5: "UnknownTopicOrPartitionError"}, errors
        assert kp.alter_partition_reassignments({tp: None}) == {tp: _no_reassignment_error()}
    finally:
        kp.close()
    assert read_partition(bs, topic, 0, len(before) + 1, timeout=30) == before + ["after-move"]


def _no_reassignment_error():
    from kafka.errors import NoReassignmentInProgressError
    return NoReassignmentInProgressError


def test_preferred_election(cluster3):
    """Replication factor 3: the preferred leader restarts, another replica leads meanwhile;
    once it is back in the ISR a preferred election (confluent-kafka) returns leadership."""
    nodes = cluster3.nodes
    bs = cluster3.bootstrap()
    admin = AdminClient({"bootstrap.servers": bs})
    topic = unique_topic("pref")
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1, replica_assignment=[[3, 1, 2]])])[topic].result(20)
    wait_until(lambda: sorted(_partition(bs, topic).isrs) == [1, 2, 3] and _partition(bs, topic).leader == 3,
               what="all three replicas in sync, 3 leading")
    _produce(bs, topic, ["a", "b"])
    victim = nodes[2]
    victim.stop(signal.SIGTERM)
    obs = cluster3.bootstrap(nodes[:2])
    wait_until(lambda: _partition(obs, topic).leader in (1, 2), timeout=30, what="another replica to lead")
    _produce(obs, topic, ["c"])
    victim.start()
    wait_until(lambda: sorted(_partition(bs, topic).isrs) == [1, 2, 3], timeout=30, what="3 back in the ISR")
    assert _partition(bs, topic).leader != 3
    tp = TopicPartition(topic, 0)
    admin = AdminClient({"bootstrap.servers": bs})
    assert _elect(admin, ElectionType.PREFERRED, [tp]) == {(topic, 0): None}
    assert _partition(bs, topic).leader == 3
    assert _elect(admin, ElectionType.PREFERRED, [tp]) == {(topic, 0): KafkaError.ELECTION_NOT_NEEDED}
    assert read_partition(bs, topic, 0, 3, timeout=30) == ["a", "b", "c"]
