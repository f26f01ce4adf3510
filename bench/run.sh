#!/usr/bin/env bash
# First weir benchmark: produce/consume through a real Kafka client against the
# release binary with default settings (fsync before ack, group commit), then
# the raw disk figures (fio) on the same filesystem, for comparison.
#
# Usage: bench/run.sh            (env overrides: MESSAGES, SIZE, PARTITIONS)
# Output: a Markdown table on stdout, also written to bench/results/latest.md.
set -euo pipefail

MESSAGES="${MESSAGES:-1000000}"
RATE="${RATE:-5000}"             # fixed-rate latency run, msg/s (0 skips it)
SIZE="${SIZE:-1024}"
PARTITIONS="${PARTITIONS:-4}"
FIO_SEQ_SIZE="256m"     # 1 MiB writes, fdatasync after each
FIO_4K_SIZE="64m"       # 4 KiB writes, fdatasync after each ...
FIO_4K_RUNTIME="15"     # ... capped at this many seconds

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS/tmp"        # bench/results/tmp is git-ignored
BROKER_LOG="$RESULTS/tmp/broker.log"

log() { printf '[bench] %s\n' "$*" >&2; }

# --- (a) tools --------------------------------------------------------------
if ! command -v fio >/dev/null 2>&1; then
    log "installing fio"
    DEBIAN_FRONTEND=noninteractive apt-get install -y fio >/dev/null \
        || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y fio >/dev/null; }
fi
if [ ! -x "$PY" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
fi
if ! "$PY" -c 'import confluent_kafka' 2>/dev/null; then
    log "installing confluent-kafka into $VENV"
    "$PY" -m pip install --quiet confluent-kafka
fi

# --- (b) binary ---------------------------------------------------------------
WEIR="$ROOT/target/release/weir"
if [ ! -x "$WEIR" ]; then
    log "building the release binary"
    cargo build --release -p weir
fi

# --- (c) broker ---------------------------------------------------------------
# One scratch dir under target/ holds the broker data and the fio files, so both
# measure the same filesystem.
WORK="$(mktemp -d "$ROOT/target/bench.XXXXXX")"
DATA="$WORK/data"
BROKER_PID=""

stop_broker() {
    # SIGTERM = clean shutdown (answers in-flight requests, fsyncs, exits 0).
    # Returns the broker's exit status; escalates to SIGKILL after 30 s.
    local pid="$BROKER_PID" rc=0 i
    [ -n "$pid" ] || return 0
    BROKER_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "broker did not stop within 30 s of SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}
cleanup() {
    stop_broker || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# One broker session per workload, so the storage totals it logs at shutdown (appends,
# fsync rounds) belong to that workload alone.
run_session() {  # NAME EXTRA_PRODUCE_CONSUME_ARGS...
    local name="$1"; shift
    local port i rc=0
    port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    PORT="$port"
    BROKER_CMD=("$WEIR" serve --listen "127.0.0.1:$port" --data-dir "$DATA" --admin-listen 127.0.0.1:0)
    log "[$name] starting: ${BROKER_CMD[*]} (log: ${BROKER_LOG#"$ROOT"/}.$name)"
    NO_COLOR=1 "${BROKER_CMD[@]}" >"$BROKER_LOG.$name" 2>&1 &   # NO_COLOR: plain log file
    BROKER_PID=$!
    for i in $(seq 100); do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            log "broker exited during startup:"; cat "$BROKER_LOG.$name" >&2; exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        [ "$i" -lt 100 ] || { log "broker did not accept on port $port within 10 s"; exit 1; }
        sleep 0.1
    done
    log "[$name] produce/consume: MESSAGES=$MESSAGES SIZE=$SIZE PARTITIONS=$PARTITIONS $*"
    if [ "$name" = concurrent ]; then
        "$PY" "$ROOT/bench/concurrent_producers.py" --bootstrap "127.0.0.1:$port" \
            --size "$SIZE" "$@" >"$WORK/pc.$name.out" || rc=$?
    else
        "$PY" "$ROOT/bench/produce_consume.py" --bootstrap "127.0.0.1:$port" \
            --messages "$MESSAGES" --size "$SIZE" --partitions "$PARTITIONS" "$@" \
            >"$WORK/pc.$name.out" || rc=$?
    fi
    local broker_rc=0
    stop_broker || broker_rc=$?
    log "[$name] broker exited with status $broker_rc"
    DATA_BYTES="$(du -sb "$DATA" | cut -f1)"
    rm -rf "$DATA"
    if [ "$rc" -ne 0 ]; then
        log "produce_consume.py failed (exit $rc); broker log tail:"
        tail -n 20 "$BROKER_LOG.$name" >&2
        exit "$rc"
    fi
    # Last stdout line: the results; the broker's shutdown line: its storage totals.
    tail -n 1 "$WORK/pc.$name.out" >"$WORK/result.$name.json"
    grep -o 'appends=[0-9]* fsyncs=[0-9]* fsync_avg_us=[0-9]*' "$BROKER_LOG.$name" \
        >"$WORK/totals.$name" || echo "appends=0 fsyncs=0 fsync_avg_us=0" >"$WORK/totals.$name"
    echo "$broker_rc" >"$WORK/rc.$name"
    grep -ciE '\b(warn|error)\b' "$BROKER_LOG.$name" >"$WORK/warnings.$name" || true
}

run_session plain --rate "$RATE"
run_session idempotent --rate 0 --idempotent
run_session concurrent --producers 8 --seconds 5
PC_JSON_CONCURRENT="$(cat "$WORK/result.concurrent.json")"
TOTALS_CONCURRENT="$(cat "$WORK/totals.concurrent")"
PC_JSON="$(cat "$WORK/result.plain.json")"
PC_JSON_IDEMPOTENT="$(cat "$WORK/result.idempotent.json")"
TOTALS_PLAIN="$(cat "$WORK/totals.plain")"
TOTALS_IDEMPOTENT="$(cat "$WORK/totals.idempotent")"
BROKER_RC="$(cat "$WORK/rc.plain")/$(cat "$WORK/rc.idempotent")"
BROKER_WARNINGS="$(( $(cat "$WORK/warnings.plain") + $(cat "$WORK/warnings.idempotent") ))"

# --- (f) raw disk figures -------------------------------------------------------
FIO_DIR="$WORK/fio"
mkdir -p "$FIO_DIR"
FIO_SEQ=(fio --name=seq1m --filename="$FIO_DIR/seq" --rw=write --bs=1m --size="$FIO_SEQ_SIZE"
         --fdatasync=1 --ioengine=psync --output-format=json)
FIO_4K=(fio --name=sync4k --filename="$FIO_DIR/4k" --rw=write --bs=4k --size="$FIO_4K_SIZE"
        --runtime="$FIO_4K_RUNTIME" --fdatasync=1 --ioengine=psync --output-format=json)
log "fio: sequential 1 MiB writes + fdatasync ($FIO_SEQ_SIZE)"
"${FIO_SEQ[@]}" >"$WORK/fio-seq.json"
log "fio: 4 KiB writes + fdatasync ($FIO_4K_SIZE, at most ${FIO_4K_RUNTIME}s)"
"${FIO_4K[@]}" >"$WORK/fio-4k.json"

# --- report ----------------------------------------------------------------------
FS_TYPE="$(df --output=fstype "$WORK" | tail -n 1)"
FS_DEV="$(df --output=source "$WORK" | tail -n 1)"
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT (dirty)"; fi

export PC_JSON PC_JSON_IDEMPOTENT PC_JSON_CONCURRENT TOTALS_CONCURRENT TOTALS_PLAIN TOTALS_IDEMPOTENT BROKER_RC BROKER_WARNINGS DATA_BYTES FS_TYPE FS_DEV COMMIT PORT \
       MESSAGES SIZE PARTITIONS
export BROKER_CMD_STR="weir serve --listen 127.0.0.1:$PORT --data-dir <tmp>/data --admin-listen 127.0.0.1:0"
export FIO_SEQ_STR="${FIO_SEQ[*]/#--filename=*/--filename=<tmp>/seq}"
export FIO_4K_STR="${FIO_4K[*]/#--filename=*/--filename=<tmp>/4k}"
export FIO_SEQ_JSON="$WORK/fio-seq.json" FIO_4K_JSON="$WORK/fio-4k.json"
export FIO_VERSION="$(fio --version)"
export WEIR_VERSION="$("$WEIR" --version)"

"$PY" - >"$RESULTS/latest.md" <<'EOF'
import datetime, json, os, platform

env = os.environ
pc = json.loads(env["PC_JSON"])
p, c = pc["produce"], pc["consume"]
pi = json.loads(env["PC_JSON_IDEMPOTENT"])["produce"]
cc = json.loads(env["PC_JSON_CONCURRENT"])

def totals_row(line):
    t = dict(kv.split("=") for kv in line.split())
    appends, fsyncs = int(t["appends"]), int(t["fsyncs"])
    return (f"{appends} appends, {fsyncs} fsync rounds ({appends / max(fsyncs, 1):.1f} appends "
            f"per fsync), {t['fsync_avg_us']} us per fsync round")

def fio_job(path):
    # fio may print warnings before the JSON; start at the first '{'.
    text = open(path).read()
    return json.loads(text[text.index("{"):])["jobs"][0]

seq, k4 = fio_job(env["FIO_SEQ_JSON"]), fio_job(env["FIO_4K_JSON"])
def sync_pct(job, p):
    # fio's "sync" section holds the fdatasync latencies (ns).
    return job["sync"]["lat_ns"]["percentile"][f"{p:.6f}"] / 1e6

mem_kib = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
mib = 1024 * 1024
rows = [
    ("produce", "messages delivered / errors", f"{p['delivered']} / {p['errors']}"),
    ("produce", "throughput", f"{p['msg_per_s']:.0f} msg/s, {p['mb_per_s']:.1f} MB/s ({p['seconds']:.2f} s)"),
    ("produce", "latency p50 / p99 / p99.9 / max",
     f"{p['lat_ms_p50']:.2f} / {p['lat_ms_p99']:.2f} / {p['lat_ms_p999']:.2f} / {p['lat_ms_max']:.2f} ms"),
    *([("produce", f"latency at a fixed {pc['fixed_rate']['rate']} msg/s, p50 / p99 / p99.9 / max",
        "{:.2f} / {:.2f} / {:.2f} / {:.2f} ms".format(*(pc["fixed_rate"][k] for k in
            ("lat_ms_p50", "lat_ms_p99", "lat_ms_p999", "lat_ms_max"))))]
      if pc.get("fixed_rate") else []),
    ("produce, idempotent", "throughput (enable.idempotence=true, same workload)",
     f"{pi['msg_per_s']:.0f} msg/s, {pi['mb_per_s']:.1f} MB/s ({pi['seconds']:.2f} s)"),
    ("produce, idempotent", "latency p50 / p99",
     f"{pi['lat_ms_p50']:.2f} / {pi['lat_ms_p99']:.2f} ms"),
    ("group commit", "appends / fsync rounds (plain run, whole session)",
     totals_row(env["TOTALS_PLAIN"])),
    ("group commit", "appends / fsync rounds (idempotent run)",
     totals_row(env["TOTALS_IDEMPOTENT"])),
    ("group commit", f"{cc['producers']} producer processes, 1 partition, linger.ms=0, "
     f"{cc['window']} in flight each: throughput, latency p50 / p99",
     f"{cc['msg_per_s']:.0f} msg/s, {cc['p50_ms']:.2f} / {cc['p99_ms']:.2f} ms"),
    ("group commit", "appends / fsync rounds (those 8 producers)",
     totals_row(env["TOTALS_CONCURRENT"])),
    ("consume", "messages read (= produced)", f"{c['consumed']} ({'yes' if c['consumed'] == pc['messages'] else 'NO'})"),
    ("consume", "throughput", f"{c['msg_per_s']:.0f} msg/s, {c['mb_per_s']:.1f} MB/s ({c['seconds']:.2f} s)"),
    ("broker", "SIGTERM exit status (plain/idempotent) / warn+error log lines", f"{env['BROKER_RC']} / {env['BROKER_WARNINGS']}"),
    ("broker", "data dir size at stop", f"{int(env['DATA_BYTES']) / 1e6:.1f} MB"),
    ("disk", "seq 1 MiB write + fdatasync", f"{seq['write']['bw_bytes'] / mib:.1f} MiB/s ({seq['write']['iops']:.0f} writes/s)"),
    ("disk", "4 KiB write + fdatasync", f"{k4['write']['iops']:.0f} IOPS"),
    ("disk", "4 KiB fdatasync latency p50 / p99",
     f"{sync_pct(k4, 50):.3f} / {sync_pct(k4, 99):.3f} ms"),
]

now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
out = [
    f"# weir benchmark, {now}",
    "",
    f"- machine: {os.cpu_count()} CPUs (nproc {os.popen('nproc').read().strip()}), "
    f"{mem_kib / 1024 / 1024:.1f} GiB RAM, kernel {platform.release()}",
    f"- filesystem: {env['FS_TYPE']} on {env['FS_DEV']} (broker data and fio files)",
    f"- {env['WEIR_VERSION']}, commit {env['COMMIT']}",
    f"- broker: `{env['BROKER_CMD_STR']}` (defaults: fsync before ack, group commit)",
    f"- workload: {pc['messages']} messages x {pc['size']} B, {pc['partitions']} partitions "
    f"(round-robin), replication 1, one producer then one consumer, same host",
    f"- producer: {pc['client']}, "
    + ", ".join(f"{k}={v}" for k, v in pc["producer_config"].items())
    + "; throughput run: all messages sent as fast as possible, latency = produce() call to "
    "delivery callback (mostly time queued in the client); fixed-rate run: linger.ms=0, "
    "latency from each message's intended send time to its delivery callback",
    "- consumer: manual assign() of all partitions from offset 0, librdkafka fetch defaults, "
    "group.id set but unused (no subscribe, no commits); time from assign() to last message",
    f"- {env['FIO_VERSION']}: `{env['FIO_SEQ_STR']}`",
    f"- {env['FIO_VERSION']}: `{env['FIO_4K_STR']}`",
    "",
    "| what | metric | value |",
    "| --- | --- | --- |",
    *[f"| {a} | {b} | {v} |" for a, b, v in rows],
    "",
]
print("\n".join(out))
EOF
cat "$RESULTS/latest.md"
