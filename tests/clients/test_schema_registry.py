"""The schema registry served by the broker (klamm.schema.registry.listener), through stock
clients: confluent-kafka's SchemaRegistryClient with AvroSerializer/AvroDeserializer, and
plain HTTP (requests) against Confluent's documented REST API: paths, status codes, error
bodies."""

import json
import struct

import requests
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import unique_topic, wait_until

CT = "application/vnd.schemaregistry.v1+json"

ORDER_V1 = {
    "type": "record",
    "name": "OrderEvent",
    "namespace": "shop.orders",
    "fields": [
        {"name": "type", "type": {"type": "enum", "name": "OrderEventType", "symbols": ["ORDER_CREATED"]}},
        {"name": "order_id", "type": "string"},
        {"name": "user_id", "type": "string"},
        {
            "name": "items",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Item",
                    "fields": [{"name": "sku", "type": "string"}, {"name": "quantity", "type": "int"}],
                },
            },
        },
        {"name": "total", "type": "double"},
        {"name": "currency", "type": "string"},
    ],
}

# Backward compatible: a new field with a default.
ORDER_V2 = json.loads(json.dumps(ORDER_V1))
ORDER_V2["fields"].append({"name": "coupon", "type": ["null", "string"], "default": None})

# Not backward compatible: a new field without a default.
ORDER_BAD = json.loads(json.dumps(ORDER_V1))
ORDER_BAD["fields"].append({"name": "shipping", "type": "string"})


def order(i: int) -> dict:
    return {
        "type": "ORDER_CREATED",
        "order_id": f"o-{i}",
        "user_id": f"u-{i % 3}",
        "items": [{"sku": "sku-1", "quantity": i + 1}, {"sku": "sku-2", "quantity": 1}],
        "total": 10.5 * (i + 1),
        "currency": "EUR",
    }


def call(b, method, path, body=None, **params):
    data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
    r = requests.request(method, b.registry_url + path, data=data, params=params,
                         headers={"Content-Type": CT}, timeout=30)
    try:
        return r.status_code, r.json(), r
    except ValueError:
        return r.status_code, r.text, r


def test_avro_orders_round_trip_through_the_registry(broker):
    topic = unique_topic("orders")
    client = SchemaRegistryClient({"url": broker.registry_url})
    serializer = AvroSerializer(client, json.dumps(ORDER_V1))
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        value = serializer(order(i), SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=f"o-{i}".encode(), value=value)
    assert producer.flush(30) == 0

    # The serializer registered the schema under the TopicNameStrategy subject.
    registered = client.get_latest_version(f"{topic}-value")
    assert registered.version == 1 and registered.schema_id >= 1

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": broker.registry_url}))
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique_topic("g"),
                         "auto.offset.reset": "earliest"})
    got = read_avro_values(consumer, deserializer, topic, registered.schema_id, 5, "five Avro order events")
    assert got == [order(i) for i in range(5)]


def read_avro_values(consumer, deserializer, topic: str, schema_id: int, count: int, what: str) -> list:
    """`count` values of `topic` read by `consumer` (subscribed here, closed at the end),
    each checked to carry the Confluent header with `schema_id`, then deserialized."""
    consumer.subscribe([topic])
    got = []
    try:
        def poll():
            m = consumer.poll(1.0)
            if m is not None and m.error() is None:
                raw = m.value()
                assert raw[0] == 0 and struct.unpack(">I", raw[1:5])[0] == schema_id
                got.append(deserializer(raw, SerializationContext(topic, MessageField.VALUE)))
            return len(got) >= count
        wait_until(poll, timeout=60, what=what)
    finally:
        consumer.close()
    return got


def test_client_registration_compatibility_and_lookup(broker):
    client = SchemaRegistryClient({"url": broker.registry_url})
    subject = unique_topic("orders") + "-value"
    id1 = client.register_schema(subject, Schema(json.dumps(ORDER_V1), "AVRO"))
    assert client.register_schema(subject, Schema(json.dumps(ORDER_V1, indent=2), "AVRO")) == id1
    id2 = client.register_schema(subject, Schema(json.dumps(ORDER_V2), "AVRO"))
    assert id2 != id1
    assert client.get_versions(subject) == [1, 2]
    assert client.test_compatibility(subject, Schema(json.dumps(ORDER_BAD), "AVRO")) is False
    try:
        client.register_schema(subject, Schema(json.dumps(ORDER_BAD), "AVRO"))
        raise AssertionError("an incompatible schema was registered")
    except SchemaRegistryError as e:
        assert e.http_status_code == 409
    found = client.lookup_schema(subject, Schema(json.dumps(ORDER_V1), "AVRO"))
    assert (found.version, found.schema_id) == (1, id1)
    assert json.loads(client.get_schema(id2).schema_str)["fields"][-1]["name"] == "coupon"
    client.set_compatibility(subject, "NONE")
    assert client.get_compatibility(subject) == "NONE"
    assert client.register_schema(subject, Schema(json.dumps(ORDER_BAD), "AVRO")) > id2
    assert subject in client.get_subjects()
    assert client.delete_subject(subject) == [1, 2, 3]
    assert client.delete_subject(subject, permanent=True) == [1, 2, 3]
    assert subject not in client.get_subjects()


def test_rest_paths_and_errors(broker):
    b = broker
    s = unique_topic("rest") + "-value"
    v1 = {"schema": json.dumps(ORDER_V1)}
    status, body, r = call(b, "POST", f"/subjects/{s}/versions", v1)
    assert status == 200 and r.headers["Content-Type"].startswith(CT), body
    sid = body["id"]
    assert call(b, "POST", f"/subjects/{s}/versions", v1)[1] == {"id": sid}
    assert call(b, "GET", "/subjects")[1] == [s]
    assert call(b, "GET", f"/subjects/{s}/versions")[1] == [1]
    status, body, _ = call(b, "GET", f"/subjects/{s}/versions/latest")
    assert status == 200 and (body["subject"], body["version"], body["id"]) == (s, 1, sid)
    assert json.loads(body["schema"])["name"] == "OrderEvent"
    status, body, _ = call(b, "GET", f"/subjects/{s}/versions/1/schema")
    assert status == 200 and body["name"] == "OrderEvent"
    status, body, _ = call(b, "POST", f"/subjects/{s}", v1)
    assert status == 200 and body["version"] == 1
    status, body, _ = call(b, "GET", f"/schemas/ids/{sid}")
    assert status == 200 and "OrderEvent" in body["schema"]
    assert call(b, "GET", f"/schemas/ids/{sid}/schema")[1]["name"] == "OrderEvent"
    assert call(b, "GET", f"/schemas/ids/{sid}/subjects")[1] == [s]
    assert call(b, "GET", f"/schemas/ids/{sid}/versions")[1] == [{"subject": s, "version": 1}]
    assert "AVRO" in call(b, "GET", "/schemas/types")[1]
    status, body, _ = call(b, "POST", f"/compatibility/subjects/{s}/versions/latest", {"schema": json.dumps(ORDER_BAD)}, verbose="true")
    assert status == 200 and body["is_compatible"] is False and body["messages"], body
    status, body, _ = call(b, "POST", f"/compatibility/subjects/{s}/versions/latest", {"schema": json.dumps(ORDER_V2)})
    assert (status, body) == (200, {"is_compatible": True})
    # Config and mode.
    assert call(b, "GET", "/config")[1] == {"compatibilityLevel": "BACKWARD"}
    assert call(b, "PUT", f"/config/{s}", {"compatibility": "FULL"})[1] == {"compatibility": "FULL"}
    assert call(b, "GET", f"/config/{s}")[1] == {"compatibilityLevel": "FULL"}
    assert call(b, "DELETE", f"/config/{s}")[0] == 200
    assert call(b, "GET", f"/config/{s}", defaultToGlobal="true")[1] == {"compatibilityLevel": "BACKWARD"}
    assert call(b, "GET", "/mode")[1] == {"mode": "READWRITE"}
    assert call(b, "PUT", f"/mode/{s}", {"mode": "READONLY"})[1] == {"mode": "READONLY"}
    status, body, _ = call(b, "POST", f"/subjects/{s}/versions", {"schema": json.dumps(ORDER_V2)})
    assert (status, body["error_code"]) == (422, 42205), body
    assert call(b, "DELETE", f"/mode/{s}")[0] == 200

    # Errors, with Confluent's codes; never a crash.
    errors = [
        ("POST", f"/subjects/{s}/versions", {"schema": "{\"type\": \"nope\"}"}, 422, 42201),
        ("POST", f"/subjects/{s}/versions", {"schema": "not json at all"}, 422, 42201),
        ("GET", f"/subjects/{s}/versions/banana", None, 422, 42202),
        ("GET", "/subjects/no-such-subject/versions", None, 404, 40401),
        ("GET", f"/subjects/{s}/versions/99", None, 404, 40402),
        ("GET", "/schemas/ids/999999", None, 404, 40403),
        ("POST", f"/subjects/{s}", {"schema": json.dumps(ORDER_BAD)}, 404, 40403),
        ("POST", "/subjects/a%2F..%2Fb/versions", v1, 422, 42208),
        ("POST", f"/subjects/{s}/versions",
         {"schema": json.dumps(ORDER_V2), "references": [{"name": "x.Y", "subject": "missing", "version": 1}]}, 422, 42201),
        ("PUT", "/config", {"compatibility": "SIDEWAYS"}, 422, 42203),
        ("POST", f"/subjects/{s}/versions", b"{broken", 400, 400),
    ]
    for method, path, body, want_status, want_code in errors:
        status, got, _ = call(b, method, path, body)
        assert (status, got.get("error_code") if isinstance(got, dict) else got) == (want_status, want_code), (method, path, got)
        assert got["message"]
    # Unknown fields are ignored.
    status, body, _ = call(b, "POST", f"/subjects/{s}/versions", {"schema": json.dumps(ORDER_V2), "metadata": {"a": 1}, "extra": True})
    assert status == 200 and body["id"] != sid
    # A huge body is refused before it reaches the registry.
    status, _, _ = call(b, "POST", f"/subjects/{s}/versions", b"x" * (9 << 20))
    assert status == 413
    # Soft, then permanent delete.
    assert call(b, "DELETE", f"/subjects/{s}/versions/2", permanent="true")[1]["error_code"] == 40407
    assert call(b, "DELETE", f"/subjects/{s}/versions/2")[1] == 2
    assert call(b, "GET", f"/subjects/{s}/versions", deleted="true")[1] == [1, 2]
    assert call(b, "DELETE", f"/subjects/{s}", permanent="true")[1]["error_code"] == 40405
    assert call(b, "DELETE", f"/subjects/{s}")[1] == [1]
    assert call(b, "GET", "/subjects")[1] == []
    assert call(b, "GET", "/subjects", deleted="true")[1] == [s]
    assert call(b, "DELETE", f"/subjects/{s}", permanent="true")[1] == [1, 2]
    assert call(b, "GET", f"/schemas/ids/{sid}")[1]["error_code"] == 40403
    # The broker still serves Kafka clients after all this.
    p = Producer({"bootstrap.servers": b.bootstrap})
    p.produce(unique_topic("after"), b"v")
    assert p.flush(30) == 0


def test_ids_survive_a_restart(broker):
    client = SchemaRegistryClient({"url": broker.registry_url})
    a, b = unique_topic("a") + "-value", unique_topic("b") + "-value"
    ida = client.register_schema(a, Schema(json.dumps(ORDER_V1), "AVRO"))
    idb = client.register_schema(b, Schema(json.dumps(ORDER_V2), "AVRO"))
    broker.restart()
    client = SchemaRegistryClient({"url": broker.registry_url})

    def same_ids():
        try:
            return client.get_schema(ida) is not None and client.lookup_schema(b, Schema(json.dumps(ORDER_V2), "AVRO")).schema_id == idb
        except SchemaRegistryError:
            return False
    wait_until(same_ids, timeout=30, what="the registry replayed _schemas after the restart")
    # Registering the same schema again gives the same id; a new one a new, larger id.
    assert client.register_schema(a, Schema(json.dumps(ORDER_V1), "AVRO")) == ida
    idc = client.register_schema(unique_topic("c") + "-value", Schema(json.dumps(ORDER_BAD), "AVRO"))
    assert idc > max(ida, idb)


def test_kafkajs_confluent_schema_registry_avro_round_trip(broker):
    """@kafkajs/confluent-schema-registry registers and encodes; kafkajs produces and reads back;
    confluent-kafka's AvroDeserializer decodes the same bytes (the wire format is shared)."""
    import base64
    import subprocess

    from conftest import NODE_DIR

    topic = unique_topic("kjs-orders")
    events = [order(i) for i in range(3)]
    prog = {"brokers": [broker.bootstrap], "registry": broker.registry_url, "topic": topic,
            "schema": json.dumps(ORDER_V1), "events": events}
    proc = subprocess.run(["node", str(NODE_DIR / "registry_avro.js")], input=json.dumps(prog).encode(),
                          capture_output=True, timeout=120, cwd=NODE_DIR)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    out = json.loads(proc.stdout)
    assert out["decoded"] == events
    client = SchemaRegistryClient({"url": broker.registry_url})
    assert client.get_latest_version(f"{topic}-value").schema_id == out["id"]
    deserializer = AvroDeserializer(client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    assert [deserializer(base64.b64decode(r), ctx) for r in out["raw"]] == events


def test_example_order_service(broker):
    """examples/schema-registry as its README runs it: the order service, then the consumer."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "schema-registry"
    topic = unique_topic("orders")
    common = ["--bootstrap", broker.bootstrap, "--registry", broker.registry_url, "--topic", topic]
    r = subprocess.run([sys.executable, str(example / "order_service.py"), *common, "--count", "7"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert b"wrote 7 ORDER_CREATED events" in r.stdout
    r = subprocess.run([sys.executable, str(example / "order_consumer.py"), *common, "--expect", "7"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    lines = r.stdout.decode().splitlines()
    assert sum(1 for l in lines if l.startswith("ORDER_CREATED ")) == 7, lines
    assert lines[-1].startswith("read 7 orders"), lines
    subjects = requests.get(f"{broker.registry_url}/subjects", timeout=10).json()
    assert f"{topic}-value" in subjects
