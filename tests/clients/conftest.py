"""Fixtures for the client-compatibility suite.

Every test gets its own klamm process: its own two loopback ports (Kafka and
controller listeners), its own data folder under the test's tmp_path and its
own log file.  Tests can therefore run in parallel.  The broker binary comes
from $KLAMM_BIN (tests/run.sh sets it to target/release/klamm).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import kafka_wire as wire

REPO = Path(__file__).resolve().parents[2]
CLIENTS_DIR = Path(__file__).resolve().parent
NODE_DIR = CLIENTS_DIR / "node"
HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 60


def klamm_bin() -> Path:
    p = Path(os.environ.get("KLAMM_BIN") or REPO / "target" / "release" / "klamm")
    if not p.is_file() or not os.access(p, os.X_OK):
        pytest.fail(f"broker binary not found or not executable: {p} "
                    "(build it with `cargo build --release -p klamm-broker` or set KLAMM_BIN)")
    return p


def free_port() -> int:
    """A port that was free a moment ago: bind 127.0.0.1:0, read it, close."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class BrokerStartError(Exception):
    pass


# Every broker process this session started, so none outlives pytest even when
# it is interrupted (SIGTERM from tests/run.sh's time limit, Ctrl-C).
_LIVE: set["Broker"] = set()


def _kill_live_brokers() -> None:
    for b in list(_LIVE):
        b._kill_hard()


atexit.register(_kill_live_brokers)


def _on_sigterm(signum, frame):
    _kill_live_brokers()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)


class Broker:
    """One klamm process under test (combined broker+controller, node id 1)."""

    def __init__(self, workdir: Path, overrides: dict[str, str] | None = None, name: str = "klamm"):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = workdir / "data"
        self.log_path = workdir / f"{name}.log"
        self.overrides = dict(overrides or {})
        self.port: int | None = None
        self.controller_port: int | None = None
        self.http_port: int | None = None  # klamm.http.listener (/metrics, /health, /ready, /)
        self.registry_port: int | None = None  # klamm.schema.registry.listener
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.last_stop_forced = False  # True when stop() had to fall back to SIGKILL

    # -- addresses ---------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def http_url(self) -> str:
        """Base URL of the ops HTTP listener (klamm.http.listener)."""
        return f"http://{HOST}:{self.http_port}"

    @property
    def registry_url(self) -> str:
        """Base URL of the schema registry (klamm.schema.registry.listener)."""
        return f"http://{HOST}:{self.registry_port}"

    def argv(self) -> list[str]:
        p, c = self.port, self.controller_port
        if self.http_port is None:  # picked with the other ports; kept across restarts
            self.http_port = free_port()
            while self.http_port in (p, c):
                self.http_port = free_port()
        if self.registry_port is None:
            self.registry_port = free_port()
            while self.registry_port in (p, c, self.http_port):
                self.registry_port = free_port()
        base = {
            "node.id": "1",
            "process.roles": "broker,controller",
            "listeners": f"PLAINTEXT://{HOST}:{p},CONTROLLER://{HOST}:{c}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{p}",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.voters": f"1@{HOST}:{c}",
            "log.dirs": str(self.data_dir),
            "klamm.http.listener": f"{HOST}:{self.http_port}",
            "klamm.schema.registry.listener": f"{HOST}:{self.registry_port}",
        }
        base.update(self.overrides)
        argv = [str(klamm_bin())]
        for k, v in base.items():
            argv += ["--override", f"{k}={v}"]
        return argv

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "Broker":
        """Starts the broker. On the first start picks free ports (retrying on a
        bind failure); restarts keep the same ports and data folder."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        keep_ports = self.port is not None
        last_err = None
        for attempt in range(4):
            if not keep_ports:
                self.port, self.controller_port = free_port(), free_port()
                while self.controller_port == self.port:
                    self.controller_port = free_port()
                self.http_port = None
                self.registry_port = None
            try:
                self._spawn_and_wait()
                self.starts += 1
                return self
            except BrokerStartError as e:
                last_err = e
                self._kill_hard()
                if "in use" not in self.log_tail(20).lower():
                    break
                time.sleep(0.5 * (attempt + 1))
        raise BrokerStartError(f"{last_err}\n--- broker log tail ---\n{self.log_tail()}")

    def _spawn_and_wait(self) -> None:
        self._spawn()
        self._wait_ready(time.monotonic() + READY_TIMEOUT_S)

    def _spawn(self) -> None:
        """Starts the process, its output appended to the log, and registers it for cleanup."""
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts + 1}: {' '.join(self.argv())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, env=self.environment(),
            )
        _LIVE.add(self)

    def environment(self) -> dict[str, str]:
        """The process environment: this one without KAFKA_* variables (klamm
        reads those as properties, which would make tests depend on the shell)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env["RUST_BACKTRACE"] = "1"
        return env

    def _wait_listening(self, port: int, deadline: float) -> None:
        """Until `port` accepts connections; BrokerStartError if the process exits or at the deadline."""
        while True:
            if self.proc.poll() is not None:
                raise BrokerStartError(f"klamm exited with code {self.proc.returncode} during start")
            try:
                with socket.create_connection((HOST, port), timeout=1.0):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BrokerStartError(f"klamm did not listen on {HOST}:{port} within {READY_TIMEOUT_S}s")
            time.sleep(0.1)

    def _wait_ready(self, deadline: float) -> None:
        """Ready: 1. the Kafka port accepts connections, 2. it answers ApiVersions v0."""
        self._wait_listening(self.port, deadline)
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerStartError(f"klamm exited with code {self.proc.returncode} during start")
            try:
                with wire.Conn(HOST, self.port, timeout=5.0) as c:
                    wire.api_versions(c, 0)
                    return
            except (OSError, wire.ConnectionClosed, ValueError, AssertionError) as e:
                last = e
                time.sleep(0.2)
        raise BrokerStartError(f"klamm listens on {self.bootstrap} but did not answer ApiVersions: {last!r}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Stops the process we started, by PID: `sig`, then SIGKILL after `timeout`."""
        self.last_stop_forced = False
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        try:
            self.proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.last_stop_forced = True
            self._kill_hard()
            return self.proc.returncode
        finally:
            _LIVE.discard(self)

    def _kill_hard(self) -> None:
        _LIVE.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def restart(self, sig: int = signal.SIGTERM) -> "Broker":
        """Stops with `sig` (SIGTERM or SIGKILL) and starts again on the same ports and data."""
        self.stop(sig)
        return self.start()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = LOG_TAIL_LINES) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-n:])

    # -- helpers -----------------------------------------------------------
    def conn(self, timeout: float = 10.0) -> wire.Conn:
        return wire.Conn(HOST, self.port, timeout=timeout)

    def api_versions(self) -> dict[int, tuple[int, int]]:
        with self.conn() as c:
            return wire.api_versions(c, 0).api_keys

    def __repr__(self) -> str:
        return f"Broker({self.bootstrap}, data={self.data_dir})"


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture
def broker_factory(tmp_path, request):
    """Starts brokers with extra `--override`s: broker_factory(num_partitions='3', ...).

    Keyword names use '_' for '.', or pass a dict as the first argument.
    """
    started: list[Broker] = []
    request.node._klamm_brokers = started

    def make(overrides: dict[str, str] | None = None, **kw) -> Broker:
        ov = dict(overrides or {})
        ov.update({k.replace("_", "."): str(v) for k, v in kw.items()})
        b = Broker(tmp_path / f"broker{len(started)}", ov)
        started.append(b)
        b.start()
        return b

    yield make
    for b in started:
        b.stop(signal.SIGTERM)


@pytest.fixture
def broker(broker_factory) -> Broker:
    """A fresh single-node klamm with default settings."""
    return broker_factory()


@pytest.fixture
def topic() -> str:
    return unique_topic()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for b in getattr(item, "_klamm_brokers", []):
            rep.sections.append((f"klamm log {b.log_path} (tail)", b.log_tail()))


# --------------------------------------------------------------------------
# client helpers shared by test files


def run_kcat(args: list[str], input: bytes | None = None, timeout: float = 60.0,
             check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kcat {' '.join(args)} exited {proc.returncode}\n"
                             f"stderr:\n{proc.stderr.decode(errors='replace')[-4000:]}")
    return proc


def run_kjs(broker: Broker, steps: list[dict], timeout: float = 120.0) -> list[dict]:
    """Runs tests/clients/node/kjs.js with a list of steps; returns one result per step.

    Each result is {"ok": True, "result": ...} or {"ok": False, "error": {...}}.
    """
    prog = {"brokers": [broker.bootstrap], "steps": steps}
    proc = subprocess.run(["node", str(NODE_DIR / "kjs.js")], input=json.dumps(prog).encode(),
                          capture_output=True, timeout=timeout, cwd=NODE_DIR)
    if proc.returncode != 0:
        raise AssertionError(f"kjs.js exited {proc.returncode}\nstdout:\n{proc.stdout.decode()[-3000:]}"
                             f"\nstderr:\n{proc.stderr.decode(errors='replace')[-4000:]}")
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"kjs.js printed no JSON ({e}):\n{proc.stdout.decode()[-3000:]}"
                             f"\nstderr:\n{proc.stderr.decode(errors='replace')[-4000:]}")
    assert len(out["results"]) == len(steps), out
    return out["results"]


def ok(result: dict):
    """Unwraps a kjs step result, failing the test with the client's error."""
    assert result["ok"], f"kafkajs step failed: {result.get('error')}"
    return result["result"]


def wait_until(fn, timeout: float = 20.0, interval: float = 0.2, what: str = "condition"):
    """Polls fn() until it returns a truthy value (bounded); returns that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - remembered and reported below
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
