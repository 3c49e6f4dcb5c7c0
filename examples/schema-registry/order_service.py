#!/usr/bin/env python3
"""Order service: writes ORDER_CREATED events as Avro through Klamm's schema registry.

The AvroSerializer registers `order_event.avsc` under the subject `orders-value`
(TopicNameStrategy) on first use and prefixes every record with the 5-byte
Confluent header (magic byte 0 + schema id); the registry refuses a later version
of the schema that would break existing consumers (BACKWARD by default).

    python3 order_service.py --bootstrap 127.0.0.1:9092 --registry http://127.0.0.1:8081 --count 10
"""

from __future__ import annotations

import argparse
import random
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

TOPIC = "orders"
SCHEMA = (Path(__file__).parent / "order_event.avsc").read_text()
CATALOG = {"book": 12.5, "lamp": 30.0, "mug": 8.0, "pen": 2.25}


def make_order(n: int) -> dict:
    skus = random.Random(n).sample(sorted(CATALOG), k=2)
    items = [{"sku": s, "quantity": 1 + (n + i) % 3, "unit_price": CATALOG[s]} for i, s in enumerate(skus)]
    return {
        "type": "ORDER_CREATED",
        "order_id": str(uuid.UUID(int=n)),
        "user_id": f"user-{n % 5}",
        "items": items,
        "total": round(sum(i["quantity"] * i["unit_price"] for i in items), 2),
        "currency": "EUR",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--registry", default="http://127.0.0.1:8081")
    ap.add_argument("--topic", default=TOPIC)
    ap.add_argument("--count", type=int, default=10)
    args = ap.parse_args()

    serializer = AvroSerializer(SchemaRegistryClient({"url": args.registry}), SCHEMA)
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
    for n in range(1, args.count + 1):
        event = make_order(n)
        value = serializer(event, SerializationContext(args.topic, MessageField.VALUE))
        producer.produce(args.topic, key=event["order_id"].encode(), value=value)
    if producer.flush(30) != 0:
        raise SystemExit("some orders were not delivered")
    print(f"wrote {args.count} ORDER_CREATED events to {args.topic}")


if __name__ == "__main__":
    main()
