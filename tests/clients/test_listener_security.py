"""Secured listeners are refused at start, never served as plaintext.

Klamm has no TLS or SASL yet. A listener whose security protocol is SSL,
SASL_SSL or SASL_PLAINTEXT (by its name, or by a custom name mapped in
listener.security.protocol.map), Kafka or controller listener, must stop
`klamm` at start with a message naming the listener and its protocol, and its
port must never accept a connection.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from conftest import HOST, Broker, free_port

EXIT_TIMEOUT_S = 30.0


def run_refused(tmp_path, overrides: dict[str, str], ports: list[int]) -> str:
    """Starts klamm with `overrides`, watching `ports` until it exits; returns its output.

    Fails if it does not exit non-zero within EXIT_TIMEOUT_S or if any port
    accepted a connection meanwhile."""
    b = Broker(tmp_path / "refused", overrides)
    b.port, b.controller_port = ports[0], ports[-1]
    log = tmp_path / "refused.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(b.argv(), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=b.workdir)
    served = []
    try:
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            for port in ports:
                try:
                    with socket.create_connection((HOST, port), timeout=0.2):
                        served.append(port)
                except OSError:
                    pass
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
            pytest.fail(f"klamm did not exit within {EXIT_TIMEOUT_S}s:\n{log.read_text()}")
    text = log.read_text(errors="replace")
    assert proc.returncode != 0, text
    assert not served, f"ports {served} accepted connections:\n{text}"
    return text


def refused_message(listener: str, protocol: str) -> str:
    return (f"listener {listener} uses security protocol {protocol}, which Klamm does not "
            f"implement yet; it refuses to serve a secured listener as plaintext")


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL", "SASL_PLAINTEXT"])
def test_secured_kafka_listener_is_refused(tmp_path, protocol):
    p, c = free_port(), free_port()
    text = run_refused(tmp_path, {
        "listeners": f"{protocol}://{HOST}:{p},CONTROLLER://{HOST}:{c}",
        "advertised.listeners": f"{protocol}://{HOST}:{p}",
        "inter.broker.listener.name": protocol,
    }, [p, c])
    assert refused_message(protocol, protocol) in text, text


def test_custom_listener_mapped_to_ssl_is_refused(tmp_path):
    p, e, c = free_port(), free_port(), free_port()
    text = run_refused(tmp_path, {
        "listeners": f"PLAINTEXT://{HOST}:{p},EXTERNAL://{HOST}:{e},CONTROLLER://{HOST}:{c}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{p},EXTERNAL://{HOST}:{e}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,EXTERNAL:SSL,CONTROLLER:PLAINTEXT",
    }, [p, e, c])
    assert refused_message("EXTERNAL", "SSL") in text, text


def test_secured_controller_listener_is_refused(tmp_path):
    p, c = free_port(), free_port()
    text = run_refused(tmp_path, {
        "listeners": f"PLAINTEXT://{HOST}:{p},CONTROLLER://{HOST}:{c}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_SSL",
    }, [p, c])
    assert refused_message("CONTROLLER", "SASL_SSL") in text, text
