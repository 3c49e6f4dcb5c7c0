"""Transactions (exactly-once) through stock clients against one klamm node.

confluent-kafka (librdkafka): commit and abort; read_committed versus
read_uncommitted readers; fencing by a second producer with the same
transactional.id; a transaction left open past transaction.timeout.ms aborted
by the coordinator; a timeout above transaction.max.timeout.ms refused;
send_offsets_to_transaction (committed offsets appear exactly at commit, and
OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT meanwhile);
many transactions interleaved over partitions and producers; the
consume-transform-produce order processor of examples/exactly-once.
kafkajs 2.2.4: producer.transaction() with send/sendOffsets/commit/abort and a
read_committed consumer. kafka-python 3.0: KafkaProducer(transactional_id=...)
commit and abort read by a read_committed KafkaConsumer.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

import kafka_wire as wire
from conftest import NODE_DIR, REPO, ok, run_kjs, unique_topic, wait_until
from helpers import create_topic, produce_ok
from test_metrics import scrape, value

EXAMPLES = REPO / "examples" / "exactly-once"
UNSTABLE_OFFSET_COMMIT = 88
OFFSET_FETCH = 9

# Small internal topics: a fresh broker creates them at the first use.
BROKER_CONF = {
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
    "group.initial.rebalance.delay.ms": "0",
}


@pytest.fixture
def txn_broker(broker_factory):
    return broker_factory(BROKER_CONF)


def txn_producer(broker, tid: str, **conf) -> Producer:
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": tid, "linger.ms": 5, **conf})
    p.init_transactions(30)
    return p


def in_txn(p: Producer, topic: str, values: list[str], end: str = "commit", partition: int | None = None) -> None:
    """One transaction writing `values`; end: commit, abort, or open (flushed, left running)."""
    p.begin_transaction()
    for v in values:
        if partition is None:
            p.produce(topic, value=v.encode())
        else:
            p.produce(topic, value=v.encode(), partition=partition)
    if end == "commit":
        p.commit_transaction(30)
    elif end == "abort":
        # Written first: librdkafka's abort purges records still queued, and the
        # point is to abort records that are in the log.
        assert p.flush(30) == 0
        p.abort_transaction(30)
    else:
        assert p.flush(30) == 0


def read_values(broker, topic: str, partitions: int, isolation: str, expect: int | None = None,
                settle: float = 2.0, timeout: float = 30.0) -> dict[int, list[tuple[int, str]]]:
    """Reads every partition from the start with `isolation`; returns
    {partition: [(offset, value)]}. Stops once `expect` records arrived (or,
    without it, when nothing new came for `settle` seconds) and then waits
    `settle` more seconds to catch anything that should not be there."""
    c = Consumer({
        "bootstrap.servers": broker.bootstrap, "group.id": "klamm-tests-txn-reader",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "isolation.level": isolation, "enable.partition.eof": False,
    })
    out: dict[int, list[tuple[int, str]]] = {p: [] for p in range(partitions)}
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        done_at = None
        while time.monotonic() < deadline:
            msgs = c.consume(num_messages=1000, timeout=0.3)
            for m in msgs:
                if m.error():
                    raise KafkaException(m.error())
                out[m.partition()].append((m.offset(), m.value().decode()))
            n = sum(len(v) for v in out.values())
            if msgs:
                quiet_since = time.monotonic()
            if done_at is None and ((expect is not None and n >= expect) or
                                    (expect is None and time.monotonic() - quiet_since > settle)):
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > settle:
                break
    finally:
        c.close()
    return out


def values_of(got: dict[int, list[tuple[int, str]]]) -> list[str]:
    return [v for p in sorted(got) for _, v in got[p]]


def assert_offset_order(got: dict[int, list[tuple[int, str]]]) -> None:
    for p, recs in got.items():
        offsets = [o for o, _ in recs]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), f"partition {p}: {offsets}"


# --------------------------------------------------------------------------
# confluent-kafka


def test_commit_abort_and_isolation_levels(txn_broker):
    topic = unique_topic("txn")
    create_topic(txn_broker, topic, 1)
    p = txn_producer(txn_broker, "tid-basic")
    in_txn(p, topic, ["c1", "c2", "c3"])
    in_txn(p, topic, ["a1", "a2", "a3"], end="abort")
    in_txn(p, topic, ["c4", "c5"])
    in_txn(p, topic, ["o1", "o2"], end="open")
    # read_committed: the committed records in offset order, nothing aborted,
    # nothing of the open transaction (the LSO stops before it).
    rc = read_values(txn_broker, topic, 1, "read_committed", expect=5)
    assert values_of(rc) == ["c1", "c2", "c3", "c4", "c5"]
    assert_offset_order(rc)
    # read_uncommitted sees every data record (never the control markers).
    ru = read_values(txn_broker, topic, 1, "read_uncommitted", expect=10)
    assert values_of(ru) == ["c1", "c2", "c3", "a1", "a2", "a3", "c4", "c5", "o1", "o2"]
    # Markers take offsets: the committed records after an abort have gaps.
    offsets = [o for o, _ in rc[0]]
    assert offsets[:3] == [0, 1, 2] and offsets[3] > 6
    p.commit_transaction(30)
    rc = read_values(txn_broker, topic, 1, "read_committed", expect=7)
    assert values_of(rc) == ["c1", "c2", "c3", "c4", "c5", "o1", "o2"]


def test_fencing_by_a_new_producer_with_the_same_id(txn_broker):
    topic = unique_topic("fence")
    create_topic(txn_broker, topic, 2)
    old = txn_producer(txn_broker, "tid-fence")
    in_txn(old, topic, ["old-ok"], partition=0)
    in_txn(old, topic, ["old-open-0"], end="open", partition=0)
    old.produce(topic, value=b"old-open-1", partition=1)
    assert old.flush(30) == 0
    # A new instance with the same transactional.id fences the old one; the
    # coordinator aborts the old open transaction.
    new = txn_producer(txn_broker, "tid-fence")
    with pytest.raises(KafkaException) as err:
        old.commit_transaction(30)
    e = err.value.args[0]
    assert e.fatal() or e.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), e
    in_txn(new, topic, ["new-ok"], partition=1)
    rc = read_values(txn_broker, topic, 2, "read_committed", expect=2)
    assert rc == {0: [(0, "old-ok")], 1: [(rc[1][0][0], "new-ok")]}
    ru = read_values(txn_broker, topic, 2, "read_uncommitted", expect=4)
    assert sorted(values_of(ru)) == ["new-ok", "old-ok", "old-open-0", "old-open-1"]


def test_open_transaction_aborted_after_its_timeout(txn_broker):
    topic = unique_topic("timeout")
    create_topic(txn_broker, topic, 1)
    slow = txn_producer(txn_broker, "tid-slow", **{"transaction.timeout.ms": 2000})
    in_txn(slow, topic, ["late-1", "late-2"], end="open")
    # Past transaction.timeout.ms (plus the coordinator's 1 s check) the
    # coordinator aborts it, so a read_committed reader is not stuck behind it.
    time.sleep(5)
    other = txn_producer(txn_broker, "tid-after")
    in_txn(other, topic, ["after"])
    rc = read_values(txn_broker, topic, 1, "read_committed", expect=1)
    assert values_of(rc) == ["after"]
    # The producer learns its transaction is gone when it tries to commit.
    with pytest.raises(KafkaException):
        slow.commit_transaction(10)
    # The coordinator counts what it completed, the timed-out abort included.
    wait_until(lambda: (value(scrape(txn_broker.http_url), "klamm_transaction_aborts_total") == 1
                        and value(scrape(txn_broker.http_url), "klamm_transaction_commits_total") == 1),
               10, what="one commit and one (timed-out) abort counted in /metrics")


def test_timeout_above_the_broker_maximum_is_refused(broker_factory):
    b = broker_factory({**BROKER_CONF, "transaction.max.timeout.ms": "5000"})
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "tid-too-long",
                  "transaction.timeout.ms": 10000})
    with pytest.raises(KafkaException) as err:
        p.init_transactions(20)
    assert err.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, err.value


def offset_fetch_v7(broker, group: str, topic: str, partitions: list[int], require_stable: bool) -> dict[int, tuple[int, int]]:
    """Raw OffsetFetch v7 (flexible): {partition: (committed_offset, error_code)}."""
    body = (wire.compact_string(group)
            + wire.uvarint(2) + wire.compact_string(topic)
            + wire.uvarint(len(partitions) + 1) + b"".join(wire.i32(p) for p in partitions) + wire.EMPTY_TAGS
            + (b"\x01" if require_stable else b"\x00") + wire.EMPTY_TAGS)
    with broker.conn() as c:
        r = c.request(OFFSET_FETCH, 7, body, flexible=True)
    r.i32()  # throttle

    def part(rr):
        p, off, _epoch = rr.i32(), rr.i64(), rr.i32()
        rr.compact_string()
        err = rr.i16()
        rr.skip_tags()
        return p, (off, err)

    def topic_entry(rr):
        rr.compact_string()
        ps = rr.compact_array(part)
        rr.skip_tags()
        return ps

    topics = r.compact_array(topic_entry)
    assert r.i16() == 0, "group-level error"
    return dict(x for ps in topics for x in ps)


def stable_offsets(broker, group: str, topic: str, partitions: list[int], timeout: float = 20.0) -> dict[int, tuple[int, int]]:
    """OffsetFetch with require_stable once no partition answers
    UNSTABLE_OFFSET_COMMIT any more. EndTxn answers once the commit decision is
    durable; the markers that turn pending offsets into committed ones follow
    asynchronously, in Kafka as here, so a client that needs the settled value
    retries UNSTABLE_OFFSET_COMMIT (librdkafka does the same). Any other error
    code is returned for the caller to assert on."""
    def settled():
        got = offset_fetch_v7(broker, group, topic, partitions, True)
        return got if all(err != UNSTABLE_OFFSET_COMMIT for _, err in got.values()) else None
    return wait_until(settled, timeout=timeout, interval=0.05, what=f"stable offsets of {group}")


def committed_offset(broker, group: str, topic: str, partition: int) -> int:
    """The group's committed offset as a read_uncommitted consumer's committed()
    sees it: librdkafka's default (read_committed) sets require_stable, and
    then, as against Kafka, the call keeps retrying UNSTABLE_OFFSET_COMMIT
    while a transaction holds pending offsets (checked with raw requests)."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_uncommitted"})
    try:
        return c.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        c.close()


def test_send_offsets_visible_exactly_at_commit(txn_broker):
    src, dst, group = unique_topic("src"), unique_topic("dst"), "g-sendoffsets"
    create_topic(txn_broker, src, 1)
    create_topic(txn_broker, dst, 1)
    produce_ok(txn_broker, src, [{"value": f"in-{i}".encode()} for i in range(10)])
    cons = Consumer({"bootstrap.servers": txn_broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    p = txn_producer(txn_broker, "tid-offsets")
    try:
        cons.subscribe([src])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            got += [m for m in cons.consume(num_messages=5 - len(got), timeout=0.5) if not m.error()]
        assert len(got) == 5
        p.begin_transaction()
        for m in got:
            p.produce(dst, value=b"out-" + m.value())
        p.send_offsets_to_transaction(cons.position(cons.assignment()), cons.consumer_group_metadata(), 30)
        assert p.flush(30) == 0
        # Pending: require_stable gets UNSTABLE_OFFSET_COMMIT; without it the
        # last committed offset (none yet) comes back.
        assert offset_fetch_v7(txn_broker, group, src, [0], True) == {0: (-1, UNSTABLE_OFFSET_COMMIT)}
        assert offset_fetch_v7(txn_broker, group, src, [0], False) == {0: (-1, 0)}
        assert committed_offset(txn_broker, group, src, 0) < 0
        p.commit_transaction(30)
        assert stable_offsets(txn_broker, group, src, [0]) == {0: (5, 0)}
        assert committed_offset(txn_broker, group, src, 0) == 5
        # An aborted transaction's offsets never become committed.
        p.begin_transaction()
        p.send_offsets_to_transaction([TopicPartition(src, 0, 9)], cons.consumer_group_metadata(), 30)
        p.abort_transaction(30)
        assert stable_offsets(txn_broker, group, src, [0]) == {0: (5, 0)}
    finally:
        cons.close()
    assert values_of(read_values(txn_broker, dst, 1, "read_committed", expect=5)) == [f"out-in-{i}" for i in range(5)]
    # The committed offsets survive a restart (replayed from __consumer_offsets).
    txn_broker.restart()
    assert wait_until(lambda: committed_offset(txn_broker, group, src, 0) == 5, timeout=30, what="offset 5 after restart")


def test_interleaved_transactions_over_partitions_and_producers(txn_broker):
    topic = unique_topic("many")
    parts = 4
    create_topic(txn_broker, topic, parts)
    producers = [txn_producer(txn_broker, f"tid-many-{i}") for i in range(3)]
    expected: dict[int, list[str]] = {p: [] for p in range(parts)}
    everything = 0
    for rnd in range(6):
        # Every producer opens a transaction and writes to every partition
        # before any of them ends, so the transactions overlap in each log.
        for i, p in enumerate(producers):
            p.begin_transaction()
            for part in range(parts):
                for k in range(2):
                    p.produce(topic, value=f"p{i}-r{rnd}-part{part}-{k}".encode(), partition=part)
            assert p.flush(30) == 0
            everything += parts * 2
        for i, p in enumerate(producers):
            if (rnd + i) % 3 == 0:
                p.abort_transaction(30)
            else:
                p.commit_transaction(30)
                for part in range(parts):
                    expected[part] += [f"p{i}-r{rnd}-part{part}-{k}" for k in range(2)]
    total = sum(len(v) for v in expected.values())
    rc = read_values(txn_broker, topic, parts, "read_committed", expect=total)
    assert_offset_order(rc)
    for part in range(parts):
        got = [v for _, v in rc[part]]
        assert sorted(got) == sorted(expected[part]), f"partition {part}"
        # Each producer's committed records keep their order within a partition.
        for i in range(3):
            mine = [v for v in got if v.startswith(f"p{i}-")]
            assert mine == [v for v in expected[part] if v.startswith(f"p{i}-")]
    ru = read_values(txn_broker, topic, parts, "read_uncommitted", expect=everything)
    assert sum(len(v) for v in ru.values()) == everything


def test_order_processor_exactly_once(txn_broker):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import order_processor as op
    finally:
        sys.path.remove(str(EXAMPLES))
    for t in (op.INPUT, op.OUTPUT, op.DLQ):
        create_topic(txn_broker, t, 3)
    orders = [{"order_id": i, "customer": f"c-{i % 5}", "quantity": (i % 4), "unit_price": 1.5} for i in range(60)]
    msgs = [{"key": o["customer"].encode(), "value": json.dumps(o).encode()} for o in orders]
    msgs.append({"key": b"c-x", "value": b"not json"})
    produce_ok(txn_broker, op.INPUT, msgs)
    # A first run aborts its first batch and stops, as a crash would.
    assert op.run(txn_broker.bootstrap, "op-test", idle_exit=8, fail_after=1, batch_size=7, log=lambda s: None) == -3
    # The next run (same transactional.id, as a restarted instance) does it all.
    done = op.run(txn_broker.bootstrap, "op-test", idle_exit=8, batch_size=7, log=lambda s: None)
    assert done == len(msgs)
    valid = [o for o in orders if o["quantity"] > 0]
    processed = values_of(read_values(txn_broker, op.OUTPUT, 3, "read_committed", expect=len(valid)))
    ids = sorted(json.loads(v)["order_id"] for v in processed)
    assert ids == sorted(o["order_id"] for o in valid), "every valid order exactly once"
    assert all(json.loads(v)["total"] == round(json.loads(v)["quantity"] * 1.5, 2) for v in processed)
    dlq = [json.loads(v) for v in values_of(read_values(txn_broker, op.DLQ, 3, "read_committed", expect=16))]
    assert len(dlq) == 16, "15 zero-quantity orders and one bad record, once each"
    assert sum(1 for d in dlq if d["raw"] == "not json") == 1
    # The group's committed offsets cover the whole input.
    # (A partition the keys never hashed to has no commit: -1001, and nothing to cover.)
    stable_offsets(txn_broker, op.GROUP, op.INPUT, [0, 1, 2])
    total_committed = sum(max(0, committed_offset(txn_broker, op.GROUP, op.INPUT, p)) for p in range(3))
    assert total_committed == len(msgs)


def test_examples_exactly_once(txn_broker):
    """examples/exactly-once as its README runs them: the kafkajs producer and the processor."""
    for t in ("orders_raw", "orders_processed", "orders_dlq"):
        create_topic(txn_broker, t, 3)
    env = {**os.environ, "NODE_PATH": str(NODE_DIR / "node_modules")}
    node = ["node", str(EXAMPLES / "transactional_producer.js"), "--brokers", txn_broker.bootstrap]
    subprocess.run(node + ["--count", "20"], check=True, env=env, timeout=60, capture_output=True)
    subprocess.run(node + ["--count", "5", "--first-id", "100", "--abort"], check=True, env=env, timeout=60,
                   capture_output=True)
    produce_ok(txn_broker, "orders_raw", [{"value": b"not json"}])
    py = [sys.executable, str(EXAMPLES / "order_processor.py"), "--bootstrap", txn_broker.bootstrap, "--idle-exit", "8"]
    r = subprocess.run(py + ["--fail-after", "1"], env=env, timeout=90, capture_output=True)
    assert r.returncode == 3, r.stderr.decode()[-2000:]
    r = subprocess.run(py, env=env, timeout=90, capture_output=True, check=True)
    assert b"processed 21 orders" in r.stdout, r.stdout
    processed = values_of(read_values(txn_broker, "orders_processed", 3, "read_committed", expect=20))
    assert sorted(json.loads(v)["order_id"] for v in processed) == list(range(1, 21))
    dlq = values_of(read_values(txn_broker, "orders_dlq", 3, "read_committed", expect=1))
    assert [json.loads(v)["raw"] for v in dlq] == ["not json"]


# --------------------------------------------------------------------------
# kafkajs 2.2.4


def test_kafkajs_transactions_and_read_committed_consumer(txn_broker):
    src, dst = unique_topic("kjs-src"), unique_topic("kjs-dst")
    create_topic(txn_broker, src, 1)
    create_topic(txn_broker, dst, 2)
    produce_ok(txn_broker, src, [{"value": f"s{i}".encode()} for i in range(4)])
    res = run_kjs(txn_broker, [
        {"op": "transactions", "transactionalId": "kjs-tid", "transactions": [
            {"sends": [{"topic": dst, "messages": [{"value": "k1", "partition": 0}, {"value": "k2", "partition": 1}]}],
             "sendOffsets": {"consumerGroupId": "kjs-group", "topics": [{"topic": src, "partitions": [{"partition": 0, "offset": "3"}]}]}},
            {"sends": [{"topic": dst, "messages": [{"value": "aborted", "partition": 0}]}], "end": "abort",
             "sendOffsets": {"consumerGroupId": "kjs-group", "topics": [{"topic": src, "partitions": [{"partition": 0, "offset": "4"}]}]}},
            {"sends": [{"topic": dst, "messages": [{"value": "k3", "partition": 1}, {"value": "last", "partition": 0}]}]},
        ]},
        # kafkajs consumers read read_committed by default.
        {"op": "consumeGroup", "groupId": "kjs-reader", "topic": dst, "count": 4, "timeoutMs": 20000},
        {"op": "consumeGroup", "groupId": "kjs-reader-ru", "topic": dst, "count": 5, "timeoutMs": 20000,
         "readUncommitted": True},
    ])
    txns = ok(res[0])
    assert [t["end"] for t in txns] == ["commit", "abort", "commit"]
    rc = ok(res[1])["messages"]
    got = sorted(base64.b64decode(m["value"]["b64"]).decode() for m in rc)
    assert got == ["k1", "k2", "k3", "last"]
    ru = ok(res[2])["messages"]
    assert sorted(base64.b64decode(m["value"]["b64"]).decode() for m in ru) == ["aborted", "k1", "k2", "k3", "last"]
    # sendOffsets of the committed transaction is the group's offset; the aborted one's is not.
    assert stable_offsets(txn_broker, "kjs-group", src, [0]) == {0: (3, 0)}
    assert committed_offset(txn_broker, "kjs-group", src, 0) == 3
    # confluent-kafka agrees on what kafkajs committed.
    assert sorted(values_of(read_values(txn_broker, dst, 2, "read_committed", expect=4))) == ["k1", "k2", "k3", "last"]


# --------------------------------------------------------------------------
# kafka-python 3.0 (transactions since 2.1)


def test_kafka_python_commit_and_abort(txn_broker):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP

    topic = unique_topic("kp")
    create_topic(txn_broker, topic, 1)
    p = KafkaProducer(bootstrap_servers=txn_broker.bootstrap, transactional_id="kp-tid", request_timeout_ms=30000)
    try:
        p.init_transactions()
        p.begin_transaction()
        p.send(topic, b"kp-commit-1", partition=0)
        p.send(topic, b"kp-commit-2", partition=0)
        p.commit_transaction()
        p.begin_transaction()
        p.send(topic, b"kp-abort", partition=0)
        p.flush()
        p.abort_transaction()
        p.begin_transaction()
        p.send(topic, b"kp-commit-3", partition=0)
        p.commit_transaction()
    finally:
        p.close(timeout=10)
    c = KafkaConsumer(bootstrap_servers=txn_broker.bootstrap, isolation_level="read_committed",
                      enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        c.assign([KTP(topic, 0)])
        c.seek_to_beginning()
        got = [m.value for m in c]
    finally:
        c.close()
    assert got == [b"kp-commit-1", b"kp-commit-2", b"kp-commit-3"]
    ru = read_values(txn_broker, topic, 1, "read_uncommitted", expect=4)
    assert values_of(ru) == ["kp-commit-1", "kp-commit-2", "kp-abort", "kp-commit-3"]


# --------------------------------------------------------------------------
# the group coordinator's side on the wire (TxnOffsetCommit without a client)

TXN_OFFSET_COMMIT = 28
FIND_COORDINATOR = 10


def find_coordinator_v1(broker, group: str) -> int:
    with broker.conn() as c:
        r = c.request(FIND_COORDINATOR, 1, wire.string(group) + wire.i8(0))
    r.i32()
    return r.i16()


def txn_offset_commit(broker, version: int, group: str, offsets: list[tuple[str, int, int]], producer_id: int = 4242,
                      generation: int = -1, member: str = "") -> dict[tuple[str, int], int]:
    """Raw TxnOffsetCommit v0 (classic) or v3 (flexible): {(topic, partition): error_code}."""
    by_topic: dict[str, list[tuple[int, int]]] = {}
    for t, p, o in offsets:
        by_topic.setdefault(t, []).append((p, o))
    if version >= 3:
        topics = b"".join(
            wire.compact_string(t) + wire.uvarint(len(ps) + 1)
            + b"".join(wire.i32(p) + wire.i64(o) + wire.i32(-1) + wire.compact_string("m") + wire.EMPTY_TAGS for p, o in ps)
            + wire.EMPTY_TAGS for t, ps in by_topic.items())
        body = (wire.compact_string("tid-raw") + wire.compact_string(group) + wire.i64(producer_id) + wire.i16(0)
                + wire.i32(generation) + wire.compact_string(member) + wire.compact_string(None)
                + wire.uvarint(len(by_topic) + 1) + topics + wire.EMPTY_TAGS)
    else:
        body = (wire.string("tid-raw") + wire.string(group) + wire.i64(producer_id) + wire.i16(0)
                + wire.array([wire.string(t) + wire.array([wire.i32(p) + wire.i64(o) + wire.string("m") for p, o in ps])
                              for t, ps in by_topic.items()]))
    with broker.conn() as c:
        r = c.request(TXN_OFFSET_COMMIT, version, body, flexible=version >= 3)
    r.i32()
    out = {}
    if version >= 3:
        for _ in range(r.uvarint() - 1):
            name = r.compact_string()
            for _ in range(r.uvarint() - 1):
                p, e = r.i32(), r.i16()
                r.skip_tags()
                out[(name, p)] = e
            r.skip_tags()
    else:
        for _ in range(r.i32()):
            name = r.string()
            for _ in range(r.i32()):
                p, e = r.i32(), r.i16()
                out[(name, p)] = e
    return out


def test_raw_txn_offset_commit_stays_pending(txn_broker):
    """TxnOffsetCommit straight to the group coordinator, with no transaction
    coordinator involved: the offsets are written as the producer's
    transactional batch and stay pending (no marker ever comes), across a
    restart too. Kafka checks membership only when the request names a
    generation or member (v3+, KIP-447)."""
    topic, group = unique_topic("raw"), "g-raw"
    create_topic(txn_broker, topic, 2)
    wait_until(lambda: find_coordinator_v1(txn_broker, group) == 0, timeout=30, what="group coordinator")

    def commit_ok():
        return txn_offset_commit(txn_broker, 3, group, [(topic, 0, 7)]) == {(topic, 0): 0}

    wait_until(commit_ok, timeout=30, what="TxnOffsetCommit accepted")
    assert txn_offset_commit(txn_broker, 0, group, [(topic, 1, 9)], producer_id=4343) == {(topic, 1): 0}
    assert offset_fetch_v7(txn_broker, group, topic, [0, 1], True) == \
        {0: (-1, UNSTABLE_OFFSET_COMMIT), 1: (-1, UNSTABLE_OFFSET_COMMIT)}
    assert offset_fetch_v7(txn_broker, group, topic, [0, 1], False) == {0: (-1, 0), 1: (-1, 0)}
    # Errors per partition as Kafka answers them.
    assert txn_offset_commit(txn_broker, 3, "g-unknown", [(topic, 0, 1)], generation=5, member="m") == {(topic, 0): 22}
    assert txn_offset_commit(txn_broker, 3, group, [("no-such-topic", 0, 1), (topic, 5, 1)]) == \
        {("no-such-topic", 0): 3, (topic, 5): 3}
    assert txn_offset_commit(txn_broker, 3, "", [(topic, 0, 1)]) == {(topic, 0): 24}
    txn_broker.restart()
    wait_until(lambda: find_coordinator_v1(txn_broker, group) == 0, timeout=30, what="group coordinator")
    assert wait_until(lambda: offset_fetch_v7(txn_broker, group, topic, [0], True) == {0: (-1, UNSTABLE_OFFSET_COMMIT)},
                      timeout=30, what="pending offsets replayed")
