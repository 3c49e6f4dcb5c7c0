"""Group administration with stock admin clients (issue 3): ListGroups (with
states filter), DescribeGroups, DeleteGroups, OffsetDelete, OffsetFetch-based
lag, committed metadata, and bad input that must not disturb other groups."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException,
                             TopicPartition)
from kafka import KafkaAdminClient
from kafka import TopicPartition as KTP

from conftest import unique_topic, wait_until
from helpers import admin, create_topic, produce_ok, watermarks


def _err_name(err) -> str:
    """kafka-python reports per-partition results as error classes (NoError when fine)."""
    if err is None:
        return "NoError"
    return err.__name__ if isinstance(err, type) else type(err).__name__


def _consumer(broker, group):
    return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "session.timeout.ms": 10000})


def _read(c, n, timeout=60):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += [m for m in c.consume(n - len(out), 0.5) if not m.error()]
    return out


def test_list_describe_delete_groups_and_offsets(broker, topic):
    create_topic(broker, topic, partitions=2)
    other = unique_topic()
    create_topic(broker, other, partitions=1)
    produce_ok(broker, topic, [{"value": f"v{i}".encode(), "partition": i % 2} for i in range(10)])
    group = unique_topic("g")
    a = admin(broker)
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    c = _consumer(broker, group)
    try:
        c.subscribe([topic])
        assert len(_read(c, 10)) == 10
        c.commit(offsets=[TopicPartition(topic, 0, 3, metadata="m0"), TopicPartition(topic, 1, 5)], asynchronous=False)
        # Also an offset for a topic the group does not consume.
        c.commit(offsets=[TopicPartition(other, 0, 0)], asynchronous=False)

        listed = a.list_consumer_groups(states={ConsumerGroupState.STABLE}).result()
        assert group in [g.group_id for g in listed.valid]
        listed = a.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result()
        assert group not in [g.group_id for g in listed.valid]

        desc = a.describe_consumer_groups([group])[group].result()
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == "range"
        assert len(desc.members) == 1
        assert sorted(tp.partition for tp in desc.members[0].assignment.topic_partitions) == [0, 1]

        # Lag = end offset - committed offset.
        offs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0),
                                                                                    TopicPartition(topic, 1)])])
        tps = offs[group].result().topic_partitions
        lag = {tp.partition: watermarks(broker, topic, tp.partition)[1] - tp.offset for tp in tps}
        assert lag == {0: 2, 1: 0}
        assert tps[0].metadata == "m0"

        # A group with members can be neither deleted nor stripped of a consumed topic's offsets.
        with pytest.raises(KafkaException) as e:
            a.delete_consumer_groups([group])[group].result()
        assert "NON_EMPTY_GROUP" in str(e.value)
        res = kadmin.delete_group_offsets(group, [KTP(topic, 0), KTP(other, 0)])
        errs = {tp.topic: err for tp, err in res.items()}
        assert _err_name(errs[topic]) == "GroupSubscribedToTopicError", res
        assert _err_name(errs[other]) == "NoError", res
    finally:
        c.close()

    wait_until(lambda: a.describe_consumer_groups([group])[group].result().state == ConsumerGroupState.EMPTY, 30,
               what="group empty after close")
    res = kadmin.delete_group_offsets(group, [KTP(topic, 0)])
    assert all(_err_name(err) == "NoError" for err in res.values()), res
    left = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result().topic_partitions
    assert sorted((tp.topic, tp.partition, tp.offset) for tp in left) == [(topic, 1, 5)]
    a.delete_consumer_groups([group])[group].result()
    listed = a.list_consumer_groups().result()
    assert group not in [g.group_id for g in listed.valid]
    d = a.describe_consumer_groups([group])[group]
    try:
        assert d.result().state == ConsumerGroupState.DEAD
    except KafkaException as e:  # newer clients map a Dead group to GROUP_ID_NOT_FOUND
        assert "GROUP_ID_NOT_FOUND" in str(e)
    kadmin.close()


def test_kafka_python_admin_views(broker, topic):
    create_topic(broker, topic, partitions=1)
    produce_ok(broker, topic, [{"value": b"x"}])
    group = unique_topic("g")
    c = _consumer(broker, group)
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    try:
        c.subscribe([topic])
        assert len(_read(c, 1)) == 1
        c.commit(asynchronous=False)
        groups = kadmin.list_groups() if hasattr(kadmin, "list_groups") else kadmin.list_consumer_groups()
        assert group in str(groups)
        offsets = kadmin.list_group_offsets(group)[group]
        assert {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()} == {(topic, 0): 1}
        # A standalone commit (no membership: generation -1, empty member id)
        # creates an Empty group; both groups come back from one multi-group
        # OffsetFetch (v8+).
        solo = unique_topic("solo")
        s = _consumer(broker, solo)
        try:
            s.commit(offsets=[TopicPartition(topic, 0, 1, metadata="standalone")], asynchronous=False)
        finally:
            s.close()
        both = kadmin.list_group_offsets({group: None, solo: None})
        # (confluent-kafka sends the metadata with its C string terminator; the broker keeps the bytes it got)
        assert {g: {(tp.topic, tp.partition): (om.offset, om.metadata.rstrip("\x00")) for tp, om in o.items()}
                for g, o in both.items()} == {
            group: {(topic, 0): (1, "")}, solo: {(topic, 0): (1, "standalone")}}
    finally:
        c.close()
        kadmin.close()


def test_bad_group_requests_do_not_disturb_other_groups(broker, topic):
    """Unknown group in Heartbeat, wrong generation, empty protocol list: Kafka's
    error codes, and a healthy group next to them keeps working."""
    create_topic(broker, topic, partitions=1)
    produce_ok(broker, topic, [{"value": b"x"}])
    good = unique_topic("g")
    c = _consumer(broker, good)
    try:
        c.subscribe([topic])
        assert len(_read(c, 1)) == 1
        import socket
        import struct

        # FindCoordinator v0 for a fresh group, then raw JoinGroup/Heartbeat to the coordinator.
        def req(api_key, version, body, corr):
            hdr = struct.pack(">hhih", api_key, version, corr, 4) + b"test"
            msg = hdr + body
            return struct.pack(">i", len(msg)) + msg

        def roundtrip(s, api_key, version, body, corr=1):
            s.sendall(req(api_key, version, body, corr))
            n = struct.unpack(">i", _recv(s, 4))[0]
            data = _recv(s, n)
            assert struct.unpack(">i", data[:4])[0] == corr
            return data[4:]

        def _recv(s, n):
            b = b""
            while len(b) < n:
                chunk = s.recv(n - len(b))
                assert chunk, "connection closed"
                b += chunk
            return b

        def s16(x):
            x = x.encode()
            return struct.pack(">h", len(x)) + x

        with socket.create_connection(("127.0.0.1", broker.port), timeout=20) as s:
            # Heartbeat v0 for an unknown group: UNKNOWN_MEMBER_ID (25).
            body = s16("no-such-group") + struct.pack(">i", 1) + s16("m")
            r = roundtrip(s, 12, 0, body)
            assert struct.unpack(">h", r[:2])[0] in (25, 16), r  # 16 if another broker coordinates it
            # JoinGroup v1 with an empty protocol list: INCONSISTENT_GROUP_PROTOCOL (23).
            body = s16(unique_topic("bad")) + struct.pack(">ii", 10000, 10000) + s16("") + s16("consumer") + struct.pack(">i", 0)
            r = roundtrip(s, 11, 1, body, 2)
            assert struct.unpack(">h", r[:2])[0] == 23, r
            # Heartbeat with a wrong generation for the healthy group: ILLEGAL_GENERATION (22)
            # needs its member id; an unknown member of it gets UNKNOWN_MEMBER_ID (25).
            body = s16(good) + struct.pack(">i", 999) + s16("not-a-member")
            r = roundtrip(s, 12, 0, body, 3)
            assert struct.unpack(">h", r[:2])[0] == 25, r
        # The healthy group still consumes and commits.
        produce_ok(broker, topic, [{"value": b"y"}])
        assert [m.value() for m in _read(c, 1)] == [b"y"]
        c.commit(asynchronous=False)
        a = admin(broker)  # keep a reference: a dropped AdminClient never resolves its futures
        desc = a.describe_consumer_groups([good], request_timeout=30)[good].result()
        assert desc.state == ConsumerGroupState.STABLE and len(desc.members) == 1
    finally:
        c.close()
