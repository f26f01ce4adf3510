"""Acceptance 1 and 2: real clients produce 100,000 messages with acks=all to a 4-partition topic and
read them back byte-identical, per-partition order preserved, offsets dense from 0."""

import random
import struct
import subprocess

import pytest
from conftest import assert_dense, consume_all, create_topic

N = 100_000
PARTITIONS = 4
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def make_values(n, seed):
    """Numbered values of varied length; printable and newline-free so kcat can carry them, and
    built from a small vocabulary so every codec finds something to compress."""
    rng = random.Random(seed)
    words = ["weir", "kafka", "durable", "fsync", "batch", "offset", "log", "x9Q", "_-_", "Z"]
    return [f"{i:07d}:" + "".join(rng.choices(words, k=rng.randint(0, 40))) for i in range(n)]


def check_roundtrip(values, per_partition):
    assert_dense(per_partition)
    got = []
    for p, msgs in per_partition.items():
        indexes = [int(v.split(":", 1)[0]) for _, _, v in msgs]
        assert indexes == sorted(indexes), f"partition {p}: order not preserved"
        assert len(set(indexes)) == len(indexes), f"partition {p}: duplicates"
        got.extend(v for _, _, v in msgs)
    assert len(got) == len(values)
    assert sorted(got) == sorted(values), "values differ from what was produced"
    assert all(len(m) > 0 for m in per_partition.values()), "a partition got nothing"


def batch_codecs(broker, topic, partition):
    """The compression codec of every batch in the partition's segment files, read off disk."""
    codecs = []
    for seg in sorted(broker.partition_dir(topic, partition).glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 23 <= len(data):
            # base_offset i64, batch_length i32, leader_epoch i32, magic i8, crc u32, attributes i16
            _, length, _, magic, _, attributes = struct.unpack_from(">qiibIh", data, pos)
            assert magic == 2
            codecs.append(attributes & 0x7)
            pos += 12 + length
        assert pos == len(data), f"{seg}: trailing bytes"
    return codecs


def kcat_consume(bootstrap, topic, partition):
    out = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", topic, "-p", str(partition), "-o", "beginning",
         "-e", "-q", "-f", "%o\t%k\t%s\n"],
        check=True, capture_output=True, timeout=120).stdout.decode()
    msgs = []
    for line in out.splitlines():
        off, key, val = line.split("\t", 2)
        msgs.append((int(off), key, val))
    return msgs


@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_kcat_roundtrip(broker, codec, tmp_path):
    topic = f"kcat-{codec}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    values = make_values(N, seed=codec)
    src = tmp_path / "in.txt"
    # Keyed lines ("key<TAB>value"): the key spreads messages over every partition.
    src.write_text("".join(f"k{i % 97}\t{v}\n" for i, v in enumerate(values)))
    with open(src, "rb") as f:
        subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", topic, "-z", codec, "-K", "\t",
                        "-X", "acks=all", "-X", "linger.ms=5"],
                       stdin=f, check=True, timeout=300)
    per_partition = {p: kcat_consume(broker.bootstrap, topic, p) for p in range(PARTITIONS)}
    check_roundtrip(values, per_partition)
    for p in range(PARTITIONS):
        # Batches are stored as the client sent them: the codec survives on disk. librdkafka
        # sends a batch uncompressed when compression would not make it smaller.
        codecs = set(batch_codecs(broker, topic, p))
        assert CODEC_IDS[codec] in codecs and codecs <= {0, CODEC_IDS[codec]}, codecs


def test_confluent_kafka_roundtrip(broker):
    from confluent_kafka import Producer

    topic = "ck-roundtrip"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    values = make_values(N, seed="ck")
    failures = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
                  "compression.type": "lz4"})

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)

    for i, v in enumerate(values):
        while True:
            try:
                p.produce(topic, v.encode(), key=str(i % 97).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0
    assert failures == []
    per_partition = consume_all(broker.bootstrap, topic, PARTITIONS, N)
    decoded = {part: [(o, k, v.decode()) for o, k, v in m] for part, m in per_partition.items()}
    check_roundtrip(values, decoded)
    # The key decides the partition: every key lives in exactly one partition.
    seen = {}
    for part, msgs in per_partition.items():
        for _, k, _ in msgs:
            assert seen.setdefault(k, part) == part


def test_kafka_python_roundtrip(broker):
    import kafka

    topic = "kp-roundtrip"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    values = make_values(N, seed="kp")
    # Idempotence needs InitProducerId, which the broker core does not implement yet.
    prod = kafka.KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5,
                               enable_idempotence=False, compression_type="gzip",
                               batch_size=64 * 1024)
    futures = [prod.send(topic, v.encode(), partition=i % PARTITIONS)
               for i, v in enumerate(values)]
    prod.flush(120)
    for f in futures:
        f.get(timeout=1)
    prod.close()

    cons = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                               consumer_timeout_ms=5000, auto_offset_reset="earliest")
    cons.assign([kafka.TopicPartition(topic, p) for p in range(PARTITIONS)])
    cons.seek_to_beginning()
    per_partition = {p: [] for p in range(PARTITIONS)}
    for m in cons:
        per_partition[m.partition].append((m.offset, m.key, m.value.decode()))
        if sum(len(v) for v in per_partition.values()) >= N:
            break
    cons.close()
    check_roundtrip(values, per_partition)


def test_fetch_from_the_middle_of_a_batch(broker):
    from confluent_kafka import Consumer, Producer, TopicPartition

    create_topic(broker.bootstrap, "mid", 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 100})
    for i in range(1000):
        p.produce("mid", str(i).encode())
    assert p.flush(30) == 0
    assert len(batch_codecs(broker, "mid", 0)) < 100, "expected batches of many records"
    # The broker answers with whole batches; the clients skip the records before their offset.
    for start in (1, 517, 999):
        out = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", "mid", "-p", "0",
                              "-o", str(start), "-e", "-q", "-f", "%o %s\n"],
                             check=True, capture_output=True, timeout=60).stdout.decode()
        assert out.splitlines() == [f"{i} {i}" for i in range(start, 1000)]
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
        c.assign([TopicPartition("mid", 0, start)])
        first = None
        while first is None:
            m = c.poll(10)
            assert m is not None and m.error() is None
            first = m
        c.close()
        assert (first.offset(), first.value()) == (start, str(start).encode())


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_every_acks_setting_delivers(broker, acks):
    """acks=0 gets no response (the client counts it delivered once sent), acks=1 and all are
    answered after the fsync; all three end up in the log."""
    topic = f"acks-{acks}"
    create_topic(broker.bootstrap, topic, 2)
    values = make_values(5000, seed=acks)
    src = "".join(f"k{i % 13}\t{v}\n" for i, v in enumerate(values))
    subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", topic, "-K", "\t",
                    "-X", f"acks={acks}"], input=src.encode(), check=True, timeout=120)
    per_partition = {p: kcat_consume(broker.bootstrap, topic, p) for p in range(2)}
    check_roundtrip(values, per_partition)


def test_advertised_listener_is_what_metadata_returns(make_broker):
    from confluent_kafka.admin import AdminClient

    b = make_broker("--advertised-listener", "broker.example:19999")
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
    assert [(n.host, n.port) for n in md.brokers.values()] == [("broker.example", 19999)]
