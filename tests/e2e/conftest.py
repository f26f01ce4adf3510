"""Fixtures that run the real `weir` binary on a free loopback port with a real data directory.

Every test talks to the broker through real clients (kcat, confluent-kafka, kafka-python) or raw
sockets; nothing here imitates the broker.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
WEIR_BIN = Path(os.environ.get("WEIR_BIN", REPO / "target" / "release" / "weir"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One `weir serve` process; can be stopped, killed and started again on the same data dir."""

    def __init__(self, data_dir: Path, log_dir: Path, extra_args=(), env=None):
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.port = free_port()
        # Every broker gets its own admin port, so brokers started side by side never fight
        # over the default 127.0.0.1:9644. A test may choose its own --admin-listen.
        self.admin_port = free_port()
        self.proc = None
        self.starts = 0
        # A command that execs the broker (e.g. ["prlimit", "--nofile=256:256"]).
        self.prefix = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"weir-{self.starts}.log"

    def start(self, timeout=30.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.update(self.env)
        args = [*self.prefix, str(WEIR_BIN), "serve", "--listen", self.bootstrap,
                "--data-dir", str(self.data_dir), *self.extra_args]
        if not any(a.startswith("--admin-listen") for a in self.extra_args) \
                and "WEIR_ADMIN_LISTEN" not in self.env:
            args += ["--admin-listen", f"127.0.0.1:{self.admin_port}"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weir exited with {self.proc.returncode}:\n{self.log()}")
            if "weir is listening" in self.log():
                return self
            time.sleep(0.02)
        raise RuntimeError(f"weir did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout=30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._log.close()
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def restart(self):
        assert self.stop() == 0, self.log()
        return self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def cpu_seconds(self) -> float:
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"


@pytest.fixture
def make_broker(tmp_path):
    """Factory: make_broker(*extra_args, env={...}) -> started Broker. All are stopped at the end."""
    brokers = []

    def make(*extra_args, env=None, start=True):
        n = len(brokers)
        b = Broker(tmp_path / f"data{n}", tmp_path, extra_args, env)
        b.log_dir = tmp_path / f"logs{n}"
        b.log_dir.mkdir()
        brokers.append(b)
        return b.start() if start else b

    yield make
    for b in brokers:
        if b.alive():
            b.kill()


@pytest.fixture
def broker(make_broker):
    return make_broker()


def create_topic(bootstrap: str, name: str, partitions: int, config=None):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name]
    fut.result(timeout=15)


def consume_all(bootstrap: str, topic: str, partitions: int, expected: int, timeout=60.0):
    """Read every partition from offset 0 with manual assignment (no group).

    Returns {partition: [(offset, key, value), ...]} once `expected` messages arrived (or the
    timeout passed)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-unused",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = {p: [] for p in range(partitions)}
    n = 0
    deadline = time.monotonic() + timeout
    try:
        while n < expected and time.monotonic() < deadline:
            for m in c.consume(10000, 0.5):
                assert m.error() is None, m.error()
                out[m.partition()].append((m.offset(), m.key(), m.value()))
                n += 1
        # Anything beyond `expected` would be a duplicate: give it a moment to show up.
        for m in c.consume(10000, 0.5):
            assert m.error() is None, m.error()
            out[m.partition()].append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return out


def assert_dense(per_partition):
    for p, msgs in per_partition.items():
        offsets = [o for o, _, _ in msgs]
        assert offsets == list(range(len(offsets))), f"partition {p}: offsets not dense from 0"


def consume_to_end(bootstrap: str, topic: str, partitions: int, timeout=120.0):
    """Read every partition from offset 0 up to its high watermark as of the call (manual
    assignment). Unlike `consume_all` it does not need to know how many messages there are,
    so it sees duplicates too. Returns {partition: [(offset, key, value), ...]}."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-unused",
                  "enable.auto.commit": False})
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)}
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions) if ends[p] > 0])
    out = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + timeout
    try:
        while any(len(out[p]) < ends[p] for p in out) and time.monotonic() < deadline:
            for m in c.consume(10000, 0.5):
                assert m.error() is None, m.error()
                # Messages written after the call are not part of this read.
                if m.offset() < ends[m.partition()]:
                    out[m.partition()].append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    for p in out:
        assert len(out[p]) == ends[p], f"partition {p}: read {len(out[p])} of {ends[p]}"
    return out
