#!/usr/bin/env python3
"""How this machine's file system takes the fsync patterns a broker could use, without the
broker: N files get an 11 KiB append each per round (one W4 produce request's worth per
partition), then either every touched file is fdatasync'd in parallel (64 threads, what
weir's per-partition flushers amount to) or one syncfs() covers them all.

    python3 bench/fsync_patterns.py [DIR] [SECONDS_PER_CASE]

DIR (default ./fsync-patterns-data, removed afterwards) must be on the file system under
test. Prints rounds/s, MB/s and round latency p50/p99 per case. syncfs also writes back
every other dirty page of the file system, so a busy machine (builds) penalises it.
"""
import ctypes
import os
import random
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

FILES = 1000
APPEND = 11 * 1024


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "fsync-patterns-data"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    os.makedirs(d, exist_ok=True)
    fds = [os.open(f"{d}/f{i}", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
           for i in range(FILES)]
    buf = os.urandom(APPEND)
    pool = ThreadPoolExecutor(64)

    def case(mode, per_round):
        rounds, lat, t0 = 0, [], time.monotonic()
        while time.monotonic() - t0 < seconds:
            touched = random.sample(range(FILES), per_round)
            for i in touched:
                os.write(fds[i], buf)
            s = time.monotonic()
            if mode == "fdatasync":
                list(pool.map(lambda i: os.fdatasync(fds[i]), touched))
            elif libc.syncfs(fds[0]) != 0:
                raise OSError(ctypes.get_errno(), "syncfs")
            lat.append(time.monotonic() - s)
            rounds += 1
        el = time.monotonic() - t0
        lat.sort()
        print(f"{mode:9s} files/round={per_round:4d} rounds/s={rounds / el:7.1f} "
              f"MB/s={rounds * per_round * APPEND / el / 1e6:6.1f} "
              f"p50={lat[len(lat) // 2] * 1e3:.2f}ms p99={lat[int(len(lat) * .99)] * 1e3:.2f}ms")

    try:
        for per_round in (1, 8, 64, 256):
            for mode in ("fdatasync", "syncfs"):
                case(mode, per_round)
    finally:
        for fd in fds:
            os.close(fd)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
