"""Hostile bytes: random garbage, a length prefix of 2 GiB, a truncated frame, an unknown API key
each close only their own connection; the broker's memory stays bounded and a concurrent client's
produce/consume keeps working.

Everything here speaks raw TCP to the real binary. Request header v1 is
int16 api_key, int16 api_version, int32 correlation_id, nullable string client_id (int16 length);
header v2 (flexible versions) adds an empty tagged-field section (one 0 byte).
"""

import random
import re
import socket
import struct
import threading
import time

import pytest

API_VERSIONS = 18
METADATA = 3
PRODUCE = 0
STOP_REPLICA = 5  # a real Kafka API that weir does not implement (inter-broker)
UNSUPPORTED_VERSION = 35
DEFAULT_MAX_FRAME = 100 * 1024 * 1024
CLOSE_TIMEOUT = 5.0


# ---------------------------------------------------------------------------------------------
# Raw protocol helpers


def header_v1(api_key, api_version, correlation_id, client_id=b"hostile"):
    hdr = struct.pack(">hhi", api_key, api_version, correlation_id)
    if client_id is None:
        return hdr + struct.pack(">h", -1)
    return hdr + struct.pack(">h", len(client_id)) + client_id


def header_v2(api_key, api_version, correlation_id, client_id=b"hostile"):
    return header_v1(api_key, api_version, correlation_id, client_id) + b"\x00"


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def connect(b) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", b.port), timeout=CLOSE_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_quietly(sock, data: bytes):
    """Send, ignoring the broker having closed already (that is what we are testing for)."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def recv_exact(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise AssertionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_frame(sock) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    assert 0 <= size < 1 << 20, size
    return recv_exact(sock, size)


def expect_closed(sock, timeout=CLOSE_TIMEOUT):
    """The broker must close the connection (EOF or RST) within `timeout`, sending nothing."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            pytest.fail(f"broker kept the connection open for {timeout}s (received {got[:64]!r})")
        if not chunk:
            break
        got += chunk
        if time.monotonic() > deadline:
            pytest.fail(f"broker kept sending on a hostile connection: {got[:64]!r}")
    assert got == b"", f"broker answered a hostile request instead of closing: {got[:64]!r}"


def parse_api_versions_v0(body: bytes):
    """(correlation id, error code, {key: (min, max)}) of a v0-encoded ApiVersionsResponse frame
    body (the size prefix already stripped)."""
    corr, err, n = struct.unpack_from(">ihi", body, 0)
    assert 0 <= n < 1000, n
    pos = 10
    apis = {}
    for _ in range(n):
        key, lo, hi = struct.unpack_from(">hhh", body, pos)
        apis[key] = (lo, hi)
        pos += 6
    assert pos == len(body), f"{len(body) - pos} trailing bytes in ApiVersions v0 response"
    return corr, err, apis


def api_versions_v0(sock, correlation_id):
    sock.sendall(frame(header_v1(API_VERSIONS, 0, correlation_id)))
    corr, err, apis = parse_api_versions_v0(recv_frame(sock))
    assert corr == correlation_id
    return err, apis


def peer_tag(sock) -> str:
    host, port = sock.getsockname()[:2]
    return f"peer={host}:{port}"


def wait_for_log(b, pattern: str, timeout=CLOSE_TIMEOUT) -> str:
    """The first broker log line matching `pattern` (a regex), waiting up to `timeout`."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        for line in b.log().splitlines():
            if rx.search(line):
                return line
        if time.monotonic() > deadline:
            tail = "\n".join(b.log().splitlines()[-20:])
            pytest.fail(f"no broker log line matches {pattern!r}; log tail:\n{tail}")
        time.sleep(0.05)


def assert_closed_and_logged(b, sock, log_pattern: str):
    """The hostile connection is closed, the broker lives, and it logged why for this peer."""
    tag = re.escape(peer_tag(sock)) + r"(?!\d)"
    expect_closed(sock)
    sock.close()
    wait_for_log(b, tag + r".*closing connection|closing connection.*" + tag)
    lines = [ln for ln in b.log().splitlines() if re.search(tag, ln)]
    assert any("closing connection" in ln and re.search(log_pattern, ln) for ln in lines), (
        f"expected a 'closing connection' line matching {log_pattern!r} for this peer, got:\n"
        + "\n".join(lines))
    assert b.alive(), f"broker died:\n{b.log()[-3000:]}"


def run_hostile(b, payload: bytes, log_pattern: str, half_close=False):
    """Open a bystander connection, then a hostile one that sends `payload`. The hostile one
    must be closed (and logged); the bystander must still be served on its already-open
    connection, and a fresh connection must work too."""
    bystander = connect(b)
    err, apis = api_versions_v0(bystander, 1)
    assert err == 0 and API_VERSIONS in apis

    hostile = connect(b)
    send_quietly(hostile, payload)
    if half_close:
        try:
            hostile.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    assert_closed_and_logged(b, hostile, log_pattern)

    err, apis = api_versions_v0(bystander, 2)
    assert err == 0 and apis[API_VERSIONS] == (0, 4)
    bystander.close()
    with connect(b) as fresh:
        err, _ = api_versions_v0(fresh, 3)
        assert err == 0


# ---------------------------------------------------------------------------------------------
# One hostile connection at a time


def _random_garbage(seed: int) -> bytes:
    rng = random.Random(seed)
    while True:
        g = rng.randbytes(4096)
        size = struct.unpack(">i", g[:4])[0]
        # Keep only garbage whose first four bytes cannot be a valid size, so the outcome does
        # not depend on waiting for a body that never comes (that case is the memory test's).
        if size < 0 or size > DEFAULT_MAX_FRAME:
            return g


GARBAGE = {
    "random-1": (_random_garbage(1), r"negative or larger"),
    "random-2": (_random_garbage(2), r"negative or larger"),
    "random-3": (_random_garbage(3), r"negative or larger"),
    "http": (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", r"size 1195725856 is negative or larger"),
    "tls-client-hello": (bytes.fromhex("160301020001000200") + bytes(503),
                         r"negative or larger"),
    # A plausible size, then a body that is not a request header: an API key nobody has.
    "framed-random": (frame(struct.pack(">h", 31337) + random.Random(4).randbytes(2000)),
                      r"unsupported api key 31337"),
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_closes_only_its_connection(broker, name):
    payload, pattern = GARBAGE[name]
    run_hostile(broker, payload, pattern)


@pytest.mark.parametrize("prefix", [0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x80000001],
                         ids=["2GiB-1", "2GiB(int32 min)", "minus-1", "-2GiB+1"])
def test_huge_or_negative_length_prefix(broker, prefix):
    payload = struct.pack(">I", prefix) + header_v1(METADATA, 1, 7) + b"\x00" * 64
    size = struct.unpack(">i", struct.pack(">I", prefix))[0]
    run_hostile(broker, payload, rf"frame size {size} is negative or larger")


def test_frame_over_socket_request_max_bytes(make_broker):
    b = make_broker("--socket-request-max-bytes", "1048576")
    rss_before = b.rss_bytes()
    # 2 MiB announced, a real header and a few bytes sent: the broker must close on the prefix
    # alone, without waiting for (or reserving room for) the body.
    payload = struct.pack(">i", 2 * 1024 * 1024) + header_v1(PRODUCE, 9, 1) + b"\x00" * 100
    run_hostile(b, payload, r"frame size 2097152 is negative or larger than "
                            r"socket.request.max.bytes 1048576")
    assert b.rss_bytes() - rss_before < 2 * 1024 * 1024
    # One byte over the cap is refused too; exactly at the cap is not refused on size (this one
    # is closed because it ends early).
    run_hostile(b, struct.pack(">i", 1048577) + b"\x00" * 16, r"frame size 1048577")
    run_hostile(b, struct.pack(">i", 1048576) + b"\x00" * 16, r"middle of a frame",
                half_close=True)


def test_truncated_frame(broker):
    # Announces 100 bytes, sends a valid header and a little more, then ends the stream.
    body = header_v1(METADATA, 1, 9) + b"\x00\x00"
    run_hostile(broker, struct.pack(">i", 100) + body, r"middle of a frame", half_close=True)


def test_truncated_length_prefix(broker):
    run_hostile(broker, b"\x00\x00", r"middle of a frame", half_close=True)


@pytest.mark.parametrize("api_key,version,pattern", [
    (9999, 0, r"unsupported api key 9999 version 0"),
    (-1, 0, r"unsupported api key -1 version 0"),
    (PRODUCE, 99, r"unsupported api key 0 version 99"),
    (METADATA, -1, r"unsupported api key 3 version -1"),
    # StopReplica: a real Kafka API, but an inter-broker one weir does not serve.
    (5, 0, r"unsupported api key 5 version 0"),
], ids=["key-9999", "key-minus-1", "produce-v99", "metadata-v-1", "stopreplica-unimplemented"])
def test_unknown_api_key_or_version(broker, api_key, version, pattern):
    payload = frame(header_v1(api_key, version, 42) + b"\x00" * 32)
    run_hostile(broker, payload, pattern)


def test_header_too_short(broker):
    run_hostile(broker, frame(b"\x00\x12\x00"), r"too short for a request header")


def test_api_versions_unknown_version_gets_v0_unsupported_version(broker):
    """KIP-511: ApiVersions at a version the broker does not know is answered in v0 format with
    UNSUPPORTED_VERSION and the broker's range for ApiVersions, so the client can retry."""
    with connect(broker) as s:
        # A v99 request from a hypothetical future client: flexible header, some body.
        s.sendall(frame(header_v2(API_VERSIONS, 99, 1234) + b"\x05weir\x040.1\x00" + b"\xab" * 40))
        corr, err, apis = parse_api_versions_v0(recv_frame(s))
        assert corr == 1234
        assert err == UNSUPPORTED_VERSION
        assert API_VERSIONS in apis, apis
        assert apis[API_VERSIONS][1] == 4, apis
        assert apis[API_VERSIONS][0] == 0, apis
        # The connection stays usable: the client retries at a version from the answer.
        err, apis = api_versions_v0(s, 1235)
        assert err == 0
        assert apis[API_VERSIONS] == (0, 4)
        assert apis[METADATA][1] >= 1
    assert broker.alive()


def test_garbage_after_valid_api_versions_v3_header(broker):
    # ApiVersions v3 body is two compact strings and tagged fields; 0xff... is an unterminated
    # varint, i.e. nothing a decoder may accept.
    payload = frame(header_v2(API_VERSIONS, 3, 77) + b"\xff" * 16 + random.Random(5).randbytes(64))
    run_hostile(broker, payload, r"malformed ApiVersions v3 request")


@pytest.mark.parametrize("version", [1, 9])
def test_huge_array_count_in_small_frame(broker, version):
    """A Metadata request whose topics array claims 0x7fffffff entries with 10 bytes following:
    closed as malformed, without trying to reserve room for two billion topics."""
    if version >= 9:  # flexible: header v2, compact array (count + 1 as an unsigned varint)
        body = header_v2(METADATA, version, 5) + uvarint(0x7FFFFFFF + 1)
    else:
        body = header_v1(METADATA, version, 5) + struct.pack(">i", 0x7FFFFFFF)
    body += b"\x00\x01a\x00\x01b\x00\x01c\x00"  # 10 bytes
    rss_before = broker.rss_bytes()
    run_hostile(broker, frame(body), rf"malformed Metadata v{version} request")
    assert broker.rss_bytes() - rss_before < 16 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Memory stays bounded while a well-behaved client keeps working


class WellBehavedClient(threading.Thread):
    """Produces a batch with acks=all, then consumes exactly that batch back; repeats until
    stopped. Records every error and every message it could not get back."""

    def __init__(self, bootstrap, topic, batch=200):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.batch = bootstrap, topic, batch
        self.stop = threading.Event()
        self.errors = []
        self.produced = 0
        self.consumed = []
        self.rounds = 0

    def run(self):
        from confluent_kafka import Consumer, Producer, TopicPartition

        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 2,
                      "message.timeout.ms": 20000})
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "hostile-unused",
                      "enable.auto.commit": False, "enable.partition.eof": False})
        c.assign([TopicPartition(self.topic, 0, 0)])

        def on_delivery(err, msg):
            if err is not None:
                self.errors.append(f"delivery: {err}")

        try:
            while not self.stop.is_set() or self.rounds < 3:
                values = [f"r{self.rounds}-{i}".encode() for i in range(self.batch)]
                for v in values:
                    p.produce(self.topic, v, partition=0, on_delivery=on_delivery)
                if p.flush(20) != 0:
                    self.errors.append(f"round {self.rounds}: flush left messages undelivered")
                    return
                self.produced += len(values)
                got = []
                deadline = time.monotonic() + 20
                while len(got) < len(values) and time.monotonic() < deadline:
                    for m in c.consume(1000, 0.2):
                        if m.error() is not None:
                            self.errors.append(f"consume: {m.error()}")
                            continue
                        got.append(m.value())
                if got != values:
                    self.errors.append(f"round {self.rounds}: consumed {len(got)} of "
                                       f"{len(values)} (or in another order)")
                    return
                self.consumed.extend(got)
                self.rounds += 1
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(f"exception: {e!r}")
        finally:
            c.close()


def test_memory_bounded_under_many_oversized_promises(broker):
    """200 connections each announce a 99 MiB frame (under the 100 MiB cap), send 4 KiB and
    hold. The broker must not reserve what was promised, only what arrived; a concurrent
    well-behaved producer/consumer keeps working throughout."""
    from conftest import create_topic

    n_conns, claimed, sent = 200, 99 * 1024 * 1024, 4096
    limit = 256 * 1024 * 1024
    create_topic(broker.bootstrap, "steady", 1)
    client = WellBehavedClient(broker.bootstrap, "steady")
    client.start()
    baseline = broker.rss_bytes()
    peak = baseline

    hostile = []
    try:
        for i in range(n_conns):
            s = connect(broker)
            # A real Produce v9 header, so the broker cannot tell it from a slow big produce.
            head = struct.pack(">i", claimed) + header_v2(PRODUCE, 9, i)
            s.sendall(head + b"\x00" * (sent - len(head)))
            hostile.append(s)
            if i % 20 == 0:
                peak = max(peak, broker.rss_bytes())
        # Hold them open while the well-behaved client keeps going.
        hold_until = time.monotonic() + 3
        rounds_before = client.rounds
        while time.monotonic() < hold_until or client.rounds < rounds_before + 2:
            peak = max(peak, broker.rss_bytes())
            assert broker.alive()
            assert client.is_alive() or client.errors == [], client.errors
            if time.monotonic() > hold_until + 20:
                break
            time.sleep(0.1)
        print(f"\nbroker RSS: baseline {baseline / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB "
              f"with {n_conns} connections claiming {claimed / 2**20:.0f} MiB each "
              f"({n_conns * claimed / 2**30:.1f} GiB promised); well-behaved client rounds "
              f"while held: {client.rounds - rounds_before}")
        assert peak < limit, f"peak RSS {peak / 2**20:.1f} MiB >= {limit / 2**20:.0f} MiB"
        assert client.rounds >= rounds_before + 2, (
            f"well-behaved client stalled while hostile connections were held: {client.errors}")
        # None of the held connections was answered (they never completed a request).
        for s in hostile[:5]:
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(1)
    finally:
        for s in hostile:
            s.close()

    # Each truncated promise is closed and logged; the broker lives and the client finishes.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if broker.log().count("middle of a frame") >= n_conns:
            break
        time.sleep(0.1)
    assert broker.log().count("middle of a frame") >= n_conns
    client.stop.set()
    client.join(60)
    assert not client.is_alive(), "well-behaved client hung"
    assert broker.alive()
    assert client.errors == []
    assert client.produced == len(client.consumed) and client.produced >= 5 * client.batch
    assert client.consumed == [f"r{r}-{i}".encode()
                               for r in range(client.rounds) for i in range(client.batch)]
