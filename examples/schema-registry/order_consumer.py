#!/usr/bin/env python3
"""Reads the order service's Avro events: the AvroDeserializer fetches each record's
writer schema by the id in its header from Klamm's schema registry (and caches it).

    python3 order_consumer.py --bootstrap 127.0.0.1:9092 --registry http://127.0.0.1:8081 --expect 10

Prints one line per order and a summary; stops after --expect events or --idle-exit
seconds without any.
"""

from __future__ import annotations

import argparse
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--registry", default="http://127.0.0.1:8081")
    ap.add_argument("--topic", default="orders")
    ap.add_argument("--expect", type=int, default=0, help="stop after this many events (0: until idle)")
    ap.add_argument("--idle-exit", type=float, default=15.0)
    args = ap.parse_args()

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": args.registry}))
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"order-reader-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([args.topic])
    seen, revenue, last = 0, 0.0, time.monotonic()
    try:
        while time.monotonic() - last < args.idle_exit and (args.expect == 0 or seen < args.expect):
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            event = deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
            seen, revenue, last = seen + 1, revenue + event["total"], time.monotonic()
            items = ", ".join(f"{i['quantity']}x {i['sku']}" for i in event["items"])
            print(f"{event['type']} {event['order_id']} user={event['user_id']} [{items}] "
                  f"{event['total']:.2f} {event['currency']}")
    finally:
        consumer.close()
    print(f"read {seen} orders, revenue {revenue:.2f}")


if __name__ == "__main__":
    main()
