"""Retention by time and by size, and DeleteRecords, against the real binary with real clients.

Whole segments go: the segments of a partition whose newest record is older than retention.ms,
or the oldest while the partition is larger than retention.bytes. The log start offset moves
(ListOffsets earliest), the files are gone from disk, a consumer reading from the beginning
starts at the new start, and a fetch below it is OFFSET_OUT_OF_RANGE (the client resets per
auto.offset.reset). DeleteRecords moves the start offset on request. All of it survives a
restart. Settings are changed live with IncrementalAlterConfigs: no restart.
"""

import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from conftest import create_topic

CHECK = ("--log-retention-check-interval-ms", "200")
SEGMENT = "16384"


def set_config(bootstrap, topic, **configs):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(k.replace("_", "."), v, incremental_operation=AlterConfigOpType.SET)
        for k, v in configs.items()])
    admin.incremental_alter_configs([res])[res].result(timeout=15)


def watermarks(bootstrap, topic, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ret-unused"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def segments(broker, topic, partition=0):
    return sorted(p.name for p in broker.partition_dir(topic, partition).glob("*.log"))


def dir_bytes(broker, topic, partition=0):
    total = 0
    for p in broker.partition_dir(topic, partition).glob("*.log"):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass  # retention deleted it between the listing and the stat
    return total


def produce(bootstrap, topic, values, timestamp_ms=None, partition=0):
    # Small batches, so that small segments roll often.
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 2000})
    for v in values:
        if timestamp_ms is None:
            p.produce(topic, value=v, partition=partition)
        else:
            p.produce(topic, value=v, partition=partition, timestamp=timestamp_ms)
    assert p.flush(30) == 0


def read_from_beginning(bootstrap, topic, partition=0, reset="earliest"):
    """(first offset delivered, values) reading from offset 0 with auto.offset.reset."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ret-reader",
                  "auto.offset.reset": reset, "enable.partition.eof": True,
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, 0)])
    got = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == m.error()._PARTITION_EOF:
                    break
                raise KafkaException(m.error())
            got.append((m.offset(), m.value()))
    finally:
        c.close()
    return got


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def test_retention_by_time_deletes_old_segments_live(make_broker):
    b = make_broker(*CHECK)
    create_topic(b.bootstrap, "rt", 1, {"segment.bytes": SEGMENT})
    hour_ago = int(time.time() * 1000) - 3_600_000
    old = [b"old-%05d-" % i + b"x" * 200 for i in range(400)]
    fresh = [b"new-%05d-" % i + b"y" * 200 for i in range(100)]
    produce(b.bootstrap, "rt", old, timestamp_ms=hour_ago)
    produce(b.bootstrap, "rt", fresh)
    low, high = watermarks(b.bootstrap, "rt")
    assert (low, high) == (0, 500)
    before = segments(b, "rt")
    assert len(before) >= 5, before

    # The default (7 days) keeps an hour-old record; ten minutes does not.
    time.sleep(0.6)
    assert watermarks(b.bootstrap, "rt")[0] == 0
    set_config(b.bootstrap, "rt", retention_ms="600000")
    wait_until(lambda: watermarks(b.bootstrap, "rt")[0] > 0, 15, "the log start to move")
    low, high = watermarks(b.bootstrap, "rt")
    assert 0 < low <= 400 and high == 500
    after = segments(b, "rt")
    assert len(after) < len(before) and set(after) <= set(before), (before, after)
    # Only whole segments go: the one holding the first fresh record stays.
    got = read_from_beginning(b.bootstrap, "rt")
    assert got[0][0] == low
    assert [v for _, v in got][-100:] == fresh
    assert all(v.startswith(b"old-") for _, v in got[:-100])

    # The new start offset survives a restart (it is in the log checkpoint).
    b.restart()
    assert watermarks(b.bootstrap, "rt") == (low, 500)
    assert read_from_beginning(b.bootstrap, "rt")[0][0] == low


def test_an_expired_idle_log_is_emptied_and_takes_new_writes(make_broker):
    b = make_broker(*CHECK)
    create_topic(b.bootstrap, "rt-idle", 1, {"segment.bytes": SEGMENT})
    produce(b.bootstrap, "rt-idle", [b"v%d" % i for i in range(50)],
            timestamp_ms=int(time.time() * 1000) - 3_600_000)
    set_config(b.bootstrap, "rt-idle", retention_ms="1000")
    # Even the active segment expires (Kafka rolls a new empty one): everything goes.
    wait_until(lambda: watermarks(b.bootstrap, "rt-idle") == (50, 50), 15, "the log to empty")
    produce(b.bootstrap, "rt-idle", [b"after"])
    got = read_from_beginning(b.bootstrap, "rt-idle")
    assert got == [(50, b"after")]


def test_retention_by_size_keeps_the_partition_under_its_limit(make_broker):
    b = make_broker(*CHECK)
    create_topic(b.bootstrap, "rs", 1, {"segment.bytes": SEGMENT})
    values = [b"%06d-" % i + b"z" * 500 for i in range(1000)]
    produce(b.bootstrap, "rs", values)
    assert dir_bytes(b, "rs") > 500_000
    set_config(b.bootstrap, "rs", retention_bytes="100000")
    # Files go under the partition lock and the start offset is published right after:
    # wait for both rather than assume one implies the other at the same instant.
    wait_until(lambda: dir_bytes(b, "rs") <= 100_000 + int(SEGMENT)
               and watermarks(b.bootstrap, "rs")[0] > 0, 15, "size retention")
    low, high = watermarks(b.bootstrap, "rs")
    assert low > 0 and high == 1000
    got = read_from_beginning(b.bootstrap, "rs")
    assert got[0][0] == low and [v for _, v in got] == values[low:]


def test_a_fetch_below_the_start_offset_is_out_of_range(make_broker):
    b = make_broker(*CHECK)
    create_topic(b.bootstrap, "rr", 1, {"segment.bytes": SEGMENT})
    produce(b.bootstrap, "rr", [b"%04d" % i + b"q" * 300 for i in range(300)])
    set_config(b.bootstrap, "rr", retention_bytes="20000")
    wait_until(lambda: watermarks(b.bootstrap, "rr")[0] > 0, 15, "size retention")
    low, _ = watermarks(b.bootstrap, "rr")
    # auto.offset.reset=error: the consumer reports the out-of-range fetch instead of resetting.
    with pytest.raises(KafkaException) as e:
        read_from_beginning(b.bootstrap, "rr", reset="error")
    assert "OFFSET_OUT_OF_RANGE" in str(e.value) or "out of range" in str(e.value).lower()
    assert read_from_beginning(b.bootstrap, "rr", reset="earliest")[0][0] == low


def test_delete_records_moves_the_start_offset(make_broker):
    b = make_broker()
    create_topic(b.bootstrap, "dr", 2, {"segment.bytes": SEGMENT})
    produce(b.bootstrap, "dr", [b"%04d" % i + b"w" * 100 for i in range(500)], partition=0)
    produce(b.bootstrap, "dr", [b"p1-%d" % i for i in range(10)], partition=1)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    futs = admin.delete_records([TopicPartition("dr", 0, 321), TopicPartition("dr", 1, -1)])
    results = {tp.partition: f.result(timeout=15) for tp, f in futs.items()}
    assert results[0].low_watermark == 321
    assert results[1].low_watermark == 10, "offset -1: up to the high watermark"
    assert watermarks(b.bootstrap, "dr", 0) == (321, 500)
    got = read_from_beginning(b.bootstrap, "dr")
    assert got[0][0] == 321 and len(got) == 500 - 321
    # Whole segments below the new start are deleted from disk.
    assert all(int(name.split(".")[0]) + 0 >= 0 for name in segments(b, "dr"))
    first_base = int(segments(b, "dr")[0].split(".")[0])
    assert 0 < first_base <= 321
    # Past the high watermark: refused, nothing moves.
    fut = admin.delete_records([TopicPartition("dr", 0, 501)])
    with pytest.raises(KafkaException) as e:
        list(fut.values())[0].result(timeout=15)
    assert e.value.args[0].name() == "OFFSET_OUT_OF_RANGE"
    b.kill()
    b.start()
    assert watermarks(b.bootstrap, "dr", 0) == (321, 500), "durable before it was answered"
    assert read_from_beginning(b.bootstrap, "dr")[0][0] == 321


def deleted_files(broker, topic, partition=0):
    return sorted(p.name for p in broker.partition_dir(topic, partition).glob("*.deleted"))


@pytest.mark.parametrize("delay_ms", [0, 2500])
def test_file_delete_delay_keeps_deleted_segments_as_dot_deleted_files_for_a_while(make_broker,
                                                                                  delay_ms):
    """file.delete.delay.ms, as Kafka does it: the files of segments that retention deletes are
    first renamed to `*.deleted` (out of the log: the start offset has moved) and removed that
    much later; with 0 they go at once. Files left by a stop before the delay passed are
    removed when the broker opens the partition again."""
    b = make_broker(*CHECK)
    topic = f"rt-delay-{delay_ms}"
    create_topic(b.bootstrap, topic, 1, {"segment.bytes": SEGMENT,
                                         "file.delete.delay.ms": str(delay_ms)})
    produce(b.bootstrap, topic, [b"old-%05d-" % i + b"x" * 200 for i in range(400)],
            timestamp_ms=int(time.time() * 1000) - 3_600_000)
    produce(b.bootstrap, topic, [b"new-%05d" % i for i in range(10)])
    before = segments(b, topic)
    set_config(b.bootstrap, topic, retention_ms="600000")
    wait_until(lambda: watermarks(b.bootstrap, topic)[0] > 0, 15, "the log start to move")
    t_deleted = time.monotonic()
    gone = set(before) - set(segments(b, topic))
    assert gone, (before, segments(b, topic))
    if delay_ms == 0:
        assert deleted_files(b, topic) == []
        return
    renamed = deleted_files(b, topic)
    assert {n.removesuffix(".deleted") for n in renamed if n.endswith(".log.deleted")} == gone, \
        (renamed, gone)
    wait_until(lambda: deleted_files(b, topic) == [], 15, "the *.deleted files to be removed")
    waited = time.monotonic() - t_deleted
    assert waited >= delay_ms / 1000 - 0.5, f"removed after {waited:.2f}s"

    # DeleteRecords deletes segments the same way. A stop within the delay: the next open
    # removes what is left.
    set_config(b.bootstrap, topic, file_delete_delay_ms="600000")
    produce(b.bootstrap, topic, [b"more-%05d-" % i + b"z" * 200 for i in range(200)])
    high = watermarks(b.bootstrap, topic)[1]
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    tp = TopicPartition(topic, 0, high)
    admin.delete_records([tp])[tp].result(timeout=15)
    assert watermarks(b.bootstrap, topic)[0] == high
    assert deleted_files(b, topic) != []
    b.kill()
    b.start()
    assert deleted_files(b, topic) == []
    assert watermarks(b.bootstrap, topic) == (high, high)
