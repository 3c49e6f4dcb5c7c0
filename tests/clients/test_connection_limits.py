"""max.connections.per.ip and max.connections.per.ip.overrides.

A connection beyond the limit of its IP is closed right after accept, without
an answer (what Kafka does); connections within the limit are served, a closed
one gives its place back, an override for the client's IP (or a hostname that
resolves to it) replaces the default, and a stock client works within the limit.
"""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

import kafka_wire as wire
from conftest import HOST, unique_topic, wait_until


def served(broker) -> wire.Conn:
    """A new connection that answers ApiVersions (kept open)."""
    c = wire.Conn(HOST, broker.port, timeout=5.0)
    try:
        assert wire.api_versions(c, 0).error_code == 0
    except BaseException:
        c.close()
        raise
    return c


def closed_at_once(broker) -> bool:
    """A new connection is closed by the broker without an answer to ApiVersions."""
    with wire.Conn(HOST, broker.port, timeout=5.0) as c:
        try:
            c.send_raw(wire.frame(wire.request_header(wire.API_VERSIONS, 0, c.next_corr(), "limits")))
        except OSError:
            return True  # already reset by the broker
        return c.wait_closed(timeout=5.0) is None


def fill(broker, n: int) -> list[wire.Conn]:
    """n served connections. The broker may still count the start-up probes'
    connections for a moment after they closed, so this retries (bounded)."""
    conns: list[wire.Conn] = []

    def more() -> bool:
        while len(conns) < n:
            conns.append(served(broker))
        return True

    try:
        wait_until(more, timeout=10.0, what=f"{n} served connections")
    except BaseException:
        close_all(conns)
        raise
    return conns


def close_all(conns: list[wire.Conn]) -> None:
    for c in conns:
        c.close()


def test_connection_beyond_the_per_ip_limit_is_closed(broker_factory):
    broker = broker_factory(max_connections_per_ip="2")
    conns = fill(broker, 2)
    try:
        assert closed_at_once(broker), "a third connection from 127.0.0.1 was served"
        # The two within the limit are still served.
        for c in conns:
            assert wire.api_versions(c, 0).error_code == 0
        # Closing one gives its place back.
        conns.pop().close()
        conns.append(wait_until(lambda: served(broker), timeout=10.0, what="a freed place"))
        assert closed_at_once(broker)
    finally:
        close_all(conns)


@pytest.mark.parametrize("default,overrides,limit", [
    ("1", "10.1.2.3:9,127.0.0.1:3", 3),  # an override for the client's IP raises the limit
    ("5", "localhost:2", 2),              # a hostname is resolved to the client's IP
])
def test_override_replaces_the_default_limit(broker_factory, default, overrides, limit):
    broker = broker_factory(max_connections_per_ip=default, max_connections_per_ip_overrides=overrides)
    conns = fill(broker, limit)
    try:
        assert closed_at_once(broker), f"connection {limit + 1} from 127.0.0.1 was served ({overrides})"
    finally:
        close_all(conns)


def test_stock_client_works_within_the_limit(broker_factory):
    broker = broker_factory(max_connections_per_ip="3")
    topic = unique_topic("limits")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    try:
        sent = [producer.send(topic, f"v{i}".encode()).get(timeout=30) for i in range(5)]
    finally:
        producer.close(timeout=10)
    assert [m.offset for m in sent] == list(range(5))
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=10000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got = []
        for m in consumer:
            got.append(m.value)
            if len(got) == 5:
                break
    finally:
        consumer.close()
    assert got == [f"v{i}".encode() for i in range(5)]
