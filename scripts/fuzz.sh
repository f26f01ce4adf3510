#!/usr/bin/env bash
# Run every cargo-fuzz target of fuzz/ for SECONDS each (default 60), starting from the
# committed seed corpus, after replaying the saved reproducers of fuzz/regressions/.
# Fails if any target crashes, panics, times out on one input, or exceeds the memory limits.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Installs cargo-fuzz if missing (idempotent); needs a nightly toolchain (installed with
# rustup if missing). The committed corpus is copied to target/fuzz/corpus/<target> for each
# run, so runs never modify it; findings go to target/fuzz/artifacts/<target>/, logs to
# target/fuzz/logs/<target>.log.
#
# Environment: FUZZ_KEEP_CORPUS=1 keeps growing the scratch corpus across runs instead of
# starting from the committed one; FUZZ_JOBS=N runs N targets at once (default 1).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_PER_TARGET=${1:-60}
shift || true
ALL_TARGETS=(frame request_dispatch record_batch segment_recovery checkpoint_parsers)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
JOBS=${FUZZ_JOBS:-1}

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
if ! cargo +nightly --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo +nightly --version
cargo fuzz --version

step "build fuzz targets"
build_started=$(date +%s)
# One cargo invocation builds every target against the same instrumented dependencies.
cargo +nightly fuzz build || exit 1
echo "built in $(( $(date +%s) - build_started ))s"

SCRATCH=$ROOT/target/fuzz
mkdir -p "$SCRATCH/logs"
# Broker data directories of request_dispatch: on tmpfs when there is one (fsync is free).
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    DATA_PARENT=$(mktemp -d /dev/shm/weir-fuzz-run.XXXXXX)
else
    DATA_PARENT=$(mktemp -d "$SCRATCH/data.XXXXXX")
fi
trap 'rm -rf "$DATA_PARENT"' EXIT
export WEIR_FUZZ_DATA_DIR=$DATA_PARENT

BIN_DIR=$(ls -d fuzz/target/*/release 2>/dev/null | head -1)

step "replay fuzz/regressions"
regress_failed=0
for t in "${TARGETS[@]}"; do
    dir=fuzz/regressions/$t
    [ -d "$dir" ] || continue
    files=("$dir"/*)
    [ -e "${files[0]}" ] || continue
    if "$BIN_DIR/$t" -rss_limit_mb=2048 "${files[@]}" >"$SCRATCH/logs/$t.regressions.log" 2>&1; then
        echo "$t: ${#files[@]} reproducer(s) pass"
    else
        echo "$t: a saved reproducer fails again (see $SCRATCH/logs/$t.regressions.log)"
        regress_failed=1
    fi
done

run_target() {
    local t=$1
    local corpus=$SCRATCH/corpus/$t artifacts=$SCRATCH/artifacts/$t/
    if [ "${FUZZ_KEEP_CORPUS:-0}" != 1 ]; then rm -rf "$corpus"; fi
    mkdir -p "$corpus" "$artifacts"
    if [ -d "fuzz/corpus/$t" ]; then cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true; fi
    local dict=()
    if [ -f "fuzz/dicts/$t.dict" ]; then dict=("-dict=$ROOT/fuzz/dicts/$t.dict"); fi
    # -timeout: one input taking this long is a finding (a hang or a quadratic path).
    # -rss_limit_mb / -malloc_limit_mb: an allocation sized from the input is a finding.
    "$BIN_DIR/$t" "$corpus" "${dict[@]}" \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=25 \
        -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -artifact_prefix="$artifacts" -print_final_stats=1 \
        >"$SCRATCH/logs/$t.log" 2>&1
    echo $? >"$SCRATCH/logs/$t.rc"
}

step "fuzz ${TARGETS[*]} for ${SECONDS_PER_TARGET}s each (${JOBS} at a time)"
fuzz_started=$(date +%s)
running=0
for t in "${TARGETS[@]}"; do
    if [ ! -x "$BIN_DIR/$t" ]; then
        echo "unknown target $t" >&2
        echo 2 >"$SCRATCH/logs/$t.rc"
        continue
    fi
    echo "$t ..."
    run_target "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
echo "fuzzed in $(( $(date +%s) - fuzz_started ))s"

step "results"
failed=$regress_failed
printf '%-20s %-8s %10s %8s %7s %7s %8s\n' target result execs exec/s cov ft corpus
for t in "${TARGETS[@]}"; do
    log=$SCRATCH/logs/$t.log
    rc=$(cat "$SCRATCH/logs/$t.rc" 2>/dev/null || echo 2)
    last=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" 2>/dev/null | tail -1)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" 2>/dev/null | grep -o '[0-9]*$')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" 2>/dev/null | grep -o '[0-9]*$')
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.*corp: \([0-9]*\).*/\1/p' <<<"$last")
    if [ "$rc" = 0 ]; then result=ok; else result=FAILED; failed=1; fi
    printf '%-20s %-8s %10s %8s %7s %7s %8s\n' "$t" "$result" "${execs:--}" "${rate:--}" \
        "${cov:--}" "${ft:--}" "${corp:--}"
done
if [ "$failed" != 0 ]; then
    echo
    for t in "${TARGETS[@]}"; do
        rc=$(cat "$SCRATCH/logs/$t.rc" 2>/dev/null || echo 2)
        [ "$rc" = 0 ] && continue
        echo "--- $t (exit $rc): $SCRATCH/logs/$t.log"
        grep -E 'panicked at|^==[0-9]+== ERROR|SUMMARY|Test unit written to|out-of-memory|timeout' \
            "$SCRATCH/logs/$t.log" | head -8
    done
    echo
    echo "Reproduce: fuzz/target/*/release/<target> <artifact>; save it under fuzz/regressions/<target>/."
    exit 1
fi
echo "all fuzz targets ran clean"
