#!/usr/bin/env bash
# Consume throughput from the page cache (issue 16's W3 warm row), for one or more weir
# binaries, interleaved: each gets a fresh broker and data dir, FILL_MIB of 1 KiB records in
# PARTITIONS partitions (weir-bench, acks=all), then READS reads of all of it from offset 0
# by one librdkafka consumer (weir-bench --workload consume; fetch.max.bytes 50 MiB,
# max.partition.fetch.bytes 8 MiB). The data fits in the page cache, so this measures the
# broker's fetch path and the client, not the disk.
#
# CLIENT=rdkafka_performance reads with librdkafka's own C benchmark instead (rdkafka_performance
# -C, every partition, batches of 10,000, librdkafka's default fetch sizes unless RDKAFKA_X
# sets properties, e.g. RDKAFKA_X="max.partition.fetch.bytes=8388608"; built from the librdkafka source that rdkafka-sys
# vendors and configures under target/release/build, since Debian does not ship it).
#
# Usage: bench/consume.sh [WEIR_BIN...]   (default: target/release/weir)
#   env: FILL_MIB (2048)  PARTITIONS (4)  READS (3)  ROUNDS (2)  BENCH (target/release/weir-bench)
#        CLIENT (weir-bench | rdkafka_performance)  RDKAFKA_PERFORMANCE (a binary to use)
#        RDKAFKA_X (space-separated librdkafka properties for rdkafka_performance)
# Output: one line per read: binary, round, read, MB/s, msg/s, broker CPU seconds, consumer
# CPU seconds, read seconds; then the medians per binary, with broker CPU per GB read.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILL_MIB="${FILL_MIB:-2048}"
PARTITIONS="${PARTITIONS:-4}"
READS="${READS:-3}"
ROUNDS="${ROUNDS:-2}"
BENCH="${BENCH:-$ROOT/target/release/weir-bench}"
CLIENT="${CLIENT:-weir-bench}"
[ $# -gt 0 ] || set -- "$ROOT/target/release/weir"
if [ "$CLIENT" = rdkafka_performance ] && [ -z "${RDKAFKA_PERFORMANCE:-}" ]; then
    out="$(ls -d "$ROOT"/target/release/build/rdkafka-sys-*/out 2>/dev/null | head -1)"
    [ -n "$out" ] || { echo "build weir-bench first (cargo build --release -p weir-bench)" >&2; exit 1; }
    make -s -C "$out/examples" rdkafka_performance >&2
    RDKAFKA_PERFORMANCE="$out/examples/rdkafka_performance"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/weir-consume.XXXX")"
RESULTS="$WORK/results.tsv"
trap 'kill "${PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_seconds() {  # PID -> user+system CPU seconds of the process so far
    python3 -c 'import os,sys; f=open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")",1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK"))' "$1"
}
field() {  # JSON-LINE KEY -> value of a top-level number
    python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2"
}

for round in $(seq "$ROUNDS"); do
    for bin in "$@"; do
        port="$(free_port)"
        rm -rf "$WORK/data"
        "$bin" serve --listen "127.0.0.1:$port" --data-dir "$WORK/data" --admin-listen 127.0.0.1:0 \
            >"$WORK/server.log" 2>&1 &
        PID=$!
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.1
        done
        "$BENCH" --addr "127.0.0.1:$port" --workload fill --run-name w3 --partitions "$PARTITIONS" \
            --producers "$PARTITIONS" --fill-bytes "$((FILL_MIB * 1048576))" --keep >"$WORK/fill.json" 2>"$WORK/fill.err"
        filled="$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    l=l.strip()
    if l: d=json.loads(l)
print(d.get("fill",{}).get("messages") or d.get("messages") or 0)' "$WORK/fill.json")"
        for read in $(seq "$READS"); do
            cpu0="$(cpu_seconds "$PID")"
            if [ "$CLIENT" = rdkafka_performance ]; then
                parts=(); for p in $(seq 0 $((PARTITIONS - 1))); do parts+=(-p "$p"); done
                xprops=(); for x in ${RDKAFKA_X:-}; do xprops+=(-X "$x"); done
                out="$( { /usr/bin/time -f 'cpu %U %S' "$RDKAFKA_PERFORMANCE" -C -t bench-w3 "${parts[@]}" \
                    -b "127.0.0.1:$port" -o beginning -c "$filled" -B 10000 "${xprops[@]}"; } 2>&1)"
                cpu1="$(cpu_seconds "$PID")"
                # "% N messages (B bytes) consumed in Tms: ..."
                read -r msgs_n bytes_n ms < <(sed -n 's/^% \([0-9]*\) messages (\([0-9]*\) bytes) consumed in \([0-9]*\)ms.*/\1 \2 \3/p' <<<"$out" | tail -1)
                secs="$(python3 -c "print($ms / 1000)")"
                mbs="$(python3 -c "print($bytes_n / 1e6 / $secs)")"; msgs="$(python3 -c "print($msgs_n / $secs)")"
                ccpu="$(awk '/^cpu /{print $2 + $3}' <<<"$out")"
            else
                line="$("$BENCH" --addr "127.0.0.1:$port" --workload consume --run-name w3 \
                    --partitions "$PARTITIONS" --expect-messages "$filled" --keep 2>>"$WORK/read.err" | tail -1)"
                cpu1="$(cpu_seconds "$PID")"
                mbs="$(field "$line" mb_per_s)"; msgs="$(field "$line" msg_per_s)"
                ccpu="$(field "$line" client_cpu_seconds)"; secs="$(field "$line" seconds)"
            fi
            bcpu="$(python3 -c "print(round($cpu1 - $cpu0, 2))")"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$bin" "$round" "$read" "$mbs" "$msgs" "$bcpu" "$ccpu" "$secs" \
                | tee -a "$RESULTS"
        done
        kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    done
done
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print("| binary | reads | median MB/s | min-max MB/s | median msg/s | broker CPU s per GB | consumer CPU s per GB |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for b in dict.fromkeys(r[0] for r in rows):
    mine = [r for r in rows if r[0] == b and r[3]]
    if not mine:
        continue
    mbs = [float(r[3]) for r in mine]
    msgs = [float(r[4]) for r in mine]
    gb = [float(r[3]) * float(r[7]) / 1000 for r in mine]  # GB read (10^9 bytes)
    bcpu = [float(r[5]) / g for r, g in zip(mine, gb)]
    ccpu = [float(r[6]) / g for r, g in zip(mine, gb)]
    print(f"| {b} | {len(mine)} | {statistics.median(mbs):.0f} | {min(mbs):.0f}-{max(mbs):.0f} | "
          f"{statistics.median(msgs):.0f} | {statistics.median(bcpu):.2f} | {statistics.median(ccpu):.2f} |")
PY
