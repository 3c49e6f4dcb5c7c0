"""Secured listeners are served as configured, or refused at start — never served as plaintext.

SSL, SASL_SSL and SASL_PLAINTEXT client listeners are served (tests/clients/test_security.py
covers them with stock clients). What Klamm does not build must stop `klamm` at start with a
message naming the listener, and no port may accept a connection: a secured controller
listener (connections between nodes are plaintext), a JKS keystore, a SASL mechanism other
than PLAIN / SCRAM, a TLS listener without a keystore.
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


@pytest.mark.parametrize("protocol,extra,message", [
    ("SSL", {}, "listener SSL: ssl.keystore.type: JKS keystores are not supported"),
    ("SSL", {"ssl.keystore.type": "PEM"}, "listener SSL: ssl.keystore.location: a TLS listener needs"),
    ("SASL_PLAINTEXT", {}, 'listener SASL_PLAINTEXT: sasl.enabled.mechanisms: SASL mechanism "GSSAPI" is not supported'),
    ("SASL_PLAINTEXT", {"sasl.enabled.mechanisms": "PLAIN,OAUTHBEARER"}, '"OAUTHBEARER" is not supported'),
])
def test_unsupported_security_settings_are_refused(tmp_path, protocol, extra, message):
    p, c = free_port(), free_port()
    text = run_refused(tmp_path, {
        "listeners": f"PLAINTEXT://{HOST}:{p},{protocol}://{HOST}:{free_port()},CONTROLLER://{HOST}:{c}",
        **extra,
    }, [p, c])
    assert message in text, text


def test_custom_listener_mapped_to_ssl_without_a_keystore_is_refused(tmp_path):
    p, e, c = free_port(), free_port(), free_port()
    text = run_refused(tmp_path, {
        "listeners": f"PLAINTEXT://{HOST}:{p},EXTERNAL://{HOST}:{e},CONTROLLER://{HOST}:{c}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{p},EXTERNAL://{HOST}:{e}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,EXTERNAL:SSL,CONTROLLER:PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "listener.name.external.ssl.keystore.location": str(tmp_path / "missing.pem"),
    }, [p, e, c])
    assert "missing.pem" in text, text


def test_secured_controller_listener_is_refused(tmp_path):
    p, c = free_port(), free_port()
    text = run_refused(tmp_path, {
        "listeners": f"PLAINTEXT://{HOST}:{p},CONTROLLER://{HOST}:{c}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_SSL",
    }, [p, c])
    assert "controller listener CONTROLLER uses security protocol SASL_SSL" in text, text
