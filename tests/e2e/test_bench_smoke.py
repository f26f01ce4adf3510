"""The benchmark harness cannot rot: weir-bench's smoke mode (W1 produce for 2 s, W2 latency at
1000 msg/s for 2 s) runs against a real broker and its JSON lines must be sane.

The binary is built by `cargo build --release -p weir-bench` (scripts/test.sh); without it the
test is skipped, saying so."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH_BIN = Path(os.environ.get("WEIR_BENCH_BIN", REPO / "target" / "release" / "weir-bench"))


def test_bench_smoke_against_weir_reports_acked_and_received_messages(broker):
    if not BENCH_BIN.exists():
        pytest.skip(f"{BENCH_BIN} missing: build it with `cargo build --release -p weir-bench`")
    proc = subprocess.run(
        [str(BENCH_BIN), "--system", "kafka", "--addr", broker.bootstrap, "--smoke"],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"weir-bench failed:\n{proc.stderr}\nbroker log:\n{broker.log()}"
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]
    by_workload = {l["workload"]: l for l in lines}
    assert set(by_workload) == {"produce", "latency"}, proc.stdout

    w1 = by_workload["produce"]
    assert w1["system"] == "kafka"
    assert w1["errors"] == 0, w1["first_error"]
    assert w1["messages"] > 0
    assert w1["msg_per_s"] > 0 and w1["mb_per_s"] > 0
    assert w1["bytes"] == w1["messages"] * w1["size"]
    assert 0 < w1["ack_ms_p50"] <= w1["ack_ms_p99"] <= w1["ack_ms_max"]

    w2 = by_workload["latency"]
    assert w2["errors"] == 0, w2["first_error"]
    assert w2["rate"] == 1000
    # Every scheduled message was acknowledged, and every acknowledged one was consumed.
    assert w2["messages"] == w2["sent"] > 0
    assert w2["received"] == w2["messages"] and w2["missing"] == 0
    assert w2["e2e_count"] > 0
    assert 0 < w2["e2e_ms_p50"] <= w2["e2e_ms_p99"] <= w2["e2e_ms_p999"] <= w2["e2e_ms_max"]

    assert broker.alive()
    # Nothing the broker would call an error under this light load (the log may carry colours).
    plain = re.sub(r"\x1b\[[0-9;]*m", "", broker.log())
    assert not re.search(r"\bERROR\b", plain), plain
