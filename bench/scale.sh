#!/usr/bin/env bash
# Durable produce as partitions grow, on weir alone (the quick form of bench/peers/run.sh's
# W1/W4; the peers are measured there): W1 1 producer x 1 partition, W4 100 producers x 1,000
# partitions and W4 500 producers x 10,000 partitions (acks=all, 1 KiB records, weir's default
# durable settings), each on a fresh broker and data directory, interleaved for ROUNDS rounds,
# beside the disk's synced-write bandwidth from the same run (dd, 1 MiB writes, O_DSYNC).
#
# Usage: bench/scale.sh                 Env: ROUNDS (1), SECONDS_PER_CASE (10),
#                                            CASES ("1x1 100x1000 500x10000")
# Output: a Markdown table (median over rounds: MB/s, ratio to W1 and to the disk, ack p50/p99).
# Needs `ulimit -n` well above the producer count (weir-bench opens a socket per producer;
# weir keeps at most half its own limit in open files).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS="${ROUNDS:-1}"
SECONDS_PER_CASE="${SECONDS_PER_CASE:-10}"
CASES="${CASES:-1x1 100x1000 500x10000}"
cargo build --release --locked -q -p weir -p weir-bench
BIN="$ROOT/target/release/weir"
BENCH="$ROOT/target/release/weir-bench"
WORK="$(mktemp -d "$ROOT/target/scale-bench.XXXXXX")"
RAW="$WORK/raw.jsonl"
PID=""
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

disk_mb_s() {  # synced-write bandwidth of the file system under target/: 256 MiB, 1 MiB O_DSYNC writes
    dd if=/dev/zero of="$WORK/dd" bs=1M count=256 oflag=dsync 2>&1 \
        | awk '/copied/ { print $(NF-1) * ($NF ~ /^G/ ? 1000 : ($NF ~ /^k/ ? 0.001 : 1)) }'
    rm -f "$WORK/dd"
}

for round in $(seq "$ROUNDS"); do
    printf '{"round":%s,"workload":"disk","mb_per_s":%s}\n' "$round" "$(disk_mb_s)" >>"$RAW"
    for c in $CASES; do
        producers="${c%x*}" partitions="${c#*x}"
        data="$WORK/data-$round-$c"
        port="$(free_port)" admin="$(free_port)"
        "$BIN" serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
            --data-dir "$data" >"$data.log" 2>&1 &
        PID=$!
        until curl -sf "http://127.0.0.1:$admin/ready" >/dev/null; do sleep 0.05; done
        # W1 as bench/peers/run.sh runs it (weir-bench's default window); W4 with 64 in flight
        # per producer.
        args=(--workload produce)
        [ "$partitions" = 1 ] || args=(--workload scale --window 64 --setup-timeout-seconds 150)
        "$BENCH" --system kafka --addr "127.0.0.1:$port" --label "$c/round$round" "${args[@]}" \
            --producers "$producers" --partitions "$partitions" \
            --seconds "$SECONDS_PER_CASE" --linger-ms 5 \
            2>>"$WORK/bench.err" | grep '^{' | sed "s|^{|{\"round\":$round,\"case\":\"$c\",|" >>"$RAW" \
            || echo "weir-bench failed for $c (round $round): $(grep -m1 -E '^Error|panicked' "$WORK/bench.err")" >&2
        kill -TERM "$PID"
        wait "$PID" || true
        PID=""
        rm -rf "$data" "$data.log"
    done
done

python3 - "$RAW" "$CASES" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cases = sys.argv[2].split()
med = lambda xs: statistics.median(xs) if xs else float("nan")
disk = med([r["mb_per_s"] for r in rows if r.get("workload") == "disk"])
by = {c: [r for r in rows if r.get("case") == c] for c in cases}
w1 = med([r["mb_per_s"] for r in by.get("1x1", [])])
print(f"### Durable produce as partitions grow (acks=all, 1 KiB, {len(set(r['round'] for r in rows))} round(s), medians)")
print()
print(f"Disk synced-write bandwidth (dd, 1 MiB O_DSYNC writes): {disk:.0f} MB/s")
print()
print("| producers x partitions | MB/s | of W1 1x1 | of the disk | ack p50 / p99 ms | errors |")
print("| --- | --- | --- | --- | --- | --- |")
for c in cases:
    rs = by[c]
    if not rs:
        print(f"| {c} | failed | | | | |")
        continue
    mb = med([r["mb_per_s"] for r in rs])
    print(f"| {c} | {mb:.1f} | {mb / w1:.0%} | {mb / disk:.0%} | "
          f"{med([r['ack_ms_p50'] for r in rs]):.1f} / {med([r['ack_ms_p99'] for r in rs]):.1f} | "
          f"{sum(r['errors'] for r in rs)} |")
EOF
