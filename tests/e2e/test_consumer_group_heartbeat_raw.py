"""ConsumerGroupHeartbeat (KIP-848) requests no client library would send: each bad one gets
Kafka's error code in the response (never a closed connection or a dead broker), and epochs
are checked (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID). Hand-encoded v1 (flexible) requests."""

import socket
import struct
import uuid

from conftest import create_topic
from kafka_raw import read_response

INVALID_REQUEST = 42
UNKNOWN_MEMBER_ID = 25
FENCED_MEMBER_EPOCH = 110
UNSUPPORTED_ASSIGNOR = 112
INVALID_REGULAR_EXPRESSION = 128
NONE = 0


def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def cstr(s):
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def heartbeat_v1(group, member_id, epoch, rebalance_timeout_ms=-1, topics=None, regex=None,
                 assignor=None, owned=None, instance=None):
    body = cstr(group) + cstr(member_id) + struct.pack(">i", epoch) + cstr(instance) + cstr(None)
    body += struct.pack(">i", rebalance_timeout_ms)
    body += uvarint(0) if topics is None else uvarint(len(topics) + 1) + b"".join(map(cstr, topics))
    body += cstr(regex) + cstr(assignor)
    if owned is None:
        body += uvarint(0)
    else:
        body += uvarint(len(owned) + 1)
        for topic_id, parts in owned:
            body += topic_id.bytes + uvarint(len(parts) + 1)
            body += b"".join(struct.pack(">i", p) for p in parts) + uvarint(0)
    return body + uvarint(0)


def call(port, body, version=1, correlation_id=7):
    header = struct.pack(">hhi", 68, version, correlation_id) + struct.pack(">h", 3) + b"raw"
    payload = header + uvarint(0) + body  # request header v2: tagged fields
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        resp = read_response(s)
    corr = struct.unpack_from(">i", resp, 0)[0]
    assert corr == correlation_id
    pos = 4 + 1  # response header v1: correlation id, tagged fields (none)
    _throttle, error = struct.unpack_from(">ih", resp, pos)
    pos += 6
    n = resp[pos]
    message = resp[pos + 1:pos + n].decode() if n else None
    pos += max(n, 1)
    n = resp[pos]
    member = resp[pos + 1:pos + n].decode() if n else None
    pos += max(n, 1)
    epoch, interval = struct.unpack_from(">ii", resp, pos)
    return error, message, member, epoch, interval


def test_bad_consumer_group_heartbeats_get_kafkas_errors(broker):
    port = broker.port
    create_topic(broker.bootstrap, "raw-t", 2)
    member = str(uuid.uuid4())
    cases = [
        ("no rebalance timeout on join", heartbeat_v1("g", member, 0, topics=["raw-t"],
                                                       owned=[]), INVALID_REQUEST),
        ("no subscription on join", heartbeat_v1("g", member, 0, 30000, owned=[]),
         INVALID_REQUEST),
        ("owned partitions on join", heartbeat_v1("g", member, 0, 30000, topics=["raw-t"],
                                                  owned=[(uuid.uuid4(), [0])]),
         INVALID_REQUEST),
        ("empty member id (v1)", heartbeat_v1("g", "", 0, 30000, topics=["raw-t"], owned=[]),
         INVALID_REQUEST),
        ("epoch -5", heartbeat_v1("g", member, -5), INVALID_REQUEST),
        ("static leave without instance id", heartbeat_v1("g", member, -2), INVALID_REQUEST),
        ("unknown assignor", heartbeat_v1("g", member, 0, 30000, topics=["raw-t"],
                                          assignor="nope", owned=[]), UNSUPPORTED_ASSIGNOR),
        ("bad regex", heartbeat_v1("g", member, 0, 30000, regex="(", owned=[]),
         INVALID_REGULAR_EXPRESSION),
        ("unknown member", heartbeat_v1("g-none", member, 3), UNKNOWN_MEMBER_ID),
    ]
    for what, body, code in cases:
        error, message, *_ = call(port, body)
        print(f"{what}: error {error} ({message})")
        assert error == code, (what, error, message)

    # A real join, then a heartbeat with an epoch the coordinator never gave.
    error, _, got_member, epoch, interval = call(
        port, heartbeat_v1("g", member, 0, 30000, topics=["raw-t"], owned=[]))
    assert (error, got_member) == (NONE, member) and epoch >= 1 and interval > 0
    error, message, *_ = call(port, heartbeat_v1("g", member, epoch + 5))
    assert error == FENCED_MEMBER_EPOCH, (error, message)
    error, _, _, same, _ = call(port, heartbeat_v1("g", member, epoch))
    assert (error, same) == (NONE, epoch)
    # Leaving, then heartbeating again: unknown.
    error, _, _, left, _ = call(port, heartbeat_v1("g", member, -1))
    assert (error, left) == (NONE, -1)
    error, *_ = call(port, heartbeat_v1("g", member, epoch))
    assert error == UNKNOWN_MEMBER_ID
    assert broker.proc.poll() is None, "the broker died"


def test_a_consumer_protocol_member_must_commit_with_offset_commit_v9(broker):
    """Kafka's rule for consumer groups: a member of the consumer protocol commits with
    OffsetCommit v9+ (member id and epoch); an older version from it is UNSUPPORTED_VERSION,
    not a silent commit. Its epoch is checked (STALE_MEMBER_EPOCH)."""
    import kafka_raw
    from kafka.protocol.consumer import OffsetCommitRequest

    UNSUPPORTED_VERSION, STALE_MEMBER_EPOCH = 35, 113
    create_topic(broker.bootstrap, "raw-commit", 1)
    member = str(uuid.uuid4())
    error, _, _, epoch, _ = call(broker.port, heartbeat_v1("g-commit", member, 0, 30000,
                                                           topics=["raw-commit"], owned=[]))
    assert error == NONE and epoch >= 1
    T = OffsetCommitRequest.OffsetCommitRequestTopic
    P = T.OffsetCommitRequestPartition

    def commit(version, epoch):
        r = kafka_raw.call(broker.port, OffsetCommitRequest(
            group_id="g-commit", generation_id_or_member_epoch=epoch, member_id=member,
            group_instance_id=None, retention_time_ms=-1,
            topics=[T(name="raw-commit", partitions=[
                P(partition_index=0, committed_offset=5, committed_leader_epoch=-1,
                  committed_metadata="")])]), version)
        [t] = r.topics
        [p] = t.partitions
        return p.error_code

    assert commit(8, epoch) == UNSUPPORTED_VERSION
    assert commit(9, epoch) == NONE
    assert commit(9, epoch - 1) == STALE_MEMBER_EPOCH
