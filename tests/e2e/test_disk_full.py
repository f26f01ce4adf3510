"""Issue 6 acceptance 2: the broker's data directory on a small filesystem (a size-limited
tmpfs the test mounts) fills up. Produce errors are clean (KAFKA_STORAGE_ERROR), the broker
stays up and keeps serving reads, and once space is freed writes resume, without a restart,
and every acknowledged message is readable."""

import os
import subprocess

import pytest
from confluent_kafka import KafkaError, Producer
from conftest import consume_to_end, create_topic

FS_BYTES = 24 * 1024 * 1024


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def produce_until_full(bootstrap, topic, max_messages=10_000):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": 5000, "retries": 0})
    acked, failed = [], []

    def on_delivery(err, msg):
        (failed if err else acked).append((err, msg.value()))

    payload = b"x" * 4000
    for i in range(max_messages):
        p.produce(topic, b"%06d" % i + payload, on_delivery=on_delivery)
        if i % 100 == 0:
            p.flush(10)
            if failed:
                break
    p.flush(10)
    return [v for _, v in acked], [e for e, _ in failed]


def test_disk_full_refuses_writes_then_resumes(make_broker, small_fs):
    broker = make_broker(start=False)
    broker.data_dir = small_fs / "data"
    broker.start()
    create_topic(broker.bootstrap, "filling", 1)
    # A filler file the test can delete later to give space back.
    filler = small_fs / "filler"
    with open(filler, "wb") as f:
        f.write(b"\x00" * (4 * 1024 * 1024))

    acked, errors = produce_until_full(broker.bootstrap, "filling")
    codes = {e.code() for e in errors}
    print(f"\nacknowledged {len(acked)} messages before the disk filled; errors {codes}")
    assert acked and errors
    assert codes == {KafkaError.KAFKA_STORAGE_ERROR}, codes
    assert "disk full" in broker.log()
    assert broker.alive()

    # Reads keep working while the disk is full.
    got = [v for _, _, v in consume_to_end(broker.bootstrap, "filling", 1)[0]]
    assert got == acked

    # Space comes back: writes resume on the same broker process.
    os.remove(filler)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    results = []
    for i in range(20):
        p.produce("filling", b"after-%d" % i, on_delivery=lambda e, m: results.append(e))
    assert p.flush(10) == 0
    assert results == [None] * 20, results

    got = [v for _, _, v in consume_to_end(broker.bootstrap, "filling", 1)[0]]
    assert got == acked + [b"after-%d" % i for i in range(20)]
    # And after a restart, everything acknowledged is still there.
    assert broker.stop() == 0
    broker.start()
    got = [v for _, _, v in consume_to_end(broker.bootstrap, "filling", 1)[0]]
    assert got == acked + [b"after-%d" % i for i in range(20)]
