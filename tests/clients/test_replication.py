"""Data replication seen through stock clients, on real 3-node clusters
(cluster_fixture.py): replication factor 3 with min.insync.replicas=2, ISR in
the metadata (confluent-kafka and kcat), acks=all across a leader kill,
NOT_ENOUGH_REPLICAS with two replicas gone, controlled shutdown on SIGTERM,
a consumer group across a coordinator/leader kill, and a restarted node
rejoining the ISR.
"""

from __future__ import annotations

import re
import signal
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from chaos import read_segments
from cluster_fixture import SESSION_TIMEOUT_MS, Cluster, cluster3  # noqa: F401 - fixture
from conftest import run_kcat, unique_topic, wait_until
from helpers import consume

PARTITIONS = 3


def create_rf3(cluster: Cluster, topic: str, partitions: int = PARTITIONS, min_isr: int = 2) -> None:
    a = AdminClient({"bootstrap.servers": cluster.bootstrap(cluster.up())})
    a.create_topics([NewTopic(topic, partitions, 3, config={"min.insync.replicas": str(min_isr)})],
                    operation_timeout=20, request_timeout=20)[topic].result(30)
    cluster.wait_healthy([topic], {topic: partitions}, timeout=30, want_isr=3)


def producer(bootstrap: str, **conf) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                     "linger.ms": 5, "request.timeout.ms": 5000, "message.timeout.ms": 30000,
                     "retry.backoff.ms": 100, "retry.backoff.max.ms": 500, "reconnect.backoff.max.ms": 500,
                     "socket.connection.setup.timeout.ms": 3000, **conf})


class Deliveries:
    def __init__(self):
        self.ok: dict[str, tuple[int, int]] = {}
        self.err: dict[str, KafkaError] = {}
        self.lock = threading.Lock()

    def __call__(self, err, msg) -> None:
        with self.lock:
            v = msg.value().decode()
            if err is None:
                self.ok[v] = (msg.partition(), msg.offset())
            else:
                self.err[v] = err


def produce_all(p: Producer, topic: str, values: list[str], partition: int | None = None,
                d: Deliveries | None = None, flush_s: float = 45.0) -> Deliveries:
    """Produces `values` (to `partition`, or round-robin over PARTITIONS) and flushes."""
    d = d or Deliveries()
    for i, v in enumerate(values):
        part = partition if partition is not None else i % PARTITIONS
        while True:
            try:
                p.produce(topic, v.encode(), partition=part, on_delivery=d)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(flush_s) == 0, f"{len(p)} messages still undelivered after {flush_s}s"
    return d


def read_partitions(bootstrap: str, topic: str, partitions: list[int], timeout: float = 30.0
                    ) -> dict[int, list[tuple[int, str]]]:
    """Every record of the partitions, from 0 to the high watermark."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("rd"), "enable.auto.commit": False,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    try:
        hw = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in partitions}
        out: dict[int, list[tuple[int, str]]] = {p: [] for p in partitions}
        todo = {p for p in partitions if hw[p] > 0}
        c.assign([TopicPartition(topic, p, 0) for p in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF and m.offset() >= hw[m.partition()]:
                    todo.discard(m.partition())
                continue
            out[m.partition()].append((m.offset(), m.value().decode()))
            if m.offset() + 1 >= hw[m.partition()]:
                todo.discard(m.partition())
        assert not todo, f"could not read {topic} {sorted(todo)} up to {hw} within {timeout}s"
        return out
    finally:
        c.close()


def test_rf3_topic_lists_replicas_and_isr(cluster3):
    c = cluster3
    topic = unique_topic("rf3")
    create_rf3(c, topic)
    a = AdminClient({"bootstrap.servers": c.bootstrap()})
    cfg = a.describe_configs([ConfigResource("topic", topic)])
    (res,) = cfg.values()
    assert res.result(20)["min.insync.replicas"].value == "2"
    leaders = set()
    for b in c.nodes:
        md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(topic, timeout=10)
        for p in md.topics[topic].partitions.values():
            assert sorted(p.replicas) == [1, 2, 3], p
            assert sorted(p.isrs) == [1, 2, 3], p
            assert p.leader in p.isrs
            leaders.add(p.leader)
        out = run_kcat(["-b", b.bootstrap, "-L", "-t", topic]).stdout.decode()
        for pid in range(PARTITIONS):
            m = re.search(rf"partition {pid}, leader (\d+), replicas: ([\d,]+), isrs: ([\d,]+)", out)
            assert m, out
            assert sorted(int(x) for x in m.group(2).split(",")) == [1, 2, 3], out
            assert sorted(int(x) for x in m.group(3).split(",")) == [1, 2, 3], out
    assert len(leaders) > 1, f"leaders not spread: {leaders}"


def test_acks_all_survives_leader_kill(cluster3):
    c = cluster3
    topic = unique_topic("kill")
    create_rf3(c, topic)
    p = producer(c.bootstrap())
    d = produce_all(p, topic, [f"a-{i}" for i in range(300)])
    assert not d.err, d.err
    victim = c.node(c.leader_of(topic, 0))
    led = [q for q, ps in c.partitions(topic).items() if ps.leader == victim.node_id]
    victim.kill9()
    d = produce_all(p, topic, [f"b-{i}" for i in range(300)], d=d)
    assert not d.err, {k: v.str() for k, v in list(d.err.items())[:5]}
    for q in led:
        new_leader = c.leader_of(topic, q)
        assert new_leader != victim.node_id and new_leader > 0, (q, new_leader)
    got = read_partitions(c.bootstrap(c.up()), topic, list(range(PARTITIONS)))
    values = [v for rs in got.values() for _, v in rs]
    assert sorted(values) == sorted(d.ok), "every acknowledged value exactly once, nothing else"
    for part, rs in got.items():
        for off, v in rs:
            assert d.ok[v] == (part, off), (v, d.ok[v], part, off)
    # the victim comes back and catches up with what it missed
    victim.start()
    c.wait_healthy([topic], {topic: PARTITIONS}, timeout=45, want_isr=3)
    p.flush(5)


def test_two_of_three_down_not_enough_replicas(tmp_path, request):
    """One dedicated controller and three brokers, so that two brokers can die
    while the controller fences them and shrinks the ISR: acks=all is then refused
    with NOT_ENOUGH_REPLICAS, acks=1 still works on the live leader, and both come
    back when the brokers return."""
    c = Cluster(tmp_path, 3, dedicated_controller=True)
    request.node._klamm_brokers = c.all_processes()
    try:
        c.start()
        topic = unique_topic("minisr")
        create_rf3(c, topic)
        survivor = c.node(c.leader_of(topic, 0))
        dead = [b for b in c.nodes if b is not survivor]
        for b in dead:
            b.kill9()
        wait_until(lambda: (lambda ps: ps[0].leader == survivor.node_id and list(ps[0].isr) == [survivor.node_id])(
            survivor.partitions(topic)), timeout=SESSION_TIMEOUT_MS / 1000 + 20,
            what="the ISR of partition 0 to shrink to the survivor")

        # acks=all: refused. Without retries librdkafka reports the broker's error as is.
        plain = Producer({"bootstrap.servers": survivor.bootstrap, "acks": "all", "retries": 0,
                          "message.timeout.ms": 10000})
        d = produce_all(plain, topic, ["nope-1", "nope-2"], partition=0, flush_s=20)
        assert not d.ok, d.ok
        md = survivor.metadata([topic])
        assert {e.code() for e in d.err.values()} == {KafkaError.NOT_ENOUGH_REPLICAS}, \
            (f"{ {v: e.str() for v, e in d.err.items()} }; now: brokers {sorted(b[0] for b in md.brokers)}, "
             f"isr {md.topics[topic].partitions[0].isr} (see test_stopped_follower_stays_out_of_the_isr)")
        # An idempotent producer retries until message.timeout.ms; what does it report?
        idem = producer(survivor.bootstrap, **{"message.timeout.ms": 6000})
        d = produce_all(idem, topic, ["nope-idem"], partition=0, flush_s=20)
        assert not d.ok, d.ok
        err = d.err["nope-idem"]
        assert err.code() in (KafkaError.NOT_ENOUGH_REPLICAS, KafkaError._MSG_TIMED_OUT), err
        print(f"idempotent producer with ISR < min.insync.replicas reports: {err.name()}: {err.str()}")

        # acks=1 on the live leader still works
        one = Producer({"bootstrap.servers": survivor.bootstrap, "acks": 1, "message.timeout.ms": 10000})
        d = produce_all(one, topic, ["one-1", "one-2"], partition=0, flush_s=20)
        assert not d.err and len(d.ok) == 2, d.err

        # everything recovers when the brokers return
        Cluster.start_nodes(dead)
        c.wait_healthy([topic], {topic: PARTITIONS}, timeout=45, want_isr=3)
        p = producer(c.bootstrap())
        d = produce_all(p, topic, [f"back-{i}" for i in range(30)])
        assert not d.err and len(d.ok) == 30, d.err
        got = [v for _, v in read_partitions(c.bootstrap(), topic, [0])[0]]
        assert "one-1" in got and "one-2" in got
        assert "nope-1" not in got and "nope-2" not in got, "refused before the append"
    finally:
        c.shutdown()


def test_two_of_three_combined_nodes_down(cluster3):
    """Three combined nodes: with two down the metadata quorum is gone too, so
    nobody shrinks the ISR; acks=all cannot be acknowledged (it times out or is
    refused) while acks=1 still succeeds on the surviving leader."""
    c = cluster3
    topic = unique_topic("minority")
    create_rf3(c, topic)
    survivor = c.node(c.leader_of(topic, 0))
    dead = [b for b in c.nodes if b is not survivor]
    for b in dead:
        b.kill9()
    p = producer(survivor.bootstrap, **{"message.timeout.ms": 6000})
    d = produce_all(p, topic, ["minority-1", "minority-2"], partition=0, flush_s=20)
    assert not d.ok, f"acknowledged with acks=all while 2 of 3 replicas were down: {d.ok}"
    print("acks=all with 2 of 3 combined nodes down reports:",
          {v: f"{e.name()}: {e.str()}" for v, e in d.err.items()})
    one = Producer({"bootstrap.servers": survivor.bootstrap, "acks": 1, "message.timeout.ms": 10000})
    d1 = produce_all(one, topic, ["minority-one"], partition=0, flush_s=20)
    assert not d1.err, {v: e.str() for v, e in d1.err.items()}
    Cluster.start_nodes(dead)
    c.wait_healthy([topic], {topic: PARTITIONS}, timeout=45, want_isr=3)
    d2 = produce_all(producer(c.bootstrap()), topic, [f"back-{i}" for i in range(30)])
    assert not d2.err and len(d2.ok) == 30, d2.err


def test_sigterm_moves_leaderships_before_exit(cluster3):
    c = cluster3
    topic = unique_topic("ctlshut")
    create_rf3(c, topic, partitions=6)
    ls = {pid: ps.leader for pid, ps in c.partitions(topic).items()}
    victim_id = max(set(ls.values()), key=lambda n: sum(1 for l in ls.values() if l == n))
    victim = c.node(victim_id)
    led = [pid for pid, l in ls.items() if l == victim_id]
    others = [b for b in c.nodes if b is not victim]

    # keep producing (acks=all) through the controlled shutdown: nothing may fail
    p = producer(c.bootstrap())
    d = Deliveries()
    stop = threading.Event()

    def produce_loop():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                p.produce(topic, f"s-{i}".encode(), partition=i % 6, on_delivery=d)
            except BufferError:
                pass
            p.poll(0.005)

    t = threading.Thread(target=produce_loop, daemon=True)
    t.start()
    time.sleep(1)
    moved_seen_at = None
    t0 = time.monotonic()
    victim.proc.send_signal(signal.SIGTERM)
    deadline = t0 + 30
    while victim.proc.poll() is None and time.monotonic() < deadline:
        try:
            view = others[0].partitions(topic, timeout=1)
            if view and all(view[pid].leader not in (victim_id, -1) for pid in led) and moved_seen_at is None:
                moved_seen_at = time.monotonic() - t0
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.02)
    rc = victim.stop(signal.SIGTERM, timeout=max(1, deadline - time.monotonic()))
    exited_at = time.monotonic() - t0
    assert not victim.last_stop_forced, "SIGTERM did not end the process within 30s"
    # Right after the exit, well before the session timeout could fence it, the
    # other nodes already name other leaders, all in the ISR.
    view = others[0].partitions(topic, timeout=3)
    checked_at = time.monotonic() - t0
    for pid in led:
        assert view[pid].leader not in (victim_id, -1), (pid, view[pid])
        assert view[pid].leader in view[pid].isr
    print(f"SIGTERM: leaders moved (seen while running: {moved_seen_at}); exit {rc} after {exited_at:.2f}s; "
          f"checked after {checked_at:.2f}s")
    assert moved_seen_at is not None or checked_at < SESSION_TIMEOUT_MS / 1000, \
        "leaderships were not moved by the controlled shutdown (only, perhaps, by fencing)"
    time.sleep(1)
    stop.set()
    t.join(10)
    assert p.flush(40) == 0
    assert not d.err, {v: e.str() for v, e in list(d.err.items())[:5]}
    assert d.ok
    victim.start()
    c.wait_healthy([topic], {topic: 6}, timeout=45, want_isr=3)


def test_consumer_group_across_coordinator_kill(cluster3):
    c = cluster3
    topic = unique_topic("grp")
    group = unique_topic("g")
    create_rf3(c, topic)
    p = producer(c.bootstrap())
    first = [f"x-{i}" for i in range(300)]
    assert not produce_all(p, topic, first).err

    def consumer() -> Consumer:
        return Consumer({"bootstrap.servers": c.bootstrap(), "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "session.timeout.ms": 10000,
                         "heartbeat.interval.ms": 1000, "socket.connection.setup.timeout.ms": 3000,
                         "reconnect.backoff.max.ms": 500, "topic.metadata.refresh.interval.ms": 2000})

    seen: list[str] = []
    cons = consumer()
    try:
        cons.subscribe([topic])

        def read_until(n):
            def step():
                m = cons.poll(0.5)
                if m is not None and m.error() is None:
                    seen.append(m.value().decode())
                return len(set(seen)) >= n
            return step

        wait_until(read_until(len(first)), timeout=40, interval=0, what="the group to read the first batch")
        cons.commit(asynchronous=False)
        committed_before = {tp.partition: tp.offset for tp in
                            cons.committed([TopicPartition(topic, q) for q in range(PARTITIONS)], timeout=10)}
        assert sum(committed_before.values()) == len(first), committed_before

        # kill the group's coordinator (or, failing to find it, the leader of partition 0)
        a = AdminClient({"bootstrap.servers": c.bootstrap()})
        try:
            desc = a.describe_consumer_groups([group])[group].result(10)
            victim = c.node(desc.coordinator.id)
        except Exception:  # noqa: BLE001
            victim = c.node(c.leader_of(topic, 0))
        victim.kill9()
        live = c.bootstrap(c.up())
        second = [f"y-{i}" for i in range(300)]
        assert not produce_all(producer(live), topic, second).err
        wait_until(read_until(len(first) + len(second)), timeout=60, interval=0,
                   what="the group to keep consuming after the kill")

        def commit() -> bool:
            cons.commit(asynchronous=False)  # raises while the coordinator moves: retried
            return True

        wait_until(commit, timeout=30, what="a commit after the kill")
    finally:
        cons.close()
    assert set(seen) == set(first) | set(second)

    # the commits survive: a new member of the group starts at the end and reads nothing old
    fresh = Consumer({"bootstrap.servers": c.bootstrap(c.up()), "group.id": group, "enable.auto.commit": False})
    try:
        committed = {tp.partition: tp.offset for tp in
                     fresh.committed([TopicPartition(topic, q) for q in range(PARTITIONS)], timeout=20)}
    finally:
        fresh.close()
    assert sum(committed.values()) == 600, committed
    for q in range(PARTITIONS):
        assert committed[q] >= committed_before[q]
    victim.start()
    c.wait_healthy([topic], {topic: PARTITIONS}, timeout=45, want_isr=3)


def test_restarted_node_rejoins_isr(cluster3):
    c = cluster3
    topic = unique_topic("rejoin")
    create_rf3(c, topic)
    p = producer(c.bootstrap())
    assert not produce_all(p, topic, [f"r-{i}" for i in range(200)]).err
    victim = c.node(3)
    victim.kill9()
    # fenced after the session timeout: out of every ISR, leaders elsewhere
    wait_until(lambda: all(3 not in ps.isr and ps.leader in (1, 2) for ps in c.partitions(topic).values()),
               timeout=SESSION_TIMEOUT_MS / 1000 + 20, what="node 3 to leave the ISRs")
    assert not produce_all(p, topic, [f"s-{i}" for i in range(500)]).err  # it must catch up with these
    victim.start()
    c.wait_healthy([topic], {topic: PARTITIONS}, timeout=45, want_isr=3)
    # its copy holds everything below the high watermark
    got = read_partitions(c.bootstrap(), topic, list(range(PARTITIONS)))
    for q, rs in got.items():
        hw = rs[-1][0] + 1
        def caught_up():
            batches = read_segments(victim.partition_dir(topic, q))
            return batches and batches[-1].last_offset + 1 >= hw
        wait_until(caught_up, timeout=20, what=f"node 3's copy of partition {q} to reach {hw}")
        disk = {off: v.decode() for b in read_segments(victim.partition_dir(topic, q)) for off, v in b.records}
        assert all(disk.get(off) == v for off, v in rs), f"node 3's copy of partition {q} differs"


def test_high_watermark_survives_restart_of_last_isr_member(tmp_path, request):
    """Dedicated controller + 3 brokers. 1000 records acknowledged with acks=all; the
    two followers stop (controlled shutdown) and fall behind (one more record with
    acks=1), so the leader is the whole ISR, below min.insync.replicas. It is killed
    and restarts alone. What was committed must stay visible: consumers read the 1000
    records, and the high watermark (ListOffsets latest) never goes back. Alone below
    min.insync.replicas the leader cannot move its high watermark up to where its new
    epoch began (KIP-966), so, as Kafka, it answers the retriable OFFSET_NOT_AVAILABLE
    rather than a stale end until a follower is back."""
    c = Cluster(tmp_path, 3, dedicated_controller=True)
    request.node._klamm_brokers = c.all_processes()
    try:
        c.start()
        topic = unique_topic("hwkeep")
        create_rf3(c, topic, partitions=1)
        assert not produce_all(producer(c.bootstrap()), topic, [f"h-{i}" for i in range(1000)], partition=0).err
        leader = c.node(c.leader_of(topic, 0))
        cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": unique_topic("g")})
        try:
            assert cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1] == 1000
        finally:
            cons.close()
        one = Producer({"bootstrap.servers": leader.bootstrap, "acks": 1, "message.timeout.ms": 10000})
        for b in c.nodes:
            if b is not leader:
                b.terminate()
                assert not produce_all(one, topic, [f"behind-{b.node_id}"], partition=0).err
        wait_until(lambda: list(leader.partitions(topic)[0].isr) == [leader.node_id], timeout=20,
                   what="the ISR to shrink to the leader")
        cons = Consumer({"bootstrap.servers": leader.bootstrap, "group.id": unique_topic("g")})
        try:
            committed = cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
        finally:
            cons.close()
        assert committed >= 1000
        # Past the periodic high-watermark checkpoint (replica.high.watermark.checkpoint.interval.ms,
        # 5 s as in Kafka): the kill below must not lose what the checkpoint holds.
        time.sleep(6)
        leader.kill9()
        leader.start()
        wait_until(lambda: leader.partitions(topic)[0].leader == leader.node_id, timeout=20,
                   what="the restarted node to lead again")
        cons = Consumer({"bootstrap.servers": leader.bootstrap, "group.id": unique_topic("g"),
                         "enable.auto.commit": False})
        try:
            def latest() -> int | None:
                try:
                    return cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=5, cached=False)[1]
                except KafkaException as e:
                    assert e.args[0].code() == KafkaError.OFFSET_NOT_AVAILABLE, e
                    return None
            # Its log ends past the committed end (the last acks=1 record), where its new
            # epoch began: every answer while it is alone is OFFSET_NOT_AVAILABLE.
            for _ in range(5):
                hw = latest()
                assert hw is None, f"answered {hw} (committed {committed}) while the end is not known"
                time.sleep(0.2)
            got = consume(leader, topic, 0, 0, committed, timeout=20)
            assert [g.value.decode() for g in got][:1000] == [f"h-{i}" for i in range(1000)]
            # A follower back in the ISR: the high watermark passes the epoch start, the end is known.
            follower = next(b for b in c.nodes if b is not leader)
            follower.start()
            hw = wait_until(latest, timeout=40, what="a known high watermark with a follower back")
            assert hw >= committed, f"high watermark went back from {committed} to {hw}"
            got = read_partitions(leader.bootstrap, topic, [0], timeout=20)[0]
            assert [v for _, v in got][:1000] == [f"h-{i}" for i in range(1000)] and len(got) == hw
        finally:
            cons.close()
    finally:
        c.shutdown()


def test_stopped_follower_stays_out_of_the_isr(cluster3):
    """An idle partition's leader must not put a stopped (fenced) follower back into
    the ISR just because its last log end offset equals the leader's (Kafka's KIP-841:
    only live brokers may join an ISR)."""
    c = cluster3
    topic = unique_topic("isrout")
    create_rf3(c, topic, partitions=1)
    assert not produce_all(producer(c.bootstrap()), topic, [f"i-{i}" for i in range(100)], partition=0).err
    leader = c.node(c.leader_of(topic, 0))
    victim = next(b for b in c.nodes if b is not leader)
    victim.terminate()
    seen = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        md = leader.metadata([topic])
        seen.append((sorted(b[0] for b in md.brokers), list(md.topics[topic].partitions[0].isr)))
        time.sleep(0.1)
    bad = [s for s in seen if victim.node_id in s[1]]
    assert not bad, f"node {victim.node_id} is stopped but in the ISR: (brokers, isr) = {bad[-1]}"


def test_paused_broker_is_unfenced_after_resume(cluster3):
    """SIGSTOP a node past the session timeout (it is fenced, its leaderships move),
    SIGCONT it: it must come back as a broker (Metadata lists it) and rejoin the ISRs."""
    c = cluster3
    topic = unique_topic("unfence")
    create_rf3(c, topic)
    victim = c.node(2)
    victim.pause()
    try:
        wait_until(lambda: 2 not in [b[0] for b in c.node(1).metadata([topic]).brokers],
                   timeout=SESSION_TIMEOUT_MS / 1000 + 10, what="node 2 to be fenced")
    finally:
        victim.resume()
    c.wait_healthy([topic], {topic: PARTITIONS}, timeout=30, want_isr=3)
