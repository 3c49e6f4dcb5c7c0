"""Consumer groups end to end with the stock clients (issue 3).

kafkajs (consumer.run + manual commitOffsets, two members), confluent-kafka
(scale 1 -> 3 -> 1 while a producer writes, static membership, broker
restart), kcat -G (librdkafka 2.0.2) and kafka-python (two members).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer

from conftest import NODE_DIR, run_kcat, unique_topic, wait_until
from helpers import admin, create_topic, produce_ok

FIND_COORDINATOR = 10


@pytest.fixture
def group_broker(broker):
    assert FIND_COORDINATOR in broker.api_versions()
    return broker


def _seed(broker, topic, n, partitions, prefix="v"):
    produce_ok(broker, topic, [{"key": f"k{i}".encode(), "value": f"{prefix}{i}".encode(), "partition": i % partitions}
                               for i in range(n)])


# --------------------------------------------------------------------------
# kafkajs

KJS_GROUPS = r"""
'use strict'
const { Kafka, logLevel } = require('kafkajs')
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const logCreator = () => ({ namespace, label, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`[kafkajs ${label} ${namespace}] ${message} ${JSON.stringify(extra)}\n`)
}
const sleep = ms => new Promise(r => setTimeout(r, ms))

async function member (kafka, name, prog, state) {
  const consumer = kafka.consumer({ groupId: prog.groupId, sessionTimeout: 10000, rebalanceTimeout: 20000, heartbeatInterval: 500 })
  const me = { name, got: [], assignments: [], consumer }
  consumer.on(consumer.events.GROUP_JOIN, e => me.assignments.push(e.payload.memberAssignment))
  await consumer.connect()
  await consumer.subscribe({ topic: prog.topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      me.got.push({ partition, offset: Number(message.offset), value: message.value.toString() })
      await consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }])
    },
  })
  return me
}

async function main () {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  const prog = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  const kafka = new Kafka({ clientId: 'kjs-groups', brokers: prog.brokers, logLevel: logLevel.WARN, logCreator,
    retry: { retries: 10, initialRetryTime: 200 } })
  const members = []
  const all = () => members.flatMap(m => m.got)
  const deadline = Date.now() + prog.timeoutMs
  members.push(await member(kafka, 'a', prog, null))
  while (all().length < prog.firstCount && Date.now() < deadline) await sleep(100)
  if (prog.second) {
    members.push(await member(kafka, 'b', prog, null))
    // Wait for the rebalance that gives b partitions, then let the producer write more.
    while (Date.now() < deadline) {
      const b = members[1]
      if (b.assignments.length > 0 && Object.values(b.assignments[b.assignments.length - 1]).flat().length > 0) break
      await sleep(100)
    }
    const producer = kafka.producer()
    await producer.connect()
    const msgs = []
    for (let i = 0; i < prog.moreCount; i++) msgs.push({ key: `m${i}`, value: `more${i}`, partition: i % prog.partitions })
    await producer.send({ topic: prog.topic, messages: msgs })
    await producer.disconnect()
  }
  const total = prog.firstCount + (prog.second ? prog.moreCount : 0)
  while (new Set(all().map(m => m.value)).size < total && Date.now() < deadline) await sleep(100)
  // The assignments while every member was in the group (leaving rebalances the rest).
  const snapshot = members.map(m => m.assignments[m.assignments.length - 1] || {})
  for (const m of members) await m.consumer.disconnect()
  const admin = kafka.admin()
  await admin.connect()
  const offsets = await admin.fetchOffsets({ groupId: prog.groupId, topics: [prog.topic] })
  await admin.disconnect()
  const out = { members: members.map(m => ({ name: m.name, got: m.got, assignments: m.assignments })), offsets, snapshot }
  await new Promise(resolve => process.stdout.write(JSON.stringify(out) + '\n', resolve))
}
setTimeout(() => { process.stderr.write('hard timeout\n'); process.exit(3) }, 170000).unref()
main().then(() => process.exit(0), e => { process.stderr.write(`kjs_groups: ${e && e.stack ? e.stack : e}\n`); process.exit(2) })
"""


def _run_kjs_groups(broker, prog: dict, timeout: float = 180.0) -> dict:
    prog = {"brokers": [broker.bootstrap], **prog}
    proc = subprocess.run(["node", "-e", KJS_GROUPS], input=json.dumps(prog).encode(), capture_output=True,
                          timeout=timeout, cwd=NODE_DIR)
    assert proc.returncode == 0, (f"node exited {proc.returncode}\nstdout:\n{proc.stdout.decode()[-2000:]}\n"
                                  f"stderr:\n{proc.stderr.decode(errors='replace')[-4000:]}")
    return json.loads(proc.stdout)


def _committed_offsets(kjs_offsets) -> dict[int, int]:
    return {p["partition"]: int(p["offset"]) for t in kjs_offsets for p in t["partitions"]}


def test_kafkajs_manual_commits_and_resume(group_broker, topic):
    create_topic(group_broker, topic, partitions=3)
    _seed(group_broker, topic, 30, 3)
    group = unique_topic("g")
    out = _run_kjs_groups(group_broker, {"topic": topic, "groupId": group, "firstCount": 30, "partitions": 3,
                                         "timeoutMs": 60000})
    got = out["members"][0]["got"]
    assert sorted(m["value"] for m in got) == sorted(f"v{i}" for i in range(30))
    assert _committed_offsets(out["offsets"]) == {0: 10, 1: 10, 2: 10}
    # A new run of the same group resumes after the committed records only.
    _seed(group_broker, topic, 3, 3, prefix="w")
    out = _run_kjs_groups(group_broker, {"topic": topic, "groupId": group, "firstCount": 3, "partitions": 3,
                                         "timeoutMs": 60000})
    assert sorted(m["value"] for m in out["members"][0]["got"]) == ["w0", "w1", "w2"]
    assert _committed_offsets(out["offsets"]) == {0: 11, 1: 11, 2: 11}


def test_kafkajs_two_members_rebalance(group_broker, topic):
    create_topic(group_broker, topic, partitions=4)
    _seed(group_broker, topic, 20, 4)
    group = unique_topic("g")
    out = _run_kjs_groups(group_broker, {"topic": topic, "groupId": group, "firstCount": 20, "second": True,
                                         "moreCount": 40, "partitions": 4, "timeoutMs": 90000})
    a, b = out["members"]
    values = {m["value"] for m in a["got"] + b["got"]}
    assert values == {f"v{i}" for i in range(20)} | {f"more{i}" for i in range(40)}
    last_a = set(sum(out["snapshot"][0].values(), []))
    last_b = set(sum(out["snapshot"][1].values(), []))
    assert last_a and last_b and not (last_a & last_b) and last_a | last_b == {0, 1, 2, 3}, (a["assignments"], b["assignments"])
    assert b["got"], "the second member consumed nothing"
    assert _committed_offsets(out["offsets"]) == {0: 15, 1: 15, 2: 15, 3: 15}


# --------------------------------------------------------------------------
# confluent-kafka (librdkafka 2.16)


class Member:
    """A confluent-kafka group member polling in its own thread; processes each
    batch, then commits synchronously what it processed."""

    def __init__(self, broker, topic, group, name, log, extra=None):
        self.name = name
        self.log = log  # shared list of events (kind, time, member, partition, offset)
        self.assigned: list[int] = []
        self.assign_events = 0
        self.revoke_events = 0
        self.stop = threading.Event()
        self.error: Exception | None = None
        self.c = Consumer({"bootstrap.servers": group_broker_bootstrap(broker), "group.id": group,
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
                           "max.poll.interval.ms": 30000, "client.id": name, **(extra or {})})
        self.topic = topic
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _on_assign(self, c, parts):
        self.assign_events += 1
        self.assigned = sorted(p.partition for p in parts)

    def _on_revoke(self, c, parts):
        self.revoke_events += 1
        self.assigned = []

    def _run(self):
        try:
            while not self.stop.is_set():
                msgs = self.c.consume(200, 0.2)
                last: dict[int, int] = {}
                for m in msgs:
                    if m.error():
                        continue
                    self.log.append(("got", time.monotonic(), self.name, m.partition(), m.offset(), m.value()))
                    last[m.partition()] = m.offset()
                if last:
                    tps = [TopicPartition(self.topic, p, o + 1) for p, o in last.items()]
                    try:
                        res = self.c.commit(offsets=tps, asynchronous=False)
                        now = time.monotonic()
                        for tp in res or []:
                            if tp.error is None:
                                self.log.append(("commit", now, self.name, tp.partition, tp.offset, None))
                    except KafkaException:
                        pass  # e.g. REBALANCE_IN_PROGRESS: the records will be redelivered
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.c.close()

    def close(self):
        self.stop.set()
        self.t.join(30)
        assert not self.t.is_alive()


def group_broker_bootstrap(broker):
    return broker.bootstrap


def test_confluent_scale_1_3_1_with_producer(group_broker):
    topic = unique_topic()
    create_topic(group_broker, topic, partitions=6)
    group = unique_topic("g")
    log: list = []
    produced: list[bytes] = []
    stop_producer = threading.Event()

    def produce_loop():
        p = Producer({"bootstrap.servers": group_broker.bootstrap, "linger.ms": 5, "acks": "all"})
        i = 0
        while not stop_producer.is_set():
            v = f"r{i}".encode()
            p.produce(topic, v, partition=i % 6)
            produced.append(v)
            i += 1
            p.poll(0)
            time.sleep(0.004)
        assert p.flush(30) == 0

    prod = threading.Thread(target=produce_loop, daemon=True)
    prod.start()
    m1 = Member(group_broker, topic, group, "m1", log)
    wait_until(lambda: len(m1.assigned) == 6, 30, what="m1 owns all 6 partitions")
    time.sleep(2)
    m2 = Member(group_broker, topic, group, "m2", log)
    m3 = Member(group_broker, topic, group, "m3", log)
    members = [m1, m2, m3]

    def balanced():
        owned = [set(m.assigned) for m in members]
        return all(len(o) == 2 for o in owned) and set().union(*owned) == set(range(6))

    wait_until(balanced, 60, what="6 partitions spread over 3 members")
    time.sleep(3)
    m2.close()
    m3.close()
    wait_until(lambda: len(m1.assigned) == 6, 60, what="m1 owns all partitions again")
    time.sleep(2)
    stop_producer.set()
    prod.join(60)
    want = set(produced)
    wait_until(lambda: want <= {e[5] for e in list(log) if e[0] == "got"}, 60,
               what="every produced record delivered")
    m1.close()
    for m in members:
        assert m.error is None, m.error
    events = list(log)
    got = [e for e in events if e[0] == "got"]
    assert {e[5] for e in got} == want  # at least once, none skipped
    assert {e[2] for e in got} == {"m1", "m2", "m3"}, "every member consumed"
    # Once an offset is committed, no earlier record of that partition is delivered again.
    commits = sorted((e for e in events if e[0] == "commit"), key=lambda e: e[1])
    for g in got:
        for c in commits:
            if c[1] >= g[1]:
                break
            assert not (c[3] == g[3] and g[4] < c[4]), f"record {g} delivered after commit {c}"
    # The group's committed offsets reach the end of every partition.
    a = admin(group_broker)  # keep a reference: a dropped AdminClient never resolves its futures
    offs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
    ends = {p: group_watermark(group_broker, topic, p) for p in range(6)}
    assert {tp.partition: tp.offset for tp in offs.topic_partitions} == ends


def group_watermark(broker, topic, p):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
    finally:
        c.close()


def test_confluent_static_membership_restart_without_rebalance(group_broker, topic):
    create_topic(group_broker, topic, partitions=4)
    group = unique_topic("g")
    log: list = []
    a = Member(group_broker, topic, group, "a", log, {"group.instance.id": "inst-a"})
    b = Member(group_broker, topic, group, "b", log, {"group.instance.id": "inst-b"})
    wait_until(lambda: len(a.assigned) == 2 and len(b.assigned) == 2 and set(a.assigned) | set(b.assigned) == {0, 1, 2, 3},
               60, what="two static members share 4 partitions")
    time.sleep(2)
    before_a, revokes_b, assigns_b = a.assigned, b.revoke_events, b.assign_events
    # A static member does not leave on close; restarting it with the same
    # group.instance.id gets the same partitions back without a rebalance.
    a.close()
    a2 = Member(group_broker, topic, group, "a2", log, {"group.instance.id": "inst-a"})
    wait_until(lambda: a2.assigned, 30, what="restarted static member assigned")
    assert a2.assigned == before_a
    time.sleep(2)
    assert (b.revoke_events, b.assign_events) == (revokes_b, assigns_b), "the other member saw a rebalance"
    adm = admin(group_broker)
    desc = adm.describe_consumer_groups([group], request_timeout=30)[group].result()
    assert len(desc.members) == 2
    assert sorted(m.group_instance_id for m in desc.members) == ["inst-a", "inst-b"]
    a2.close()
    # Closing a static member does not leave the group; an admin removes it by
    # group.instance.id (batched LeaveGroup v3+, one error per member) and the
    # other member gets its partitions before the 10 s session timeout.
    from kafka import KafkaAdminClient
    from kafka.admin import MemberToRemove
    kadmin = KafkaAdminClient(bootstrap_servers=group_broker.bootstrap, request_timeout_ms=20000)
    try:
        res = kadmin.remove_group_members(group, [MemberToRemove(group_instance_id="inst-a"),
                                                  MemberToRemove(group_instance_id="inst-zz")])
        names = {(m if isinstance(m, str) else m.group_instance_id): (e.__name__ if isinstance(e, type) else type(e).__name__)
                 for m, e in res.items()}
        assert names == {"inst-a": "NoError", "inst-zz": "UnknownMemberIdError"}, res
    finally:
        kadmin.close()
    wait_until(lambda: len(b.assigned) == 4, 8, what="b owns every partition after the admin removal")
    b.close()


def test_confluent_broker_restart_resume(group_broker, topic):
    create_topic(group_broker, topic, partitions=2)
    _seed(group_broker, topic, 10, 2)
    group = unique_topic("g")
    conf = {"bootstrap.servers": group_broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 10000}
    c = Consumer(conf)
    try:
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 10 and time.monotonic() < deadline:
            got += [m for m in c.consume(10, 0.5) if not m.error()]
        assert len(got) == 10
        c.commit(offsets=[TopicPartition(topic, 0, 5, metadata="meta-0"), TopicPartition(topic, 1, 5, metadata="meta-1")],
                 asynchronous=False)
    finally:
        c.close()
    group_broker.restart()
    _seed(group_broker, topic, 2, 2, prefix="after")
    c = Consumer(conf)
    try:
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 2 and time.monotonic() < deadline:
            got += [m for m in c.consume(10, 0.5) if not m.error()]
        assert sorted((m.partition(), m.offset(), m.value()) for m in got) == [(0, 5, b"after0"), (1, 5, b"after1")]
        committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert [(tp.offset, tp.metadata) for tp in committed] == [(5, "meta-0"), (5, "meta-1")]
    finally:
        c.close()


# --------------------------------------------------------------------------
# kcat -G (librdkafka 2.0.2)


def test_kcat_balanced_consumer_commits_and_resumes(group_broker, topic):
    create_topic(group_broker, topic, partitions=3)
    _seed(group_broker, topic, 12, 3)
    group = unique_topic("g")
    args = ["-b", group_broker.bootstrap, "-G", group, "-X", "auto.offset.reset=earliest", "-q",
            "-f", "%p:%o:%s\n", topic]
    out = run_kcat([*args[:6], "-c", "12", *args[6:]], timeout=90).stdout.decode().split()
    assert sorted(l.split(":")[2] for l in out) == sorted(f"v{i}" for i in range(12))
    _seed(group_broker, topic, 3, 3, prefix="w")
    out = run_kcat([*args[:6], "-c", "3", *args[6:]], timeout=90).stdout.decode().split()
    assert sorted(out) == ["0:4:w0", "1:4:w1", "2:4:w2"]


# --------------------------------------------------------------------------
# kafka-python


class _PollingMember:
    """One kafka-python group member polled continuously from its own thread,
    as an application runs a consumer.

    Why a thread each: kafka-python 3.0.x drops the result of a JoinGroup/
    SyncGroup round that completes while no poll() is waiting for it (the next
    poll sees the finished join task and sends a fresh JoinGroup). Polling two
    consumers alternately from one thread makes the leader's join land between
    its polls every time, and since a leader's rejoin forces a rebalance (in
    Kafka as here) the group never settles. Commands (commit, close) run on the
    member's own thread because KafkaConsumer is not thread-safe."""

    def __init__(self, name, make):
        self.name = name
        self.records = []
        self.assignment: set[int] = set()
        self._make = make
        self._commands: list = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"kp-{name}", daemon=True)
        self._thread.start()

    def _run(self):
        consumer = self._make()
        try:
            deadline = time.monotonic() + 240
            while not self._stop.is_set() and time.monotonic() < deadline:
                for recs in consumer.poll(timeout_ms=200).values():
                    with self._lock:
                        self.records += recs
                with self._lock:
                    self.assignment = {tp.partition for tp in consumer.assignment()}
                    commands, self._commands = self._commands, []
                for command, done in commands:
                    try:
                        done.append(("ok", command(consumer)))
                    except BaseException as e:  # handed back to the caller
                        done.append(("err", e))
        except BaseException as e:
            self.error = e
        finally:
            consumer.close()

    def call(self, command, timeout=60.0):
        """Runs command(consumer) on the member's thread and returns its result."""
        done: list = []
        with self._lock:
            self._commands.append((command, done))
        deadline = time.monotonic() + timeout
        while not done and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.05)
        assert done, f"{self.name}: command did not run (error: {self.error!r})"
        status, value = done[0]
        if status == "err":
            raise value
        return value

    def current_assignment(self) -> set[int]:
        with self._lock:
            return set(self.assignment)

    def values(self) -> list[bytes]:
        with self._lock:
            return [r.value for r in self.records]

    def stop(self, timeout=30.0):
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"{self.name}: consumer did not close within {timeout}s"


def test_kafka_python_two_members_rebalance(group_broker, topic):
    create_topic(group_broker, topic, partitions=4)
    _seed(group_broker, topic, 40, 4)
    group = unique_topic("g")

    def consumer():
        return KafkaConsumer(topic, bootstrap_servers=group_broker.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=10000,
                             heartbeat_interval_ms=500, request_timeout_ms=20000)

    c1 = _PollingMember("c1", consumer)
    c2 = None
    try:
        wait_until(lambda: c1.current_assignment() == {0, 1, 2, 3}, 60, what="c1 owns all four partitions")
        wait_until(lambda: len(set(c1.values())) == 40, 30, what="c1 read the 40 seeded records")
        c1.call(lambda c: c.commit())
        c2 = _PollingMember("c2", consumer)

        def balanced():
            a1, a2 = c1.current_assignment(), c2.current_assignment()
            return bool(a1) and bool(a2) and not (a1 & a2) and a1 | a2 == {0, 1, 2, 3}
        wait_until(balanced, 60, what="two members split the four partitions")
        # Committed offsets are resumed, so c2 reads nothing that c1 committed.
        _seed(group_broker, topic, 8, 4, prefix="w")
        wait_until(lambda: len({v for v in c1.values() + c2.values() if v.startswith(b"w")}) == 8, 30,
                   what="the members read the 8 new records between them")
        assert not any(v.startswith(b"v") for v in c2.values()), "c2 re-read records c1 had committed"
        c2.call(lambda c: c.commit())
        c2.stop()  # close() sends LeaveGroup: c1 gets everything back without waiting for a session timeout
        c2 = None
        wait_until(lambda: c1.current_assignment() == {0, 1, 2, 3}, 30, what="c1 owns all four partitions again")
        c1.call(lambda c: c.commit())
        from kafka import TopicPartition as KpTopicPartition
        committed = c1.call(lambda c: {p: c.committed(KpTopicPartition(topic, p)) for p in range(4)})
        assert committed == {0: 12, 1: 12, 2: 12, 3: 12}
        assert c1.error is None
    finally:
        if c2 is not None:
            c2.stop()
        c1.stop()
