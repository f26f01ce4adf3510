"""An oracle for transactional histories: what the producers know about their transactions,
checked against what read_committed consumers saw.

Every record a transactional producer writes carries its transaction's name, its index in
the transaction and the transaction's size (`encode_value`), so a reader can tell which
transaction a record belongs to and whether it has all of it. Producers report each
transaction's outcome as they learned it:

  COMMITTED  commit_transaction() returned: every record must be visible, exactly once.
  ABORTED    abort_transaction() returned (or the records never got past the client): no
             record may ever be visible to read_committed.
  UNKNOWN    the client could not tell (commit raised, the producer was recreated): all of it
             or none of it may be visible, nothing in between.

Consumers report every record they read (consumer name, topic, partition, offset, value).
A consumer marked `complete` read every partition from offset 0 to its final end offset
after all transactions had ended; only complete consumers are judged on what they did not
see (lost commits, partial transactions).

`check(history)` returns the anomalies found; `assert_clean(history)` fails with a summary.
The anomaly kinds:
  aborted-read         a record of an aborted transaction was read
  duplicate            one consumer read the same record twice
  lost-commit          a complete consumer misses a record of a committed transaction
  partial-transaction  a complete consumer saw some but not all of an undecided transaction
  non-monotonic        a consumer's offsets in a partition did not strictly increase
  unknown-record       a value that no producer wrote (or an index outside its transaction)
  divergent            two consumers saw different values at one offset, or complete
                       consumers disagree on which undecided transactions happened
"""

import threading
from collections import defaultdict, namedtuple

COMMITTED = "committed"
ABORTED = "aborted"
UNKNOWN = "unknown"

ABORTED_READ = "aborted-read"
DUPLICATE = "duplicate"
LOST_COMMIT = "lost-commit"
PARTIAL_TXN = "partial-transaction"
NON_MONOTONIC = "non-monotonic"
UNKNOWN_RECORD = "unknown-record"
DIVERGENT = "divergent"

KINDS = (ABORTED_READ, DUPLICATE, LOST_COMMIT, PARTIAL_TXN, NON_MONOTONIC, UNKNOWN_RECORD,
         DIVERGENT)

Anomaly = namedtuple("Anomaly", "kind detail")
Read = namedtuple("Read", "topic partition offset value")


def encode_value(txn: str, index: int, size: int) -> bytes:
    assert "|" not in txn and 0 <= index < size
    return f"{txn}|{index}|{size}".encode()


def decode_value(value):
    """(txn, index, size), or None for a value `encode_value` did not make."""
    try:
        txn, index, size = value.decode().split("|")
        return txn, int(index), int(size)
    except (AttributeError, UnicodeDecodeError, ValueError):
        return None


class History:
    """Thread-safe record of a run. Producers: begin(), end(). Consumers: read(), complete()."""

    def __init__(self):
        self._lock = threading.Lock()
        self.size = {}      # txn -> number of records
        self.status = {}    # txn -> COMMITTED / ABORTED / UNKNOWN (absent: never ended)
        self.reads = defaultdict(list)  # consumer -> [Read]
        self.complete_consumers = set()

    def begin(self, txn: str, size: int):
        with self._lock:
            assert txn not in self.size, f"transaction name {txn} used twice"
            self.size[txn] = size

    def end(self, txn: str, status: str):
        assert status in (COMMITTED, ABORTED, UNKNOWN), status
        with self._lock:
            assert txn in self.size and txn not in self.status, txn
            self.status[txn] = status

    def read(self, consumer: str, topic: str, partition: int, offset: int, value: bytes):
        with self._lock:
            self.reads[consumer].append(Read(topic, partition, offset, value))

    def complete(self, consumer: str):
        with self._lock:
            self.complete_consumers.add(consumer)

    def txns(self, status):
        return sorted(t for t, s in self.status.items() if s == status)


def check(h: History):
    """Every anomaly in the history (see the module docstring), as a list of Anomaly."""
    out = []
    # Transactions still without an outcome when the check runs are undecided.
    status = {t: h.status.get(t, UNKNOWN) for t in h.size}
    at_offset = {}  # (topic, partition, offset) -> (consumer, value)
    seen_by = {}    # consumer -> {txn: set(indexes)}
    for consumer, reads in sorted(h.reads.items()):
        last = {}
        seen = set()
        per_txn = defaultdict(set)
        for r in reads:
            where = (r.topic, r.partition, r.offset)
            if (r.topic, r.partition) in last and r.offset <= last[(r.topic, r.partition)]:
                out.append(Anomaly(NON_MONOTONIC, f"{consumer}: {r.topic}[{r.partition}] offset "
                                   f"{r.offset} after {last[(r.topic, r.partition)]}"))
            last[(r.topic, r.partition)] = r.offset
            if where in at_offset and at_offset[where][1] != r.value:
                other, v = at_offset[where]
                out.append(Anomaly(DIVERGENT, f"{r.topic}[{r.partition}]@{r.offset}: {other} read "
                                   f"{v!r}, {consumer} read {r.value!r}"))
            at_offset.setdefault(where, (consumer, r.value))
            dec = decode_value(r.value)
            if dec is None or dec[0] not in h.size or dec[2] != h.size[dec[0]] \
                    or not 0 <= dec[1] < dec[2]:
                out.append(Anomaly(UNKNOWN_RECORD, f"{consumer}: {r.value!r} at "
                                   f"{r.topic}[{r.partition}]@{r.offset}"))
                continue
            txn, index, _ = dec
            if status[txn] == ABORTED:
                out.append(Anomaly(ABORTED_READ, f"{consumer}: record {index} of aborted {txn} "
                                   f"at {r.topic}[{r.partition}]@{r.offset}"))
            if (txn, index) in seen:
                out.append(Anomaly(DUPLICATE, f"{consumer}: record {index} of {txn} read again "
                                   f"at {r.topic}[{r.partition}]@{r.offset}"))
            seen.add((txn, index))
            per_txn[txn].add(index)
        seen_by[consumer] = per_txn

    complete = sorted(h.complete_consumers)
    for consumer in complete:
        per_txn = seen_by.get(consumer, {})
        for txn, size in sorted(h.size.items()):
            got = per_txn.get(txn, set())
            if status[txn] == COMMITTED and len(got) < size:
                missing = sorted(set(range(size)) - got)
                out.append(Anomaly(LOST_COMMIT, f"{consumer}: committed {txn} missing records "
                                   f"{missing[:10]} of {size}"))
            elif status[txn] == UNKNOWN and 0 < len(got) < size:
                out.append(Anomaly(PARTIAL_TXN, f"{consumer}: saw {len(got)} of {size} records "
                                   f"of {txn}"))
    visible = {c: {t for t, got in seen_by.get(c, {}).items()
                   if status[t] == UNKNOWN and len(got) == h.size[t]} for c in complete}
    for a, b in zip(complete, complete[1:]):
        if visible[a] != visible[b]:
            diff = sorted(visible[a] ^ visible[b])
            out.append(Anomaly(DIVERGENT, f"{a} and {b} disagree on undecided transactions "
                               f"{diff[:10]}"))
    return out


def summary(anomalies, per_kind=5) -> str:
    by_kind = defaultdict(list)
    for a in anomalies:
        by_kind[a.kind].append(a.detail)
    lines = []
    for kind in KINDS:
        if by_kind[kind]:
            lines.append(f"{kind}: {len(by_kind[kind])}")
            lines += [f"    {d}" for d in by_kind[kind][:per_kind]]
    return "\n".join(lines)


def assert_clean(h: History):
    anomalies = check(h)
    assert not anomalies, "transactional history anomalies:\n" + summary(anomalies)


def stats(h: History) -> dict:
    return {"committed": len(h.txns(COMMITTED)), "aborted": len(h.txns(ABORTED)),
            "unknown": len(h.txns(UNKNOWN)),
            "reads": {c: len(r) for c, r in sorted(h.reads.items())}}
