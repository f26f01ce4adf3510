#!/usr/bin/env python3
"""Turns bench/peers/run.sh's raw JSON lines into bench/results/peers.md and PNG plots.

Every figure is the median over the interleaved rounds, with the spread (min-max) beside it;
ratios are weir's median over the peer's median. Inputs come from the environment run.sh
exports (RAW, WORK, RESULTS, settings, versions)."""
import datetime
import json
import os
import platform
import statistics
from collections import defaultdict

env = os.environ
RESULTS = env["RESULTS"]
WORK = env["WORK"]
rows = [json.loads(l) for l in open(env["RAW"]) if l.strip()]
SYSTEMS = [s for s in ["weir", "nats", "rabbitmq", "activemq"] if any(r["sys"] == s for r in rows)]
PEERS = [s for s in SYSTEMS if s != "weir"]

def key(r):
    if r.get("workload") == "produce":
        return f"W1 produce, {r['producers']} producer(s) x {r['partitions']} partition(s)"
    if r.get("workload") == "latency":
        return f"W2 latency at {r['rate']} msg/s"
    return None

# (case, metric) -> sys -> [values]; metric: (field, label, higher_is_better)
METRICS = {
    "produce": [("msg_per_s", "msg/s", True), ("mb_per_s", "MB/s", True), ("ack_ms_p99", "ack p99 ms", False)],
    "latency": [("e2e_ms_p50", "e2e p50 ms", False), ("e2e_ms_p99", "e2e p99 ms", False),
                ("e2e_ms_p999", "e2e p99.9 ms", False), ("e2e_ms_max", "e2e max ms", False),
                ("ack_ms_p99", "ack p99 ms", False)],
}
data = defaultdict(lambda: defaultdict(list))
failures, errors, missing = [], defaultdict(int), defaultdict(int)
server = defaultdict(list)
cases = []
for r in rows:
    if r.get("failed"):
        failures.append(f"{r['sys']} round {r['round']}: {r['args']}")
        continue
    if r.get("workload") == "server":
        server[r["sys"]].append(r.get("stats") or {})
        continue
    k = key(r)
    if k is None:
        continue
    if k not in cases:
        cases.append(k)
    errors[r["sys"]] += r.get("errors", 0)
    missing[r["sys"]] += r.get("missing", 0)
    for field, label, _ in METRICS[r["workload"]]:
        if field in r:
            data[(k, label)][r["sys"]].append(r[field])

def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"

def cell(vals):
    if not vals:
        return "-"
    m = statistics.median(vals)
    return f"{fmt(m)} ({fmt(min(vals))}-{fmt(max(vals))})" if len(vals) > 1 else fmt(m)

table = ["| workload | metric | " + " | ".join(SYSTEMS) + " | " + " | ".join(f"weir/{p}" for p in PEERS) + " |",
         "| --- | --- | " + " | ".join("---" for _ in SYSTEMS + PEERS) + " |"]
for k in cases:
    wl = "produce" if k.startswith("W1") else "latency"
    for field, label, higher in METRICS[wl]:
        d = data.get((k, label), {})
        if not d:
            continue
        ratios = []
        for p in PEERS:
            if d.get("weir") and d.get(p) and statistics.median(d[p]) > 0:
                ratios.append(f"{statistics.median(d['weir']) / statistics.median(d[p]):.2f}")
            else:
                ratios.append("-")
        table.append(f"| {k} | {label} ({'higher' if higher else 'lower'} is better) | "
                     + " | ".join(cell(d.get(s, [])) for s in SYSTEMS) + " | " + " | ".join(ratios) + " |")

srv = ["| system | peak RSS MiB (median over rounds) | server CPU s per round (median) |", "| --- | --- | --- |"]
for s in SYSTEMS:
    st = [x for x in server[s] if x]
    if st:
        srv.append(f"| {s} | {statistics.median(x['rss_peak_mib'] for x in st):.0f} | "
                   f"{statistics.median(x['cpu_s'] for x in st):.1f} |")

# --- machine limits ---
limits = []
def fio_job(name):
    try:
        t = open(os.path.join(WORK, f"fio-{name}.json")).read()
        return json.loads(t[t.index("{"):])["jobs"][0]
    except (OSError, ValueError, KeyError):
        return None
mib = 1024 * 1024
for name, what in [("seq", "sequential 1 MiB writes + fdatasync each (buffered)"),
                   ("seqd", "sequential 1 MiB writes + fdatasync each (O_DIRECT)")]:
    j = fio_job(name)
    if j:
        limits.append(f"| disk | {what} | {j['write']['bw_bytes'] / mib:.1f} MiB/s |")
j = fio_job("4k")
if j:
    pct = j["sync"]["lat_ns"]["percentile"]
    limits.append(f"| disk | 4 KiB write + fdatasync: IOPS; fdatasync latency p50 / p99 | "
                  f"{j['write']['iops']:.0f} IOPS; {pct['50.000000'] / 1e6:.3f} / {pct['99.000000'] / 1e6:.3f} ms |")
try:
    ip = json.load(open(os.path.join(WORK, "iperf3.json")))
    limits.append(f"| network | iperf3 loopback TCP, 1 stream, 5 s | "
                  f"{ip['end']['sum_received']['bits_per_second'] / 8 / 1e6:,.0f} MB/s |")
except (OSError, ValueError, KeyError):
    pass

# --- plots ---
plots = []
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    w1 = [k for k in cases if k.startswith("W1")]
    if w1:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        width = 0.8 / len(SYSTEMS)
        for i, s in enumerate(SYSTEMS):
            med, lo, hi = [], [], []
            for k in w1:
                v = data[(k, "MB/s")].get(s, [])
                m = statistics.median(v) if v else 0
                med.append(m); lo.append(m - (min(v) if v else 0)); hi.append((max(v) if v else 0) - m)
            ax.bar([x + i * width for x in range(len(w1))], med, width, yerr=[lo, hi], capsize=3, label=s)
        ax.set_xticks([x + width * (len(SYSTEMS) - 1) / 2 for x in range(len(w1))])
        ax.set_xticklabels([k.replace("W1 produce, ", "").replace(" partition(s)", "p").replace(" producer(s)", " prod") for k in w1])
        ax.set_ylabel("MB/s acknowledged (median, min-max)")
        ax.set_title("W1 produce throughput, 1 KiB messages, durable acks")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS, "peers-w1.png"), dpi=100)
        plots.append("peers-w1.png")
    w2 = [k for k in cases if k.startswith("W2")]
    if w2:
        fig, axes = plt.subplots(1, len(w2), figsize=(4.5 * len(w2), 4.5), squeeze=False)
        for ax, k in zip(axes[0], w2):
            labels = ["e2e p50 ms", "e2e p99 ms", "e2e p99.9 ms", "e2e max ms"]
            for s in SYSTEMS:
                ys = [statistics.median(data[(k, l)][s]) if data[(k, l)].get(s) else float("nan") for l in labels]
                ax.plot(["p50", "p99", "p99.9", "max"], ys, marker="o", label=s)
            ax.set_yscale("log")
            ax.set_title(k)
            ax.set_ylabel("ms from intended send (median of rounds)")
            ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS, "peers-w2.png"), dpi=100)
        plots.append("peers-w2.png")
except ImportError:
    pass

mem_kib = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
out = [
    f"# weir and its peers, {now}",
    "",
    f"- machine: {os.cpu_count()} CPUs ({cpu}), {mem_kib / 1024 / 1024:.1f} GiB RAM, kernel {platform.release()}",
    f"- disk: {env.get('DISK', '?')}",
    f"- weir commit {env.get('COMMIT', '?')}; versions: {env.get('VERSIONS', '?')}",
    f"- rounds: {env['ROUNDS']}, interleaved ({' -> '.join(SYSTEMS)}, repeated); fresh server and data dir per "
    f"system per round; W1 {env['SECONDS_W1']} s per case, W2 {env['SECONDS_W2']} s per rate after 1 s warm-up",
    "- driver: `weir-bench` (crates/bench), the same for every system: W1 = N producer connections, "
    "each with at most 4096 unacknowledged 1 KiB messages, counting acknowledged messages; W2 = one "
    "producer on a fixed schedule, one consumer, latency = receive time - intended send time (coordinated "
    "omission corrected; the generator's tokio timer adds up to ~1 ms), HDR histograms",
    "- weir: `weir serve` defaults (fsync before ack, group commit); client rdkafka/librdkafka, acks=all, "
    "linger.ms=5 (W1) / 0 (W2), no idempotence, no compression",
    f"- NATS JetStream: one file-storage stream per partition, async-nats publish + awaited PubAck; fsync: "
    f"**{env.get('NATS_SYNC', '?')}**" + ("" if env.get("NATS_SYNC") == "always" else
    " -- so NATS acks here do NOT mean the data is on disk; its figures are not durable-equivalent"),
    f"- RabbitMQ: one durable {env['RABBIT_QUEUE_TYPE']} queue per partition, persistent messages, publisher "
    "confirms (lapin); consumer no_ack",
    "- ActiveMQ: KahaDB (enableJournalDiskSyncs=true, the default), STOMP 1.2 with a receipt per SEND "
    "(persistent:true), one queue per partition",
    "- this machine is shared and busy (other builds ran during the run): read the ratios, not the absolutes",
    "",
    "## Results (median over rounds, min-max in brackets; ratio = weir median / peer median)",
    "",
    *table,
    "",
    "## Servers",
    "",
    *srv,
    "",
    "## The machine's limits (same filesystem as the data dirs)",
    "",
    "| what | test | value |",
    "| --- | --- | --- |",
    *limits,
    "",
    *(f"![{p}]({p})" for p in plots),
    "",
    "## Problems seen",
    "",
    *([f"- run failed: {f}" for f in failures] or ["- no run failed"]),
    *[f"- {s}: {n} per-message errors" for s, n in errors.items() if n],
    *[f"- {s}: {n} acknowledged messages not received by the consumer in time" for s, n in missing.items() if n],
    "",
]
open(os.path.join(RESULTS, "peers.md"), "w").write("\n".join(out))
print("\n".join(out))
