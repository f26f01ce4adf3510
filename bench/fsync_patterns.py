#!/usr/bin/env python3
"""How this machine's file system takes the durability patterns a broker could use, without
the broker: each round, K of 1,000 partition files get an 11 KiB append each (one W4 produce
request's worth per partition), and the round ends when all of it is on stable storage. The
candidates of issue 16:

  fdatasync   every touched file fdatasync'd in parallel (64 threads): what weir's
              per-partition flushers amount to today
  sfr+fdsync  sync_file_range(WRITE) on every touched file first (all writeback queued at
              once), then the parallel fdatasyncs
  syncfs      one syncfs() covering the whole file system
  journal     the round's bytes also appended to one shared journal file, one fdatasync of it
              (BookKeeper's journal; the partition files are written behind it and synced
              lazily, not timed here)
  journal-pre the same journal preallocated and zero-filled ahead of time, overwritten in
              place, so its fdatasync flushes data only, no size or extent change

    python3 bench/fsync_patterns.py [DIR] [SECONDS_PER_CASE] [K,K,...]

DIR (default ./fsync-patterns-data, removed afterwards) must be on the file system under
test. Prints rounds/s, MB/s and round latency p50/p99 per case, and the ratio of each case's
MB/s to the journal's. syncfs also writes back every other dirty page of the file system, so a
busy machine (builds) penalises it; the journal cases leave the partition files' pages dirty,
which the kernel writes back in the background (and which a real journal must sync before it
reuses the space).
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
JOURNAL_PREALLOC = 1 << 30
SYNC_FILE_RANGE_WRITE = 2


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "fsync-patterns-data"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    per_rounds = [int(k) for k in sys.argv[3].split(",")] if len(sys.argv) > 3 else [1, 8, 64, 256]
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                                     ctypes.c_uint]
    os.makedirs(d, exist_ok=True)
    fds = [os.open(f"{d}/f{i}", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
           for i in range(FILES)]
    journal = os.open(f"{d}/journal", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    pre = os.open(f"{d}/journal-pre", os.O_CREAT | os.O_WRONLY, 0o644)
    zeros = bytes(1 << 20)
    for _ in range(JOURNAL_PREALLOC >> 20):
        os.write(pre, zeros)
    os.fsync(pre)
    pre_pos = 0
    buf = os.urandom(APPEND)
    pool = ThreadPoolExecutor(64)
    results = {}

    def check(rc, what):
        if rc != 0:
            raise OSError(ctypes.get_errno(), what)

    def case(mode, per_round):
        nonlocal pre_pos
        rounds, lat, t0 = 0, [], time.monotonic()
        while time.monotonic() - t0 < seconds:
            touched = random.sample(range(FILES), per_round)
            s = time.monotonic()
            for i in touched:
                os.write(fds[i], buf)
            if mode == "fdatasync":
                list(pool.map(lambda i: os.fdatasync(fds[i]), touched))
            elif mode == "sfr+fdsync":
                for i in touched:
                    check(libc.sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE),
                          "sync_file_range")
                list(pool.map(lambda i: os.fdatasync(fds[i]), touched))
            elif mode == "syncfs":
                check(libc.syncfs(fds[0]), "syncfs")
            elif mode == "journal":
                os.write(journal, buf * per_round)
                os.fdatasync(journal)
            elif mode == "journal-pre":
                n = APPEND * per_round
                if pre_pos + n > JOURNAL_PREALLOC:
                    pre_pos = 0
                os.pwrite(pre, buf * per_round, pre_pos)
                pre_pos += n
                os.fdatasync(pre)
            lat.append(time.monotonic() - s)
            rounds += 1
        el = time.monotonic() - t0
        lat.sort()
        mbs = rounds * per_round * APPEND / el / 1e6
        results[(mode, per_round)] = mbs
        print(f"{mode:11s} files/round={per_round:4d} rounds/s={rounds / el:7.1f} "
              f"MB/s={mbs:6.1f} p50={lat[len(lat) // 2] * 1e3:.2f}ms "
              f"p99={lat[int(len(lat) * .99)] * 1e3:.2f}ms", flush=True)

    modes = ("fdatasync", "sfr+fdsync", "syncfs", "journal", "journal-pre")
    try:
        for per_round in per_rounds:
            for mode in modes:
                case(mode, per_round)
            # Let writeback of the journal cases' dirty partition pages settle.
            os.sync()
        print()
        print("MB/s as a fraction of the preallocated journal's, per files/round:")
        for per_round in per_rounds:
            base = results[("journal-pre", per_round)]
            print(f"  {per_round:4d}: " + "  ".join(
                f"{m} {results[(m, per_round)] / base:.2f}" for m in modes))
    finally:
        for fd in fds + [journal, pre]:
            os.close(fd)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
