#!/usr/bin/env python3
"""Transaction benchmark for weir with confluent-kafka (librdkafka).

Starts the release binary on a free loopback port with a fresh data directory, then measures:

  (a) small transactions: begin, produce 1 record, commit, in a loop for --seconds; commits/s
      and the commit_transaction() latency p50/p99 (EndTxn: Prepare record fsync'd, markers
      fsync'd, Complete record fsync'd);
  (b) large transactions: 1,000 records of 1 KiB each per transaction, over 4 partitions;
      records/s, transactions/s and commit latency p50/p99;
  (c) the same 1 KiB records produced without transactions (idempotent, acks=all), for the
      cost of transactions on throughput;
  (d) reading (b)'s topic from the beginning with isolation.level read_committed and
      read_uncommitted: records/s each (read_committed stops at the last stable offset and
      gets the aborted-transaction list; here no transaction aborted, so both read the same).

Prints a Markdown table; the last line of stdout is a JSON object with the figures.

Usage: bench/txn.py [--bin target/release/weir] [--seconds 5]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(binary, data_dir, log_path):
    port = free_port()
    log = open(log_path, "wb")
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
                             "--admin-listen", "127.0.0.1:0"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"weir exited with {proc.returncode}:\n{Path(log_path).read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("weir did not start in 30 s")


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[min(int(rank), len(sorted_values)) - 1]


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)


def transactions(bootstrap, topic, partitions, per_txn, seconds, txn_id):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5})
    p.init_transactions(30)
    value = b"x" * 1024
    latencies = []
    records = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        p.begin_transaction()
        for i in range(per_txn):
            while True:
                try:
                    p.produce(topic, value=value, partition=(records + i) % partitions)
                    break
                except BufferError:
                    p.poll(0.01)
        t = time.monotonic()
        p.commit_transaction(30)
        latencies.append(time.monotonic() - t)
        records += per_txn
    elapsed = time.monotonic() - start
    latencies.sort()
    return {"transactions": len(latencies), "records": records, "seconds": elapsed,
            "txn_per_s": len(latencies) / elapsed, "records_per_s": records / elapsed,
            "commit_p50_ms": percentile(latencies, 50) * 1000,
            "commit_p99_ms": percentile(latencies, 99) * 1000}


def plain(bootstrap, topic, partitions, count):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    value = b"x" * 1024
    start = time.monotonic()
    for i in range(count):
        while True:
            try:
                p.produce(topic, value=value, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(60)
    elapsed = time.monotonic() - start
    return {"records": count, "seconds": elapsed, "records_per_s": count / elapsed}


def consume(bootstrap, topic, partitions, isolation):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{isolation}",
                  "isolation.level": isolation, "enable.partition.eof": True,
                  "fetch.max.bytes": 64 * 1024 * 1024, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, i, 0) for i in range(partitions)])
    n = 0
    eof = set()
    start = time.monotonic()
    while len(eof) < partitions and time.monotonic() - start < 120:
        for m in c.consume(10000, 1.0):
            if m.error():
                eof.add(m.partition())
            else:
                n += 1
    elapsed = time.monotonic() - start
    c.close()
    return {"records": n, "seconds": elapsed, "records_per_s": n / elapsed}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "weir"))
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="weir-txn-bench-")
    proc, bootstrap = start_broker(args.bin, os.path.join(work, "data"), os.path.join(work, "weir.log"))
    try:
        create_topic(bootstrap, "small", 1)
        create_topic(bootstrap, "large", 4)
        create_topic(bootstrap, "plain", 4)
        small = transactions(bootstrap, "small", 1, 1, args.seconds, "bench-small")
        large = transactions(bootstrap, "large", 4, 1000, args.seconds, "bench-large")
        base = plain(bootstrap, "plain", 4, large["records"])
        rc = consume(bootstrap, "large", 4, "read_committed")
        ru = consume(bootstrap, "large", 4, "read_uncommitted")
    finally:
        proc.terminate()
        proc.wait(30)
    rows = [
        ("1-record transactions (1 partition)", f"{small['txn_per_s']:,.0f} commits/s; commit p50 {small['commit_p50_ms']:.2f} ms, p99 {small['commit_p99_ms']:.2f} ms"),
        ("1,000 x 1 KiB transactions (4 partitions)", f"{large['records_per_s']:,.0f} records/s ({large['txn_per_s']:.1f} txn/s); commit p50 {large['commit_p50_ms']:.2f} ms, p99 {large['commit_p99_ms']:.2f} ms"),
        ("same records, idempotent, no transactions", f"{base['records_per_s']:,.0f} records/s"),
        ("consume read_committed", f"{rc['records_per_s']:,.0f} records/s ({rc['records']:,} records)"),
        ("consume read_uncommitted", f"{ru['records_per_s']:,.0f} records/s ({ru['records']:,} records)"),
    ]
    print("| what | figure |\n| --- | --- |")
    for what, fig in rows:
        print(f"| {what} | {fig} |")
    if rc["records"] != large["records"] or ru["records"] != large["records"]:
        print(f"records read differ from records committed ({large['records']})", file=sys.stderr)
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"small": small, "large": large, "plain": base,
                      "read_committed": rc, "read_uncommitted": ru}))


if __name__ == "__main__":
    main()
