"""Fetches served from the page cache (sendfile), read by real clients.

Records are written across several segments of several partitions, then read back whole by
confluent-kafka (flexible Fetch versions, topic ids) and by kafka-python pinned to Kafka 2.0
(Fetch v8, before the flexible versions), read_committed and read_uncommitted, with small
and large fetch sizes. Every value must come back exactly, in order, once; the broker's
sendfile counter shows the bytes did go out by sendfile and not by the copy path."""

import hashlib
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from conftest import create_topic
from ops_http import scrape, total

PARTITIONS = 3
PER_PARTITION = 3000
# Segments roll every MiB (Kafka's minimum segment.bytes), so each partition spans several.
SEGMENT_BYTES = 1024 * 1024


def payload(partition: int, seq: int) -> bytes:
    """1 KiB, different for every record, checkable without keeping a copy."""
    seed = hashlib.sha256(b"%d/%d" % (partition, seq)).digest()
    return (seed * 32)[:1024]


def fill(bootstrap: str, topic: str):
    create_topic(bootstrap, topic, PARTITIONS, {"segment.bytes": str(SEGMENT_BYTES)})
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    for seq in range(PER_PARTITION):
        for part in range(PARTITIONS):
            p.produce(topic, value=payload(part, seq), key=b"%d" % seq, partition=part)
        if seq % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def check(got: dict):
    for part in range(PARTITIONS):
        msgs = got[part]
        assert len(msgs) == PER_PARTITION, f"partition {part}: {len(msgs)} records"
        for seq, (offset, key, value) in enumerate(msgs):
            assert offset == seq and key == b"%d" % seq, f"partition {part} record {seq}"
            assert value == payload(part, seq), f"partition {part} record {seq}: wrong bytes"


def read_confluent(bootstrap: str, topic: str, **conf) -> dict:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "zc-unused",
                  "enable.auto.commit": False, **conf})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + 60
    try:
        while sum(map(len, got.values())) < PARTITIONS * PER_PARTITION:
            assert time.monotonic() < deadline, "timed out reading"
            for m in c.consume(5000, 0.5):
                assert m.error() is None, m.error()
                got[m.partition()].append((m.offset(), m.key(), m.value()))
        # A duplicate would show up here.
        for m in c.consume(5000, 1.0):
            assert m.error() is None, m.error()
            got[m.partition()].append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return got


def sendfile_bytes(broker) -> float:
    return total(scrape(broker.admin_url), "weir_fetch_sendfile_bytes_total")


def test_confluent_kafka_reads_segments_sent_by_sendfile(broker):
    fill(broker.bootstrap, "zc")
    data = PARTITIONS * PER_PARTITION * 1024
    before = sendfile_bytes(broker)
    check(read_confluent(broker.bootstrap, "zc"))
    after = sendfile_bytes(broker)
    # Nearly all record bytes went by sendfile (a small tail of a fetch may be copied).
    assert after - before >= data * 0.8, (before, after, data)

    # Small partition fetches: ranges end mid-segment and segment ends fall inside a fetch.
    check(read_confluent(broker.bootstrap, "zc", **{
        "fetch.max.bytes": 100_000, "message.max.bytes": 50_000,
        "max.partition.fetch.bytes": 40_000}))
    # read_committed: the response carries an (empty) aborted-transactions list beside the
    # file records.
    check(read_confluent(broker.bootstrap, "zc", **{"isolation.level": "read_committed"}))
    assert sendfile_bytes(broker) - after >= data * 1.5
    m = scrape(broker.admin_url)
    assert total(m, "weir_fetch_copied_file_bytes_total") == 0


def test_kafka_python_reads_sendfile_fetches_before_the_flexible_versions(broker):
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition as KTP

    fill(broker.bootstrap, "zc-old")
    before = sendfile_bytes(broker)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=(2, 0),
                      enable_auto_commit=False, group_id=None,
                      max_partition_fetch_bytes=256 * 1024, fetch_max_bytes=1024 * 1024)
    c.assign([KTP("zc-old", p) for p in range(PARTITIONS)])
    c.seek_to_beginning()
    got = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + 90
    try:
        while sum(map(len, got.values())) < PARTITIONS * PER_PARTITION:
            assert time.monotonic() < deadline, "timed out reading"
            for tp, records in c.poll(timeout_ms=500, max_records=5000).items():
                got[tp.partition].extend((r.offset, r.key, r.value) for r in records)
        for tp, records in c.poll(timeout_ms=1000).items():
            got[tp.partition].extend((r.offset, r.key, r.value) for r in records)
    finally:
        c.close()
    check(got)
    assert sendfile_bytes(broker) - before >= PARTITIONS * PER_PARTITION * 1024 * 0.8
