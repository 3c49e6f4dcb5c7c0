"""JSON Schema and Protobuf through the registry with confluent-kafka's stock serializers
(`confluent_kafka.schema_registry.json_schema` and `.protobuf`): the order service's
ORDER_CREATED event goes producer -> registry -> broker (with broker-side validation,
`confluent.value.schema.validation=true`, on the topic) -> consumer -> deserializer.

The Protobuf message class is built at test time from a FileDescriptorProto (no generated
code is committed). It imports `google/protobuf/timestamp.proto` and `confluent/meta.proto`,
which the serializer does not register (`skip.known.types`, on by default): the registry
resolves them as built-in imports, as Confluent's does."""

from __future__ import annotations

import base64
import json
import struct

import pytest
import requests
from confluent_kafka import KafkaError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from confluent_kafka.schema_registry.confluent import meta_pb2

from conftest import unique_topic
from helpers import consume, create_topic, produce, produce_ok
from test_schema_registry import order

VALIDATED = {"confluent.value.schema.validation": "true"}
NO_RETRIES = {"enable.idempotence": False, "message.send.max.retries": 0}

ORDER_JSON_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "OrderEvent",
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["ORDER_CREATED"]},
        "order_id": {"type": "string"},
        "user_id": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
                "required": ["sku", "quantity"],
            },
        },
        "total": {"type": "number"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    },
    "required": ["type", "order_id", "user_id", "items", "total", "currency"],
    "additionalProperties": False,
}


def ctx(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def round_trip(broker, topic: str, values: list[bytes]) -> list[bytes]:
    """Produces the framed values to a validated topic and reads them back."""
    create_topic(broker, topic, config=VALIDATED)
    produce_ok(broker, topic, [{"value": v} for v in values])
    return [g.value for g in consume(broker, topic, 0, 0, len(values))]


def refused_raw(broker, topic: str, payload: bytes) -> None:
    """Broker-side validation still refuses a record without the wire-format header."""
    (report,) = produce(broker, topic, [{"value": payload}], NO_RETRIES, timeout=20)
    assert report.error is not None and report.error.code() == KafkaError.INVALID_RECORD, report.error


# --------------------------------------------------------------------------
# JSON Schema

def test_json_serializer_round_trip_with_broker_validation(broker):
    topic = unique_topic("orders-json")
    client = SchemaRegistryClient({"url": broker.registry_url})
    serializer = JSONSerializer(json.dumps(ORDER_JSON_SCHEMA), client)
    values = [serializer(order(i), ctx(topic)) for i in range(5)]

    registered = client.get_latest_version(f"{topic}-value")
    assert registered.schema.schema_type == "JSON" and registered.version == 1
    assert all(v[0] == 0 and struct.unpack(">I", v[1:5])[0] == registered.schema_id for v in values)

    got = round_trip(broker, topic, values)
    # The deserializer fetches the writer schema by id from the registry (no local schema).
    deserializer = JSONDeserializer(None, schema_registry_client=SchemaRegistryClient({"url": broker.registry_url}))
    assert [deserializer(v, ctx(topic)) for v in got] == [order(i) for i in range(5)]

    # The serializer validates against the registered schema before anything is sent.
    bad = dict(order(0), currency="euro")
    with pytest.raises(SerializationError):
        serializer(bad, ctx(topic))
    refused_raw(broker, topic, json.dumps(order(9)).encode())


# --------------------------------------------------------------------------
# Protobuf

def _order_event_class():
    """The OrderEvent message class, built from a descriptor (what protoc would generate)."""
    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(
        name="shop/order_event.proto", package="shop.orders", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "confluent/meta.proto"])
    fd.options.Extensions[meta_pb2.file_meta].doc = "Order service events"
    kind = fd.enum_type.add(name="EventType")
    kind.value.add(name="EVENT_TYPE_UNSPECIFIED", number=0)
    kind.value.add(name="ORDER_CREATED", number=1)
    item = fd.message_type.add(name="Item")
    item.field.add(name="sku", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    item.field.add(name="quantity", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    msg = fd.message_type.add(name="OrderEvent")
    msg.field.add(name="type", number=1, type=F.TYPE_ENUM, type_name=".shop.orders.EventType", label=F.LABEL_OPTIONAL)
    oid = msg.field.add(name="order_id", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    oid.options.Extensions[meta_pb2.field_meta].doc = "the order's id"
    msg.field.add(name="user_id", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    msg.field.add(name="items", number=4, type=F.TYPE_MESSAGE, type_name=".shop.orders.Item", label=F.LABEL_REPEATED)
    msg.field.add(name="total", number=5, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    msg.field.add(name="currency", number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    msg.field.add(name="created_at", number=7, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp",
                  label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()
    try:
        desc = pool.FindMessageTypeByName("shop.orders.OrderEvent")
    except KeyError:
        # The default pool already holds timestamp.proto and confluent/meta.proto (imported above).
        pool.AddSerializedFile(fd.SerializeToString())
        desc = pool.FindMessageTypeByName("shop.orders.OrderEvent")
    return message_factory.GetMessageClass(desc)


def proto_order(cls, i: int):
    m = cls(type=1, order_id=f"o-{i}", user_id=f"u-{i % 3}", total=10.5 * (i + 1), currency="EUR")
    for sku, qty in (("sku-1", i + 1), ("sku-2", 1)):
        m.items.add(sku=sku, quantity=qty)
    m.created_at.CopyFrom(timestamp_pb2.Timestamp(seconds=1_700_000_000 + i))
    return m


def test_protobuf_serializer_round_trip_with_built_in_imports(broker):
    cls = _order_event_class()
    topic = unique_topic("orders-proto")
    client = SchemaRegistryClient({"url": broker.registry_url})
    serializer = ProtobufSerializer(cls, client)
    values = [serializer(proto_order(cls, i), ctx(topic)) for i in range(5)]

    registered = client.get_latest_version(f"{topic}-value")
    assert registered.schema.schema_type == "PROTOBUF" and registered.version == 1
    # timestamp.proto and confluent/meta.proto were not registered: the registry knows them.
    assert registered.schema.references == []
    assert client.get_subjects() == [f"{topic}-value"]
    assert all(v[0] == 0 and struct.unpack(">I", v[1:5])[0] == registered.schema_id for v in values)

    got = round_trip(broker, topic, values)
    # With a registry client the deserializer also fetches the writer schema by id, in the
    # `format=serialized` form (a base64 FileDescriptorProto).
    deserializer = ProtobufDeserializer(cls, {"use.deprecated.format": False},
                                        schema_registry_client=SchemaRegistryClient({"url": broker.registry_url}))
    decoded = [deserializer(v, ctx(topic)) for v in got]
    assert decoded == [proto_order(cls, i) for i in range(5)]
    assert decoded[2].created_at.seconds == 1_700_000_002 and decoded[2].items[0].quantity == 3

    # The registry answers the schema as .proto text, and as a descriptor on request.
    r = requests.get(f"{broker.registry_url}/schemas/ids/{registered.schema_id}", timeout=30)
    text = r.json()["schema"]
    assert r.status_code == 200 and 'import "google/protobuf/timestamp.proto"' in text and "OrderEvent" in text
    r = requests.get(f"{broker.registry_url}/schemas/ids/{registered.schema_id}", params={"format": "serialized"}, timeout=30)
    fd = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(r.json()["schema"]))
    assert "google/protobuf/timestamp.proto" in fd.dependency
    assert [m.name for m in fd.message_type] == ["Item", "OrderEvent"]

    refused_raw(broker, topic, proto_order(cls, 9).SerializeToString())


def test_protobuf_schema_text_with_confluent_imports(broker):
    """A .proto text importing Confluent's built-in files registers without references; an
    unknown import is a 42201 invalid schema."""
    schema = (
        'syntax = "proto3";\npackage shop.money;\n'
        'import "confluent/meta.proto";\nimport "confluent/type/decimal.proto";\n'
        'import "google/protobuf/timestamp.proto";\n'
        'message Payment {\n  option (confluent.message_meta) = { doc: "a payment" };\n'
        '  confluent.type.Decimal amount = 1 [(confluent.field_meta).tags = "PII"];\n'
        '  google.protobuf.Timestamp at = 2;\n}\n')
    subject = unique_topic("payments") + "-value"
    r = requests.post(f"{broker.registry_url}/subjects/{subject}/versions",
                      json={"schema": schema, "schemaType": "PROTOBUF"}, timeout=30)
    assert r.status_code == 200 and r.json()["id"] >= 1, r.text
    r = requests.post(f"{broker.registry_url}/subjects/{subject}-old/versions",
                      json={"schema": schema.replace("confluent/type/decimal.proto", "confluent/types/decimal.proto"),
                            "schemaType": "PROTOBUF"}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(f"{broker.registry_url}/subjects/{subject}/versions",
                      json={"schema": schema.replace("confluent/meta.proto", "confluent/nope.proto"),
                            "schemaType": "PROTOBUF"}, timeout=30)
    assert r.status_code == 422 and r.json()["error_code"] == 42201, r.text
