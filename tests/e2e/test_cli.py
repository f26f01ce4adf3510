"""The `weir` CLI (topic, produce, consume, group, cluster, completions) against a real broker.

Every command runs as the real release binary against a real `weir serve`, and its output (the
human table and `--json`) is checked against what real Kafka clients (confluent-kafka) see on the
same broker: records produced by one are read by the other, murmur2 key placement agrees with
librdkafka's `murmur2_random`, and group lag equals what a confluent-kafka group committed.
"""

import json
import os
import resource
import signal
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource
from conftest import WEIR_BIN, consume_all, consume_to_end, create_topic
from faultproxy import proxied_broker

GROUP_ARGS = ("--group-initial-rebalance-delay-ms", "0", "--group-min-session-timeout-ms", "1000")


@pytest.fixture
def cbroker(make_broker):
    return make_broker(*GROUP_ARGS)


def weir(b, *args, input=None, ok=True, timeout=60):
    """Run `weir ARGS` against broker `b` (through WEIR_BROKERS); returns the CompletedProcess."""
    env = dict(os.environ, WEIR_BROKERS=b.bootstrap if b else "127.0.0.1:1")
    r = subprocess.run([str(WEIR_BIN), *args], input=input, capture_output=True, env=env,
                       timeout=timeout)
    if ok:
        assert r.returncode == 0, f"weir {' '.join(args)} failed ({r.returncode}):\n{r.stderr.decode()}"
    return r


def weir_json(b, *args, input=None):
    return json.loads(weir(b, *args, "--json", input=input).stdout)


def json_lines(out: bytes):
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def admin(b) -> AdminClient:
    if getattr(b, "_test_admin", None) is None:
        b._test_admin = AdminClient({"bootstrap.servers": b.bootstrap})
    return b._test_admin


def topic_config(b, topic, name):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin(b).describe_configs([res])[res].result(timeout=15)
    return configs[name].value if name in configs else None


def watermarks(b, topic, partitions):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "cli-watermarks"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)}
    finally:
        c.close()


def committed(b, group, topic, partitions):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def test_cluster_info_human_and_json(cbroker):
    create_topic(cbroker.bootstrap, "alpha", 1)
    create_topic(cbroker.bootstrap, "beta", 2)
    info = weir_json(cbroker, "cluster", "info")
    md = admin(cbroker).list_topics(timeout=15)
    assert info["cluster_id"] == md.cluster_id
    assert info["controller_id"] == md.controller_id
    assert info["brokers"] == [{"node_id": 0, "host": "127.0.0.1", "port": cbroker.port, "rack": None}]
    assert info["topic_count"] == 2
    human = weir(cbroker, "cluster", "info").stdout.decode()
    assert md.cluster_id in human
    assert "TOPICS      2 (+" in human
    assert f"127.0.0.1  {cbroker.port}" in human
    # Connection and output flags may also come first, as with kcat; WEIR_BROKERS points
    # nowhere here, so only the flag can reach the broker.
    first = weir(None, "-b", cbroker.bootstrap, "--json", "cluster", "info")
    assert json.loads(first.stdout)["cluster_id"] == md.cluster_id


def test_topic_create_list_describe_alter_delete(cbroker):
    b = cbroker
    out = weir(b, "topic", "create", "orders", "--partitions", "3",
               "--config", "retention.ms=123456", "-c", "cleanup.policy=delete").stdout.decode()
    assert "Created topic orders (3 partitions, replication factor 1)" in out
    created = weir_json(b, "topic", "create", "events", "-p", "2")
    assert created["name"] == "events" and created["partitions"] == 2
    md = admin(b).list_topics(timeout=15)
    assert len(md.topics["orders"].partitions) == 3
    assert created["topic_id"] != "00000000-0000-0000-0000-000000000000"

    listed = weir_json(b, "topic", "list")
    assert [(t["name"], t["partition_count"], t["internal"]) for t in listed] == [
        ("events", 2, False), ("orders", 3, False)]
    human = weir(b, "topic", "list").stdout.decode().splitlines()
    assert human[0].split() == ["NAME", "PARTITIONS"]
    assert human[1].split() == ["events", "2"] and human[2].split() == ["orders", "3"]

    # Some data so the offsets in describe mean something.
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(10):
        p.produce("orders", value=b"v%d" % i, partition=i % 3)
    p.flush(15)
    d = weir_json(b, "topic", "describe", "orders")
    wm = watermarks(b, "orders", 3)
    assert [(x["partition"], x["leader"], x["log_start_offset"], x["log_end_offset"]) for x in d["partitions"]] == [
        (pi, 0, wm[pi][0], wm[pi][1]) for pi in range(3)]
    assert sum(x["log_end_offset"] for x in d["partitions"]) == 10
    conf = {c["name"]: c for c in d["configs"]}
    assert conf["retention.ms"]["value"] == "123456"
    assert conf["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert conf["segment.bytes"]["source"] != "DYNAMIC_TOPIC_CONFIG"
    human = weir(b, "topic", "describe", "orders").stdout.decode()
    assert "PARTITION  LEADER  REPLICAS  ISR  LOG-START-OFFSET  LOG-END-OFFSET" in human
    assert "retention.ms" in human and "123456" in human

    out = weir(b, "topic", "alter-config", "orders", "--set", "retention.ms=999999",
               "--set", "max.message.bytes=2000000", "--delete", "cleanup.policy").stdout.decode()
    assert "Altered configs of topic orders" in out
    assert topic_config(b, "orders", "retention.ms") == "999999"
    assert topic_config(b, "orders", "max.message.bytes") == "2000000"
    alt = weir_json(b, "topic", "alter-config", "orders", "--delete", "retention.ms")
    assert alt == {"topic": "orders", "set": {}, "deleted": ["retention.ms"]}
    d = weir_json(b, "topic", "describe", "orders")
    assert {c["name"]: c for c in d["configs"]}["retention.ms"]["source"] != "DYNAMIC_TOPIC_CONFIG"

    assert "Deleted topic events" in weir(b, "topic", "delete", "events").stdout.decode()
    assert weir_json(b, "topic", "delete", "orders") == {"topic": "orders", "deleted": True}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and {"orders", "events"} & set(admin(b).list_topics(timeout=15).topics):
        time.sleep(0.1)
    assert not {"orders", "events"} & set(admin(b).list_topics(timeout=15).topics)
    assert weir_json(b, "topic", "list") == []


def test_cli_produce_is_read_by_confluent_with_murmur2_placement(cbroker):
    b = cbroker
    create_topic(b.bootstrap, "cli-in", 5)
    create_topic(b.bootstrap, "java-in", 5)
    keys = [f"user-{i}" for i in range(200)]
    lines = "".join(f"{k}:value-{i}\n" for i, k in enumerate(keys)).encode()
    summary = weir_json(b, "produce", "cli-in", "-K", ":", "-H", "source=cli", "-H", "n=1", input=lines)
    assert summary["records"] == 200
    assert sum(p["records"] for p in summary["partitions"].values()) == 200

    # Where librdkafka's murmur2_random (the Java client's partitioner) puts the same keys.
    p = Producer({"bootstrap.servers": b.bootstrap, "partitioner": "murmur2_random"})
    for k in keys:
        p.produce("java-in", key=k.encode(), value=b"x")
    p.flush(15)
    java_place = {m[1].decode(): part for part, msgs in consume_all(b.bootstrap, "java-in", 5, 200).items()
                  for m in msgs}

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "cli-check", "enable.auto.commit": False})
    c.assign([TopicPartition("cli-in", pi, 0) for pi in range(5)])
    got = {}
    deadline = time.monotonic() + 30
    while len(got) < 200 and time.monotonic() < deadline:
        for m in c.consume(500, 0.5):
            assert m.error() is None
            got[m.key().decode()] = (m.partition(), m.value().decode(), m.headers())
    c.close()
    assert len(got) == 200
    for i, k in enumerate(keys):
        part, value, headers = got[k]
        assert value == f"value-{i}"
        assert headers == [("source", b"cli"), ("n", b"1")]
        assert part == java_place[k], f"key {k}: weir put it on {part}, murmur2_random on {java_place[k]}"
    assert len(set(pp for pp, _, _ in got.values())) == 5
    # The summary's per-partition counts are what landed there.
    per_part = {}
    for pp, _, _ in got.values():
        per_part[pp] = per_part.get(pp, 0) + 1
    assert {int(k): v["records"] for k, v in summary["partitions"].items()} == per_part


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_cli_produce_compression_and_acks_read_by_confluent(cbroker, compression, tmp_path):
    b = cbroker
    create_topic(b.bootstrap, "z", 2)
    f = tmp_path / "in.txt"
    f.write_bytes(b"".join(b"record %d %s\n" % (i, b"x" * (i % 50)) for i in range(1000)))
    acks = {"none": "all", "gzip": "1", "snappy": "all", "lz4": "0", "zstd": "1"}[compression]
    out = weir(b, "produce", "z", "--file", str(f), "--compression", compression, "--acks", acks).stdout.decode()
    assert "Produced 1000 records" in out
    msgs = consume_all(b.bootstrap, "z", 2, 1000)
    values = sorted(v for part in msgs.values() for _, _, v in part)
    assert values == sorted(b"record %d %s" % (i, b"x" * (i % 50)) for i in range(1000))
    assert all(k is None for part in msgs.values() for _, k, _ in part)


def test_confluent_produce_is_read_by_cli(cbroker):
    b = cbroker
    create_topic(b.bootstrap, "from-java", 3)
    p = Producer({"bootstrap.servers": b.bootstrap})
    sent = []
    for i in range(30):
        key = None if i % 10 == 0 else b"k%d" % i
        headers = [("h", b"%d" % i), ("h", b"dup")] if i % 2 else None
        p.produce("from-java", key=key, value=b"v%d" % i, partition=i % 3, headers=headers, timestamp=1_600_000_000_000 + i)
        sent.append((i % 3, key, b"v%d" % i, headers, 1_600_000_000_000 + i))
    p.flush(15)

    recs = json_lines(weir(b, "consume", "from-java", "--json").stdout)
    assert len(recs) == 30
    by_value = {r["value"]: r for r in recs}
    for part, key, value, headers, ts in sent:
        r = by_value[value.decode()]
        assert r["topic"] == "from-java" and r["partition"] == part
        assert r["key"] == (key.decode() if key else None)
        assert r["timestamp"] == ts and r["timestamp_type"] == "CreateTime"
        assert [(h["key"], h["value"]) for h in r["headers"]] == [(k, v.decode()) for k, v in (headers or [])]
    # Offsets are dense per partition and in order.
    for part in range(3):
        assert [r["offset"] for r in recs if r["partition"] == part] == list(range(10))

    out = weir(b, "consume", "from-java", "-p", "1", "--from", "offset:5",
               "--format", r"%t|%p|%o|%k|%s|%h|%T|%K|%S\n").stdout.decode().splitlines()
    want = []
    for o in range(5, 10):
        i = 3 * o + 1
        hdrs = f"h={i},h=dup" if i % 2 else ""
        want.append(f"from-java|1|{o}|k{i}|v{i}|{hdrs}|{1_600_000_000_000 + i}|{len(str(i)) + 1}|{len(str(i)) + 1}")
    assert out == want
    # %K is -1 for a null key; --count stops early.
    out = weir(b, "consume", "from-java", "-p", "0", "--count", "2", "--format", r"%o:%K\n").stdout.decode()
    assert out == "0:-1\n1:2\n"
    # --from end: nothing to read, exits at once.
    assert weir(b, "consume", "from-java", "--from", "end").stdout == b""
    # offset:-N counts back from the end.
    out = weir(b, "consume", "from-java", "-p", "2", "--from", "offset:-3", "--format", r"%o\n").stdout.decode()
    assert out == "7\n8\n9\n"


def test_consume_from_timestamp(cbroker):
    b = cbroker
    create_topic(b.bootstrap, "ts", 2)
    base = 1_700_000_000_000
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(20):
        p.produce("ts", value=b"%d" % i, partition=i % 2, timestamp=base + i * 1000)
    p.flush(15)
    cut = base + 12_500
    recs = json_lines(weir(b, "consume", "ts", "--from", f"timestamp:{cut}", "--json").stdout)
    assert sorted(int(r["value"]) for r in recs) == list(range(13, 20))
    assert all(r["timestamp"] >= cut for r in recs)
    # Past the newest record: nothing.
    assert weir(b, "consume", "ts", "--from", f"timestamp:{base + 100_000}").stdout == b""


def test_group_describe_lag_matches_confluent_commits(cbroker):
    b = cbroker
    create_topic(b.bootstrap, "lagged", 3)
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(60):
        p.produce("lagged", value=b"%d" % i, partition=i % 3)
    p.flush(15)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "billing", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("lagged", 0, 5), TopicPartition("lagged", 1, 20),
                      TopicPartition("lagged", 2, 0)], asynchronous=False)
    c.close()

    groups = weir_json(b, "group", "list")
    assert {"group": "billing", "protocol_type": "consumer", "state": "Empty"} in groups or \
        any(g["group"] == "billing" for g in groups)
    assert "billing" in weir(b, "group", "list").stdout.decode()

    d = weir_json(b, "group", "describe", "billing")
    assert d["group"] == "billing" and d["state"] == "Empty" and d["members"] == []
    committed_now = committed(b, "billing", "lagged", 3)
    wm = watermarks(b, "lagged", 3)
    rows = {o["partition"]: o for o in d["offsets"]}
    assert set(rows) == {0, 1, 2}
    for part in range(3):
        assert rows[part]["committed_offset"] == committed_now[part]
        assert rows[part]["log_end_offset"] == wm[part][1]
        assert rows[part]["lag"] == wm[part][1] - committed_now[part]
    assert [rows[x]["lag"] for x in range(3)] == [15, 0, 20]
    assert d["total_lag"] == 35
    human = weir(b, "group", "describe", "billing").stdout.decode()
    assert "TOTAL-LAG      35" in human
    table = [line.split() for line in human.splitlines() if line.startswith("lagged")]
    assert table == [["lagged", "0", "5", "20", "15", "-"], ["lagged", "1", "20", "20", "0", "-"],
                     ["lagged", "2", "0", "20", "20", "-"]]

    # A live confluent member shows up with its assignment.
    m = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "billing", "enable.auto.commit": False,
                  "session.timeout.ms": 6000})
    m.subscribe(["lagged"])
    deadline = time.monotonic() + 20
    while not m.assignment() and time.monotonic() < deadline:
        m.poll(0.2)
    try:
        d = weir_json(b, "group", "describe", "billing")
        assert d["state"] == "Stable" and len(d["members"]) == 1
        assert d["members"][0]["assignment"] == {"lagged": [0, 1, 2]}
        assert all(o["member_id"] == d["members"][0]["member_id"] for o in d["offsets"])
    finally:
        m.close()


def test_reset_offsets_dry_run_execute_and_refusal(cbroker):
    b = cbroker
    create_topic(b.bootstrap, "rs", 2)
    base = 1_700_000_000_000
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(20):
        p.produce("rs", value=b"%d" % i, partition=i % 2, timestamp=base + i * 1000)
    p.flush(15)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "rg", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("rs", 0, 7), TopicPartition("rs", 1, 3)], asynchronous=False)
    c.close()

    plan = weir_json(b, "group", "reset-offsets", "rg", "--topic", "rs", "--to-earliest")
    assert plan["executed"] is False
    assert [(e["partition"], e["current_offset"], e["new_offset"]) for e in plan["partitions"]] == [(0, 7, 0), (1, 3, 0)]
    human = weir(b, "group", "reset-offsets", "rg", "--topic", "rs", "--to-latest").stdout.decode()
    assert "Dry run: nothing changed" in human
    assert committed(b, "rg", "rs", 2) == {0: 7, 1: 3}, "a dry run must change nothing"

    weir(b, "group", "reset-offsets", "rg", "--topic", "rs", "--to-earliest", "--execute")
    assert committed(b, "rg", "rs", 2) == {0: 0, 1: 0}
    weir(b, "group", "reset-offsets", "rg", "--topic", "rs", "--to-latest", "--execute")
    assert committed(b, "rg", "rs", 2) == {0: 10, 1: 10}
    # Partition 0 holds timestamps base+0,2000,...; the first at or after base+5000 is offset 3.
    out = weir(b, "group", "reset-offsets", "rg", "-t", "rs", "-p", "0", "--to-timestamp", str(base + 5000),
               "--execute").stdout.decode()
    assert "Committed the new offsets" in out
    assert committed(b, "rg", "rs", 2) == {0: 3, 1: 10}
    # Offsets past the end are clamped to it.
    plan = weir_json(b, "group", "reset-offsets", "rg", "-t", "rs", "--to-offset", "99", "--execute")
    assert [e["new_offset"] for e in plan["partitions"]] == [10, 10]
    weir(b, "group", "reset-offsets", "rg", "-t", "rs", "--to-offset", "4", "--execute")
    assert committed(b, "rg", "rs", 2) == {0: 4, 1: 4}

    # A member is active: refused, and nothing moves.
    m = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "rg", "enable.auto.commit": False,
                  "session.timeout.ms": 6000})
    m.subscribe(["rs"])
    deadline = time.monotonic() + 20
    while not m.assignment() and time.monotonic() < deadline:
        m.poll(0.2)
    assert m.assignment()
    try:
        r = weir(b, "group", "reset-offsets", "rg", "-t", "rs", "--to-earliest", "--execute", ok=False)
        assert r.returncode != 0
        assert "active member" in r.stderr.decode()
        r = weir(b, "group", "delete", "rg", ok=False)
        assert r.returncode != 0 and "NON_EMPTY_GROUP" in r.stderr.decode()
    finally:
        m.close()
    assert committed(b, "rg", "rs", 2) == {0: 4, 1: 4}

    assert "Deleted group rg" in weir(b, "group", "delete", "rg").stdout.decode()
    assert all(g["group"] != "rg" for g in weir_json(b, "group", "list"))
    assert committed(b, "rg", "rs", 2) == {0: -1001, 1: -1001}


def test_consume_as_group_member(cbroker):
    b = cbroker
    create_topic(b.bootstrap, "gm", 3)
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(30):
        p.produce("gm", value=b"a%d" % i, partition=i % 3)
    p.flush(15)
    out = weir(b, "consume", "gm", "--group", "cli-group").stdout.decode().split()
    assert sorted(out) == sorted("a%d" % i for i in range(30))
    # It committed what it printed and left the group.
    assert committed(b, "cli-group", "gm", 3) == {0: 10, 1: 10, 2: 10}
    d = weir_json(b, "group", "describe", "cli-group")
    assert d["state"] == "Empty" and d["total_lag"] == 0
    # A second run resumes from the commits: nothing new to print.
    assert weir(b, "consume", "gm", "--group", "cli-group").stdout == b""
    # --count commits only the records printed.
    for i in range(6):
        p.produce("gm", value=b"b%d" % i, partition=0)
    p.flush(15)
    out = weir(b, "consume", "gm", "-g", "cli-group", "--count", "4").stdout.decode().split()
    assert out == ["b0", "b1", "b2", "b3"]
    assert committed(b, "cli-group", "gm", 3) == {0: 14, 1: 10, 2: 10}

    # Follow mode: a live member, visible to describe, that sees new records and leaves on SIGTERM.
    env = dict(os.environ, WEIR_BROKERS=b.bootstrap)
    proc = subprocess.Popen([str(WEIR_BIN), "consume", "gm", "-g", "cli-group", "--follow",
                             "--format", r"%p:%o:%s\n"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 20
        d = None
        while time.monotonic() < deadline:
            d = weir_json(b, "group", "describe", "cli-group")
            if d["state"] == "Stable" and d["members"] and d["members"][0]["assignment"]:
                break
            time.sleep(0.2)
        assert d["members"][0]["assignment"] == {"gm": [0, 1, 2]}, d
        assert d["members"][0]["client_id"] == "weir-cli"
        p.produce("gm", value=b"late", partition=2)
        p.flush(15)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and committed(b, "cli-group", "gm", 3)[2] != 11:
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    assert out.decode().split() == ["0:14:b4", "0:15:b5", "2:10:late"]
    assert committed(b, "cli-group", "gm", 3) == {0: 16, 1: 10, 2: 11}
    assert weir_json(b, "group", "describe", "cli-group")["state"] == "Empty", "it left the group"


def test_bad_input_gives_clear_errors(cbroker):
    b = cbroker
    create_topic(b.bootstrap, "exists", 1)

    def fails(*args, expect, input=None, broker=b):
        r = weir(broker, *args, input=input, ok=False)
        assert r.returncode != 0, f"weir {args} should fail"
        err = r.stderr.decode()
        assert expect in err, f"weir {args}: {err!r} lacks {expect!r}"
        assert "panicked" not in err
        return err

    fails("topic", "describe", "nope", expect="UNKNOWN_TOPIC_OR_PARTITION")
    fails("topic", "delete", "nope", expect="UNKNOWN_TOPIC_OR_PARTITION")
    fails("topic", "create", "exists", expect="TOPIC_ALREADY_EXISTS")
    fails("topic", "create", "t2", "--config", "retention.ms", expect="not KEY=VALUE")
    fails("topic", "create", "t2", "--config", "retention.ms=soon", expect="INVALID_CONFIG")
    fails("topic", "create", "t2", "--config", "no.such.config=1", expect="INVALID_CONFIG")
    fails("topic", "create", "t2", "--partitions", "0", expect="at least 1")
    fails("topic", "alter-config", "exists", "--set", "retention.ms=x", expect="INVALID_CONFIG")
    fails("topic", "alter-config", "exists", expect="nothing to change")
    # (`weir produce` to a missing topic creates it when the broker allows: see
    # test_kafka_compat.py, which also checks the refusal when it does not.)
    fails("produce", "exists", "--partition", "5", input=b"x\n", expect="no partition 5")
    fails("produce", "exists", "--compression", "brotli", input=b"x\n", expect="brotli")
    fails("produce", "exists", "--max-line-bytes", "10", input=b"a" * 100 + b"\n", expect="longer than")
    fails("consume", "nope", expect="UNKNOWN_TOPIC_OR_PARTITION")
    fails("consume", "exists", "--from", "yesterday", expect="expected beginning, end")
    fails("consume", "exists", "--format", "%q", expect="unknown token")
    fails("consume", "exists", "-p", "3", expect="no partition 3")
    fails("group", "describe", "never-seen", expect="GROUP_ID_NOT_FOUND")
    fails("group", "reset-offsets", "g", "--topic", "exists", expect="required")
    # Nothing listens on port 1.
    err = fails("cluster", "info", expect="cannot connect to 127.0.0.1:1", broker=None)
    assert err.count("Connection refused") == 1
    fails("cluster", "info", "--brokers", "no-port", expect="not HOST:PORT")
    # The topic is intact after all that.
    assert weir_json(b, "topic", "list") == [{"name": "exists", "topic_id": weir_json(b, "topic", "list")[0]["topic_id"],
                                              "internal": False, "partition_count": 1}]


def test_help_and_completions():
    for cmd in [["topic", "create"], ["topic", "list"], ["topic", "describe"], ["topic", "delete"],
                ["topic", "alter-config"], ["produce"], ["consume"], ["group", "list"], ["group", "describe"],
                ["group", "reset-offsets"], ["group", "delete"], ["cluster", "info"], ["completions"]]:
        r = weir(None, *cmd, "--help")
        text = r.stdout.decode()
        assert "Example" in text, f"weir {' '.join(cmd)} --help has no example"
        assert "--brokers" in text or cmd == ["completions"]
    for shell in ["bash", "zsh", "fish"]:
        out = weir(None, "completions", shell).stdout.decode()
        assert "weir" in out and "reset-offsets" in out and "brokers" in out
    # WEIR_BROKERS is the documented default source of --brokers.
    assert "WEIR_BROKERS" in weir(None, "topic", "--help").stdout.decode()


@pytest.mark.parametrize("first", ["weir", "confluent"])
def test_cli_and_confluent_members_share_a_group(cbroker, first):
    """A weir member and a librdkafka member in one group split the partitions between them
    (both speak the "range" assignor), whichever of them joined first and so leads: the
    leader's assignment is decoded by the other."""
    b = cbroker
    create_topic(b.bootstrap, "shared", 4)
    env = dict(os.environ, WEIR_BROKERS=b.bootstrap)
    proc = c = None

    def stable_members(n):
        if not any(g["group"] == "mixed" for g in weir_json(b, "group", "list")):
            return None
        d = weir_json(b, "group", "describe", "mixed")
        ok = d["state"] == "Stable" and len(d["members"]) == n and all(m["assignment"] for m in d["members"])
        return d if ok else None

    def start_weir():
        return subprocess.Popen([str(WEIR_BIN), "consume", "shared", "-g", "mixed", "--follow", "--format",
                                 r"%p:%s\n"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def start_confluent():
        cc = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "mixed", "enable.auto.commit": False,
                       "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                       "partition.assignment.strategy": "range"})
        cc.subscribe(["shared"])
        return cc

    def wait_for(n):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if c is not None:
                c.poll(0.2)
            d = stable_members(n)
            if d:
                return d
            time.sleep(0.1)
        raise AssertionError(f"the group never had {n} stable member(s)")

    try:
        if first == "weir":
            proc = start_weir()
            wait_for(1)
            c = start_confluent()
        else:
            c = start_confluent()
            wait_for(1)
            proc = start_weir()
        d = wait_for(2)
        members = d["members"]
        parts = [m["assignment"]["shared"] for m in members]
        assert sorted(parts[0] + parts[1]) == [0, 1, 2, 3] and len(parts[0]) == 2, parts
        weir_member = next(m for m in members if m["client_id"] == "weir-cli")
        deadline = time.monotonic() + 10
        while len(c.assignment()) != 2 and time.monotonic() < deadline:
            c.poll(0.2)
        confluent_parts = sorted(tp.partition for tp in c.assignment())
        mine = weir_member["assignment"]["shared"]
        assert confluent_parts == sorted(set(range(4)) - set(mine))
        # Records on the weir member's partitions reach weir.
        p = Producer({"bootstrap.servers": b.bootstrap})
        for part in range(4):
            p.produce("shared", value=b"to-%d" % part, partition=part)
        p.flush(15)
        # Its periodic commit (every 5 s) moves past them once it has printed them.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            c.poll(0.1)
            got = {o["partition"]: o["committed_offset"] for o in weir_json(b, "group", "describe", "mixed")["offsets"]}
            if all(got.get(x) == 1 for x in mine):
                break
            time.sleep(0.3)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
        if c is not None:
            c.close()
    assert proc.returncode == 0, err.decode()
    assert sorted(out.decode().split()) == sorted(f"{x}:to-{x}" for x in mine)


def test_produce_sends_lines_of_a_slow_source_before_its_end(cbroker):
    """`tail -f log | weir produce`: a line must not wait for more input (or the end) to be sent."""
    b = cbroker
    create_topic(b.bootstrap, "tail", 1)
    env = dict(os.environ, WEIR_BROKERS=b.bootstrap)
    proc = subprocess.Popen([str(WEIR_BIN), "produce", "tail", "-K", "="], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        proc.stdin.write(b"k=first line\n")
        proc.stdin.flush()
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "tail-check"})
        c.assign([TopicPartition("tail", 0, 0)])
        got = None
        deadline = time.monotonic() + 20
        while got is None and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got = (m.key(), m.value())
        c.close()
        assert got == (b"k", b"first line"), "the line was not sent while stdin stayed open"
        assert proc.poll() is None
    finally:
        proc.stdin.close()
        proc.wait(timeout=20)
    out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 0, err.decode()
    assert "Produced 1 records" in out.decode()


def test_follow_survives_a_broker_restart(cbroker):
    """`consume --follow --group` waits through a broker restart, rejoins, and goes on."""
    b = cbroker
    create_topic(b.bootstrap, "restarts", 2)
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(6):
        p.produce("restarts", value=b"before-%d" % i, partition=i % 2)
    p.flush(15)
    p = None
    env = dict(os.environ, WEIR_BROKERS=b.bootstrap)
    proc = subprocess.Popen([str(WEIR_BIN), "consume", "restarts", "-g", "survivor", "--follow",
                             "--format", r"%s\n"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def committed_total():
        try:
            return sum(max(o, 0) for o in committed(b, "survivor", "restarts", 2).values())
        except Exception:
            return -1

    try:
        deadline = time.monotonic() + 30
        while committed_total() != 6 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert committed_total() == 6
        b.restart()
        p = Producer({"bootstrap.servers": b.bootstrap})
        for i in range(6):
            p.produce("restarts", value=b"after-%d" % i, partition=i % 2)
        p.flush(15)
        deadline = time.monotonic() + 60
        while committed_total() != 12 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert committed_total() == 12, "the consumer did not go on after the restart"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert set(out.decode().split()) == {f"before-{i}" for i in range(6)} | {f"after-{i}" for i in range(6)}


def test_consume_read_committed_hides_aborted_and_open_transactions(cbroker):
    b = cbroker
    create_topic(b.bootstrap, "txn", 2)
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "cli-txn"})
    p.init_transactions(15)
    for round_, commit in enumerate([True, False, True, False, True]):
        p.begin_transaction()
        for i in range(4):
            p.produce("txn", value=b"%s-%d-%d" % (b"c" if commit else b"a", round_, i), partition=i % 2)
        # Written before the abort (librdkafka purges what is still queued when aborting).
        p.flush(15)
        if commit:
            p.commit_transaction(15)
        else:
            p.abort_transaction(15)
    plain = Producer({"bootstrap.servers": b.bootstrap})
    plain.produce("txn", value=b"plain", partition=0)
    plain.flush(15)
    committed_values = {f"c-{r}-{i}" for r in (0, 2, 4) for i in range(4)} | {"plain"}
    aborted_values = {f"a-{r}-{i}" for r in (1, 3) for i in range(4)}

    rc = json_lines(weir(b, "consume", "txn", "--isolation", "read_committed", "--json").stdout)
    assert {r["value"] for r in rc} == committed_values
    assert len(rc) == len(committed_values)
    ru = json_lines(weir(b, "consume", "txn", "--json").stdout)
    # read_uncommitted sees the aborted records too, but never the control records (markers).
    assert {r["value"] for r in ru} == committed_values | aborted_values
    assert len(ru) == len(committed_values | aborted_values)

    # An open transaction: read_committed stops before it (and does not hang), uncommitted sees it.
    p.begin_transaction()
    p.produce("txn", value=b"open", partition=1)
    p.flush(15)
    rc = json_lines(weir(b, "consume", "txn", "-p", "1", "--isolation", "read_committed", "--json").stdout)
    assert "open" not in {r["value"] for r in rc}
    ru = json_lines(weir(b, "consume", "txn", "-p", "1", "--json").stdout)
    assert "open" in {r["value"] for r in ru}
    p.abort_transaction(15)


def test_offsets_outside_the_log_go_on_from_its_start_or_end(cbroker):
    """A committed offset below the log start (records deleted since) and --from offset:N out
    of range are reset into the log, as a Kafka consumer's auto.offset.reset does."""
    b = cbroker
    create_topic(b.bootstrap, "trimmed", 1)
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(10):
        p.produce("trimmed", value=b"%d" % i, partition=0)
    p.flush(15)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "behind", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("trimmed", 0, 3)], asynchronous=False)
    c.close()
    fut = admin(b).delete_records([TopicPartition("trimmed", 0, 6)])
    list(fut.values())[0].result(timeout=15)

    r = weir(b, "consume", "trimmed", "-g", "behind", "--format", r"%o\n")
    assert r.stdout.decode().split() == ["6", "7", "8", "9"]
    assert "out of range" in r.stderr.decode()
    assert committed(b, "behind", "trimmed", 1) == {0: 10}
    assert weir(b, "consume", "trimmed", "--from", "offset:2", "--format", r"%o\n").stdout.decode().split() == \
        ["6", "7", "8", "9"]
    assert weir(b, "consume", "trimmed", "--from", "offset:100").stdout == b""


def test_produce_draws_a_progress_bar_only_on_a_terminal(broker, tmp_path):
    """A large --file input shows a progress bar when stderr is a terminal (a pty here), and
    nothing of it when stderr is a pipe; the records arrive either way."""
    import pty

    create_topic(broker.bootstrap, "progress", 1)
    data = tmp_path / "lines.txt"
    with open(data, "w") as f:
        for i in range(600_000):
            f.write("k%d:%s\n" % (i % 1000, "v" * 100))
    master, slave = pty.openpty()
    env = dict(os.environ, WEIR_BROKERS=broker.bootstrap)
    proc = subprocess.Popen([str(WEIR_BIN), "produce", "progress", "--file", str(data), "-K", ":"],
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        drawn += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(master)
    assert proc.returncode == 0, drawn.decode(errors="replace")
    assert b"MiB" in drawn and b"eta" in drawn, f"no progress bar on the terminal: {drawn[:300]!r}"
    assert b"600000" in out, out

    piped = weir(broker, "produce", "progress", "--file", str(data), "-K", ":")
    assert b"eta" not in piped.stderr and b"MiB" not in piped.stderr, piped.stderr[:300]
    assert b"600000" in piped.stdout


def test_consume_memory_stays_bounded_on_highly_compressible_data(cbroker, tmp_path):
    """lz4 shrinks repetitive values about a hundred times: one 1 MiB fetch could decode into
    a hundred MiB of records. The consumer decodes within a budget, so it reads 200 MB of
    values under a 96 MiB data limit (RLIMIT_DATA: heap and anonymous mappings); a larger
    allocation fails and the process dies, which is what the unbounded decoder did."""
    n, size = 100_000, 2_000
    src = tmp_path / "lines.txt"
    with open(src, "w") as f:
        for i in range(n):
            f.write(f"{i:08d}" + "a" * (size - 8) + "\n")
    weir(cbroker, "topic", "create", "squashy", "--partitions", "1")
    weir(cbroker, "produce", "squashy", "--file", str(src), "--compression", "lz4")

    def limit_data():
        resource.setrlimit(resource.RLIMIT_DATA, (96 << 20, 96 << 20))

    out = tmp_path / "offsets.txt"
    with open(out, "wb") as f:
        r = subprocess.run([str(WEIR_BIN), "consume", "squashy", "--from", "beginning",
                            "--count", str(n), "--format", "%o\n"], stdout=f, stderr=subprocess.PIPE,
                           env=dict(os.environ, WEIR_BROKERS=cbroker.bootstrap),
                           preexec_fn=limit_data, timeout=60)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    offsets = [int(x) for x in out.read_text().split()]
    assert offsets == list(range(n)), "every record, in order, once"


def test_produce_is_idempotent_through_a_faulty_network(make_broker, tmp_path):
    """Connections dropped and answers cut after the broker has the request: the default
    (acks=all, idempotent) `weir produce` retries with the same sequence numbers and every
    line is written exactly once, in order per key. The control: with --no-idempotence the
    same faults make it stop with an error rather than risk a duplicate."""
    broker, proxy = proxied_broker(make_broker, seed=7, drop_prob=0.01,
                                   cut_after_request_prob=0.03)
    n, keys = 300_000, 50
    src = tmp_path / "lines.txt"
    src.write_text("".join(f"k{i % keys}:{i}\n" for i in range(n)))
    try:
        proxy.faults = False
        weir(broker, "topic", "create", "once", "--partitions", "4")
        weir(broker, "topic", "create", "maybe", "--partitions", "4")
        proxy.faults = True
        r = weir(broker, "produce", "once", "--file", str(src), "-K", ":", "--json", timeout=300)
        summary = json.loads(r.stdout)
        print(f"idempotent: {summary['retries']} retries through {proxy.stats}")
        assert summary["records"] == n and summary["producer_id"] is not None
        assert summary["retries"] > 0 and proxy.stats["cut_after_request"] > 0
        control = weir(broker, "produce", "maybe", "--file", str(src), "-K", ":",
                       "--no-idempotence", ok=False, timeout=300)
        print(f"not idempotent: exit {control.returncode}: {control.stderr.decode()[-300:]}")
        assert control.returncode == 1 and b"error:" in control.stderr
        proxy.faults = False

        per_partition = consume_to_end(broker.bootstrap, "once", 4, timeout=180)
        values = [int(v) for msgs in per_partition.values() for _, _, v in msgs]
        assert sorted(values) == list(range(n)), "each line exactly once"
        for p, msgs in per_partition.items():
            last = {}
            for _, k, v in msgs:
                assert int(v) > last.get(k, -1), f"partition {p}: key {k} out of order"
                last[k] = int(v)
        # What the stopped producer wrote, it wrote once.
        control_values = [int(v) for msgs in consume_to_end(broker.bootstrap, "maybe", 4).values()
                          for _, _, v in msgs]
        assert len(control_values) == len(set(control_values)) < n
    finally:
        proxy.close()


def test_produce_survives_broker_kill_9_restarts_writing_each_line_once(cbroker):
    """`weir produce` fed from a pipe while the broker is kill -9'd and restarted three
    times: it retries (idempotently) through each outage, exits 0, and every line is in the
    topic exactly once, in order per key. Acknowledged batches are on disk; a batch whose
    answer died with the broker is recognised by the producer state the broker recovers."""
    b = cbroker
    n, keys = 200_000, 20
    weir(b, "topic", "create", "restarts", "--partitions", "3")
    env = dict(os.environ, WEIR_BROKERS=b.bootstrap)
    proc = subprocess.Popen([str(WEIR_BIN), "produce", "restarts", "-K", ":", "--json"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    kills = 0
    chunk = n // 8
    for start in range(0, n, chunk):
        proc.stdin.write("".join(f"k{i % keys}:{i}\n" for i in range(start, start + chunk))
                         .encode())
        proc.stdin.flush()
        if start // chunk in (1, 3, 5):  # a kill while records are in flight, then a restart
            time.sleep(0.2)
            b.kill()
            kills += 1
            time.sleep(0.3)
            b.start()
    out, err = proc.communicate(timeout=240)  # closes stdin: the end of the input
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out)
    print(f"{kills} kills: {summary['retries']} retries, {summary['requests']} requests")
    # Each kill breaks the producer's connection, so at least one send per kill failed.
    assert summary["records"] == n and summary["retries"] >= kills == 3

    per_partition = consume_to_end(b.bootstrap, "restarts", 3, timeout=120)
    values = [int(v) for msgs in per_partition.values() for _, _, v in msgs]
    assert len(values) == n and sorted(values) == list(range(n)), "each line exactly once"
    for p, msgs in per_partition.items():
        last = {}
        for _, k, v in msgs:
            assert int(v) > last.get(k, -1), f"partition {p}: key {k} out of order"
            last[k] = int(v)
