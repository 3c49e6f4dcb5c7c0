"""Many partitions on one node: the open-file limit and partitions that cannot be opened.

- The broker raises its soft RLIMIT_NOFILE to the hard limit at start-up, so a node
  started with the 1 024-style soft limit most Linux machines give processes still
  opens a topic of many partitions (each open partition holds one descriptor for its
  active segment; its index files are closed once mapped).
- A partition whose log cannot be opened does not take the node down: the other
  partitions are served, Metadata reports the partition's leader as not available
  with this node among its offline replicas, produce to it answers
  KAFKA_STORAGE_ERROR, and the open is retried until it succeeds.

Clients: confluent-kafka (librdkafka) and raw Metadata/Produce requests (kafka_wire).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

import kafka_wire as wire
from conftest import Broker, unique_topic
from confluent_kafka.admin import NewTopic

from helpers import admin, consume_many, create_topic, produce_ok, wait_for_leaders, watermarks

LEADER_NOT_AVAILABLE = 5
KAFKA_STORAGE_ERROR = 56
OFFLINE_REPLICAS_METADATA_VERSION = 5


class LimitedBroker(Broker):
    """A broker started under `prlimit --nofile=SOFT:HARD` (prlimit execs the broker,
    so the PID is the broker's own)."""

    def __init__(self, workdir, soft: int, hard: int, overrides=None):
        super().__init__(workdir, overrides)
        self.soft, self.hard = soft, hard

    def argv(self) -> list[str]:
        return ["prlimit", f"--nofile={self.soft}:{self.hard}", "--"] + super().argv()


def create_many(broker, topic: str, partitions: int) -> None:
    """CreateTopics answers once every partition is open on this node, which takes
    a while for hundreds of partitions on a slow disk: wait longer than the helper."""
    a = admin(broker, **{"socket.timeout.ms": 120000})
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                    operation_timeout=120, request_timeout=120)[topic].result(timeout=130)
    wait_for_leaders(broker, topic, partitions, timeout=60)


def nofile_limits(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' line")


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def started(request):
    brokers: list[Broker] = []
    request.node._klamm_brokers = brokers
    yield brokers
    for b in brokers:
        b.stop()


def metadata_v5(conn: wire.Conn, topic: str) -> list[tuple[int, int, int, list[int]]]:
    """Metadata v5 for one topic: (partition, error_code, leader, offline_replicas) sorted."""
    body = wire.array([wire.string(topic)]) + wire.i8(0)  # allow_auto_topic_creation = false
    r = conn.request(wire.METADATA, OFFLINE_REPLICAS_METADATA_VERSION, body)
    r.i32()  # throttle
    r.array(lambda rr: (rr.i32(), rr.string(), rr.i32(), rr.string()))
    r.string()  # cluster id
    r.i32()  # controller id

    def part(rr):
        error, index, leader = rr.i16(), rr.i32(), rr.i32()
        rr.array(lambda x: x.i32())  # replicas
        rr.array(lambda x: x.i32())  # isr
        offline = rr.array(lambda x: x.i32()) or []
        return (index, error, leader, offline)

    topics = r.array(lambda rr: (rr.i16(), rr.string(), rr.boolean(), rr.array(part))) or []
    assert len(topics) == 1 and topics[0][0] == 0, topics
    return sorted(topics[0][3])


def test_soft_open_file_limit_is_raised_to_the_hard_limit(tmp_path, started):
    """Soft limit 256, hard 8192: 600 partitions need more than 256 descriptors; the
    broker raises its soft limit, opens them all and serves every one."""
    b = LimitedBroker(tmp_path / "b", soft=256, hard=8192)
    started.append(b)
    b.start()
    assert nofile_limits(b.proc.pid) == (8192, 8192)
    assert "raised the open file limit" in b.log_path.read_text()
    topic = unique_topic("many")
    create_many(b, topic, 600)
    # One record into every partition, read back from a spread of them.
    produce_ok(b, topic, [{"value": f"v{p}".encode(), "partition": p} for p in range(600)])
    assert "opening partition failed" not in b.log_path.read_text()
    sample = list(range(0, 600, 37))
    got = consume_many(b, [(topic, p, 0) for p in sample], len(sample))
    assert sorted((g.partition, g.value) for g in got) == [(p, f"v{p}".encode()) for p in sample]
    # A partition costs one descriptor (its active segment), not three.
    assert open_descriptors(b.proc.pid) < 600 + 150, open_descriptors(b.proc.pid)


def test_a_partition_that_cannot_be_opened_is_served_offline_and_retried(tmp_path, started):
    """Partition 1's segment file is replaced by a directory while the broker is down.
    Before: the node refused to start ('open partition logs'). Now it starts, serves
    partitions 0 and 2, reports partition 1 offline, and opens it once it is repaired."""
    b = Broker(tmp_path / "b")
    started.append(b)
    b.start()
    topic = unique_topic("offline")
    create_topic(b, topic, partitions=3)
    produce_ok(b, topic, [{"value": f"p{p}-{i}".encode(), "partition": p} for p in range(3) for i in range(10)])
    b.stop()
    assert b.proc.returncode == 0

    segment = b.data_dir / f"{topic}-1" / "00000000000000000000.log"
    saved = segment.with_name("saved.log.bak")
    segment.rename(saved)
    segment.mkdir()  # opening it as a file fails with EISDIR, whoever runs the test
    try:
        b.start()
        # The other partitions are served with their data.
        got = consume_many(b, [(topic, 0, 0), (topic, 2, 0)], 20)
        assert sorted(g.value for g in got) == sorted(f"p{p}-{i}".encode() for p in (0, 2) for i in range(10))
        with b.conn() as c:
            parts = metadata_v5(c, topic)
            assert parts[0][1:] == (0, 1, []) and parts[2][1:] == (0, 1, []), parts
            assert parts[1][1:] == (LEADER_NOT_AVAILABLE, -1, [1]), parts
            batch = wire.record_batch([wire.Record(key=None, value=b"late")])
            res = wire.produce_v3(c, topic, 1, batch, acks=1)
            assert res[topic][0].error_code == KAFKA_STORAGE_ERROR, res
        assert "opening partition failed" in b.log_path.read_text()
        assert b.is_running()
    finally:
        segment.rmdir()
        saved.rename(segment)

    # Repaired: a retry (back-off 1 s, doubling) opens it with its data.
    deadline = time.monotonic() + 90
    while True:
        with b.conn() as c:
            parts = metadata_v5(c, topic)
        if parts[1][1:] == (0, 1, []):
            break
        assert time.monotonic() < deadline, f"partition 1 still offline: {parts}"
        time.sleep(0.5)
    assert "offline partition opened" in b.log_path.read_text()
    assert watermarks(b, topic, 1) == (0, 10)
    produce_ok(b, topic, [{"value": b"after", "partition": 1}])
    got = consume_many(b, [(topic, 1, 0)], 11)
    assert [g.value for g in got] == [f"p1-{i}".encode() for i in range(10)] + [b"after"]


def test_a_node_out_of_descriptors_still_starts_and_recovers(tmp_path, started):
    """Open-file limit 260 (soft = hard, so it cannot be raised) with 220 partitions of
    two topics on disk, restarted after kill -9: the node starts, serves what fits while
    keeping descriptors free for connections, reports the rest offline; deleting one
    topic frees descriptors and the retries open the other topic's partitions with
    their data."""
    b = Broker(tmp_path / "b")
    started.append(b)
    b.start()
    topic, filler = unique_topic("fds"), unique_topic("filler")
    create_many(b, topic, 120)
    create_many(b, filler, 100)
    produce_ok(b, topic, [{"value": f"v{p}".encode(), "partition": p} for p in range(120)])
    b.stop(signal.SIGKILL)

    limited = LimitedBroker(b.workdir, soft=260, hard=260)
    limited.port, limited.controller_port = b.port, b.controller_port
    started.append(limited)
    limited.start()
    with limited.conn() as c:
        parts = metadata_v5(c, topic) + metadata_v5(c, filler)
    offline = [p for p in parts if p[1] == LEADER_NOT_AVAILABLE]
    served = [p for p in parts if p[1] == 0 and p[2] == 1]
    assert offline and served and len(offline) + len(served) == 220, parts
    assert all(p[3] == [1] for p in offline), offline
    log = limited.log_path.read_text()
    assert "out_of_descriptors=true" in log
    # One summary line, not one warning per partition.
    assert log.count("could not be opened") == 1, log.count("could not be opened")
    assert limited.is_running()

    a = admin(limited)
    a.delete_topics([filler], operation_timeout=60)[filler].result(timeout=70)
    deadline = time.monotonic() + 120
    while True:
        with limited.conn() as c:
            parts = metadata_v5(c, topic)
        if all(err == 0 for _, err, _, _ in parts):
            break
        assert time.monotonic() < deadline, [p for p in parts if p[1] != 0][:5]
        time.sleep(1)
    got = consume_many(limited, [(topic, p, 0) for p in range(0, 120, 7)], len(range(0, 120, 7)))
    assert sorted((g.partition, g.value) for g in got) == [(p, f"v{p}".encode()) for p in range(0, 120, 7)]
