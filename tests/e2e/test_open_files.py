"""More segments than file descriptors: the broker keeps at most half its descriptor limit
open (least recently used synced files are closed and reopened when read), so a node whose
partitions hold many segments neither runs out of descriptors nor loses data.

The broker runs under `prlimit --nofile=256:256` (so it keeps at most 128 data files open)
with 64 KiB segments; 24 MiB in 4 partitions make about 400 segments."""

import os
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from conftest import create_topic
from ops_http import scrape, total

LIMIT = 256
PARTITIONS = 4
PER_PARTITION = 6000  # x 1 KiB


def value(part: int, seq: int) -> bytes:
    return (b"%d/%d:" % (part, seq)).ljust(1024, b"v")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def read_all(bootstrap: str) -> dict:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fd-unused",
                  "enable.auto.commit": False})
    c.assign([TopicPartition("many-segments", p, 0) for p in range(PARTITIONS)])
    got = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + 90
    try:
        while sum(map(len, got.values())) < PARTITIONS * PER_PARTITION:
            assert time.monotonic() < deadline, "timed out reading"
            for m in c.consume(5000, 0.5):
                assert m.error() is None, m.error()
                got[m.partition()].append((m.offset(), m.value()))
    finally:
        c.close()
    return got


def check(got: dict):
    for part in range(PARTITIONS):
        assert [o for o, _ in got[part]] == list(range(PER_PARTITION)), f"partition {part}"
        assert all(v == value(part, seq) for seq, (_, v) in enumerate(got[part])), part


def test_more_segments_than_descriptors(make_broker):
    b = make_broker(start=False)
    b.prefix = ["prlimit", f"--nofile={LIMIT}:{LIMIT}"]
    b.start()
    create_topic(b.bootstrap, "many-segments", PARTITIONS, {"segment.bytes": str(64 * 1024)})
    # Small batches, so segments fill with several each and roll often.
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "acks": "all",
                  "batch.size": 16384})
    most = 0
    for seq in range(PER_PARTITION):
        for part in range(PARTITIONS):
            p.produce("many-segments", value=value(part, seq), partition=part)
        if seq % 500 == 0:
            p.poll(0)
            most = max(most, open_fds(b.proc.pid))
    assert p.flush(60) == 0
    segments = sum(len([f for f in os.listdir(b.partition_dir("many-segments", i))
                        if f.endswith(".log")]) for i in range(PARTITIONS))
    assert segments > LIMIT, f"only {segments} segments"
    m = scrape(b.admin_url)
    assert total(m, "weir_storage_file_evictions_total") > 0
    assert total(m, "weir_storage_open_files") <= LIMIT // 2 + 64
    # Every segment is read again (reopened), and the descriptors stay under the limit.
    check(read_all(b.bootstrap))
    most = max(most, open_fds(b.proc.pid))
    assert most < LIMIT, most

    # A restart opens the logs without opening every old segment, and reads them all.
    assert b.stop() == 0, b.log()
    b.start()
    check(read_all(b.bootstrap))
    assert open_fds(b.proc.pid) < LIMIT
    assert "Too many open files" not in b.log()
