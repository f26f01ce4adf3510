"""Structured logs against the real binary: with --log-format json every line the broker writes
is one JSON object, and the notable events (broker ready, topic created, segment rolled and
deleted by retention, group rebalance) each produce a line with their fields, plus the
connection and request spans they happened in; producing records adds no info line per
record."""

import json
import time

from confluent_kafka import Consumer, Producer
from conftest import create_topic
from ops_http import wait_for


def events(broker):
    out = []
    for line in broker.log().splitlines():
        if line.strip():
            out.append(json.loads(line))  # every line must be JSON
    return out


def test_json_logs_have_one_line_per_notable_event(make_broker):
    b = make_broker("--log-format", "json", "--log-retention-check-interval-ms", "200",
                    "--group-initial-rebalance-delay-ms", "0")
    create_topic(b.bootstrap, "logged", 1, {"segment.bytes": "16384", "retention.ms": "600000"})
    old = int(time.time() * 1000) - 3_600_000
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "batch.size": 2000})
    for i in range(300):
        p.produce("logged", value=b"v" * 200, partition=0, timestamp=old)
    assert p.flush(30) == 0
    wait_for(lambda: "retention deleted segments" in b.log(), what="retention to run")

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "logs-group",
                  "auto.offset.reset": "earliest"})
    c.subscribe(["logged"])
    wait_for(lambda: c.poll(0.2) is not None or c.assignment(), what="an assignment")
    c.close()
    assert b.stop() == 0

    evs = events(b)
    for e in evs:
        assert {"timestamp", "level", "target", "message"} <= set(e), e

    def one(message, **fields):
        found = [e for e in evs if e["message"] == message
                 and all(e.get(k) == v for k, v in fields.items())]
        assert found, f"no {message!r} line with {fields}"
        return found

    [ready] = one("weir is ready")
    assert ready["kafka"] == b.bootstrap and ready["admin"] == f"127.0.0.1:{b.admin_port}"
    [created] = one("topic created", topic="logged")
    assert created["partitions"] == 1 and created["level"] == "INFO"
    # Created while serving a request: the connection's and the request's spans come along.
    conn, req = created["spans"]
    assert conn["name"] == "connection" and conn["peer"].startswith("127.0.0.1:"), conn
    assert conn["conn_id"] >= 1, conn
    assert req["name"] == "request" and req["api"] == "CreateTopics", req
    assert {"api_version", "correlation_id", "client_id"} <= set(req), req
    rolled = [r for r in one("segment rolled") if r["dir"].endswith("logged-0")]
    assert rolled and all(r["base_offset"] > 0 for r in rolled)
    # A roll by an append happens inside a Produce request; one by retention (every segment
    # expired) in no request at all.
    by_produce = [r for r in rolled if "spans" in r]
    assert by_produce and all(r["spans"][-1]["api"] == "Produce" for r in by_produce), rolled
    # Background work (the retention task) runs in no connection's span.
    assert "spans" not in one("retention deleted segments", partition="logged-0")[0]
    deleted = one("retention deleted segments", partition="logged-0")
    assert deleted[0]["segments"] >= 1 and deleted[0]["log_start_offset"] > 0
    rebalanced = one("group rebalanced", group="logs-group")
    assert rebalanced[0]["generation"] >= 1 and rebalanced[0]["members"] == 1
    # No per-record noise: 300 records, a few dozen lines at most.
    assert len([e for e in evs if e["level"] == "INFO"]) < 60, [e["message"] for e in evs]


def test_text_logs_by_default(broker):
    lines = [l for l in broker.log().splitlines() if l.strip()]
    assert any("weir is listening" in l for l in lines)
    assert not any(l.lstrip().startswith("{") for l in lines)
