"""The harness of test_acl_matrix.py: the broker with ACLs and SCRAM, a principal's
connection (kafka-python's own client and request classes), and the helpers the rows use."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType)
from kafka.net.compat import KafkaNetClient
from kafka.protocol import consumer as kconsumer

from conftest import HOST, Broker, free_port


ADMIN_PASSWORD = "admin-secret"
PASSWORD = "matrix-secret"
NODE = 1
TIMEOUT_MS = 15000

TOPIC = "mx-topic"
DELETE_TOPIC = "mx-delete"
LISTED_GROUP = "mx-listed"
LISTED_TXN = "mx-listed-txn"

# Kafka's error codes used below.
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
MEMBER_ID_REQUIRED = 79
AUTHORIZATION_CODES = {TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED,
                       TRANSACTIONAL_ID_AUTHORIZATION_FAILED}

# Kafka's AclOperation codes, as the authorized-operations bit fields use them.
OP_READ, OP_WRITE, OP_DESCRIBE = 3, 4, 8


class MatrixBroker(Broker):
    """ACLs on, a SASL_PLAINTEXT listener with SCRAM-SHA-256 and `--add-scram` for the super
    user admin. Inter-broker traffic stays on PLAINTEXT as User:ANONYMOUS (a super user as
    Kafka's documentation has it for such a setup); the rows use the SASL listener only."""

    def __init__(self, workdir: Path):
        self.sasl_port = free_port()
        super().__init__(workdir, {
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-256",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin;User:ANONYMOUS",
            "transaction.state.log.num.partitions": "1",
            "offsets.topic.num.partitions": "1",
        })

    def argv(self) -> list[str]:
        extra = f"SASL_PLAINTEXT://{HOST}:{self.sasl_port}"
        argv = [a + "," + extra if a.startswith(("listeners=", "advertised.listeners=")) else a
                for a in super().argv()]
        return argv + ["--add-scram", f"SCRAM-SHA-256=[name=admin,password={ADMIN_PASSWORD}]"]


def admin_conf(broker: MatrixBroker) -> dict:
    return {"bootstrap.servers": f"{HOST}:{broker.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "admin", "sasl.password": ADMIN_PASSWORD,
            "broker.address.family": "v4"}


def connect(broker: MatrixBroker, user: str, password: str) -> KafkaNetClient:
    client = KafkaNetClient(bootstrap_servers=f"{HOST}:{broker.sasl_port}", security_protocol="SASL_PLAINTEXT",
                            sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=user,
                            sasl_plain_password=password, client_id=user, request_timeout_ms=TIMEOUT_MS)
    client.check_version(timeout_ms=TIMEOUT_MS)
    return client


def build(cls, version: int, values: dict):
    """A kafka-python request (or nested struct) of `version` from plain dicts and lists."""
    fields = {}
    for name, value in values.items():
        field = cls.fields[name]
        if value is not None and field.is_struct_array():
            value = [build(field.data_class, version, v) for v in value]
        elif value is not None and field.is_struct():
            value = build(field.data_class, version, value)
        fields[name] = value
    return cls(version=version, **fields)


class Row:
    """One API's principal: sends requests as it, and grants it ACLs through the admin."""

    def __init__(self, broker: MatrixBroker, admin: AdminClient, key: int):
        self.name = f"mx-{key}"
        self.principal = f"User:{self.name}"
        self.broker, self.admin, self.key = broker, admin, key
        self.client = connect(broker, self.name, PASSWORD)

    def call(self, cls, version: int, **values):
        return self.client.send_and_receive(NODE, build(cls, version, values), timeout_ms=TIMEOUT_MS)

    def grant(self, rtype: ResourceType, name: str, operation: AclOperation,
              pattern: ResourcePatternType = ResourcePatternType.LITERAL) -> None:
        binding = AclBinding(rtype, name, pattern, self.principal, "*", operation, AclPermissionType.ALLOW)
        for f in self.admin.create_acls([binding]).values():
            f.result(timeout=TIMEOUT_MS / 1000)

    def close(self) -> None:
        self.client.close()


def commit_request(group: str):
    return build(kconsumer.OffsetCommitRequest, 8, {
        "group_id": group, "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
        "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "committed_offset": 0,
                                                   "committed_leader_epoch": -1, "committed_metadata": ""}]}]})


def partition_codes(topics, partitions: str = "partitions", code: str = "error_code") -> set[int]:
    return {getattr(p, code) for t in topics for p in getattr(t, partitions)}


def allowed(code: int) -> None:
    """Past authorization: success, or an error that is not about ACLs."""
    assert code not in AUTHORIZATION_CODES, code


def bits(*operations: int) -> int:
    return sum(1 << o for o in operations)


def ops(field) -> int | None:
    """An authorized-operations field as its bit field; None when not reported (-2^31, which
    kafka-python decodes as None)."""
    if field is None or field == -2**31:
        return None
    if isinstance(field, int):
        return field
    return sum(1 << int(o) for o in field)
