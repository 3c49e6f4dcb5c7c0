"""The schema registry on a broker that requires authentication: HTTP basic auth against the
broker's users (SASL/PLAIN users of the JAAS config, SCRAM credentials of the cluster) and
TLS with the broker's `ssl.*` settings (`klamm.schema.registry.listener=https://...`).

Through confluent-kafka's SchemaRegistryClient (`basic.auth.user.info`, `ssl.ca.location`)
with AvroSerializer/AvroDeserializer, producing and consuming over SASL_SSL with
SCRAM-SHA-512, and through plain HTTPS requests for the 401 answer itself."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import uuid
from pathlib import Path

import pytest
import requests
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import HOST, Broker, BrokerStartError, free_port
from test_schema_registry import ORDER_V1, order, read_avro_values
from test_security import ADMIN_PASSWORD, PLAIN_USERS, SecureBroker, _ca, _leaf, client_conf

SCRAM_USER, SCRAM_PASSWORD = "orders-svc", "orders-svc-secret"
REALM = 'Basic realm="Klamm Schema Registry"'
OP_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("regcerts")
    _ca(d, "ca")
    _leaf(d, "ca", "server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    return d


class RegistryBroker(SecureBroker):
    """SecureBroker (SASL listeners, so registry auth is on by default) with the registry on https."""

    def argv(self) -> list[str]:
        return [a.replace("klamm.schema.registry.listener=", "klamm.schema.registry.listener=https://", 1)
                if a.startswith("klamm.schema.registry.listener=") else a for a in super().argv()]

    @property
    def registry_url(self) -> str:
        return f"https://{HOST}:{self.registry_port}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory, certs):
    b = RegistryBroker(tmp_path_factory.mktemp("regsecure"), certs)
    b.start()
    try:
        admin = AdminClient(client_conf(b, certs, "SASL_SSL", **{"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                                                                   "sasl.password": ADMIN_PASSWORD}))
        futures = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(SCRAM_USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                          SCRAM_PASSWORD.encode())])
        for f in futures.values():
            f.result(timeout=OP_TIMEOUT_S)
        yield b
    finally:
        b.stop()


def registry(broker, certs, user_info: str | None) -> SchemaRegistryClient:
    conf = {"url": broker.registry_url, "ssl.ca.location": str(certs / "ca.pem")}
    if user_info is not None:
        conf["basic.auth.user.info"] = user_info
    return SchemaRegistryClient(conf)


def https(broker, certs, path: str, headers: dict | None = None, method: str = "GET", body=None):
    return requests.request(method, broker.registry_url + path, headers=headers or {}, data=body,
                            verify=str(certs / "ca.pem"), timeout=30)


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def assert_unauthorized(r: requests.Response) -> None:
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.headers["WWW-Authenticate"] == REALM
    body = r.json()
    assert body["error_code"] == 401 and isinstance(body["message"], str) and body["message"]


def test_avro_round_trip_over_https_with_a_scram_sha_512_user(broker, certs):
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    kafka = client_conf(broker, certs, "SASL_SSL", **{"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": SCRAM_USER,
                                                       "sasl.password": SCRAM_PASSWORD})
    admin = AdminClient(kafka)
    created = admin.create_topics([NewTopic(topic, 1, 1, config={"confluent.value.schema.validation": "true"})],
                                  operation_timeout=OP_TIMEOUT_S)
    created[topic].result(timeout=OP_TIMEOUT_S)

    client = registry(broker, certs, f"{SCRAM_USER}:{SCRAM_PASSWORD}")
    serializer = AvroSerializer(client, json.dumps(ORDER_V1))
    producer = Producer({**kafka, "acks": "all"})
    for i in range(5):
        producer.produce(topic, value=serializer(order(i), SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(30) == 0
    registered = client.get_latest_version(f"{topic}-value")
    assert registered.version == 1

    deserializer = AvroDeserializer(registry(broker, certs, f"{SCRAM_USER}:{SCRAM_PASSWORD}"))
    consumer = Consumer({**kafka, "group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    got = read_avro_values(consumer, deserializer, topic, registered.schema_id, 5, "five Avro order events over SASL_SSL")
    assert got == [order(i) for i in range(5)]


def test_plain_user_and_scram_user_read_what_the_other_wrote(broker, certs):
    alice = registry(broker, certs, f"alice:{PLAIN_USERS['alice']}")
    subject = f"plain-{uuid.uuid4().hex[:8]}-value"
    from confluent_kafka.schema_registry import Schema
    schema_id = alice.register_schema(subject, Schema(json.dumps(ORDER_V1), "AVRO"))
    svc = registry(broker, certs, f"{SCRAM_USER}:{SCRAM_PASSWORD}")
    assert subject in svc.get_subjects()
    assert svc.get_schema(schema_id).schema_str
    # The admin user exists as PLAIN and SCRAM with the same password: either matches.
    assert subject in registry(broker, certs, f"admin:{ADMIN_PASSWORD}").get_subjects()


@pytest.mark.parametrize("user_info", [f"{SCRAM_USER}:wrong", "alice:wrong", "nobody:secret", None])
def test_stock_client_gets_401_for_bad_or_missing_credentials(broker, certs, user_info):
    with pytest.raises(SchemaRegistryError) as e:
        registry(broker, certs, user_info).get_subjects()
    assert e.value.http_status_code == 401 and e.value.error_code == 401


def test_401_answer_header_and_body(broker, certs):
    assert https(broker, certs, "/subjects", basic(SCRAM_USER, SCRAM_PASSWORD)).status_code == 200
    assert_unauthorized(https(broker, certs, "/subjects"))
    assert_unauthorized(https(broker, certs, "/subjects", basic(SCRAM_USER, "nope")))
    assert_unauthorized(https(broker, certs, "/subjects", {"Authorization": "Basic !!not-base64!!"}))
    assert_unauthorized(https(broker, certs, "/subjects", {"Authorization": "Bearer abc"}))
    assert_unauthorized(https(broker, certs, "/subjects", {"Authorization": "Basic " + "QUFB" * 2000}))
    # Writes too: a register without credentials never reaches the registry.
    r = https(broker, certs, "/subjects/x-value/versions", method="POST",
              headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
              body=json.dumps({"schema": json.dumps(ORDER_V1)}))
    assert_unauthorized(r)
    r = https(broker, certs, "/subjects", basic(SCRAM_USER, SCRAM_PASSWORD))
    assert "x-value" not in r.json()


def test_plain_http_to_the_https_listener_gets_no_answer(broker, certs):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{HOST}:{broker.registry_port}/subjects", timeout=10)
    # And a TLS client that does not trust the CA refuses the server.
    ctx = ssl.create_default_context()
    with socket.create_connection((HOST, broker.registry_port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="localhost")
    # The broker still serves after all that.
    assert https(broker, certs, "/subjects", basic(SCRAM_USER, SCRAM_PASSWORD)).status_code == 200


def test_a_bad_registry_keystore_stops_start_up_naming_the_key(tmp_path):
    b = Broker(tmp_path / "badkeystore", {
        "klamm.schema.registry.listener": f"https://{HOST}:{free_port()}",
        "ssl.keystore.type": "PEM",
        "klamm.schema.registry.ssl.keystore.location": str(tmp_path / "missing.pem"),
    })
    with pytest.raises(BrokerStartError):
        b.start()
    b.stop()
    log = b.log_path.read_text()
    assert "klamm.schema.registry.listener" in log and "missing.pem" in log, log[-2000:]
