#!/usr/bin/env python3
"""Consumer-group benchmark for weir with confluent-kafka (librdkafka).

Starts the release binary on a free loopback port with a fresh data directory
(`--group-initial-rebalance-delay-ms 0`), then measures:

  (a) rebalance time for 1, 10 and 50 members: N consumers in this process (one thread each)
      subscribe to a 100-partition topic; the figure is the time from the first subscribe until
      every member has a non-empty assignment and the assignments cover all 100 partitions
      exactly once. Then one member closes (LeaveGroup) and the time until the others cover
      all partitions again is measured too.
  (b) OffsetCommit throughput and latency from one group member: synchronous commits in a
      loop (commits/s, p50/p99 per commit), then asynchronous commits with up to 100 in flight
      (completed commits/s, p50/p99 from commit() to its on_commit callback), then 10 consumers
      (10 connections, 10 groups) committing synchronously at once: whether concurrent commits
      share an fsync shows in the total.

With `--protocol consumer` the members use the KIP-848 consumer protocol
(`group.protocol=consumer`, the broker's `uniform` assignor, incremental callbacks) and the broker
runs with `--group-consumer-heartbeat-interval-ms 500` and `--group-consumer-session-timeout-ms
10000`, the classic members' heartbeat interval and session timeout.

Prints a Markdown table; the last line of stdout is a JSON object with the figures.

Usage: bench/groups.py [--bin target/release/weir] [--members 1,10,50] [--seconds 5]
                       [--protocol classic|consumer]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 100
ASYNC_IN_FLIGHT = 100
CONCURRENT_COMMITTERS = 10
# Members notice a rebalance at their next heartbeat, so the interval bounds rebalance time.
MEMBER_CONF = {"session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
               "partition.assignment.strategy": "range", "enable.auto.commit": False,
               "auto.offset.reset": "earliest"}
# The same timings for the consumer protocol, where the broker decides them.
CONSUMER_BROKER_ARGS = ["--group-consumer-heartbeat-interval-ms", "500",
                        "--group-consumer-session-timeout-ms", "10000"]
CLASSIC_ONLY = ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy")
PROTOCOL = "classic"


def member_conf():
    if PROTOCOL == "consumer":
        conf = {k: v for k, v in MEMBER_CONF.items() if k not in CLASSIC_ONLY}
        return {**conf, "group.protocol": "consumer"}
    return dict(MEMBER_CONF)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(binary, data_dir, log_path, extra=()):
    port = free_port()
    log = open(log_path, "wb")
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
         "--group-initial-rebalance-delay-ms", "0", "--admin-listen", "127.0.0.1:0", *extra],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"weir exited with {proc.returncode}:\n{Path(log_path).read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, bootstrap
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


class Member(threading.Thread):
    def __init__(self, bootstrap, group, topic, name):
        super().__init__(daemon=True)
        self.topic = topic
        self.lock = threading.Lock()
        self.owned = set()
        self.assigns = 0
        self.stop_flag = threading.Event()
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                           **member_conf()})

    def _assign(self, _c, parts):
        with self.lock:
            if PROTOCOL == "consumer":  # incremental: only what is added
                if not parts:
                    return
                self.owned |= {tp.partition for tp in parts}
            else:
                self.owned = {tp.partition for tp in parts}
            self.assigns += 1

    def _revoke(self, _c, parts):
        with self.lock:
            self.owned -= {tp.partition for tp in parts}

    def run(self):
        self.c.subscribe([self.topic], on_assign=self._assign, on_revoke=self._revoke,
                         on_lost=self._revoke)
        while not self.stop_flag.is_set():
            self.c.poll(0.05)
        self.c.close()

    def assignment(self):
        with self.lock:
            return set(self.owned)


def covers_once(members, partitions):
    sets = [m.assignment() for m in members]
    if any(not s for s in sets):
        return False
    union = set().union(*sets)
    return union == set(range(partitions)) and sum(map(len, sets)) == partitions


def wait(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def bench_rebalance(bootstrap, n):
    topic, group = f"rebalance-{n}", f"bench-rebalance-{n}"
    create_topic(bootstrap, topic, PARTITIONS)
    members = [Member(bootstrap, group, topic, f"m{i}") for i in range(n)]
    t0 = time.monotonic()
    for m in members:
        m.start()
    ok = wait(lambda: covers_once(members, PARTITIONS), 120)
    join_s = time.monotonic() - t0 if ok else None
    generations = max(m.assigns for m in members)
    leave_s = None
    if ok and n > 1:
        time.sleep(1.0)
        gone, rest = members[-1], members[:-1]
        t1 = time.monotonic()
        gone.stop_flag.set()  # close() sends LeaveGroup
        ok2 = wait(lambda: covers_once(rest, PARTITIONS), 60)
        leave_s = time.monotonic() - t1 if ok2 else None
    for m in members:
        m.stop_flag.set()
    for m in members:
        m.join(30)
    return {"members": n, "join_s": join_s, "generations": generations, "leave_s": leave_s}


def bench_commits(bootstrap, seconds):
    topic, group = "commit-bench", "bench-commit"
    create_topic(bootstrap, topic, 1)
    done = []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **member_conf(),
                  "on_commit": lambda err, parts: done.append((time.perf_counter(), err, parts))})
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    while not c.assignment() and time.monotonic() < deadline:
        c.poll(0.05)
    if not c.assignment():
        raise SystemExit("the commit benchmark's consumer got no assignment")

    # Synchronous: each commit() waits for the broker's answer (after its fsync).
    lat, offset = [], 0
    end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        offset += 1
        s = time.perf_counter()
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
        lat.append(time.perf_counter() - s)
    sync_elapsed = time.perf_counter() - t0
    lat.sort()
    sync = {"commits": len(lat), "per_s": len(lat) / sync_elapsed,
            "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3}
    for _ in range(20):  # sync commits' on_commit callbacks too: drain them first
        c.poll(0.01)
    done.clear()

    # Asynchronous: up to 1000 in flight, completions counted from on_commit (served by poll).
    sent, errors, lat = {}, 0, []
    end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    n_done = 0
    while time.perf_counter() < end:
        if len(sent) - n_done < ASYNC_IN_FLIGHT:
            offset += 1
            sent[offset] = time.perf_counter()
            try:
                c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=True)
            except KafkaException:
                errors += 1
            c.poll(0)
        else:
            c.poll(0.001)
        while done:
            t, err, parts = done.pop()
            n_done += 1
            if err is not None:
                errors += 1
            for tp in parts or []:
                if tp.offset in sent:
                    lat.append(t - sent[tp.offset])
    async_elapsed = time.perf_counter() - t0
    while n_done < len(sent) and time.perf_counter() < end + 10:
        c.poll(0.01)
        while done:
            done.pop()
            n_done += 1
    committed = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    c.close()
    lat.sort()
    asyn = {"commits": len(lat), "per_s": len(lat) / async_elapsed, "errors": errors,
            "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3,
            "last_committed_ok": committed == offset}
    return sync, asyn


def bench_concurrent_commits(bootstrap, seconds, n):
    """n consumers, each its own connection and group, committing synchronously in a loop."""
    topic = "commit-bench"
    consumers = [Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-commit-{i}",
                           "enable.auto.commit": False}) for i in range(n)]
    for c in consumers:  # connect and find the coordinator outside the timed window
        c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    lats = [[] for _ in range(n)]
    start = threading.Barrier(n + 1)
    end = [0.0]

    def loop(i):
        c, offset = consumers[i], 1
        start.wait()
        while time.perf_counter() < end[0]:
            offset += 1
            s = time.perf_counter()
            c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
            lats[i].append(time.perf_counter() - s)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    end[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in consumers:
        c.close()
    lat = sorted(x for ls in lats for x in ls)
    return {"committers": n, "commits": len(lat), "per_s": len(lat) / elapsed,
            "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("WEIR_BIN",
                                                    str(REPO / "target" / "release" / "weir")))
    ap.add_argument("--members", default="1,10,50")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--protocol", choices=["classic", "consumer"], default="classic",
                    help="group.protocol of the members")
    args = ap.parse_args()
    global PROTOCOL
    PROTOCOL = args.protocol

    tmp = tempfile.mkdtemp(prefix="weir-bench-groups-")
    proc, bootstrap = start_broker(args.bin, os.path.join(tmp, "data"),
                                   os.path.join(tmp, "weir.log"),
                                   CONSUMER_BROKER_ARGS if PROTOCOL == "consumer" else ())
    t_start = time.monotonic()
    try:
        rebalances = [bench_rebalance(bootstrap, int(n)) for n in args.members.split(",")]
        sync, asyn = bench_commits(bootstrap, args.seconds)
        conc = bench_concurrent_commits(bootstrap, args.seconds, CONCURRENT_COMMITTERS)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    def s(v):
        return "timeout" if v is None else f"{v:.2f} s"

    assignor = "uniform assignor, group.protocol=consumer" if PROTOCOL == "consumer" \
        else "range assignor, group.protocol=classic"
    print(f"\n### Consumer groups ({PARTITIONS}-partition topic, {assignor}, "
          f"heartbeat.interval.ms {MEMBER_CONF['heartbeat.interval.ms']}, "
          f"--group-initial-rebalance-delay-ms 0)\n")
    print("| what | figure |")
    print("| --- | --- |")
    callbacks = "non-empty on_assign call(s)" if PROTOCOL == "consumer" else "generation(s)"
    for r in rebalances:
        print(f"| rebalance, {r['members']} member(s) subscribing at once: first subscribe -> "
              f"all partitions assigned once | {s(r['join_s'])} "
              f"({r['generations']} {callbacks} seen by the busiest member) |")
        if r["leave_s"] is not None or r["members"] > 1:
            print(f"| rebalance, 1 of {r['members']} members leaves -> the others cover all "
                  f"partitions | {s(r['leave_s'])} |")
    print(f"| OffsetCommit, synchronous, one member, 1 partition | {sync['per_s']:,.0f} commits/s, "
          f"p50 {sync['p50_ms']:.2f} ms, p99 {sync['p99_ms']:.2f} ms ({sync['commits']:,} commits) |")
    print(f"| OffsetCommit, asynchronous (<= {ASYNC_IN_FLIGHT} in flight) | "
          f"{asyn['per_s']:,.0f} commits/s, "
          f"p50 {asyn['p50_ms']:.2f} ms, p99 {asyn['p99_ms']:.2f} ms ({asyn['commits']:,} commits, "
          f"{asyn['errors']} errors) |")
    print(f"| OffsetCommit, synchronous, {conc['committers']} consumers at once (own connection "
          f"and group each) | {conc['per_s']:,.0f} commits/s in total, p50 {conc['p50_ms']:.2f} ms, "
          f"p99 {conc['p99_ms']:.2f} ms ({conc['commits']:,} commits) |")
    print(f"\ntotal {time.monotonic() - t_start:.1f} s")
    print(json.dumps({"protocol": PROTOCOL, "rebalance": rebalances, "commit_sync": sync, "commit_async": asyn,
                      "commit_sync_concurrent": conc}))
    ok = all(r["join_s"] is not None for r in rebalances) and asyn["errors"] == 0 \
        and asyn["last_committed_ok"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
