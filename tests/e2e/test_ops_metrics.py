"""/metrics against the real binary: scraped over HTTP and parsed with prometheus_client's
text-format parser. Counters rise with traffic from confluent-kafka, partition gauges equal
what ListOffsets says, and lag gauges equal a real group's committed offsets."""

import socket
import struct

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition
from conftest import create_topic
from ops_http import scrape, total, value, wait_for


def test_counters_rise_with_produce_and_fetch(broker):
    create_topic(broker.bootstrap, "mtr", 2)
    before = scrape(broker.admin_url)

    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    payload = b"x" * 100
    for i in range(200):
        p.produce("mtr", value=payload, key=str(i).encode(), partition=i % 2)
    assert p.flush(30) == 0

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "mtr-reader",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("mtr", 0, 0), TopicPartition("mtr", 1, 0)])
    got = 0
    while got < 200:
        got += len(c.consume(200, 1.0))
    # Fetch metrics are counted when the response is sent; the consumer is still connected.
    after = scrape(broker.admin_url)
    assert value(after, "weir_connections_open") >= 1
    c.close()

    def rose(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert rose("weir_requests_total", api="Produce") >= 1
    assert rose("weir_requests_total", api="Fetch") >= 1
    assert rose("weir_requests_total", api="Metadata") >= 1
    assert rose("weir_request_duration_seconds_count", api="Produce") >= 1
    # Every produced byte of record payload is inside the record sets counted in and out.
    assert rose("weir_topic_bytes_in_total", topic="mtr") >= 200 * len(payload)
    assert rose("weir_topic_bytes_out_total", topic="mtr") >= 200 * len(payload)
    # acks=all waits for the fsync of the appended data.
    assert rose("weir_fsyncs_total") >= 1
    assert rose("weir_fsync_duration_seconds_count") >= 1
    assert rose("weir_log_appends_total") >= 1
    assert 1 <= rose("weir_group_commit_rounds_total") <= rose("weir_log_appends_total")
    assert rose("weir_connections_accepted_total") >= 2
    # The histogram's buckets are cumulative and end at the count.
    inf = value(after, "weir_request_duration_seconds_bucket", api="Produce", le="+Inf")
    assert inf == value(after, "weir_request_duration_seconds_count", api="Produce")
    assert value(after, "weir_process_resident_memory_bytes") > 1_000_000
    assert value(after, "weir_uptime_seconds") > 0
    assert value(after, "weir_ready") == 1


def test_partition_gauges_equal_list_offsets(broker):
    create_topic(broker.bootstrap, "gauges", 3)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for part, n in [(0, 5), (1, 17), (2, 0)]:
        for i in range(n):
            p.produce("gauges", value=b"v%d" % i, partition=part)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "gauges-unused"})
    marks = {part: c.get_watermark_offsets(TopicPartition("gauges", part), timeout=10)
             for part in range(3)}
    c.close()
    assert marks[1] == (0, 17)
    m = scrape(broker.admin_url)
    for part, (low, high) in marks.items():
        labels = {"topic": "gauges", "partition": str(part)}
        assert value(m, "weir_partition_log_end_offset", **labels) == high
        assert value(m, "weir_partition_high_watermark", **labels) == high
        assert value(m, "weir_partition_log_start_offset", **labels) == low
    assert value(m, "weir_partition_size_bytes", topic="gauges", partition="1") > 0
    assert value(m, "weir_partition_size_bytes", topic="gauges", partition="2") == 0


def test_lag_gauges_equal_a_groups_committed_offsets(broker):
    create_topic(broker.bootstrap, "lagged", 2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(50):
        p.produce("lagged", value=b"%d" % i, partition=i % 2)
    assert p.flush(30) == 0

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lag-group",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.subscribe(["lagged"])
    wait_for(lambda: c.poll(0.2) is not None or c.assignment(), what="an assignment")
    c.commit(offsets=[TopicPartition("lagged", 0, 7), TopicPartition("lagged", 1, 20)],
             asynchronous=False)
    committed = {tp.partition: tp.offset
                 for tp in c.committed([TopicPartition("lagged", 0), TopicPartition("lagged", 1)],
                                       timeout=10)}
    ends = {part: c.get_watermark_offsets(TopicPartition("lagged", part), timeout=10)[1]
            for part in range(2)}
    assert committed == {0: 7, 1: 20}
    m = scrape(broker.admin_url)
    c.close()
    for part in range(2):
        labels = {"group": "lag-group", "topic": "lagged", "partition": str(part)}
        assert value(m, "weir_consumer_group_committed_offset", **labels) == committed[part]
        assert value(m, "weir_consumer_group_lag", **labels) == ends[part] - committed[part]
    assert value(m, "weir_consumer_group_members", group="lag-group") == 1


def test_a_malformed_request_counts_as_an_error_of_its_api(broker):
    before = scrape(broker.admin_url)
    # Metadata v1 claiming 5 topics and sending none: the body does not decode, the broker
    # closes the connection and counts the error.
    client_id = b"bad"
    header = struct.pack(">hhih", 3, 1, 42, len(client_id)) + client_id
    body = struct.pack(">i", 5)
    frame = header + body
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        assert s.recv(4) == b""  # closed, no answer
    after = wait_for(lambda: (lambda m: m if value(m, "weir_request_errors_total",
                                                    api="Metadata", version="1") >= 1 else None)(
        scrape(broker.admin_url)), what="the error counted")
    assert value(before, "weir_request_errors_total", api="Metadata", version="1") == 0
    assert value(after, "weir_requests_total", api="Metadata", version="1") >= 1


def test_response_errors_are_counted_by_api_and_kafka_name(broker):
    create_topic(broker.bootstrap, "compacted", 1, {"cleanup.policy": "compact"})
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0})
    p.produce("compacted", value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].name() == "INVALID_RECORD"

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "oor",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition("compacted", 0, 1000)])  # past the end: OFFSET_OUT_OF_RANGE
    c.poll(1.0)
    m = wait_for(lambda: (lambda m: m if value(m, "weir_response_errors_total", api="Fetch",
                                                error="OFFSET_OUT_OF_RANGE") >= 1 else None)(
        scrape(broker.admin_url)), what="the fetch error counted")
    c.close()
    assert value(m, "weir_response_errors_total", api="Produce", error="INVALID_RECORD") == 1

    # Not only the data path: an admin call answered with an error is counted under its API.
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
    res = ConfigResource(ResourceType.TOPIC, "no-such-topic")
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    with pytest.raises(Exception) as e:
        a.describe_configs([res])[res].result(15)
    assert "UNKNOWN_TOPIC_OR_PART" in str(e.value), e.value
    m = scrape(broker.admin_url)
    assert value(m, "weir_response_errors_total", api="DescribeConfigs",
                 error="UNKNOWN_TOPIC_OR_PARTITION") == 1
