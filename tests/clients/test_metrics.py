"""The ops HTTP listener (klamm.http.listener) seen from outside: /metrics parsed with
the Python prometheus_client parser while confluent-kafka produces and a group consumes
(traffic counters, request counters, kafka-exporter's lag series against the client's
own committed and end offsets), under-replicated partitions on a 3-node cluster when a
follower is SIGKILLed and after it returns, /health and /ready, and the WARN log line of
a slow request in JSON logs.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from cluster_fixture import SESSION_TIMEOUT_MS, cluster3  # noqa: F401 - fixture
from conftest import unique_topic, wait_until
from helpers import create_topic


def http_get(url: str, timeout: float = 10.0) -> tuple[int, str, str]:
    """(status, content type, body) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def scrape(base_url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics by (name, labels), parsed by prometheus_client."""
    status, ctype, text = http_get(base_url + "/metrics")
    assert status == 200, text
    assert ctype.startswith("text/plain"), ctype
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, frozenset((k, str(v)) for k, v in labels.items())))


def test_traffic_requests_and_group_lag(broker_factory):
    b = broker_factory()
    topic = unique_topic("metrics")
    create_topic(b, topic, partitions=3)
    base = b.http_url
    before = scrape(base)
    assert value(before, "kafka_server_replicamanager_partitioncount") >= 3
    assert value(before, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    produced_before = value(before, "kafka_network_requestmetrics_requests_total", request="Produce")

    n, payload = 60, b"x" * 200
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=payload, key=f"k{i}".encode(), partition=i % 3)
    assert p.flush(30) == 0

    after = scrape(base)
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == n
    bytes_in = value(after, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic)
    # Record batches carry the payload plus keys and framing: at least what was produced.
    assert n * len(payload) <= bytes_in <= n * len(payload) * 2, bytes_in
    assert value(after, "kafka_server_brokertopicmetrics_bytesin_total") >= bytes_in
    assert value(after, "kafka_network_requestmetrics_requests_total", request="Produce") > produced_before
    assert value(after, "kafka_network_requestmetrics_totaltimems_count", request="Produce") >= 1
    assert value(after, "kafka_network_requestmetrics_totaltimems_bucket", request="Produce", le="+Inf") == \
        value(after, "kafka_network_requestmetrics_totaltimems_count", request="Produce")
    assert value(after, "kafka_server_socket_server_metrics_connection_count", listener="PLAINTEXT") >= 1
    for q in range(3):
        assert value(after, "kafka_topic_partition_current_offset", topic=topic, partition=q) == n // 3
        assert value(after, "kafka_topic_partition_oldest_offset", topic=topic, partition=q) == 0
        assert value(after, "kafka_log_log_size", topic=topic, partition=q) > 0
        assert value(after, "kafka_log_log_numlogsegments", topic=topic, partition=q) == 1

    # A group reads part of the topic and commits; its lag is end - committed per partition.
    group = unique_topic("grp")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 30
        while got < 25 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
        assert got >= 25, f"consumed only {got}"
        c.commit(asynchronous=False)
        committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, q) for q in range(3)], timeout=10)}
        ends = {q: c.get_watermark_offsets(TopicPartition(topic, q), timeout=10)[1] for q in range(3)}
        s = scrape(base)
        for q in range(3):
            if committed[q] < 0:
                assert value(s, "kafka_consumergroup_lag", consumergroup=group, topic=topic, partition=q) is None
                continue
            assert value(s, "kafka_consumergroup_current_offset", consumergroup=group, topic=topic, partition=q) == committed[q]
            assert value(s, "kafka_consumergroup_lag", consumergroup=group, topic=topic, partition=q) == ends[q] - committed[q]
        assert sum(committed[q] for q in range(3) if committed[q] >= 0) >= 25
        assert value(s, "kafka_consumergroup_members", consumergroup=group) == 1
        assert value(s, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic) >= 25 * len(payload)
        for api in ("Fetch", "OffsetCommit", "JoinGroup", "FindCoordinator"):
            assert value(s, "kafka_network_requestmetrics_requests_total", request=api) >= 1, api
    finally:
        c.close()


def test_health_ready_and_read_only_routes(broker_factory):
    b = broker_factory()
    status, ctype, body = http_get(b.http_url + "/health")
    assert status == 200 and ctype.startswith("application/json")
    assert json.loads(body)["status"] == "UP"
    status, _, body = http_get(b.http_url + "/ready")
    ready = json.loads(body)
    assert status == 200, body
    assert ready["ready"] is True and ready["missing"] == []
    assert ready["checks"] == {"registered": True, "unfenced": True, "caught_up": True, "listeners_open": True}
    status, _, body = http_get(b.http_url + "/no-such-thing")
    assert status == 404 and "no such resource" in json.loads(body)["message"]
    req = urllib.request.Request(b.http_url + "/metrics", data=b"x", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("POST accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 405


def test_ops_listener_bind_failure_stops_start_up(broker_factory, tmp_path):
    import socket
    from conftest import Broker, BrokerStartError
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        b = Broker(tmp_path / "clash", {"klamm.http.listener": f"127.0.0.1:{port}"})
        try:
            b.start()
            raise AssertionError("started although the ops port is taken")
        except BrokerStartError:
            pass
        finally:
            b.stop()
        log = b.log_path.read_text(errors="replace")
        assert f"cannot bind klamm.http.listener=127.0.0.1:{port}" in log, b.log_tail()


def test_slow_request_is_logged_at_warn_in_json(broker_factory, tmp_path):
    from conftest import Broker
    b = Broker(tmp_path / "slow", {"klamm.request.slow.threshold.ms": "1"})
    env = b.environment()
    b.environment = lambda: {**env, "KLAMM_LOG_FORMAT": "json"}
    b.start()
    try:
        topic = unique_topic("slow")
        # CreateTopics waits for the metadata log: well over 1 ms.
        create_topic(b, topic, partitions=1)

        def warned():
            for line in b.log_path.read_text(errors="replace").splitlines():
                if not line.startswith("{"):
                    continue
                rec = json.loads(line)
                f = rec.get("fields", {})
                if rec.get("level") == "WARN" and f.get("message") == "slow request" and f.get("api") == "CreateTopics":
                    return rec
            return None
        rec = wait_until(warned, timeout=20, what="a WARN line for the slow CreateTopics")
        f = rec["fields"]
        assert f["listener"] == "PLAINTEXT" and f["api_version"] >= 2 and f["latency_ms"] >= 1
        assert f["client_id"] == "rdkafka", f
        s = scrape(b.http_url)
        assert value(s, "klamm_slow_requests_total") >= 1
    finally:
        b.stop()


def test_under_replicated_partitions_on_follower_kill(cluster3):
    c = cluster3
    topic = unique_topic("urp")
    a = AdminClient({"bootstrap.servers": c.bootstrap(c.up())})
    a.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})],
                    operation_timeout=20, request_timeout=20)[topic].result(30)
    c.wait_healthy([topic], {topic: 1}, timeout=30, want_isr=3)
    leader = c.node(c.leader_of(topic, 0))
    follower = next(n for n in c.nodes if n.node_id != leader.node_id)

    def urp(node) -> float:
        return value(scrape(node.http_url), "kafka_server_replicamanager_underreplicatedpartitions")

    def topic_urp(node):
        return value(scrape(node.http_url), "kafka_topic_partition_under_replicated_partition", topic=topic, partition=0)

    assert urp(leader) == 0 and topic_urp(leader) == 0
    follower.kill9()
    wait_until(lambda: urp(leader) > 0, timeout=SESSION_TIMEOUT_MS / 1000 + 30,
               what="under-replicated partitions > 0 on the leader after a follower kill")
    assert topic_urp(leader) == 1
    # Exactly one broker reports the partition's offsets (its leader).
    reporting = [n.node_id for n in c.up()
                 if value(scrape(n.http_url), "kafka_topic_partition_current_offset", topic=topic, partition=0) is not None]
    assert reporting == [leader.node_id]
    follower.start()
    c.wait_healthy([topic], {topic: 1}, timeout=45, want_isr=3)
    wait_until(lambda: urp(leader) == 0, timeout=30, what="under-replicated partitions back to 0")
    # The follower came back through the leader's ISR expansion.
    assert c.leader_of(topic, 0) == leader.node_id
    assert value(scrape(leader.http_url), "kafka_server_replicamanager_isrexpands_total") >= 1
    active = sum(value(scrape(n.http_url), "kafka_controller_kafkacontroller_activecontrollercount") for n in c.up())
    assert active == 1


def test_ops_api_lists_every_group_of_the_cluster(cluster3):
    """/api/groups on any node lists the groups of every coordinator, each with the
    coordinator the stock AdminClient reports and its lag; a killed node delays the
    answer by at most the bounded remote ask and is named as unreachable."""
    c = cluster3
    topic = unique_topic("opsgroups")
    a = AdminClient({"bootstrap.servers": c.bootstrap(c.up())})
    a.create_topics([NewTopic(topic, 2, 3)], operation_timeout=20, request_timeout=20)[topic].result(30)
    c.wait_healthy([topic], {topic: 2}, timeout=30, want_isr=3)
    p = Producer({"bootstrap.servers": c.bootstrap(), "linger.ms": 5})
    for i in range(20):
        p.produce(topic, value=b"x", partition=i % 2)
    assert p.flush(30) == 0

    # Groups until at least two brokers coordinate some (bounded), each with its own lag.
    groups: dict[str, tuple[int, int]] = {}  # group -> (coordinator, committed offset of partition 0)
    for i in range(12):
        g = unique_topic(f"opsgrp{i}")
        cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": g, "enable.auto.commit": False})
        try:
            cons.commit(offsets=[TopicPartition(topic, 0, i % 10), TopicPartition(topic, 1, 1)], asynchronous=False)
        finally:
            cons.close()
        groups[g] = (a.describe_consumer_groups([g])[g].result(30).coordinator.id, i % 10)
        if i >= 3 and len({coord for coord, _ in groups.values()}) >= 2:
            break
    assert len({coord for coord, _ in groups.values()}) >= 2, groups

    def listed_on(node) -> dict:
        status, ctype, body = http_get(node.http_url + "/api/groups")
        assert status == 200 and ctype.startswith("application/json"), body
        return json.loads(body)

    for node in c.up():
        doc = listed_on(node)
        assert doc["unreachable"] == [] and doc["answered_by"] == node.node_id
        listed = {g["group"]: g for g in doc["groups"] if g["group"] in groups}
        assert set(listed) == set(groups), (node.node_id, sorted(listed))
        for name, (coordinator, committed0) in groups.items():
            g = listed[name]
            assert g["coordinator"] == coordinator, (name, g)
            lags = {(q["partition"], q["committed"], q["end"], q["lag"]) for q in g["partitions"]}
            assert lags == {(0, committed0, 10, 10 - committed0), (1, 1, 10, 9)}, (name, g)
            assert g["total_lag"] == 10 - committed0 + 9

    # A coordinator killed: another node still answers promptly and names it while it is
    # registered, or lists its groups under their new coordinators once it is fenced.
    victim = c.node(next(coord for coord, _ in groups.values()))
    asked = next(n for n in c.up() if n.node_id != victim.node_id)
    victim.kill9()
    t0 = time.monotonic()
    doc = listed_on(asked)
    assert time.monotonic() - t0 < 10
    listed = {g["group"] for g in doc["groups"]}
    assert victim.node_id in doc["unreachable"] or set(groups) <= listed, doc
