"""Process-level chaos harness for a 3-node klamm cluster (Jepsen-style, small).

What it does (test_chaos.py drives it):

* `Cluster` (cluster_fixture.py) starts 3 combined broker+controller `klamm`
  processes with a short broker session timeout and replica lag time.
* `ProducerWorkload` runs a confluent-kafka producer (acks=all, idempotence)
  in a thread, producing unique values "seq-<n>" round-robin over the
  partitions and recording exactly which were acknowledged (delivery report
  without error: partition, offset), which failed (error) and when.
* `ReaderWorkload` consumes every partition from offset 0 in a thread during
  the whole run, remembering every (partition, offset) -> value it saw, and
  polls the high watermark (ListOffsets) to check it never goes backwards.
* `Chaos.run_rounds` injects faults in bounded rounds chosen by a seeded RNG:
  kill -9 of a partition leader / the active controller / any node, kill -9
  plus loss of the unflushed tail of the partition logs, SIGSTOP/SIGCONT,
  SIGTERM (controlled shutdown) + restart, two nodes down at once, and (with a
  proxied cluster) a network cut of a node's Kafka listener. After each
  fault the node(s) come back and the cluster must heal (bounded wait): every
  partition has a live leader and a full ISR on every node's metadata.
* `verify` checks ARCHITECTURE.md's invariants ("Checked end to end") on the
  result: every acknowledged value is at its acknowledged (partition,
  offset); one value per (partition, offset) across all reads; no duplicates
  (idempotence) and no reordering; nothing read at or above the high
  watermark; the high watermark never went backwards; the replicas' `.log`
  segments hold byte-identical batches below the high watermark; no
  acknowledgement while two of three nodes were down.

Network cuts go through netproxy.Proxy, in front of each node's Kafka listener
(clients, follower fetches and the controller's liveness probes all pass it).
The metadata quorum's own connections are not cut: Raft learns the voters'
addresses from the membership the first voter wrote, so one node cannot be
given per-link proxy addresses, and iptables needs root. A cut is therefore
"nobody can reach this node's Kafka listener", not a full partition.
"""

from __future__ import annotations

import os
import random
import re
import struct
import threading
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_fixture import Cluster, Node
from conftest import unique_topic

FAULTS = ["kill9_leader", "kill9_controller", "kill9_any", "kill9_lose_tail",
          "pause", "sigterm_restart", "two_down"]
NET_FAULTS = ["cut_leader", "cut_any"]  # need a proxied cluster (netproxy.py)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------
# workloads


@dataclass
class Ack:
    partition: int
    offset: int | None  # None: acknowledged without an offset (see verify)
    at: float  # monotonic time of the delivery report


class ProducerWorkload:
    """Produces "seq-<n>" (n = 1, 2, ...) to partition n % partitions with acks=all
    and idempotence; records each value's fate from its delivery report."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, interval_s: float = 0.004,
                 extra: dict | None = None):
        self.bootstrap, self.topic, self.partitions, self.interval_s = bootstrap, topic, partitions, interval_s
        self.conf = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "none",
            "linger.ms": 5,
            "request.timeout.ms": 5000,
            "message.timeout.ms": 20000,
            "retry.backoff.ms": 100,
            "retry.backoff.max.ms": 500,
            "reconnect.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 2000,
            "socket.connection.setup.timeout.ms": 3000,
            "log_level": 2,  # connection refused/reset is the point here; keep FATAL/CRIT lines
            **(extra or {}),
        }
        self.lock = threading.Lock()
        self.sent: dict[str, float] = {}            # value -> monotonic time handed to the producer
        self.acked: dict[str, Ack] = {}
        self.failed: dict[str, str] = {}            # value -> last error
        self.double_reports: list[str] = []
        self.fatal_errors: list[str] = []
        self.error_events: Counter = Counter()
        self.producers_created = 0
        self._stop = threading.Event()
        self._fatal = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-producer", daemon=True)
        self.pending_at_end = 0
        self.exception: BaseException | None = None

    # callbacks run on the producing thread (inside poll/flush)
    def _on_delivery(self, err, msg) -> None:
        v = msg.value().decode()
        now = time.monotonic()
        with self.lock:
            if v in self.acked or v in self.failed:
                self.double_reports.append(v)
            if err is None:
                self.acked[v] = Ack(msg.partition(), msg.offset(), now)
                self.failed.pop(v, None)
            else:
                self.failed[v] = f"{err.name()}: {err.str()}"

    def _on_error(self, err) -> None:
        with self.lock:
            self.error_events[err.name()] += 1
            if err.fatal() and not self._fatal.is_set():
                self.fatal_errors.append(f"{err.name()}: {err.str()}")
                self._fatal.set()

    def _new_producer(self) -> Producer:
        self.producers_created += 1
        return Producer({**self.conf, "error_cb": self._on_error})

    def start(self) -> "ProducerWorkload":
        self._thread.start()
        return self

    def _call(self, fn, *args):
        """Calls a producer method; a fatal error (raised by produce/poll/flush in
        confluent-kafka 2.x) is remembered and the producer replaced by _run."""
        try:
            return fn(*args)
        except KafkaException as e:
            self._note_fatal(e)
            return None

    def _note_fatal(self, e: KafkaException) -> None:
        err = e.args[0]
        if not (err.fatal() or err.code() == KafkaError._FATAL):
            raise e
        with self.lock:
            if not self._fatal.is_set():
                self.fatal_errors.append(f"{err.name()}: {err.str()}")
            self._fatal.set()

    def _replace(self, p: Producer) -> Producer:
        # The instance is unusable: its queued messages get failure reports
        # (purge); carry on with a new producer (new producer id).
        for fn, args in ((p.purge, ()), (p.flush, (2,))):
            try:
                fn(*args)
            except KafkaException:
                pass
        self._fatal.clear()
        return self._new_producer()

    def _run(self) -> None:
        try:
            p = self._new_producer()
            n = 0
            while not self._stop.is_set():
                if self._fatal.is_set():
                    p = self._replace(p)
                n += 1
                v = f"seq-{n}"
                part = n % self.partitions
                while not self._stop.is_set() and not self._fatal.is_set():
                    try:
                        p.produce(self.topic, v.encode(), partition=part, on_delivery=self._on_delivery)
                        with self.lock:
                            self.sent[v] = time.monotonic()
                        break
                    except BufferError:
                        self._call(p.poll, 0.05)
                    except KafkaException as e:
                        self._note_fatal(e)
                        with self.lock:
                            self.failed[v] = f"{e.args[0].name()}: not produced, producer in fatal state"
                self._call(p.poll, 0)
                time.sleep(self.interval_s)
            # drain: every message gets a report within message.timeout.ms
            deadline = time.monotonic() + self.conf["message.timeout.ms"] / 1000 + 10
            while len(p) > 0 and time.monotonic() < deadline:
                if self._fatal.is_set():
                    self._replace(p)
                    break
                self._call(p.flush, 1)
            self.pending_at_end = len(p)
        except BaseException as e:  # noqa: BLE001 - re-raised by stop()
            self.exception = e

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("producer thread did not finish")
        if self.exception is not None:
            raise self.exception

    def snapshot(self) -> tuple[int, int, int]:
        with self.lock:
            return len(self.sent), len(self.acked), len(self.failed)


class ReaderWorkload:
    """Consumes all partitions from offset 0 during the run; remembers every
    (partition, offset) -> value read and watches the high watermark."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.topic, self.partitions = topic, partitions
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("chaos-reader"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "socket.connection.setup.timeout.ms": 3000,
            "reconnect.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 2000,
            "log_level": 2,
        })
        self.seen: dict[tuple[int, int], str] = {}
        self.conflicts: list[tuple[int, int, str, str]] = []
        self.rewinds = 0                      # offset went backwards (e.g. auto.offset.reset)
        self.hw_max: dict[int, int] = {}
        self.hw_regressions: list[tuple[int, int, int, str]] = []  # partition, max seen, new, wall time
        self.errors: Counter = Counter()
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-reader", daemon=True)
        self.exception: BaseException | None = None

    def start(self) -> "ReaderWorkload":
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            next_hw = 0.0
            while not self._stop.is_set():
                m = self.consumer.poll(0.2)
                if m is not None:
                    if m.error() is not None:
                        self.errors[m.error().name()] += 1
                    else:
                        key = (m.partition(), m.offset())
                        v = m.value().decode()
                        old = self.seen.setdefault(key, v)
                        if old != v:
                            self.conflicts.append((key[0], key[1], old, v))
                        if m.offset() <= self._last.get(m.partition(), -1):
                            self.rewinds += 1
                        self._last[m.partition()] = m.offset()
                if time.monotonic() >= next_hw:
                    next_hw = time.monotonic() + 1.0
                    for p in range(self.partitions):
                        try:
                            _lo, hi = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p),
                                                                          timeout=1.0, cached=False)
                        except KafkaException as e:
                            self.errors["watermarks:" + e.args[0].name()] += 1
                            continue
                        if hi < 0:
                            continue
                        if hi < self.hw_max.get(p, -1):
                            self.hw_regressions.append((p, self.hw_max[p], hi, time.strftime("%H:%M:%S")))
                        self.hw_max[p] = max(hi, self.hw_max.get(p, -1))
        except BaseException as e:  # noqa: BLE001
            self.exception = e

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        try:
            self.consumer.close()
        except Exception:  # noqa: BLE001
            pass
        if self.exception is not None:
            raise self.exception


# --------------------------------------------------------------------------
# reading logs: through the client, and straight from each replica's segments


def read_all(bootstrap: str, topic: str, partitions: int, timeout: float = 60.0
             ) -> tuple[dict[int, int], dict[int, list[tuple[int, str]]]]:
    """Reads every partition from 0 up to its high watermark (taken before the
    read; nothing is produced any more). Returns (hw per partition, records)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("chaos-verify"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "enable.partition.eof": True, "fetch.wait.max.ms": 100, "log_level": 2})
    try:
        hw: dict[int, int] = {}
        for p in range(partitions):
            last = None
            deadline = time.monotonic() + 20
            while p not in hw:
                try:
                    hw[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
                except KafkaException as e:
                    last = e
                    if time.monotonic() > deadline:
                        raise AssertionError(f"no high watermark for {topic}-{p}: {last!r}")
                    time.sleep(0.3)
        recs: dict[int, list[tuple[int, str]]] = {p: [] for p in range(partitions)}
        todo = {p for p in range(partitions) if hw[p] > 0}
        c.assign([TopicPartition(topic, p, 0) for p in sorted(todo)])
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                got = {p: len(recs[p]) for p in todo}
                raise AssertionError(f"final read incomplete after {timeout}s: read {got} of {hw}")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= hw[m.partition()]:
                        todo.discard(m.partition())
                continue
            p = m.partition()
            recs[p].append((m.offset(), m.value().decode()))
            if m.offset() + 1 >= hw[p]:
                todo.discard(p)
        return hw, recs
    finally:
        c.close()


@dataclass
class Batch:
    base_offset: int
    last_offset: int
    raw: bytes
    records: list[tuple[int, bytes | None]]  # (offset, value)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), pos


def _records(batch: bytes) -> list[tuple[int, bytes | None]]:
    base_offset = struct.unpack_from(">q", batch, 0)[0]
    attributes = struct.unpack_from(">h", batch, 21)[0]
    count = struct.unpack_from(">i", batch, 57)[0]
    body = batch[61:]
    codec = attributes & 0x7
    if codec == 1:
        body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
    elif codec != 0:
        raise ValueError(f"compression codec {codec} not supported by the chaos reader")
    out = []
    pos = 0
    for _ in range(count):
        _length, pos = _varint(body, pos)
        pos += 1  # attributes
        _ts, pos = _varint(body, pos)
        delta, pos = _varint(body, pos)
        klen, pos = _varint(body, pos)
        pos += max(klen, 0)
        vlen, pos = _varint(body, pos)
        value = None if vlen < 0 else body[pos:pos + vlen]
        pos += max(vlen, 0)
        hcount, pos = _varint(body, pos)
        for _h in range(hcount):
            hk, pos = _varint(body, pos)
            pos += hk
            hv, pos = _varint(body, pos)
            pos += max(hv, 0)
        out.append((base_offset + delta, value))
    return out


def read_segments(part_dir: Path) -> list[Batch]:
    """The batches of a partition folder's `<base>.log` segments, in order; stops a
    segment at a torn or zero-filled tail."""
    batches: list[Batch] = []
    segs = sorted((f for f in part_dir.glob("*.log") if re.fullmatch(r"\d+\.log", f.name)),
                  key=lambda f: int(f.stem))
    for f in segs:
        data = f.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            if length < 49 or pos + 12 + length > len(data):
                break
            raw = data[pos:pos + 12 + length]
            last_delta = struct.unpack_from(">i", raw, 23)[0]
            batches.append(Batch(base, base + last_delta, raw, _records(raw)))
            pos += 12 + length
    return batches


def cut_tail(part_dir: Path, rng: random.Random, max_bytes: int = 64 * 1024) -> int:
    """Simulates losing the unflushed tail: truncates the newest segment of a
    (stopped) replica by a random number of bytes. Returns the bytes cut."""
    segs = sorted((f for f in part_dir.glob("*.log") if re.fullmatch(r"\d+\.log", f.name)),
                  key=lambda f: int(f.stem))
    if not segs:
        return 0
    f = segs[-1]
    size = f.stat().st_size
    if size == 0:
        return 0
    cut = rng.randint(1, min(size, max_bytes))
    os.truncate(f, size - cut)
    return cut


# --------------------------------------------------------------------------
# the chaos run


@dataclass
class Window:
    """Two nodes down: from `start` (both processes dead) to `end` (restart begins)."""
    start: float
    end: float
    nodes: tuple[int, int]


@dataclass
class ChaosStats:
    seed: int
    rounds_planned: int
    rounds: int = 0
    faults: int = 0
    kinds: Counter = field(default_factory=Counter)
    heal_times: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)   # liveness / crash problems
    windows: list[Window] = field(default_factory=list)
    sigterm_times: list[float] = field(default_factory=list)
    sigterm_forced: int = 0
    tail_cut_bytes: int = 0


class Chaos:
    def __init__(self, cluster: Cluster, topic: str, partitions: int, seed: int, rounds: int,
                 budget_s: float, heal_timeout_s: float = 60.0, topics_to_heal: dict[str, int] | None = None):
        self.c, self.topic, self.partitions = cluster, topic, partitions
        self.rng = random.Random(seed)
        self.stats = ChaosStats(seed, rounds)
        self.budget_s = budget_s
        self.heal_timeout_s = heal_timeout_s
        self.heal_topics = topics_to_heal or {topic: partitions}
        self.faults = FAULTS + (NET_FAULTS if all(b.proxy is not None for b in cluster.nodes) else [])

    # -- fault selection -----------------------------------------------------
    def plan(self) -> list[str]:
        """Each fault kind at least once (when rounds allow), the rest random, shuffled."""
        n, faults = self.stats.rounds_planned, self.faults
        kinds = list(faults)[:n] + [self.rng.choice(faults) for _ in range(max(0, n - len(faults)))]
        self.rng.shuffle(kinds)
        return kinds

    def active_controller(self) -> Node | None:
        """The node whose log most recently announced it became the active controller
        (since its last start); None if no running node announced it."""
        best: tuple[str, Node] | None = None
        for b in self.c.nodes:
            if not b.is_running():
                continue
            try:
                text = b.log_path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            text = text[text.rfind("===== start #"):]
            for line in reversed(text.splitlines()):
                if "active controller" in line:
                    ts = _ANSI.sub("", line).split(" ", 1)[0]  # RFC 3339 UTC: compares as text
                    if best is None or ts > best[0]:
                        best = (ts, b)
                    break
        return best[1] if best else None

    def _check_crashes(self) -> None:
        for b in self.c.nodes:
            if b.proc is None or b.proc.poll() is not None:
                rc = None if b.proc is None else b.proc.returncode
                raise AssertionError(f"node {b.node_id} is not running (exit code {rc}) though nobody stopped it")

    def _restart(self, nodes: list[Node]) -> None:
        Cluster.start_nodes(nodes)

    # -- one round -------------------------------------------------------------
    def round(self, i: int, kind: str) -> str:
        rng, c = self.rng, self.c
        hold = rng.uniform(0.3, 4.0)
        if kind == "kill9_leader":
            p = rng.randrange(self.partitions)
            lid = c.leader_of(self.topic, p)
            victim = c.node(lid) if lid > 0 else rng.choice(c.nodes)
            victim.kill9()
            time.sleep(hold)
            self._restart([victim])
            return f"kill -9 node {victim.node_id} (leader of {self.topic}-{p}), down {hold:.1f}s"
        if kind == "kill9_controller":
            victim = self.active_controller()
            how = "active controller"
            if victim is None:
                victim, how = rng.choice(c.nodes), "controller unknown: random node"
            victim.kill9()
            time.sleep(hold)
            self._restart([victim])
            return f"kill -9 node {victim.node_id} ({how}), down {hold:.1f}s"
        if kind == "kill9_any":
            victim = rng.choice(c.nodes)
            victim.kill9()
            time.sleep(hold)
            self._restart([victim])
            return f"kill -9 node {victim.node_id}, down {hold:.1f}s"
        if kind == "kill9_lose_tail":
            victim = rng.choice(c.nodes)
            victim.kill9()
            cuts = []
            for p in range(self.partitions):
                d = victim.partition_dir(self.topic, p)
                if d.is_dir():
                    n = cut_tail(d, rng)
                    self.stats.tail_cut_bytes += n
                    cuts.append(f"p{p}-{n}B")
            time.sleep(hold)
            self._restart([victim])
            return f"kill -9 node {victim.node_id}, cut log tails {' '.join(cuts) or '-'}, down {hold:.1f}s"
        if kind == "pause":
            victim = rng.choice(c.nodes)
            hold = rng.uniform(1.0, 6.0)
            victim.pause()
            time.sleep(hold)
            victim.resume()
            return f"SIGSTOP node {victim.node_id} for {hold:.1f}s, SIGCONT"
        if kind == "sigterm_restart":
            victim = rng.choice(c.nodes)
            rc, took = victim.terminate(timeout=20)
            self.stats.sigterm_times.append(took)
            if victim.last_stop_forced:
                self.stats.sigterm_forced += 1
            time.sleep(hold)
            self._restart([victim])
            return (f"SIGTERM node {victim.node_id} (exit {rc} after {took:.1f}s"
                    f"{', FORCED with SIGKILL' if victim.last_stop_forced else ''}), down {hold:.1f}s")
        if kind in ("cut_leader", "cut_any"):
            if kind == "cut_leader":
                p = rng.randrange(self.partitions)
                lid = c.leader_of(self.topic, p)
                victim = c.node(lid) if lid > 0 else rng.choice(c.nodes)
            else:
                victim = rng.choice(c.nodes)
            hold = rng.uniform(1.0, 6.0)
            reset = rng.random() < 0.5
            victim.proxy.cut()
            time.sleep(hold)
            victim.proxy.heal(reset=reset)
            return (f"cut node {victim.node_id}'s Kafka listener off for {hold:.1f}s, then "
                    f"{'reset its connections' if reset else 'delivered the held bytes'}")
        if kind == "two_down":
            a, b = rng.sample(c.nodes, 2)
            a.kill9()
            b.kill9()
            start = time.monotonic()
            hold = rng.uniform(2.0, 4.0)
            time.sleep(hold)
            self.stats.windows.append(Window(start, time.monotonic(), (a.node_id, b.node_id)))
            self._restart([a, b])
            return f"kill -9 nodes {a.node_id} and {b.node_id} together, down {hold:.1f}s"
        raise ValueError(kind)

    def run_rounds(self, progress=None) -> None:
        t0 = time.monotonic()
        plan = self.plan()
        log(f"seed={self.stats.seed} plan: {' '.join(plan)}")
        for i, kind in enumerate(plan, 1):
            if time.monotonic() - t0 > self.budget_s:
                log(f"time budget of {self.budget_s:.0f}s used up after {i - 1} rounds; stopping the faults")
                break
            try:
                self._check_crashes()
                what = self.round(i, kind)
                self.stats.rounds += 1
                self.stats.faults += 2 if kind == "two_down" else 1
                self.stats.kinds[kind] += 1
                healed = self.c.wait_healthy(list(self.heal_topics), self.heal_topics,
                                             timeout=self.heal_timeout_s, want_isr=None)
                self.stats.heal_times.append(healed)
                log(f"round {i}/{len(plan)} {kind}: {what}; healed in {healed:.1f}s"
                    f"{'; ' + progress() if progress else ''}")
            except Exception as e:  # noqa: BLE001 - recorded, the run stops, safety is still checked
                msg = f"round {i} ({kind}) failed: {e}"
                log(msg)
                log("metadata as each node sees it:\n" + self.c.describe(list(self.heal_topics)))
                self.stats.failures.append(msg)
                break


# --------------------------------------------------------------------------
# invariants


@dataclass
class Verdict:
    acked: int = 0
    lost: int = 0
    duplicated: int = 0
    inconsistent: int = 0
    reordered: int = 0
    gaps: int = 0
    minority_acks: int = 0
    hw_regressions: int = 0
    implicit_acks: int = 0
    records: int = 0
    details: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)

    def note(self, kind: str, s: str) -> None:
        """Remembers a problem; the first 8 of each kind are kept word for word."""
        self.kinds[kind] += 1
        if self.kinds[kind] <= 8:
            self.details.append(f"{kind}: {s}")


def seq_of(v: str) -> int:
    return int(v.split("-", 1)[1])


def verify(cluster: Cluster, topic: str, partitions: int, prod: ProducerWorkload, reader: ReaderWorkload,
           windows: list[Window], disk_timeout: float = 30.0) -> Verdict:
    vd = Verdict(acked=len(prod.acked))
    hw, recs = read_all(cluster.bootstrap(cluster.up()), topic, partitions)
    final: dict[tuple[int, int], str] = {}
    where: dict[str, list[tuple[int, int]]] = defaultdict(list)
    bad_positions: set[tuple[int, int]] = set()
    for p, rs in recs.items():
        prev_off, prev_seq = -1, -1
        for off, v in rs:
            vd.records += 1
            if off >= hw[p]:
                vd.note("above-hw", f"read {topic}-{p}@{off} at/above the high watermark {hw[p]}")
                bad_positions.add((p, off))
            if off != prev_off + 1:
                vd.gaps += 1
                vd.note("gap", f"{topic}-{p}: offset {off} follows {prev_off}")
            final[(p, off)] = v
            where[v].append((p, off))
            s = seq_of(v)
            if s <= prev_seq:
                vd.reordered += 1
                vd.note("reordered", f"{topic}-{p}@{off}: {v} after seq-{prev_seq}")
            prev_off, prev_seq = off, max(prev_seq, s)

    # acknowledged values: present, exactly at the acknowledged position
    for v, a in prod.acked.items():
        at = where.get(v)
        if not at:
            vd.lost += 1
            vd.note("lost", f"{v} acked at {topic}-{a.partition}@{a.offset} (now there: {final.get((a.partition, a.offset))})")
        elif a.offset is None or a.offset < 0:
            # librdkafka acknowledges "implicitly", without an offset, the messages of a
            # request whose answer was lost once a later request of the same producer
            # and partition is acknowledged (rd_kafka_dr_implicit_ack): only the
            # partition is known.
            vd.implicit_acks += 1
            if not any(p == a.partition for p, _ in at):
                bad_positions.add(at[0])
                vd.note("moved", f"{v} acked (no offset) on partition {a.partition} but found at {at}")
        elif (a.partition, a.offset) not in at:
            bad_positions.add((a.partition, a.offset))
            vd.note("moved", f"{v} acked at {a.partition}@{a.offset} but found at {at}; "
                    f"there now: {final.get((a.partition, a.offset))}")
    for v, at in where.items():
        if len(at) > 1:
            vd.duplicated += 1
            vd.note("duplicate", f"{v} at {at}")

    # everything the concurrent reader saw is in the final log, at the same offset
    for (p, off), v in reader.seen.items():
        if final.get((p, off)) != v:
            bad_positions.add((p, off))
            vd.note("reader-mismatch", f"reader saw {v} at {topic}-{p}@{off}; final log has {final.get((p, off))} (hw {hw[p]})")
    for p, off, a, b in reader.conflicts:
        bad_positions.add((p, off))
        vd.note("reader-conflict", f"reader saw two values at {topic}-{p}@{off}: {a} and {b}")
    vd.hw_regressions = len(reader.hw_regressions)
    for p, old, new, when in reader.hw_regressions:
        vd.note("hw-regression", f"high watermark of {topic}-{p} (ListOffsets latest) went back from {old} to {new} at {when}")

    # no acknowledgement for a value produced while two of three nodes were down
    for w in windows:
        for v, a in prod.acked.items():
            sent = prod.sent.get(v)
            if sent is not None and w.start <= sent and a.at < w.end:
                vd.minority_acks += 1
                vd.note("minority-ack", f"{v} sent and acked while nodes {w.nodes} were down")

    # replicas: the same batches, byte for byte, below the high watermark
    md = cluster.partitions(topic)
    for p in range(partitions):
        replicas = md[p].replicas
        logs: dict[int, list[Batch]] = {}
        deadline = time.monotonic() + disk_timeout
        for nid in replicas:
            d = cluster.node(nid).partition_dir(topic, p)
            while True:
                bs = [b for b in read_segments(d) if b.base_offset < hw[p]] if d.is_dir() else []
                if (bs and bs[-1].last_offset + 1 >= hw[p]) or hw[p] == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            logs[nid] = bs
        ref_id = replicas[0]
        for nid, bs in logs.items():
            top = bs[-1].last_offset + 1 if bs else 0
            if top < hw[p]:
                bad_positions.add((p, top))
                vd.note("replica-short", f"node {nid} holds {topic}-{p} only up to {top}, high watermark {hw[p]}")
            for b in bs:
                for off, val in b.records:
                    if off < hw[p] and (val.decode() if val is not None else None) != final.get((p, off)):
                        bad_positions.add((p, off))
                        vd.note("replica-value", f"node {nid} disk {topic}-{p}@{off} = {val!r}; read {final.get((p, off))}")
            if nid != ref_id:
                ref = {b.base_offset: b.raw for b in logs[ref_id]}
                for b in bs:
                    if b.last_offset < hw[p] and ref.get(b.base_offset) != b.raw:
                        bad_positions.add((p, b.base_offset))
                        vd.note("replica-bytes", f"{topic}-{p} batch at {b.base_offset}: node {nid} bytes differ from node {ref_id}"
                                f" ({'missing there' if b.base_offset not in ref else _diff(ref[b.base_offset], b.raw)})")
    vd.inconsistent = len(bad_positions)
    return vd


def _diff(a: bytes, b: bytes) -> str:
    if len(a) != len(b):
        return f"lengths {len(a)} vs {len(b)}"
    first = next(i for i in range(len(a)) if a[i] != b[i])
    names = [(0, "base_offset"), (8, "length"), (12, "partition_leader_epoch"), (16, "magic"), (17, "crc"),
             (21, "attributes"), (23, "last_offset_delta"), (27, "timestamps"), (43, "producer"), (61, "records")]
    field_name = [n for o, n in names if o <= first][-1]
    return f"first difference at byte {first} ({field_name})"


def create_topic(bootstrap: str, topic: str, partitions: int, rf: int, config: dict[str, str]) -> None:
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, partitions, rf, config=config)],
                    operation_timeout=20, request_timeout=20)[topic].result(30)
