"""Kafka 4.x API versions against the real binary: Produce 13, Fetch 18 and ListOffsets 11
(topics named by id, KIP-516; ListOffsets' tiered-storage specials), DescribeTopicPartitions
(KIP-966, paged by a cursor) and ListConfigResources (KIP-1142).

Clients: kafka-python 3.0.12 infers the broker's version from ApiVersions and then uses the
newest versions both know (its producer and fetcher stop at Produce 9 and Fetch 12, its admin
client has describe_topic_partitions and list_config_resources); the exact versions no client
picks by itself (Produce 13 and Fetch 18 by topic id, unknown ids, ListOffsets specials at
each version) go through `kafka_raw.call`, which encodes with kafka-python's codec
(generated from Kafka's JSON schemas, independent of weir's). confluent-kafka 2.16.1
(librdkafka 2.16.0) fetches by topic id (Fetch 16) once weir serves Fetch 13+; it has no
DescribeTopicPartitions or ListConfigResources: librdkafka does not know API keys 74 and 75,
its describe_topics sends Metadata.
"""

import threading
import time
import uuid

import pytest
from conftest import create_topic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.protocol.admin import DescribeTopicPartitionsRequest, ListConfigResourcesRequest
from kafka.protocol.consumer import FetchRequest, ListOffsetsRequest, OffsetSpec
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.producer import ProduceRequest

import kafka_raw

UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
UNKNOWN_TOPIC_ID = 100
# Every operation that applies to a topic (READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
# DESCRIBE_CONFIGS, ALTER_CONFIGS): what Kafka answers when no authorizer restricts them.
TOPIC_OPERATIONS_ALL = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))


@pytest.fixture
def kadmin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    yield a
    a.close()


def topic_id(port, name):
    """The topic's id, from Metadata v12 (which weir has always answered)."""
    T = MetadataRequest.MetadataRequestTopic
    r = kafka_raw.call(port, MetadataRequest(topics=[T(topic_id=uuid.UUID(int=0), name=name)],
                                             allow_auto_topic_creation=False,
                                             include_topic_authorized_operations=False), 12)
    [t] = r.topics
    assert t.error_code == 0, t
    assert t.topic_id != uuid.UUID(int=0)
    return t.topic_id


def produce(port, version, partition, values, *, name=None, tid=None,
            timestamp_ms=1_700_000_000_000):
    T = ProduceRequest.TopicProduceData
    P = T.PartitionProduceData
    records = kafka_raw.values_batch(values, timestamp_ms)
    topic = T(topic_id=tid, partition_data=[P(index=partition, records=records)])
    if version < 13:
        topic = T(name=name, partition_data=topic.partition_data)
    r = kafka_raw.call(port, ProduceRequest(transactional_id=None, acks=-1, timeout_ms=10000,
                                            topic_data=[topic]), version)
    [t] = r.responses
    [p] = t.partition_responses
    return t, p


def fetch_request(offsets, *, max_wait_ms=0, by_id=True):
    """offsets: {(topic name or id, partition): fetch offset}."""
    T = FetchRequest.FetchTopic
    P = T.FetchPartition
    topics = {}
    for (topic, partition), offset in offsets.items():
        topics.setdefault(topic, []).append(P(partition=partition, current_leader_epoch=-1,
                                              fetch_offset=offset, last_fetched_epoch=-1,
                                              log_start_offset=-1,
                                              partition_max_bytes=1 << 20))
    return FetchRequest(
        replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 22,
        isolation_level=0, session_id=0, session_epoch=-1,
        topics=[T(topic_id=t, partitions=ps) if by_id else T(topic=t, partitions=ps)
                for t, ps in topics.items()],
        forgotten_topics_data=[], rack_id="")


def list_offsets(port, version, name, specs):
    """specs: [(partition, timestamp)] -> [(error, timestamp, offset, leader epoch)]."""
    T = ListOffsetsRequest.ListOffsetsTopic
    P = T.ListOffsetsPartition
    r = kafka_raw.call(port, ListOffsetsRequest(
        replica_id=-1, isolation_level=0, timeout_ms=1000,
        topics=[T(name=name, partitions=[P(partition_index=p, current_leader_epoch=-1,
                                           timestamp=ts) for p, ts in specs])]), version)
    [t] = r.topics
    return [(p.error_code, p.timestamp, p.offset, p.leader_epoch) for p in t.partitions]


# --- kafka-python: version inference, then produce, consume and admin -----------------


def test_kafka_python_infers_kafka_4_and_produces_consumes_and_administers(broker, kadmin):
    inferred = kadmin._manager.broker_version_data.broker_version
    print(f"kafka-python infers broker version {inferred}")
    assert inferred >= (4, 0), f"kafka-python takes weir for Kafka {inferred}"

    kadmin.create_topics([NewTopic("kp4", num_partitions=3, replication_factor=1)])
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
    try:
        assert p.config["api_version"] >= (4, 0)
        futures = [p.send("kp4", value=b"v%d" % i, partition=i % 3,
                          timestamp_ms=1_700_000_000_000 + i) for i in range(60)]
        metas = [f.get(timeout=30) for f in futures]
    finally:
        p.close()
    for part in range(3):
        assert sorted(m.offset for m in metas if m.partition == part) == list(range(20))

    c = KafkaConsumer("kp4", bootstrap_servers=broker.bootstrap, group_id="kp4-group",
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=15000)
    try:
        seen = {}
        deadline = time.monotonic() + 60
        while len(seen) < 60 and time.monotonic() < deadline:
            for tp, msgs in c.poll(timeout_ms=1000).items():
                for m in msgs:
                    seen[(tp.partition, m.offset)] = m.value
        c.commit()
        committed = {part: c.committed(TopicPartition("kp4", part)) for part in range(3)}
        # offsets_for_times and end_offsets go through ListOffsets at kafka-python's newest
        # version that weir serves.
        by_time = c.offsets_for_times({TopicPartition("kp4", 1): 1_700_000_000_000 + 31})
        ends = c.end_offsets([TopicPartition("kp4", part) for part in range(3)])
    finally:
        c.close()
    assert sorted(seen.values()) == sorted(b"v%d" % i for i in range(60))
    assert committed == {0: 20, 1: 20, 2: 20}
    # Record 31 went to partition 1 at offset 10; 30 (timestamp +30) is on partition 0.
    assert by_time[TopicPartition("kp4", 1)].offset == 10
    assert set(ends.values()) == {20}

    offsets = kadmin.list_partition_offsets({
        TopicPartition("kp4", 0): OffsetSpec.EARLIEST_LOCAL,
        TopicPartition("kp4", 1): OffsetSpec.LATEST_TIERED,
        TopicPartition("kp4", 2): OffsetSpec.MAX_TIMESTAMP,
    })
    print(f"list_partition_offsets: {offsets}")
    got = {tp.partition: o for tp, o in offsets.items()}
    assert got[0].offset == 0, "no tiered storage: the earliest local offset is the log start"
    assert got[1].offset == -1, "nothing is tiered"
    assert (got[2].offset, got[2].timestamp) == (19, 1_700_000_000_000 + 59)

    desc = kadmin.describe_topics(["kp4"])
    assert [d["name"] for d in desc] == ["kp4"] and len(desc[0]["partitions"]) == 3


# --- confluent-kafka: librdkafka 2.16 fetches by topic id once Fetch 13+ is served ------


def test_librdkafka_consumes_through_fetch_by_topic_id(broker):
    from confluent_kafka import Consumer, Producer

    from ops_http import scrape

    create_topic(broker.bootstrap, "rdk-id", 2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(40):
        p.produce("rdk-id", value=b"r%d" % i, partition=i % 2)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "rdk-id-group",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["rdk-id"])
    got = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < 40 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                got.append((m.partition(), m.offset(), m.value()))
    finally:
        c.close()
    assert sorted(v for _, _, v in got) == sorted(b"r%d" % i for i in range(40))
    for part in (0, 1):
        assert [o for pp, o, _ in got if pp == part] == list(range(20))
    fetches = {dict(labels)["version"]: n for (name, labels), n in scrape(broker.admin_url).items()
               if name == "weir_requests_total" and dict(labels).get("api") == "Fetch"}
    print(f"Fetch requests by version: {fetches}")
    assert fetches and all(int(v) >= 13 for v in fetches), \
        f"librdkafka should name topics by id (Fetch 13+): {fetches}"


# --- Produce 13, Fetch 18, ListOffsets 10 by topic id, raw -----------------------------


def test_produce_v13_and_fetch_v18_name_topics_by_id(broker):
    create_topic(broker.bootstrap, "byid", 2)
    tid = topic_id(broker.port, "byid")

    t, p = produce(broker.port, 13, 1, [b"a0", b"a1"], tid=tid)
    assert (t.topic_id, p.index, p.error_code, p.base_offset) == (tid, 1, 0, 0)
    # By name at v12 and by id at v13 write the same log, densely.
    _, p = produce(broker.port, 12, 1, [b"b0"], name="byid")
    assert (p.error_code, p.base_offset) == (0, 2)
    _, p = produce(broker.port, 13, 1, [b"c0", b"c1", b"c2"], tid=tid)
    assert (p.error_code, p.base_offset) == (0, 3)

    unknown = uuid.uuid4()
    t, p = produce(broker.port, 13, 0, [b"lost"], tid=unknown)
    assert (t.topic_id, p.error_code, p.base_offset) == (unknown, UNKNOWN_TOPIC_ID, -1)
    _, p = produce(broker.port, 13, 7, [b"lost"], tid=tid)
    assert p.error_code == UNKNOWN_TOPIC_OR_PARTITION, "a known id, a partition it lacks"

    for version in (13, 15, 16, 17, 18):
        r = kafka_raw.call(broker.port, fetch_request({(tid, 1): 1, (tid, 0): 0,
                                                       (unknown, 0): 0}), version)
        assert r.error_code == 0
        got = {(t.topic_id, pd.partition_index): pd for t in r.responses for pd in t.partitions}
        pd = got[(tid, 1)]
        assert (pd.error_code, pd.high_watermark, pd.log_start_offset) == (0, 6, 0), version
        values = [(o, v) for o, v in kafka_raw.batch_values(pd.records) if o >= 1]
        assert values == [(1, b"a1"), (2, b"b0"), (3, b"c0"), (4, b"c1"), (5, b"c2")], version
        assert (got[(tid, 0)].error_code, got[(tid, 0)].high_watermark) == (0, 0)
        bad = got[(unknown, 0)]
        assert (bad.error_code, bad.high_watermark) == (UNKNOWN_TOPIC_ID, -1), version
        assert not bad.records

    # A long poll by id wakes on the produce that follows it.
    out = {}

    def poll():
        t0 = time.monotonic()
        out["r"] = kafka_raw.call(broker.port, fetch_request({(tid, 0): 0}, max_wait_ms=20000),
                                  18, timeout=40)
        out["waited"] = time.monotonic() - t0
    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.5)
    produce(broker.port, 13, 0, [b"late"], tid=tid)
    th.join(40)
    print(f"Fetch v18 long poll answered after {out['waited']:.3f} s")
    [t] = out["r"].responses
    assert kafka_raw.batch_values(t.partitions[0].records) == [(0, b"late")]
    assert out["waited"] < 10


def test_fetch_by_id_never_serves_a_new_topic_under_the_old_id(broker):
    """A long poll by topic id while the topic is deleted and created again under its name:
    the answer is UNKNOWN_TOPIC_ID, never the new topic's records."""
    from confluent_kafka.admin import AdminClient

    create_topic(broker.bootstrap, "reborn", 1)
    old = topic_id(broker.port, "reborn")
    out = {}

    def poll():
        out["r"] = kafka_raw.call(broker.port, fetch_request({(old, 0): 0}, max_wait_ms=4000),
                                  18, timeout=30)
    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.3)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics(["reborn"])["reborn"].result(15)
    create_topic(broker.bootstrap, "reborn", 1)
    new = topic_id(broker.port, "reborn")
    assert new != old
    _, p = produce(broker.port, 13, 0, [b"new"], tid=new)
    assert p.error_code == 0
    th.join(30)
    [t] = out["r"].responses
    [pd] = t.partitions
    assert (t.topic_id, pd.error_code) == (old, UNKNOWN_TOPIC_ID)
    assert not pd.records
    _, p = produce(broker.port, 13, 0, [b"stale"], tid=old)
    assert p.error_code == UNKNOWN_TOPIC_ID


def test_list_offsets_v10_specials(broker):
    create_topic(broker.bootstrap, "lo10", 1)
    # Timestamps 0, +20, +10 ms: the largest is at offset 1.
    for i, dt in enumerate([0, 20, 10]):
        produce(broker.port, 12, 0, [b"x%d" % i], name="lo10",
                timestamp_ms=1_700_000_000_000 + dt)
    latest, earliest, max_ts, earliest_local, latest_tiered = -1, -2, -3, -4, -5

    got = list_offsets(broker.port, 10, "lo10", [(0, latest), (0, earliest), (0, max_ts),
                                                 (0, earliest_local), (0, latest_tiered),
                                                 (0, 1_700_000_000_000)])
    errors = [g[0] for g in got]
    assert errors == [0] * 6, got
    assert [g[2] for g in got] == [3, 0, 1, 0, -1, 0]
    assert got[2][1] == 1_700_000_000_020
    assert got[4][1:] == (-1, -1, -1), "latest tiered: nothing is tiered"

    # Each special needs the version that introduced it (Kafka: UNSUPPORTED_VERSION below).
    assert list_offsets(broker.port, 7, "lo10", [(0, earliest_local)])[0][0] == \
        UNSUPPORTED_VERSION
    assert list_offsets(broker.port, 8, "lo10", [(0, earliest_local)])[0][:3] == (0, -1, 0)
    assert list_offsets(broker.port, 8, "lo10", [(0, latest_tiered)])[0][0] == \
        UNSUPPORTED_VERSION
    assert list_offsets(broker.port, 9, "lo10", [(0, latest_tiered)])[0][0] == 0
    assert list_offsets(broker.port, 6, "lo10", [(0, max_ts)])[0][0] == UNSUPPORTED_VERSION
    # Earliest pending upload (-6, KIP-1023) needs v11; nothing waits for a remote tier,
    # so Kafka 4.2 answers offset -1 and epoch -1, as for latest tiered.
    assert list_offsets(broker.port, 10, "lo10", [(0, -6)])[0][0] == UNSUPPORTED_VERSION
    assert list_offsets(broker.port, 11, "lo10", [(0, -6), (0, latest), (0, earliest)]) == \
        [(0, -1, -1, -1), (0, -1, 3, 0), (0, -1, 0, 0)]
    # A negative timestamp no version knows.
    assert list_offsets(broker.port, 11, "lo10", [(0, -7), (0, -100)]) == \
        [(UNSUPPORTED_VERSION, -1, -1, -1)] * 2


# --- DescribeTopicPartitions ----------------------------------------------------------


def walk(kadmin, topics, limit):
    """Every page from the first: [(partitions as (topic, index), next cursor)]."""
    pages, cursor = [], None
    for _ in range(100):
        r = kadmin.describe_topic_partitions(topics, response_partition_limit=limit,
                                             cursor=cursor)
        assert all(t["error_code"] == 0 for t in r["topics"]), r
        pages.append(([(t["name"], p["partition_index"]) for t in r["topics"]
                       for p in t["partitions"]], r["next_cursor"]))
        cursor = r["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("the cursor never ends")


def test_describe_topic_partitions_pages_through_every_partition_once(broker, kadmin):
    names = ["dtp-c", "dtp-a", "dtp-b"]
    for n in names:
        create_topic(broker.bootstrap, n, 4)
    everything = [(n, i) for n in sorted(names) for i in range(4)]

    pages = walk(kadmin, names, 5)
    print(f"pages of 5: {pages}")
    assert [len(p) for p, _ in pages] == [5, 5, 2]
    assert [c for _, c in pages] == [{"topic_name": "dtp-b", "partition_index": 1},
                                     {"topic_name": "dtp-c", "partition_index": 2}, None]
    assert [tp for p, _ in pages for tp in p] == everything

    # A page that ends exactly with a topic points the cursor at the next topic's start.
    pages = walk(kadmin, names, 4)
    assert [c for _, c in pages] == [{"topic_name": "dtp-b", "partition_index": 0},
                                     {"topic_name": "dtp-c", "partition_index": 0}, None]
    assert [tp for p, _ in pages for tp in p] == everything

    for limit in (1, 3, 7, 12, 2000, 0, -1):
        pages = walk(kadmin, names, limit)
        assert [tp for p, _ in pages for tp in p] == everything, limit
        assert all(len(p) <= max(limit, 1) for p, _ in pages), limit

    # Every topic (an empty list): the same walk, over whatever exists.
    listed = [tp for p, _ in walk(kadmin, [], 5) for tp in p]
    assert [tp for tp in listed if tp[0].startswith("dtp-")] == everything
    assert listed == sorted(listed)


def test_describe_topic_partitions_fields_and_errors(broker, kadmin):
    create_topic(broker.bootstrap, "dtp-x", 2)
    tid = topic_id(broker.port, "dtp-x")
    r = kadmin.describe_topic_partitions(["dtp-x", "dtp-missing", "bad/name", "dtp-x"])
    assert r["next_cursor"] is None
    by_name = {t["name"]: t for t in r["topics"]}
    assert [t["name"] for t in r["topics"]] == ["bad/name", "dtp-missing", "dtp-x"], \
        "each topic once, sorted"
    x = by_name["dtp-x"]
    assert (x["error_code"], x["topic_id"], x["is_internal"]) == (0, tid, False)
    assert x["topic_authorized_operations"] == TOPIC_OPERATIONS_ALL
    for i, p in enumerate(x["partitions"]):
        assert p["partition_index"] == i and p["error_code"] == 0
        assert p["leader_id"] == 0 and p["replica_nodes"] == [0] and p["isr_nodes"] == [0]
        assert p["leader_epoch"] >= 0 and p["offline_replicas"] == []
    missing = by_name["dtp-missing"]
    # kafka-python decodes the zero UUID as None.
    assert (missing["error_code"], missing["topic_id"], missing["partitions"]) == \
        (UNKNOWN_TOPIC_OR_PARTITION, None, [])
    assert missing["topic_authorized_operations"] == TOPIC_OPERATIONS_ALL
    assert by_name["bad/name"]["error_code"] == INVALID_TOPIC_EXCEPTION

    # A cursor on a topic the list lacks, or on a negative partition: the whole request fails.
    for cursor in ({"topic_name": "dtp-other", "partition_index": 0},
                   {"topic_name": "dtp-x", "partition_index": -1}):
        r = kadmin.describe_topic_partitions(["dtp-x", "dtp-missing"], cursor=cursor)
        assert [(t["name"], t["error_code"], t["partitions"]) for t in r["topics"]] == \
            [("dtp-x", INVALID_REQUEST, []), ("dtp-missing", INVALID_REQUEST, [])], cursor
    # A cursor past a topic's last partition: that topic with none, then the rest.
    create_topic(broker.bootstrap, "dtp-y", 1)
    r = kadmin.describe_topic_partitions(["dtp-x", "dtp-y"],
                                         cursor={"topic_name": "dtp-x", "partition_index": 9})
    assert [(t["name"], len(t["partitions"])) for t in r["topics"]] == [("dtp-x", 0),
                                                                        ("dtp-y", 1)]

    # The raw request, at the version advertised.
    T = DescribeTopicPartitionsRequest.TopicRequest
    raw = kafka_raw.call(broker.port, DescribeTopicPartitionsRequest(
        topics=[T(name="dtp-x")], response_partition_limit=1, cursor=None), 0)
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in raw.topics] == \
        [("dtp-x", [0])]
    assert (raw.next_cursor.topic_name, raw.next_cursor.partition_index) == ("dtp-x", 1)


# --- ListConfigResources --------------------------------------------------------------


def test_list_config_resources(broker, kadmin):
    create_topic(broker.bootstrap, "lcr-a", 1)
    create_topic(broker.bootstrap, "lcr-b", 1)

    every = kadmin.list_config_resources()
    print(f"list_config_resources(): {every}")
    assert every["broker"] == ["0"]
    assert {"lcr-a", "lcr-b"} <= set(every["topic"])
    assert set(every) == {"broker", "topic"}, "no group, client-metrics or logger configs"
    assert kadmin.list_config_resources(["TOPIC"]).keys() == {"topic"}
    assert kadmin.list_config_resources(["BROKER"]) == {"broker": ["0"]}
    assert kadmin.list_config_resources(["GROUP", "CLIENT_METRICS"]) == {}

    # Raw: a type Kafka does not list fails the whole request; v0 (ListClientMetricsResources)
    # lists the client-metrics resources, of which weir has none.
    r = kafka_raw.call(broker.port, ListConfigResourcesRequest(resource_types=[2, 3]), 1)
    assert (r.error_code, r.config_resources) == (UNSUPPORTED_VERSION, [])
    r = kafka_raw.call(broker.port, ListConfigResourcesRequest(resource_types=[4, 2]), 1)
    assert r.error_code == 0
    listed = [(c.resource_type, c.resource_name) for c in r.config_resources]
    assert listed[0] == (4, "0"), "Kafka's order: brokers before topics"
    assert {(2, "lcr-a"), (2, "lcr-b")} <= set(listed[1:])
    r = kafka_raw.call(broker.port, ListConfigResourcesRequest(), 0)
    assert (r.error_code, r.config_resources) == (0, [])


def test_metadata_v13_has_a_top_level_error_code(broker):
    """Metadata v13 (KIP-1102) adds a top-level error code, with which a broker can tell a
    client to rebootstrap: weir answers NONE, and the rest of the answer is v12's (brokers,
    topic ids, partitions and their leader)."""
    create_topic(broker.bootstrap, "md13", 2)
    T = MetadataRequest.MetadataRequestTopic
    r = kafka_raw.call(broker.port, MetadataRequest(topics=[T(topic_id=uuid.UUID(int=0),
                                                              name="md13")],
                                                    allow_auto_topic_creation=False,
                                                    include_topic_authorized_operations=False), 13)
    assert r.error_code == 0, r
    assert [(b.host, b.port) for b in r.brokers] == [("127.0.0.1", broker.port)]
    [t] = r.topics
    assert (t.error_code, t.name, len(t.partitions)) == (0, "md13", 2)
    assert t.topic_id == topic_id(broker.port, "md13")
    assert all(p.leader_id == r.brokers[0].node_id for p in t.partitions)
