"""Kafka habits real clients and tools depend on (issue 15, items 2, 4 and 7).

- Requests on one connection take effect in order: a request pipelined behind DeleteRecords,
  AlterConfigs or OffsetCommit sees what that request did, as on Kafka (which reads one request
  per connection at a time). Checked with confluent-kafka's AdminClient and, deterministically,
  with requests written back to back on one raw socket.
- Null where Kafka sends null: a created topic's `error_message` is null (aiokafka).
- Console habits: `weir consume --from-beginning`, and `weir produce` to a missing topic
  creating it when the broker allows auto-creation.
"""

import asyncio
import os
import socket
import struct
import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from conftest import WEIR_BIN, create_topic
from kafka_raw import kstr, read_response, request

GROUP_ARGS = ("--group-initial-rebalance-delay-ms", "0", "--group-min-session-timeout-ms", "1000")


def produce(bootstrap, topic, n, partition=0):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=b"v%d" % i, partition=partition)
    assert p.flush(30) == 0


def weir(b, *args, input=None, ok=True, timeout=60):
    env = dict(os.environ, WEIR_BROKERS=b.bootstrap)
    r = subprocess.run([str(WEIR_BIN), *args], input=input, capture_output=True, env=env,
                       timeout=timeout)
    if ok:
        assert r.returncode == 0, f"weir {' '.join(args)} failed:\n{r.stderr.decode()}"
    return r


# ---- item 2: requests on one connection take effect in order ---------------------------

def test_admin_delete_records_then_list_offsets_sees_the_new_start(broker):
    """confluent-kafka's AdminClient sends both requests to the leader without waiting for the
    first answer; the ListOffsets(earliest) after each DeleteRecords must see its new start."""
    b = broker
    create_topic(b.bootstrap, "trim", 1)
    produce(b.bootstrap, "trim", 200)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    tp = TopicPartition("trim", 0)
    # Both admin calls look up the partition's leader first; until it is cached, whichever
    # lookup finishes first is sent first, so the client itself may put ListOffsets ahead of
    # DeleteRecords on the wire (seen 1 in 40 fresh clients, with debug=protocol). Once it
    # is cached, they go out in call order, and that order is what weir must keep.
    assert admin.list_offsets({tp: OffsetSpec.earliest()})[tp].result(timeout=15).offset == 0
    for step in range(1, 21):
        upto = step * 7
        deleted = admin.delete_records([TopicPartition("trim", 0, upto)])
        earliest = admin.list_offsets({tp: OffsetSpec.earliest()})
        assert earliest[tp].result(timeout=15).offset == upto, f"step {step}"
        assert deleted[TopicPartition("trim", 0, upto)].result(timeout=15).low_watermark == upto


def _delete_records_v1(topic, partition, offset):
    body = (struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 1)
            + struct.pack(">iq", partition, offset) + struct.pack(">i", 15000))
    return body


def _list_offsets_v4(topic, partition, timestamp):
    return (struct.pack(">ib", -1, 0) + struct.pack(">i", 1) + kstr(topic)
            + struct.pack(">i", 1) + struct.pack(">iiq", partition, -1, timestamp))


def _parse_list_offsets_v4(resp):
    # correlation, throttle, topics count, name, partitions count, index, error, ts, offset
    pos = 4 + 4 + 4
    name_len = struct.unpack_from(">h", resp, pos)[0]
    pos += 2 + name_len + 4 + 4
    return struct.unpack_from(">hqq", resp, pos)


def _parse_delete_records_v1(resp):
    # correlation, throttle, topics count, name, partitions count, index, low watermark, error
    pos = 4 + 4 + 4
    name_len = struct.unpack_from(">h", resp, pos)[0]
    pos += 2 + name_len + 4 + 4
    low, err = struct.unpack_from(">qh", resp, pos)
    return err, low


def _alter_configs_v0(topic, configs):
    body = struct.pack(">i", 1) + struct.pack(">b", 2) + kstr(topic) + struct.pack(">i", len(configs))
    for k, v in configs.items():
        body += kstr(k) + kstr(v)
    return body + struct.pack(">b", 0)


def _describe_configs_v1(topic):
    return (struct.pack(">i", 1) + struct.pack(">b", 2) + kstr(topic) + struct.pack(">i", -1)
            + struct.pack(">b", 0))


def _read_str(buf, pos):
    n = struct.unpack_from(">h", buf, pos)[0]
    pos += 2
    if n < 0:
        return None, pos
    return buf[pos:pos + n].decode(), pos + n


def _parse_describe_configs_v1(resp):
    pos = 4 + 4 + 4  # correlation, throttle, results count (1)
    err = struct.unpack_from(">h", resp, pos)[0]
    pos += 2
    _, pos = _read_str(resp, pos)  # error message
    pos += 1  # resource type
    _, pos = _read_str(resp, pos)  # resource name
    n = struct.unpack_from(">i", resp, pos)[0]
    pos += 4
    out = {}
    for _ in range(n):
        name, pos = _read_str(resp, pos)
        value, pos = _read_str(resp, pos)
        pos += 3  # read_only, config_source, is_sensitive
        synonyms = struct.unpack_from(">i", resp, pos)[0]
        pos += 4
        for _ in range(synonyms):
            _, pos = _read_str(resp, pos)
            _, pos = _read_str(resp, pos)
            pos += 1
        out[name] = value
    return err, out


def _offset_commit_v2(group, topic, partition, offset):
    return (kstr(group) + struct.pack(">i", -1) + kstr("") + struct.pack(">q", -1)
            + struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 1)
            + struct.pack(">iq", partition, offset) + kstr("m"))


def _offset_fetch_v1(group, topic, partition):
    return kstr(group) + struct.pack(">i", 1) + kstr(topic) + struct.pack(">ii", 1, partition)


def _parse_offset_fetch_v1(resp):
    pos = 4 + 4  # correlation, topics count
    _, pos = _read_str(resp, pos)
    pos += 4 + 4  # partitions count, index
    offset = struct.unpack_from(">q", resp, pos)[0]
    return offset


def _pipelined(port, requests):
    """Write every request before reading any answer, on one connection; returns the answers
    in order (checking their correlation ids)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"".join(request(k, v, i + 1, body) for i, (k, v, body) in enumerate(requests)))
        answers = [read_response(s) for _ in requests]
    for i, a in enumerate(answers):
        assert struct.unpack_from(">i", a, 0)[0] == i + 1
    return answers


def test_pipelined_requests_on_one_socket_see_the_earlier_ones_effects(make_broker):
    b = make_broker(*GROUP_ARGS)
    create_topic(b.bootstrap, "piped", 1)
    produce(b.bootstrap, "piped", 100)
    # DeleteRecords, then ListOffsets(earliest), then DeleteRecords again and ListOffsets.
    answers = _pipelined(b.port, [
        (21, 1, _delete_records_v1("piped", 0, 40)),
        (2, 4, _list_offsets_v4("piped", 0, -2)),
        (21, 1, _delete_records_v1("piped", 0, 75)),
        (2, 4, _list_offsets_v4("piped", 0, -2)),
    ])
    assert _parse_delete_records_v1(answers[0]) == (0, 40)
    assert _parse_list_offsets_v4(answers[1])[0::2] == (0, 40)
    assert _parse_delete_records_v1(answers[2]) == (0, 75)
    assert _parse_list_offsets_v4(answers[3])[0::2] == (0, 75)

    # AlterConfigs, then DescribeConfigs of the same topic.
    answers = _pipelined(b.port, [
        (33, 0, _alter_configs_v0("piped", {"retention.ms": "123456789"})),
        (32, 1, _describe_configs_v1("piped")),
    ])
    err, configs = _parse_describe_configs_v1(answers[1])
    assert err == 0
    assert configs["retention.ms"] == "123456789"

    # OffsetCommit outside a group (generation -1), then OffsetFetch.
    answers = _pipelined(b.port, [
        (8, 2, _offset_commit_v2("piped-g", "piped", 0, 77)),
        (9, 1, _offset_fetch_v1("piped-g", "piped", 0)),
        (8, 2, _offset_commit_v2("piped-g", "piped", 0, 91)),
        (9, 1, _offset_fetch_v1("piped-g", "piped", 0)),
    ])
    assert _parse_offset_fetch_v1(answers[1]) == 77
    assert _parse_offset_fetch_v1(answers[3]) == 91


def test_pipelined_offset_commits_overlap_and_the_last_one_wins(broker):
    """OffsetCommits may overlap earlier ones waiting for their fsync (librdkafka's
    asynchronous commits pipeline them), but the offset that stays committed is the last one
    sent, as with in-order execution, whichever fsync wait ends first."""
    b = broker
    create_topic(b.bootstrap, "pc", 1)
    commits = [(8, 2, _offset_commit_v2("pc-g", "pc", 0, o)) for o in range(1, 301)]
    answers = _pipelined(b.port, commits + [(9, 1, _offset_fetch_v1("pc-g", "pc", 0))])
    for a in answers[:-1]:
        # correlation, topics count, topic name, partitions count, partition index, error
        pos = 4 + 4
        pos += 2 + struct.unpack_from(">h", a, pos)[0] + 4 + 4
        assert struct.unpack_from(">h", a, pos)[0] == 0
    assert _parse_offset_fetch_v1(answers[-1]) == 300

    # The same through confluent-kafka's asynchronous commits, then after a restart.
    done = []
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "pc-async",
                  "enable.auto.commit": False,
                  "on_commit": lambda err, parts: done.append(err)})
    try:
        # One synchronous commit first: librdkafka then knows the coordinator, and the
        # asynchronous ones all go out on its connection, pipelined.
        c.commit(offsets=[TopicPartition("pc", 0, 0)], asynchronous=False)
        for o in range(1, 2001):
            c.commit(offsets=[TopicPartition("pc", 0, o)], asynchronous=True)
        deadline = time.monotonic() + 60
        # on_commit is called for each asynchronous commit (not for the synchronous one).
        while len(done) < 2000 and time.monotonic() < deadline:
            c.poll(0.1)
        assert len(done) == 2000 and not any(done), (len(done), [e for e in done if e][:3])
        [tp] = c.committed([TopicPartition("pc", 0)], timeout=30)
        assert tp.offset == 2000, tp
    finally:
        c.close()
    b.restart()
    answers = _pipelined(b.port, [(9, 1, _offset_fetch_v1("pc-async", "pc", 0))])
    assert _parse_offset_fetch_v1(answers[0]) == 2000


def test_pipelined_produces_still_overlap_and_keep_their_order(broker):
    """The barrier must not serialise what pipelining is for: many Produce requests written
    back to back are all answered, in order, with consecutive base offsets."""
    from kafka_raw import crc32c, zigzag_varint
    b = broker
    create_topic(b.bootstrap, "pp", 1)

    def batch(value):
        rec_body = (b"\x00" + zigzag_varint(0) + zigzag_varint(0) + zigzag_varint(-1)
                    + zigzag_varint(len(value)) + value + zigzag_varint(0))
        rec = zigzag_varint(len(rec_body)) + rec_body
        now = int(time.time() * 1000)
        after_crc = struct.pack(">hiqqqhii", 0, 0, now, now, -1, -1, -1, 1) + rec
        return struct.pack(">qiibI", 0, 4 + 1 + 4 + len(after_crc), -1, 2,
                           crc32c(after_crc)) + after_crc

    def produce_v7(value):
        bt = batch(value)
        return (struct.pack(">hhi", -1, -1, 30000) + struct.pack(">i", 1) + kstr("pp")
                + struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(bt)) + bt)

    answers = _pipelined(b.port, [(0, 7, produce_v7(b"m%d" % i)) for i in range(50)])
    bases = []
    for a in answers:
        pos = 4 + 4
        name_len = struct.unpack_from(">h", a, pos)[0]
        pos += 2 + name_len + 4 + 4
        err, base = struct.unpack_from(">hq", a, pos)
        assert err == 0
        bases.append(base)
    assert bases == list(range(50))


# ---- item 4: null where Kafka sends null --------------------------------------------------

def test_aiokafka_create_topics_answers_null_error_message_on_success(broker):
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            resp = await admin.create_topics([NewTopic("made-by-aiokafka", 2, 1)])
            again = await admin.create_topics([NewTopic("made-by-aiokafka", 2, 1)])
        finally:
            await admin.close()
        return resp, again

    resp, again = asyncio.run(run())
    [(name, code, message, *_)] = resp.topic_errors
    assert (name, code) == ("made-by-aiokafka", 0)
    assert message is None, f"a created topic must carry a null error_message, got {message!r}"
    # A refusal still says why.
    [(_, code, message, *_)] = again.topic_errors
    assert code == 36 and message, (code, message)  # TOPIC_ALREADY_EXISTS


def test_describe_configs_documentation_is_null_unless_asked_for(broker):
    """DescribeConfigs v3+ carries each entry's documentation only when the request asks for
    it; otherwise Kafka sends null, not an empty string."""
    from kafka.admin import ConfigResource, KafkaAdminClient
    create_topic(broker.bootstrap, "documented", 1)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        out = admin.describe_configs([ConfigResource("TOPIC", "documented")], config_filter="all")
    finally:
        admin.close()
    entries = out["topic"]["documented"]
    assert "retention.ms" in entries
    docs = {name: e.get("documentation", "absent") for name, e in entries.items()}
    assert all(d is None for d in docs.values()), docs


# ---- item 7: console habits -----------------------------------------------------------------

def test_consume_from_beginning_alias(make_broker):
    b = make_broker(*GROUP_ARGS)
    create_topic(b.bootstrap, "fb", 1)
    weir(b, "produce", "fb", input=b"one\ntwo\nthree\n")
    out = weir(b, "consume", "fb", "--from-beginning", "--count", "3").stdout
    assert out == b"one\ntwo\nthree\n"
    # With a group: --from-beginning applies where the group has no committed offset.
    out = weir(b, "consume", "fb", "--group", "fbg", "--from-beginning", "--count", "3").stdout
    assert out == b"one\ntwo\nthree\n"
    # It is an alias of --from: giving both is refused.
    r = weir(b, "consume", "fb", "--from-beginning", "--from", "end", ok=False)
    assert r.returncode != 0 and b"cannot be used with" in r.stderr


def test_produce_creates_a_missing_topic_when_the_broker_allows(make_broker):
    b = make_broker("--num-partitions", "3")
    weir(b, "produce", "brand-new", "-K", ":", input=b"k1:a\nk2:b\nk3:c\n")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "x"})
    try:
        md = c.list_topics(topic="brand-new", timeout=10).topics["brand-new"]
        assert md.error is None and len(md.partitions) == 3
        got = []
        c.assign([TopicPartition("brand-new", p, 0) for p in range(3)])
        for _ in range(40):
            got += [m.value() for m in c.consume(10, 0.25) if m.error() is None]
            if len(got) == 3:
                break
        assert sorted(got) == [b"a", b"b", b"c"]
    finally:
        c.close()


def test_produce_to_a_missing_topic_fails_when_auto_creation_is_off(make_broker):
    b = make_broker("--auto-create-topics-enable", "false")
    r = weir(b, "produce", "nope", input=b"x\n", ok=False)
    assert r.returncode != 0
    assert b"UNKNOWN_TOPIC_OR_PARTITION" in r.stderr and b"panicked" not in r.stderr
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
    assert "nope" not in md.topics
