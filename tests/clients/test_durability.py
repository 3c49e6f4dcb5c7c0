"""Acknowledged data, topics and configs survive a broker restart (SIGTERM and kill -9)."""

from __future__ import annotations

import re
import signal
import time

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from conftest import run_kcat, unique_topic
from helpers import admin, consume, create_topic, produce_ok, wait_for_leaders, watermarks

N = 2000


def _describe_topic(broker, topic) -> dict:
    a = admin(broker)  # keep the client alive until the future resolves
    fs = a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=15)
    return list(fs.values())[0].result(timeout=20)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_acked_records_topics_and_configs_survive_restart(broker, sig):
    t1, t2 = unique_topic("dur"), unique_topic("dur")
    create_topic(broker, t1, partitions=3, config={"retention.ms": "86400000", "segment.bytes": "1048576"})
    create_topic(broker, t2, partitions=1)
    msgs = [{"key": f"k{i}".encode(), "value": f"value-{i}-".encode() * 20, "partition": i % 3,
             "headers": [("i", str(i).encode())], "timestamp": 1_700_000_000_000 + i} for i in range(N)]
    reports = produce_ok(broker, t1, msgs, {"acks": "all", "enable.idempotence": True})
    per_part = {p: [r.offset for r in reports if r.partition == p] for p in range(3)}
    for p in range(3):
        assert per_part[p] == list(range(len(per_part[p])))
    produce_ok(broker, t2, [{"value": b"only", "partition": 0}])

    # stop right after the acks (kill -9 gives no chance to flush anything that was not durable)
    broker.restart(sig)
    assert not broker.last_stop_forced, "klamm did not exit within 15 s of SIGTERM"

    wait_for_leaders(broker, t1, 3)
    wait_for_leaders(broker, t2, 1)
    md = admin(broker).list_topics(timeout=10)
    assert t1 in md.topics and t2 in md.topics
    assert len(md.topics[t1].partitions) == 3
    cfg = _describe_topic(broker, t1)
    assert cfg["retention.ms"].value == "86400000"
    assert cfg["segment.bytes"].value == "1048576"
    for p in range(3):
        n = len(per_part[p])
        assert watermarks(broker, t1, p) == (0, n)
        got = consume(broker, t1, p, 0, n, timeout=60)
        expect = [m for m in msgs if m["partition"] == p]
        assert [g.offset for g in got] == list(range(n))
        assert [g.key for g in got] == [m["key"] for m in expect]
        assert [g.value for g in got] == [m["value"] for m in expect]
        assert [g.headers for g in got] == [m["headers"] for m in expect]
        assert [g.timestamp[1] for g in got] == [m["timestamp"] for m in expect]
    assert consume(broker, t2, 0, 0, 1)[0].value == b"only"

    # new records continue at the old end offsets, from a fresh idempotent producer too
    more = produce_ok(broker, t1, [{"value": b"after-restart", "partition": p} for p in range(3)],
                      {"enable.idempotence": True})
    assert [(r.partition, r.offset) for r in more] == [(p, len(per_part[p])) for p in range(3)]
    # and a second restart keeps those as well
    broker.restart(sig)
    for p in range(3):
        assert watermarks(broker, t1, p) == (0, len(per_part[p]) + 1)
        assert consume(broker, t1, p, len(per_part[p]), 1)[0].value == b"after-restart"


def test_deleted_topic_stays_deleted_after_restart(broker):
    keep, gone = unique_topic("keep"), unique_topic("gone")
    create_topic(broker, keep, partitions=1)
    create_topic(broker, gone, partitions=1)
    produce_ok(broker, gone, [{"value": b"x", "partition": 0}])
    a = admin(broker)  # keep the client alive until the future resolves
    a.delete_topics([gone], operation_timeout=15)[gone].result(timeout=20)
    broker.restart(signal.SIGTERM)
    md = admin(broker).list_topics(timeout=10)
    assert keep in md.topics
    assert gone not in md.topics


def test_kcat_produced_data_survives_kill9(broker, topic):
    create_topic(broker, topic, partitions=1)
    lines = [f"line-{i}" for i in range(500)]
    # kcat waits for all delivery reports before exiting (acks=all)
    run_kcat(["-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-X", "acks=all"],
             input=("\n".join(lines) + "\n").encode())
    broker.restart(signal.SIGKILL)
    got = consume(broker, topic, 0, 0, 500, timeout=60)
    assert [g.value for g in got] == [x.encode() for x in lines]
    assert produce_ok(broker, topic, [{"value": b"next", "partition": 0}])[0].offset == 500


def _recovery_point(partition_dir) -> int | None:
    """The checkpointed recovery point (format: version, count, value)."""
    try:
        lines = (partition_dir / "recovery-point-offset-checkpoint").read_text().split()
    except FileNotFoundError:
        return None
    return int(lines[2])


def _snapshot_offset(partition_dir) -> int | None:
    """The offset of the producer-state snapshot (u16 version, then i64 offset)."""
    try:
        data = (partition_dir / "producer-state-snapshot").read_bytes()
    except FileNotFoundError:
        return None
    return int.from_bytes(data[2:10], "big", signed=True)


def _segment_bases(partition_dir) -> list[int]:
    return sorted(int(p.stem) for p in partition_dir.glob("*.log"))


def test_kill9_recovers_only_segments_above_the_recovery_point(broker, topic):
    """Segments fsynced in the background are trusted after kill -9 (Kafka's
    recovery point); the rest are validated, producer state is loaded from its
    snapshot, and nothing acked is lost; the idempotent producer goes on."""
    create_topic(broker, topic, partitions=1, config={"internal.segment.bytes": "16384"})
    msgs = [{"key": f"k{i}".encode(), "value": f"order-{i}-".encode() * 10, "partition": 0} for i in range(3000)]
    produce_ok(broker, topic, msgs, {"acks": "all", "enable.idempotence": True, "batch.num.messages": 20})
    pdir = broker.data_dir / f"{topic}-0"
    bases = _segment_bases(pdir)
    assert len(bases) > 20, bases
    # The maintenance tick (200 ms) fsyncs rolled segments and checkpoints.
    deadline = time.monotonic() + 20
    while (_recovery_point(pdir) or 0) < bases[-1] and time.monotonic() < deadline:
        time.sleep(0.1)
    checkpointed = _recovery_point(pdir)
    assert checkpointed == bases[-1], (checkpointed, bases[-1])
    # The same tick snapshots the producer state after a roll.
    while (_snapshot_offset(pdir) or 0) < bases[-1] and time.monotonic() < deadline:
        time.sleep(0.1)
    snapshot = _snapshot_offset(pdir)
    assert snapshot is not None and snapshot >= bases[-1], (snapshot, bases[-1])

    log_lines_before = len(broker.log_path.read_text(errors="replace").splitlines())
    broker.restart(signal.SIGKILL)
    text = re.sub(r"\x1b\[[0-9;]*m", "", broker.log_path.read_text(errors="replace"))
    opened = [line for line in text.splitlines()[log_lines_before:] if "opened log" in line and f"{topic}-0" in line]
    assert opened and "clean=false" in opened[-1], opened
    # Only the active segment was recovered: the recovery point is its base.
    assert f"recovery_point={bases[-1]}" in opened[-1], opened[-1]
    # Producer state came from the snapshot plus the batches after it.
    loaded = [line for line in text.splitlines()[log_lines_before:] if "partition loaded" in line and f"topic=\"{topic}\"" in line]
    assert loaded and f"snapshot_offset={snapshot}" in loaded[-1] and f"replayed_from={snapshot}" in loaded[-1], loaded

    got = consume(broker, topic, 0, 0, len(msgs), timeout=60)
    assert [g.value for g in got] == [m["value"] for m in msgs]
    assert [g.key for g in got] == [m["key"] for m in msgs]
    more = produce_ok(broker, topic, [{"value": b"after-" * 50, "partition": 0}] * 200,
                      {"acks": "all", "batch.num.messages": 20})
    assert more[0].offset == len(msgs)
    # Rolls after the restart move the checkpoint again.
    deadline = time.monotonic() + 20
    while (_recovery_point(pdir) or 0) <= checkpointed and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _recovery_point(pdir) > checkpointed
