"""Log compaction against the real binary with real clients.

A compacted topic keeps, for every key, its latest record: after the cleaner has run, a
consumer reading the whole topic sees exactly one record per key in the cleaned part, and it is
the latest value (checked against a model of what was produced); disk use drops; tombstones
delete their key and disappear themselves after delete.retention.ms. The cleaner is crash-safe:
kill -9 at random moments during cleaning never loses or resurrects a record.

The active segment is never cleaned (as in Kafka), so each test ends its updates with a few
"filler" records on other keys that roll the updates into closed segments, and checks the model
keys only.
"""

import os
import random
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from conftest import create_topic

CLEANER = ("--log-cleaner-backoff-ms", "100")
TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.bytes": "1048576",
                "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "1000"}


def produce_updates(bootstrap, topic, updates, fillers=50):
    """updates: [(key, value or None)]; then `fillers` records on filler keys, enough to
    roll the segment holding the last update."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 1000000, "compression.type": "lz4"})
    def send(k, v):
        while True:
            try:
                p.produce(topic, key=k, value=v, partition=0)
                return
            except BufferError:
                p.poll(0.05)

    for k, v in updates:
        send(k, v)
    for i in range(fillers):
        # Incompressible, and different each (a batch compresses repeats): the fillers
        # really fill the segment.
        send(b"filler-%d" % i, os.urandom(30_000))
    assert p.flush(120) == 0


def read_all(bootstrap, topic):
    """[(offset, key, value)] of partition 0 from the start to the end."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-reader",
                  "auto.offset.reset": "earliest", "enable.partition.eof": True,
                  "enable.auto.commit": False, "fetch.max.bytes": 50 * 1024 * 1024})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            msgs = c.consume(10000, 1.0)
            eof = False
            for m in msgs:
                if m.error():
                    eof = True
                    break
                out.append((m.offset(), m.key(), m.value()))
            if eof:
                break
    finally:
        c.close()
    return out


def data_bytes(broker, topic):
    return sum(p.stat().st_size for p in broker.partition_dir(topic, 0).glob("*.log"))


def check_against_model(records, model):
    """Every model key: exactly one record, the latest value; a deleted key (None in the
    model): no record at all once its tombstone is gone, else only the tombstone. Offsets
    strictly increase (gaps are allowed)."""
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(set(offsets)), "offsets must strictly increase"
    seen = {}
    for o, k, v in records:
        if k is None or k.startswith(b"filler-"):
            continue
        assert k not in seen, f"key {k!r} appears twice (offsets {seen[k][0]} and {o})"
        seen[k] = (o, v)
    for k, v in model.items():
        if v is None:
            assert k not in seen or seen[k][1] is None, f"deleted key {k!r} resurrected: {seen[k]}"
        else:
            assert k in seen, f"key {k!r} lost"
            assert seen[k][1] == v, f"key {k!r}: {seen[k][1]!r} instead of the latest {v!r}"
    assert set(seen) <= set(model), "records on keys never written"
    return seen


def wait_for_clean(bootstrap, topic, model, timeout):
    """Poll until the read matches the model (the cleaner has reached every update)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        records = read_all(bootstrap, topic)
        try:
            return records, check_against_model(records, model)
        except AssertionError as e:
            last = e
        time.sleep(1.0)
    raise AssertionError(f"not compacted after {timeout}s: {last}")


def test_a_million_updates_over_ten_thousand_keys_compact_to_the_latest_values(make_broker):
    b = make_broker(*CLEANER)
    create_topic(b.bootstrap, "cmp", 1, TOPIC_CONFIG)
    rng = random.Random(7)
    model, updates = {}, []
    for i in range(1_000_000):
        k = b"key-%05d" % rng.randrange(10_000)
        v = b"%s=%07d" % (k, i)
        model[k] = v
        updates.append((k, v))
    produce_updates(b.bootstrap, "cmp", updates)
    # The cleaner starts while the updates still arrive, so the disk never holds them all:
    # compare with the bytes of keys and values produced.
    produced_bytes = sum(len(k) + len(v) for k, v in updates)
    records, seen = wait_for_clean(b.bootstrap, "cmp", model, timeout=240)
    assert len(seen) == len(model) == 10_000
    after = data_bytes(b, "cmp")
    print(f"compaction: {produced_bytes} bytes of keys and values produced, {after} bytes on "
          f"disk after cleaning (1.5 MB of it filler), {len(records)} records left")
    assert after < produced_bytes / 10, (produced_bytes, after)

    # Tombstones: 1,000 keys deleted; after delete.retention.ms they are gone entirely.
    deleted = [b"key-%05d" % i for i in range(0, 10_000, 10)]
    for k in deleted:
        model[k] = None
    produce_updates(b.bootstrap, "cmp", [(k, None) for k in deleted])
    deadline = time.monotonic() + 120
    while True:
        records, seen = wait_for_clean(b.bootstrap, "cmp", model, timeout=120)
        if not any(k in seen for k in deleted) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert not any(k in seen for k in deleted), "tombstones outlived delete.retention.ms"
    assert len(seen) == 9_000


def test_kill_9_during_compaction_loses_and_resurrects_nothing(make_broker):
    b = make_broker(*CLEANER)
    create_topic(b.bootstrap, "cmpk", 1, TOPIC_CONFIG)
    rng = random.Random(11)
    model = {}
    for round_ in range(4):
        updates = []
        for i in range(100_000):
            k = b"k%04d" % rng.randrange(2_000)
            v = None if rng.random() < 0.05 else b"%d-%d" % (round_, i)
            model[k] = v
            updates.append((k, v))
        produce_updates(b.bootstrap, "cmpk", updates, fillers=40)
        # Kill the broker at random moments while the cleaner works on what was produced.
        for _ in range(4):
            # The cleaner starts within its 100 ms backoff and a pass takes a few hundred ms.
            time.sleep(rng.uniform(0.0, 0.5))
            b.kill()
            leftovers = [n for n in os.listdir(b.partition_dir("cmpk", 0))
                         if n.endswith((".cleaned", ".swap"))]
            b.start()
            if leftovers:
                print(f"round {round_}: killed mid-clean, files {leftovers}")
    wait_for_clean(b.bootstrap, "cmpk", model, timeout=180)
    b.kill()
    b.start()
    check_against_model(read_all(b.bootstrap, "cmpk"), model)


def test_switching_a_live_topic_to_compact_compacts_it(make_broker):
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, ResourceType)
    b = make_broker(*CLEANER)
    create_topic(b.bootstrap, "cmps", 1, {"segment.bytes": "1048576",
                                          "min.cleanable.dirty.ratio": "0.01"})
    model, updates = {}, []
    for i in range(50_000):
        k = b"s%03d" % (i % 500)
        model[k] = b"%d" % i
        updates.append((k, model[k]))
    produce_updates(b.bootstrap, "cmps", updates)
    time.sleep(1.0)
    assert len(read_all(b.bootstrap, "cmps")) >= 50_000, "delete policy: nothing compacted"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource(ResourceType.TOPIC, "cmps", incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(timeout=15)
    records, seen = wait_for_clean(b.bootstrap, "cmps", model, timeout=60)
    assert len(seen) == 500


def control_batch_offsets(broker, topic):
    """Base offsets of the control batches (commit/abort markers) in partition 0's segment
    files, read from disk: clients never see markers, so this is the only way to check."""
    out = []
    for f in sorted(broker.partition_dir(topic, 0).glob("*.log")):
        data = f.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base = int.from_bytes(data[pos:pos + 8], "big", signed=True)
            length = int.from_bytes(data[pos + 8:pos + 12], "big", signed=True)
            attributes = int.from_bytes(data[pos + 21:pos + 23], "big")
            if length <= 0:
                break
            if attributes & 0x20:
                out.append(base)
            pos += 12 + length
    return out


def read_committed(bootstrap, topic):
    """{key: value} read with isolation.level=read_committed up to the LSO, and whether the
    LSO equals the high watermark (nothing left open)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-rc",
                  "auto.offset.reset": "earliest", "enable.partition.eof": True,
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    u = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-ru"})
    try:
        lso = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
        hw = u.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
        c.assign([TopicPartition(topic, 0, 0)])
        seen = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                break
            seen[m.key()] = m.value()
        return seen, lso == hw
    finally:
        c.close()
        u.close()


def test_markers_of_emptied_transactions_go_and_a_restart_reads_committed(make_broker):
    """Kafka's rule for markers: a commit or abort marker stays while any batch of its
    transaction is left, then until its delete horizon, then goes. An aborted transaction
    and a committed one whose values were all superseded lose their data and then their
    markers; the last transaction keeps both. After kill -9 and a restart the producer
    state rebuilt from the cleaned log leaves nothing open: read_committed reaches the end."""
    b = make_broker(*CLEANER)
    topic = "cmptxn"
    create_topic(b.bootstrap, topic, 1, TOPIC_CONFIG)
    keys = [b"k%d" % i for i in range(100)]
    tp = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "cmp-txn",
                   "linger.ms": 5})
    tp.init_transactions(30)

    def txn(records, commit):
        tp.begin_transaction()
        for k, v in records:
            tp.produce(topic, key=k, value=v, partition=0)
        if commit:
            tp.commit_transaction(30)
        else:
            # abort_transaction purges what is still queued: send it first, so the
            # aborted records are really in the log.
            assert tp.flush(30) == 0
            tp.abort_transaction(30)

    txn([(k, b"aborted") for k in keys], commit=False)
    txn([(k, b"v2") for k in keys], commit=True)
    model = {k: b"v3" for k in keys}
    produce_updates(b.bootstrap, topic, list(model.items()), fillers=0)
    txn([(b"tail", b"last")], commit=True)
    model[b"tail"] = b"last"
    assert len(control_batch_offsets(b, topic)) == 3
    produce_updates(b.bootstrap, topic, [], fillers=50)

    deadline = time.monotonic() + 60
    while len(control_batch_offsets(b, topic)) != 1:
        assert time.monotonic() < deadline, \
            f"markers left after 60 s: {control_batch_offsets(b, topic)}"
        time.sleep(0.5)

    seen, settled = read_committed(b.bootstrap, topic)
    assert settled, "the LSO should equal the high watermark"
    check_against_model(
        [(i, k, v) for i, (k, v) in enumerate(sorted(seen.items()))], model)

    b.kill()
    b.start()
    # A new transaction after the restart commits and is visible: nothing old is open.
    txn_after = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "cmp-txn-2"})
    txn_after.init_transactions(30)
    txn_after.begin_transaction()
    txn_after.produce(topic, key=b"after", value=b"restart", partition=0)
    txn_after.commit_transaction(30)
    model[b"after"] = b"restart"
    seen, settled = read_committed(b.bootstrap, topic)
    assert settled, "the LSO is stuck below the high watermark after the restart"
    check_against_model(
        [(i, k, v) for i, (k, v) in enumerate(sorted(seen.items()))], model)


def test_segments_replaced_by_a_clean_wait_file_delete_delay_as_dot_deleted_files(make_broker):
    """file.delete.delay.ms covers compaction too, as in Kafka: the .log files a clean
    replaces are renamed to `*.deleted` in the swap and removed after the delay; with 0 they
    go at once."""
    b = make_broker(*CLEANER)
    for delay_s in (0, 3):
        topic = f"cmpd-{delay_s}"
        create_topic(b.bootstrap, topic, 1, {**TOPIC_CONFIG,
                                            "file.delete.delay.ms": str(delay_s * 1000)})
        model, updates = {}, []
        for i in range(20_000):
            k = b"d%03d" % (i % 200)
            model[k] = b"%d" % i
            updates.append((k, model[k]))
        produce_updates(b.bootstrap, topic, updates)
        d = b.partition_dir(topic, 0)
        if delay_s == 0:
            wait_for_clean(b.bootstrap, topic, model, timeout=60)
            assert not any(d.glob("*.deleted"))
            continue
        # Watch the directory: when each *.deleted file appears and when it goes.
        first_seen, gone = {}, {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = time.monotonic()
            present = {p.name for p in d.glob("*.deleted")}
            for n in present:
                first_seen.setdefault(n, now)
            for n in set(first_seen) - present:
                gone.setdefault(n, now)
            if first_seen and len(gone) == len(first_seen) and now - max(first_seen.values()) > 5:
                break
            time.sleep(0.05)
        check_against_model(read_all(b.bootstrap, topic), model)
        assert first_seen and all(n.endswith(".log.deleted") for n in first_seen), first_seen
        assert len(gone) == len(first_seen), "a *.deleted file was never removed"
        lived = [gone[n] - first_seen[n] for n in first_seen]
        # Seen within 50 ms of the rename; removed after the 3 s delay (and not much later).
        assert all(delay_s - 0.5 <= t <= delay_s + 5 for t in lived), lived
