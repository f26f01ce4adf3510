"""Kafka transactions through confluent-kafka (librdkafka) against the real binary.

What is defended (architecture promise 5: read_committed never sees aborted or pending data):
  - commit makes a transaction's records visible to read_committed, abort never does, and the
    aborted records are in the log (read_uncommitted sees them); across partitions and topics;
    one control record (marker) per partition ends each transaction;
  - an open transaction holds the last stable offset: ListOffsets (AdminClient.list_offsets,
    Consumer.get_watermark_offsets, Consumer.offsets_for_times) answers the high watermark
    to read_uncommitted and the last stable offset to read_committed, and a read_committed
    Fetch stops there, even before later non-transactional records;
  - consume-transform-produce with send_offsets_to_transaction stays exactly-once while the
    worker process (txn_worker.py) is kill -9'd ten times;
  - zombie fencing: a second producer with the same transactional.id fences the first, whose
    later operations fail with a fatal fencing error and whose writes never become visible;
  - a producer kill -9'd mid-transaction: the broker aborts the transaction after
    transaction.timeout.ms (or at once when the transactional.id is initialised again), the
    last stable offset moves on, and the transaction's records are never visible;
  - kill -9 of the broker during a loop of multi-partition transactions: each transaction is
    all there or not at all, every acknowledged commit is there;
  - a concurrent history (3 producers, random commit/abort, 2 read_committed consumers)
    checked by the oracle in txn_oracle.py, whose own self-tests (no broker) are here too;
  - transaction.timeout.ms above transaction.max.timeout.ms is refused with
    INVALID_TRANSACTION_TIMEOUT; OffsetFetch with require_stable waits for a pending
    transactional offset commit (librdkafka sets require_stable for read_committed).

Not covered: ListTransactions / DescribeTransactions (confluent-kafka 2.16.1's AdminClient has
no list_transactions / describe_transactions).

Broker flags assumed (Kafka's names): --transaction-max-timeout-ms
(`transaction.max.timeout.ms`, default 900000) and
--transaction-abort-timed-out-transaction-cleanup-interval-ms
(`transaction.abort.timed.out.transaction.cleanup.interval.ms`); each is passed only by the
tests that need it.
"""

import json
import random
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, IsolationLevel,
                             KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, OffsetSpec
from conftest import create_topic
from txn_oracle import (ABORTED, ABORTED_READ, COMMITTED, DIVERGENT, DUPLICATE, LOST_COMMIT,
                        NON_MONOTONIC, PARTIAL_TXN, UNKNOWN, UNKNOWN_RECORD, History,
                        assert_clean, check, decode_value, encode_value, stats)

RC, RU = "read_committed", "read_uncommitted"
GROUP_ARGS = ("--group-initial-rebalance-delay-ms", "0", "--group-min-session-timeout-ms", "1000")
CLEANUP_ARGS = ("--transaction-abort-timed-out-transaction-cleanup-interval-ms", "500")
WORKER = Path(__file__).with_name("txn_worker.py")
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


# --------------------------------------------------------------------------------------------
# Helpers


def admin(b) -> AdminClient:
    """One AdminClient per broker, kept alive with it (a collected client fails its futures)."""
    if getattr(b, "_txn_admin", None) is None:
        b._txn_admin = AdminClient({"bootstrap.servers": b.bootstrap})
    return b._txn_admin


def log_tail(b, n=40) -> str:
    return "\n".join(b.log().splitlines()[-n:])


def wait_for(cond, timeout, what, broker=None, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            extra = f"\nbroker log tail:\n{log_tail(broker)}" if broker is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


def txn_producer(bootstrap, txn_id, conf=None, init_timeout=30):
    """A transactional producer whose init_transactions() returned; a refusal fails the test
    with the broker's error."""
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 2,
                  **(conf or {})})
    try:
        p.init_transactions(init_timeout)
    except KafkaException as ex:
        err = ex.args[0]
        raise AssertionError(f"init_transactions() for transactional.id {txn_id!r} failed: "
                             f"{err.name()} ({err.code()}): {err.str()}") from None
    return p


def plain_producer(bootstrap):
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2})


def produce(p, topic, partition, key, value, timestamp=0, on_delivery=None):
    kw = {"partition": partition, "key": key, "timestamp": timestamp}
    if on_delivery is not None:
        kw["on_delivery"] = on_delivery
    deadline = time.monotonic() + 60
    while True:
        try:
            p.produce(topic, value, **kw)
            return
        except BufferError:
            assert time.monotonic() < deadline, "producer queue full for a minute"
            p.poll(0.01)


def produce_acked(p, records):
    """Produce [(topic, partition, key, value[, timestamp_ms])], flush, and require every
    record acknowledged; returns their (topic, partition, offset) in order."""
    at = [None] * len(records)
    errors = []

    def cb(i):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(err)
            else:
                at[i] = (msg.topic(), msg.partition(), msg.offset())
        return on_delivery

    for i, (topic, partition, key, value, *ts) in enumerate(records):
        produce(p, topic, partition, key, value, ts[0] if ts else 0, on_delivery=cb(i))
    left = p.flush(30)
    assert left == 0 and not errors, f"{left} records undelivered, errors {errors[:3]}"
    return at


def end_offsets(b, tps, isolation):
    """{(topic, partition): end offset} from ListOffsets(latest) at this isolation level: the
    high watermark for read_uncommitted, the last stable offset for read_committed."""
    level = IsolationLevel.READ_COMMITTED if isolation == RC else IsolationLevel.READ_UNCOMMITTED
    futs = admin(b).list_offsets({TopicPartition(t, p): OffsetSpec.latest() for t, p in tps},
                                 isolation_level=level, request_timeout=15)
    return {(tp.topic, tp.partition): f.result(timeout=20).offset for tp, f in futs.items()}


def consumer(bootstrap, isolation, **conf):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-e2e-unused",
                     "enable.auto.commit": False, "enable.partition.eof": True,
                     "isolation.level": isolation, "fetch.wait.max.ms": 100, **conf})


def read_all(b, tps, isolation, ends=None, timeout=60.0):
    """Every record of `tps` from offset 0 up to `ends` (default: this isolation level's end
    offsets now), by manual assignment; done when each partition reported EOF at or past its
    end (control records and, for read_committed, aborted records take offsets that are never
    delivered, so counting records cannot tell). Returns {(topic, partition): [(offset, key,
    value)]}."""
    if ends is None:
        ends = end_offsets(b, tps, isolation)
    c = consumer(b.bootstrap, isolation)
    c.assign([TopicPartition(t, p, 0) for t, p in tps])
    out = {tp: [] for tp in tps}
    eof = {tp: -1 for tp in tps}
    deadline = time.monotonic() + timeout
    try:
        while any(eof[tp] < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, (
                f"{isolation} read did not reach the end offsets {ends} in {timeout}s: EOF at "
                f"{eof}, {({tp: len(v) for tp, v in out.items()})} records read")
            for m in c.consume(10000, 0.2):
                tp = (m.topic(), m.partition())
                if m.error():
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    eof[tp] = max(eof[tp], m.offset())
                elif m.offset() < ends[tp]:
                    out[tp].append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return out


def values(read, tp):
    return [v for _, _, v in read[tp]]


def settle(b, tps, timeout=10.0):
    """Wait until no transaction is open on `tps` (last stable offset == high watermark) and
    return the end offsets. commit_transaction() may return before the markers are written
    (Kafka writes them after the coordinator logged the decision), so visibility can lag the
    call by a moment."""
    box = {}

    def cond():
        box["rc"], box["ru"] = end_offsets(b, tps, RC), end_offsets(b, tps, RU)
        return box["rc"] == box["ru"]

    try:
        wait_for(cond, timeout, "the last stable offsets to reach the high watermarks", b,
                 interval=0.1)
    except AssertionError as ex:
        raise AssertionError(f"{ex}\nLSO {box.get('rc')}\nHW  {box.get('ru')}") from None
    return box["ru"]


class PollingConsumer:
    """A consumer assigned `tps` from offset 0 (no group) that the test polls by hand; keeps
    what it received (time, (topic, partition), offset, value) and the latest EOF offset of
    each partition."""

    def __init__(self, bootstrap, isolation, tps):
        self.isolation = isolation
        self.c = consumer(bootstrap, isolation)
        self.c.assign([TopicPartition(t, p, 0) for t, p in tps])
        self.got = []
        self.eof = {}

    def poll(self, seconds):
        end = time.monotonic() + seconds
        while True:
            for m in self.c.consume(1000, 0.05):
                tp = (m.topic(), m.partition())
                if m.error():
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    self.eof[tp] = m.offset()
                else:
                    self.got.append((time.time(), tp, m.offset(), m.value()))
            if time.monotonic() >= end:
                return

    def poll_until(self, cond, timeout, what, broker=None):
        try:
            wait_for(lambda: self.poll(0.05) or cond(), timeout, what, broker, interval=0)
        except AssertionError as ex:
            raise AssertionError(f"{ex}\n{self.isolation} consumer: EOF at {self.eof}, "
                                 f"records {[(tp, o, v) for _, tp, o, v in self.got][:20]}") \
                from None

    def records(self, tp=None):
        return [(o, v) for _, tp_, o, v in self.got if tp is None or tp_ == tp]

    def close(self):
        self.c.close()


def is_fencing(err) -> bool:
    return err.fatal() and err.code() in FENCED_CODES


class Reader(threading.Thread):
    """A consumer (manual assignment of `tps` from offset 0, no group) in its own thread that
    reports every record to `history` as it arrives. finish(ends) returns once it has reported
    EOF at or past each end offset; then the history marks it complete."""

    def __init__(self, name, bootstrap, tps, history, producing, isolation=RC):
        super().__init__(daemon=True, name=name)
        self.reader_name, self.tps, self.history = name, list(tps), history
        self.producing = producing  # threading.Event, set while producers run
        self.c = consumer(bootstrap, isolation)
        self.eof = {tp: -1 for tp in self.tps}
        self.ends = None
        self.errors = []
        self.count = self.during = 0
        self.reached = threading.Event()
        self.stop_flag = threading.Event()

    def run(self):
        self.c.assign([TopicPartition(t, p, 0) for t, p in self.tps])
        try:
            while not self.stop_flag.is_set():
                for m in self.c.consume(1000, 0.1):
                    tp = (m.topic(), m.partition())
                    if m.error():
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            self.eof[tp] = max(self.eof[tp], m.offset())
                        else:
                            self.errors.append(m.error())
                        continue
                    self.history.read(self.reader_name, m.topic(), m.partition(), m.offset(),
                                      m.value())
                    self.count += 1
                    if self.producing.is_set():
                        self.during += 1
                ends = self.ends
                if ends is not None and all(self.eof[tp] >= ends[tp] for tp in self.tps):
                    self.reached.set()
                    return
        finally:
            self.c.close()

    def finish(self, ends, timeout=60):
        self.ends = ends
        if not self.reached.wait(timeout):
            self.stop_flag.set()
            self.join(10)
            raise AssertionError(f"{self.reader_name} did not reach {ends} in {timeout}s: EOF at "
                                 f"{self.eof}, {self.count} records read")
        self.join(10)
        assert not self.errors, f"{self.reader_name}: consumer errors {self.errors[:3]}"
        self.history.complete(self.reader_name)


class Worker:
    """One txn_worker.py process (see its docstring for modes and events)."""

    def __init__(self, tmp_path, name, **cfg):
        self.name = name
        self.events_path = tmp_path / f"{name}.events"
        self.log_path = tmp_path / f"{name}.log"
        self.cfg = dict(cfg, events=str(self.events_path))
        self.proc = None
        self.killed = False

    def start(self):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(self.cfg)],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=str(WORKER.parent))
        return self

    def events(self, kind=None):
        try:
            lines = self.events_path.read_text().split("\n")
        except FileNotFoundError:
            return []
        evs = [json.loads(line) for line in lines[:-1] if line]  # the last may be partial
        return evs if kind is None else [e for e in evs if e["e"] == kind]

    def describe(self) -> str:
        fatal = self.events("FATAL")
        log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        return f"{self.name}: FATAL events {fatal}\nlog tail:\n{log}"

    def wait_for(self, kind, timeout, broker=None):
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events(kind)
            if evs:
                return evs[0]
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before "
                                     f"reporting {kind!r}\n{self.describe()}")
            if time.monotonic() > deadline:
                extra = f"\nbroker log tail:\n{log_tail(broker)}" if broker is not None else ""
                raise AssertionError(f"{self.name} did not report {kind!r} in {timeout}s\n"
                                     f"{self.describe()}{extra}")
            time.sleep(0.02)

    def assert_running(self):
        assert self.proc.poll() is None, \
            f"{self.name} exited with {self.proc.returncode}\n{self.describe()}"

    def kill(self):
        """kill -9; returns the time of the kill."""
        self.assert_running()
        t = time.time()
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()
        self.killed = True
        return t

    def stop_if_running(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def workers():
    """Collects Workers so none outlives its test."""
    started = []
    yield started
    for w in started:
        w.stop_if_running()


def start_worker(registry, tmp_path, name, **cfg):
    w = Worker(tmp_path, name, **cfg)
    registry.append(w)
    return w.start()


# --------------------------------------------------------------------------------------------
# The oracle's self-tests (no broker): each property violated on purpose is caught, alone.


def _oracle_history():
    """T1 committed (2 records), T2 aborted (2), T3 undecided (2); one complete consumer c1
    that saw T1 and T3 entirely, at offsets 0.. of t[0] and t[1]."""
    h = History()
    for name, status in (("T1", COMMITTED), ("T2", ABORTED), ("T3", UNKNOWN)):
        h.begin(name, 2)
        h.end(name, status)
    h.read("c1", "t", 0, 0, encode_value("T1", 0, 2))
    h.read("c1", "t", 1, 0, encode_value("T1", 1, 2))
    h.read("c1", "t", 0, 3, encode_value("T3", 0, 2))
    h.read("c1", "t", 1, 3, encode_value("T3", 1, 2))
    h.complete("c1")
    return h


def _kinds(h):
    return {a.kind for a in check(h)}


def test_oracle_accepts_a_clean_history():
    h = _oracle_history()
    # A second consumer that has not finished: it only read part of the log, in order.
    h.read("c2", "t", 0, 0, encode_value("T1", 0, 2))
    assert check(h) == []


def test_oracle_catches_an_aborted_read():
    h = _oracle_history()
    h.read("c1", "t", 0, 4, encode_value("T2", 0, 2))
    assert _kinds(h) == {ABORTED_READ}


def test_oracle_catches_a_duplicate():
    h = _oracle_history()
    h.read("c1", "t", 0, 5, encode_value("T1", 0, 2))
    assert _kinds(h) == {DUPLICATE}


def test_oracle_catches_a_lost_commit():
    h = History()
    h.begin("T1", 2)
    h.end("T1", COMMITTED)
    h.read("c1", "t", 0, 0, encode_value("T1", 0, 2))
    h.complete("c1")
    assert _kinds(h) == {LOST_COMMIT}
    # The same reads by a consumer that did not reach the end are no anomaly.
    h2 = History()
    h2.begin("T1", 2)
    h2.end("T1", COMMITTED)
    h2.read("c1", "t", 0, 0, encode_value("T1", 0, 2))
    assert check(h2) == []


def test_oracle_catches_a_partial_transaction():
    h = History()
    h.begin("T3", 3)
    h.end("T3", UNKNOWN)
    h.read("c1", "t", 0, 0, encode_value("T3", 0, 3))
    h.read("c1", "t", 1, 0, encode_value("T3", 2, 3))
    h.complete("c1")
    assert _kinds(h) == {PARTIAL_TXN}


def test_oracle_catches_non_monotonic_offsets():
    h = _oracle_history()
    h.read("c2", "t", 1, 3, encode_value("T3", 1, 2))
    h.read("c2", "t", 1, 0, encode_value("T1", 1, 2))
    assert _kinds(h) == {NON_MONOTONIC}


def test_oracle_catches_an_unknown_record():
    h = _oracle_history()
    h.read("c1", "t", 0, 7, b"not written by any producer")
    assert _kinds(h) == {UNKNOWN_RECORD}


def test_oracle_catches_divergent_reads():
    h = _oracle_history()
    h.read("c2", "t", 0, 0, encode_value("T1", 1, 2))  # c1 read T1/0 at t[0]@0
    assert _kinds(h) == {DIVERGENT}
    # Two complete consumers that disagree on an undecided transaction.
    h2 = _oracle_history()
    h2.read("c2", "t", 0, 0, encode_value("T1", 0, 2))
    h2.read("c2", "t", 1, 0, encode_value("T1", 1, 2))
    h2.complete("c2")
    assert _kinds(h2) == {DIVERGENT}


# --------------------------------------------------------------------------------------------
# 1. Visibility: commit, abort, multi-partition and multi-topic; the last stable offset


@pytest.mark.timeout(60)
def test_commit_is_visible_to_read_committed_and_abort_is_not(broker):
    """Three transactions over 3 + 2 partitions of two topics, 10 records per partition each:
    commit, abort (after every record was acknowledged, so it is in the log), commit."""
    a, b_ = "txn-vis-a", "txn-vis-b"
    create_topic(broker.bootstrap, a, 3)
    create_topic(broker.bootstrap, b_, 2)
    tps = [(a, 0), (a, 1), (a, 2), (b_, 0), (b_, 1)]
    per = 10

    def records(tag):
        return [(t, p, f"{tag}-{t}-{p}-{i}".encode(), f"{tag}|{t}|{p}|{i}".encode())
                for t, p in tps for i in range(per)]

    p = txn_producer(broker.bootstrap, "vis")
    sent = {}
    for tag, commit in (("c1", True), ("a2", False), ("c3", True)):
        p.begin_transaction()
        sent[tag] = records(tag)
        produce_acked(p, sent[tag])
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)

    def expected(tags, tp):
        return [(k, v) for tag in tags for t, part, k, v in sent[tag] if (t, part) == tp]

    ends = settle(broker, tps)
    rc = read_all(broker, tps, RC)
    ru = read_all(broker, tps, RU)
    for tp in tps:
        got_rc = [(k, v) for _, k, v in rc[tp]]
        got_ru = [(k, v) for _, k, v in ru[tp]]
        assert got_ru == expected(("c1", "a2", "c3"), tp), \
            f"{tp}: read_uncommitted must see all three transactions, the aborted one too"
        assert got_rc == expected(("c1", "c3"), tp), \
            f"{tp}: read_committed must see the committed transactions only, in order"
    # Each transaction ends with one control record per partition: the data of the three
    # transactions sits at 0-9, 11-20, 22-31 and the markers at 10, 21, 32.
    for tp in tps:
        assert [o for o, _, _ in ru[tp]] == [*range(0, 10), *range(11, 21), *range(22, 32)], tp
        assert [o for o, _, _ in rc[tp]] == [*range(0, 10), *range(22, 32)], tp
        assert ends[tp] == 33, (tp, ends[tp])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("outcome", ["commit", "abort"])
def test_open_transaction_holds_the_last_stable_offset(broker, outcome):
    """p0: 5 plain records (0-4), 7 transactional (5-11), 2 plain written while the transaction
    is open (12-13); p1: 3 transactional (0-2). While it is open the last stable offset is 5
    on p0 and 0 on p1, whatever comes after; then the transaction ends and it moves to the end.
    About 5 s."""
    topic = f"txn-lso-{outcome}"
    create_topic(broker.bootstrap, topic, 2)
    p0, p1 = (topic, 0), (topic, 1)
    tps = [p0, p1]
    base_ts = int(time.time() * 1000) - 60_000
    plain = plain_producer(broker.bootstrap)
    produce_acked(plain, [(topic, 0, None, f"plain-{i}".encode(), base_ts + i) for i in range(5)])

    txp = txn_producer(broker.bootstrap, f"lso-{outcome}")
    txp.begin_transaction()
    txn_at = produce_acked(txp, [(topic, 0, None, f"txn-{i}".encode(), base_ts + 100 + i)
                                 for i in range(7)]
                           + [(topic, 1, None, f"txn-p1-{i}".encode(), base_ts + 100 + i)
                              for i in range(3)])
    assert [o for _, _, o in txn_at] == [*range(5, 12), 0, 1, 2], txn_at
    later_at = produce_acked(plain, [(topic, 0, None, f"later-{i}".encode(), base_ts + 200 + i)
                                     for i in range(2)])
    assert [o for _, _, o in later_at] == [12, 13], later_at

    # ListOffsets through the AdminClient: high watermark vs last stable offset.
    assert end_offsets(broker, tps, RU) == {p0: 14, p1: 3}
    assert end_offsets(broker, tps, RC) == {p0: 5, p1: 0}, \
        "read_committed ListOffsets must answer the last stable offset while a txn is open"
    # The consumers' own ListOffsets requests carry their isolation level.
    c_ru = consumer(broker.bootstrap, RU)
    rc = PollingConsumer(broker.bootstrap, RC, tps)
    try:
        for c, name, want in ((c_ru, RU, {0: 14, 1: 3}), (rc.c, RC, {0: 5, 1: 0})):
            for part, end in want.items():
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10,
                                                 cached=False)
                assert (lo, hi) == (0, end), f"{name} get_watermark_offsets p{part}: {lo, hi}"
        # By timestamp: the first transactional record's time finds offset 5, which only
        # read_uncommitted may be told about; read_committed finds nothing below the LSO.
        ts_txn = TopicPartition(topic, 0, base_ts + 100)
        assert c_ru.offsets_for_times([ts_txn], timeout=10)[0].offset == 5
        assert rc.c.offsets_for_times([ts_txn], timeout=10)[0].offset == -1, \
            "offsets_for_times(read_committed) returned an offset at or past the LSO"
        assert rc.c.offsets_for_times([TopicPartition(topic, 0, base_ts)], timeout=10)[0] \
            .offset == 0

        # Fetch: read_committed stops at the LSO (EOF at 5 and 0), read_uncommitted sees all.
        rc.poll_until(lambda: rc.eof == {p0: 5, p1: 0}, 10, "EOF at the LSO (5, 0)", broker)
        rc.poll(1.0)
        assert rc.records() == [(i, f"plain-{i}".encode()) for i in range(5)], \
            "read_committed delivered records at or past the last stable offset"
        assert rc.eof == {p0: 5, p1: 0}
        ru = read_all(broker, tps, RU)
        assert len(ru[p0]) == 14 and len(ru[p1]) == 3

        if outcome == "commit":
            txp.commit_transaction(30)
        else:
            txp.abort_transaction(30)
        # One marker each: p0 ends at 15, p1 at 4, and nothing is pending any more.
        assert settle(broker, tps) == {p0: 15, p1: 4}
        for c in (rc.c, c_ru):
            assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10,
                                           cached=False)[1] == 15
        rc.poll_until(lambda: rc.eof == {p0: 15, p1: 4}, 15, "EOF at the new ends (15, 4)",
                      broker)
        committed = outcome == "commit"
        assert rc.records(p0) == ([(i, f"plain-{i}".encode()) for i in range(5)]
                                  + ([(5 + i, f"txn-{i}".encode()) for i in range(7)]
                                     if committed else [])
                                  + [(12, b"later-0"), (13, b"later-1")]), \
            f"read_committed p0 after {outcome}"
        assert rc.records(p1) == ([(i, f"txn-p1-{i}".encode()) for i in range(3)]
                                  if committed else []), f"read_committed p1 after {outcome}"
        rc_ts = rc.c.offsets_for_times([ts_txn], timeout=10)[0].offset
        ru_ts = c_ru.offsets_for_times([ts_txn], timeout=10)[0].offset
        assert rc_ts == ru_ts and rc_ts in (5, 12), (rc_ts, ru_ts)
    finally:
        rc.close()
        c_ru.close()


# --------------------------------------------------------------------------------------------
# 2. Consume-transform-produce, the worker kill -9'd ten times


@pytest.mark.timeout(360)
def test_consume_transform_produce_is_exactly_once_through_ten_worker_kills(
        make_broker, tmp_path, workers):
    """100,000 input records over 4 partitions; txn_worker.py (ctp mode) turns each into
    value + b"-out" under the same key and partition, 500 records per transaction with the
    consumed offsets sent to it. Killed with -9 at a random moment 0.5-3 s after it starts
    producing, ten times; the restarted worker's init_transactions fences and aborts the open
    transaction of the one before. The worker is paced (about 3,000 records/s) so that every
    kill lands in the middle of the work. About 90 s."""
    b = make_broker(*GROUP_ARGS)
    src, dst, group, P, N = "ctp-in", "ctp-out", "ctp-group", 4, 100_000
    create_topic(b.bootstrap, src, P)
    create_topic(b.bootstrap, dst, P)
    src_tps = [(src, p) for p in range(P)]
    dst_tps = [(dst, p) for p in range(P)]

    inp = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 20,
                    "enable.idempotence": True, "batch.num.messages": 10000})
    for i in range(N):
        produce(inp, src, i % P, b"k%06d" % i, b"v%06d" % i)
        if i % 10000 == 0:
            inp.poll(0)
    assert inp.flush(120) == 0
    ends = end_offsets(b, src_tps, RU)
    assert ends == {tp: N // P for tp in src_tps}, ends

    cfg = dict(mode="ctp", bootstrap=b.bootstrap, txn_id="ctp-worker", txn_timeout_ms=10000,
               group=group, input=src, output=dst, records_per_txn=500, chunk=50, pause_ms=15,
               session_timeout_ms=3000)
    rng = random.Random(20)
    incarnations = []
    for i in range(10):
        w = start_worker(workers, tmp_path, f"ctp-{i}", **cfg)
        incarnations.append(w)
        w.wait_for("P", 60, b)
        time.sleep(rng.uniform(0.5, 3.0))
        w.kill()
    final = start_worker(workers, tmp_path, "ctp-final", **cfg)
    incarnations.append(final)

    def group_offsets(require_stable=False):
        req = ConsumerGroupTopicPartitions(group, [TopicPartition(src, p) for p in range(P)])
        res = admin(b).list_consumer_group_offsets([req], require_stable=require_stable,
                                                   request_timeout=10)[group].result(timeout=15)
        return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}

    def done():
        final.assert_running()
        return group_offsets() == ends

    wait_for(done, 150, f"the group's committed offsets to reach {ends}", b, interval=0.5)
    final.kill()

    per_incarnation = [sum(e["n"] for e in w.events("C")) for w in incarnations]
    print(f"records committed per incarnation (as reported): {per_incarnation}")
    assert per_incarnation[-1] > 0, "the work was done before the last kill: kills not mid-work"
    assert sum(1 for n in per_incarnation[:-1] if n > 0) >= 5, \
        "too few killed incarnations committed anything: restarts did not resume progress"

    assert group_offsets() == ends
    assert group_offsets(require_stable=True) == ends
    settle(b, dst_tps, timeout=30)
    out_rc = read_all(b, dst_tps, RC, timeout=120)
    out_ru = read_all(b, dst_tps, RU, timeout=120)
    total = sum(len(v) for v in out_rc.values())
    keys = Counter(k for v in out_rc.values() for _, k, _ in v)
    dups = [k for k, n in keys.items() if n > 1]
    missing = [b"k%06d" % i for i in range(N) if b"k%06d" % i not in keys]
    print(f"output: {total} read_committed, {sum(len(v) for v in out_ru.values())} "
          f"read_uncommitted; {len(dups)} keys duplicated, {len(missing)} missing")
    assert not dups and not missing and total == N, \
        f"{len(dups)} duplicated (e.g. {dups[:3]}), {len(missing)} missing (e.g. {missing[:3]})"
    for p in range(P):
        want = [(b"k%06d" % i, b"v%06d-out" % i) for i in range(p, N, P)]
        assert [(k, v) for _, k, v in out_rc[(dst, p)]] == want, \
            f"output partition {p} is not its input partition transformed, in order"
    aborted = sum(len(v) for v in out_ru.values()) - N
    assert aborted > 0, "no killed transaction left records in the log: the kills tested nothing"


# --------------------------------------------------------------------------------------------
# 3. Zombie fencing


@pytest.mark.timeout(90)
@pytest.mark.parametrize("zombie", ["open", "idle"])
def test_second_producer_with_the_same_transactional_id_fences_the_first(broker, zombie):
    """`open`: the first producer has an open transaction (its records acknowledged) when the
    second initialises; `idle`: it committed one and has none open. Either way its next
    transaction fails with a fatal fencing error and none of its later writes is visible."""
    topic = f"txn-zombie-{zombie}"
    create_topic(broker.bootstrap, topic, 2)
    tps = [(topic, 0), (topic, 1)]
    tid = f"zombie-{zombie}"
    conf = {"transaction.timeout.ms": 10000}

    def recs(tag, n=5):
        return [(topic, p, None, f"{tag}-{p}-{i}".encode()) for p in (0, 1) for i in range(n)]

    old = txn_producer(broker.bootstrap, tid, conf)
    old.begin_transaction()
    first = recs("first")
    produce_acked(old, first)
    if zombie == "idle":
        old.commit_transaction(30)

    new = txn_producer(broker.bootstrap, tid, conf)  # fences old, aborts its open transaction
    new.begin_transaction()
    second = recs("second")
    produce_acked(new, second)
    new.commit_transaction(30)

    if zombie == "idle":
        old.begin_transaction()
    late = recs("zombie")
    errors = []  # produce() may refuse at once if the fencing error has already arrived
    for topic_, p, k, v in late:
        try:
            produce(old, topic_, p, k, v, on_delivery=lambda err, _m: err is not None
                    and errors.append(err))
        except KafkaException as ex:
            errors.append(ex.args[0])
    raised = None
    try:
        old.commit_transaction(20)
    except KafkaException as ex:
        raised = ex.args[0]
    print(f"fenced producer: commit_transaction raised {raised}; other errors {errors[:3]}")
    assert raised is not None, "the fenced producer's commit_transaction() succeeded"
    assert is_fencing(raised), \
        f"expected a fatal fencing error (_FENCED / PRODUCER_FENCED / INVALID_PRODUCER_EPOCH), " \
        f"got {raised} (fatal={raised.fatal()})"
    with pytest.raises(KafkaException):  # a fenced producer can do nothing more
        old.begin_transaction()

    settle(broker, tps)
    rc = read_all(broker, tps, RC)
    ru = read_all(broker, tps, RU)
    late_values = {v for *_, v in late}
    for tp in tps:
        want = [v for t, p, _, v in (first if zombie == "idle" else []) + second if (t, p) == tp]
        assert values(rc, tp) == want, f"{tp}: read_committed"
        assert not late_values & set(values(ru, tp)), \
            f"{tp}: the fenced producer's later records were written to the log"
        if zombie == "open":
            assert [v for t, p, _, v in first if (t, p) == tp] == values(ru, tp)[:5], \
                f"{tp}: the aborted records of the fenced producer should be in the log"


# --------------------------------------------------------------------------------------------
# 4. A producer killed mid-transaction


def _killed_txn_values(read, tps):
    return [v for tp in tps for v in values(read, tp)
            if (decode_value(v) or ("",))[0] == "killed"]


@pytest.mark.timeout(90)
def test_killed_producers_transaction_is_aborted_after_its_timeout(make_broker, tmp_path,
                                                                   workers):
    """transaction.timeout.ms=6000, cleanup every 500 ms: the transaction of a producer
    kill -9'd after its records were acknowledged blocks read_committed at offset 0 until the
    broker aborts it 6-6.5 s after it began; then plain records written behind it, and later
    transactions (another transactional.id, and the same one restarted), become visible. The
    timeout leaves a loaded machine 5.5 s to look at the LSO before it. About 13 s."""
    b = make_broker(*CLEANUP_ARGS)
    topic = "txn-killed-timeout"
    create_topic(b.bootstrap, topic, 2)
    tps = [(topic, 0), (topic, 1)]
    rc = PollingConsumer(b.bootstrap, RC, tps)  # connected before the clock starts
    try:
        rc.poll_until(lambda: rc.eof == {tp: 0 for tp in tps}, 10, "EOF on the empty topic", b)
        w = start_worker(workers, tmp_path, "open-timeout", mode="open", bootstrap=b.bootstrap,
                         txn_id="killed-timeout", txn_timeout_ms=6000, topic=topic,
                         partitions=[0, 1], per_partition=10, txn_name="killed")
        begun = w.wait_for("B", 60, b)["t"]
        w.wait_for("F", 30, b)
        w.kill()

        plain = plain_producer(b.bootstrap)
        after = [(topic, p, None, f"after-{p}-{i}".encode()) for p in (0, 1) for i in range(5)]
        produce_acked(plain, after)
        ru_ends = end_offsets(b, tps, RU)
        rc_ends = end_offsets(b, tps, RC)
        assert time.time() - begun < 5.5, "too slow to look at the LSO before the timeout"
        assert ru_ends == {tp: 15 for tp in tps}, ru_ends
        assert rc_ends == {tp: 0 for tp in tps}, \
            f"the killed producer's open transaction must hold the LSO at 0: {rc_ends}"
        rc.poll(max(0.0, begun + 5.0 - time.time()))
        assert rc.got == [], "read_committed saw records behind an open transaction"

        rc.poll_until(lambda: len(rc.got) >= len(after), 20,
                      "the broker to abort the timed-out transaction", b)
        visible_after = rc.got[0][0] - begun
        print(f"records behind the killed transaction visible {visible_after:.2f}s after it "
              f"began")
        assert visible_after >= 5.5, "the broker aborted the transaction before its timeout"
        assert visible_after <= 6.0 + 0.5 + 5.0, "the timed-out transaction was aborted late"
        assert settle(b, tps) == {tp: 16 for tp in tps}

        other = txn_producer(b.bootstrap, "after-timeout")
        other.begin_transaction()
        more = [(topic, p, None, f"other-{p}-{i}".encode()) for p in (0, 1) for i in range(3)]
        produce_acked(other, more)
        other.commit_transaction(30)
        again = txn_producer(b.bootstrap, "killed-timeout", {"transaction.timeout.ms": 3000})
        again.begin_transaction()
        last = [(topic, p, None, f"again-{p}-{i}".encode()) for p in (0, 1) for i in range(2)]
        produce_acked(again, last)
        again.commit_transaction(30)
        rc.poll_until(lambda: len(rc.got) >= len(after + more + last), 15,
                      "the later transactions to become visible", b)
        rc.poll(0.5)
        for tp in tps:
            assert [v for _, v in rc.records(tp)] == \
                [v for t, p, _, v in after + more + last if (t, p) == tp], tp
    finally:
        rc.close()

    settle(b, tps)
    ru = read_all(b, tps, RU)
    assert len(_killed_txn_values(ru, tps)) == 20, "the killed transaction's records are missing"
    assert _killed_txn_values(read_all(b, tps, RC), tps) == []


@pytest.mark.timeout(90)
def test_reinitialising_the_transactional_id_aborts_a_killed_producers_transaction_at_once(
        broker, tmp_path, workers):
    """transaction.timeout.ms=60000, so only the new incarnation's init_transactions can end
    the killed one's transaction: it does so before it returns, and the LSO moves on. About
    5 s."""
    topic = "txn-killed-reinit"
    create_topic(broker.bootstrap, topic, 2)
    tps = [(topic, 0), (topic, 1)]
    w = start_worker(workers, tmp_path, "open-reinit", mode="open", bootstrap=broker.bootstrap,
                     txn_id="killed-reinit", txn_timeout_ms=60000, topic=topic,
                     partitions=[0, 1], per_partition=10, txn_name="killed")
    w.wait_for("F", 60, broker)
    w.kill()
    plain = plain_producer(broker.bootstrap)
    after = [(topic, p, None, f"after-{p}-{i}".encode()) for p in (0, 1) for i in range(5)]
    produce_acked(plain, after)
    rc = PollingConsumer(broker.bootstrap, RC, tps)
    try:
        rc.poll_until(lambda: rc.eof == {tp: 0 for tp in tps}, 10, "EOF at the LSO 0", broker)
        rc.poll(1.0)
        assert rc.got == [], "read_committed saw records behind an open transaction"
        assert end_offsets(broker, tps, RC) == {tp: 0 for tp in tps}, \
            "the killed producer's transaction ended long before its 60 s timeout"

        t0 = time.monotonic()
        again = txn_producer(broker.bootstrap, "killed-reinit", {"transaction.timeout.ms": 60000})
        init_s = time.monotonic() - t0
        print(f"init_transactions over the killed producer's open transaction: {init_s:.2f}s")
        assert init_s < 15
        assert settle(broker, tps, timeout=5) == {tp: 16 for tp in tps}, \
            "re-initialising the transactional.id did not abort the open transaction"
        rc.poll_until(lambda: len(rc.got) >= len(after), 10,
                      "the records behind the aborted transaction", broker)
        again.begin_transaction()
        last = [(topic, p, None, f"again-{p}-{i}".encode()) for p in (0, 1) for i in range(2)]
        produce_acked(again, last)
        again.commit_transaction(30)
        rc.poll_until(lambda: len(rc.got) >= len(after + last), 10,
                      "the new incarnation's transaction", broker)
        rc.poll(0.5)
        for tp in tps:
            assert [v for _, v in rc.records(tp)] == \
                [v for t, p, _, v in after + last if (t, p) == tp], tp
    finally:
        rc.close()

    settle(broker, tps)
    assert len(_killed_txn_values(read_all(broker, tps, RU), tps)) == 20
    assert _killed_txn_values(read_all(broker, tps, RC), tps) == []


# --------------------------------------------------------------------------------------------
# 5. kill -9 of the broker during transactions


class TxnLoop(threading.Thread):
    """Runs transactions back to back, each over 2-4 random partitions (3 records each), and
    records each one's outcome in `history` as far as the client can tell. A fatal error, or a
    transaction that cannot be ended within a minute, makes it start a new producer with the
    same transactional.id (whose init_transactions aborts whatever the old one left open)."""

    def __init__(self, bootstrap, txn_id, tps, history, seed, per_partition=3):
        super().__init__(daemon=True, name=txn_id)
        self.bootstrap, self.txn_id, self.tps, self.history = bootstrap, txn_id, tps, history
        self.rng = random.Random(seed)
        self.per = per_partition
        self.stop_flag = threading.Event()
        self.committed = 0
        self.outcomes = Counter()
        self.recreated = 0
        self.failure = None
        self.p = None
        self.phase = "init"  # what the loop is doing: init, produce, commit, abort, between

    def new_producer(self):
        """init_transactions() is retried while the broker is away (retriable errors); any
        other error fails the test."""
        deadline = time.monotonic() + 120
        p = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": self.txn_id,
                      "transaction.timeout.ms": 10000, "linger.ms": 2,
                      "reconnect.backoff.max.ms": 200, "retry.backoff.ms": 50})
        while True:
            try:
                p.init_transactions(10)
                self.p = p
                return
            except KafkaException as ex:
                err = ex.args[0]
                if err.fatal() or not err.retriable() or time.monotonic() > deadline:
                    raise AssertionError(f"{self.txn_id}: init_transactions() failed: "
                                         f"{err.name()} ({err.code()}): {err.str()}") from None
                time.sleep(0.2)

    def recreate(self):
        self.recreated += 1
        self.phase = "init"
        self.new_producer()
        return UNKNOWN

    def abort(self):
        self.phase = "abort"
        deadline = time.monotonic() + 60
        while True:
            try:
                self.p.abort_transaction(10)
                return ABORTED
            except KafkaException as ex:
                err = ex.args[0]
            if err.fatal() or not err.retriable() or time.monotonic() > deadline:
                return self.recreate()

    def commit(self):
        self.phase = "commit"
        deadline = time.monotonic() + 60
        while True:
            try:
                self.p.commit_transaction(10)
                return COMMITTED
            except KafkaException as ex:
                err = ex.args[0]
            if err.txn_requires_abort() and not err.fatal():
                return self.abort()
            if err.fatal() or not err.retriable() or time.monotonic() > deadline:
                return self.recreate()

    def one(self, n):
        parts = self.rng.sample(self.tps, self.rng.randint(2, len(self.tps)))
        name = f"{self.txn_id}-{n}"
        size = len(parts) * self.per
        self.history.begin(name, size)
        try:
            self.phase = "produce"
            self.p.begin_transaction()
            index = 0
            for topic, partition in parts:
                for _ in range(self.per):
                    produce(self.p, topic, partition, None, encode_value(name, index, size))
                    index += 1
            status = self.commit()
        except KafkaException as ex:
            err = ex.args[0]
            status = self.abort() if err.txn_requires_abort() and not err.fatal() \
                else self.recreate()
        self.phase = "between"
        self.history.end(name, status)
        self.outcomes[status] += 1
        if status == COMMITTED:
            self.committed += 1

    def run(self):
        try:
            self.new_producer()
            n = 0
            while not self.stop_flag.is_set():
                self.one(n)
                n += 1
        except Exception:  # noqa: BLE001 - reported by finish()
            self.failure = traceback.format_exc()

    def finish(self, timeout=180):
        self.stop_flag.set()
        self.join(timeout)
        assert not self.is_alive(), f"{self.txn_id} did not stop"
        assert self.failure is None, self.failure


@pytest.mark.timeout(300)
def test_broker_kill_9_during_transactions_leaves_each_transaction_whole(broker):
    """A producer runs transactions over 2-4 of 5 partitions (two topics) back to back; the
    broker is kill -9'd and restarted 3 times. At the end, with read_committed, every
    transaction is entirely present or entirely absent, every one whose commit_transaction()
    returned is present, and every one whose abort_transaction() returned is absent. About
    30-60 s."""
    a, b_ = "txn-crash-a", "txn-crash-b"
    create_topic(broker.bootstrap, a, 3)
    create_topic(broker.bootstrap, b_, 2)
    tps = [(a, 0), (a, 1), (a, 2), (b_, 0), (b_, 1)]
    history = History()
    loop = TxnLoop(broker.bootstrap, "crash-loop", tps, history, seed=5)
    loop.start()
    rng = random.Random(6)
    killed_during = []
    try:
        wait_for(lambda: loop.failure or loop.committed >= 5, 60, "the first commits", broker)
        assert loop.failure is None, loop.failure
        for cycle in range(3):
            time.sleep(rng.uniform(0.3, 1.5))
            killed_during.append(loop.phase)
            broker.kill()
            time.sleep(rng.uniform(0.0, 0.5))
            broker.start()
            n = loop.committed
            wait_for(lambda: loop.failure or loop.committed >= n + 5, 120,
                     f"commits after restart {cycle + 1}", broker)
            assert loop.failure is None, loop.failure
            print(f"cycle {cycle}: {loop.committed} committed, outcomes {dict(loop.outcomes)}, "
                  f"producer recreated {loop.recreated} times")
    finally:
        loop.finish()

    settle(broker, tps, timeout=60)
    final = read_all(broker, tps, RC, timeout=120)
    for (topic, partition), msgs in final.items():
        for offset, _, value in msgs:
            history.read("final", topic, partition, offset, value)
    history.complete("final")
    print(f"broker kill -9 x3 (during {killed_during}): {stats(history)}")
    assert len(history.txns(COMMITTED)) >= 20
    assert set(killed_during) & {"produce", "commit"}, \
        f"no kill landed inside a transaction: {killed_during}"
    assert_clean(history)


# --------------------------------------------------------------------------------------------
# 6. Concurrent producers and readers, checked by the oracle


class RandomTxns(threading.Thread):
    """`count` transactions over 1-3 random partitions, 1-4 records each, with short pauses
    inside so that transactions of different producers interleave; 30% are aborted, half of
    those after every record was acknowledged (so the aborted data is in the log)."""

    def __init__(self, bootstrap, txn_id, tps, history, seed, count):
        super().__init__(daemon=True, name=txn_id)
        self.bootstrap, self.txn_id, self.tps, self.history = bootstrap, txn_id, tps, history
        self.rng = random.Random(seed)
        self.count = count
        self.flushed_aborts = []
        self.failure = None

    def run(self):
        try:
            p = txn_producer(self.bootstrap, self.txn_id)
            for n in range(self.count):
                name = f"{self.txn_id}-{n}"
                parts = self.rng.sample(self.tps, self.rng.randint(1, 3))
                per = [self.rng.randint(1, 4) for _ in parts]
                size = sum(per)
                self.history.begin(name, size)
                p.begin_transaction()
                index = 0
                for (topic, partition), k in zip(parts, per):
                    for _ in range(k):
                        produce(p, topic, partition, None, encode_value(name, index, size))
                        index += 1
                    p.poll(0)
                    time.sleep(self.rng.uniform(0, 0.01))
                if self.rng.random() < 0.3:
                    if self.rng.random() < 0.5:
                        assert p.flush(30) == 0
                        self.flushed_aborts.append(name)
                    p.abort_transaction(30)
                    self.history.end(name, ABORTED)
                else:
                    p.commit_transaction(30)
                    self.history.end(name, COMMITTED)
        except Exception:  # noqa: BLE001 - reported by the test
            self.failure = traceback.format_exc()


@pytest.mark.timeout(240)
def test_concurrent_transactions_give_a_clean_read_committed_history(broker):
    """3 transactional producers x 60 transactions over 5 partitions of two topics, random
    commit/abort, while 2 read_committed consumers read from offset 0; the oracle checks the
    history for aborted reads, duplicates, lost commits, partial transactions and offsets
    going backwards. About 15 s."""
    a, b_ = "txn-hist-a", "txn-hist-b"
    create_topic(broker.bootstrap, a, 3)
    create_topic(broker.bootstrap, b_, 2)
    tps = [(a, 0), (a, 1), (a, 2), (b_, 0), (b_, 1)]
    history = History()
    producing = threading.Event()
    producing.set()
    readers = [Reader(f"reader-{i}", broker.bootstrap, tps, history, producing) for i in range(2)]
    producers = [RandomTxns(broker.bootstrap, f"hist-{i}", tps, history, seed=100 + i, count=60)
                 for i in range(3)]
    try:
        for r in readers:
            r.start()
        for p in producers:
            p.start()
        for p in producers:
            p.join(180)
            assert not p.is_alive(), f"{p.txn_id} did not finish"
            assert p.failure is None, f"{p.txn_id}:\n{p.failure}"
        producing.clear()
        ends = settle(broker, tps)
        for r in readers:
            r.finish(ends)
    finally:
        producing.clear()
        for r in readers:
            r.stop_flag.set()
        for r in readers + producers:
            if r.ident is not None:
                r.join(10)
    print(f"concurrent: {stats(history)}, reads while producing "
          f"{[r.during for r in readers]}")
    assert_clean(history)

    # Not vacuous: both outcomes happened, aborted data was in the log, and the readers read
    # while transactions were open.
    assert len(history.txns(COMMITTED)) >= 50 and len(history.txns(ABORTED)) >= 20
    flushed = {n for p in producers for n in p.flushed_aborts}
    ru = read_all(broker, tps, RU)
    in_log = {decode_value(v)[0] for tp in tps for v in values(ru, tp)}
    assert flushed and flushed <= in_log, "aborted records acknowledged but not in the log"
    assert all(r.during > 0 for r in readers), "a reader read nothing while producers ran"


# --------------------------------------------------------------------------------------------
# Configuration and offsets


def _init_error(bootstrap, txn_id, timeout_ms):
    """None if init_transactions() succeeds with this transaction.timeout.ms, else the error."""
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                  "transaction.timeout.ms": timeout_ms})
    try:
        p.init_transactions(30)
        return None
    except KafkaException as ex:
        return ex.args[0]


@pytest.mark.timeout(60)
def test_transaction_timeout_above_the_broker_maximum_is_refused(broker):
    """Kafka's default transaction.max.timeout.ms is 900000 (15 min)."""
    err = _init_error(broker.bootstrap, "timeout-max", 900_000)
    assert err is None, f"transaction.timeout.ms=900000 (the default maximum) refused: {err}"
    err = _init_error(broker.bootstrap, "timeout-over", 900_001)
    assert err is not None, "transaction.timeout.ms=900001 accepted"
    assert err.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, err


@pytest.mark.timeout(60)
def test_transaction_max_timeout_flag_sets_the_maximum(make_broker):
    b = make_broker("--transaction-max-timeout-ms", "5000")
    err = _init_error(b.bootstrap, "flag-max", 5000)
    assert err is None, f"transaction.timeout.ms=5000 refused with the maximum at 5000: {err}"
    err = _init_error(b.bootstrap, "flag-over", 5001)
    assert err is not None and err.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, err


@pytest.mark.timeout(90)
@pytest.mark.parametrize("outcome", ["commit", "abort"])
def test_offset_fetch_require_stable_waits_for_a_pending_transactional_offset_commit(
        broker, outcome):
    """The group has committed offset 3; a transaction sends offset 7 for it and stays open.
    Meanwhile OffsetFetch without require_stable answers 3, and with require_stable answers
    no offset at all but UNSTABLE_OFFSET_COMMIT: a read_committed consumer's committed()
    (librdkafka sets require_stable for read_committed and retries that error until its
    timeout) and the AdminClient's require_stable (which returns the error). After the
    transaction ends, both answer 7 (commit) or 3 (abort). About 4 s."""
    topic, group = f"txn-stable-{outcome}", f"stable-{outcome}"
    create_topic(broker.bootstrap, topic, 1)
    produce_acked(plain_producer(broker.bootstrap),
                  [(topic, 0, None, f"r{i}".encode()) for i in range(10)])
    committer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                          "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)

    def fetch(isolation, timeout=10):
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                      "enable.auto.commit": False, "isolation.level": isolation})
        try:
            return c.committed([TopicPartition(topic, 0)], timeout=timeout)[0].offset
        except KafkaException as ex:
            return ex.args[0]
        finally:
            c.close()

    def admin_fetch(require_stable):
        req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
        try:
            res = admin(broker).list_consumer_group_offsets(
                [req], require_stable=require_stable, request_timeout=5)[group].result(15)
        except KafkaException as ex:
            return ex.args[0]
        part = res.topic_partitions[0]
        return part.error if part.error is not None else part.offset

    assert fetch(RC) == fetch(RU) == 3
    p = txn_producer(broker.bootstrap, f"stable-{outcome}")
    p.begin_transaction()
    p.send_offsets_to_transaction([TopicPartition(topic, 0, 7)],
                                  committer.consumer_group_metadata(), 30)
    assert fetch(RU) == 3, "without require_stable the last stable commit (3) is the answer"
    assert admin_fetch(False) == 3
    stable = fetch(RC, timeout=3)
    print(f"pending: read_committed committed() -> {stable}")
    assert isinstance(stable, KafkaError), \
        f"read_committed committed() returned {stable} while a transactional commit is pending"
    assert stable.code() in (KafkaError._TIMED_OUT, KafkaError.UNSTABLE_OFFSET_COMMIT), stable
    stable = admin_fetch(True)
    print(f"pending: AdminClient require_stable -> {stable}")
    # The AdminClient hands the partition's error back instead of retrying.
    assert isinstance(stable, KafkaError) \
        and stable.code() == KafkaError.UNSTABLE_OFFSET_COMMIT, \
        f"require_stable OffsetFetch answered {stable} while a transactional commit is pending"

    if outcome == "commit":
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)
    want = 7 if outcome == "commit" else 3
    # The decision reaches the group coordinator with the markers, maybe a moment after the call.
    wait_for(lambda: fetch(RU) == want, 10, f"OffsetFetch to answer {want}", broker)
    assert fetch(RC) == want
    assert admin_fetch(True) == admin_fetch(False) == want
    committer.close()
