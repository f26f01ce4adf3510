"""Issue 6 acceptance 1: a hostile-client suite against the real binary. While it runs, a
well-behaved client produces and consumes with no error, and the broker's memory stays under
its configured request budget (the test prints the peak and what the client still got done).

Attacks: slowloris (one byte per second), 10,000 connections at once, 100 MiB and 2 GiB length
prefixes, frames cut mid-body, garbage after a valid header, negative lengths and counts, huge
array counts in small frames, every API key with random bodies, and a gzip batch that
inflates 1000x (stored as sent, and walked by ListOffsets under the decompression bound)."""

import random
import socket
import struct
import threading
import time

import kafka_raw
from conftest import create_topic
from test_hostile import WellBehavedClient, frame, header_v1

BUDGET = 128 * 1024 * 1024  # --queued-max-request-bytes
RSS_LIMIT = BUDGET + 64 * 1024 * 1024  # the budget plus the broker's own working set


class RssSampler(threading.Thread):
    def __init__(self, broker):
        super().__init__(daemon=True)
        self.broker, self.peak, self.stop = broker, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.broker.rss_bytes())
            except Exception:  # noqa: BLE001 - the broker died; the test sees it
                return
            time.sleep(0.05)


def quietly(fn):
    try:
        fn()
    except OSError:
        pass


def slowloris(port, conns, stop):
    """Each connection announces a 1 MiB Produce and then sends one byte per second."""
    socks = []
    for i in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(struct.pack(">i", 1 << 20) + header_v1(0, 9, i))
        socks.append(s)
    while not stop.is_set():
        for s in socks:
            quietly(lambda: s.send(b"\x00"))
        stop.wait(1.0)
    for s in socks:
        s.close()
    return len(socks)


def connection_flood(port, n):
    """Open n connections at once (non-blocking connects), hold them 2 s, close them."""
    socks, connected = [], 0
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        socks.append(s)
    time.sleep(2.0)
    for s in socks:
        try:
            s.getpeername()
            connected += 1
        except OSError:
            pass
        s.close()
    return connected


def send_and_close(port, data, linger=0.05):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        quietly(lambda: s.sendall(data))
        time.sleep(linger)


def random_bodies(port, rng, per_key=3):
    """Every API key 0..80 at versions -1, 0, max-ish and 99, with random bodies."""
    sent = 0
    for key in range(0, 81):
        for version in (-1, 0, 1, 3, 7, 12, 99):
            for _ in range(per_key):
                body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
                payload = header_v1(key, version, rng.randint(0, 1 << 30)) + body
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                        s.sendall(frame(payload))
                        s.settimeout(2)
                        try:
                            s.recv(65536)  # an answer or a close; either is fine
                        except (socket.timeout, OSError):
                            pass
                except OSError:
                    pass
                sent += 1
    return sent


def test_hostile_clients_do_not_hurt_a_well_behaved_one(make_broker):
    broker = make_broker("--queued-max-request-bytes", str(BUDGET))
    create_topic(broker.bootstrap, "steady", 1)
    create_topic(broker.bootstrap, "bomb", 1)
    client = WellBehavedClient(broker.bootstrap, "steady")
    client.start()
    rss = RssSampler(broker)
    rss.start()
    stop = threading.Event()
    loris = threading.Thread(target=slowloris, args=(broker.port, 50, stop), daemon=True)
    loris.start()
    rng = random.Random(6)
    start_rounds, t0 = client.rounds, time.monotonic()
    try:
        flood = connection_flood(broker.port, 10_000)
        print(f"\nconnection flood: {flood} of 10000 connected at once")

        # Length prefixes: 100 MiB (allowed) with 10 MiB sent, then cut; 2 GiB; negative.
        big = struct.pack(">i", 100 * 1024 * 1024) + header_v1(0, 9, 1)
        send_and_close(broker.port, big + b"\x00" * (10 * 1024 * 1024), linger=0.5)
        send_and_close(broker.port, struct.pack(">I", 2 * 1024**3) + b"\x00" * 64)
        send_and_close(broker.port, struct.pack(">i", -5) + b"\x00" * 64)
        # Cut mid-body; garbage after a valid header; negative and huge counts.
        send_and_close(broker.port, struct.pack(">i", 1000) + header_v1(3, 9, 2) + b"\x01" * 10)
        send_and_close(broker.port, frame(header_v1(18, 3, 3) + b"\xff" * 200))
        send_and_close(broker.port, frame(header_v1(3, 1, 4) + struct.pack(">i", -7)))
        send_and_close(broker.port, frame(header_v1(3, 1, 5) + struct.pack(">i", 0x7FFFFFFF)
                                          + b"\x00" * 10))
        n = random_bodies(broker.port, rng)
        print(f"random bodies: {n} requests over every API key")

        # A gzip batch that inflates 1000x is stored as sent (the broker never inflates
        # what it stores) ...
        bomb = kafka_raw.gzip_bomb_batch(500 * 1024 * 1024, 1_700_000_000_000)
        code = kafka_raw.produce_v7(broker.port, "bomb", 0, bomb)
        assert code == 0, f"produce of the compressed batch: error {code}"
        # ... and ListOffsets by time walks its records as a stream, bounded.
        err, ts, offset = kafka_raw.list_offsets_by_time_v4(broker.port, "bomb", 0,
                                                           1_700_000_000_000)
        assert (err, offset) == (0, 0), (err, ts, offset)
        print(f"inflating batch: {len(bomb)} bytes stored; ListOffsets answered offset {offset}")

        # Let the slowloris connections drip a while longer alongside the client.
        time.sleep(3)
    finally:
        stop.set()
        loris.join(10)
        elapsed = time.monotonic() - t0
        client.stop.set()
        client.join(60)
        rss.stop.set()
        rss.join(5)
    rounds = client.rounds - start_rounds
    print(f"well-behaved client during the attacks: {rounds} rounds in {elapsed:.1f}s "
          f"({rounds * client.batch * 2 / elapsed:.0f} messages/s produced+consumed)")
    print(f"broker peak RSS {rss.peak / 2**20:.1f} MiB "
          f"(request budget {BUDGET / 2**20:.0f} MiB, limit {RSS_LIMIT / 2**20:.0f} MiB)")
    assert broker.alive()
    assert client.errors == [], client.errors
    assert rounds >= 3
    assert rss.peak < RSS_LIMIT
    # The broker still answers new clients.
    create_topic(broker.bootstrap, "after", 1)


def closed_within(sock, seconds):
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_idle_connections_are_closed(make_broker):
    broker = make_broker("--connections-max-idle-ms", "500")
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        assert closed_within(s, 5)
    assert "closing idle connection" in broker.log()
    # A busy client is not idle: its connections live on.
    create_topic(broker.bootstrap, "busy", 1)


def test_max_connections_per_ip(make_broker):
    broker = make_broker("--max-connections-per-ip", "5")
    held = [socket.create_connection(("127.0.0.1", broker.port)) for _ in range(5)]
    try:
        extra = socket.create_connection(("127.0.0.1", broker.port))
        assert closed_within(extra, 5), "the sixth connection from one address is closed"
        extra.close()
        assert "max.connections.per.ip reached" in broker.log()
        for s in held:
            s.setblocking(False)
            try:
                assert s.recv(1) != b"", "held connections stay open"
            except BlockingIOError:
                pass
    finally:
        for s in held:
            s.close()
    # Once they are gone, the address may connect again.
    time.sleep(0.2)
    create_topic(broker.bootstrap, "again", 1)


def test_one_queued_request_still_serves_pipelining_clients(make_broker):
    """queued.max.requests=1 and a tiny byte budget: clients that pipeline many requests are
    slowed (backpressure), never deadlocked or refused."""
    from confluent_kafka import Producer
    from conftest import consume_to_end

    broker = make_broker("--queued-max-requests", "1", "--queued-max-request-bytes", "1048576",
                         "--socket-request-max-bytes", "1048576")
    create_topic(broker.bootstrap, "narrow", 4)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 1,
                  "batch.size": 65536})
    errors = []
    for i in range(20_000):
        p.produce("narrow", b"%d" % i, on_delivery=lambda e, m: e and errors.append(e))
        p.poll(0)
    assert p.flush(60) == 0 and errors == []
    total = sum(len(m) for m in consume_to_end(broker.bootstrap, "narrow", 4).values())
    assert total == 20_000
