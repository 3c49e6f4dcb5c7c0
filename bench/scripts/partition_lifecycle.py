#!/usr/bin/env python3
"""Partition lifecycle bench (issue 17): how long a single Klamm node takes to
create a topic of N partitions, to come back after a clean stop, and to come
back after `kill -9`, each until Metadata shows a leader for every partition.

    tests/.venv/bin/python bench/scripts/partition_lifecycle.py \
        --bin target/release/klamm --partitions 1000 [--json out.json]

Uses confluent-kafka (the tests' venv has it). Loopback only; its own ports and
a scratch folder (removed at the end unless --keep); ends only the broker it
started. Figures go to bench/RESULTS.md; compare binaries in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka.admin import AdminClient, NewTopic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, binary: str, workdir: str):
        self.binary, self.workdir = binary, workdir
        self.port, self.cport = free_port(), free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [self.binary,
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.cport}",
                "--override", f"controller.quorum.voters=1@127.0.0.1:{self.cport}",
                "--override", f"log.dirs={self.workdir}/data"]
        with open(f"{self.workdir}/klamm.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": f"127.0.0.1:{self.port}", "log_level": 0})


def wait_all_leaders(node: Node, topic: str, n: int, deadline_s: float) -> float:
    """Seconds from now until Metadata shows a leader for all n partitions."""
    t0 = time.monotonic()
    admin = node.admin()
    while time.monotonic() - t0 < deadline_s:
        if node.proc.poll() is not None:
            raise RuntimeError(f"klamm exited with {node.proc.returncode}")
        try:
            md = admin.list_topics(topic, timeout=10)
            t = md.topics.get(topic)
            if t is not None and t.error is None and len(t.partitions) == n and all(p.leader >= 0 for p in t.partitions.values()):
                return time.monotonic() - t0
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"not all {n} partitions had a leader within {deadline_s}s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--deadline", type=float, default=900.0, help="seconds allowed per phase")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    n = a.partitions
    workdir = tempfile.mkdtemp(prefix="klamm-lifecycle-")
    node = Node(a.bin, workdir)
    out = {"binary": a.bin, "partitions": n}
    try:
        node.start()
        admin = node.admin()
        # The node is up once it answers Metadata.
        t_up = time.monotonic()
        while True:
            try:
                admin.list_topics(timeout=5)
                break
            except Exception:
                if time.monotonic() - t_up > 60:
                    raise
                time.sleep(0.1)
        t0 = time.monotonic()
        admin.create_topics([NewTopic("lifecycle", n, 1)], operation_timeout=a.deadline, request_timeout=a.deadline)["lifecycle"].result(a.deadline)
        out["create_s"] = time.monotonic() - t0
        out["create_until_leaders_s"] = out["create_s"] + wait_all_leaders(node, "lifecycle", n, a.deadline)
        for phase, sig in (("clean_restart_s", signal.SIGTERM), ("kill9_restart_s", signal.SIGKILL)):
            node.stop(sig)
            t0 = time.monotonic()
            node.start()
            wait_all_leaders(node, "lifecycle", n, a.deadline)
            out[phase] = time.monotonic() - t0
        node.stop(signal.SIGTERM)
    finally:
        node.stop(signal.SIGKILL)
        if a.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
