#!/usr/bin/env python3
"""Build the fuzz targets' seed corpus from real client traffic.

Starts `weir serve` (the release binary) on a scratch data directory, puts a recording TCP
proxy in front of it (the broker advertises the proxy, so every connection of every client
goes through it), and drives real clients through it: kcat (produce with each codec,
consume, metadata, a consumer group), confluent-kafka (idempotent producer, a consumer group
with commits, admin calls) and kafka-python (producer, group consumer, admin). Each
client->broker request frame is saved without its size prefix; after a clean shutdown the
files the broker wrote (segments, indexes, checkpoints, producer snapshots, the
__consumer_offsets records) become seeds of the file-based targets.

Usage (from the repository root; needs kcat and .venv from scripts/test.sh):
    .venv/bin/python fuzz/tools/capture_corpus.py [--weir target/release/weir] [--out fuzz/corpus]

Existing files in the output directories are kept; seeds are named by content hash, so a
rerun adds only new ones. Prefer `cargo fuzz cmin` afterwards to keep the corpus small.
"""

import argparse
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILE_SEP = b"\n--file:"

API_NAMES = {
    0: "produce", 1: "fetch", 2: "list_offsets", 3: "metadata", 8: "offset_commit",
    9: "offset_fetch", 10: "find_coordinator", 11: "join_group", 12: "heartbeat",
    13: "leave_group", 14: "sync_group", 15: "describe_groups", 16: "list_groups",
    18: "api_versions", 19: "create_topics", 20: "delete_topics", 22: "init_producer_id",
    32: "describe_configs", 37: "create_partitions", 42: "delete_groups",
    47: "offset_delete", 60: "describe_cluster",
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def save(directory, data, prefix=""):
    directory.mkdir(parents=True, exist_ok=True)
    name = prefix + hashlib.sha1(data).hexdigest()[:16]
    path = directory / name
    if not path.exists():
        path.write_bytes(data)
    return path


class RecordingProxy:
    """Forwards 127.0.0.1:port <-> broker; records every client->broker frame body."""

    def __init__(self, broker_port):
        self.broker = ("127.0.0.1", broker_port)
        self.frames = []
        self.streams = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.broker)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump_requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _pump_requests(self, src, dst):
        buf = b""
        stream = bytearray()
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                stream += data
                buf += data
                while len(buf) >= 4:
                    (size,) = struct.unpack(">i", buf[:4])
                    if size < 0 or len(buf) < 4 + size:
                        break
                    with self.lock:
                        self.frames.append(bytes(buf[4:4 + size]))
                    buf = buf[4 + size:]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self.lock:
                self.streams.append(bytes(stream))
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.stopped = True
        self.listener.close()


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def run(cmd, stdin=None, timeout=60):
    print("  $", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    if r.returncode != 0:
        print("    (exit", r.returncode, r.stderr.decode(errors="replace")[-300:], ")")
    return r


def drive_kcat(bootstrap):
    messages = b"".join(b"key%d:value number %d with some text\n" % (i, i) for i in range(20))
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        run(["kcat", "-P", "-b", bootstrap, "-t", f"kcat-{codec}", "-z", codec, "-K", ":",
             "-H", "h1=v1", "-X", "acks=all", "-X", "linger.ms=50"], stdin=messages)
    run(["kcat", "-P", "-b", bootstrap, "-t", "kcat-part", "-p", "0", "-X", "acks=1"],
        stdin=b"x\ny\n")
    for codec in ["none", "gzip", "zstd"]:
        run(["kcat", "-C", "-b", bootstrap, "-t", f"kcat-{codec}", "-o", "beginning", "-e",
             "-f", "%p:%o %k %s\n"])
    run(["kcat", "-C", "-b", bootstrap, "-t", "kcat-lz4", "-o", "-3", "-e", "-c", "2"])
    run(["kcat", "-C", "-b", bootstrap, "-t", "kcat-snappy", "-o", "s@0", "-e", "-c", "2"])
    run(["kcat", "-L", "-b", bootstrap])
    run(["kcat", "-L", "-b", bootstrap, "-t", "kcat-gzip", "-J"])
    run(["kcat", "-b", bootstrap, "-G", "kcat-group", "kcat-none", "-e", "-o", "beginning",
         "-X", "session.timeout.ms=6000"], timeout=60)


def drive_confluent(bootstrap):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (AdminClient, ConfigResource, NewPartitions, NewTopic,
                                       OffsetSpec)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([
        NewTopic("ck-topic", num_partitions=3, replication_factor=1,
                 config={"segment.bytes": "16384", "max.message.bytes": "100000"}),
        NewTopic("ck-logappend", num_partitions=1, replication_factor=1,
                 config={"message.timestamp.type": "LogAppendTime"}),
        NewTopic("ck-bad", num_partitions=1, replication_factor=1,
                 config={"retention.ms": "1"}),
    ])
    for f in fs.values():
        try:
            f.result(10)
        except Exception as e:  # noqa: BLE001 - refused configs are part of the traffic
            print("    create_topics:", e)
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                      "compression.type": codec, "linger.ms": 20})
        for i in range(30):
            p.produce("ck-topic", key=b"k%d" % (i % 7), value=(b"v%d-" % i) * (i + 1),
                      headers=[("h", b"x")], partition=i % 3)
        p.produce("ck-logappend", value=b"stamped", timestamp=1_600_000_000_000)
        p.flush(20)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ck-group",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": 6000})
    c.subscribe(["ck-topic", "ck-logappend"])
    got = 0
    deadline = time.time() + 20
    while got < 150 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
            if got % 25 == 0:
                c.commit(message=m, asynchronous=False)
    c.commit(asynchronous=False)
    c.committed([TopicPartition("ck-topic", p) for p in range(3)], timeout=10)
    c.offsets_for_times([TopicPartition("ck-topic", 0, 1_000)], timeout=10)
    c.get_watermark_offsets(TopicPartition("ck-topic", 1), timeout=10)
    c.close()
    # Commits from outside any group (assign(), generation -1), and a fetch of them.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ck-standalone",
                  "enable.auto.commit": False})
    c.assign([TopicPartition("ck-topic", 0, 0)])
    c.poll(1.0)
    c.commit(offsets=[TopicPartition("ck-topic", 0, 5), TopicPartition("ck-topic", 1, 2)],
             asynchronous=False)
    c.committed([TopicPartition("ck-topic", 0)], timeout=10)
    c.close()
    res = ConfigResource(ConfigResource.Type.TOPIC, "ck-topic")
    for f in admin.describe_configs([res]).values():
        f.result(10)
    broker_res = ConfigResource(ConfigResource.Type.BROKER, "0")
    for f in admin.describe_configs([broker_res]).values():
        try:
            f.result(10)
        except Exception as e:  # noqa: BLE001
            print("    describe broker configs:", e)
    try:
        for spec in [OffsetSpec.earliest(), OffsetSpec.latest(), OffsetSpec.max_timestamp(),
                     OffsetSpec.for_timestamp(1_700_000_000_000)]:
            for f in admin.list_offsets({TopicPartition("ck-topic", 0): spec}).values():
                f.result(10)
    except Exception as e:  # noqa: BLE001
        print("    list_offsets:", e)
    for f in admin.create_partitions([NewPartitions("ck-topic", 4)]).values():
        f.result(10)
    try:
        admin.list_consumer_groups().result(10)
        for f in admin.describe_consumer_groups(["ck-group"]).values():
            f.result(10)
        admin.describe_cluster().result(10)
        for f in admin.delete_consumer_groups(["ck-group"]).values():
            f.result(10)
    except Exception as e:  # noqa: BLE001
        print("    groups admin:", e)
    for f in admin.delete_topics(["ck-logappend"]).values():
        f.result(10)


def drive_kafka_python(bootstrap):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import (ConfigResource, ConfigResourceType, KafkaAdminClient,
                             NewPartitions, NewTopic)

    p = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip", acks="all",
                      linger_ms=20)
    for i in range(40):
        p.send("kp-topic", key=b"key-%d" % i, value=b"kafka-python %d" % i,
               headers=[("trace", b"%d" % i)])
    p.flush(20)
    p.close()
    p = KafkaProducer(bootstrap_servers=bootstrap, acks=1)
    for i in range(10):
        p.send("kp-topic", value=b"plain %d" % i)
    p.flush(20)
    p.close()
    c = KafkaConsumer("kp-topic", bootstrap_servers=bootstrap, group_id="kp-group",
                      auto_offset_reset="earliest", consumer_timeout_ms=4000,
                      enable_auto_commit=False)
    n = 0
    for _ in c:
        n += 1
        if n >= 50:
            break
    c.commit()
    c.close()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    calls = [
        lambda: admin.create_topics([NewTopic("kp-admin", num_partitions=2, replication_factor=1)]),
        lambda: admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-topic")]),
        lambda: admin.describe_topics(["kp-topic"]),
        lambda: admin.describe_cluster(),
        lambda: admin.list_groups(),
        lambda: admin.describe_groups(["kp-group"]),
        lambda: admin.list_group_offsets("kp-group"),
        lambda: admin.create_partitions({"kp-admin": NewPartitions(3)}),
        lambda: admin.delete_group_offsets("kp-group", [TopicPartition("kp-topic", 0)]),
        lambda: admin.delete_groups(["kp-group"]),
        lambda: admin.delete_topics(["kp-admin"]),
    ]
    for call in calls:
        try:
            call()
        except Exception as e:  # noqa: BLE001 - errors are part of the traffic
            print("    kafka-python admin:", type(e).__name__, str(e)[:120])
    admin.close()


def batches(data):
    """Whole RecordBatch v2 at the front of `data`: (base_offset, bytes)."""
    pos = 0
    while pos + 61 <= len(data):
        base, length = struct.unpack(">qi", data[pos:pos + 12])
        total = 12 + length
        if length < 49 or pos + total > len(data):
            break
        yield base, data[pos:pos + total]
        pos += total


def varint(b, i):
    shift = raw = 0
    while True:
        c = b[i]
        i += 1
        raw |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return (raw >> 1) ^ -(raw & 1), i


def records(batch):
    """(key, value) of each record of an uncompressed batch."""
    attributes = struct.unpack(">h", batch[21:23])[0]
    if attributes & 7:
        return
    (count,) = struct.unpack(">i", batch[57:61])
    i = 61
    for _ in range(count):
        length, i = varint(batch, i)
        end = i + length
        i += 1
        _, i = varint(batch, i)
        _, i = varint(batch, i)
        klen, i = varint(batch, i)
        key = batch[i:i + klen] if klen >= 0 else None
        i += max(klen, 0)
        vlen, i = varint(batch, i)
        value = batch[i:i + vlen] if vlen >= 0 else None
        yield key, value
        i = end


def harvest_files(data_dir, out):
    """Seeds of the file-based targets from what the broker wrote."""
    n = {"record_batch": 0, "segment_recovery": 0, "checkpoint_parsers": 0}
    for part in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        logs = sorted(part.glob("*.log"))
        for log in logs:
            data = log.read_bytes()
            for _, b in batches(data):
                if len(b) <= 8192:
                    # 0x02: validate and append; 0x00: validate only.
                    save(out / "record_batch", b"\x02" + b)
                    n["record_batch"] += 1
                if "__consumer_offsets" in part.name:
                    for key, value in records(b):
                        if key is not None:
                            save(out / "checkpoint_parsers", b"\x06" + key)
                        if value is not None:
                            save(out / "checkpoint_parsers", b"\x07" + value)
                        n["checkpoint_parsers"] += 1
            if 0 < len(data) <= 32 * 1024:
                # Recovery after a crash (flags 0), and a clean open with the index files
                # and checkpoints (flags 1) when they describe this segment.
                save(out / "segment_recovery", b"\x00" + data)
                n["segment_recovery"] += 1
                packed = b"\x01" + data
                for tag, suffix in [(b"I", ".index"), (b"T", ".timeindex")]:
                    f = log.with_suffix(suffix)
                    if f.exists():
                        packed += FILE_SEP + tag + f.read_bytes()
                for tag, name in [(b"C", "log-checkpoint"), (b"E", "leader-epoch-checkpoint")]:
                    f = part / name
                    if f.exists() and len(logs) == 1:
                        packed += FILE_SEP + tag + f.read_bytes()
                save(out / "segment_recovery", packed)
        if len(logs) >= 2 and sum(p.stat().st_size for p in logs) <= 48 * 1024:
            # A multi-segment log: the first segment, then the others as `L` parts.
            packed = b"\x00" + logs[0].read_bytes()
            for log in logs[1:]:
                packed += FILE_SEP + b"L" + log.read_bytes()
            save(out / "segment_recovery", packed)
        for sel, name in [(0, "log-checkpoint"), (1, "leader-epoch-checkpoint")]:
            f = part / name
            if f.exists():
                save(out / "checkpoint_parsers", bytes([sel]) + f.read_bytes())
                save(out / "checkpoint_parsers", bytes([sel | 0x80]) + f.read_bytes())
        for sel, suffix in [(3, ".index"), (4, ".timeindex")]:
            for f in sorted(part.glob("*" + suffix))[:2]:
                save(out / "checkpoint_parsers", bytes([sel | 0xC0]) + f.read_bytes())
        snap = part / "producer-state.snapshot"
        if snap.exists():
            save(out / "checkpoint_parsers", b"\x05" + snap.read_bytes())
            n["checkpoint_parsers"] += 1
    # The offline checkpoint is only written after a failed fsync: add its format by hand.
    save(out / "checkpoint_parsers", b"\x02" + b"1\nrecovery_point 17\n")
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", default=str(ROOT / "target/release/weir"))
    ap.add_argument("--out", default=str(ROOT / "fuzz/corpus"))
    args = ap.parse_args()
    out = Path(args.out)
    if not Path(args.weir).exists():
        sys.exit(f"{args.weir} missing: cargo build --release -p weir")

    data_dir = Path(tempfile.mkdtemp(prefix="weir-capture-"))
    broker_port = free_port()
    proxy = RecordingProxy(broker_port)
    bootstrap = f"127.0.0.1:{proxy.port}"
    broker = subprocess.Popen(
        [args.weir, "serve", "--listen", f"127.0.0.1:{broker_port}", "--data-dir", str(data_dir),
         "--advertised-listener", bootstrap, "--log-segment-bytes", "16384",
         "--group-initial-rebalance-delay-ms", "0", "--offsets-topic-num-partitions", "2"],
        stderr=subprocess.DEVNULL)
    try:
        wait_port(broker_port)
        print("kcat")
        drive_kcat(bootstrap)
        print("confluent-kafka")
        drive_confluent(bootstrap)
        print("kafka-python")
        drive_kafka_python(bootstrap)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(30)
        proxy.stop()

    time.sleep(0.5)
    with proxy.lock:
        frames = list(proxy.frames)
        streams = list(proxy.streams)
    by_api = {}
    for f in frames:
        if len(f) < 4:
            continue
        api, version = struct.unpack(">hh", f[:4])
        name = API_NAMES.get(api, f"api{api}")
        # Frames that differ only in their correlation id are the same seed.
        key = f[:4] + f[8:]
        if key in by_api:
            continue
        by_api[key] = f
        save(out / "request_dispatch", f, prefix=f"{name}-v{version}-")
    # frame target: byte 0 = read size, byte 1 = cap selector (3 = 100 MiB), then the stream.
    for s in streams:
        if 0 < len(s) <= 16 * 1024:
            save(out / "frame", bytes([7, 3]) + s)
    harvested = harvest_files(data_dir, out)
    print(f"{len(frames)} frames captured, {len(by_api)} distinct; files: {harvested}")
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
