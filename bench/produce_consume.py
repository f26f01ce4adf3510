#!/usr/bin/env python3
"""Produce/consume benchmark for weir with confluent-kafka (librdkafka).

Creates a fresh topic, produces MESSAGES messages of SIZE bytes with acks=all,
measures per-message produce latency (produce() call -> delivery callback) and
overall throughput, then reads everything back with a manually assigned
consumer and checks that nothing is missing.

The last line of stdout is a JSON object with the results (run.sh parses it).
Exits non-zero if any delivery failed or the consumed count differs.

Usage: produce_consume.py --bootstrap HOST:PORT [--messages N] [--size B] [--partitions P]
"""
import argparse
import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# The producer settings under test; printed into the results so the figures
# can always be traced back to the exact configuration.
PRODUCER_CONFIG = {
    "acks": "all",
    "linger.ms": 5,
    "enable.idempotence": False,  # --idempotent turns it on
    "compression.type": "none",
}


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list (p in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n * p / 100)
    return sorted_values[min(int(rank), len(sorted_values)) - 1]


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=30,
    )
    # Raises if the broker refused the topic; a benchmark on a wrong topic is worthless.
    futures[topic].result(timeout=30)


def produce(bootstrap, topic, messages, size, partitions):
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
    # Warm up the connection and metadata outside the timed window, so the
    # first message's latency is not the TCP/ApiVersions/Metadata handshake.
    producer.list_topics(topic, timeout=30)

    # Random bytes, one buffer reused: compression is off, so content does
    # not matter, and building 200k distinct payloads would cost client CPU.
    payload = os.urandom(size)
    latencies = []  # seconds, one per successfully delivered message
    errors = []
    last_delivery = [0.0]

    def make_callback(start):
        # Capture the send time per message; the callback runs inside poll()/flush().
        def on_delivery(err, _msg):
            now = time.perf_counter()
            if err is not None:
                errors.append(str(err))
            else:
                latencies.append(now - start)
            last_delivery[0] = now
        return on_delivery

    first_produce = time.perf_counter()
    for i in range(messages):
        # Explicit round-robin so every partition gets the same share.
        partition = i % partitions
        while True:
            start = time.perf_counter()
            try:
                producer.produce(topic, payload, partition=partition,
                                 on_delivery=make_callback(start))
                break
            except BufferError:
                # Local queue full (queue.buffering.max.messages): let
                # deliveries drain, then retry with a fresh start time.
                producer.poll(0.01)
        # Serve delivery callbacks as we go so timestamps are taken promptly.
        producer.poll(0)
    remaining = producer.flush(120)
    if remaining:
        errors.append(f"{remaining} messages still undelivered after flush(120)")

    elapsed = last_delivery[0] - first_produce
    latencies.sort()
    ms = [x * 1000.0 for x in latencies]
    delivered = len(latencies)
    return {
        "delivered": delivered,
        "errors": len(errors),
        "first_errors": errors[:5],
        "seconds": round(elapsed, 3),
        "msg_per_s": round(delivered / elapsed, 1) if elapsed > 0 else None,
        "mb_per_s": round(delivered * size / elapsed / 1e6, 2) if elapsed > 0 else None,
        "lat_ms_p50": round(percentile(ms, 50), 3),
        "lat_ms_p99": round(percentile(ms, 99), 3),
        "lat_ms_p999": round(percentile(ms, 99.9), 3),
        "lat_ms_max": round(ms[-1], 3) if ms else None,
    }


def produce_at_rate(bootstrap, topic, rate, seconds, size, partitions):
    """Latency at a fixed offered load, which the flat-out run above cannot show (there, latency
    is mostly time queued in the client). Each message has an intended send time on a fixed
    schedule, and its latency is counted from that time, so a stall that delays later sends is
    charged to them too (no coordinated omission)."""
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG, "linger.ms": 0})
    producer.list_topics(topic, timeout=30)
    payload = os.urandom(size)
    latencies, errors = [], []

    def make_callback(intended):
        def on_delivery(err, _msg):
            if err is not None:
                errors.append(str(err))
            else:
                latencies.append(time.perf_counter() - intended)
        return on_delivery

    total = int(rate * seconds)
    interval = 1.0 / rate
    begin = time.perf_counter()
    for i in range(total):
        intended = begin + i * interval
        while True:
            now = time.perf_counter()
            if now >= intended:
                break
            producer.poll(min(intended - now, 0.001))
        producer.produce(topic, payload, partition=i % partitions,
                         on_delivery=make_callback(intended))
        producer.poll(0)
    producer.flush(60)
    ms = sorted(x * 1000.0 for x in latencies)
    return {
        "rate": rate,
        "delivered": len(ms),
        "errors": len(errors),
        "lat_ms_p50": round(percentile(ms, 50), 3),
        "lat_ms_p99": round(percentile(ms, 99), 3),
        "lat_ms_p999": round(percentile(ms, 99.9), 3),
        "lat_ms_max": round(ms[-1], 3) if ms else None,
    }


def consume(bootstrap, topic, partitions, expected, size, idle_timeout=30.0):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        # The Python client insists on a group.id, but with manual assign()
        # and no commits it is never used (weir has no consumer groups yet).
        "group.id": "weir-bench",
        "enable.auto.commit": False,
        # An EOF event per partition tells us when each one is fully read.
        "enable.partition.eof": True,
    })
    # Read every partition from the very first offset, bypassing group logic.
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])

    count = 0
    nbytes = 0
    at_eof = set()
    start = time.perf_counter()
    last_progress = start
    end = start
    try:
        while len(at_eof) < partitions:
            # Batched consume() is several times cheaper per message than poll().
            # It blocks until the batch is full or the timeout expires, so a
            # short timeout keeps the last partial batch from inflating the time.
            batch = consumer.consume(num_messages=1000, timeout=0.05)
            now = time.perf_counter()
            for msg in batch:
                err = msg.error()
                if err is None:
                    count += 1
                    nbytes += len(msg.value())
                    # A message after EOF means the partition grew; not expected here.
                    at_eof.discard(msg.partition())
                    end = now
                    last_progress = now
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_eof.add(msg.partition())
                    last_progress = now
                else:
                    raise KafkaException(err)
            # An EOF can be reported early if the broker's high watermark lags;
            # only stop once all partitions say EOF *and* we have everything,
            # or when nothing has happened for idle_timeout seconds.
            if len(at_eof) == partitions and count < expected:
                at_eof.clear()
            if now - last_progress > idle_timeout:
                print(f"consumer: no progress for {idle_timeout}s, stopping at {count}",
                      file=sys.stderr)
                break
    finally:
        consumer.close()

    elapsed = end - start
    return {
        "consumed": count,
        "bytes": nbytes,
        "seconds": round(elapsed, 3),
        "msg_per_s": round(count / elapsed, 1) if elapsed > 0 else None,
        "mb_per_s": round(nbytes / elapsed / 1e6, 2) if elapsed > 0 else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--messages", type=int, default=1000000)
    ap.add_argument("--rate", type=int, default=5000,
                    help="offered load (msg/s) of the fixed-rate latency run; 0 skips it")
    ap.add_argument("--rate-seconds", type=float, default=5.0)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--topic", default=f"bench-{int(time.time())}")
    ap.add_argument("--idempotent", action="store_true",
                    help="enable.idempotence=true (sequence numbers, deduplicated retries)")
    args = ap.parse_args()

    import confluent_kafka
    PRODUCER_CONFIG["enable.idempotence"] = args.idempotent
    create_topic(args.bootstrap, args.topic, args.partitions)
    print(f"topic {args.topic}: {args.partitions} partitions; producing "
          f"{args.messages} x {args.size} B", file=sys.stderr)
    prod = produce(args.bootstrap, args.topic, args.messages, args.size, args.partitions)
    print(f"produce: {prod}", file=sys.stderr)
    cons = consume(args.bootstrap, args.topic, args.partitions, prod["delivered"], args.size)
    print(f"consume: {cons}", file=sys.stderr)

    fixed = None
    if args.rate > 0:
        fixed = produce_at_rate(args.bootstrap, args.topic, args.rate, args.rate_seconds,
                                args.size, args.partitions)
        print(f"fixed rate: {fixed}", file=sys.stderr)

    ok = (prod["errors"] == 0 and prod["delivered"] == args.messages
          and cons["consumed"] == args.messages
          and (fixed is None or fixed["errors"] == 0))
    result = {
        "ok": ok,
        "topic": args.topic,
        "messages": args.messages,
        "size": args.size,
        "partitions": args.partitions,
        "producer_config": PRODUCER_CONFIG,
        "client": f"confluent-kafka {confluent_kafka.__version__}, "
                  f"librdkafka {confluent_kafka.libversion()[0]}",
        "produce": prod,
        "consume": cons,
        "fixed_rate": fixed,
    }
    # Last line of stdout: machine-readable results for run.sh.
    print(json.dumps(result))
    if not ok:
        print(f"FAIL: produced {args.messages}, delivered {prod['delivered']} "
              f"({prod['errors']} errors), consumed {cons['consumed']}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
