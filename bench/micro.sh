#!/usr/bin/env bash
# Criterion micro-benchmarks of the storage hot paths (crates/storage/benches): Log::append,
# validate_record_set, Log::read and the cleaner's offset map. No broker, no network: these
# isolate the code that bench/run.sh measures end to end.
#
# Usage: bench/micro.sh [BENCH...] [-- CRITERION_ARGS]
#   BENCH: append validate read offset_map (default: all four)
#   e.g. bench/micro.sh read -- --measurement-time 10
# Output: criterion's report on stderr, then a Markdown table on stdout: criterion's point
# estimate of the time per iteration (the slope of its linear fit, else the mean), and the
# throughput it gives (MB/s = 10^6 bytes/s, or elements/s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

benches=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    benches+=("$1")
    shift
done
[ "${1:-}" = "--" ] && shift
[ ${#benches[@]} -eq 0 ] && benches=(append validate read offset_map)

args=()
for b in "${benches[@]}"; do args+=(--bench "$b"); done
cargo bench --locked -p weir-storage "${args[@]}" -- "$@" 1>&2

target_dir="$(cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

# Criterion keeps each benchmark's last run in <target>/criterion/<group>/<function>/new.
python3 - "$target_dir/criterion" "${benches[@]}" <<'PY'
import json, pathlib, sys

root = pathlib.Path(sys.argv[1])
# The criterion group each bench target reports under, and the functions it defines.
wanted = {
    "append": [("log", "append_16x1KiB")],
    "validate": [("batch", "validate_8x16x1KiB")],
    "read": [("log", "read_1MiB")],
    "offset_map": [("offset_map", "insert_1M"), ("offset_map", "lookup_1M")],
}

def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.1f} ns"

print("| bench | time per iteration | throughput |")
print("| --- | --- | --- |")
for bench in sys.argv[2:]:
    for group, function in wanted.get(bench, []):
        d = root / group / function / "new"
        try:
            est = json.loads((d / "estimates.json").read_text())
            meta = json.loads((d / "benchmark.json").read_text())
        except FileNotFoundError:
            print(f"| {group}/{function} | not run | |")
            continue
        typical = est.get("slope") or est["mean"]
        ns = typical["point_estimate"]
        tp = meta.get("throughput") or {}
        if "Bytes" in tp:
            rate = f"{tp['Bytes'] / ns * 1e9 / 1e6:,.0f} MB/s"
        elif "Elements" in tp:
            rate = f"{tp['Elements'] / ns * 1e9 / 1e6:,.1f} M elements/s"
        else:
            rate = ""
        print(f"| {group}/{function} | {fmt_time(ns)} | {rate} |")
PY
