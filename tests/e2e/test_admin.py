"""Admin APIs and errors as Kafka defines them, seen through real clients (confluent-kafka's
AdminClient, Producer and Consumer; kcat), plus the configuration precedence of `weir serve`
(flag > environment > TOML file)."""

import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, ConfigResource, ConfigSource, NewPartitions,
                                   NewTopic, ResourceType)
from conftest import consume_all, create_topic

# Kafka error codes (the protocol guide's numbers, asserted as numbers).
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_OUT_OF_RANGE = 1
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40


def admin(b) -> AdminClient:
    """One AdminClient per broker, kept alive with it: a client that is garbage-collected while
    its futures are pending fails them with _DESTROY."""
    if getattr(b, "_test_admin", None) is None:
        b._test_admin = AdminClient({"bootstrap.servers": b.bootstrap})
    return b._test_admin


def error_of(fut, timeout=15) -> KafkaError:
    """The KafkaError a future fails with; fails the test if it succeeds."""
    with pytest.raises(KafkaException) as ei:
        fut.result(timeout=timeout)
    return ei.value.args[0]


def create_error(b, topic: NewTopic, **kwargs) -> KafkaError:
    return error_of(admin(b).create_topics([topic], **kwargs)[topic.topic])


def topic_names(b):
    return set(admin(b).list_topics(timeout=10).topics)


def partition_count(b, topic) -> int:
    md = admin(b).list_topics(topic=topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return len(t.partitions)


def produce_sync(b, topic, values, partition=None, timestamps=None, **conf):
    """Produce with acks=all and wait; returns [(err, partition, offset)] in send order."""
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", **conf})
    # Metadata first: records queued while it is still on its way can leave in more than one
    # batch, whatever linger.ms says, and some tests count batches.
    p.list_topics(topic, timeout=15)
    out = [None] * len(values)

    def cb(i):
        return lambda err, msg: out.__setitem__(i, (err, msg.partition(), msg.offset()))

    for i, v in enumerate(values):
        kw = {}
        if partition is not None:
            kw["partition"] = partition
        if timestamps is not None:
            kw["timestamp"] = timestamps[i]
        p.produce(topic, v, on_delivery=cb(i), **kw)
    assert p.flush(30) == 0
    return out


def broker_config(b, node="0"):
    res = ConfigResource(ResourceType.BROKER, node)
    return admin(b).describe_configs([res])[res].result(timeout=15)


def topic_config(b, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin(b).describe_configs([res])[res].result(timeout=15)


# ---------------------------------------------------------------------------------------------
# CreateTopics


def test_topic_already_exists(broker):
    create_topic(broker.bootstrap, "dup", 2)
    err = create_error(broker, NewTopic("dup", 2, 1))
    assert err.code() == TOPIC_ALREADY_EXISTS, err
    # Also when the second request asks for something different.
    err = create_error(broker, NewTopic("dup", 5, 1, config={"segment.bytes": "1048576"}))
    assert err.code() == TOPIC_ALREADY_EXISTS, err
    assert partition_count(broker, "dup") == 2


@pytest.mark.parametrize("name", ["bad/name", "..", ".", "x" * 250, "spa ce", "ünïcode"],
                         ids=["slash", "dotdot", "dot", "250-chars", "space", "non-ascii"])
def test_invalid_topic_name(broker, name):
    err = create_error(broker, NewTopic(name, 1, 1))
    assert err.code() == INVALID_TOPIC_EXCEPTION, err
    assert name not in topic_names(broker)
    # No partition directory was made, inside the data directory or outside it.
    assert [p.name for p in broker.data_dir.iterdir() if p.is_dir()] == []
    assert not (broker.data_dir.parent / "name-0").exists()


def test_249_char_name_is_valid(broker):
    name = "y" * 249
    create_topic(broker.bootstrap, name, 1)
    assert partition_count(broker, name) == 1


def test_invalid_partitions(broker):
    # librdkafka lets 0 through to the broker, which must refuse it.
    err = create_error(broker, NewTopic("zero-parts", 0, 1))
    assert err.code() == INVALID_PARTITIONS, err
    assert "zero-parts" not in topic_names(broker)
    # CreatePartitions to fewer (or the same number of) partitions.
    create_topic(broker.bootstrap, "three", 3)
    for count in (1, 3):
        err = error_of(admin(broker).create_partitions([NewPartitions("three", count)])["three"])
        assert err.code() == INVALID_PARTITIONS, (count, err)
    assert partition_count(broker, "three") == 3


def test_invalid_replication_factor(broker):
    err = create_error(broker, NewTopic("rf3", 1, 3))
    assert err.code() == INVALID_REPLICATION_FACTOR, err
    assert "rf3" not in topic_names(broker)
    assert not broker.partition_dir("rf3", 0).exists()


def test_validate_only_creates_nothing(broker):
    fut = admin(broker).create_topics([NewTopic("dry", 4, 1, config={"segment.bytes": "1048576"})],
                                      validate_only=True)["dry"]
    assert fut.result(timeout=15) is None
    assert "dry" not in topic_names(broker)
    assert not broker.partition_dir("dry", 0).exists()
    # validate_only still reports errors.
    err = create_error(broker, NewTopic("dry", 1, 3), validate_only=True)
    assert err.code() == INVALID_REPLICATION_FACTOR, err
    err = create_error(broker, NewTopic("dry", 1, 1, config={"no.such.key": "1"}),
                       validate_only=True)
    assert err.code() == INVALID_CONFIG, err
    # And the real create afterwards works.
    create_topic(broker.bootstrap, "dry", 4)
    assert partition_count(broker, "dry") == 4


@pytest.mark.parametrize("config", [{"no.such.setting": "1"},
                                    {"retention.ms": "-5"},
                                    {"segment.bytes": "not-a-number"},
                                    {"cleanup.policy": "compact,shred"},
                                    {"message.timestamp.type": "Sometime"},
                                    {"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}],
                         ids=["unknown-key", "out-of-range", "bad-int", "bad-list", "bad-enum",
                              "inconsistent"])
def test_invalid_config(broker, config):
    err = create_error(broker, NewTopic("cfg", 1, 1, config=config))
    assert err.code() == INVALID_CONFIG, err
    assert "cfg" not in topic_names(broker)


# ---------------------------------------------------------------------------------------------
# DeleteTopics, CreatePartitions


def test_delete_topic_removes_its_data(broker):
    create_topic(broker.bootstrap, "doomed", 2)
    for p in (0, 1):
        assert all(e is None for e, _, _ in produce_sync(broker, "doomed", [b"a", b"b"], p))
        assert broker.partition_dir("doomed", p).is_dir()
    admin(broker).delete_topics(["doomed"])["doomed"].result(timeout=15)
    assert "doomed" not in topic_names(broker)
    for p in (0, 1):
        assert not broker.partition_dir("doomed", p).exists()
    # The name is free again, and the new topic starts empty.
    create_topic(broker.bootstrap, "doomed", 1)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    try:
        assert c.get_watermark_offsets(TopicPartition("doomed", 0), timeout=10) == (0, 0)
    finally:
        c.close()
    # It stays deleted across a restart (the catalog was rewritten).
    admin(broker).delete_topics(["doomed"])["doomed"].result(timeout=15)
    broker.restart()
    assert "doomed" not in topic_names(broker)


def test_delete_unknown_topic(broker):
    err = error_of(admin(broker).delete_topics(["never-was"])["never-was"])
    assert err.code() == UNKNOWN_TOPIC_OR_PARTITION, err


def test_create_partitions_then_produce_to_new_partition(broker):
    create_topic(broker.bootstrap, "grow", 1)
    # validate_only changes nothing.
    admin(broker).create_partitions([NewPartitions("grow", 5)], validate_only=True)[
        "grow"].result(timeout=15)
    assert partition_count(broker, "grow") == 1
    admin(broker).create_partitions([NewPartitions("grow", 3)])["grow"].result(timeout=15)
    assert partition_count(broker, "grow") == 3
    assert broker.partition_dir("grow", 2).is_dir()
    [(err, part, off)] = produce_sync(broker, "grow", [b"in-two"], partition=2)
    assert err is None and part == 2 and off == 0
    got = consume_all(broker.bootstrap, "grow", 3, 1)
    assert got == {0: [], 1: [], 2: [(0, None, b"in-two")]}
    err = error_of(admin(broker).create_partitions([NewPartitions("no-such", 3)])["no-such"])
    assert err.code() == UNKNOWN_TOPIC_OR_PARTITION, err


# ---------------------------------------------------------------------------------------------
# DescribeConfigs, DescribeCluster


def test_describe_configs_topic_and_broker(make_broker):
    b = make_broker("--num-partitions", "4", "--log-segment-bytes", "2097152")
    create_topic(b.bootstrap, "tuned", 1, config={"segment.bytes": "1048576",
                                                  "max.message.bytes": "200000"})
    create_topic(b.bootstrap, "plain", 1)
    tuned = topic_config(b, "tuned")
    assert tuned["segment.bytes"].value == "1048576"
    assert tuned["max.message.bytes"].value == "200000"
    for k in ("segment.bytes", "max.message.bytes"):
        assert tuned[k].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, (k, tuned[k].source)
    assert tuned["segment.ms"].value == "604800000"
    assert tuned["segment.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert tuned["cleanup.policy"].value == "delete"
    plain = topic_config(b, "plain")
    # Without an override a topic shows the broker's default, as configured on the command line.
    assert plain["segment.bytes"].value == "2097152"
    assert plain["max.message.bytes"].value == "1048588"
    assert plain["segment.bytes"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    cfg = broker_config(b, "0")
    assert cfg["num.partitions"].value == "4"
    assert cfg["log.segment.bytes"].value == "2097152"
    assert cfg["message.max.bytes"].value == "1048588"
    assert cfg["node.id"].value == "0"
    assert cfg["socket.request.max.bytes"].value == str(100 * 1024 * 1024)
    assert cfg["auto.create.topics.enable"].value == "true"

    # The override is real, not just reported: 1 MiB segments roll, the 2 MiB default does not.
    big = [bytes([i % 251]) * 10_000 for i in range(300)]  # ~3 MB
    small_batches = {"batch.size": 100_000}  # "tuned" takes batches of at most 200000 bytes
    res = produce_sync(b, "tuned", big, partition=0, **small_batches)
    assert all(e is None for e, _, _ in res), {str(e) for e, _, _ in res}
    res = produce_sync(b, "plain", big[:150], partition=0, **small_batches)
    assert all(e is None for e, _, _ in res), {str(e) for e, _, _ in res}
    assert len(list(b.partition_dir("tuned", 0).glob("*.log"))) >= 3
    assert len(list(b.partition_dir("plain", 0).glob("*.log"))) == 1

    err = error_of(admin(b).describe_configs([ConfigResource(ResourceType.TOPIC, "nope")])[
        ConfigResource(ResourceType.TOPIC, "nope")])
    assert err.code() == UNKNOWN_TOPIC_OR_PARTITION, err


def test_describe_cluster(broker):
    desc = admin(broker).describe_cluster().result(timeout=15)
    assert len(desc.nodes) == 1
    node = desc.nodes[0]
    assert (node.id, node.host, node.port) == (0, "127.0.0.1", broker.port)
    assert desc.controller is not None and desc.controller.id == 0
    assert desc.cluster_id
    # The cluster id is stable across a restart.
    cid = desc.cluster_id
    broker.restart()
    assert admin(broker).describe_cluster().result(timeout=15).cluster_id == cid


# ---------------------------------------------------------------------------------------------
# Produce / Fetch / ListOffsets errors and auto-creation


def test_message_too_large(broker):
    create_topic(broker.bootstrap, "small-msgs", 1, config={"max.message.bytes": "10000"})
    # The client would refuse it itself under its own message.max.bytes; raise that.
    conf = {"message.max.bytes": 1_000_000, "compression.type": "none"}
    [(err, _, _)] = produce_sync(broker, "small-msgs", [b"x" * 50_000], **conf)
    assert err is not None and err.code() == MESSAGE_TOO_LARGE, err
    # A batch under the limit is accepted, and nothing of the refused one was stored.
    [(err, _, off)] = produce_sync(broker, "small-msgs", [b"y" * 100], **conf)
    assert err is None and off == 0
    got = consume_all(broker.bootstrap, "small-msgs", 1, 1)
    assert got == {0: [(0, None, b"y" * 100)]}


def test_auto_create_uses_num_partitions(make_broker):
    b = make_broker("--num-partitions", "3")
    [(err, _, _)] = produce_sync(b, "auto-made", [b"hello"])
    assert err is None, err
    assert partition_count(b, "auto-made") == 3
    for p in range(3):
        assert b.partition_dir("auto-made", p).is_dir()
    # kcat sees the same metadata.
    out = subprocess.run(["kcat", "-L", "-b", b.bootstrap, "-t", "auto-made"],
                         capture_output=True, check=True, timeout=30).stdout.decode()
    assert 'topic "auto-made" with 3 partitions' in out, out
    # Metadata v4+ with allow_auto_topic_creation=false (a consumer's default) creates nothing.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused",
                  "allow.auto.create.topics": False})
    try:
        md = c.list_topics(topic="not-auto", timeout=10)
        assert md.topics["not-auto"].error.code() == UNKNOWN_TOPIC_OR_PARTITION
    finally:
        c.close()
    assert "not-auto" not in topic_names(b)
    assert not b.partition_dir("not-auto", 0).exists()


def test_auto_create_disabled(make_broker):
    b = make_broker("--auto-create-topics-enable", "false")
    p_conf = {"message.timeout.ms": 5000, "topic.metadata.propagation.max.ms": 500}
    t0 = time.monotonic()
    [(err, _, _)] = produce_sync(b, "unknown-topic", [b"v"], **p_conf)
    assert err is not None and err.code() == UNKNOWN_TOPIC_OR_PARTITION, err
    assert time.monotonic() - t0 < 10
    md = admin(b).list_topics(topic="unknown-topic", timeout=10)
    assert md.topics["unknown-topic"].error.code() == UNKNOWN_TOPIC_OR_PARTITION
    assert "unknown-topic" not in topic_names(b)
    assert not b.partition_dir("unknown-topic", 0).exists()
    # Explicit creation still works.
    create_topic(b.bootstrap, "unknown-topic", 2)
    [(err, _, off)] = produce_sync(b, "unknown-topic", [b"v"], partition=1)
    assert err is None and off == 0


def test_offset_out_of_range(broker):
    create_topic(broker.bootstrap, "ten", 1)
    assert all(e is None for e, _, _ in produce_sync(broker, "ten", [b"%d" % i for i in range(10)],
                                                     partition=0))
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                  "auto.offset.reset": "error", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition("ten", 0, 1000)])
        deadline = time.monotonic() + 15
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None:
                assert m.error() is not None, f"got a message at {m.offset()}"
                err = m.error()
        assert err is not None, "no error event for offset 1000 on a 10-message partition"
        assert err.code() == KafkaError._AUTO_OFFSET_RESET, err
        assert "Offset out of range" in err.str(), err
    finally:
        c.close()
    # With auto.offset.reset=earliest the same request resets to the start instead.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition("ten", 0, 1000)])
        deadline = time.monotonic() + 15
        first = None
        while first is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                first = m
        assert first is not None and first.offset() == 0 and first.value() == b"0"
    finally:
        c.close()


BASE_TS = 1_700_000_000_000  # producer-set CreateTime timestamps: BASE_TS + i * 1000


def offsets_for(b, topic, timestamps):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused"})
    try:
        watermarks = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        out = []
        for ts in timestamps:
            [tp] = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert tp.error is None, tp.error
            out.append(tp.offset)
        return watermarks, out
    finally:
        c.close()


def kcat_from_timestamp(b, topic, ts):
    out = subprocess.run(["kcat", "-C", "-b", b.bootstrap, "-t", topic, "-p", "0",
                          "-o", f"s@{ts}", "-e", "-q", "-f", "%o %T\n"],
                         capture_output=True, check=True, timeout=30).stdout.decode()
    return [tuple(map(int, line.split())) for line in out.splitlines()]


def batches_on_disk(b, topic, partition) -> int:
    n = 0
    for seg in b.partition_dir(topic, partition).glob("*.log"):
        data = seg.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            _, length = struct.unpack_from(">qi", data, pos)
            pos += 12 + length
            n += 1
    return n


def first_batch_codec(b, topic, partition) -> int:
    seg = sorted(b.partition_dir(topic, partition).glob("*.log"))[0]
    attributes = struct.unpack_from(">h", seg.read_bytes(), 21)[0]
    return attributes & 0x7


QUERIES = [BASE_TS - 5, BASE_TS, BASE_TS + 4500, BASE_TS + 5000, BASE_TS + 9000, BASE_TS + 9001]
EXPECTED = [0, 0, 5, 5, 9, -1]  # -1: no such message (librdkafka's OFFSET_END)


def test_list_offsets_one_batch_per_message(broker):
    """Each message its own batch (flushed one at a time)."""
    create_topic(broker.bootstrap, "times-sep", 1)
    for i in range(10):
        [(err, _, off)] = produce_sync(broker, "times-sep", [b"m%d" % i], partition=0,
                                       timestamps=[BASE_TS + i * 1000])
        assert err is None and off == i
    watermarks, got = offsets_for(broker, "times-sep", QUERIES)
    assert watermarks == (0, 10)
    assert got == EXPECTED
    assert kcat_from_timestamp(broker, "times-sep", BASE_TS + 4500) == [
        (o, BASE_TS + o * 1000) for o in range(5, 10)]


CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.mark.parametrize("codec", CODECS)
def test_list_offsets_within_one_batch(broker, codec):
    """All ten messages in one record batch: ListOffsets by timestamp must still return the
    offset of the first *record* whose timestamp is >= the target (as Kafka does), not the
    batch's base offset, whatever the batch's compression."""
    create_topic(broker.bootstrap, "times-one", 1)
    res = produce_sync(broker, "times-one", [b"m%d" % i + b"x" * 200 for i in range(10)],
                       partition=0, timestamps=[BASE_TS + i * 1000 for i in range(10)],
                       **{"linger.ms": 100, "compression.type": codec})
    assert [(e, o) for e, _, o in res] == [(None, i) for i in range(10)]
    assert batches_on_disk(broker, "times-one", 0) == 1
    assert first_batch_codec(broker, "times-one", 0) == CODECS.index(codec)
    watermarks, got = offsets_for(broker, "times-one", QUERIES)
    assert watermarks == (0, 10)
    assert got == EXPECTED, f"offsets_for_times({[q - BASE_TS for q in QUERIES]}) -> {got}"
    assert kcat_from_timestamp(broker, "times-one", BASE_TS + 4500) == [
        (o, BASE_TS + o * 1000) for o in range(5, 10)]


# ---------------------------------------------------------------------------------------------
# Configuration precedence of the binary: flag > WEIR_* environment > --config TOML file


@pytest.mark.parametrize("flag,env,expected", [
    (True, True, 7),
    (False, True, 5),
    (False, False, 2),
], ids=["flag-wins", "env-beats-file", "file-alone"])
def test_config_precedence(make_broker, tmp_path, flag, env, expected):
    toml = tmp_path / "weir.toml"
    toml.write_text("num_partitions = 2\nlog_segment_bytes = 3145728\n")
    args = ["--config", str(toml)] + (["--num-partitions", "7"] if flag else [])
    b = make_broker(*args, env={"WEIR_NUM_PARTITIONS": "5"} if env else {})
    cfg = broker_config(b, "0")
    assert cfg["num.partitions"].value == str(expected)
    # The file's other setting still applies (nothing overrides it).
    assert cfg["log.segment.bytes"].value == "3145728"
    [(err, _, _)] = produce_sync(b, "auto-prec", [b"v"])
    assert err is None, err
    assert partition_count(b, "auto-prec") == expected


@pytest.mark.parametrize("codec", CODECS)
def test_list_offsets_max_timestamp_within_one_batch(broker, codec):
    """ListOffsets with timestamp -3 (MAX_TIMESTAMP, KIP-734) answers the offset and timestamp of
    the record with the largest timestamp, even when it sits in the middle of a batch."""
    from confluent_kafka.admin import OffsetSpec

    create_topic(broker.bootstrap, "times-max", 1)
    ts = [BASE_TS + i * 1000 for i in range(10)]
    ts[6] = BASE_TS + 50_000
    res = produce_sync(broker, "times-max", [b"m%d" % i + b"y" * 200 for i in range(10)],
                       partition=0, timestamps=ts,
                       **{"linger.ms": 100, "compression.type": codec})
    assert [(e, o) for e, _, o in res] == [(None, i) for i in range(10)]
    assert batches_on_disk(broker, "times-max", 0) == 1
    assert first_batch_codec(broker, "times-max", 0) == CODECS.index(codec)
    tp = TopicPartition("times-max", 0)
    got = admin(broker).list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(timeout=15)
    assert (got.offset, got.timestamp) == (6, BASE_TS + 50_000)
