"""Chaos test for exactly-once: the order pipeline's transactional processor
(examples/exactly-once/order_processor.py, confluent-kafka) runs on a 3-node
cluster (RF 3, min.insync.replicas=2 for the data topics, __transaction_state
and __consumer_offsets) while an idempotent producer keeps writing orders and a
seeded RNG, in bounded rounds, kill -9s the transaction coordinator of the
processor's transactional.id, the leader of an output partition, any node, or
the processor itself (which a supervisor restarts; the new instance fences the
old one's producer epoch and its open transaction is aborted).

Afterwards, with every node back:
- every acknowledged order is in `orders_raw` (nothing acknowledged is lost);
- read with isolation.level=read_committed, `orders_processed` and `orders_dlq`
  together hold every order of `orders_raw` exactly once (no loss, no
  duplicate: each transaction ended fully committed or fully aborted);
- the group's committed offsets (require_stable) cover the whole input;
- polled all along, the high watermark and the last stable offset of every
  output partition never moved backwards.

    KLAMM_CHAOS_SEED=<n>     replay a run's fault sequence (timings still differ)
    KLAMM_TXN_CHAOS_ROUNDS=<n>  fault rounds (default 20)

Prints `txn chaos seed=<s> rounds=<n> input=<i> acked=<a> lost=<l> duplicated=<d>
missing=<m> aborted_copies=<c> offset_samples=<s> offset_regressions=<r>`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

import chaos
import kafka_wire as wire
from cluster_fixture import HOST, Cluster
from conftest import REPO, wait_until

PARTITIONS = 3
ROUNDS = int(os.environ.get("KLAMM_TXN_CHAOS_ROUNDS", "20"))
BUDGET_S = max(150.0, ROUNDS * 10.0)
TIMEOUT_S = int(BUDGET_S) + 240
HEAL_TIMEOUT_S = 40.0
INPUT, OUTPUT, DLQ, GROUP = "orders_raw", "orders_processed", "orders_dlq", "order-processor"
TXN_ID = "order-processor-chaos"
PROCESSOR = REPO / "examples" / "exactly-once" / "order_processor.py"
FAULTS = ["kill9_coordinator", "kill9_output_leader", "kill9_any", "kill9_processor"]
FIND_COORDINATOR = 10


def txn_coordinator(cluster: Cluster, txn_id: str) -> int | None:
    """The node id FindCoordinator (key type 1: transaction) names for `txn_id`, asked of a live node."""
    for b in cluster.up():
        try:
            with wire.Conn(HOST, b.port, timeout=3) as c:
                r = c.request(FIND_COORDINATOR, 1, wire.string(txn_id) + wire.i8(1))
            r.i32()  # throttle
            if r.i16() != 0:
                continue
            r.string()
            return r.i32()
        except (OSError, wire.ConnectionClosed):
            continue
    return None


class OrderProducer:
    """Writes JSON orders (order_id 1, 2, ...) keyed by user with acks=all and
    idempotence; every tenth has quantity 0, which the processor routes to the
    dead-letter topic. Remembers which order ids were acknowledged."""

    def __init__(self, bootstrap: str, interval_s: float = 0.01):
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                           "linger.ms": 5, "request.timeout.ms": 5000, "message.timeout.ms": 60000,
                           "retry.backoff.ms": 100, "retry.backoff.max.ms": 500,
                           "reconnect.backoff.max.ms": 500, "topic.metadata.refresh.interval.ms": 2000,
                           "log_level": 2})
        self.interval_s = interval_s
        self.sent = 0
        self.acked: set[int] = set()
        self.failed: dict[int, str] = {}
        self.lock = threading.Lock()
        self.burst_left = 0  # orders to write back to back, without the pause between them
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="order-producer", daemon=True)

    def burst(self, n: int) -> None:
        """Writes the next `n` orders without pausing: a backlog the processor
        works through in back-to-back transactions, so a fault lands in one."""
        with self.lock:
            self.burst_left += n

    def _on_delivery(self, err, msg) -> None:
        oid = json.loads(msg.value())["order_id"]
        with self.lock:
            if err is None:
                self.acked.add(oid)
            else:
                self.failed[oid] = err.name()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            n = self.sent
            order = {"order_id": n, "user_id": f"user-{n % 17}", "quantity": 0 if n % 10 == 0 else 1 + n % 5,
                     "unit_price": 2.5, "currency": "EUR"}
            while True:
                try:
                    self.p.produce(INPUT, key=order["user_id"].encode(), value=json.dumps(order).encode(),
                                   on_delivery=self._on_delivery)
                    break
                except BufferError:
                    self.p.poll(0.1)
            self.p.poll(0)
            with self.lock:
                bursting = self.burst_left > 0
                self.burst_left -= 1 if bursting else 0
            if not bursting:
                time.sleep(self.interval_s)

    def start(self) -> "OrderProducer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        left = self.p.flush(90)
        assert left == 0, f"{left} orders still undelivered after 90 s"


class Supervisor:
    """Runs the processor as a child process and restarts it whenever it exits
    (a crash, a kill -9, or a fatal error such as being fenced), as a
    container orchestrator would."""

    def __init__(self, bootstrap: str, log_dir: Path):
        self.bootstrap, self.log_dir = bootstrap, log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.exits: Counter = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="processor-supervisor", daemon=True)

    def _spawn(self) -> None:
        self.starts += 1
        out = open(self.log_dir / f"processor-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(PROCESSOR), "--bootstrap", self.bootstrap, "--transactional-id", TXN_ID,
             "--session-timeout-ms", "6000"], stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self.proc is None or self.proc.poll() is not None:
                    if self.proc is not None:
                        self.exits[self.proc.returncode] += 1
                    if self._stop.is_set():
                        return
                    self._spawn()
            time.sleep(0.3)

    def start(self) -> "Supervisor":
        with self._lock:
            self._spawn()
        self._thread.start()
        return self

    def kill9(self) -> None:
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(40)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)

    def log_tail(self, n: int = 40) -> str:
        path = self.log_dir / f"processor-{self.starts}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class OffsetWatch:
    """Polls the high watermark (ListOffsets latest, read_uncommitted) and the
    last stable offset (latest, read_committed) of every output partition
    through the whole run and counts every answer below one seen before: both
    must never move backwards, across leader changes included."""

    def __init__(self, bootstrap: str, topics: list[str]):
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})
        self.tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        self.best: dict[tuple[str, str, int], int] = {}
        self.regressions: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="offset-watch", daemon=True)

    def _sample(self, kind: str, level: IsolationLevel) -> None:
        futs = self.admin.list_offsets({tp: OffsetSpec.latest() for tp in self.tps}, isolation_level=level,
                                       request_timeout=5)
        for tp, f in futs.items():
            try:
                off = f.result().offset
            except KafkaException:
                continue  # a leader moving or down: no answer is fine, a smaller one is not
            key = (kind, tp.topic, tp.partition)
            if off < self.best.get(key, -1):
                self.regressions.append(f"{kind} of {tp.topic}-{tp.partition}: {off} after {self.best[key]}")
            self.best[key] = max(off, self.best.get(key, -1))
            self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            for kind, level in (("HW", IsolationLevel.READ_UNCOMMITTED), ("LSO", IsolationLevel.READ_COMMITTED)):
                try:
                    self._sample(kind, level)
                except KafkaException:
                    pass
            self._stop.wait(0.3)

    def start(self) -> "OffsetWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def read_topic(bootstrap: str, topic: str, isolation: str, timeout: float = 90.0) -> list[tuple[int, int, bytes]]:
    """Every record of `topic` from offset 0 to its end as an `isolation`
    consumer sees it: [(partition, offset, value)]. Nothing is written any more
    and no transaction is open, so the end is the high watermark; a partition
    whose last batch is a transaction marker ends where the consumer's position
    stops moving (EOF) at the marker."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"txn-chaos-verify-{isolation}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "isolation.level": isolation,
                  "enable.partition.eof": True, "fetch.wait.max.ms": 100, "log_level": 2})
    out: list[tuple[int, int, bytes]] = []
    try:
        hw = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
              for p in range(PARTITIONS)}
        todo = {p for p in range(PARTITIONS) if hw[p] > 0}
        c.assign([TopicPartition(topic, p, 0) for p in sorted(todo)])
        eof_at: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            m = c.poll(0.3)
            now = time.monotonic()
            for p in list(todo):
                # At EOF below the high watermark, only control batches can be left: the
                # consumer skips them; give it a moment, then call the partition done.
                if p in eof_at and now - eof_at[p] > 3.0:
                    todo.discard(p)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= hw[m.partition()]:
                        todo.discard(m.partition())
                    else:
                        eof_at.setdefault(m.partition(), now)
                    continue
                raise KafkaException(m.error())
            eof_at.pop(m.partition(), None)
            out.append((m.partition(), m.offset(), m.value()))
            if m.offset() + 1 >= hw[m.partition()]:
                todo.discard(m.partition())
        assert not todo, f"{topic} ({isolation}): read incomplete after {timeout}s, partitions {sorted(todo)}"
    finally:
        c.close()
    return out


def committed_total(bootstrap: str) -> int:
    """The group's committed input offsets summed over partitions (require_stable:
    librdkafka's read_committed consumers ask for settled offsets)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                  "isolation.level": "read_committed", "log_level": 2})
    try:
        return sum(max(0, tp.offset) for tp in
                   c.committed([TopicPartition(INPUT, p) for p in range(PARTITIONS)], timeout=10))
    finally:
        c.close()


def end_offsets(bootstrap: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-chaos-ends", "log_level": 2})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(INPUT, p), timeout=10, cached=False)[1]
                   for p in range(PARTITIONS))
    finally:
        c.close()


@pytest.mark.timeout(TIMEOUT_S)
def test_exactly_once_under_kill9(tmp_path, request):
    seed = int(os.environ.get("KLAMM_CHAOS_SEED") or random.SystemRandom().randrange(1, 2**31))
    rng = random.Random(seed)
    chaos.log(f"txn chaos seed={seed} rounds={ROUNDS} budget={BUDGET_S:.0f}s dir={tmp_path} "
              f"(replay: KLAMM_CHAOS_SEED={seed} KLAMM_TXN_CHAOS_ROUNDS={ROUNDS})")
    cluster = Cluster(tmp_path, 3, overrides={
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "transaction.state.log.num.partitions": "3",
        "min.insync.replicas": "2",
    })
    request.node._klamm_brokers = cluster.nodes
    prod = sup = None
    topics = [INPUT, OUTPUT, DLQ]
    internal = ["__transaction_state", "__consumer_offsets"]
    try:
        cluster.start()
        for t in topics:
            chaos.create_topic(cluster.bootstrap(), t, PARTITIONS, 3, {"min.insync.replicas": "2"})
        cluster.wait_healthy(topics, {t: PARTITIONS for t in topics}, timeout=30, want_isr=3)
        prod = OrderProducer(cluster.bootstrap()).start()
        watch = OffsetWatch(cluster.bootstrap(), [OUTPUT, DLQ]).start()
        (tmp_path / "processor").mkdir()
        sup = Supervisor(cluster.bootstrap(), tmp_path / "processor").start()
        # The processor must be running transactions before faults start.
        # (On failure the processor's log tail is printed below.)
        wait_until(lambda: committed_total(cluster.bootstrap()) > 0, timeout=60, interval=0.5,
                   what="the processor's first committed transaction")

        t0 = time.monotonic()
        kinds: Counter = Counter()
        rounds = 0
        # Every kind of fault at least twice (when the rounds allow), the rest at random.
        plan = (FAULTS * 2)[:ROUNDS] + [rng.choice(FAULTS) for _ in range(ROUNDS - 2 * len(FAULTS))]
        rng.shuffle(plan)
        for i, kind in enumerate(plan):
            if time.monotonic() - t0 > BUDGET_S:
                chaos.log(f"budget spent after {i} rounds")
                break
            victim = None
            if kind == "kill9_coordinator":
                victim = txn_coordinator(cluster, TXN_ID)
            elif kind == "kill9_output_leader":
                victim = cluster.leader_of(OUTPUT, rng.randrange(PARTITIONS))
            elif kind == "kill9_any":
                victim = rng.choice(cluster.ids())
            prod.burst(rng.randrange(2000, 8000))
            time.sleep(rng.uniform(0.1, 0.8))  # land inside one of the transactions working off the burst
            if kind == "kill9_processor":
                sup.kill9()
            else:
                if victim is None or victim < 1:
                    chaos.log(f"round {i}: {kind}: no victim found, skipped")
                    continue
                node = cluster.node(victim)
                node.kill9()
                time.sleep(rng.uniform(0.5, 4.0))
                node.start()
            kinds[kind] += 1
            rounds += 1
            healed = cluster.wait_healthy(topics, {t: PARTITIONS for t in topics}, timeout=HEAL_TIMEOUT_S)
            chaos.log(f"round {i}: {kind} {victim or ''}: healed in {healed:.1f}s; "
                      f"sent={prod.sent} acked={len(prod.acked)} processor starts={sup.starts}")

        prod.stop()
        watch.stop()
        want = end_offsets(cluster.bootstrap())
        # The processor catches up with the whole input (bounded).
        try:
            wait_until(lambda: committed_total(cluster.bootstrap()) >= want, timeout=120, interval=0.5,
                       what="the processor to commit the whole input")
            ok = True
        except AssertionError:
            ok = False
        got_committed = committed_total(cluster.bootstrap())
        sup.stop()
        chaos.log(f"faults {dict(kinds)}; processor starts={sup.starts} exits={dict(sup.exits)}; "
                  f"input end offsets={want} committed={got_committed}")
        assert ok, f"the processor did not commit the whole input: {got_committed} of {want}\n{sup.log_tail()}"
        assert got_committed == want

        cluster.wait_healthy(topics + internal[:1], {t: PARTITIONS for t in topics + internal[:1]},
                             timeout=HEAL_TIMEOUT_S)
        raw = read_topic(cluster.bootstrap(), INPUT, "read_uncommitted")
        inputs = Counter(json.loads(v)["order_id"] for _, _, v in raw)
        dup_inputs = {k: n for k, n in inputs.items() if n > 1}
        lost_acked = sorted(prod.acked - set(inputs))
        outputs: Counter = Counter()
        for t in (OUTPUT, DLQ):
            for _, _, v in read_topic(cluster.bootstrap(), t, "read_committed"):
                rec = json.loads(v)
                outputs[rec["order_id"] if t == OUTPUT else json.loads(rec["raw"])["order_id"]] += 1
        everything = sum(len(read_topic(cluster.bootstrap(), t, "read_uncommitted")) for t in (OUTPUT, DLQ))
        duplicated = {k: n for k, n in outputs.items() if n > 1}
        missing = sorted(set(inputs) - set(outputs))
        extra = sorted(set(outputs) - set(inputs))
        print(f"txn chaos seed={seed} rounds={rounds} input={len(raw)} acked={len(prod.acked)} "
              f"lost={len(lost_acked)} duplicated={len(duplicated)} missing={len(missing)} "
              f"aborted_copies={everything - sum(outputs.values())} offset_samples={watch.samples} "
              f"offset_regressions={len(watch.regressions)}", flush=True)
        assert not watch.regressions, f"HW/LSO moved backwards: {watch.regressions[:20]}"
        assert not lost_acked, f"acknowledged orders missing from {INPUT}: {lost_acked[:20]}"
        assert not dup_inputs, f"idempotent producer wrote duplicates: {list(dup_inputs.items())[:20]}"
        assert not duplicated, f"orders output more than once (read_committed): {list(duplicated.items())[:20]}"
        assert not missing, f"orders never output (read_committed): {missing[:20]}"
        assert not extra, f"outputs of orders not in the input: {extra[:20]}"
    except BaseException:
        print(cluster.describe(topics + internal), flush=True)
        print(cluster.log_tails(60), flush=True)
        if sup is not None:
            print(f"----- processor (start {sup.starts}) -----\n{sup.log_tail(60)}", flush=True)
        raise
    finally:
        if sup is not None:
            sup.stop()
        cluster.shutdown()

