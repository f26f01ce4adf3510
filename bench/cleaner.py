#!/usr/bin/env python3
"""Log cleaner benchmark for weir: cleaner throughput and memory, and what it does to produce
latency on the same broker.

Starts the release binary with a fresh data directory, fills topic `big` (1 partition,
cleanup.policy=delete so nothing is cleaned yet) with --records keyed updates over --keys keys
(100-byte values, lz4), then measures produce latency on another topic (`lat`, acks=all, one
message every millisecond, latency from the intended send time) twice for --seconds each:
once with the broker idle, once right after `big` is switched to cleanup.policy=compact with
IncrementalAlterConfigs, so the cleaner works through the whole log during the measurement.
The cleaner's own figures (bytes read, records kept, MB/s) come from its log lines, the
broker's peak RSS from /proc.

Prints a Markdown table; the last line of stdout is a JSON object with the figures.

Usage: bench/cleaner.py [--bin target/release/weir] [--records 3000000] [--keys 10000] [--seconds 8]
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourceType)

REPO = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[min(int(rank), len(sorted_values)) - 1]


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def latency(bootstrap, seconds):
    """Produce one message per ms to `lat` for `seconds`; latencies (s) from the intended
    send time to the delivery report."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    lat = []
    start = time.monotonic()
    n = 0
    while True:
        intended = start + n * 0.001
        now = time.monotonic()
        if intended - start >= seconds:
            break
        if intended > now:
            p.poll(intended - now)
            continue
        p.produce("lat", value=b"x" * 100,
                  on_delivery=lambda err, msg, t=intended: lat.append(time.monotonic() - t))
        p.poll(0)
        n += 1
    p.flush(30)
    lat.sort()
    return {"count": len(lat), "p50_ms": percentile(lat, 50) * 1000,
            "p99_ms": percentile(lat, 99) * 1000, "max_ms": lat[-1] * 1000 if lat else float("nan")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "weir"))
    ap.add_argument("--records", type=int, default=3_000_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="weir-cleaner-bench-")
    port = free_port()
    log_path = os.path.join(work, "weir.log")
    env = dict(os.environ, RUST_LOG="info")
    proc = subprocess.Popen([args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                             os.path.join(work, "data"), "--log-cleaner-backoff-ms", "100",
                             "--admin-listen", "127.0.0.1:0"],
                            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env)
    bootstrap = f"127.0.0.1:{port}"
    try:
        time.sleep(0.5)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic("big", 1, 1, config={"segment.bytes": "16777216"}),
                                      NewTopic("lat", 1, 1)]).values():
            f.result(timeout=30)
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4",
                      "queue.buffering.max.messages": 1000000})
        t = time.monotonic()
        for i in range(args.records):
            k = b"key-%06d" % (i % args.keys)
            while True:
                try:
                    p.produce("big", key=k, value=b"%s=%090d" % (k, i), partition=0)
                    break
                except BufferError:
                    p.poll(0.05)
        p.flush(300)
        fill_s = time.monotonic() - t
        # Close the segment holding the last updates: 18 MB of incompressible fillers.
        for i in range(20):
            p.produce("big", key=b"filler-%d" % i, value=os.urandom(900_000), partition=0)
        p.flush(60)
        rss_before = peak_rss_mib(proc.pid)
        idle = latency(bootstrap, args.seconds)
        res = ConfigResource(ResourceType.TOPIC, "big", incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("min.cleanable.dirty.ratio", "0.01",
                        incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([res])[res].result(timeout=15)
        cleaning = latency(bootstrap, args.seconds)
        rss_after = peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    passes = [l for l in Path(log_path).read_text().splitlines() if "log cleaned" in l]
    read = sum(int(re.search(r"bytes_read=(\d+)", l).group(1)) for l in passes)
    rates = [float(re.search(r'mb_per_s="([0-9.]+)"', l).group(1)) for l in passes]
    first_pass = passes[0] if passes else ""
    print("| what | figure |\n| --- | --- |")
    print(f"| fill | {args.records:,} keyed updates over {args.keys:,} keys in {fill_s:.1f} s |")
    print(f"| cleaner | {len(passes)} passes, {read / 1e6:.0f} MB read, "
          f"{min(rates, default=0):.0f}-{max(rates, default=0):.0f} MB/s per pass |")
    print(f"| broker peak RSS before / after cleaning | {rss_before:.0f} / {rss_after:.0f} MiB |")
    print(f"| produce latency (1 msg/ms, acks=all), broker idle: p50 / p99 / max | "
          f"{idle['p50_ms']:.2f} / {idle['p99_ms']:.2f} / {idle['max_ms']:.2f} ms |")
    print(f"| the same while the cleaner works | {cleaning['p50_ms']:.2f} / "
          f"{cleaning['p99_ms']:.2f} / {cleaning['max_ms']:.2f} ms |")
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"fill_seconds": fill_s, "passes": len(passes), "bytes_read": read,
                      "mb_per_s_per_pass": rates, "rss_before_mib": rss_before,
                      "rss_after_mib": rss_after, "idle": idle, "cleaning": cleaning,
                      "first_pass": first_pass}))


if __name__ == "__main__":
    main()
