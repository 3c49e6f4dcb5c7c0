"""Minimal hand-written Kafka wire protocol helpers for the bad-input tests.

Only what the tests need: request header v1/v2 framing, ApiVersions (v0-v3 and
the v0-format fallback), Metadata v1, Produce v3, CreateTopics v2-v4 and a
record batch v2 builder with CRC-32C.  Written from Kafka's protocol
description (its message/*.json definitions and the facts collected in
docs/kafka-compatibility.md); independent of the broker code so that it can
catch the broker's mistakes.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

try:  # the `crc32c` package from PyPI (pinned in tests/clients/requirements.txt)
    from crc32c import crc32c as _crc32c_fast
except ImportError:  # pragma: no cover - fallback keeps the module importable
    _crc32c_fast = None

# --------------------------------------------------------------------------
# CRC-32C (Castagnoli)

_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c_py(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c(data: bytes) -> int:
    if _crc32c_fast is not None:
        return _crc32c_fast(data)
    return crc32c_py(data)


# --------------------------------------------------------------------------
# Primitive encoders


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def string(s: str | None) -> bytes:
    """STRING / NULLABLE_STRING: int16 length + UTF-8 (-1 = null)."""
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def nbytes(b: bytes | None) -> bytes:
    """BYTES / NULLABLE_BYTES: int32 length (-1 = null)."""
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def array(items: list[bytes] | None) -> bytes:
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(items)


def uvarint(v: int) -> bytes:
    assert v >= 0
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v: int) -> bytes:
    """Signed zig-zag varint / varlong (records use these)."""
    return uvarint((v << 1) ^ (v >> 63))


def compact_string(s: str | None) -> bytes:
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


EMPTY_TAGS = b"\x00"

# --------------------------------------------------------------------------
# Decoder


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"short read: want {n} at {self.pos}, have {len(self.data)}")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def i8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def boolean(self) -> bool:
        return self.take(1) != b"\x00"

    def string(self) -> str | None:
        n = self.i16()
        if n < 0:
            return None
        return self.take(n).decode()

    def uvarint(self) -> int:
        shift = 0
        out = 0
        while True:
            b = self.take(1)[0]
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 63:
                raise ValueError("uvarint too long")

    def compact_string(self) -> str | None:
        n = self.uvarint()
        if n == 0:
            return None
        return self.take(n - 1).decode()

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def array(self, fn):
        n = self.i32()
        if n < 0:
            return None
        return [fn(self) for _ in range(n)]

    def compact_array(self, fn):
        n = self.uvarint()
        if n == 0:
            return None
        return [fn(self) for _ in range(n - 1)]

    def remaining(self) -> int:
        return len(self.data) - self.pos


# --------------------------------------------------------------------------
# Framing


def request_header(api_key: int, api_version: int, correlation_id: int,
                   client_id: str | None = "klamm-wire-test", flexible: bool = False) -> bytes:
    """Request header v1 (flexible=False) or v2 (flexible=True).

    client_id stays an int16-length NULLABLE_STRING even in v2.
    """
    h = i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id)
    if flexible:
        h += EMPTY_TAGS
    return h


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


class ConnectionClosed(Exception):
    pass


class Conn:
    """A blocking TCP connection to a broker with framed send/receive."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        assert host.startswith("127.") or host in ("localhost", "::1")
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.corr = 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_corr(self) -> int:
        self.corr += 1
        return self.corr

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionClosed(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self._recv_exact(4))
        if size < 0 or size > 200 * 1024 * 1024:
            raise ValueError(f"bad response size {size}")
        return self._recv_exact(size)

    def request(self, api_key: int, api_version: int, body: bytes, flexible: bool = False,
                response_header_v1: bool | None = None) -> Reader:
        """Sends one request and returns a Reader positioned after the response header."""
        corr = self.next_corr()
        self.send_raw(frame(request_header(api_key, api_version, corr, flexible=flexible) + body))
        resp = Reader(self.recv_frame())
        got = resp.i32()
        if got != corr:
            raise AssertionError(f"correlation id {got} != {corr}")
        if response_header_v1 is None:
            response_header_v1 = flexible and api_key != API_VERSIONS
        if response_header_v1:
            resp.skip_tags()
        return resp

    def wait_closed(self, timeout: float = 10.0) -> bytes | None:
        """Waits until the peer closes the connection.

        Returns None when it closed (EOF or reset) within `timeout`; otherwise
        returns whatever bytes arrived instead (b"" if nothing arrived at all).
        """
        deadline = time.monotonic() + timeout
        got = bytearray()
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                return None
            if not chunk:
                return None
            got += chunk
        return bytes(got)


    def wait_closed_or_frame(self, timeout: float = 10.0) -> bytes | None:
        """Like wait_closed, but returns as soon as one whole response frame
        (size prefix included) has arrived."""
        deadline = time.monotonic() + timeout
        got = bytearray()
        while time.monotonic() < deadline:
            if len(got) >= 4:
                (size,) = struct.unpack(">i", got[:4])
                if 0 <= size <= len(got) - 4:
                    return bytes(got)
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                return None
            if not chunk:
                return None
            got += chunk
        return bytes(got)


# --------------------------------------------------------------------------
# API keys and error codes used by the tests

PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
API_VERSIONS = 18
CREATE_TOPICS = 19

NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
INVALID_RECORD = 87


# --------------------------------------------------------------------------
# ApiVersions


@dataclass
class ApiVersionsResponse:
    error_code: int
    api_keys: dict[int, tuple[int, int]]
    throttle_time_ms: int | None = None


def api_versions(conn: Conn, version: int = 0) -> ApiVersionsResponse:
    """ApiVersions v0-v3. v3 uses request header v2; the response header is always v0."""
    flexible = version >= 3
    body = b""
    if flexible:
        body = compact_string("klamm-tests") + compact_string("1.0") + EMPTY_TAGS
    r = conn.request(API_VERSIONS, version, body, flexible=flexible, response_header_v1=False)
    return parse_api_versions(r, version)


def parse_api_versions(r: Reader, version: int) -> ApiVersionsResponse:
    err = r.i16()
    if version >= 3:
        def entry(rr: Reader):
            k, lo, hi = rr.i16(), rr.i16(), rr.i16()
            rr.skip_tags()
            return k, (lo, hi)
        entries = r.compact_array(entry) or []
    else:
        entries = r.array(lambda rr: (rr.i16(), (rr.i16(), rr.i16()))) or []
    throttle = r.i32() if version >= 1 else None
    return ApiVersionsResponse(err, dict(entries), throttle)


def api_versions_raw(conn: Conn, version: int, body: bytes, flexible: bool) -> Reader:
    """Sends ApiVersions at an arbitrary version; returns the reader after the v0 response header."""
    return conn.request(API_VERSIONS, version, body, flexible=flexible, response_header_v1=False)


# --------------------------------------------------------------------------
# Metadata v1


@dataclass
class MetadataPartition:
    error_code: int
    index: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass
class MetadataTopic:
    error_code: int
    name: str
    is_internal: bool
    partitions: list[MetadataPartition]


@dataclass
class MetadataResponse:
    brokers: list[tuple[int, str, int, str | None]]
    controller_id: int
    topics: dict[str, MetadataTopic]


def metadata_v1(conn: Conn, topics: list[str] | None = None) -> MetadataResponse:
    """Metadata v1: topics=None asks for all topics."""
    body = array(None if topics is None else [string(t) for t in topics])
    r = conn.request(METADATA, 1, body)
    brokers = r.array(lambda rr: (rr.i32(), rr.string(), rr.i32(), rr.string()))
    controller = r.i32()

    def part(rr: Reader) -> MetadataPartition:
        return MetadataPartition(rr.i16(), rr.i32(), rr.i32(),
                                 rr.array(lambda x: x.i32()), rr.array(lambda x: x.i32()))

    def topic(rr: Reader) -> MetadataTopic:
        return MetadataTopic(rr.i16(), rr.string(), rr.boolean(), rr.array(part))

    ts = r.array(topic) or []
    return MetadataResponse(brokers or [], controller, {t.name: t for t in ts})


# --------------------------------------------------------------------------
# Record batch v2


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp_delta: int = 0


def encode_record(offset_delta: int, rec: Record) -> bytes:
    body = bytearray()
    body += i8(0)  # attributes
    body += varint(rec.timestamp_delta)
    body += varint(offset_delta)
    if rec.key is None:
        body += varint(-1)
    else:
        body += varint(len(rec.key)) + rec.key
    if rec.value is None:
        body += varint(-1)
    else:
        body += varint(len(rec.value)) + rec.value
    body += varint(len(rec.headers))
    for hk, hv in rec.headers:
        kb = hk.encode()
        body += varint(len(kb)) + kb
        if hv is None:
            body += varint(-1)
        else:
            body += varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def record_batch(records: list[Record], base_timestamp: int | None = None, *,
                 magic: int = 2, attributes: int = 0, producer_id: int = -1,
                 producer_epoch: int = -1, base_sequence: int = -1,
                 corrupt_crc: bool = False, codec: int = 0) -> bytes:
    """Builds one record batch (magic 2 layout), uncompressed or with the
    records section compressed by `codec` (1 gzip, 2 snappy in the xerial
    framing the Java client writes, 3 lz4 frame, 4 zstd) using the Python
    codec libraries, an encoder independent of the broker's.

    corrupt_crc=True flips a bit in the records *after* the CRC was computed,
    so the stored CRC no longer matches.
    """
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    recs = b"".join(encode_record(i, r) for i, r in enumerate(records))
    if codec:
        recs = compress_records(codec, recs)
        attributes = (attributes & ~0x07) | codec
    max_ts = base_timestamp + max((r.timestamp_delta for r in records), default=0)
    after_crc = (
        i16(attributes)
        + i32(len(records) - 1)  # lastOffsetDelta
        + i64(base_timestamp)
        + i64(max_ts)
        + i64(producer_id)
        + i16(producer_epoch)
        + i32(base_sequence)
        + i32(len(records))
        + recs
    )
    crc = crc32c(after_crc)
    if corrupt_crc:
        # flip one bit in the middle of the records section (40 header bytes
        # precede it), i.e. inside a key/value for records with payload
        b = bytearray(after_crc)
        b[40 + (len(b) - 40) // 2] ^= 0x01
        after_crc = bytes(b)
    batch_length = 4 + 1 + 4 + len(after_crc)  # partitionLeaderEpoch + magic + crc + rest
    return i64(0) + i32(batch_length) + i32(-1) + i8(magic) + u32(crc) + after_crc


def compress_records(codec: int, data: bytes) -> bytes:
    if codec == 1:
        import gzip
        return gzip.compress(data)
    if codec == 2:
        from kafka.codec import snappy_encode
        return snappy_encode(data, xerial_compatible=True)
    if codec == 3:
        import lz4.frame
        return lz4.frame.compress(data)
    if codec == 4:
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(f"unknown codec {codec}")


def parse_record_batch_header(batch: bytes) -> dict:
    r = Reader(batch)
    return {
        "base_offset": r.i64(),
        "batch_length": r.i32(),
        "partition_leader_epoch": r.i32(),
        "magic": r.i8(),
        "crc": struct.unpack(">I", r.take(4))[0],
        "attributes": r.i16(),
        "last_offset_delta": r.i32(),
    }


# --------------------------------------------------------------------------
# Produce v3


@dataclass
class ProducePartitionResult:
    index: int
    error_code: int
    base_offset: int
    log_append_time_ms: int


def produce_v3(conn: Conn, topic: str, partition: int, records: bytes | None,
               acks: int = -1, timeout_ms: int = 10000, version: int = 3) -> dict[str, list[ProducePartitionResult]]:
    """Produce v3-v8 (same request layout; zstd needs v7+). Responses of v5+
    carry the log start offset and v8 per-record errors, read and dropped."""
    assert 3 <= version <= 8
    body = (
        string(None)  # transactional_id
        + i16(acks)
        + i32(timeout_ms)
        + array([string(topic) + array([i32(partition) + nbytes(records)])])
    )
    r = conn.request(PRODUCE, version, body)

    def part(rr: Reader) -> ProducePartitionResult:
        result = ProducePartitionResult(rr.i32(), rr.i16(), rr.i64(), rr.i64())
        if version >= 5:
            rr.i64()  # log_start_offset
        if version >= 8:
            rr.array(lambda e: (e.i32(), e.string()))  # record_errors
            rr.string()  # error_message
        return result

    topics = r.array(lambda rr: (rr.string(), rr.array(part))) or []
    r.i32()  # throttle_time_ms
    return dict(topics)


# --------------------------------------------------------------------------
# CreateTopics v2-v4 (non-flexible)


@dataclass
class CreateTopicResult:
    name: str
    error_code: int
    error_message: str | None


def create_topics(conn: Conn, topics: list[tuple[str, int, int, dict[str, str]]],
                  version: int = 2, timeout_ms: int = 10000,
                  validate_only: bool = False) -> dict[str, CreateTopicResult]:
    """topics: (name, num_partitions, replication_factor, configs)."""
    assert 2 <= version <= 4

    def topic(t):
        name, parts, rf, configs = t
        return (string(name) + i32(parts) + i16(rf) + array([])
                + array([string(k) + string(v) for k, v in configs.items()]))

    body = array([topic(t) for t in topics]) + i32(timeout_ms) + (b"\x01" if validate_only else b"\x00")
    r = conn.request(CREATE_TOPICS, version, body)
    r.i32()  # throttle_time_ms
    res = r.array(lambda rr: CreateTopicResult(rr.string(), rr.i16(), rr.string())) or []
    return {t.name: t for t in res}


def pick_version(versions: dict[int, tuple[int, int]], key: int, lo: int, hi: int) -> int:
    """Highest version in [lo, hi] that the broker advertises for `key`."""
    if key not in versions:
        raise AssertionError(f"broker does not advertise API key {key}")
    bmin, bmax = versions[key]
    v = min(hi, bmax)
    if v < max(lo, bmin):
        raise AssertionError(f"no common version for key {key}: ours {lo}-{hi}, broker {bmin}-{bmax}")
    return v
