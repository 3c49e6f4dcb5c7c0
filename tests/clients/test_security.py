"""TLS, mTLS and SASL (PLAIN, SCRAM-SHA-256/512) through stock clients, and bad input.

One broker serves every protocol at once: PLAINTEXT (inter-broker and readiness), SSL,
MTLS (SSL with ssl.client.auth=required), SASL_PLAINTEXT and SASL_SSL. Certificates are made
by the openssl CLI in a temporary folder for this run (a CA, the broker's certificate, a client
certificate, one from another CA and an expired one); no key is committed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

import kafka_wire as wire
from conftest import HOST, Broker, BrokerStartError, free_port, unique_topic

ADMIN_PASSWORD = "admin-secret"
PLAIN_USERS = {"alice": "alice-secret", "admin": ADMIN_PASSWORD}
OP_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------
# Certificates (openssl CLI)

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
             cwd=d)


def _leaf(d: Path, ca: str, name: str, subject: str, ext: str, days: str = "2",
          not_after: str | None = None) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    (d / f"{name}.ext").write_text(ext)
    if not_after is None:
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", days, "-extfile", f"{name}.ext", cwd=d)
    else:
        # An expired certificate: `openssl ca` is the CLI way to set both validity bounds.
        (d / "index.txt").write_text("")
        (d / "ca.cnf").write_text(
            "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial.txt\n"
            "policy=p\ndefault_md=sha256\nunique_subject=no\n[p]\ncommonName=supplied\n")
        (d / "serial.txt").write_text("1000\n")
        _openssl("ca", "-batch", "-config", "ca.cnf", "-cert", f"{ca}.pem", "-keyfile", f"{ca}.key",
                 "-in", f"{name}.csr", "-out", f"{name}.pem", "-startdate", "20200101000000Z",
                 "-enddate", not_after, "-extfile", f"{name}.ext", "-notext", cwd=d)
    (d / f"{name}.bundle.pem").write_text((d / f"{name}.key").read_text() + (d / f"{name}.pem").read_text())


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    _ca(d, "ca")
    _ca(d, "otherca")
    _leaf(d, "ca", "server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    client_ext = "extendedKeyUsage=clientAuth\n"
    _leaf(d, "ca", "client", "/O=Orders/OU=Services/CN=order-service", client_ext)
    _leaf(d, "otherca", "stranger", "/CN=stranger", client_ext)
    _leaf(d, "ca", "expired", "/CN=expired", client_ext, not_after="20200102000000Z")
    return d


# --------------------------------------------------------------------------
# The broker

class SecureBroker(Broker):
    """A combined node with every protocol on its own port, and `--add-scram` for admin."""

    def __init__(self, workdir: Path, certs: Path, overrides: dict[str, str] | None = None):
        self.ports = {n: free_port() for n in ("SSL", "MTLS", "SASL_PLAINTEXT", "SASL_SSL")}
        jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                + " ".join(f'user_{u}="{p}"' for u, p in PLAIN_USERS.items()) + ";")
        extra = ",".join(f"{n}://{HOST}:{p}" for n, p in self.ports.items())
        self.extra_listeners = extra
        base = {
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,MTLS:SSL,"
                                              "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name": "PLAINTEXT",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(certs / "server.bundle.pem"),
            "listener.name.mtls.ssl.client.auth": "required",
            "listener.name.mtls.ssl.truststore.type": "PEM",
            "listener.name.mtls.ssl.truststore.location": str(certs / "ca.pem"),
            "listener.name.mtls.ssl.principal.mapping.rules": "RULE:^CN=([^,]*),.*$/$1/,DEFAULT",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
            "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
            "connection.failed.authentication.delay.ms": "50",
        }
        base.update(overrides or {})
        super().__init__(workdir, base)

    def argv(self) -> list[str]:
        argv = super().argv()
        # The listeners list names the base class's ports, known only now.
        for i, a in enumerate(argv):
            if a.startswith("listeners="):
                argv[i] = a + "," + self.extra_listeners
            if a.startswith("advertised.listeners="):
                argv[i] = a + "," + self.extra_listeners
        return argv + ["--add-scram", f"SCRAM-SHA-512=[name=admin,password={ADMIN_PASSWORD}]",
                       "--add-scram", f"SCRAM-SHA-256=[name=admin,password={ADMIN_PASSWORD}]"]

    def addr(self, name: str) -> str:
        return f"{HOST}:{self.ports[name]}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory, certs):
    b = SecureBroker(tmp_path_factory.mktemp("secure"), certs)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def client_conf(broker: SecureBroker, certs: Path, kind: str, **extra) -> dict:
    conf = {"bootstrap.servers": broker.addr(kind), "socket.timeout.ms": 10000,
            "message.timeout.ms": 15000, "broker.address.family": "v4"}
    if kind in ("SSL", "MTLS", "SASL_SSL"):
        conf.update({"security.protocol": "SASL_SSL" if kind == "SASL_SSL" else "SSL",
                     "ssl.ca.location": str(certs / "ca.pem"),
                     "ssl.endpoint.identification.algorithm": "https"})
    if kind == "SASL_PLAINTEXT":
        conf["security.protocol"] = "SASL_PLAINTEXT"
    conf.update(extra)
    return conf


def roundtrip(conf: dict, topic: str, n: int = 20) -> list[bytes]:
    """Produces n records and consumes them back with the same security settings."""
    p = Producer({**conf, "acks": "all"})
    for i in range(n):
        p.produce(topic, value=f"v{i}".encode(), key=f"k{i}".encode())
    assert p.flush(OP_TIMEOUT_S) == 0, "records not delivered"
    c = Consumer({**conf, "group.id": f"g-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + OP_TIMEOUT_S
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        c.close()
    return got


def refused_errors(conf: dict) -> str:
    """A client with `conf` gets no metadata; returns the errors librdkafka reported."""
    errors: list[str] = []
    p = Producer({**conf, "error_cb": lambda e: errors.append(str(e))})
    try:
        with pytest.raises(KafkaException):
            p.list_topics(timeout=6)
        for _ in range(10):
            if errors:
                break
            p.poll(0.3)
    finally:
        del p
    return " ".join(errors)


def expect_auth_failure(conf: dict, expected: str) -> str:
    """A client with `conf` is refused with an error naming `expected`."""
    text = refused_errors(conf)
    assert expected.lower() in text.lower(), text
    return text


# --------------------------------------------------------------------------
# Stock clients over each protocol

@pytest.mark.parametrize("kind", ["SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_confluent_roundtrip_over_each_protocol(broker, certs, kind):
    extra = {}
    if kind.startswith("SASL"):
        extra = {"sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret"}
    topic = unique_topic(kind.lower())
    assert sorted(roundtrip(client_conf(broker, certs, kind, **extra), topic)) == sorted(f"v{i}".encode() for i in range(20))


def test_mtls_client_certificate(broker, certs):
    conf = client_conf(broker, certs, "MTLS", **{"ssl.certificate.location": str(certs / "client.pem"),
                                                  "ssl.key.location": str(certs / "client.key")})
    assert len(roundtrip(conf, unique_topic("mtls"))) == 20


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_bootstrap_admin_creates_a_user_who_then_logs_in(broker, certs, mechanism):
    admin_conf = client_conf(broker, certs, "SASL_SSL", **{"sasl.mechanism": mechanism, "sasl.username": "admin",
                                                            "sasl.password": ADMIN_PASSWORD})
    admin = AdminClient(admin_conf)
    user = f"svc-{uuid.uuid4().hex[:6]}"
    m = ScramMechanism.SCRAM_SHA_256 if mechanism == "SCRAM-SHA-256" else ScramMechanism.SCRAM_SHA_512
    futures = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 8192), b"svc-secret")])
    for f in futures.values():
        f.result(timeout=OP_TIMEOUT_S)
    described = admin.describe_user_scram_credentials([user])
    infos = described[user].result(timeout=OP_TIMEOUT_S).scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == [(m, 8192)]
    conf = client_conf(broker, certs, "SASL_SSL", **{"sasl.mechanism": mechanism, "sasl.username": user,
                                                      "sasl.password": "svc-secret"})
    assert len(roundtrip(conf, unique_topic("scram"))) == 20
    expect_auth_failure({**conf, "sasl.password": "wrong"}, "Authentication failed")


def test_kcat_over_sasl_ssl_scram_and_mtls(broker, certs):
    topic = unique_topic("kcat")
    common = ["-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
              "-X", "sasl.username=admin", "-X", f"sasl.password={ADMIN_PASSWORD}",
              "-X", f"ssl.ca.location={certs / 'ca.pem'}", "-b", broker.addr("SASL_SSL")]
    produced = subprocess.run(["kcat", *common, "-P", "-t", topic], input=b"one\ntwo\n", timeout=60,
                              capture_output=True)
    assert produced.returncode == 0, produced.stderr.decode(errors="replace")
    out = subprocess.run(["kcat", *common, "-C", "-t", topic, "-o", "beginning", "-c", "2", "-e"],
                         check=True, timeout=60, capture_output=True).stdout
    assert out.split() == [b"one", b"two"]
    mtls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={certs / 'ca.pem'}",
            "-X", f"ssl.certificate.location={certs / 'client.pem'}", "-X", f"ssl.key.location={certs / 'client.key'}",
            "-b", broker.addr("MTLS")]
    out = subprocess.run(["kcat", *mtls, "-C", "-t", topic, "-o", "beginning", "-c", "2", "-e"],
                         check=True, timeout=60, capture_output=True).stdout
    assert out.split() == [b"one", b"two"]


def test_kafka_python_over_sasl_ssl_scram(broker, certs):
    from kafka import KafkaConsumer, KafkaProducer
    topic = unique_topic("kpy")
    common = dict(bootstrap_servers=broker.addr("SASL_SSL"), security_protocol="SASL_SSL",
                  sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="admin", sasl_plain_password=ADMIN_PASSWORD,
                  ssl_cafile=str(certs / "ca.pem"))
    p = KafkaProducer(acks="all", **common)
    for i in range(5):
        p.send(topic, f"m{i}".encode()).get(timeout=OP_TIMEOUT_S)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=15000, **common)
    got = [m.value for _, m in zip(range(5), c)]
    c.close()
    assert got == [f"m{i}".encode() for i in range(5)]


# --------------------------------------------------------------------------
# Bad input: Kafka's error or a closed connection, and the broker goes on serving

def still_serves(broker: SecureBroker, certs: Path) -> None:
    conf = client_conf(broker, certs, "SASL_PLAINTEXT", **{"sasl.mechanism": "PLAIN", "sasl.username": "alice",
                                                            "sasl.password": "alice-secret"})
    md = AdminClient(conf).list_topics(timeout=10)
    assert md.brokers


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("nobody", "pw")])
def test_wrong_password_and_unknown_user(broker, certs, user, password):
    for mechanism in ("PLAIN", "SCRAM-SHA-512"):
        conf = client_conf(broker, certs, "SASL_SSL", **{"sasl.mechanism": mechanism, "sasl.username": user,
                                                          "sasl.password": password})
        expect_auth_failure(conf, "Authentication failed")
    still_serves(broker, certs)


def test_unknown_mechanism_gets_unsupported_sasl_mechanism(broker):
    with wire.Conn(HOST, broker.ports["SASL_PLAINTEXT"]) as c:
        r = c.request(17, 1, wire.string("GSSAPI"))  # SaslHandshake v1
        assert r.i16() == 33  # UNSUPPORTED_SASL_MECHANISM
        assert r.array(lambda rr: rr.string()) == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        assert c.wait_closed(5) is None


@pytest.mark.parametrize("cert", [None, "stranger", "expired"])
def test_mtls_refuses_missing_foreign_and_expired_certificates(broker, certs, cert):
    extra = {} if cert is None else {"ssl.certificate.location": str(certs / f"{cert}.pem"),
                                     "ssl.key.location": str(certs / f"{cert}.key")}
    text = refused_errors(client_conf(broker, certs, "MTLS", **extra))
    assert "SSL" in text or "certificate" in text, text
    still_serves(broker, certs)


def test_plaintext_client_on_tls_port_and_tls_client_on_plaintext_port(broker, certs):
    with wire.Conn(HOST, broker.ports["SSL"]) as c:
        c.send_raw(wire.frame(wire.request_header(18, 0, 1)))
        assert c.wait_closed(10) is None, "a plaintext request on a TLS port must close the connection"
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with socket.create_connection((HOST, broker.port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, OSError)):
            with ctx.wrap_socket(raw, server_hostname="localhost"):
                pass
    still_serves(broker, certs)


def _handshake(c: wire.Conn, mechanism: str) -> None:
    r = c.request(17, 1, wire.string(mechanism))
    assert r.i16() == 0


def test_garbage_and_oversized_sasl_authenticate(broker, certs):
    for payload in (b"\x00\x01garbage", b"\xff" * 300, b"n,,n=admin"):
        with wire.Conn(HOST, broker.ports["SASL_PLAINTEXT"]) as c:
            _handshake(c, "SCRAM-SHA-256" if payload.startswith(b"n,,") else "PLAIN")
            r = c.request(36, 1, wire.nbytes(payload))  # SaslAuthenticate v1
            assert r.i16() == 58, payload  # SASL_AUTHENTICATION_FAILED
            assert "Authentication failed" in (r.string() or "")
            assert c.wait_closed(5) is None
    with wire.Conn(HOST, broker.ports["SASL_PLAINTEXT"]) as c:
        _handshake(c, "PLAIN")
        # A frame above the SASL limit (512 KiB) is refused before it is read.
        c.send_raw(struct.pack(">i", 4 * 1024 * 1024) + b"\x00\x24\x00\x01")
        assert c.wait_closed(10) is None
    still_serves(broker, certs)


def test_requests_before_authentication_close_the_connection(broker):
    with wire.Conn(HOST, broker.ports["SASL_PLAINTEXT"]) as c:
        wire.api_versions(c, 0)  # allowed
        c.send_raw(wire.frame(wire.request_header(3, 1, c.next_corr()) + wire.i32(0)))  # Metadata v1
        assert c.wait_closed(5) is None


def test_sasl_handshake_on_plaintext_listener_is_illegal_state(broker):
    with wire.Conn(HOST, broker.port) as c:
        assert c.request(17, 1, wire.string("PLAIN")).i16() == 34  # ILLEGAL_SASL_STATE


def _scram_client_final(password: str, bare: str, server_first: str) -> str:
    attrs = dict(a.split("=", 1) for a in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = f"c={base64.b64encode(b'n,,').decode()},r={attrs['r']}"
    sig = hmac.new(stored, f"{bare},{server_first},{without_proof}".encode(), "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    return f"{without_proof},p={base64.b64encode(proof).decode()}"


def test_v0_handshake_raw_tokens_and_reauthentication(tmp_path, certs):
    """SaslHandshake v0 then raw SCRAM tokens; with connections.max.reauth.ms the session
    lifetime is reported and a re-authentication on the same connection is accepted."""
    b = SecureBroker(tmp_path, certs, {"connections.max.reauth.ms": "60000"})
    b.start()
    try:
        with wire.Conn(HOST, b.ports["SASL_PLAINTEXT"]) as c:
            assert c.request(17, 0, wire.string("SCRAM-SHA-256")).i16() == 0
            bare = "n=admin,r=abcdef"
            c.send_raw(wire.frame(f"n,,{bare}".encode()))
            server_first = c.recv_frame().decode()
            c.send_raw(wire.frame(_scram_client_final(ADMIN_PASSWORD, bare, server_first).encode()))
            assert c.recv_frame().startswith(b"v=")
            wire.api_versions(c, 0)
        with wire.Conn(HOST, b.ports["SASL_PLAINTEXT"]) as c:
            for _ in range(2):  # log in, then re-authenticate
                _handshake(c, "PLAIN")
                r = c.request(36, 1, wire.nbytes(b"\x00alice\x00alice-secret"))
                assert r.i16() == 0
                r.string()  # error_message
                r.take(r.i32())  # auth_bytes
                assert r.i64() == 60000  # session_lifetime_ms
    finally:
        b.stop()


def test_stalled_handshakes_are_closed(tmp_path, certs):
    b = SecureBroker(tmp_path, certs, {"connections.max.idle.ms": "1500"})
    b.start()
    try:
        for listener in ("SSL", "SASL_PLAINTEXT"):
            with socket.create_connection((HOST, b.ports[listener]), timeout=10) as s:
                s.settimeout(10)
                start = time.monotonic()
                assert s.recv(100) == b"", listener
                assert time.monotonic() - start < 8, listener
        with wire.Conn(HOST, b.port) as c:  # and the broker still serves
            wire.api_versions(c, 0)
    finally:
        b.stop()


def test_kafkajs_over_sasl_ssl_scram(broker, certs):
    import json
    from conftest import NODE_DIR
    topic = unique_topic("kjs")
    prog = {"brokers": [broker.addr("SASL_SSL")], "ssl": {"ca": str(certs / "ca.pem")},
            "sasl": {"mechanism": "scram-sha-256", "username": "admin", "password": ADMIN_PASSWORD},
            "steps": [{"op": "createTopics", "topics": [{"topic": topic, "numPartitions": 1, "replicationFactor": 1}]},
                      {"op": "produce", "topic": topic, "messages": [{"value": "a"}, {"value": "b"}]},
                      {"op": "consumeGroup", "topic": topic, "groupId": f"kjs-{uuid.uuid4().hex[:6]}", "count": 2,
                       "timeoutMs": 20000}]}
    proc = subprocess.run(["node", str(NODE_DIR / "kjs.js")], input=json.dumps(prog).encode(), capture_output=True,
                          timeout=120, cwd=NODE_DIR)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    results = json.loads(proc.stdout)["results"]
    assert all(r["ok"] for r in results), results
    values = [base64.b64decode(m["value"]["b64"]) for m in results[2]["result"]["messages"]]
    assert values == [b"a", b"b"]


def test_three_nodes_replicate_over_sasl_ssl_and_survive_kill9(tmp_path, certs):
    """Brokers fetch from each other (and the controller probes them) over a SASL_SSL
    inter-broker listener; clients use PLAINTEXT. RF=3 with acks=all needs every follower to
    fetch through TLS + SASL; a kill -9 of a node leaves the others serving."""
    from cluster_fixture import Cluster
    c = Cluster(tmp_path, 3)
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" '
            'password="broker-pw" user_broker="broker-pw";')
    for n in c.nodes:
        p = free_port()
        n.overrides["listeners"] += f",INTERNAL://{HOST}:{p}"
        n.overrides["advertised.listeners"] += f",INTERNAL://{HOST}:{p}"
        n.overrides.update({
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,INTERNAL:SASL_SSL",
            "inter.broker.listener.name": "INTERNAL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(certs / "server.bundle.pem"),
            "listener.name.internal.ssl.truststore.type": "PEM",
            "listener.name.internal.ssl.truststore.location": str(certs / "ca.pem"),
            "sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.internal.plain.sasl.jaas.config": jaas,
        })
    try:
        c.start()
        topic = unique_topic("ibsasl")
        admin = AdminClient({"bootstrap.servers": c.bootstrap()})
        from confluent_kafka.admin import NewTopic
        for f in admin.create_topics([NewTopic(topic, 2, 3)]).values():
            f.result(timeout=OP_TIMEOUT_S)
        conf = {"bootstrap.servers": c.bootstrap(), "socket.timeout.ms": 10000, "message.timeout.ms": 30000}
        p = Producer({**conf, "acks": "all"})
        for i in range(50):
            p.produce(topic, value=f"m{i}".encode())
        assert p.flush(OP_TIMEOUT_S) == 0
        c.wait_healthy([topic], {topic: 2}, timeout=30, want_isr=3)
        victim = c.node(c.leader_of(topic, 0))
        victim.kill9()
        survivors = [n for n in c.nodes if n is not victim]
        conf["bootstrap.servers"] = c.bootstrap(survivors)
        p = Producer({**conf, "acks": "all"})
        for i in range(50, 80):
            p.produce(topic, value=f"m{i}".encode())
        assert p.flush(OP_TIMEOUT_S) == 0
        # assign(), not a group: __consumer_offsets (RF 3) cannot be created with a node down.
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition
        cons = Consumer({**conf, "group.id": "unused", "enable.auto.commit": False})
        cons.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(2)])
        got = set()
        deadline = time.monotonic() + OP_TIMEOUT_S
        while len(got) < 80 and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and m.error() is None:
                got.add(m.value())
        cons.close()
        assert got == {f"m{i}".encode() for i in range(80)}
    finally:
        c.shutdown()


# --------------------------------------------------------------------------
# Keystore formats beyond plain PEM: PKCS12 stores and an encrypted PEM key

@pytest.fixture(scope="module")
def store_files(certs) -> Path:
    """The server's key and chain as a PKCS12 keystore (PBES2/AES, what OpenSSL 3 and
    Java write), the CA as a PKCS12 truststore, and the key as an encrypted PKCS#8 PEM."""
    _openssl("pkcs12", "-export", "-in", "server.pem", "-inkey", "server.key", "-certfile", "ca.pem",
             "-name", "broker", "-out", "server.p12", "-passout", "pass:store-secret", cwd=certs)
    # A truststore holding the CA as a key entry: Java's trust managers trust a key entry's
    # certificate, and OpenSSL 3.0 cannot write Java's trusted-certificate attribute (3.2's
    # -jdktrust can), so a -nokeys export would hold no trusted entry for Java either.
    _openssl("pkcs12", "-export", "-in", "ca.pem", "-inkey", "ca.key", "-out", "ca.p12", "-passout", "pass:trust-secret",
             cwd=certs)
    _openssl("pkcs12", "-export", "-nokeys", "-in", "ca.pem", "-out", "ca-untrusted.p12", "-passout", "pass:trust-secret",
             cwd=certs)
    _openssl("pkcs8", "-topk8", "-in", "server.key", "-v2", "aes-256-cbc", "-out", "server.enc.key",
             "-passout", "pass:key-secret", cwd=certs)
    (certs / "server.enc.bundle.pem").write_text((certs / "server.enc.key").read_text() + (certs / "server.pem").read_text())
    return certs


def test_pkcs12_keystore_and_truststore(tmp_path, store_files):
    b = SecureBroker(tmp_path / "p12", store_files, {
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(store_files / "server.p12"),
        "ssl.keystore.password": "store-secret",
        "listener.name.mtls.ssl.truststore.type": "PKCS12",
        "listener.name.mtls.ssl.truststore.location": str(store_files / "ca.p12"),
        "listener.name.mtls.ssl.truststore.password": "trust-secret",
    })
    b.start()
    try:
        topic = unique_topic("p12")
        assert roundtrip(client_conf(b, store_files, "SSL"), topic, 10) == [f"v{i}".encode() for i in range(10)]
        mtls = client_conf(b, store_files, "MTLS", **{"ssl.certificate.location": str(store_files / "client.pem"),
                                                      "ssl.key.location": str(store_files / "client.key")})
        assert len(roundtrip(mtls, unique_topic("p12m"), 5)) == 5
        # A certificate from another CA is refused by the PKCS12 truststore too.
        stranger = client_conf(b, store_files, "MTLS", **{"ssl.certificate.location": str(store_files / "stranger.pem"),
                                                          "ssl.key.location": str(store_files / "stranger.key")})
        refused_errors(stranger)
    finally:
        b.stop()


def test_encrypted_pem_key_with_ssl_key_password(tmp_path, store_files):
    b = SecureBroker(tmp_path / "enc", store_files, {
        "ssl.keystore.location": str(store_files / "server.enc.bundle.pem"),
        "ssl.key.password": "key-secret",
    })
    b.start()
    try:
        assert len(roundtrip(client_conf(b, store_files, "SASL_SSL", **{
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin", "sasl.password": ADMIN_PASSWORD}),
            unique_topic("enc"), 5)) == 5
    finally:
        b.stop()


@pytest.mark.parametrize("overrides,expected", [
    ({"ssl.keystore.location": "server.enc.bundle.pem"}, "give its password as ssl.key.password"),
    ({"ssl.keystore.location": "server.enc.bundle.pem", "ssl.key.password": "wrong"}, "cannot decrypt"),
    ({"ssl.keystore.type": "PKCS12", "ssl.keystore.location": "server.p12", "ssl.keystore.password": "wrong"},
     "cannot open the PKCS12 store"),
    ({"ssl.keystore.type": "JKS", "ssl.keystore.location": "server.p12"}, "JKS keystores are not supported"),
    ({"listener.name.mtls.ssl.truststore.type": "PKCS12", "listener.name.mtls.ssl.truststore.location": "ca-untrusted.p12",
      "listener.name.mtls.ssl.truststore.password": "trust-secret"}, "holds no trusted certificate entry"),
])
def test_bad_keystores_stop_startup_with_a_message(tmp_path, store_files, overrides, expected):
    ov = {k: (str(store_files / v) if k.endswith(".location") else v) for k, v in overrides.items()}
    b = SecureBroker(tmp_path / "bad", store_files, ov)
    with pytest.raises(BrokerStartError):
        b.start()
    log = b.log_path.read_text(errors="replace")
    assert expected in log, log[-3000:]


def test_authentication_counters_in_metrics(broker, certs):
    """/metrics counts SASL successes and failures per mechanism (the ops listener)."""
    from test_metrics import scrape, value

    def counts():
        s = scrape(broker.http_url)
        return (value(s, "klamm_authentication_success_total", mechanism="PLAIN") or 0,
                value(s, "klamm_authentication_failure_total", mechanism="SCRAM-SHA-512") or 0)

    ok_before, failed_before = counts()
    still_serves(broker, certs)  # a PLAIN login that succeeds
    conf = client_conf(broker, certs, "SASL_PLAINTEXT", **{"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                                                            "sasl.password": "wrong"})
    expect_auth_failure(conf, "Authentication failed")
    ok_after, failed_after = counts()
    assert ok_after >= ok_before + 1
    assert failed_after >= failed_before + 1
