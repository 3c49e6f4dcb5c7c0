"""Configuration from KAFKA_* environment variables, as the Apache Kafka
container image takes it (so a docker-compose file written for Kafka moves over
unchanged), its precedence (file < environment < --override), the WARN for
accepted keys without effect, and one-JSON-object-per-line logs.

Checked through confluent-kafka: an auto-created topic gets the environment's
num.partitions, and DescribeConfigs reports what won.
"""

from __future__ import annotations

import json

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from conftest import HOST, Broker, unique_topic


class EnvBroker(Broker):
    """A klamm configured the way a Kafka compose file does it: KAFKA_* variables
    only, plus the `--override`s given."""

    def __init__(self, workdir, env: dict[str, str], overrides: dict[str, str] | None = None):
        super().__init__(workdir, overrides)
        self.env = env

    def argv(self) -> list[str]:
        argv = super().argv()[:1]
        for k, v in self.overrides.items():
            argv += ["--override", f"{k}={v}"]
        return argv

    def environment(self) -> dict[str, str]:
        env = super().environment()
        p, c = self.port, self.controller_port
        env.update({
            "KAFKA_NODE_ID": "1",
            "KAFKA_PROCESS_ROLES": "broker,controller",
            "KAFKA_LISTENERS": f"PLAINTEXT://{HOST}:{p},CONTROLLER://{HOST}:{c}",
            "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{HOST}:{p}",
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@{HOST}:{c}",
            "KAFKA_LOG_DIRS": str(self.data_dir),
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
            # Start-script variables are not properties.
            "KAFKA_HEAP_OPTS": "-Xmx1G -Xms1G",
            "KAFKA_OPTS": "-Dsomething=1",
        })
        env.update(self.env)
        return env


def broker_config(bootstrap: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.BROKER, "1")
    entries = admin.describe_configs([res], request_timeout=15)[res].result(timeout=20)
    return {k: e.value for k, e in entries.items()}


def test_compose_style_environment_configures_the_broker(tmp_path):
    b = EnvBroker(tmp_path / "b", {
        "KAFKA_NUM_PARTITIONS": "3",
        "KAFKA_LOG_RETENTION_MS": "111111",
        "KAFKA_LOG_SEGMENT_BYTES": "2097152",
        "KAFKA_BACKGROUND_THREADS": "4",  # accepted, no effect in Klamm: a WARN
        "KLAMM_LOG_FORMAT": "json",
    }, overrides={"log.retention.ms": "222222"})
    b.start()
    try:
        topic = unique_topic("env")
        p = Producer({"bootstrap.servers": b.bootstrap})
        p.produce(topic, b"v", key=b"k")
        assert p.flush(30) == 0
        md = p.list_topics(topic, timeout=10)
        assert len(md.topics[topic].partitions) == 3, "num.partitions from KAFKA_NUM_PARTITIONS"

        cfg = broker_config(b.bootstrap)
        assert cfg["log.retention.ms"] == "222222", "--override wins over the environment"
        assert cfg["log.segment.bytes"] == "2097152", "the environment wins over the default"
        assert cfg["num.partitions"] == "3"
    finally:
        b.stop()

    text = b.log_path.read_text()
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith("=====")]
    assert lines, "the broker logged nothing"
    objects = [json.loads(l) for l in lines]  # every line is one JSON object
    messages = [o.get("fields", {}).get("message", "") for o in objects]
    assert all("level" in o and "timestamp" in o for o in objects)
    assert any("background.threads" in m and "no effect" in m for m in messages), messages[:20]
    assert any(o["level"] == "WARN" and "background.threads" in o["fields"]["message"] for o in objects)
    assert not any("heap.opts" in m or "\"opts\"" in m for m in messages), "start-script variables are not properties"


def test_environment_alone_adjusts_the_embedded_default(tmp_path):
    """Without a file and without KAFKA_PROCESS_ROLES, the environment adjusts the
    embedded single node (here only its addresses and data folder are moved, to
    keep tests apart)."""

    class Embedded(EnvBroker):
        def environment(self) -> dict[str, str]:
            env = Broker.environment(self)
            env.update(self.env)
            return env

        def argv(self) -> list[str]:
            p, c = self.port, self.controller_port
            return super().argv() + [
                "--override", f"listeners=PLAINTEXT://{HOST}:{p},CONTROLLER://{HOST}:{c}",
                "--override", f"controller.quorum.voters=1@{HOST}:{c}",
                "--override", f"log.dirs={self.data_dir}",
                "--override", f"klamm.http.listener={HOST}:{self.http_port}",
                "--override", "klamm.schema.registry.listener=",
            ]

    b = Embedded(tmp_path / "e", {"KAFKA_NUM_PARTITIONS": "2"})
    b.start()
    try:
        topic = unique_topic("emb")
        p = Producer({"bootstrap.servers": b.bootstrap})
        p.produce(topic, b"v")
        assert p.flush(30) == 0
        assert len(p.list_topics(topic, timeout=10).topics[topic].partitions) == 2
        # The embedded profile's group delay (0), not Kafka's 3000.
        assert broker_config(b.bootstrap)["group.initial.rebalance.delay.ms"] == "0"
    finally:
        b.stop()
