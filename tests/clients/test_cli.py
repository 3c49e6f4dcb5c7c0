"""The `klamm` admin subcommands against a running Klamm, their `--json` output checked
against what confluent-kafka's AdminClient, Producer and Consumer report.

Every command runs as a subprocess of the same binary as the broker ($KLAMM_BIN) with a
bounded timeout; exit codes and error messages are part of what is checked.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import ConfigResource, ConfigSource

from cluster_fixture import SESSION_TIMEOUT_MS, cluster3  # noqa: F401  (fixture)
from conftest import HOST, free_port, klamm_bin, unique_topic, wait_until
from helpers import admin, consume, create_topic, produce_ok, wait_for_leaders, watermarks
from test_security import ADMIN_PASSWORD, SecureBroker, certs  # noqa: F401  (certs: fixture)

CLI_TIMEOUT_S = 60.0


def klamm(broker, *args: str, input: bytes | None = None, bootstrap: str | None = None,
          timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    argv = [str(klamm_bin()), *args, "--bootstrap-server", bootstrap or broker.bootstrap]
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, (f"klamm {proc.args[1:]} exited {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout.decode()}\nstderr:\n{proc.stderr.decode()}")
    return proc.stdout.decode()


def kjson(broker, *args: str, **kw):
    return json.loads(ok(klamm(broker, *args, "--json", **kw)))


def failed(proc: subprocess.CompletedProcess, *needles: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode != 0, f"klamm {proc.args[1:]} should have failed\nstdout:\n{proc.stdout.decode()}"
    for n in needles:
        assert n in err, f"{n!r} not in stderr:\n{err}"
    return err


def admin_topic(broker, name: str):
    md = admin(broker).list_topics(topic=name, timeout=10)
    return md.topics.get(name)


def topic_configs(broker, name: str) -> dict:
    return _describe_configs(broker, ConfigResource(ConfigResource.Type.TOPIC, name))


def _describe_configs(broker, res: ConfigResource) -> dict:
    a = admin(broker)  # kept alive until the future resolves
    return a.describe_configs([res])[res].result(timeout=30)


# --------------------------------------------------------------------------
# topics


def test_topics_create_list_describe_alter_delete(broker):
    name = unique_topic("cli")
    created = kjson(broker, "topics", "create", name, "--partitions", "3", "--replication-factor", "1",
                    "--config", "retention.ms=123456", "--config", "cleanup.policy=compact")
    assert created["created"] is True and created["partitions"] == 3
    wait_for_leaders(broker, name, 3)

    listed = {t["name"]: t for t in kjson(broker, "topics", "list")}
    md = admin(broker).list_topics(timeout=10)
    assert set(listed) == set(md.topics), "klamm and AdminClient list different topics"
    assert listed[name]["partitions"] == 3 and listed[name]["replication_factor"] == 1
    assert name in ok(klamm(broker, "topics", "list"))

    [described] = kjson(broker, "topics", "describe", name)
    t = admin_topic(broker, name)
    assert len(described["partitions"]) == len(t.partitions) == 3
    for p in described["partitions"]:
        ap = t.partitions[p["partition"]]
        assert p["leader"] == ap.leader
        assert p["replicas"] == list(ap.replicas)
        assert p["isr"] == list(ap.isrs)
        assert p["offline_replicas"] == []
    # The configs shown are those AdminClient reports as not default.
    ac = topic_configs(broker, name)
    non_default = {k: v.value for k, v in ac.items() if not v.is_default}
    assert described["configs"] == non_default
    assert described["configs"]["retention.ms"] == "123456"
    assert described["config_sources"]["cleanup.policy"] == "DYNAMIC_TOPIC_CONFIG"
    text = ok(klamm(broker, "topics", "describe", name))
    assert "retention.ms=123456" in text and "LEADER" in text and "ISR" in text

    # alter: partitions and configs
    assert kjson(broker, "topics", "alter", name, "--partitions", "5")["partitions"] == 5
    wait_until(lambda: len(admin_topic(broker, name).partitions) == 5, what="5 partitions")
    kjson(broker, "topics", "alter", name, "--config", "retention.ms=999", "--delete-config", "cleanup.policy")
    ac = topic_configs(broker, name)
    assert ac["retention.ms"].value == "999"
    assert ac["cleanup.policy"].is_default and ac["cleanup.policy"].value == "delete"
    failed(klamm(broker, "topics", "alter", name, "--partitions", "2"), "INVALID_PARTITIONS")

    # create again: TOPIC_ALREADY_EXISTS, unless --if-not-exists
    failed(klamm(broker, "topics", "create", name), "TOPIC_ALREADY_EXISTS")
    assert kjson(broker, "topics", "create", name, "--if-not-exists")["created"] is False

    deleted = kjson(broker, "topics", "delete", name)
    assert deleted == [{"name": name, "deleted": True}]
    wait_until(lambda: name not in admin(broker).list_topics(timeout=10).topics, what="topic gone")


def test_topic_errors_name_the_code_and_exit_non_zero(broker):
    missing = unique_topic("missing")
    err = failed(klamm(broker, "topics", "describe", missing), "UNKNOWN_TOPIC_OR_PARTITION", f"'{missing}'",
                 "klamm topics list")
    assert "does not exist" in err
    failed(klamm(broker, "topics", "delete", missing), "UNKNOWN_TOPIC_OR_PARTITION")
    failed(klamm(broker, "configs", "describe", "--topic", missing), "UNKNOWN_TOPIC_OR_PARTITION")
    failed(klamm(broker, "topics", "create", "bad/name"), "INVALID_TOPIC_EXCEPTION")
    # One of two topics missing: the other is still described, and the exit code says failure.
    good = unique_topic("good")
    create_topic(broker, good, 1)
    proc = klamm(broker, "topics", "describe", good, missing, "--json")
    failed(proc, "UNKNOWN_TOPIC_OR_PARTITION")
    assert [t["name"] for t in json.loads(proc.stdout)] == [good]


# --------------------------------------------------------------------------
# configs and cluster


def test_configs_describe_and_alter_for_topic_and_broker(broker):
    name = unique_topic("cfg")
    create_topic(broker, name, 1)
    kjson(broker, "configs", "alter", "--topic", name, "--set", "max.message.bytes=200000")
    described = kjson(broker, "configs", "describe", "--topic", name)
    assert described["entity"] == {"topic": name}
    by_name = {c["name"]: c for c in described["configs"]}
    ac = topic_configs(broker, name)
    assert set(by_name) == set(ac)
    for k, e in ac.items():
        assert by_name[k]["value"] == e.value, k
        assert by_name[k]["source"] == ConfigSource(e.source).name, k
    assert by_name["max.message.bytes"]["value"] == "200000"
    assert by_name["max.message.bytes"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert by_name["max.message.bytes"]["default"] is False
    kjson(broker, "configs", "alter", "--topic", name, "--delete", "max.message.bytes")
    assert topic_configs(broker, name)["max.message.bytes"].is_default

    # A broker: set and remove a dynamic config, compared with AdminClient.
    kjson(broker, "configs", "alter", "--broker", "1", "--set", "log.retention.ms=3600000")
    res = ConfigResource(ConfigResource.Type.BROKER, "1")
    ac = _describe_configs(broker, res)
    described = {c["name"]: c for c in kjson(broker, "configs", "describe", "--broker", "1")["configs"]}
    assert described["log.retention.ms"]["value"] == ac["log.retention.ms"].value == "3600000"
    assert described["log.retention.ms"]["source"] == ConfigSource(ac["log.retention.ms"].source).name
    assert set(described) == set(ac)
    kjson(broker, "configs", "alter", "--broker", "1", "--delete", "log.retention.ms")
    ac = _describe_configs(broker, res)
    assert ac["log.retention.ms"].is_default
    failed(klamm(broker, "configs", "alter", "--topic", name, "--set", "retention.ms=banana"), "INVALID_CONFIG")
    assert "NAME" in ok(klamm(broker, "configs", "describe", "--broker", "1"))


def test_cluster_status(broker):
    name = unique_topic("status")
    create_topic(broker, name, 2)
    status = kjson(broker, "cluster", "status")
    md = admin(broker).list_topics(timeout=10)
    assert [b["id"] for b in status["brokers"]] == sorted(md.brokers) == [1]
    assert status["brokers"][0]["port"] == broker.port
    assert status["controller_id"] == md.controller_id == 1
    assert status["cluster_id"] == md.cluster_id
    assert status["partitions"]["total"] == sum(len(t.partitions) for t in md.topics.values())
    assert status["partitions"]["under_replicated_count"] == 0
    assert status["partitions"]["offline_count"] == 0
    text = ok(klamm(broker, "cluster", "status"))
    assert "Controller: 1" in text and "under-replicated: 0" in text


# --------------------------------------------------------------------------
# groups


def _group_consumer(broker, group: str, topic: str) -> Consumer:
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "client.id": "lag-checker",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
    c.subscribe([topic])
    return c


def _committed(broker, group: str, topic: str, partitions: int) -> dict[int, int]:
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    a = admin(broker)  # kept alive until the future resolves
    res = a.list_consumer_group_offsets([req])[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def test_groups_describe_lag_reset_and_delete(broker):
    topic = unique_topic("grp")
    group = unique_topic("group")
    create_topic(broker, topic, 2)
    produce_ok(broker, topic, [{"value": f"v{i}".encode(), "partition": i % 2} for i in range(20)])

    c = _group_consumer(broker, group, topic)
    try:
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 12 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m)
        assert len(got) >= 12
        # Commit 3 records per partition past what each partition started at.
        c.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 4)], asynchronous=False)

        [d] = kjson(broker, "groups", "describe", group)
        assert d["state"] == "Stable" and d["protocol_type"] == "consumer"
        assert len(d["members"]) == 1
        member = d["members"][0]
        assert member["client_id"] == "lag-checker"
        assert member["assignment"] == [{"topic": topic, "partitions": [0, 1]}]
        committed = _committed(broker, group, topic, 2)
        rows = {r["partition"]: r for r in d["offsets"]}
        for p in (0, 1):
            low, high = watermarks(broker, topic, p)
            assert rows[p]["current_offset"] == committed[p]
            assert rows[p]["log_end_offset"] == high
            assert rows[p]["lag"] == high - committed[p]
            assert rows[p]["consumer_id"] == member["member_id"]
        text = ok(klamm(broker, "groups", "describe", group))
        for col in ("CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"):
            assert col in text
        listed = {g["group"]: g for g in kjson(broker, "groups", "list")}
        assert listed[group]["state"] == "Stable" and listed[group]["protocol_type"] == "consumer"

        # Active members: reset and delete are refused.
        failed(klamm(broker, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-earliest",
                     "--execute"), "inactive")
        failed(klamm(broker, "groups", "delete", group), "NON_EMPTY_GROUP")
    finally:
        c.close()
    wait_until(lambda: kjson(broker, "groups", "describe", group)[0]["state"] == "Empty", what="group empty")

    before = _committed(broker, group, topic, 2)
    plan = kjson(broker, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-earliest")
    assert plan["executed"] is False
    assert {p["partition"]: p["new_offset"] for p in plan["partitions"]} == {0: 0, 1: 0}
    assert {p["partition"]: p["current_offset"] for p in plan["partitions"]} == before
    assert _committed(broker, group, topic, 2) == before, "a dry run changed the offsets"
    ok(klamm(broker, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--dry-run"))
    assert _committed(broker, group, topic, 2) == before

    # --shift-by from the committed offsets, one partition only.
    plan = kjson(broker, "groups", "reset-offsets", "--group", group, "--topic", f"{topic}:1", "--shift-by", "-2",
                 "--execute")
    assert [(p["partition"], p["new_offset"]) for p in plan["partitions"]] == [(1, before[1] - 2)]
    assert _committed(broker, group, topic, 2) == {0: before[0], 1: before[1] - 2}
    # --to-offset is clamped to the partition's end; --to-latest; --to-datetime in the future is the end.
    plan = kjson(broker, "groups", "reset-offsets", "--group", group, "--all-topics", "--to-offset", "1000",
                 "--execute")
    assert {p["partition"]: p["new_offset"] for p in plan["partitions"]} == {0: 10, 1: 10}
    kjson(broker, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-offset", "2", "--execute")
    assert _committed(broker, group, topic, 2) == {0: 2, 1: 2}
    future = "2999-01-01T00:00:00Z"
    plan = kjson(broker, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-datetime", future)
    assert {p["partition"]: p["new_offset"] for p in plan["partitions"]} == {0: 10, 1: 10}
    past = datetime(2000, 1, 1, tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    kjson(broker, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-datetime", past, "--execute")
    assert _committed(broker, group, topic, 2) == {0: 0, 1: 0}

    # What a consumer of the group now reads starts at the reset offsets.
    kjson(broker, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-offset", "7", "--execute")
    c = _group_consumer(broker, group, topic)
    try:
        first: dict[int, int] = {}
        deadline = time.monotonic() + 30
        while len(first) < 2 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                first.setdefault(m.partition(), m.offset())
        assert first == {0: 7, 1: 7}
    finally:
        c.close()

    wait_until(lambda: kjson(broker, "groups", "describe", group)[0]["state"] == "Empty", what="group empty")
    assert kjson(broker, "groups", "delete", group) == [{"group": group, "deleted": True}]
    failed(klamm(broker, "groups", "describe", group), "GROUP_ID_NOT_FOUND", f"'{group}'", "klamm groups list")


def test_group_errors(broker):
    missing = unique_topic("nogroup")
    failed(klamm(broker, "groups", "describe", missing), "GROUP_ID_NOT_FOUND", "does not exist")
    failed(klamm(broker, "groups", "delete", missing), "GROUP_ID_NOT_FOUND")
    failed(klamm(broker, "groups", "reset-offsets", "--group", missing, "--topic", unique_topic("x"),
                 "--to-earliest"), "UNKNOWN_TOPIC_OR_PARTITION")
    failed(klamm(broker, "groups", "reset-offsets", "--group", missing, "--topic", "t", "--to-datetime",
                 "yesterday"), "--to-datetime")
    # clap refuses a reset with no strategy or two strategies.
    assert klamm(broker, "groups", "reset-offsets", "--group", missing, "--all-topics").returncode != 0
    assert klamm(broker, "groups", "reset-offsets", "--group", missing, "--all-topics", "--to-earliest",
                 "--to-latest").returncode != 0


# --------------------------------------------------------------------------
# produce / consume


def test_produce_then_consume_round_trip_with_keys_and_headers(broker, tmp_path):
    topic = unique_topic("pc")
    create_topic(broker, topic, 3)
    lines = [f"key{i}|value {i}" for i in range(30)] + ["no separator here"]
    out = kjson(broker, "produce", topic, "--key-separator", "|", "--header", "source=cli", "--header", "n=1",
                input=("\n".join(lines) + "\n").encode())
    assert out["records"] == 31

    got = []
    for p in range(3):
        _, high = watermarks(broker, topic, p)
        if high:
            got += consume(broker, topic, p, 0, high)
    assert len(got) == 31
    by_value = {g.value.decode(): g for g in got}
    # Keyed records land where a Java-compatible producer (murmur2) puts the same key.
    pr = Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"})
    expected = {}
    for i in range(30):
        def cb(err, m, i=i):
            expected[i] = m.partition()
        pr.produce(topic, key=f"key{i}".encode(), value=b"x", on_delivery=cb)
    assert pr.flush(30) == 0
    for i in range(30):
        g = by_value[f"value {i}"]
        assert g.key == f"key{i}".encode()
        assert g.headers == [("source", b"cli"), ("n", b"1")]
        assert g.partition == expected[i]
    assert by_value["no separator here"].key is None

    # A file input, one partition, acks=1.
    f = tmp_path / "in.txt"
    f.write_text("a\nb\nc\n")
    out = kjson(broker, "produce", topic, "--file", str(f), "--partition", "2", "--acks", "1")
    assert out["partitions"] == [{"partition": 2, "records": 3, "base_offset": expected_base(broker, topic, 2, 3)}]

    # klamm consume reads what confluent-kafka produced, keys and headers included.
    topic2 = unique_topic("pc2")
    create_topic(broker, topic2, 1)
    produce_ok(broker, topic2, [{"key": f"k{i}".encode(), "value": f"v{i}".encode(),
                                 "headers": [("h", f"{i}".encode())]} for i in range(5)])
    proc = klamm(broker, "consume", topic2, "--from-beginning", "--max-messages", "5", "--json")
    records = [json.loads(line) for line in ok(proc).splitlines()]
    assert [(r["offset"], r["key"], r["value"], r["headers"]) for r in records] == \
        [(i, f"k{i}", f"v{i}", [{"key": "h", "value": f"{i}"}]) for i in range(5)]
    text = ok(klamm(broker, "consume", topic2, "--offset", "3", "--partition", "0", "--timeout-ms", "1500",
                    "--print-key", "--print-offset", "--print-headers"))
    assert text.splitlines() == ["Offset:3\th:3\tk3\tv3", "Offset:4\th:4\tk4\tv4"]
    # From the end with a timeout: nothing, and the command ends.
    started = time.monotonic()
    assert ok(klamm(broker, "consume", topic2, "--timeout-ms", "1000")) == ""
    assert time.monotonic() - started < 15


def expected_base(broker, topic: str, partition: int, count: int) -> int:
    _, high = watermarks(broker, topic, partition)
    return high - count


def test_consume_with_a_group_commits_its_position(broker):
    topic = unique_topic("cg")
    group = unique_topic("cgroup")
    create_topic(broker, topic, 1)
    produce_ok(broker, topic, [{"value": f"{i}".encode()} for i in range(6)])
    first = ok(klamm(broker, "consume", topic, "--group", group, "--from-beginning", "--max-messages", "4"))
    assert first.splitlines() == ["0", "1", "2", "3"]
    assert _committed(broker, group, topic, 1) == {0: 4}
    rest = ok(klamm(broker, "consume", topic, "--group", group, "--max-messages", "2"))
    assert rest.splitlines() == ["4", "5"]
    [d] = kjson(broker, "groups", "describe", group)
    assert d["offsets"] == [{"topic": topic, "partition": 0, "current_offset": 6, "log_end_offset": 6, "lag": 0,
                             "consumer_id": None, "host": None, "client_id": None}]


def test_produce_consume_errors(broker):
    missing = unique_topic("none")
    failed(klamm(broker, "produce", missing, input=b"x\n"), "UNKNOWN_TOPIC_OR_PARTITION")
    failed(klamm(broker, "consume", missing, "--timeout-ms", "500"), "UNKNOWN_TOPIC_OR_PARTITION")
    topic = unique_topic("p")
    create_topic(broker, topic, 1)
    failed(klamm(broker, "produce", topic, "--partition", "5", input=b"x\n"), "UNKNOWN_TOPIC_OR_PARTITION",
           "no partition 5")


# --------------------------------------------------------------------------
# unreachable brokers


def test_unreachable_broker_fails_fast_with_a_clear_message(broker):
    # Nothing listens: connection refused.
    started = time.monotonic()
    err = failed(klamm(broker, "topics", "list", bootstrap=f"{HOST}:{free_port()}"), "could not reach")
    assert "Connection refused" in err
    assert time.monotonic() - started < 10
    # Something accepts but never answers: bounded by --request-timeout-ms.
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen(8)
        addr = f"{HOST}:{silent.getsockname()[1]}"
        started = time.monotonic()
        err = failed(klamm(broker, "cluster", "status", "--request-timeout-ms", "1000", bootstrap=addr),
                     "could not reach", "did not answer within 1000 ms")
        assert time.monotonic() - started < 10
    # A bad address is refused before any connection.
    failed(klamm(broker, "topics", "list", bootstrap="no-port"), "expected host:port")


# --------------------------------------------------------------------------
# secured listeners


@pytest.fixture
def secure_broker(tmp_path, certs):  # noqa: F811
    b = SecureBroker(tmp_path / "secure", certs)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _command_config(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_command_config_over_sasl_ssl_and_sasl_plaintext(secure_broker, certs, tmp_path):  # noqa: F811
    b = secure_broker
    scram_ssl = _command_config(tmp_path / "scram-ssl.properties", [
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
        f'username="admin" password="{ADMIN_PASSWORD}";',
        f"ssl.truststore.location={certs / 'ca.pem'}",
        "ssl.truststore.type=PEM",
        "client.id=ops-cli",
        "linger.ms=5",
    ])
    addr = b.addr("SASL_SSL")
    topic = unique_topic("sec")
    proc = klamm(b, "topics", "create", topic, "--partitions", "2", "--command-config", str(scram_ssl), "--json",
                 bootstrap=addr)
    ok(proc)
    assert "linger.ms is not used by klamm" in proc.stderr.decode()
    wait_for_leaders(b, topic, 2)
    listed = json.loads(ok(klamm(b, "topics", "list", "--json", "--command-config", str(scram_ssl), bootstrap=addr)))
    assert topic in {t["name"] for t in listed}
    status = json.loads(ok(klamm(b, "cluster", "status", "--json", "--command-config", str(scram_ssl),
                                 bootstrap=addr)))
    # The brokers are reported with the listener the request came in on.
    assert status["brokers"][0]["port"] == b.ports["SASL_SSL"]
    ok(klamm(b, "produce", topic, "--partition", "1", "--command-config", str(scram_ssl), input=b"secret\n",
             bootstrap=addr))
    got = consume(b, topic, 1, 0, 1)
    assert got[0].value == b"secret"

    plain = _command_config(tmp_path / "plain.properties", [
        "security.protocol=SASL_PLAINTEXT",
        "sasl.mechanism=PLAIN",
        'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="alice" password="alice-secret";',
    ])
    out = ok(klamm(b, "consume", topic, "--partition", "1", "--from-beginning", "--max-messages", "1",
                   "--command-config", str(plain), bootstrap=b.addr("SASL_PLAINTEXT")))
    assert out == "secret\n"

    wrong = _command_config(tmp_path / "wrong.properties", [
        "security.protocol=SASL_PLAINTEXT",
        "sasl.mechanism=SCRAM-SHA-256",
        'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
        'username="admin" password="not-the-password";',
    ])
    failed(klamm(b, "topics", "list", "--command-config", str(wrong), bootstrap=b.addr("SASL_PLAINTEXT")),
           "could not reach", "SASL")
    # Plaintext to a SASL listener: the broker closes the connection; a clear failure, not a hang.
    started = time.monotonic()
    failed(klamm(b, "topics", "list", "--request-timeout-ms", "3000", bootstrap=b.addr("SASL_SSL")),
           "could not reach")
    assert time.monotonic() - started < 15
    # mTLS: the client certificate from a PEM keystore.
    mtls = _command_config(tmp_path / "mtls.properties", [
        "security.protocol=SSL",
        f"ssl.truststore.location={certs / 'ca.pem'}",
        "ssl.truststore.type=PEM",
        f"ssl.keystore.location={certs / 'client.bundle.pem'}",
        "ssl.keystore.type=PEM",
    ])
    out = ok(klamm(b, "consume", topic, "--partition", "1", "--from-beginning", "--max-messages", "1",
                   "--command-config", str(mtls), bootstrap=b.addr("MTLS")))
    assert out == "secret\n"
    no_cert = _command_config(tmp_path / "nocert.properties", [
        "security.protocol=SSL", f"ssl.truststore.location={certs / 'ca.pem'}"])
    failed(klamm(b, "topics", "list", "--command-config", str(no_cert), "--request-timeout-ms", "3000",
                 bootstrap=b.addr("MTLS")), "could not reach")
    missing = tmp_path / "absent.properties"
    failed(klamm(b, "topics", "list", "--command-config", str(missing), bootstrap=addr), "absent.properties")


# --------------------------------------------------------------------------
# a 3-node cluster: under-replicated and offline partitions


def test_cluster_status_and_describe_follow_a_killed_node(cluster3):  # noqa: F811
    c = cluster3
    rf3, rf1 = unique_topic("rf3"), unique_topic("rf1")
    kjson(c, "topics", "create", rf3, "--partitions", "3", "--replication-factor", "3", bootstrap=c.bootstrap())
    kjson(c, "topics", "create", rf1, "--partitions", "3", "--replication-factor", "1", bootstrap=c.bootstrap())
    c.wait_healthy([rf3, rf1], {rf3: 3, rf1: 3}, timeout=45)

    status = kjson(c, "cluster", "status", bootstrap=c.bootstrap())
    assert [b["id"] for b in status["brokers"]] == [1, 2, 3]
    assert status["controller_id"] in (1, 2, 3)
    assert status["partitions"]["under_replicated_count"] == 0 and status["partitions"]["offline_count"] == 0
    # DescribeQuorum, asked of each node: the leader is the active controller, every node
    # names the three voters; the leader knows every voter's log end (caught up: lag 0 soon).
    leader = status["controller_id"]
    leader_node = next(n for n in c.nodes if n.node_id == leader)

    def leader_view():
        q = kjson(c, "cluster", "status", bootstrap=leader_node.bootstrap)["quorum"]
        return q if all(v["lag"] == 0 and v["log_end_offset"] > 0 for v in q["voters"]) else None
    q = wait_until(leader_view, timeout=20, what="the leader's quorum view with every voter caught up")
    assert q["leader"] == leader and q["epoch"] >= 1 and q["high_watermark"] > 0
    assert sorted(v["id"] for v in q["voters"]) == [1, 2, 3]
    for n in c.nodes:
        view = kjson(c, "cluster", "status", bootstrap=n.bootstrap)["quorum"]
        assert view["leader"] == leader and sorted(v["id"] for v in view["voters"]) == [1, 2, 3]
    only_on_3 = {p["partition"] for p in kjson(c, "topics", "describe", rf1, bootstrap=c.bootstrap())[0]["partitions"]
                 if p["replicas"] == [3]}

    c.node(3).kill9()
    survivors = c.bootstrap(c.up())

    def degraded():
        s = kjson(c, "cluster", "status", bootstrap=survivors)
        urp = {(u["topic"], u["partition"]) for u in s["partitions"]["under_replicated"]}
        offline = {(o["topic"], o["partition"]) for o in s["partitions"]["offline"]}
        if {(rf3, p) for p in range(3)} <= urp and offline == {(rf1, p) for p in only_on_3}:
            return s
        return None

    s = wait_until(degraded, timeout=SESSION_TIMEOUT_MS / 1000 + 30, what="node 3's partitions degraded")
    assert [b["id"] for b in s["brokers"]] == [1, 2], "a fenced broker is not listed"
    assert s["partitions"]["under_replicated_count"] == len(s["partitions"]["under_replicated"])
    [d] = kjson(c, "topics", "describe", rf3, bootstrap=survivors)
    md = AdminClient({"bootstrap.servers": survivors}).list_topics(rf3, timeout=10).topics[rf3]
    for p in d["partitions"]:
        assert 3 not in p["isr"] and p["leader"] in (1, 2)
        assert p["isr"] == list(md.partitions[p["partition"]].isrs)
    text = ok(klamm(c, "cluster", "status", bootstrap=survivors))
    assert f"under-replicated: {rf3}-0" in text
    # Produce and consume carry on with the leaders that are left.
    lines = "".join(f"k{i}:v{i}\n" for i in range(30)).encode()
    assert kjson(c, "produce", rf3, "--key-separator", ":", input=lines, bootstrap=survivors)["records"] == 30
    out = ok(klamm(c, "consume", rf3, "--from-beginning", "--max-messages", "30", "--print-key", bootstrap=survivors))
    assert sorted(out.splitlines()) == sorted(f"k{i}\tv{i}" for i in range(30))

    c.node(3).start()
    c.wait_healthy([rf3, rf1], {rf3: 3, rf1: 3}, timeout=45)
    wait_until(lambda: kjson(c, "cluster", "status", bootstrap=c.bootstrap())["partitions"]["under_replicated_count"] == 0,
               timeout=45, what="ISRs whole again")
