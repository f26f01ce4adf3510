"""The admin HTTP server against the real binary: liveness and readiness (including readiness
held back during crash recovery), the JSON API driven directly and checked with real Kafka
clients (one command path: what HTTP changes, Kafka sees, and the other way round), its JSON
errors, and the OpenAPI document validated and run against the live server by schemathesis."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ResourceType)
from conftest import create_topic
from ops_http import http, wait_for

HERE = Path(__file__).resolve().parent
MAX_ADMIN_CONNECTIONS = 256  # weir_admin::MAX_CONNECTIONS


def kafka_topic_config(bootstrap, topic, name):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res])[res].result(timeout=15)[name].value


def kafka_partitions(bootstrap, topic):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    t = md.topics.get(topic)
    return None if t is None or t.error is not None else len(t.partitions)


def test_health_and_ready_answer_once_started(broker):
    status, _, body = http("GET", f"{broker.admin_url}/health")
    assert status == 200 and body["status"] == "ok"
    wait_for(lambda: http("GET", f"{broker.admin_url}/ready")[0] == 200, what="ready")
    assert http("GET", f"{broker.admin_url}/ready")[2] == {"status": "ready"}


def test_ready_turns_200_only_after_recovery(make_broker):
    b = make_broker("--num-partitions", "1")
    create_topic(b.bootstrap, "many", 300)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 20})
    for i in range(3000):
        p.produce("many", value=b"r" * 200, partition=i % 300)
    assert p.flush(60) == 0
    b.kill()  # no clean-shutdown marker: every partition is recovered at the next start

    seen = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                h = http("GET", f"{b.admin_url}/health", timeout=5)[0] if _up(b) else None
                r = http("GET", f"{b.admin_url}/ready", timeout=5)[0] if h else None
            except OSError:  # not listening yet, or a slow machine: try again
                continue
            seen.append((h, r))
            time.sleep(0.005)

    t = threading.Thread(target=poll)
    t.start()
    try:
        b.start()
        wait_for(lambda: any(r == 200 for _, r in seen), what="/ready 200")
    finally:
        stop.set()
        t.join()
    answered = [(h, r) for h, r in seen if h is not None]
    assert "no clean-shutdown marker" in b.log()
    # Live while recovering, not ready; ready once the logs are open and Kafka is served.
    assert (200, 503) in answered, answered[:20]
    first_ready = next(i for i, (_, r) in enumerate(answered) if r == 200)
    assert all(r == 503 for _, r in answered[:first_ready])
    assert all(r == 200 for _, r in answered[first_ready:])
    # And the data is there: ready means served.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "ready-unused"})
    assert c.get_watermark_offsets(TopicPartition("many", 7), timeout=10) == (0, 10)
    c.close()


def _up(b):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", b.admin_port), timeout=0.2):
            return True
    except OSError:
        return False


def test_admin_listener_can_be_switched_off(make_broker):
    b = make_broker("--admin-listen", "off")
    assert not _up(b)
    create_topic(b.bootstrap, "still-works", 1)


def test_broker_info(broker):
    status, _, info = http("GET", f"{broker.admin_url}/v1/broker")
    assert status == 200
    assert info["node_id"] == 0
    assert info["listeners"]["kafka"] == broker.bootstrap
    assert info["listeners"]["admin"] == f"127.0.0.1:{broker.admin_port}"
    assert Path(info["data_dir"]).resolve() == broker.data_dir.resolve()
    assert info["uptime_seconds"] >= 0
    assert len(info["cluster_id"]) > 0


def test_broker_settings_over_http_are_what_kafka_describe_configs_reports(make_broker):
    b = make_broker("--log-retention-ms", "86400000")
    status, _, info = http("GET", f"{b.admin_url}/v1/broker")
    assert status == 200
    over_http = {c["name"]: c for c in info["configs"]}
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource(ResourceType.BROKER, "0")
    over_kafka = admin.describe_configs([res])[res].result(timeout=15)
    assert set(over_http) == set(over_kafka)
    for name, e in over_kafka.items():
        assert over_http[name]["value"] == e.value, name
    given = over_http["log.retention.ms"]
    assert (given["value"], given["source"], given["read_only"]) == \
        ("86400000", "STATIC_BROKER_CONFIG", True)
    assert [(s["value"], s["source"]) for s in given["synonyms"]] == \
        [("86400000", "STATIC_BROKER_CONFIG"), ("604800000", "DEFAULT_CONFIG")]
    assert over_http["log.retention.bytes"]["source"] == "DEFAULT_CONFIG"


def test_topic_made_over_http_is_a_kafka_topic(broker):
    url = f"{broker.admin_url}/v1/topics"
    status, _, t = http("POST", url, {"name": "http-made", "partitions": 3,
                                      "configs": {"retention.ms": "3600000"}})
    assert status == 201, t
    assert [p["partition"] for p in t["partitions"]] == [0, 1, 2]
    assert t["configs"] == {"retention.ms": "3600000"}
    assert kafka_partitions(broker.bootstrap, "http-made") == 3
    assert kafka_topic_config(broker.bootstrap, "http-made", "retention.ms") == "3600000"

    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p.produce("http-made", value=b"%d" % i, partition=2)
    assert p.flush(30) == 0
    status, _, t = http("GET", f"{url}/http-made")
    assert status == 200
    p2 = t["partitions"][2]
    assert (p2["log_start_offset"], p2["log_end_offset"], p2["high_watermark"]) == (0, 10, 10)
    assert p2["size_bytes"] > 0 and t["partitions"][0]["log_end_offset"] == 0

    status, _, listing = http("GET", url)
    assert status == 200
    assert {"name": "http-made", "partitions": 3, "internal": False, "id": t["id"]} \
        in listing["topics"]

    status, _, body = http("DELETE", f"{url}/http-made")
    assert status == 204, body
    assert kafka_partitions(broker.bootstrap, "http-made") is None
    assert http("GET", f"{url}/http-made")[0] == 404


def test_configs_altered_over_http_show_in_kafka_and_back(broker):
    create_topic(broker.bootstrap, "cfg", 1)
    url = f"{broker.admin_url}/v1/topics/cfg/configs"
    status, _, before = http("GET", url)
    assert status == 200
    entry = {c["name"]: c for c in before["configs"]}
    assert entry["retention.ms"]["source"] == "DEFAULT_CONFIG"

    status, _, after = http("PATCH", url, {"set": {"retention.ms": "1234567",
                                                   "cleanup.policy": "delete"}})
    assert status == 200, after
    entry = {c["name"]: c for c in after["configs"]}
    assert entry["retention.ms"]["value"] == "1234567"
    assert entry["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    # The same change, seen by a Kafka client through DescribeConfigs.
    assert kafka_topic_config(broker.bootstrap, "cfg", "retention.ms") == "1234567"

    # validate_only changes nothing.
    status, _, _ = http("PATCH", url, {"set": {"retention.ms": "999"}, "validate_only": True})
    assert status == 200
    assert kafka_topic_config(broker.bootstrap, "cfg", "retention.ms") == "1234567"

    # APPEND on a list setting, then DELETE back to the default.
    status, _, after = http("PATCH", url, {"append": {"cleanup.policy": "compact"}})
    assert status == 200, after
    policy = kafka_topic_config(broker.bootstrap, "cfg", "cleanup.policy")
    assert sorted(policy.split(",")) == ["compact", "delete"]
    status, _, after = http("PATCH", url, {"delete": ["cleanup.policy", "retention.ms"]})
    assert status == 200
    entry = {c["name"]: c for c in after["configs"]}
    assert entry["retention.ms"]["source"] == "DEFAULT_CONFIG"

    # A Kafka client's change shows over HTTP.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource(ResourceType.TOPIC, "cfg", incremental_configs=[
        ConfigEntry("segment.ms", "600000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(timeout=15)
    entry = {c["name"]: c for c in http("GET", url)[2]["configs"]}
    assert entry["segment.ms"]["value"] == "600000"


def test_errors_are_json_with_kafka_names(broker):
    url = f"{broker.admin_url}/v1/topics"
    create_topic(broker.bootstrap, "exists", 1)

    def err(method, path, body=None, raw=None):
        status, headers, b = http(method, f"{broker.admin_url}{path}", body, raw=raw)
        assert headers.get("content-type", "").startswith("application/json"), (status, b)
        return status, b["error"]

    assert err("POST", "/v1/topics", {"name": "exists"}) == (409, "TOPIC_ALREADY_EXISTS")
    assert err("POST", "/v1/topics", {"name": "bad name!"}) == (400, "INVALID_TOPIC_EXCEPTION")
    assert err("POST", "/v1/topics", {"name": "p0", "partitions": 0}) == \
        (400, "INVALID_PARTITIONS")
    assert err("POST", "/v1/topics", {"name": "rf", "replication_factor": 3}) == \
        (400, "INVALID_REPLICATION_FACTOR")
    assert err("POST", "/v1/topics", {"name": "c", "configs": {"retention.ms": "soon"}}) == \
        (400, "INVALID_CONFIG")
    assert err("POST", "/v1/topics", {"name": "c", "configs": {"no.such.setting": "1"}})[0] == 400
    assert err("POST", "/v1/topics", raw=b"{not json") == (400, "INVALID_REQUEST")
    assert err("POST", "/v1/topics", {"name": "x", "surprise": 1}) == (400, "INVALID_REQUEST")
    assert err("POST", "/v1/topics", raw=b'{"name": "' + b"a" * 70_000 + b'"}') == \
        (413, "REQUEST_TOO_LARGE")
    assert err("GET", "/v1/topics/nope") == (404, "UNKNOWN_TOPIC_OR_PARTITION")
    assert err("DELETE", "/v1/topics/nope") == (404, "UNKNOWN_TOPIC_OR_PARTITION")
    assert err("GET", "/v1/topics/nope/configs") == (404, "UNKNOWN_TOPIC_OR_PARTITION")
    assert err("PATCH", "/v1/topics/nope/configs", {"set": {"retention.ms": "1"}}) == \
        (404, "UNKNOWN_TOPIC_OR_PARTITION")
    assert err("PATCH", "/v1/topics/exists/configs", {"set": {"retention.ms": "x"}}) == \
        (400, "INVALID_CONFIG")
    assert err("GET", "/v1/groups/nope") == (404, "GROUP_ID_NOT_FOUND")
    assert err("GET", "/v1/nothing-here") == (404, "NOT_FOUND")
    assert err("PUT", "/v1/topics") == (405, "METHOD_NOT_ALLOWED")
    # None of those made a topic.
    names = {t["name"] for t in http("GET", url)[2]["topics"]}
    assert names == {"exists"}


def test_groups_with_members_and_lag(broker):
    create_topic(broker.bootstrap, "grp", 2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(30):
        p.produce("grp", value=b"%d" % i, partition=i % 2)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "http-group",
                  "client.id": "http-client", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.subscribe(["grp"])
    wait_for(lambda: c.poll(0.2) is not None or c.assignment(), what="an assignment")
    c.commit(offsets=[TopicPartition("grp", 0, 4), TopicPartition("grp", 1, 15)],
             asynchronous=False)
    try:
        status, _, groups = http("GET", f"{broker.admin_url}/v1/groups")
        assert status == 200
        g = next(g for g in groups["groups"] if g["group_id"] == "http-group")
        assert (g["protocol_type"], g["members"]) == ("consumer", 1)
        status, _, g = http("GET", f"{broker.admin_url}/v1/groups/http-group")
        assert status == 200
        assert g["state"] == "Stable"
        [m] = g["members"]
        assert m["client_id"] == "http-client"
        assert m["assignment"] == [{"topic": "grp", "partitions": [0, 1]}]
        lag = {o["partition"]: o for o in g["offsets"]}
        assert lag[0] == {"topic": "grp", "partition": 0, "committed_offset": 4,
                          "log_end_offset": 15, "lag": 11}
        assert lag[1]["lag"] == 0
        assert g["total_lag"] == 11
    finally:
        c.close()


def test_openapi_document_validates_and_schemathesis_passes(broker):
    status, _, doc = http("GET", f"{broker.admin_url}/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    # Every route the server answers is described.
    assert set(doc["paths"]) == {"/health", "/ready", "/metrics", "/openapi.json", "/v1/broker",
                                 "/v1/topics", "/v1/topics/{name}",
                                 "/v1/topics/{name}/configs", "/v1/groups",
                                 "/v1/groups/{group_id}"}
    from openapi_spec_validator import validate
    validate(doc)

    create_topic(broker.bootstrap, "st-existing", 1)
    env = dict(os.environ, SCHEMATHESIS_HOOKS="ops_st_hooks", PYTHONPATH=str(HERE))
    st = Path(sys.executable).parent / "schemathesis"
    run = subprocess.run(
        [str(st), "run", f"{broker.admin_url}/openapi.json",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance,negative_data_rejection",
         "--max-examples", "15", "--seed", "9", "--workers", "1", "--no-shrink",
         "--phases", "examples,coverage,fuzzing", "--request-timeout", "10",
         "--generation-database", "none", "--no-color",
         # Path parameters are any string; most cannot be put in a URL and are filtered.
         "--suppress-health-check", "filter_too_much"],
        cwd=str(broker.log_dir), env=env, capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-3000:]
    # Bounded: the fuzzer made a handful of small topics, not thousands of partitions.
    topics = http("GET", f"{broker.admin_url}/v1/topics")[2]["topics"]
    assert sum(t["partitions"] for t in topics) < 2000
    assert broker.alive()


def test_idle_and_slow_connections_are_capped_and_timed_out(broker):
    """More idle connections than the admin server serves at once (256), and one client that
    sends half a request and stops: the server closes each after the 10 s header read timeout,
    so a well-behaved request gets through, and the broker's memory stays bounded."""
    import socket

    rss_before = broker.rss_bytes()
    slow = socket.create_connection(("127.0.0.1", broker.admin_port), timeout=30)
    slow.sendall(b"GET /health HTTP/1.1\r\nHost: weir\r\n")  # and never the blank line
    idle = [socket.create_connection(("127.0.0.1", broker.admin_port), timeout=30)
            for _ in range(300)]
    try:
        t0 = time.monotonic()
        status, _, body = http("GET", f"{broker.admin_url}/health", timeout=60)
        assert status == 200 and body["status"] == "ok"
        print(f"/health answered after {time.monotonic() - t0:.1f} s behind 300 idle connections")
        # The slow client is cut off rather than held forever.
        slow.settimeout(30)
        try:
            rest = slow.recv(4096)
        except ConnectionResetError:
            rest = b""
        assert rest == b"" or rest.startswith(b"HTTP/1.1 408"), rest[:100]
        # Every idle connection the server accepted was closed by it.
        closed = 0
        for s in idle[:MAX_ADMIN_CONNECTIONS - 1]:  # the slow one holds the 256th slot
            s.settimeout(30)
            try:
                closed += s.recv(1) == b""
            except ConnectionResetError:
                closed += 1
        assert closed == MAX_ADMIN_CONNECTIONS - 1
        assert broker.rss_bytes() - rss_before < 64 << 20
    finally:
        for s in idle + [slow]:
            s.close()
