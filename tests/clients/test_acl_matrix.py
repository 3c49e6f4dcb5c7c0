"""The ACL matrix: every API the broker serves, authorized as Kafka's KafkaApis does it.

One row per API key. Each row logs in a principal of its own (SASL/SCRAM-SHA-256, no ACLs),
sends the request and checks Kafka's answer for an unauthorized principal: the API's
*_AUTHORIZATION_FAILED code where it fails, or the filtered answer where Kafka filters
(Metadata and DescribeTopicPartitions listings, ListGroups, ListTransactions, OffsetFetch of
all topics). Then it grants the minimal ACLs Kafka requires, one at a time where an API checks
several resources, and checks each refusal moves on until the request succeeds or fails for
a reason that is not authorization. The rows are checked against the API keys the broker
advertises in ApiVersions, so an API served without a row fails the suite.

Requests go through kafka-python's own request classes and connection (a stock client whose
protocol layer covers every API here), SaslHandshake / SaslAuthenticate through the wire
helper; ACLs and SCRAM credentials are created with confluent-kafka's AdminClient as the super
user. docs/security.md lists the same matrix.
"""

from __future__ import annotations

import time
import uuid
from typing import Callable

import pytest
from confluent_kafka.admin import (AclOperation, AdminClient, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion)
from kafka.protocol import admin as kadmin
from kafka.protocol import consumer as kconsumer
from kafka.protocol import metadata as kmetadata
from kafka.protocol import producer as kproducer

import kafka_wire as wire
from acl_matrix_support import (ADMIN_PASSWORD, PASSWORD, NODE, TIMEOUT_MS, TOPIC, DELETE_TOPIC, LISTED_GROUP,
                                 LISTED_TXN, NONE, UNKNOWN_TOPIC_OR_PARTITION, TOPIC_AUTHORIZATION_FAILED,
                                 GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED,
                                 TRANSACTIONAL_ID_AUTHORIZATION_FAILED, MEMBER_ID_REQUIRED,
                                 AUTHORIZATION_CODES, OP_DESCRIBE, MatrixBroker, Row, admin_conf, connect,
                                 build, commit_request, partition_codes, allowed, bits, ops)
from conftest import HOST


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = MatrixBroker(tmp_path_factory.mktemp("aclmatrix"))
    b.start()
    try:
        admin = AdminClient(admin_conf(b))
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
        upserts = [UserScramCredentialUpsertion(f"mx-{key}", info, PASSWORD.encode()) for key in ROWS]
        for f in admin.alter_user_scram_credentials(upserts).values():
            f.result(timeout=TIMEOUT_MS / 1000)
        su = connect(b, "admin", ADMIN_PASSWORD)
        try:
            for name in (TOPIC, DELETE_TOPIC):
                r = su.send_and_receive(NODE, build(kadmin.CreateTopicsRequest, 7, {
                    "topics": [{"name": name, "num_partitions": 1, "replication_factor": 1, "assignments": [], "configs": []}],
                    "timeout_ms": TIMEOUT_MS, "validate_only": False}))
                assert r.topics[0].error_code == NONE, r
            # A group with a committed offset (ListGroups, OffsetFetch of all topics) and a
            # transactional id with state (ListTransactions).
            # The first FindCoordinator creates __consumer_offsets; commits answer
            # NOT_COORDINATOR until its partition is led.
            su.send_and_receive(NODE, build(kmetadata.FindCoordinatorRequest, 4, {"key_type": 0, "coordinator_keys": [LISTED_GROUP]}))
            for group in (LISTED_GROUP, "mx-group-9"):
                deadline = time.monotonic() + TIMEOUT_MS / 1000
                while (codes := partition_codes(su.send_and_receive(NODE, commit_request(group)).topics)) != {NONE}:
                    assert time.monotonic() < deadline, codes
                    time.sleep(0.1)
            su.send_and_receive(NODE, build(kmetadata.FindCoordinatorRequest, 4, {"key_type": 1, "coordinator_keys": [LISTED_TXN]}))
            init = build(kproducer.InitProducerIdRequest, 4, {
                "transactional_id": LISTED_TXN, "transaction_timeout_ms": 60000, "producer_id": -1, "producer_epoch": -1})
            deadline = time.monotonic() + TIMEOUT_MS / 1000
            while (code := su.send_and_receive(NODE, init).error_code) != NONE:
                assert time.monotonic() < deadline, code
                time.sleep(0.1)
        finally:
            su.close()
        b.admin = admin
        yield b
    finally:
        b.stop()


T, G, C, X = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.BROKER, ResourceType.TRANSACTIONAL_ID
CLUSTER = "kafka-cluster"
Op = AclOperation

ROWS: dict[int, Callable[[Row], None]] = {}


def row(key: int):
    def register(fn):
        assert key not in ROWS, key
        ROWS[key] = fn
        return fn
    return register


# -- produce and consume ---------------------------------------------------------------------

@row(0)
def produce(m: Row):
    def send(txn=None):
        batch = wire.record_batch([wire.Record(b"k", b"v")])
        r = m.call(kproducer.ProduceRequest, 9, transactional_id=txn, acks=1, timeout_ms=TIMEOUT_MS,
                   topic_data=[{"name": TOPIC, "partition_data": [{"index": 0, "records": batch}]}])
        return partition_codes(r.responses, "partition_responses")
    assert send() == {TOPIC_AUTHORIZATION_FAILED}
    assert send(txn="mx-txn-0") == {TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
    m.grant(T, TOPIC, Op.WRITE)
    assert send() == {NONE}


@row(1)
def fetch(m: Row):
    def send(replica_id=-1):
        r = m.call(kconsumer.FetchRequest, 12, replica_id=replica_id, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20,
                   isolation_level=0, session_id=0, session_epoch=-1, forgotten_topics_data=[], rack_id="",
                   topics=[{"topic": TOPIC, "partitions": [{"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0,
                                                            "last_fetched_epoch": -1, "log_start_offset": -1,
                                                            "partition_max_bytes": 1 << 20}]}])
        return r.error_code, partition_codes(r.responses)
    assert send() == (NONE, {TOPIC_AUTHORIZATION_FAILED})
    # A follower's fetch needs CLUSTER_ACTION; Kafka refuses each partition, not the request.
    assert send(replica_id=7) == (NONE, {TOPIC_AUTHORIZATION_FAILED})
    m.grant(T, TOPIC, Op.READ)
    assert send() == (NONE, {NONE})
    assert send(replica_id=7) == (NONE, {TOPIC_AUTHORIZATION_FAILED})


@row(2)
def list_offsets(m: Row):
    def send():
        r = m.call(kconsumer.ListOffsetsRequest, 7, replica_id=-1, isolation_level=0,
                   topics=[{"name": TOPIC, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}])
        return partition_codes(r.topics)
    assert send() == {TOPIC_AUTHORIZATION_FAILED}
    m.grant(T, TOPIC, Op.DESCRIBE)
    assert send() == {NONE}


@row(3)
def metadata(m: Row):
    def send(topics, auto_create=False):
        r = m.call(kmetadata.MetadataRequest, 12, allow_auto_topic_creation=auto_create,
                   include_topic_authorized_operations=True,
                   topics=None if topics is None else [{"name": t} for t in topics])
        return {t.name: (t.error_code, ops(t.authorized_operations)) for t in r.topics}
    # Named: refused; listing every topic: left out.
    assert send([TOPIC]) == {TOPIC: (TOPIC_AUTHORIZATION_FAILED, None)}
    assert TOPIC not in send(None)
    m.grant(T, TOPIC, Op.DESCRIBE)
    assert send([TOPIC]) == {TOPIC: (NONE, bits(OP_DESCRIBE))}
    assert send(None)[TOPIC] == (NONE, bits(OP_DESCRIBE))
    # Auto-creation needs CREATE per topic: only the topic that may not be created is refused.
    new = f"mx-auto-{uuid.uuid4().hex[:6]}"
    m.grant(T, "mx-auto-", Op.DESCRIBE, ResourcePatternType.PREFIXED)
    got = send([TOPIC, new], auto_create=True)
    assert got == {TOPIC: (NONE, bits(OP_DESCRIBE)), new: (TOPIC_AUTHORIZATION_FAILED, None)}, got
    m.grant(T, new, Op.CREATE)
    got = send([TOPIC, new], auto_create=True)
    assert got[TOPIC][0] == NONE and got[new][0] in (NONE, 5), got  # created (LEADER_NOT_AVAILABLE at first)


@row(8)
def offset_commit(m: Row):
    group = "mx-group-8"
    def send():
        return partition_codes(m.client.send_and_receive(NODE, commit_request(group)).topics)
    assert send() == {GROUP_AUTHORIZATION_FAILED}
    m.grant(G, group, Op.READ)
    assert send() == {TOPIC_AUTHORIZATION_FAILED}
    m.grant(T, TOPIC, Op.READ)
    assert send() == {NONE}


@row(9)
def offset_fetch(m: Row):
    group, other = "mx-group-9", "mx-other-9"  # the fixture committed an offset for mx-group-9
    def send_v8(groups, topics=True):
        r = m.call(kconsumer.OffsetFetchRequest, 8, require_stable=False, groups=[
            {"group_id": g, "topics": [{"name": TOPIC, "partition_indexes": [0]}] if topics else None} for g in groups])
        return {g.group_id: (g.error_code, {(t.name, p.error_code, p.committed_offset) for t in g.topics for p in t.partitions})
                for g in r.groups}
    def send_v7(topics=True):
        r = m.call(kconsumer.OffsetFetchRequest, 7, group_id=group, require_stable=False,
                   topics=[{"name": TOPIC, "partition_indexes": [0]}] if topics else None)
        return r.error_code, {(t.name, p.error_code, p.committed_offset) for t in r.topics for p in t.partitions}
    assert send_v8([group]) == {group: (GROUP_AUTHORIZATION_FAILED, set())}
    assert send_v7() == (GROUP_AUTHORIZATION_FAILED, set())
    m.grant(G, group, Op.DESCRIBE)
    # The group is allowed, the topic is not: its partitions are refused, the other group too.
    refused = {(TOPIC, TOPIC_AUTHORIZATION_FAILED, -1)}
    assert send_v8([group, other]) == {group: (NONE, refused), other: (GROUP_AUTHORIZATION_FAILED, set())}
    assert send_v7() == (NONE, refused)
    # "All topics" (null) leaves the topic out instead.
    assert send_v8([group], topics=False) == {group: (NONE, set())}
    assert send_v7(topics=False) == (NONE, set())
    m.grant(T, TOPIC, Op.DESCRIBE)
    committed = {(TOPIC, NONE, 0)}
    assert send_v8([group]) == {group: (NONE, committed)}
    assert send_v8([group], topics=False) == {group: (NONE, committed)}
    assert send_v7() == (NONE, committed)


@row(10)
def find_coordinator(m: Row):
    group, other, txn = "mx-group-10", "mx-other-10", "mx-txn-10"
    def send_v4(keys, key_type=0):
        r = m.call(kmetadata.FindCoordinatorRequest, 4, key_type=key_type, coordinator_keys=keys)
        return [(c.key, c.error_code) for c in r.coordinators]
    def send_v3(key, key_type=0):
        return m.call(kmetadata.FindCoordinatorRequest, 3, key=key, key_type=key_type).error_code
    assert send_v4([group, other]) == [(group, GROUP_AUTHORIZATION_FAILED), (other, GROUP_AUTHORIZATION_FAILED)]
    assert send_v3(group) == GROUP_AUTHORIZATION_FAILED
    assert send_v4([txn], key_type=1) == [(txn, TRANSACTIONAL_ID_AUTHORIZATION_FAILED)]
    m.grant(G, group, Op.DESCRIBE)
    m.grant(X, txn, Op.DESCRIBE)
    # Each key on its own, in the request's order.
    assert send_v4([other, group]) == [(other, GROUP_AUTHORIZATION_FAILED), (group, NONE)]
    assert send_v3(group) == NONE
    assert send_v3(other) == GROUP_AUTHORIZATION_FAILED
    assert send_v4([txn], key_type=1) == [(txn, NONE)]


# -- group membership ------------------------------------------------------------------------

def group_row(key: int, send: Callable[[Row, str], int], allowed_code: int | None = None):
    def check(m: Row):
        group = f"mx-group-{key}"
        assert send(m, group) == GROUP_AUTHORIZATION_FAILED
        m.grant(G, group, Op.READ)
        code = send(m, group)
        allowed(code)
        if allowed_code is not None:
            assert code == allowed_code
    row(key)(check)


group_row(11, lambda m, g: m.call(kconsumer.JoinGroupRequest, 5, group_id=g, session_timeout_ms=10000,
                                  rebalance_timeout_ms=10000, member_id="", group_instance_id=None,
                                  protocol_type="consumer",
                                  protocols=[{"name": "range", "metadata": b""}]).error_code,
          allowed_code=MEMBER_ID_REQUIRED)
group_row(12, lambda m, g: m.call(kconsumer.HeartbeatRequest, 4, group_id=g, generation_id=1, member_id="m",
                                  group_instance_id=None).error_code)
group_row(13, lambda m, g: m.call(kconsumer.LeaveGroupRequest, 4, group_id=g,
                                  members=[{"member_id": "m", "group_instance_id": None}]).error_code)
group_row(14, lambda m, g: m.call(kconsumer.SyncGroupRequest, 5, group_id=g, generation_id=1, member_id="m",
                                  group_instance_id=None, protocol_type="consumer", protocol_name="range",
                                  assignments=[]).error_code)


@row(15)
def describe_groups(m: Row):
    group = LISTED_GROUP
    def send():
        g = m.call(kadmin.DescribeGroupsRequest, 5, groups=[group], include_authorized_operations=True).groups[0]
        return g.error_code, ops(g.authorized_operations)
    assert send() == (GROUP_AUTHORIZATION_FAILED, None)
    m.grant(G, group, Op.DESCRIBE)
    assert send() == (NONE, bits(OP_DESCRIBE))


@row(16)
def list_groups(m: Row):
    def send():
        r = m.call(kadmin.ListGroupsRequest, 4, states_filter=[])
        assert r.error_code == NONE
        return {g.group_id for g in r.groups}
    assert LISTED_GROUP not in send()
    m.grant(G, LISTED_GROUP, Op.DESCRIBE)
    assert LISTED_GROUP in send()


@row(42)
def delete_groups(m: Row):
    group = "mx-group-42"
    def send():
        return m.call(kadmin.DeleteGroupsRequest, 2, groups_names=[group]).results[0].error_code
    assert send() == GROUP_AUTHORIZATION_FAILED
    m.grant(G, group, Op.DELETE)
    allowed(send())


@row(47)
def offset_delete(m: Row):
    group = "mx-group-47"
    def send():
        r = m.call(kconsumer.OffsetDeleteRequest, 0, group_id=group,
                   topics=[{"name": TOPIC, "partitions": [{"partition_index": 0}]}])
        return r.error_code, partition_codes(r.topics)
    assert send() == (GROUP_AUTHORIZATION_FAILED, set())
    m.grant(G, group, Op.DELETE)
    code, parts = send()
    assert parts == {TOPIC_AUTHORIZATION_FAILED} or code not in (NONE, GROUP_AUTHORIZATION_FAILED), (code, parts)
    m.grant(T, TOPIC, Op.READ)
    code, parts = send()
    allowed(code)
    assert not parts & AUTHORIZATION_CODES, parts


# -- SASL and ApiVersions: no ACL at all ------------------------------------------------------

@row(17)
def sasl_handshake(m: Row):
    with wire.Conn(HOST, m.broker.sasl_port) as c:
        r = c.request(17, 1, wire.string("SCRAM-SHA-256"))
        assert r.i16() == NONE
        assert r.array(lambda rr: rr.string()) == ["SCRAM-SHA-256"]


@row(36)
def sasl_authenticate(m: Row):
    with wire.Conn(HOST, m.broker.sasl_port) as c:
        assert c.request(17, 1, wire.string("SCRAM-SHA-256")).i16() == NONE
        nonce = uuid.uuid4().hex
        r = c.request(36, 1, wire.nbytes(f"n,,n={m.name},r={nonce}".encode()))  # SaslAuthenticate v1
        assert r.i16() == NONE
        r.string()  # error message
        server_first = r.take(r.i32()).decode()
        assert server_first.startswith(f"r={nonce}"), server_first


@row(18)
def api_versions(m: Row):
    r = m.call(kmetadata.ApiVersionsRequest, 3, client_software_name="matrix", client_software_version="1")
    assert r.error_code == NONE and len(r.api_keys) == len(ROWS)


# -- topics ---------------------------------------------------------------------------------

@row(19)
def create_topics(m: Row):
    name = f"mx-created-{uuid.uuid4().hex[:6]}"
    def send():
        r = m.call(kadmin.CreateTopicsRequest, 7, timeout_ms=TIMEOUT_MS, validate_only=False, topics=[
            {"name": name, "num_partitions": 1, "replication_factor": 1, "assignments": [], "configs": []}])
        return r.topics[0].error_code
    assert send() == TOPIC_AUTHORIZATION_FAILED
    m.grant(T, name, Op.CREATE)
    assert send() == NONE


@row(20)
def delete_topics(m: Row):
    def send():
        r = m.call(kadmin.DeleteTopicsRequest, 6, timeout_ms=TIMEOUT_MS, topics=[{"name": DELETE_TOPIC}])
        return r.responses[0].error_code
    assert send() == TOPIC_AUTHORIZATION_FAILED
    m.grant(T, DELETE_TOPIC, Op.DELETE)
    assert send() == NONE


@row(21)
def delete_records(m: Row):
    def send():
        r = m.call(kadmin.DeleteRecordsRequest, 2, timeout_ms=TIMEOUT_MS,
                   topics=[{"name": TOPIC, "partitions": [{"partition_index": 0, "offset": 0}]}])
        return partition_codes(r.topics)
    assert send() == {TOPIC_AUTHORIZATION_FAILED}
    m.grant(T, TOPIC, Op.DELETE)
    assert send() == {NONE}


@row(23)
def offset_for_leader_epoch(m: Row):
    def send(replica_id=-1):
        r = m.call(kconsumer.OffsetForLeaderEpochRequest, 4, replica_id=replica_id, topics=[
            {"topic": TOPIC, "partitions": [{"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}])
        return partition_codes(r.topics)
    assert send() == {TOPIC_AUTHORIZATION_FAILED}
    assert send(replica_id=7) == {TOPIC_AUTHORIZATION_FAILED}
    m.grant(T, TOPIC, Op.DESCRIBE)
    assert send() == {NONE}


@row(37)
def create_partitions(m: Row):
    def send():
        r = m.call(kadmin.CreatePartitionsRequest, 3, timeout_ms=TIMEOUT_MS, validate_only=True,
                   topics=[{"name": TOPIC, "count": 2, "assignments": None}])
        return r.results[0].error_code
    assert send() == TOPIC_AUTHORIZATION_FAILED
    m.grant(T, TOPIC, Op.ALTER)
    assert send() == NONE


@row(75)
def describe_topic_partitions(m: Row):
    def send(topics):
        r = m.call(kadmin.DescribeTopicPartitionsRequest, 0, response_partition_limit=2000, cursor=None,
                   topics=[{"name": t} for t in topics])
        return {t.name: (t.error_code, ops(t.topic_authorized_operations)) for t in r.topics}
    assert send([TOPIC]) == {TOPIC: (TOPIC_AUTHORIZATION_FAILED, None)}
    assert TOPIC not in send([])
    m.grant(T, TOPIC, Op.DESCRIBE)
    assert send([TOPIC]) == {TOPIC: (NONE, bits(OP_DESCRIBE))}
    assert send([])[TOPIC] == (NONE, bits(OP_DESCRIBE))


# -- configs --------------------------------------------------------------------------------

@row(32)
def describe_configs(m: Row):
    def send():
        r = m.call(kadmin.DescribeConfigsRequest, 4, include_synonyms=False, include_documentation=False, resources=[
            {"resource_type": 2, "resource_name": TOPIC, "configuration_keys": None},
            {"resource_type": 4, "resource_name": str(NODE), "configuration_keys": None}])
        return {r.resource_type: r.error_code for r in r.results}
    assert send() == {2: TOPIC_AUTHORIZATION_FAILED, 4: CLUSTER_AUTHORIZATION_FAILED}
    m.grant(T, TOPIC, Op.DESCRIBE_CONFIGS)
    assert send() == {2: NONE, 4: CLUSTER_AUTHORIZATION_FAILED}
    m.grant(C, CLUSTER, Op.DESCRIBE_CONFIGS)
    assert send() == {2: NONE, 4: NONE}


@row(33)
def alter_configs(m: Row):
    def send():
        r = m.call(kadmin.AlterConfigsRequest, 2, validate_only=True, resources=[
            {"resource_type": 2, "resource_name": TOPIC, "configs": [{"name": "retention.ms", "value": "86400000"}]}])
        return r.responses[0].error_code
    assert send() == TOPIC_AUTHORIZATION_FAILED
    m.grant(T, TOPIC, Op.ALTER_CONFIGS)
    assert send() == NONE


@row(44)
def incremental_alter_configs(m: Row):
    def send():
        r = m.call(kadmin.IncrementalAlterConfigsRequest, 1, validate_only=True, resources=[
            {"resource_type": 2, "resource_name": TOPIC,
             "configs": [{"name": "retention.ms", "config_operation": 0, "value": "86400000"}]}])
        return r.responses[0].error_code
    assert send() == TOPIC_AUTHORIZATION_FAILED
    m.grant(T, TOPIC, Op.ALTER_CONFIGS)
    assert send() == NONE


# -- cluster-wide ---------------------------------------------------------------------------

def cluster_row(key: int, operation: AclOperation, send: Callable[[Row], int], allowed_code: int | None = NONE):
    def check(m: Row):
        assert send(m) == CLUSTER_AUTHORIZATION_FAILED
        m.grant(C, CLUSTER, operation)
        code = send(m)
        allowed(code)
        if allowed_code is not None:
            assert code == allowed_code
    row(key)(check)


cluster_row(29, Op.DESCRIBE, lambda m: m.call(
    kadmin.DescribeAclsRequest, 3, resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
    principal_filter=None, host_filter=None, operation=1, permission_type=1).error_code)
cluster_row(30, Op.ALTER, lambda m: m.call(kadmin.CreateAclsRequest, 3, creations=[
    {"resource_type": 2, "resource_name": "mx-unused", "resource_pattern_type": 3, "principal": "User:mx-nobody",
     "host": "*", "operation": 3, "permission_type": 3}]).results[0].error_code)
cluster_row(31, Op.ALTER, lambda m: m.call(kadmin.DeleteAclsRequest, 3, filters=[
    {"resource_type_filter": 2, "resource_name_filter": "mx-unused", "pattern_type_filter": 3,
     "principal_filter": "User:mx-nobody", "host_filter": "*", "operation": 3,
     "permission_type": 3}]).filter_results[0].error_code)
cluster_row(43, Op.ALTER, lambda m: m.call(kadmin.ElectLeadersRequest, 2, election_type=0, timeout_ms=TIMEOUT_MS,
                                           topic_partitions=[{"topic": TOPIC, "partitions": [0]}]).error_code)
cluster_row(45, Op.ALTER, lambda m: m.call(kadmin.AlterPartitionReassignmentsRequest, 0, timeout_ms=TIMEOUT_MS, topics=[
    {"name": TOPIC, "partitions": [{"partition_index": 0, "replicas": None}]}]).error_code)
cluster_row(46, Op.DESCRIBE, lambda m: m.call(kadmin.ListPartitionReassignmentsRequest, 0, timeout_ms=TIMEOUT_MS,
                                              topics=None).error_code)
cluster_row(50, Op.DESCRIBE, lambda m: m.call(kadmin.DescribeUserScramCredentialsRequest, 0, users=None).error_code)
cluster_row(51, Op.ALTER, lambda m: m.call(kadmin.AlterUserScramCredentialsRequest, 0, upsertions=[], deletions=[
    {"name": "mx-nobody", "mechanism": 1}]).results[0].error_code, allowed_code=None)
cluster_row(55, Op.DESCRIBE, lambda m: m.call(kadmin.DescribeQuorumRequest, 1, topics=[
    {"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}]).error_code)
cluster_row(27, Op.CLUSTER_ACTION, lambda m: next(iter(partition_codes(m.call(
    kproducer.WriteTxnMarkersRequest, 1, markers=[
        {"producer_id": 1000, "producer_epoch": 0, "transaction_result": False, "coordinator_epoch": 0,
         "topics": [{"name": "mx-no-such-topic", "partition_indexes": [0]}]}]).markers[0].topics))),
    allowed_code=UNKNOWN_TOPIC_OR_PARTITION)


@row(60)
def describe_cluster(m: Row):
    def send():
        r = m.call(kadmin.DescribeClusterRequest, 1, include_cluster_authorized_operations=True, endpoint_type=1)
        return r.error_code, ops(r.authorized_operations)
    # No ACL needed; the operations are reported only to who may DESCRIBE the cluster.
    assert send() == (NONE, 0)
    m.grant(C, CLUSTER, Op.DESCRIBE)
    assert send() == (NONE, bits(OP_DESCRIBE))


# -- transactions ---------------------------------------------------------------------------

@row(22)
def init_producer_id(m: Row):
    txn = "mx-txn-22"
    def send(transactional_id):
        return m.call(kproducer.InitProducerIdRequest, 4, transactional_id=transactional_id,
                      transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1).error_code
    assert send(None) == CLUSTER_AUTHORIZATION_FAILED
    assert send(txn) == TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    m.grant(C, CLUSTER, Op.IDEMPOTENT_WRITE)
    assert send(None) == NONE
    m.grant(X, txn, Op.WRITE)
    assert send(txn) == NONE


@row(24)
def add_partitions_to_txn(m: Row):
    txn = "mx-txn-24"
    def send():
        r = m.call(kproducer.AddPartitionsToTxnRequest, 3, v3_and_below_transactional_id=txn,
                   v3_and_below_producer_id=1000, v3_and_below_producer_epoch=0,
                   v3_and_below_topics=[{"name": TOPIC, "partitions": [0]}])
        return partition_codes(r.results_by_topic_v3_and_below, "results_by_partition", "partition_error_code")
    def send_v4():  # the brokers' verification form
        return m.call(kproducer.AddPartitionsToTxnRequest, 4, transactions=[
            {"transactional_id": txn, "producer_id": 1000, "producer_epoch": 0, "verify_only": True,
             "topics": [{"name": TOPIC, "partitions": [0]}]}]).error_code
    assert send() == {TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
    assert send_v4() == CLUSTER_AUTHORIZATION_FAILED
    m.grant(X, txn, Op.WRITE)
    assert send() == {TOPIC_AUTHORIZATION_FAILED}
    m.grant(T, TOPIC, Op.WRITE)
    (code,) = send()
    allowed(code)
    m.grant(C, CLUSTER, Op.CLUSTER_ACTION)
    allowed(send_v4())


@row(25)
def add_offsets_to_txn(m: Row):
    txn, group = "mx-txn-25", "mx-group-25"
    def send():
        return m.call(kproducer.AddOffsetsToTxnRequest, 3, transactional_id=txn, producer_id=1000, producer_epoch=0,
                      group_id=group).error_code
    assert send() == TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    m.grant(X, txn, Op.WRITE)
    assert send() == GROUP_AUTHORIZATION_FAILED
    m.grant(G, group, Op.READ)
    allowed(send())


@row(26)
def end_txn(m: Row):
    txn = "mx-txn-26"
    def send():
        return m.call(kproducer.EndTxnRequest, 3, transactional_id=txn, producer_id=1000, producer_epoch=0,
                      committed=False).error_code
    assert send() == TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    m.grant(X, txn, Op.WRITE)
    allowed(send())


@row(28)
def txn_offset_commit(m: Row):
    txn, group = "mx-txn-28", "mx-group-28"
    def send():
        r = m.call(kproducer.TxnOffsetCommitRequest, 3, transactional_id=txn, group_id=group, producer_id=1000,
                   producer_epoch=0, generation_id=-1, member_id="", group_instance_id=None, topics=[
                       {"name": TOPIC, "partitions": [{"partition_index": 0, "committed_offset": 0,
                                                       "committed_leader_epoch": -1, "committed_metadata": ""}]}])
        return partition_codes(r.topics)
    assert send() == {TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
    m.grant(X, txn, Op.WRITE)
    assert send() == {GROUP_AUTHORIZATION_FAILED}
    m.grant(G, group, Op.READ)
    assert send() == {TOPIC_AUTHORIZATION_FAILED}
    m.grant(T, TOPIC, Op.READ)
    (code,) = send()
    allowed(code)


@row(61)
def describe_producers(m: Row):
    def send():
        r = m.call(kadmin.DescribeProducersRequest, 0, topics=[{"name": TOPIC, "partition_indexes": [0]}])
        return partition_codes(r.topics)
    assert send() == {TOPIC_AUTHORIZATION_FAILED}
    m.grant(T, TOPIC, Op.READ)
    assert send() == {NONE}


@row(65)
def describe_transactions(m: Row):
    txn = "mx-txn-65"
    def send():
        return m.call(kadmin.DescribeTransactionsRequest, 0, transactional_ids=[txn]).transaction_states[0].error_code
    assert send() == TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    m.grant(X, txn, Op.DESCRIBE)
    allowed(send())


@row(66)
def list_transactions(m: Row):
    def send():
        r = m.call(kadmin.ListTransactionsRequest, 1, state_filters=[], producer_id_filters=[], duration_filter=-1)
        assert r.error_code == NONE
        return {t.transactional_id for t in r.transaction_states}
    assert LISTED_TXN not in send()
    m.grant(X, LISTED_TXN, Op.DESCRIBE)
    assert LISTED_TXN in send()


# -- the tests --------------------------------------------------------------------------------

def test_every_served_api_has_a_row(broker):
    with wire.Conn(HOST, broker.port) as c:
        served = set(wire.api_versions(c, 3).api_keys)
    assert served - set(ROWS) == set(), "APIs served without an ACL matrix row"
    assert set(ROWS) - served == set(), "rows for APIs the broker does not serve"


@pytest.mark.parametrize("key", sorted(ROWS))
def test_acl_matrix(broker, key):
    m = Row(broker, broker.admin, key)
    try:
        ROWS[key](m)
    finally:
        m.close()
