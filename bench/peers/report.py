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
SYSTEMS = [s for s in ["weir", "nats", "nats-default", "rabbitmq", "activemq", "tansu", "tansu-sqlite"] if any(r["sys"] == s for r in rows)]
PEERS = [s for s in SYSTEMS if s != "weir"]

def fmt(v):
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"

def cell(vals):
    if not vals:
        return "-"
    m = statistics.median(vals)
    return f"{fmt(m)} ({fmt(min(vals))}-{fmt(max(vals))})" if len(vals) > 1 else fmt(m)

class Table:
    """Rows of (case, metric), one column per system, then weir/peer ratios of the medians.
    `higher`: True / False says which way is better; None marks an amount, not a score (no
    ratio)."""
    def __init__(self):
        self.rows, self.data, self.notes = [], defaultdict(lambda: defaultdict(list)), {}

    def add(self, case, label, higher, sys, value):
        if value is None:
            return
        if (case, label, higher) not in self.rows:
            self.rows.append((case, label, higher))
        self.data[(case, label)][sys].append(value)

    def note(self, case, sys, text, label=None):  # shown where a system has no value (in that row)
        self.notes[(case, label, sys)] = text

    def values(self, case, label, sys):
        return self.data.get((case, label), {}).get(sys, [])

    def render(self, head="workload"):
        out = [f"| {head} | metric | " + " | ".join(SYSTEMS) + " | " + " | ".join(f"weir/{p}" for p in PEERS) + " |",
               "| --- | --- | " + " | ".join("---" for _ in SYSTEMS + PEERS) + " |"]
        for case, label, higher in self.rows:
            d = self.data[(case, label)]
            ratios = []
            for p in PEERS:
                if higher is not None and d.get("weir") and d.get(p) and statistics.median(d[p]) > 0:
                    ratio = statistics.median(d["weir"]) / statistics.median(d[p])
                    ratios.append(f"{ratio:.2f}" if ratio < 100 else f"{ratio:,.0f}")
                else:
                    ratios.append("-")
            how = "" if higher is None else f" ({'higher' if higher else 'lower'} is better)"
            cells = [cell(d[s]) if d.get(s) else self.notes.get((case, label, s), self.notes.get((case, None, s), "-"))
                     for s in SYSTEMS]
            out.append(f"| {case} | {label}{how} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        return out

def key(r):
    if r.get("workload") == "produce":
        return f"W1 produce, {r['producers']} producer(s) x {r['partitions']} partition(s)"
    if r.get("workload") == "latency":
        return f"W2 latency at {r['rate']} msg/s"
    return None

# workload -> [(field, label, higher_is_better)]
METRICS = {
    "produce": [("msg_per_s", "msg/s", True), ("mb_per_s", "MB/s", True), ("ack_ms_p99", "ack p99 ms", False)],
    "latency": [("e2e_ms_p50", "e2e p50 ms", False), ("e2e_ms_p99", "e2e p99 ms", False),
                ("e2e_ms_p999", "e2e p99.9 ms", False), ("e2e_ms_max", "e2e max ms", False),
                ("ack_ms_p99", "ack p99 ms", False)],
}
MIB = 1024 * 1024
W3_COLD = "server restarted, then page cache dropped" if env.get("W3_COLD_RESTART", "1") == "1" else "page cache dropped"
W3_WARM_CASE = "W3 consume, warm (right after the fill)"
W3_COLD_CASE = f"W3 consume, cold ({W3_COLD})"
W4_CASE = f"W4 {env.get('W4_PRODUCERS', '?')} producers x {env.get('W4_PARTITIONS', '?')} partitions"
main, w3, w4, w5 = Table(), Table(), Table(), Table()
failures, skips, errors, missing, incomplete = [], [], defaultdict(int), defaultdict(int), []
server = defaultdict(list)
w1_bytes = defaultdict(int)  # (sys, round) -> bytes acknowledged in W1
resources = defaultdict(dict)  # (sys, round) -> phase -> record
w4_failed = set()  # (sys, round)
for r in rows:
    s = r["sys"]
    if r.get("failed"):
        failures.append(f"{s} round {r['round']} ({r.get('phase', '?')}{', ' + r['cache'] if 'cache' in r else ''}): "
                        f"`{r['args']}`: {r.get('reason', '?')}")
        if r.get("phase") == "w4":
            w4.note(W4_CASE, s, "failed")
            w4_failed.add((s, r["round"]))
        continue
    if r.get("skipped"):
        skips.append(f"{s} round {r['round']}: {r['skipped']}")
        continue
    wl = r.get("workload")
    if wl == "server":
        server[s].append(r.get("stats") or {})
        continue
    if wl == "resources":
        resources[(s, r["round"])][r["phase"]] = r
        continue
    errors[s] += r.get("errors") or 0
    missing[s] += r.get("missing") or 0
    if wl == "produce":
        w1_bytes[(s, r["round"])] += r["bytes"]
    k = key(r)
    if k is not None:
        for field, label, higher in METRICS[wl]:
            main.add(k, label, higher, s, r.get(field))
    elif wl == "fill" and r.get("cache") == "warm":
        case = f"W3 fill, {r['producers']} producer(s) x {r['partitions']} partitions"
        w3.add(case, "MiB filled", None, s, r["bytes"] / MIB)
        w3.add(case, "MB/s", True, s, r["mb_per_s"])
    elif wl == "consume":
        case = W3_WARM_CASE if r.get("cache") == "warm" else W3_COLD_CASE
        if not r.get("complete"):
            incomplete.append(f"{s} round {r['round']}, {case}: read {r['messages']:,} of {r['expected']:,} messages ({r['stop']})")
        w3.add(case, "MiB read", None, s, r["bytes"] / MIB)
        w3.add(case, "msg/s", True, s, r["msg_per_s"])
        w3.add(case, "MB/s", True, s, r["mb_per_s"])
        w3.add(case, "first message after ms", False, s, r.get("first_message_ms"))
        if r.get("client_cpu_seconds") is not None and r["seconds"] > 0:
            w3.add(case, "load generator CPU, % of one core", None, s, 100 * r["client_cpu_seconds"] / r["seconds"])
    elif wl == "scale":
        w4.add(W4_CASE, "msg/s", True, s, r["msg_per_s"])
        w4.add(W4_CASE, "MB/s", True, s, r["mb_per_s"])
        w4.add(W4_CASE, "ack p99 ms", False, s, r.get("ack_ms_p99"))
        setup = f"creating {r['partitions']} partitions, s"
        if s == "activemq":  # queues come into being with their first message
            w4.note(W4_CASE, s, "on first use", label=setup)
            r["setup_seconds"] = None
        w4.add(W4_CASE, setup, False, s, r.get("setup_seconds"))
        w4.add(W4_CASE, f"connecting {r['producers']} producers, s", False, s, r.get("connect_seconds"))
        w4.add(W4_CASE, "per-message errors", None, s, r.get("errors"))
        if r.get("client_cpu_seconds") is not None and r["seconds"] > 0:
            w4.add(W4_CASE, "load generator CPU, % of one core", None, s, 100 * r["client_cpu_seconds"] / r["seconds"])

for (s, rnd), ph in resources.items():
    if "w4" in ph and (s, rnd) not in w4_failed:
        b, a = ph["w4"]["before"], ph["w4"]["after"]
        if b and a:
            w4.add(W4_CASE, "server CPU, % of one core (setup included)", None, s,
                   100 * (a["cpu_s"] - b["cpu_s"]) / max(a["t"] - b["t"], 1e-9))
        if a and a.get("peak_since") == "w4":
            w4.add(W4_CASE, "server peak RSS MiB (during W4)", False, s, a["rss_peak_mib"])
    idle = ph.get("idle")
    if idle and idle["before"] and idle["after"]:
        b, a = idle["before"], idle["after"]
        w5.add("startup", "server CPU s, start to listening (+1 s)", False, s, b["cpu_s"])
        w5.add("idle", "server RSS MiB", False, s, a["rss_mib"])
        w5.add("idle", "server CPU, % of one core", False, s, 100 * (a["cpu_s"] - b["cpu_s"]) / max(a["t"] - b["t"], 1e-9))
    w1 = ph.get("w1")
    if w1 and w1["before"] and w1["after"] and w1_bytes.get((s, rnd)):
        b, a = w1["before"], w1["after"]
        mb = w1_bytes[(s, rnd)] / 1e6
        w5.add("W1 (all cases)", "server CPU ms per MB acknowledged", False, s, 1000 * (a["cpu_s"] - b["cpu_s"]) / mb)
        w5.add("W1 (all cases)", "server CPU, % of one core", None, s, 100 * (a["cpu_s"] - b["cpu_s"]) / max(a["t"] - b["t"], 1e-9))
        if a.get("peak_since") == "w1":
            w5.add("W1 (all cases)", "server peak RSS MiB", False, s, a["rss_peak_mib"])
        w5.add("W1 (all cases)", "server RSS MiB after", False, s, a["rss_mib"])
table = main.render()
data = main.data
cases = list(dict.fromkeys(c for c, _, _ in main.rows))

srv = ["| system | peak RSS MiB during W1 + W2 (median over rounds) | server CPU s from start to the end of W2 (median) |",
       "| --- | --- | --- |"]
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
    cold = [c for c in (W3_WARM_CASE, W3_COLD_CASE) if w3.data.get((c, "MB/s"))]
    if cold:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        width = 0.8 / len(cold)
        for i, c in enumerate(cold):
            med, lo, hi = [], [], []
            for s in SYSTEMS:
                v = w3.values(c, "MB/s", s)
                m = statistics.median(v) if v else 0
                med.append(m); lo.append(m - (min(v) if v else 0)); hi.append((max(v) if v else 0) - m)
            ax.bar([x + i * width for x in range(len(SYSTEMS))], med, width, yerr=[lo, hi], capsize=3,
                   label="warm" if c == W3_WARM_CASE else f"cold ({W3_COLD})")
        ax.set_xticks([x + width * (len(cold) - 1) / 2 for x in range(len(SYSTEMS))])
        ax.set_xticklabels(SYSTEMS)
        ax.set_yscale("log")
        ax.set_ylabel("MB/s read by one consumer (median, min-max)")
        ax.set_title("W3 consume throughput, 1 KiB messages")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS, "peers-w3.png"), dpi=100)
        plots.append("peers-w3.png")
except ImportError:
    pass

mem_kib = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
nats_sync = env.get("NATS_SYNC", "?")
# One line per system that ran: how it is driven and how durable its acknowledgement is.
SETUP = {
    "weir": "- weir: `weir serve` defaults (fsync before ack, group commit); client rdkafka/librdkafka, acks=all, "
            "linger.ms=5 (W1) / 0 (W2), no idempotence, no compression",
    "nats": "- NATS JetStream (`nats`): one file-storage stream per partition, async-nats publish + awaited PubAck; "
            f"fsync: **{nats_sync}**" + (" (`sync_interval: always`: fsync before each PubAck, durable like weir)"
            if nats_sync == "always" else " -- so NATS acks here do NOT mean the data is on disk; its figures are "
            "not durable-equivalent"),
    "nats-default": "- NATS JetStream, default sync (`nats-default`): the same server, streams and client as `nats`, "
            "with JetStream's default `sync_interval` (fsync on a 2 minute timer): **not durable per write** -- a "
            "PubAck does NOT mean the data is on disk; NATS out of the box, not a durable-equivalent peer",
    "rabbitmq": f"- RabbitMQ: one durable {env['RABBIT_QUEUE_TYPE']} queue per partition, persistent messages, "
            "publisher confirms (lapin); consumer: basic.consume with no_ack (automatic acknowledgement; prefetch "
            "does not apply), one channel for all queues",
    "activemq": "- ActiveMQ: KahaDB (enableJournalDiskSyncs=true, the default), STOMP 1.2 with a receipt per SEND "
            "(persistent:true), one queue per partition; consumer: SUBSCRIBE per queue, ack:auto, prefetch 10,000",
    "tansu": f"- Tansu ({env.get('TANSU_VERSION_RUN') or '?'}, `tansu`): Kafka-compatible broker on its PostgreSQL "
            "storage engine (a PostgreSQL cluster of its own per round, Debian's server with its defaults: fsync=on, "
            "synchronous_commit=on, wal_sync_method=fdatasync), driven exactly like weir (same rdkafka client and "
            "settings). Each produce request is one PostgreSQL transaction and Tansu answers after its commit, "
            "which returns once the WAL is fdatasync'd: **durable per write**, like weir (PostgreSQL's concurrent "
            "commits share a flush, a group commit). Its server figures (CPU, memory) are Tansu's plus PostgreSQL's "
            "(every backend's CPU; memory as PSS; the peak adds PostgreSQL's current PSS to Tansu's peak)",
    "tansu-sqlite": f"- Tansu on SQLite (`tansu-sqlite`): the same binary and client on its SQLite engine "
            "(`--storage-engine sqlite://`, libSQL, one file in the data dir). It sets `journal_mode = WAL` and "
            "`synchronous = NORMAL`: a commit reaches the WAL file without an fsync, which comes only at "
            "checkpoints, so **not durable per write** -- an ack survives a broker crash, not an OS crash or "
            "power loss; not a durable-equivalent peer",
}
out = [
    f"# weir and its peers, {now}",
    "",
    f"- machine: {os.cpu_count()} CPUs ({cpu}), {mem_kib / 1024 / 1024:.1f} GiB RAM, kernel {platform.release()}",
    f"- disk: {env.get('DISK', '?')}",
    f"- weir commit {env.get('COMMIT', '?')}; versions: {env.get('VERSIONS', '?')}",
    f"- rounds: {env['ROUNDS']}, interleaved ({' -> '.join(SYSTEMS)}, repeated); fresh server and data dir per "
    f"system per round, on which W1, W2, W3 and W4 run in turn; W1 {env['SECONDS_W1']} s per case, W2 "
    f"{env['SECONDS_W2']} s per rate after 1 s warm-up; workloads run: {env.get('WORKLOADS', '?')} (and W5)",
    "- driver: `weir-bench` (crates/bench), the same for every system: W1 = N producer connections, "
    "each with at most 4096 unacknowledged 1 KiB messages, counting acknowledged messages; W2 = one "
    "producer on a fixed schedule, one consumer, latency = receive time - intended send time (coordinated "
    "omission corrected; the generator's tokio timer adds up to ~1 ms), HDR histograms",
    *(SETUP[s] for s in SYSTEMS),
    "- this machine is shared and busy (other builds ran during the run): read the ratios, not the absolutes",
    "",
    "## Results (median over rounds, min-max in brackets; ratio = weir median / peer median)",
    "",
    *table,
    "",
    "## W3: consume throughput",
    "",
    f"Each system's {env.get('W3_PARTITIONS', '?')} partitions (streams, queues) are filled with up to "
    f"{env.get('W3_FILL_MIB', '?')} MiB of 1 KiB messages, or for at most {env.get('W3_FILL_SECONDS', '?')} s, whichever "
    "comes first -- so a slow producer holds less, and the *MiB read* row says how much each read. One consumer "
    "(one connection) then reads everything from the beginning; msg/s and MB/s count from its subscribe call to "
    f"the last message. *Warm*: right after the fill. *Cold*: {W3_COLD}, then the same data read again. "
    "RabbitMQ and ActiveMQ delete what they deliver, so they are refilled with the same number of messages "
    "before the cold read. Consumers: weir -- librdkafka assigned every partition from the beginning "
    "(fetch.max.bytes 50 MiB, max.partition.fetch.bytes 8 MiB, 256 MiB client queue), and Tansu (both) the same; "
    "NATS (both) -- an ordered "
    "consumer per stream (no acks, flow-controlled pulls; it recreates itself if a pull goes missing); RabbitMQ -- basic.consume with no_ack; "
    "ActiveMQ -- STOMP SUBSCRIBE, ack:auto, prefetch 10,000. On 2 cores the consumer's own CPU competes with "
    "the server's.",
    "",
    *w3.render(),
    "",
    "## W4: many partitions and connections",
    "",
    f"{env.get('W4_PRODUCERS', '?')} producers, each its own connection, over {env.get('W4_PARTITIONS', '?')} partitions (NATS: streams; RabbitMQ, ActiveMQ: "
    f"queues); producer k sends to partitions k, k+{env.get('W4_PRODUCERS', '?')}, ... in turn, at most "
    f"{env.get('W4_WINDOW', '?')} unacknowledged messages each, for {env.get('W4_SECONDS', '?')} s. Creating the "
    f"partitions and connecting must finish within {env.get('W4_SETUP_SECONDS', '?')} s, or the run counts as "
    "failed (reason under *Problems seen*). The server's peak RSS is reset (`clear_refs`) just before and read "
    "right after. ActiveMQ creates queues on first use, so its setup is only connecting. The load generator's "
    f"{env.get('W4_PRODUCERS', '?')} clients need much of the machine's CPU themselves.",
    "",
    *w4.render(),
    "",
    "## W5: resource use",
    "",
    f"From /proc of the server process (its listening socket's owner): CPU seconds (user + system) and RSS "
    "(for `tansu`, plus its PostgreSQL's processes, memory as PSS). "
    f"*Startup*: CPU spent until the port answered plus 1 s. *Idle*: over {env.get('W5_IDLE_SECONDS', '?')} s "
    "with no clients. *W1*: from just before the first W1 case to just after the last (peak RSS reset before), "
    "CPU per MB acknowledged counts every W1 case's bytes.",
    "",
    *w5.render(head="phase"),
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
    *[f"- skipped: {x}" for x in skips],
    *[f"- incomplete read: {x}" for x in incomplete],
    *[f"- {s}: {n} per-message errors" for s, n in errors.items() if n],
    *[f"- {s}: {n} acknowledged messages not received by the consumer in time" for s, n in missing.items() if n],
    "",
]
open(os.path.join(RESULTS, "peers.md"), "w").write("\n".join(out))
print("\n".join(out))
