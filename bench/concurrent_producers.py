#!/usr/bin/env python3
"""Group commit under concurrency: N producer processes write small batches (linger.ms=0,
acks=all) to ONE partition at the same time. With fsync before every acknowledgement, the
broker can only keep up if one fsync covers the appends of many producers; the broker's
shutdown line (appends vs fsync rounds) shows how many it covered.

Last stdout line: JSON with aggregate throughput and produce latency percentiles.
Usage: concurrent_producers.py --bootstrap HOST:PORT [--producers 8] [--seconds 5]
"""
import argparse
import json
import multiprocessing as mp
import os
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def worker(bootstrap, topic, seconds, size, window, out_q):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                  "enable.idempotence": False})
    p.list_topics(topic, timeout=30)
    payload = os.urandom(size)
    lat, errors = [], [0]
    outstanding = [0]

    def cb(start):
        def on_delivery(err, _m):
            outstanding[0] -= 1
            if err is not None:
                errors[0] += 1
            else:
                lat.append(time.perf_counter() - start)
        return on_delivery

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        # A small window of requests in flight per producer, like a request/response app.
        while outstanding[0] >= window:
            p.poll(0.001)
        outstanding[0] += 1
        p.produce(topic, payload, partition=0, on_delivery=cb(time.perf_counter()))
        p.poll(0)
    p.flush(30)
    out_q.put((lat, errors[0]))


def pct(sorted_ms, q):
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * q / 100))] if sorted_ms else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--producers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--window", type=int, default=4)
    args = ap.parse_args()
    topic = f"concurrent-{int(time.time())}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})  # kept alive until the result
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    q = mp.Queue()
    procs = [mp.Process(target=worker, args=(args.bootstrap, topic, args.seconds, args.size,
                                             args.window, q)) for _ in range(args.producers)]
    for pr in procs:
        pr.start()
    results = [q.get() for _ in procs]
    for pr in procs:
        pr.join()
    lat = sorted(x * 1000 for r in results for x in r[0])
    errors = sum(r[1] for r in results)
    out = {"producers": args.producers, "window": args.window, "messages": len(lat),
           "errors": errors, "msg_per_s": round(len(lat) / args.seconds, 1),
           "p50_ms": round(pct(lat, 50), 3), "p99_ms": round(pct(lat, 99), 3)}
    print(json.dumps(out))
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
