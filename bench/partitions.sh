#!/usr/bin/env bash
# Many partitions on one node (issue 16): starts the release binary on free loopback ports with
# a fresh data directory, creates one topic of N partitions, and prints how long that took, the
# broker's open file descriptors, its idle RSS and CPU over 10 s, how long a SIGTERM stop takes,
# and how long a restart takes until /ready after SIGTERM and after kill -9 (crash recovery).
#
# Usage: bench/partitions.sh [N]        (default 10000; the per-topic limit is 10,000)
# Env:   WEIR_BIN (default target/release/weir, built if missing), DATA_PARENT (default target/)
# Output: a Markdown table on stdout. Needs curl. The broker keeps at most half its
# descriptor limit in open files (it closes and reopens the rest), so the descriptor count
# it prints is min(N + ~15, limit / 2 + a few).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-10000}"
BIN="${WEIR_BIN:-$ROOT/target/release/weir}"
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --locked -q)
DATA_PARENT="${DATA_PARENT:-$ROOT/target}"
mkdir -p "$DATA_PARENT"
DIR="$(mktemp -d "$DATA_PARENT/partitions-bench.XXXXXX")"
LOG="$DIR.log"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
ADMIN="$(free_port)"
PID=""
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
    rm -rf "$DIR" "$LOG"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
start() {
    "$BIN" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
        --data-dir "$DIR" >>"$LOG" 2>&1 &
    PID=$!
}
# Seconds from now until the broker answers /ready.
wait_ready() {
    local t0
    t0="$(now)"
    until curl -sf "http://127.0.0.1:$ADMIN/ready" >/dev/null; do
        if ! kill -0 "$PID" 2>/dev/null; then
            echo "the broker exited; its log:" >&2
            tail -20 "$LOG" >&2
            exit 1
        fi
        sleep 0.05
    done
    since "$t0"
}
rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
fds() { ls "/proc/$PID/fd" | wc -l; }

start
wait_ready >/dev/null
t0="$(now)"
"$BIN" topic create many --partitions "$N" -b "127.0.0.1:$PORT" >/dev/null
create_s="$(since "$t0")"
open_fds="$(fds)"
sleep 2
idle_rss="$(rss_mib)"
hz="$(getconf CLK_TCK)"
a="$(cpu_ticks)"
sleep 10
b="$(cpu_ticks)"
idle_cpu="$(python3 -c "print(f'{($b - $a) / $hz / 10 * 100:.2f}')")"
t0="$(now)"
kill -TERM "$PID"
wait "$PID" || true
stop_s="$(since "$t0")"
start
restart_s="$(wait_ready)"
restart_rss="$(rss_mib)"
kill -9 "$PID"
wait "$PID" 2>/dev/null || true
start
crash_s="$(wait_ready)"
kill -TERM "$PID"
wait "$PID" || true
PID=""

echo "### $N partitions on one node ($(nproc) cores, $(df -T "$DIR" | awk 'NR == 2 { print $2 }'))"
echo
echo "| what | figure |"
echo "| --- | --- |"
echo "| CreateTopics of $N partitions (weir topic create) | $create_s s |"
echo "| open file descriptors after it | $open_fds |"
echo "| idle RSS | $idle_rss MiB |"
echo "| idle CPU over 10 s | $idle_cpu % of a core |"
echo "| stop after SIGTERM (close every partition) | $stop_s s |"
echo "| restart after SIGTERM, until /ready | $restart_s s (RSS $restart_rss MiB) |"
echo "| restart after kill -9 (recovery), until /ready | $crash_s s |"
