"""Idempotent producer: many records, no duplicates, per-partition order kept."""

from __future__ import annotations

import signal
import time

from confluent_kafka import Producer

from helpers import consume, create_topic, produce_ok, watermarks

N = 10_000


def test_idempotent_10k_records_over_3_partitions(broker, topic):
    create_topic(broker, topic, partitions=3)
    msgs = [{"key": f"key-{i % 101}".encode(), "value": f"{i:06d}".encode()} for i in range(N)]
    reports = produce_ok(broker, topic, msgs, {
        "enable.idempotence": True, "acks": "all", "linger.ms": 5,
        "max.in.flight.requests.per.connection": 5, "batch.num.messages": 500,
    }, timeout=120)
    sent: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    for m, r in zip(msgs, reports):
        sent[r.partition].append(m["value"])
        assert r.offset == len(sent[r.partition]) - 1, "offsets per partition are dense and in send order"
    assert sum(len(v) for v in sent.values()) == N
    assert all(len(v) > 0 for v in sent.values())
    seen = set()
    for p in range(3):
        assert watermarks(broker, topic, p) == (0, len(sent[p]))
        got = consume(broker, topic, p, 0, len(sent[p]), timeout=90)
        values = [g.value for g in got]
        assert len(values) == len(set(values)), "no duplicates"
        assert values == sent[p], "per-partition order = send order"
        seen.update(values)
    assert len(seen) == N


def test_idempotent_producer_after_restart_gets_new_state(broker, topic):
    """Producer state is rebuilt on restart: a new idempotent producer appends after the old records."""
    create_topic(broker, topic, partitions=1)
    r1 = produce_ok(broker, topic, [{"value": f"a{i}".encode(), "partition": 0} for i in range(100)],
                    {"enable.idempotence": True})
    assert r1[-1].offset == 99
    broker.restart(signal.SIGKILL)
    r2 = produce_ok(broker, topic, [{"value": f"b{i}".encode(), "partition": 0} for i in range(100)],
                    {"enable.idempotence": True})
    assert [r.offset for r in r2] == list(range(100, 200))
    got = consume(broker, topic, 0, 0, 200, timeout=60)
    assert [g.value for g in got] == [f"a{i}".encode() for i in range(100)] + [f"b{i}".encode() for i in range(100)]


def test_idempotent_producer_keeps_going_after_its_state_expires(broker_factory, topic):
    """producer.id.expiration.ms: the broker forgets a producer idle that long (so the
    state table does not grow with every producer ever seen); one that then writes
    again, its sequence numbers continuing, is accepted as unknown (KIP-360) and
    its records land once, in order."""
    b = broker_factory(producer_id_expiration_ms="1500", producer_id_expiration_check_interval_ms="100")
    create_topic(b, topic, partitions=1)
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 1})
    errors: list = []
    offsets: list[int] = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            offsets.append(msg.offset())

    for round_ in range(3):
        for i in range(50):
            p.produce(topic, value=f"r{round_}-{i}".encode(), partition=0, on_delivery=on_delivery)
        assert p.flush(30) == 0
        if round_ < 2:
            # Longer than producer.id.expiration.ms plus a check interval, and the
            # records' timestamps are older than that by then.
            time.sleep(2.5)
    assert errors == []
    assert offsets == list(range(150))
    got = consume(b, topic, 0, 0, 150, timeout=60)
    assert [g.value for g in got] == [f"r{r}-{i}".encode() for r in range(3) for i in range(50)]
    assert watermarks(b, topic, 0) == (0, 150)
