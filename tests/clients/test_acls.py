"""ACLs (StandardAuthorizer) through confluent-kafka: the order pipeline.

The order service may write orders_raw; the processor reads orders_raw as group
order-processor and writes orders_processed / orders_dlq; the notification service only
reads orders_processed (group notification-service). Each can do exactly its job and gets
Kafka's *_AUTHORIZATION_FAILED otherwise. Principals come from SASL/PLAIN logins; User:admin
is a super user and sets the ACLs with CreateAcls.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType)

from conftest import HOST, Broker, free_port

USERS = {"admin": "admin-pw", "orders": "orders-pw", "processor": "processor-pw", "notifier": "notifier-pw"}
TIMEOUT_S = 30.0


class AclBroker(Broker):
    def __init__(self, workdir: Path):
        self.sasl_port = free_port()
        jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")
        super().__init__(workdir, {
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The brokers' own requests (transaction markers, verification) come
            # over the PLAINTEXT inter-broker listener as User:ANONYMOUS, which
            # Kafka's documentation makes a super user in such a setup; clients of
            # this test use the SASL listener only.
            "super.users": "User:admin;User:ANONYMOUS",
            "transaction.state.log.num.partitions": "3",
        })

    def argv(self) -> list[str]:
        extra = f"SASL_PLAINTEXT://{HOST}:{self.sasl_port}"
        return [a + "," + extra if a.startswith(("listeners=", "advertised.listeners=")) else a
                for a in super().argv()]


def conf(broker: AclBroker, user: str, **extra) -> dict:
    return {"bootstrap.servers": f"{HOST}:{broker.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": USERS[user],
            "broker.address.family": "v4", "socket.timeout.ms": 10000, **extra}


def allow(principal: str, rtype: ResourceType, name: str, operation: AclOperation,
          pattern: ResourcePatternType = ResourcePatternType.LITERAL) -> AclBinding:
    return AclBinding(rtype, name, pattern, f"User:{principal}", "*", operation, AclPermissionType.ALLOW)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = AclBroker(tmp_path_factory.mktemp("acls"))
    b.start()
    try:
        admin = AdminClient(conf(b, "admin"))
        for f in admin.create_topics([NewTopic(t, 1, 1) for t in ("orders_raw", "orders_processed", "orders_dlq")]).values():
            f.result(timeout=TIMEOUT_S)
        acls = [
            allow("orders", ResourceType.TOPIC, "orders_raw", AclOperation.WRITE),
            allow("processor", ResourceType.TOPIC, "orders_raw", AclOperation.READ),
            allow("processor", ResourceType.GROUP, "order-processor", AclOperation.READ),
            allow("processor", ResourceType.TOPIC, "orders_processed", AclOperation.WRITE),
            allow("processor", ResourceType.TOPIC, "orders_dlq", AclOperation.WRITE),
            allow("notifier", ResourceType.TOPIC, "orders_processed", AclOperation.READ),
            allow("notifier", ResourceType.GROUP, "notification-", AclOperation.READ, ResourcePatternType.PREFIXED),
            allow("processor", ResourceType.TRANSACTIONAL_ID, "order-processor-tx", AclOperation.WRITE),
        ]
        for f in admin.create_acls(acls).values():
            f.result(timeout=TIMEOUT_S)
        yield b
    finally:
        b.stop()


def produce(c: dict, topic: str, n: int = 3) -> list[KafkaError | None]:
    errors: list[KafkaError | None] = []
    p = Producer({**c, "message.timeout.ms": 10000})
    for i in range(n):
        p.produce(topic, value=f"{topic}-{i}".encode(), on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT_S)
    return errors


def consume(c: dict, topic: str, group: str, want: int) -> tuple[list[bytes], set[int]]:
    """Values read and the error codes seen (bounded by TIMEOUT_S or the first error)."""
    cons = Consumer({**c, "group.id": group, "auto.offset.reset": "earliest"})
    cons.subscribe([topic])
    got, codes = [], set()
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(got) < want and not codes and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None:
                continue
            if m.error():
                codes.add(m.error().code())
            else:
                got.append(m.value())
    finally:
        cons.close()
    return got, codes


def test_each_service_does_exactly_its_job(broker):
    # Order service: writes orders_raw (idempotently: KIP-679 lets WRITE imply IDEMPOTENT_WRITE).
    assert produce(conf(broker, "orders", **{"enable.idempotence": True}), "orders_raw") == [None] * 3
    errs = produce(conf(broker, "orders"), "orders_processed")
    assert errs and all(e is not None and e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED for e in errs), errs

    # Processor: reads orders_raw as order-processor, writes orders_processed and orders_dlq.
    got, codes = consume(conf(broker, "processor"), "orders_raw", "order-processor", 3)
    assert len(got) == 3 and not codes, codes
    assert produce(conf(broker, "processor"), "orders_processed") == [None] * 3
    assert produce(conf(broker, "processor"), "orders_dlq") == [None] * 3
    _, codes = consume(conf(broker, "processor"), "orders_raw", f"other-{uuid.uuid4().hex[:6]}", 1)
    assert KafkaError.GROUP_AUTHORIZATION_FAILED in codes, codes

    # Notification service: only reads orders_processed.
    got, codes = consume(conf(broker, "notifier"), "orders_processed", "notification-service", 3)
    assert len(got) == 3 and not codes, codes
    errs = produce(conf(broker, "notifier"), "orders_processed")
    assert errs and all(e is not None and e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED for e in errs), errs
    _, codes = consume(conf(broker, "notifier"), "orders_raw", "notification-raw", 1)
    assert KafkaError.TOPIC_AUTHORIZATION_FAILED in codes, codes


def test_metadata_hides_topics_the_principal_may_not_describe(broker):
    visible = lambda user: set(AdminClient(conf(broker, user)).list_topics(timeout=10).topics)
    assert visible("notifier") == {"orders_processed"}
    assert visible("orders") == {"orders_raw"}
    assert {"orders_raw", "orders_processed", "orders_dlq"} <= visible("admin")


def test_acl_admin_apis(broker):
    admin = AdminClient(conf(broker, "admin"))
    listed = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                                  AclOperation.ANY, AclPermissionType.ANY)).result(timeout=TIMEOUT_S)
    assert allow("orders", ResourceType.TOPIC, "orders_raw", AclOperation.WRITE) in listed
    assert len(listed) == 8

    # Only those with ALTER on the cluster may change ACLs.
    outsider = AdminClient(conf(broker, "orders"))  # kept alive until its futures resolve
    futures = outsider.create_acls(
        [allow("orders", ResourceType.TOPIC, "orders_dlq", AclOperation.WRITE)])
    with pytest.raises(KafkaException) as info:
        for f in futures.values():
            f.result(timeout=TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED

    # A DENY wins over an ALLOW; deleting it gives the access back.
    deny = AclBinding(ResourceType.TOPIC, "orders_processed", ResourcePatternType.LITERAL, "User:processor", "*",
                      AclOperation.WRITE, AclPermissionType.DENY)
    for f in admin.create_acls([deny]).values():
        f.result(timeout=TIMEOUT_S)
    errs = produce(conf(broker, "processor"), "orders_processed", 1)
    assert errs[0] is not None and errs[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errs
    deny_filter = AclBindingFilter(ResourceType.TOPIC, "orders_processed", ResourcePatternType.LITERAL,
                                   "User:processor", "*", AclOperation.WRITE, AclPermissionType.DENY)
    deleted = list(admin.delete_acls([deny_filter]).values())[0].result(timeout=TIMEOUT_S)
    assert deleted == [deny]
    assert produce(conf(broker, "processor"), "orders_processed", 1) == [None]


def test_authorized_operations(broker):
    from confluent_kafka import TopicCollection
    notifier = AdminClient(conf(broker, "notifier"))
    topics = notifier.describe_topics(TopicCollection(["orders_processed"]), include_authorized_operations=True)
    desc = topics["orders_processed"].result(timeout=TIMEOUT_S)
    assert set(desc.authorized_operations) == {AclOperation.READ, AclOperation.DESCRIBE}
    cluster = notifier.describe_cluster(include_authorized_operations=True).result(timeout=TIMEOUT_S)
    assert not cluster.authorized_operations
    admin = AdminClient(conf(broker, "admin"))
    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=TIMEOUT_S)
    assert AclOperation.ALTER in set(cluster.authorized_operations)
    consume(conf(broker, "notifier"), "orders_processed", "notification-ops", 1)
    groups = notifier.describe_consumer_groups(["notification-ops"], include_authorized_operations=True)
    g = groups["notification-ops"].result(timeout=TIMEOUT_S)
    assert set(g.authorized_operations) == {AclOperation.READ, AclOperation.DESCRIBE}


def test_per_topic_admin_checks(broker):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import ConfigResource, NewPartitions
    resource = ConfigResource(ConfigResource.Type.TOPIC, "orders_processed")
    notifier = AdminClient(conf(broker, "notifier"))
    with pytest.raises(KafkaException) as info:
        notifier.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    admin = AdminClient(conf(broker, "admin"))
    assert "retention.ms" in admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as info:
        notifier.create_partitions([NewPartitions("orders_processed", 2)])["orders_processed"].result(timeout=TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    deleted = notifier.delete_records([TopicPartition("orders_processed", 0, 1)])
    with pytest.raises(KafkaException) as info:
        list(deleted.values())[0].result(timeout=TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_config_and_group_changes_need_their_permissions(broker):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    resource = ConfigResource(ConfigResource.Type.TOPIC, "orders_raw",
                              incremental_configs=[ConfigEntry("retention.ms", "3600000",
                                                               incremental_operation=AlterConfigOpType.SET)])
    orders = AdminClient(conf(broker, "orders"))
    with pytest.raises(KafkaException) as info:
        orders.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    admin = AdminClient(conf(broker, "admin"))
    admin.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT_S)
    # The processor's group exists (it consumed); the notifier may not delete it.
    consume(conf(broker, "processor"), "orders_raw", "order-processor", 1)
    notifier = AdminClient(conf(broker, "notifier"))
    with pytest.raises(KafkaException) as info:
        notifier.delete_consumer_groups(["order-processor"])["order-processor"].result(timeout=TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_cluster_operations_need_cluster_permissions(broker):
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
    orders = AdminClient(conf(broker, "orders"))
    upsert = UserScramCredentialUpsertion("mallory", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw")
    with pytest.raises(KafkaException) as info:
        orders.alter_user_scram_credentials([upsert])["mallory"].result(timeout=TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    admin = AdminClient(conf(broker, "admin"))
    admin.alter_user_scram_credentials([upsert])["mallory"].result(timeout=TIMEOUT_S)


def test_exactly_once_processor_needs_its_transactional_id(broker):
    """The processor runs consume-transform-produce in transactions under its ACLs
    (WRITE on its transactional id; READ on the input and its group; WRITE on the
    output); a service without WRITE on that id is refused at init_transactions
    with TRANSACTIONAL_ID_AUTHORIZATION_FAILED."""
    from confluent_kafka import TopicPartition
    assert produce(conf(broker, "orders"), "orders_raw", 2) == [None] * 2
    cons = Consumer({**conf(broker, "processor"), "group.id": "order-processor", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "isolation.level": "read_committed"})
    p = Producer({**conf(broker, "processor"), "transactional.id": "order-processor-tx"})
    try:
        p.init_transactions(TIMEOUT_S)
        cons.subscribe(["orders_raw"])
        got, deadline = [], time.monotonic() + TIMEOUT_S
        while len(got) < 2 and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and not m.error():
                got.append(m)
        assert len(got) >= 2
        p.begin_transaction()
        for m in got:
            p.produce("orders_processed", value=b"tx-" + m.value())
        p.send_offsets_to_transaction(cons.position(cons.assignment()), cons.consumer_group_metadata(), TIMEOUT_S)
        p.commit_transaction(TIMEOUT_S)
        committed = cons.committed([TopicPartition("orders_raw", 0)], timeout=TIMEOUT_S)[0].offset
        assert committed == got[-1].offset() + 1
    finally:
        cons.close()

    for user in ("notifier", "orders"):
        other = Producer({**conf(broker, user), "transactional.id": "order-processor-tx"})
        with pytest.raises(KafkaException) as e:
            other.init_transactions(TIMEOUT_S)
        assert e.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, e.value


def test_offsets_of_a_topic_the_principal_may_not_describe_are_refused_per_partition(broker):
    """confluent-kafka's list_consumer_group_offsets (OffsetFetch) naming a topic without
    DESCRIBE gets TOPIC_AUTHORIZATION_FAILED on that partition, as Kafka answers, while the
    describable topic's offset comes back."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    consume(conf(broker, "notifier"), "orders_processed", "notification-offsets", 1)
    notifier = AdminClient(conf(broker, "notifier"))
    request = ConsumerGroupTopicPartitions("notification-offsets", [TopicPartition("orders_processed", 0),
                                                                    TopicPartition("orders_raw", 0)])
    result = notifier.list_consumer_group_offsets([request])["notification-offsets"].result(timeout=TIMEOUT_S)
    by_topic = {tp.topic: tp for tp in result.topic_partitions}
    assert by_topic["orders_processed"].error is None, by_topic
    assert by_topic["orders_raw"].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, by_topic
