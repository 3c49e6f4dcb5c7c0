"""Broker-side schema id validation (Confluent Server's per-topic
`confluent.value.schema.validation` / `confluent.key.schema.validation`)
through confluent-kafka.

The topic properties, the refusal of records without the wire-format header
and the acceptance of tombstones need no registry and always run. Accepting a
record needs a schema id the broker knows, and ids come from the schema
registry: those tests register an Avro schema through the registry's REST API
(on the broker's `registry_port`, `klamm.schema.registry.listener`) and are
skipped, with the reason, only when this build has no registry listener.
"""

from __future__ import annotations

import io
import json
import struct

import pytest
import requests
from confluent_kafka import KafkaError
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from conftest import wait_until
from helpers import admin, consume, create_topic, produce, produce_ok

NO_RETRIES = {"enable.idempotence": False, "message.send.max.retries": 0}
ORDER_CREATED = {
    "type": "record",
    "name": "OrderCreated",
    "namespace": "shop.events",
    "fields": [
        {"name": "event", "type": "string"},
        {"name": "order_id", "type": "string"},
        {"name": "user_id", "type": "string"},
        {"name": "items", "type": {"type": "array", "items": "string"}},
        {"name": "total", "type": "double"},
        {"name": "currency", "type": "string"},
    ],
}
ORDER = {"event": "ORDER_CREATED", "order_id": "o-1", "user_id": "u-7", "items": ["sku-1", "sku-2"],
         "total": 42.5, "currency": "EUR"}
RAW_JSON = json.dumps(ORDER).encode()


def framed(schema_id: int, payload: bytes) -> bytes:
    """The Confluent wire format: magic byte 0, 4-byte big-endian schema id, payload."""
    return b"\x00" + struct.pack(">i", schema_id) + payload


def _config(broker, topic: str) -> dict:
    a = admin(broker)  # kept alive until the result is in
    fs = a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=15)
    (f,) = fs.values()
    return {k: v.value for k, v in f.result(timeout=20).items()}


def _refused(report) -> bool:
    return report.error is not None and report.error.code() == KafkaError.INVALID_RECORD


def test_properties_are_accepted_described_and_default_off(broker, topic):
    create_topic(broker, topic, config={"confluent.value.schema.validation": "true",
                                        "confluent.key.subject.name.strategy":
                                            "io.confluent.kafka.serializers.subject.RecordNameStrategy"})
    cfg = _config(broker, topic)
    assert cfg["confluent.value.schema.validation"] == "true"
    assert cfg["confluent.key.schema.validation"] == "false"
    assert cfg["confluent.key.subject.name.strategy"] == "io.confluent.kafka.serializers.subject.RecordNameStrategy"
    assert cfg["confluent.value.subject.name.strategy"] == "io.confluent.kafka.serializers.subject.TopicNameStrategy"

    # A bad value is refused like any other topic config.
    a = admin(broker)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("confluent.value.subject.name.strategy", "NoSuchStrategy",
                    incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(Exception) as e:
        a.incremental_alter_configs([res])[res].result(timeout=20)
    assert "INVALID_CONFIG" in str(e.value) or "strategy" in str(e.value)


def test_records_without_a_known_schema_id_are_refused(broker, topic):
    create_topic(broker, topic, config={"confluent.value.schema.validation": "true"})
    reports = produce(broker, topic, [
        {"value": RAW_JSON, "partition": 0},
        {"value": b"\x00\x00", "partition": 0},             # too short for the header
        {"value": framed(987654, b"payload"), "partition": 0},  # no registry knows this id
    ], NO_RETRIES)
    assert all(_refused(r) for r in reports), [r.error for r in reports]

    # Tombstones pass, as Confluent Server lets null values through.
    assert produce_ok(broker, topic, [{"key": b"order-1", "value": None, "partition": 0}])[0].offset == 0
    got = consume(broker, topic, 0, 0, 1)
    assert got[0].key == b"order-1" and got[0].value is None


def test_topics_without_the_property_take_anything_and_it_can_be_turned_on(broker, topic):
    create_topic(broker, topic)
    assert produce_ok(broker, topic, [{"value": RAW_JSON, "partition": 0}])[0].offset == 0

    a = admin(broker)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("confluent.value.schema.validation", "true", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(timeout=20)
    wait_until(lambda: _refused(produce(broker, topic, [{"value": RAW_JSON, "partition": 0}], NO_RETRIES)[0]),
               timeout=20, what="raw JSON refused once validation is on")

    # Keys are checked only with the key property.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("confluent.value.schema.validation", "false", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("confluent.key.schema.validation", "true", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(timeout=20)
    wait_until(lambda: _refused(produce(broker, topic, [{"key": b"raw-key", "value": RAW_JSON, "partition": 0}],
                                        NO_RETRIES)[0]),
               timeout=20, what="raw key refused once key validation is on")
    assert produce_ok(broker, topic, [{"key": None, "value": RAW_JSON, "partition": 0}])


# ----------------------------------------------------------- with the registry


def _registry(broker) -> str:
    port = getattr(broker, "registry_port", None)
    if port is None:
        pytest.skip("this build has no schema registry listener (klamm.schema.registry.listener, "
                    "conftest Broker.registry_port): schema ids cannot be registered")
    return f"http://127.0.0.1:{port}"


def _register(base: str, subject: str, schema: dict) -> int:
    r = requests.post(f"{base}/subjects/{subject}/versions",
                      headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
                      data=json.dumps({"schema": json.dumps(schema)}), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _avro(record: dict) -> bytes:
    import fastavro
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(ORDER_CREATED), record)
    return out.getvalue()


def test_registered_avro_records_are_accepted_raw_json_refused(broker, topic):
    base = _registry(broker)
    create_topic(broker, topic, config={"confluent.value.schema.validation": "true"})
    schema_id = _register(base, f"{topic}-value", ORDER_CREATED)
    avro_record = framed(schema_id, _avro(ORDER))

    # The broker learns the id as its store applies _schemas.
    wait_until(lambda: produce(broker, topic, [{"value": avro_record, "partition": 0}], NO_RETRIES)[0].error is None,
               timeout=30, what=f"schema id {schema_id} accepted")
    assert _refused(produce(broker, topic, [{"value": RAW_JSON, "partition": 0}], NO_RETRIES)[0])
    got = consume(broker, topic, 0, 0, 1)
    assert got[0].value == avro_record


def test_an_id_of_another_subject_is_refused_under_topic_name_strategy(broker, topic):
    base = _registry(broker)
    create_topic(broker, topic, config={"confluent.value.schema.validation": "true"})
    own = _register(base, f"{topic}-value", ORDER_CREATED)
    other_schema = dict(ORDER_CREATED, name="PaymentTaken")
    other = _register(base, f"{topic}-other-value", other_schema)
    wait_until(lambda: produce(broker, topic, [{"value": framed(own, _avro(ORDER)), "partition": 0}],
                               NO_RETRIES)[0].error is None, timeout=30, what="own id accepted")
    assert _refused(produce(broker, topic, [{"value": framed(other, _avro(ORDER)), "partition": 0}], NO_RETRIES)[0])
