"""A real N-node klamm cluster (combined broker+controller nodes) for the
replication and chaos tests.

`Cluster` starts N `klamm` processes (conftest's `Broker`, each with its own
ports, data folder and log under the test's tmp_path), one metadata quorum over
loopback, and offers what fault injection needs: kill -9, SIGSTOP/SIGCONT,
SIGTERM, restart on the same ports and data, and per-node views of the
partition metadata (leader, replicas, ISR) read with a raw Metadata v1 request
sent to *that* node, so a lagging or stale node is visible as such.

Every wait is bounded; only the processes started here are signalled, by PID.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import kafka_wire as wire
from conftest import HOST, Broker, free_port
from netproxy import Proxy

SESSION_TIMEOUT_MS = 2500
REPLICA_LAG_MS = 4000


def distinct_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


@dataclass(frozen=True)
class PartState:
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    error: int


class Node(Broker):
    """A cluster member: a Broker that also knows its node id and can be paused."""

    def __init__(self, node_id: int, *args, **kw):
        super().__init__(*args, **kw)
        self.node_id = node_id
        self.paused = False
        self.proxy: Proxy | None = None  # when set, the node advertises the proxy's port

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.proxy.port}" if self.proxy is not None else f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def is_up(self) -> bool:
        """Running and not paused: it can answer requests."""
        return self.is_running() and not self.paused

    def kill9(self) -> None:
        self.resume()  # a stopped process dies of SIGKILL too, but keep the flag right
        self.stop(signal.SIGKILL, timeout=10)

    def pause(self) -> None:
        assert self.is_running()
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused and self.is_running():
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def terminate(self, timeout: float = 20.0) -> tuple[int | None, float]:
        """SIGTERM (controlled shutdown); returns (exit code, seconds it took)."""
        self.resume()
        t0 = time.monotonic()
        rc = self.stop(signal.SIGTERM, timeout=timeout)
        return rc, time.monotonic() - t0

    def metadata(self, topics: list[str] | None, timeout: float = 3.0) -> wire.MetadataResponse:
        with wire.Conn(HOST, self.port, timeout=timeout) as c:
            return wire.metadata_v1(c, topics)

    def partitions(self, topic: str, timeout: float = 3.0) -> dict[int, PartState] | None:
        """This node's view of `topic` (None if the node does not know it)."""
        md = self.metadata([topic], timeout)
        t = md.topics.get(topic)
        if t is None or t.error_code != 0:
            return None
        return {p.index: PartState(p.leader, tuple(p.replicas), tuple(p.isr), p.error_code)
                for p in t.partitions}

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"


class ControllerNode(Node):
    """A `process.roles=controller` node: no Kafka listener, so it is ready once
    its controller port accepts connections."""

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.controller_port}"

    def argv(self) -> list[str]:
        argv = super().argv()
        i = next(i for i, a in enumerate(argv) if a.startswith("advertised.listeners="))
        return argv[:i - 1] + argv[i + 1:]  # no Kafka listener to advertise

    def _wait_ready(self, deadline: float) -> None:
        self._wait_listening(self.controller_port, deadline)


class Cluster:
    """`n` combined broker+controller nodes (node ids 1..n, all voters), or with
    `dedicated_controller` one `process.roles=controller` voter (node id 100,
    `self.controller`) and `n` broker-only nodes, so brokers can die without
    taking the metadata quorum down. With `proxied` every node advertises a
    netproxy.Proxy in front of its Kafka listener (for network cuts); the
    harness's own metadata views still go to the real listener."""

    def __init__(self, base: Path, n: int = 3, overrides: dict[str, str] | None = None,
                 dedicated_controller: bool = False, proxied: bool = False):
        ports = distinct_ports(2 * n + 1)
        kafka, ctrl = ports[:n], ports[n:2 * n]
        self.controller: ControllerNode | None = None
        if dedicated_controller:
            cport = ports[2 * n]
            voters = f"100@{HOST}:{cport}"
            self.controller = ControllerNode(100, base / "controller", {
                "node.id": "100",
                "process.roles": "controller",
                "listeners": f"CONTROLLER://{HOST}:{cport}",
                "controller.listener.names": "CONTROLLER",
                "controller.quorum.voters": voters,
                "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
                **(overrides or {}),
            }, name="klamm-controller")
            self.controller.port = self.controller.controller_port = cport
        else:
            voters = ",".join(f"{i + 1}@{HOST}:{ctrl[i]}" for i in range(n))
        self.nodes: list[Node] = []
        for i in range(n):
            if dedicated_controller:
                roles = {
                    "process.roles": "broker",
                    "listeners": f"PLAINTEXT://{HOST}:{kafka[i]}",
                    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                }
            else:
                roles = {
                    "process.roles": "broker,controller",
                    "listeners": f"PLAINTEXT://{HOST}:{kafka[i]},CONTROLLER://{HOST}:{ctrl[i]}",
                }
            proxy = Proxy(kafka[i]) if proxied else None
            ov = {
                "node.id": str(i + 1),
                **roles,
                "advertised.listeners": f"PLAINTEXT://{HOST}:{proxy.port if proxy else kafka[i]}",
                "controller.listener.names": "CONTROLLER",
                "controller.quorum.voters": voters,
                "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
                "replica.lag.time.max.ms": str(REPLICA_LAG_MS),
                "group.initial.rebalance.delay.ms": "0",
                "offsets.topic.replication.factor": "3",
                "offsets.topic.num.partitions": "3",
            }
            ov.update(overrides or {})
            b = Node(i + 1, base / f"node{i + 1}", ov, name=f"klamm{i + 1}")
            b.port, b.controller_port = kafka[i], ctrl[i]
            b.proxy = proxy
            self.nodes.append(b)

    # -- lifecycle ---------------------------------------------------------
    def all_processes(self) -> list[Node]:
        return self.nodes + ([self.controller] if self.controller is not None else [])

    def start(self) -> "Cluster":
        if self.controller is not None:
            self.controller.start()
        self.start_nodes(self.nodes)
        return self

    @staticmethod
    def start_nodes(nodes: list[Node]) -> None:
        """Starts (or restarts) nodes together: a voter may wait for a quorum while starting."""
        if len(nodes) == 1:
            nodes[0].start()
            return
        with ThreadPoolExecutor(len(nodes)) as pool:
            for f in [pool.submit(b.start) for b in nodes]:
                f.result()

    def shutdown(self) -> None:
        """Stops every node we started: resume paused ones, SIGTERM all at once
        (a lone survivor cannot hand its leaderships anywhere), SIGKILL stragglers."""
        for b in self.all_processes():
            b.resume()
            if b.proxy is not None:
                b.proxy.heal()
        for b in self.nodes:
            if b.is_running():
                try:
                    b.proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for b in self.all_processes():
            b.stop(signal.SIGTERM, timeout=15)
        for b in self.nodes:
            if b.proxy is not None:
                b.proxy.close()

    # -- lookups -----------------------------------------------------------
    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    def up(self) -> list[Node]:
        return [b for b in self.nodes if b.is_up()]

    def bootstrap(self, nodes: list[Node] | None = None) -> str:
        return ",".join(b.bootstrap for b in (nodes if nodes is not None else self.nodes))

    def ids(self) -> list[int]:
        return [b.node_id for b in self.nodes]

    def view(self, topic: str) -> dict[int, dict[int, PartState] | None | str]:
        """Every live node's view of `topic`: node id -> partitions, None, or an error string."""
        out: dict[int, dict[int, PartState] | None | str] = {}
        for b in self.up():
            try:
                out[b.node_id] = b.partitions(topic)
            except Exception as e:  # noqa: BLE001 - reported to the caller
                out[b.node_id] = f"error: {e!r}"
        return out

    def partitions(self, topic: str) -> dict[int, PartState]:
        """The view of the first live node that answers."""
        last = None
        for b in self.up():
            try:
                ps = b.partitions(topic)
                if ps is not None:
                    return ps
            except Exception as e:  # noqa: BLE001
                last = e
        raise AssertionError(f"no live node describes {topic}: {last!r}")

    def leader_of(self, topic: str, partition: int) -> int:
        return self.partitions(topic)[partition].leader

    def healthy(self, topics: list[str], partitions: dict[str, int], want_isr: int | None = None) -> str | None:
        """None if every node runs, every node lists every broker (none fenced), and
        every live node reports, for every partition of `topics`, a live leader and a
        full ISR (== replicas, and `want_isr` members if given) and all live nodes
        agree; otherwise a description of what is missing."""
        up_ids = {b.node_id for b in self.up()}
        if len(up_ids) != len(self.nodes):
            exited = {b.node_id: b.proc.returncode for b in self.nodes if b.proc is not None and b.proc.poll() is not None}
            return f"nodes down: {sorted(set(self.ids()) - up_ids)} (exit codes {exited})"
        # Metadata lists the unfenced brokers only: every node must be back in it.
        for b in self.up():
            listed = sorted(x[0] for x in b.metadata(None if not topics else topics[:1]).brokers)
            if listed != sorted(self.ids()):
                return f"node {b.node_id} lists brokers {listed} (fenced: {sorted(set(self.ids()) - set(listed))})"
        for topic in topics:
            views = self.view(topic)
            ref = None
            for nid, v in views.items():
                if not isinstance(v, dict):
                    return f"node {nid}: {topic}: {v}"
                if len(v) != partitions[topic]:
                    return f"node {nid}: {topic} has {len(v)} partitions"
                for pid, ps in sorted(v.items()):
                    if ps.leader < 0 or ps.leader not in up_ids:
                        return f"node {nid}: {topic}-{pid} leader {ps.leader}"
                    if sorted(ps.isr) != sorted(ps.replicas):
                        return f"node {nid}: {topic}-{pid} isr {list(ps.isr)} replicas {list(ps.replicas)}"
                    if want_isr is not None and len(ps.isr) != want_isr:
                        return f"node {nid}: {topic}-{pid} isr {list(ps.isr)}"
                    if ps.leader not in ps.isr:
                        return f"node {nid}: {topic}-{pid} leader {ps.leader} not in isr {list(ps.isr)}"
                slim = {pid: (ps.leader, sorted(ps.isr)) for pid, ps in v.items()}
                if ref is not None and slim != ref:
                    return f"nodes disagree on {topic}: {ref} vs node {nid}: {slim}"
                ref = slim
        return None

    def wait_healthy(self, topics: list[str], partitions: dict[str, int], timeout: float,
                     want_isr: int | None = None, stable: float = 0.6) -> float:
        """Waits (bounded) until healthy() holds for `stable` seconds in a row (so a
        restarted node's re-registration, which takes it out of the ISRs, cannot slip
        between two looks); returns the seconds until it first held, raises
        AssertionError with the last reason otherwise."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        why = "never checked"
        since = None
        while time.monotonic() < deadline:
            try:
                why = self.healthy(topics, partitions, want_isr)
            except Exception as e:  # noqa: BLE001
                why = f"error: {e!r}"
            now = time.monotonic()
            if why is None:
                since = now if since is None else since
                if now - since >= stable:
                    return since - t0
            else:
                since = None
            time.sleep(0.2)
        raise AssertionError(f"cluster not healthy after {timeout}s: {why}")

    def describe(self, topics: list[str]) -> str:
        """Every live node's Metadata view (unfenced brokers; leader/replicas/ISR per
        partition), for failure messages."""
        lines = []
        for b in self.nodes:
            if not b.is_up():
                lines.append(f"node {b.node_id}: {'paused' if b.paused else 'down'}")
                continue
            try:
                md = b.metadata(topics)
            except Exception as e:  # noqa: BLE001
                lines.append(f"node {b.node_id}: metadata failed: {e!r}")
                continue
            lines.append(f"node {b.node_id}: brokers {sorted(x[0] for x in md.brokers)}")
            for t in md.topics.values():
                for p in sorted(t.partitions, key=lambda p: p.index):
                    lines.append(f"  {t.name}-{p.index}: leader {p.leader} replicas {p.replicas} isr {p.isr}"
                                 f"{f' error {p.error_code}' if p.error_code else ''}")
        return "\n".join(lines)

    def log_tails(self, n: int = 80) -> str:
        return "\n".join(f"----- {b.log_path} (node {b.node_id}, last {n} lines) -----\n{b.log_tail(n)}"
                         for b in self.all_processes())


@pytest.fixture
def cluster3(tmp_path, request):
    """Three combined broker+controller nodes, started together; stopped after the test."""
    c = Cluster(tmp_path, 3)
    request.node._klamm_brokers = c.all_processes()
    try:
        c.start()
        yield c
    finally:
        c.shutdown()
