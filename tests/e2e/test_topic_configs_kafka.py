"""Kafka's whole topic config set, through real clients against the real binary.

CreateTopics / AlterConfigs / IncrementalAlterConfigs accept every topic config Kafka 3.9
knows, with Kafka's validation (INVALID_CONFIG with the reason), and DescribeConfigs reports
them; compression.type re-encodes batches on append (checked in the segment files); the
message.timestamp.before/after.max.ms window refuses records with INVALID_TIMESTAMP; a batch
refused because of some records names them (KIP-467 record_errors), so librdkafka fails
exactly those messages; kafka-python's describe_configs on the BROKER resource reports the
broker's settings with sources and synonyms.
"""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewTopic, ResourceType)

import kafka_raw
from conftest import create_topic

CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def describe(admin, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res])[res].result(timeout=15)


def incremental(admin, topic, *ops):
    res = ConfigResource(ResourceType.TOPIC, topic,
                         incremental_configs=[ConfigEntry(n, v, incremental_operation=op)
                                              for n, v, op in ops])
    return admin.incremental_alter_configs([res])[res].result(timeout=15)


KAFKA_CONFIGS = {
    "compression.type": "zstd",
    "compression.zstd.level": "5",
    "min.insync.replicas": "1",
    "unclean.leader.election.enable": "false",
    "message.timestamp.before.max.ms": "86400000",
    "message.timestamp.after.max.ms": "3600000",
    "segment.index.bytes": "1048576",
    "segment.jitter.ms": "1000",
    "file.delete.delay.ms": "30000",
    "preallocate": "true",
    "message.format.version": "2.8",
    "message.downconversion.enable": "false",
    "local.retention.ms": "-2",
    "leader.replication.throttled.replicas": "*",
}


def test_create_topics_accepts_kafka_topic_configs_and_describe_reports_them(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("kc-a", 1, 1, config=KAFKA_CONFIGS)])["kc-a"].result(15)
    d = describe(admin, "kc-a")
    for name, value in KAFKA_CONFIGS.items():
        assert (d[name].value, d[name].source) == (value, ConfigSource.DYNAMIC_TOPIC_CONFIG.value), name
    # Those not given report Kafka's defaults.
    assert (d["compression.gzip.level"].value, d["compression.gzip.level"].source) == \
        ("-1", ConfigSource.DEFAULT_CONFIG.value)
    assert d["message.timestamp.difference.max.ms"].value == str(2**63 - 1)
    assert d["remote.storage.enable"].value == "false"
    assert d["segment.index.bytes"].synonyms["log.index.size.max.bytes"].value == "10485760"

    # IncrementalAlterConfigs and AlterConfigs take them too.
    incremental(admin, "kc-a", ("compression.type", "gzip", AlterConfigOpType.SET),
                ("compression.gzip.level", "9", AlterConfigOpType.SET),
                ("preallocate", None, AlterConfigOpType.DELETE))
    d = describe(admin, "kc-a")
    assert d["compression.type"].value == "gzip" and d["compression.gzip.level"].value == "9"
    assert (d["preallocate"].value, d["preallocate"].source) == ("false", ConfigSource.DEFAULT_CONFIG.value)
    res = ConfigResource(ResourceType.TOPIC, "kc-a",
                         set_config={"compression.type": "lz4", "min.insync.replicas": "2"})
    admin.alter_configs([res])[res].result(timeout=15)
    d = describe(admin, "kc-a")
    assert (d["compression.type"].value, d["min.insync.replicas"].value) == ("lz4", "2")
    assert d["message.format.version"].source == ConfigSource.DEFAULT_CONFIG.value

    # Kept across a restart.
    broker.restart()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert describe(admin, "kc-a")["compression.type"].value == "lz4"


@pytest.mark.parametrize("name,value,reason", [
    ("compression.type", "brotli", "String must be one of"),
    ("compression.gzip.level", "12", "between 1 and 9"),
    ("compression.zstd.level", "23", "no more than 22"),
    ("min.insync.replicas", "0", "at least 1"),
    ("preallocate", "maybe", "true or false"),
    ("message.timestamp.before.max.ms", "-1", "at least 0"),
    ("segment.jitter.ms", "soon", "Not a number"),
    ("message.format.version", "9.9", "not a valid version"),
    ("remote.storage.enable", "true", "Tiered Storage"),
    ("compresion.type", "gzip", "Unknown topic config name: compresion.type"),
])
def test_unknown_names_and_bad_values_get_invalid_config_with_the_reason(broker, name, value, reason):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic("kc-bad", 1, 1, config={name: value})])["kc-bad"].result(15)
    err = e.value.args[0]
    assert err.name() == "INVALID_CONFIG", err
    assert name in err.str() and reason in err.str(), err.str()

    create_topic(broker.bootstrap, "kc-b", 1)
    with pytest.raises(KafkaException) as e:
        incremental(admin, "kc-b", (name, value, AlterConfigOpType.SET))
    err = e.value.args[0]
    assert err.name() == "INVALID_CONFIG" and reason in err.str(), err.str()


def consume(bootstrap, topic, n, isolation="read_uncommitted", timeout=30.0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}-{time.time()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": isolation})
    c.subscribe([topic])
    got, deadline = [], time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m)
    c.close()
    return got


@pytest.mark.parametrize("topic_codec,producer_codec", [
    ("gzip", "none"), ("zstd", "lz4"), ("snappy", "gzip"), ("lz4", "zstd"),
    ("uncompressed", "snappy"), ("producer", "snappy"),
])
def test_compression_type_recompresses_batches_on_append(broker, topic_codec, producer_codec):
    topic = f"kc-z-{topic_codec}"
    create_topic(broker.bootstrap, topic, 1, {"compression.type": topic_codec})
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": producer_codec,
                  "enable.idempotence": True, "linger.ms": 20})
    now = int(time.time() * 1000)
    sent = [(f"k{i}".encode(), (f"value {i} " * 40).encode(), now - 1000 + i) for i in range(300)]
    for k, v, ts in sent:
        p.produce(topic, key=k, value=v, timestamp=ts, headers=[("h", k)])
    assert p.flush(30) == 0

    batches = kafka_raw.segment_batches(broker.partition_dir(topic, 0))
    assert batches and sum(b[2] for b in batches) == 300, batches
    want = CODECS.get(topic_codec, CODECS.get(producer_codec, 2))
    assert {b[1] & 0x7 for b in batches} == {want}, batches
    # Offsets stay dense across re-encoded batches.
    assert [b[0] for b in batches] == [sum(x[2] for x in batches[:i]) for i in range(len(batches))]

    got = consume(broker.bootstrap, topic, 300)
    assert [(m.key(), m.value(), m.timestamp()[1], m.headers()) for m in got] == \
        [(k, v, ts, [("h", k)]) for k, v, ts in sent]
    assert [m.offset() for m in got] == list(range(300))


@pytest.mark.parametrize("codec,low,high", [("gzip", 1, 9), ("lz4", 1, 12), ("zstd", 1, 19)])
def test_compression_levels_are_applied_when_recompressing(broker, codec, low, high):
    """compression.<codec>.level reaches the encoder: the same records, re-encoded at a
    higher level, take fewer bytes on disk, and read back unchanged."""
    import random
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
             for _ in range(400)]
    values = [" ".join(rng.choice(words) for _ in range(60)).encode() for _ in range(2000)]
    sizes = {}
    for level in (low, high):
        topic = f"kc-lvl-{codec}-{level}"
        create_topic(broker.bootstrap, topic, 1, {"compression.type": codec,
                                                  f"compression.{codec}.level": str(level)})
        p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "none",
                      "linger.ms": 500, "batch.num.messages": 200})
        for v in values:
            p.produce(topic, value=v)
        assert p.flush(30) == 0
        batches = kafka_raw.segment_batches(broker.partition_dir(topic, 0))
        assert {b[1] & 0x7 for b in batches} == {CODECS[codec]}, batches
        sizes[level] = sum(f.stat().st_size
                           for f in broker.partition_dir(topic, 0).glob("*.log"))
        assert [m.value() for m in consume(broker.bootstrap, topic, len(values))] == values
    print(f"{codec}: level {low} {sizes[low]} bytes, level {high} {sizes[high]} bytes")
    assert sizes[high] < sizes[low] * 0.97, sizes


def test_recompressed_transactional_batches_stay_transactional(broker):
    create_topic(broker.bootstrap, "kc-txn", 1, {"compression.type": "gzip"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "kc-txn-1",
                  "compression.type": "none"})
    p.init_transactions(15)
    p.begin_transaction()
    for i in range(10):
        p.produce("kc-txn", key=b"a", value=b"aborted %d" % i)
    p.abort_transaction(15)
    p.begin_transaction()
    for i in range(10):
        p.produce("kc-txn", key=b"c", value=b"committed %d" % i)
    p.commit_transaction(15)
    batches = kafka_raw.segment_batches(broker.partition_dir("kc-txn", 0))
    data = [b for b in batches if not b[1] & 0x20]
    assert data and all(b[1] & 0x7 == 1 and b[1] & 0x10 for b in data), batches
    got = consume(broker.bootstrap, "kc-txn", 10, isolation="read_committed")
    assert [m.value() for m in got] == [b"committed %d" % i for i in range(10)]


def test_timestamps_outside_the_window_are_refused_with_invalid_timestamp(broker):
    create_topic(broker.bootstrap, "kc-ts", 1, {"message.timestamp.before.max.ms": "3600000",
                                                 "message.timestamp.after.max.ms": "60000"})
    reports = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "retries": 0})
    now = int(time.time() * 1000)
    for ts in [now, now - 2 * 3600_000, now + 600_000, now - 60_000, now + 30_000]:
        p.produce("kc-ts", value=str(ts).encode(), timestamp=ts,
                  on_delivery=lambda err, msg: reports.append((err, msg.value())))
        p.flush(15)
    errors = [err.name() if err else None for err, _ in reports]
    assert errors == [None, "INVALID_TIMESTAMP", "INVALID_TIMESTAMP", None, None], reports
    got = consume(broker.bootstrap, "kc-ts", 3)
    assert [m.value() for m in got] == [str(t).encode() for t in [now, now - 60_000, now + 30_000]]

    # The raw answer (Produce v8): the bad records by index, Kafka's summary, nothing written.
    now = int(time.time() * 1000)
    batch = kafka_raw.record_batch([(None, b"ok", now), (None, b"old", now - 7200_000),
                                    (None, b"ok", now), (None, b"future", now + 120_000)])
    error, base_offset, record_errors, message = kafka_raw.produce_v8(broker.port, "kc-ts", 0, batch)
    assert (error, base_offset) == (32, -1)
    assert [i for i, _ in record_errors] == [1, 3], record_errors
    assert f"Timestamp {now - 7200_000} of message with offset 1 is out of range" in record_errors[0][1]
    assert message == "One or more records have been rejected due to invalid timestamp"
    assert len(consume(broker.bootstrap, "kc-ts", 4, timeout=5)) == 3


def produce_batch(bootstrap, topic, keys):
    """Produce one record per key in a single batch (linger); the delivery error of each."""
    reports = {}
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 500, "retries": 0})
    for i, key in enumerate(keys):
        p.produce(topic, key=key, value=b"v%d" % i,
                  on_delivery=lambda err, msg, i=i: reports.__setitem__(i, err))
    assert p.flush(15) == 0
    return [reports[i] and reports[i].code() for i in range(len(keys))]


def test_keyless_records_fail_exactly_their_messages_in_a_batch(broker):
    create_topic(broker.bootstrap, "kc-k", 1, {"cleanup.policy": "compact"})
    invalid, different = KafkaError.INVALID_RECORD, KafkaError._INVALID_DIFFERENT_RECORD
    # Two bad records: librdkafka (KIP-467) fails those with INVALID_RECORD and the rest of
    # the batch with _INVALID_DIFFERENT_RECORD.
    got = produce_batch(broker.bootstrap, "kc-k", [b"a", None, b"c", None, b"e"])
    assert got == [different, invalid, different, invalid, different], got
    # One bad record: librdkafka 2.16 reports the partition's error (INVALID_RECORD) for
    # every message of the batch (rd_kafka_dr_msgq0 forces it when record_errors has a
    # single entry); the raw tests check what the broker answers.
    got = produce_batch(broker.bootstrap, "kc-k", [b"a", b"b", None, b"d"])
    assert got == [invalid] * 4, got
    assert consume(broker.bootstrap, "kc-k", 1, timeout=5) == []
    assert produce_batch(broker.bootstrap, "kc-k", [b"a", b"b"]) == [None, None]


def test_record_errors_name_each_bad_record_of_a_raw_produce_v8(broker):
    create_topic(broker.bootstrap, "kc-raw", 1, {"cleanup.policy": "compact"})
    now = int(time.time() * 1000)
    batch = kafka_raw.record_batch([(b"a", b"1", now), (None, b"2", now), (b"c", b"3", now),
                                    (None, b"4", now)])
    error, base_offset, record_errors, message = kafka_raw.produce_v8(broker.port, "kc-raw", 0, batch)
    assert (error, base_offset) == (87, -1)
    assert record_errors == [
        (1, "Compacted topic cannot accept message without key in topic partition kc-raw-0"),
        (3, "Compacted topic cannot accept message without key in topic partition kc-raw-0"),
    ]
    assert message.startswith("One or more records have been rejected due to 2 record errors"), message
    assert "RecordError(batchIndex=1, message='Compacted topic cannot accept message" in message
    ok = kafka_raw.record_batch([(b"a", b"1", now)])
    assert kafka_raw.produce_v8(broker.port, "kc-raw", 0, ok)[:3] == (0, 0, [])


def test_kafka_python_describe_configs_on_the_broker_reports_settings_sources_and_synonyms(make_broker):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType
    b = make_broker("--compression-type", "gzip", "--log-message-timestamp-after-max-ms", "60000")
    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        res = KConfigResource(ConfigResourceType.BROKER, "0")
        every = ka.describe_configs([res], include_synonyms=True, config_filter="all")["broker"]["0"]
        static = ka.describe_configs([res], config_filter="static")["broker"]["0"]
    finally:
        ka.close()
    assert len(every) > 40, sorted(every)
    assert all(c["config_source"] in ("STATIC_BROKER_CONFIG", "DEFAULT_CONFIG") for c in every.values())
    c = every["compression.type"]
    assert (c["value"], c["config_source"]) == ("gzip", "STATIC_BROKER_CONFIG"), c
    assert [(s["value"], s["source"]) for s in c["synonyms"]] == \
        [("gzip", "STATIC_BROKER_CONFIG"), ("producer", "DEFAULT_CONFIG")]
    for name in ("min.insync.replicas", "log.message.timestamp.before.max.ms", "log.roll.jitter.ms",
                 "log.index.size.max.bytes", "log.segment.delete.delay.ms", "log.preallocate",
                 "unclean.leader.election.enable"):
        assert every[name]["config_source"] == "DEFAULT_CONFIG", (name, every.get(name))
    assert {"compression.type", "log.message.timestamp.after.max.ms"} <= set(static), sorted(static)

    # The broker defaults are the topics' defaults: a new topic recompresses with gzip.
    create_topic(b.bootstrap, "kc-bd", 1)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    d = describe(admin, "kc-bd")["compression.type"]
    assert (d.value, d.source) == ("gzip", ConfigSource.STATIC_BROKER_CONFIG.value)
    p = Producer({"bootstrap.servers": b.bootstrap, "compression.type": "none"})
    p.produce("kc-bd", value=b"x" * 1000)
    p.flush(15)
    assert [a & 0x7 for _, a, _ in kafka_raw.segment_batches(b.partition_dir("kc-bd", 0))] == [1]


def allocated_and_size(path):
    st = path.stat()
    return st.st_blocks * 512, st.st_size


@pytest.mark.parametrize("preallocate", ["true", "false"])
def test_preallocate_reserves_the_active_segment_and_a_roll_gives_back_the_rest(make_broker,
                                                                               preallocate):
    """`preallocate=true`: the active segment's disk blocks are reserved up to segment.bytes
    when it is created (its length stays what was written, so readers and recovery see only
    data); a rolled segment keeps only the blocks it uses. With false nothing is reserved.
    The data reads back after a kill -9 either way."""
    b = make_broker()
    topic, segment = f"prealloc-{preallocate}", 1 << 20
    create_topic(b.bootstrap, topic, 1, {"preallocate": preallocate, "segment.bytes": str(segment)})
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(10):
        p.produce(topic, value=b"v%d" % i)
    assert p.flush(30) == 0
    active = b.partition_dir(topic, 0) / "00000000000000000000.log"
    allocated, size = allocated_and_size(active)
    assert 0 < size < 64 * 1024
    if preallocate == "true":
        assert allocated >= segment, (allocated, size)
    else:
        assert allocated < segment // 2, (allocated, size)
    # Enough to roll: the first segment keeps what it uses, the new one is reserved again.
    for i in range(1200):
        p.produce(topic, value=b"x" * 1000)
    assert p.flush(30) == 0
    logs = sorted(b.partition_dir(topic, 0).glob("*.log"))
    assert len(logs) >= 2, logs
    rolled_allocated, rolled_size = allocated_and_size(logs[0])
    assert rolled_allocated <= rolled_size + 64 * 1024, (rolled_allocated, rolled_size)
    new_allocated, new_size = allocated_and_size(logs[-1])
    if preallocate == "true":
        assert new_allocated >= segment and new_size < segment, (new_allocated, new_size)
    b.kill()
    b.start()
    assert len(consume(b.bootstrap, topic, 1210)) == 1210
