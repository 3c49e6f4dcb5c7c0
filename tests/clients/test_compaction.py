"""Compacted topics through stock clients: the cleaner keeps the latest record
per key at its original offset, drops superseded records and (after
delete.retention.ms) tombstones, never touches the active segment, handles
compressed batches by re-encoding the survivors with the batch's codec, and
removes the records of aborted transactions written by a transactional producer.
"""

from __future__ import annotations

import os
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from conftest import ok, run_kjs, wait_until
from helpers import consumer, create_topic, produce_ok, watermarks

KEYS = [f"user-{i}" for i in range(10)]
ROUNDS = 12


def _fill(broker, topic, compression):
    """ROUNDS versions of every key (one batch per round), then a tombstone
    for the last key and one more record so the tombstone's segment is sealed.
    Returns {key: (offset, value)} of the latest record per key and the end offset."""
    latest = {}
    conf = {"linger.ms": 0, "compression.type": compression}
    for r in range(ROUNDS):
        reports = produce_ok(broker, topic, [{"key": k.encode(), "value": f"{k}@{r}".encode() * 8} for k in KEYS],
                             conf=conf)
        for k, rep in zip(KEYS, reports):
            latest[k] = (rep.offset, f"{k}@{r}".encode() * 8)
    tomb = produce_ok(broker, topic, [{"key": KEYS[-1].encode(), "value": None}], conf=conf)[0]
    latest[KEYS[-1]] = (tomb.offset, None)
    # Enough incompressible filler to roll past the tombstone's segment
    # (segments are ~1.5 KB), so that everything above is in sealed segments.
    for _ in range(3):
        produce_ok(broker, topic, [{"key": b"filler", "value": os.urandom(600)}], conf=conf)
    end = watermarks(broker, topic, 0)[1]
    return latest, end


def consume_until(broker, topic, start, end):
    """Every message from `start` until the one before `end` (or 30 s)."""
    c = consumer(broker, **{"auto.offset.reset": "earliest"})
    out = []
    try:
        c.assign([TopicPartition(topic, 0, start)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not out or out[-1].offset() < end - 1):
            for m in c.consume(num_messages=1000, timeout=0.5):
                assert not m.error(), m.error()
                out.append(m)
    finally:
        c.close()
    return out


@pytest.mark.parametrize("compression", ["none", "lz4", "gzip"])
def test_compaction_keeps_latest_value_per_key_at_its_offset(broker_factory, topic, compression):
    broker = broker_factory({"log.cleaner.backoff.ms": "200"})
    create_topic(broker, topic, config={
        "cleanup.policy": "compact",
        "internal.segment.bytes": "1500",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0",
    })
    latest, end = _fill(broker, topic, compression)

    def compacted():
        msgs = consume_until(broker, topic, 0, end)
        keyed = [m for m in msgs if m.key() != b"filler"]
        by_key = {}
        for m in keyed:
            by_key.setdefault(m.key().decode(), []).append(m)
        # Done when every non-deleted key appears once and the tombstone is gone.
        if all(len(by_key.get(k, [])) == 1 for k in KEYS[:-1]) and KEYS[-1] not in by_key:
            return msgs
        return None

    msgs = wait_until(compacted, 60, interval=0.5, what="the cleaner compacts the log")
    keyed = {m.key().decode(): m for m in msgs if m.key() != b"filler"}
    for k in KEYS[:-1]:
        offset, value = latest[k]
        assert keyed[k].offset() == offset, (k, keyed[k].offset(), offset)
        assert keyed[k].value() == value
    # Offsets only ever increase and the end offset did not move.
    offsets = [m.offset() for m in msgs]
    assert offsets == sorted(set(offsets))
    assert watermarks(broker, topic, 0)[1] == end
    assert len(msgs) < end

    # Other clients read the compacted log (with its offset gaps) the same way.
    kp = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000,
                       auto_offset_reset="earliest")
    try:
        tp = KpTopicPartition(topic, 0)
        kp.assign([tp])
        kp.seek_to_beginning(tp)
        kp_msgs = []
        for m in kp:
            kp_msgs.append(m)
            if m.offset >= end - 1:
                break
    finally:
        kp.close()
    assert [(m.offset, m.key, m.value) for m in kp_msgs] == [(m.offset(), m.key(), m.value()) for m in msgs]
    # kafkajs' consumer skips the offset gaps compaction leaves inside and between batches.
    res = run_kjs(broker, [{"op": "consumeGroup", "groupId": f"kjs-{topic}", "topic": topic, "count": len(msgs)}])
    assert [int(m["offset"]) for m in ok(res[0])["messages"]] == offsets

    # The compacted log survives a restart unchanged, and producing continues at the end.
    broker.restart()
    again = consume_until(broker, topic, 0, end)
    assert [(m.offset(), m.key(), m.value()) for m in again] == [(m.offset(), m.key(), m.value()) for m in msgs]
    produce_ok(broker, topic, [{"key": b"user-0", "value": b"after restart"}])
    assert watermarks(broker, topic, 0)[1] == end + 1


def test_active_segment_and_min_compaction_lag_are_respected(broker_factory, topic):
    broker = broker_factory({"log.cleaner.backoff.ms": "200"})
    # One big segment (the active one) and a long min.compaction.lag.ms: nothing may be removed.
    create_topic(broker, topic, config={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01",
                                        "internal.segment.bytes": "1500", "min.compaction.lag.ms": "3600000"})
    for r in range(5):
        produce_ok(broker, topic, [{"key": b"k", "value": b"v%d" % r + b"." * 400}], conf={"linger.ms": 0})
    time.sleep(1.5)  # several cleaner rounds
    assert len(consume_until(broker, topic, 0, 5)) == 5


def _read_all(broker, topic, end, isolation):
    """(offset, key, value) of every record from 0 until `end` with `isolation` (bounded, 30 s)."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"compact-{isolation}",
                  "enable.auto.commit": False, "isolation.level": isolation, "enable.partition.eof": True})
    out = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF and m.offset() >= end:
                    break
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                continue
            out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return out


def test_compaction_removes_aborted_transactions_and_keeps_committed_ones(broker_factory, topic):
    """A compacted topic written by a transactional producer: the cleaner drops
    the records of aborted transactions (even though their keys are the latest
    in the log), keeps the latest committed record per key at its offset, and
    both isolation levels then read the same committed view."""
    broker = broker_factory({"log.cleaner.backoff.ms": "200", "transaction.state.log.num.partitions": "1",
                             "offsets.topic.num.partitions": "1"})
    create_topic(broker, topic, config={
        "cleanup.policy": "compact",
        "internal.segment.bytes": "1500",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0",
    })
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": f"tid-{topic}", "linger.ms": 5})
    p.init_transactions(30)
    offsets = {}

    def txn(keys, tag, commit):
        p.begin_transaction()
        for k in keys:
            def cb(err, msg, k=k):
                assert err is None, err
                offsets[(k, tag)] = msg.offset()
            p.produce(topic, key=k.encode(), value=f"{k}@{tag}".encode() * 20, on_delivery=cb)
        assert p.flush(30) == 0
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)

    txn(KEYS, "first", commit=True)
    txn(KEYS, "aborted", commit=False)          # newer than "first" for every key, but aborted
    txn(KEYS[:5], "second", commit=True)        # supersedes "first" for half the keys
    txn(KEYS[5:], "aborted-again", commit=False)
    # Non-transactional filler seals the segments holding all of the above.
    produce_ok(broker, topic, [{"key": b"filler", "value": os.urandom(600)} for _ in range(4)],
               conf={"linger.ms": 0})
    end = watermarks(broker, topic, 0)[1]

    expected = {}
    for k in KEYS:
        tag = "second" if k in KEYS[:5] else "first"
        expected[k] = (offsets[(k, tag)], f"{k}@{tag}".encode() * 20)

    def cleaned():
        got = _read_all(broker, topic, end, "read_uncommitted")
        keyed = [(o, k, v) for o, k, v in got if k != b"filler"]
        if any(b"@aborted" in v for _, _, v in keyed) or len(keyed) != len(KEYS):
            return None
        return got

    got = wait_until(cleaned, 90, interval=1.0, what="the cleaner removes aborted transactions")
    keyed = {k.decode(): (o, v) for o, k, v in got if k != b"filler"}
    assert keyed == expected
    committed = _read_all(broker, topic, end, "read_committed")
    assert [r for r in committed if r[1] != b"filler"] == [r for r in got if r[1] != b"filler"]
    offs = [o for o, _, _ in got]
    assert offs == sorted(set(offs))
    assert watermarks(broker, topic, 0)[1] == end

    # The cleaned log survives a restart, and the same transactional id goes on writing.
    broker.restart()
    assert _read_all(broker, topic, end, "read_committed") == committed
    p2 = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": f"tid-{topic}", "linger.ms": 5})
    p2.init_transactions(30)
    p2.begin_transaction()
    p2.produce(topic, key=b"user-0", value=b"after restart")
    p2.commit_transaction(30)
    after = _read_all(broker, topic, end + 2, "read_committed")
    assert after[-1][1:] == (b"user-0", b"after restart")
