"""A full disk under log.dirs: produce fails with an error, the node lives on.

The broker's data directory is a 16 MiB tmpfs mounted for the test (the metadata
log lives in `metadata.log.dir` on the ordinary disk, as Kafka recommends for a
separate metadata volume, so DeleteTopics still commits). Index files are
memory-mapped; writing through a map into a page the filesystem cannot allocate
raises SIGBUS, which killed the whole broker. The test fills the disk with
confluent-kafka and checks that:

- the broker process stays alive (no signal) and produce gets KAFKA_STORAGE_ERROR,
  not a hang;
- a partition whose log tail still has room but whose index needs its first page
  (the exact state that raised SIGBUS: `index.interval.bytes=1`, one record
  written before the disk filled) is answered too (an ack or
  KAFKA_STORAGE_ERROR), without a signal;
- every record acknowledged before is readable, byte for byte;
- after DeleteTopics of the filler topic frees space, produce works again.

Mounting needs root (CI runs the suite as root); without it the test fails with
the reason rather than skip.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer

from conftest import unique_topic, wait_until
from helpers import admin, consume, create_topic, produce_ok

DISK_SIZE = "16m"
VICTIM_PARTITIONS = 8
# Record sizes of the fill, largest first: each step produces until the disk
# refuses, so the last one leaves (nearly) no free page behind.
FILL_STEPS = [256 * 1024, 16 * 1024, 1024, 64]


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 16 MiB tmpfs at tmp_path/small-disk, unmounted in teardown."""
    if os.geteuid() != 0:
        pytest.fail(f"test_disk_full needs root to mount a tmpfs (CI runs as root); running as uid {os.geteuid()}")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.fail(f"cannot mount a {DISK_SIZE} tmpfs at {mnt}: exit {r.returncode}: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        # The broker (a later fixture) is stopped before this runs.
        r = subprocess.run(["umount", str(mnt)], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _assert_alive(broker, when: str) -> None:
    code = broker.proc.poll()
    assert code is None, f"the broker died {when}: exit status {code} (negative = killed by signal {-code if code else 0})"


class OneByOne:
    """A producer that sends one record at a time and waits for its report (bounded),
    without retries: a refused record comes back with the broker's error code."""

    def __init__(self, broker):
        self.p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0,
                           "enable.idempotence": False, "message.send.max.retries": 0,
                           "message.timeout.ms": 15000, "socket.timeout.ms": 10000})

    def send(self, topic: str, partition: int, value: bytes) -> tuple[KafkaError | None, int]:
        out: list = []
        self.p.produce(topic, value=value, partition=partition,
                       on_delivery=lambda err, m: out.append((err, m.offset())))
        deadline = time.monotonic() + 20
        while not out and time.monotonic() < deadline:
            self.p.poll(0.1)
        assert out, f"no delivery report for a record to {topic}-{partition} within 20 s (a hang)"
        return out[0]


def test_full_disk_fails_produce_keeps_the_node_and_recovers(tmp_path, small_disk, broker_factory):
    broker = broker_factory({"log.dirs": str(small_disk), "metadata.log.dir": str(tmp_path / "metadata")})
    filler, victims = unique_topic("filler"), unique_topic("victim")
    create_topic(broker, filler, partitions=1)
    # An offset-index entry for every batch after a segment's first.
    create_topic(broker, victims, partitions=VICTIM_PARTITIONS, config={"index.interval.bytes": "1"})
    producer = OneByOne(broker)

    acked: dict[tuple[str, int], dict[int, bytes]] = {}

    def send(topic, partition, value):
        err, offset = producer.send(topic, partition, value)
        if err is None:
            acked.setdefault((topic, partition), {})[offset] = value
        return err

    # One small record per victim partition: its log has a tail page with room,
    # its indexes no page yet.
    for p in range(VICTIM_PARTITIONS):
        assert send(victims, p, f"victim-{p}-0".encode()) is None

    # Fill the disk, largest records first, each size until the disk refuses it.
    refusals: list[KafkaError] = []
    i = 0
    for size in FILL_STEPS:
        for _ in range(16 * 1024 * 1024 // size + 16):
            i += 1
            value = (f"fill-{i}-".encode() * (size // 8 + 1))[:size]
            err = send(filler, 0, value)
            _assert_alive(broker, f"while filling the disk with {size}-byte records")
            if err is not None:
                refusals.append(err)
                break
        else:
            pytest.fail(f"{size}-byte records never filled the {DISK_SIZE} disk (free: {_free_bytes(small_disk)} B)")
    assert refusals, "the disk never filled"
    assert all(e.code() == KafkaError.KAFKA_STORAGE_ERROR for e in refusals), \
        f"a full disk is answered KAFKA_STORAGE_ERROR: {[e.str() for e in refusals]}"
    filled = sum(len(v) for v in acked.get((filler, 0), {}).values())
    assert filled > 8 * 1024 * 1024, f"only {filled} bytes acknowledged before the disk was full"

    # The state that raised SIGBUS: each victim's next record fits its log's
    # tail page, and its first index entry needs an index page. (Klamm now
    # allocates index blocks before it writes a batch, so the victims' first
    # appends already did; either way the answer is an ack or
    # KAFKA_STORAGE_ERROR, and the process lives.)
    for p in range(VICTIM_PARTITIONS):
        err = send(victims, p, f"victim-{p}-1".encode())
        _assert_alive(broker, f"after a produce to {victims}-{p} on the full disk")
        assert err is None or err.code() == KafkaError.KAFKA_STORAGE_ERROR, err.str()
    # Still full: a new record for the filler is refused, not hung.
    err = send(filler, 0, b"y" * 4096)
    assert err is not None and err.code() == KafkaError.KAFKA_STORAGE_ERROR, err

    # Everything acknowledged is readable, in place and byte for byte.
    for (topic, partition), records in sorted(acked.items()):
        got = consume(broker, topic, partition, 0, len(records), timeout=60)
        assert {g.offset: g.value for g in got[:len(records)]} == records, f"{topic}-{partition}"
    _assert_alive(broker, "while reading back")

    # Free the space: delete the filler topic; produce works again.
    a = admin(broker)  # keep the client alive until the future resolves
    a.delete_topics([filler], operation_timeout=30)[filler].result(timeout=40)
    wait_until(lambda: _free_bytes(small_disk) > 12 * 1024 * 1024, timeout=30, what="the filler's space to be freed")
    for p in range(VICTIM_PARTITIONS):
        assert send(victims, p, f"victim-{p}-after".encode()) is None, f"{victims}-{p} takes records again"
    more = produce_ok(broker, victims, [{"value": b"x" * 1024, "partition": p} for p in range(VICTIM_PARTITIONS)])
    assert len(more) == VICTIM_PARTITIONS
    for p in range(VICTIM_PARTITIONS):
        records = acked[(victims, p)]
        got = consume(broker, victims, p, 0, len(records), timeout=30)
        assert {g.offset: g.value for g in got[:len(records)]} == records
    producer.p.flush(5)
    _assert_alive(broker, "at the end")
