"""The benchmark harness cannot rot: weir-bench's smoke mode (W1 produce for 2 s, W2 latency at
1000 msg/s for 2 s, W3 a 2 MiB fill read back by one consumer, W4 20 producers over 50
partitions for 2 s) runs against a real broker and its JSON lines must be sane; and
`bench/peers/run.sh --smoke`, restricted to weir, records every workload plus the server's
/proc samples (W5).

The binary is built by `cargo build --release -p weir-bench` (scripts/test.sh); without it the
tests are skipped, saying so."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH_BIN = Path(os.environ.get("WEIR_BENCH_BIN", REPO / "target" / "release" / "weir-bench"))
WEIR_BIN = Path(os.environ.get("WEIR_BIN", REPO / "target" / "release" / "weir"))


def need_bench():
    if not BENCH_BIN.exists():
        pytest.skip(f"{BENCH_BIN} missing: build it with `cargo build --release -p weir-bench`")


def test_bench_smoke_against_weir_reports_acked_and_received_messages(broker):
    need_bench()
    proc = subprocess.run(
        [str(BENCH_BIN), "--system", "kafka", "--addr", broker.bootstrap, "--smoke"],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"weir-bench failed:\n{proc.stderr}\nbroker log:\n{broker.log()}"
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]
    by_workload = {l["workload"]: l for l in lines}
    assert len(lines) == 5, proc.stdout
    assert set(by_workload) == {"produce", "latency", "fill", "consume", "scale"}, proc.stdout

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

    # W3: exactly 2 MiB of 1 KiB messages filled, and the consumer read every one of them back.
    fill, read = by_workload["fill"], by_workload["consume"]
    assert fill["errors"] == 0, fill["first_error"]
    assert fill["messages"] == fill["sent"] == fill["max_messages"] == 2048
    assert fill["time_capped"] is False
    assert read["run"] == fill["run"]
    assert read["expected"] == read["messages"] == fill["messages"]
    assert read["complete"] is True and read["stop"] == "all expected messages read"
    assert read["bytes"] == fill["bytes"] == 2 << 20
    assert read["msg_per_s"] > 0 and read["mb_per_s"] > 0
    assert 0 < read["first_message_ms"] <= read["seconds"] * 1000

    w4 = by_workload["scale"]
    assert (w4["producers"], w4["partitions"], w4["window"]) == (20, 50, 64)
    assert w4["errors"] == 0, w4["first_error"]
    assert w4["messages"] > 0 and w4["msg_per_s"] > 0
    assert w4["setup_seconds"] >= 0 and w4["connect_seconds"] >= 0

    assert broker.alive()
    # Nothing the broker would call an error under this light load (the log may carry colours).
    plain = re.sub(r"\x1b\[[0-9;]*m", "", broker.log())
    assert not re.search(r"\bERROR\b", plain), plain


def test_peers_script_smoke_records_every_workload_for_weir(tmp_path):
    need_bench()
    if not WEIR_BIN.exists():
        pytest.skip(f"{WEIR_BIN} missing: build it with `cargo build --release -p weir`")
    if shutil.which("ss") is None:
        pytest.skip("run.sh finds the server's pid with `ss` (iproute2), which is missing")
    env = dict(os.environ, SYSTEMS="weir", WEIR_BIN=str(WEIR_BIN), WEIR_BENCH_BIN=str(BENCH_BIN))
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "peers" / "run.sh"), "--smoke"],
        capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL, env=env,
    )
    assert proc.returncode == 0, f"run.sh --smoke failed:\n{proc.stderr}"
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    assert lines and all(l["sys"] == "weir" and l["round"] == 1 for l in lines), proc.stdout
    assert not [l for l in lines if l.get("failed")], proc.stdout

    def one(**match):
        found = [l for l in lines if all(l.get(k) == v for k, v in match.items())]
        assert len(found) == 1, f"expected one line with {match}:\n{proc.stdout}"
        return found[0]

    assert one(phase="w1", workload="produce")["messages"] > 0
    assert one(phase="w2", workload="latency")["missing"] == 0
    fill = one(phase="w3", workload="fill")
    warm = one(phase="w3", workload="consume", cache="warm")
    assert warm["complete"] and warm["messages"] == fill["messages"] > 0
    cold = [l for l in lines if l.get("phase") == "w3" and l.get("cache") == "cold"]
    assert len(cold) == 1, proc.stdout
    if "skipped" in cold[0]:
        # Not root, or in a container: the page cache cannot be dropped, and the record says so.
        assert "drop_caches" in cold[0]["skipped"]
    else:
        assert cold[0]["workload"] == "consume" and cold[0]["cold"] == "page cache dropped"
        assert cold[0]["complete"] and cold[0]["messages"] == fill["messages"]
    assert one(phase="w4", workload="scale")["messages"] > 0

    # W5: /proc samples of the server around idle, W1 and W4.
    for phase in ("idle", "w1", "w4"):
        r = one(workload="resources", phase=phase)
        before, after = r["before"], r["after"]
        assert before["pid"] == after["pid"] > 0
        assert after["t"] > before["t"]
        assert 0 <= before["cpu_s"] <= after["cpu_s"]
        assert 0 < after["rss_mib"] <= after["rss_peak_mib"]
    assert one(workload="server")["stats"]["cpu_s"] >= 0
