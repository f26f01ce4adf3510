#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (Debian's kcat and
# librdkafka, a local Python venv with the Kafka clients), checks formatting and lints, builds
# the release binary and runs the Rust tests and the end-to-end tests against that binary.
# Idempotent: a second run installs nothing and reuses the build.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n== %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

step "system packages"
missing=()
command -v kcat >/dev/null || missing+=(kcat)
dpkg -s librdkafka-dev >/dev/null 2>&1 || missing+=(librdkafka-dev)
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -q
    as_root apt-get install -y -q "${missing[@]}" </dev/null
fi
kcat -V | head -1

step "python venv (.venv)"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import sys; sys.exit(0 if open("requirements-test.txt").read() == open(".venv/.requirements-installed").read() else 1)' 2>/dev/null; then
    .venv/bin/pip install -q --disable-pip-version-check -r requirements-test.txt </dev/null
    cp requirements-test.txt .venv/.requirements-installed
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fuzz targets compile (cargo check; running them is scripts/fuzz.sh, on nightly)"
cargo check --manifest-path fuzz/Cargo.toml --locked --target-dir target/fuzz-check

step "build release binaries (broker, load generator)"
cargo build --release --locked -p weir -p weir-bench

step "rust tests"
cargo nextest run --workspace --locked --no-fail-fast

step "end-to-end tests (real binary, real clients)"
export WEIR_BIN="$PWD/target/release/weir"
cd tests/e2e
../../.venv/bin/python -m pytest -q -ra --durations=15 "$@"
