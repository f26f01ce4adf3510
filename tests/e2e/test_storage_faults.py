"""Issue 4 acceptance 4: a failed fsync takes its partition offline (KAFKA_STORAGE_ERROR), other
partitions keep working, and nothing acknowledged is lost.

The broker binary is unchanged: an LD_PRELOAD shim (faultfs/failsync.c) makes libc's fsync
and fdatasync return EIO for one partition's files once a trigger file exists."""

import subprocess
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from conftest import consume_to_end, create_topic

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def failsync_lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("faultfs") / "failsync.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(out),
                    str(HERE / "faultfs" / "failsync.c"), "-ldl"], check=True)
    return out


def produce(bootstrap, topic, values, partition=0):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                  "message.timeout.ms": 5000, "retries": 0})
    results = []

    def on_delivery(err, msg):
        results.append((err, msg.value(), msg.offset()))

    for v in values:
        p.produce(topic, v, partition=partition, on_delivery=on_delivery)
        p.flush(10)
    return results


def test_failed_fsync_takes_only_that_partition_offline(make_broker, failsync_lib, tmp_path):
    trigger = tmp_path / "fail-now"
    broker = make_broker(start=False)
    broker.env = {"LD_PRELOAD": str(failsync_lib), "WEIR_FAIL_FSYNC_MATCH": "/doomed-0/",
                  "WEIR_FAIL_FSYNC_TRIGGER": str(trigger)}
    broker.start()
    create_topic(broker.bootstrap, "doomed", 1)
    create_topic(broker.bootstrap, "healthy", 1)

    before = produce(broker.bootstrap, "doomed", [b"a%d" % i for i in range(20)])
    assert all(err is None for err, _, _ in before)
    acked = [v for err, v, _ in before if err is None]

    trigger.touch()  # from now on, fsync of doomed-0's files fails
    after = produce(broker.bootstrap, "doomed", [b"b%d" % i for i in range(5)])
    codes = {err.code() for err, _, _ in after if err is not None}
    print("errors after the failed fsync:", codes)
    assert all(err is not None for err, _, _ in after), "nothing is acknowledged after it"
    assert KafkaError.KAFKA_STORAGE_ERROR in codes or KafkaError.NOT_LEADER_OR_FOLLOWER in codes
    assert "fsync failed; partition is offline" in broker.log()

    # Other partitions do not notice.
    healthy = produce(broker.bootstrap, "healthy", [b"h%d" % i for i in range(10)])
    assert all(err is None for err, _, _ in healthy)
    # Reads of what was acknowledged still work on the broken partition.
    got = [v for _, _, v in consume_to_end(broker.bootstrap, "doomed", 1)[0]]
    assert got == acked

    # Restart on a healthy disk: everything acknowledged is there, and writes resume.
    broker.kill()
    trigger.unlink()
    broker.env = {}
    broker.start()
    got = [v for _, _, v in consume_to_end(broker.bootstrap, "doomed", 1)[0]]
    assert got[:len(acked)] == acked
    resumed = produce(broker.bootstrap, "doomed", [b"c0"])
    assert resumed[0][0] is None
    assert [v for _, _, v in consume_to_end(broker.bootstrap, "healthy", 1)[0]] == \
        [b"h%d" % i for i in range(10)]
