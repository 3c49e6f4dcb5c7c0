#!/usr/bin/env python3
"""Exactly-once order processor (consume-transform-produce with confluent-kafka).

Reads JSON orders from `orders_raw` as member of the consumer group
`order-processor`, and for each batch of input records, inside ONE Kafka
transaction:

- writes every valid order, enriched with its total, to `orders_processed`
  (keyed by customer);
- writes every invalid order (bad JSON, missing fields, non-positive
  quantity) with the reason to `orders_dlq`;
- commits the consumer group's offsets of the batch (send_offsets_to_transaction).

Either all three happen or none: a crash or an abort rolls the outputs and
the offsets back together, and the next run (or the member that takes over
the partitions) starts again after the last committed batch. Consumers of
the outputs that read with isolation.level=read_committed see every input
order exactly once.

    python3 order_processor.py --bootstrap 127.0.0.1:9092 [--idle-exit 10]

Broker failures are handled as Kafka's documentation asks: a retriable
commit error is retried, an abortable one aborts the batch and rewinds the
consumer to the committed offsets, a fatal one (fenced by a newer instance
with the same transactional.id) ends the process. tests/clients/test_chaos_txn.py
runs this program on a 3-node cluster while nodes and the processor itself
are killed with SIGKILL.

`--idle-exit S` stops after S seconds without input (default: run until
Ctrl-C). `--fail-after N` aborts the transaction of the N-th batch and exits
with status 3, to show that nothing of that batch becomes visible.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

INPUT = "orders_raw"
OUTPUT = "orders_processed"
DLQ = "orders_dlq"
GROUP = "order-processor"


def transform(value: bytes | None) -> tuple[str, dict]:
    """Returns (topic, record) for one input value: the processed order, or
    the dead-letter record with the reason."""
    try:
        order = json.loads(value or b"")
        if not isinstance(order, dict):
            raise ValueError("not a JSON object")
        qty = int(order["quantity"])
        price = float(order["unit_price"])
        if qty <= 0:
            raise ValueError(f"quantity {qty} is not positive")
        out = dict(order)
        out["total"] = round(qty * price, 2)
        out["status"] = "processed"
        return OUTPUT, out
    except (ValueError, KeyError, TypeError) as e:
        raw = (value or b"").decode("utf-8", errors="replace")
        return DLQ, {"raw": raw, "error": f"{type(e).__name__}: {e}"}


def commit_or_abort(producer: Producer, consumer: Consumer, log) -> bool:
    """Commits the open transaction. A retriable failure (the coordinator moved
    or timed out while answering) is retried: committing again is safe, the
    coordinator answers the same decision. An abortable one (a write of the
    transaction failed, e.g. its partition leader died) aborts the
    transaction and rewinds the consumer to the group's committed offsets, so
    the batch is read and processed again. A fatal one (fenced by a newer
    instance with the same transactional.id) is raised: this instance must
    stop. Returns whether the batch committed."""
    for attempt in range(10):
        try:
            producer.commit_transaction(30)
            return True
        except KafkaException as e:
            err = e.args[0]
            if err.retriable() and attempt < 9:
                log(f"commit: retrying after {err}")
                continue
            if err.txn_requires_abort():
                log(f"commit failed, aborting the batch: {err}")
                abort_and_rewind(producer, consumer, log)
                return False
            raise
    raise AssertionError("unreachable")


def abort_and_rewind(producer: Producer, consumer: Consumer, log) -> None:
    """Aborts the open transaction and moves the consumer back to the
    committed offsets (where the last committed batch ended)."""
    for attempt in range(10):
        try:
            producer.abort_transaction(30)
            break
        except KafkaException as e:
            if not e.args[0].retriable() or attempt == 9:
                raise
            log(f"abort: retrying after {e.args[0]}")
    assignment = consumer.assignment()
    if assignment:
        for tp in consumer.committed(assignment, timeout=30):
            # No committed offset yet: back to where auto.offset.reset starts.
            consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else -2))


def run(bootstrap: str, transactional_id: str = "order-processor-1", idle_exit: float | None = None,
        fail_after: int | None = None, batch_size: int = 50, log=print,
        session_timeout_ms: int | None = None) -> int:
    """Processes until idle for `idle_exit` seconds (None: until SIGINT/SIGTERM).
    Returns the number of input records committed."""
    consumer_conf = {
        "bootstrap.servers": bootstrap,
        "group.id": GROUP,
        "enable.auto.commit": False,  # offsets are committed in the transaction
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    if session_timeout_ms is not None:
        # How soon the group gives a crashed instance's partitions to its replacement.
        consumer_conf["session.timeout.ms"] = session_timeout_ms
    consumer = Consumer(consumer_conf)
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": transactional_id,  # one per processor instance
        "enable.idempotence": True,
        "linger.ms": 5,
    })
    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    if idle_exit is None:
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

    # Fences any earlier instance with the same transactional.id and aborts
    # the transaction it left open.
    producer.init_transactions(60)
    consumer.subscribe([INPUT])
    committed = 0
    batches = 0
    last_input = time.monotonic()
    try:
        while not stop["now"]:
            msgs = consumer.consume(num_messages=batch_size, timeout=0.5)
            msgs = [m for m in msgs if m.error() is None or m.error().code() != KafkaError._PARTITION_EOF]
            for m in msgs:
                if m.error():
                    raise KafkaException(m.error())
            if not msgs:
                if idle_exit is not None and time.monotonic() - last_input > idle_exit:
                    break
                continue
            last_input = time.monotonic()
            batches += 1
            producer.begin_transaction()
            try:
                for m in msgs:
                    topic, record = transform(m.value())
                    producer.produce(topic, key=m.key(), value=json.dumps(record).encode())
                # The consumer's position (next offset to read) of every assigned
                # partition it has read from: committed together with the outputs.
                positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
                producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
            except KafkaException as e:
                if not e.args[0].txn_requires_abort() and not e.args[0].retriable():
                    raise
                log(f"batch {batches} failed, aborting it: {e.args[0]}")
                abort_and_rewind(producer, consumer, log)
                continue
            if fail_after is not None and batches >= fail_after:
                producer.abort_transaction(30)
                log(f"aborted batch {batches} ({len(msgs)} records) on purpose")
                return -3
            if commit_or_abort(producer, consumer, log):
                committed += len(msgs)
                log(f"committed batch {batches}: {len(msgs)} records")
    finally:
        consumer.close()
    return committed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--transactional-id", default="order-processor-1")
    ap.add_argument("--idle-exit", type=float, default=None)
    ap.add_argument("--fail-after", type=int, default=None)
    ap.add_argument("--session-timeout-ms", type=int, default=None,
                    help="consumer session timeout (how soon a crashed instance's partitions move on)")
    args = ap.parse_args()
    n = run(args.bootstrap, args.transactional_id, args.idle_exit, args.fail_after,
            log=lambda s: print(s, flush=True), session_timeout_ms=args.session_timeout_ms)
    if n == -3:
        return 3
    print(f"processed {n} orders", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
