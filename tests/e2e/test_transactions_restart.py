"""Transactions across broker restarts: what read_committed consumers see must not change when
the broker stops (SIGTERM: producer-state snapshots written) or dies (kill -9: producer state
and the aborted-transaction index rebuilt by recovery), and a transaction left open by a
producer that died with the broker keeps holding the last stable offset until it is aborted.
"""

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from conftest import create_topic

TOPIC = "txr"
PARTITIONS = 2


def read(bootstrap, isolation):
    """Every record below the end offset the consumer sees for `isolation`, per partition."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "txr-unused",
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "enable.partition.eof": True})
    try:
        ends = [c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
                for p in range(PARTITIONS)]
        c.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        got, eof = [], set()
        deadline = time.monotonic() + 30
        while len(eof) < PARTITIONS and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error():
                    eof.add(m.partition())
                else:
                    got.append(m.value())
        assert len(eof) == PARTITIONS, "did not reach the end of every partition"
        return sorted(got), ends
    finally:
        c.close()


def produce_txn(p, tag, n, commit):
    p.begin_transaction()
    for i in range(n):
        p.produce(TOPIC, value=b"%s-%d" % (tag, i), partition=i % PARTITIONS)
    p.flush(15)
    if commit:
        p.commit_transaction(15)
    else:
        p.abort_transaction(15)


def values(tag, n):
    return [b"%s-%d" % (tag, i) for i in range(n)]


def test_aborted_and_open_transactions_survive_restarts_and_crashes(make_broker):
    b = make_broker()
    create_topic(b.bootstrap, TOPIC, PARTITIONS)
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "txr-1",
                  "transaction.timeout.ms": 600000})
    p.init_transactions(15)
    produce_txn(p, b"A", 10, True)
    produce_txn(p, b"B", 10, False)
    produce_txn(p, b"C", 10, True)
    plain = Producer({"bootstrap.servers": b.bootstrap})
    for v in values(b"P", 4):
        plain.produce(TOPIC, value=v, partition=0)
    plain.flush(15)
    committed = sorted(values(b"A", 10) + values(b"C", 10) + values(b"P", 4))
    everything = sorted(committed + values(b"B", 10))

    def check(expect_committed):
        rc, rc_ends = read(b.bootstrap, "read_committed")
        ru, ru_ends = read(b.bootstrap, "read_uncommitted")
        assert rc == sorted(expect_committed)
        assert ru[:len(everything)] == everything or set(everything) <= set(ru)
        return rc_ends, ru_ends

    rc_ends, ru_ends = check(committed)
    assert rc_ends == ru_ends, "no open transaction: last stable offset = high watermark"

    b.kill()
    b.start()
    assert check(committed) == (rc_ends, ru_ends), "kill -9 and recovery"
    assert b.stop() == 0
    b.start()
    assert check(committed) == (rc_ends, ru_ends), "clean restart (snapshots)"

    # A transaction left open when the broker dies (the producer process dies with it).
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "txr-1",
                  "transaction.timeout.ms": 600000})
    p.init_transactions(15)
    p.begin_transaction()
    for v in values(b"D", 6):
        p.produce(TOPIC, value=v, partition=0)
    p.flush(15)
    for v in values(b"Q", 3):
        plain.produce(TOPIC, value=v, partition=0)
    plain.flush(15)
    del p
    b.kill()
    b.start()
    rc, (lso0, lso1) = read(b.bootstrap, "read_committed")
    assert rc == committed, "the open transaction and everything after it stay hidden"
    assert lso0 == rc_ends[0], "the open transaction holds the last stable offset after recovery"
    ru, (hw0, _) = read(b.bootstrap, "read_uncommitted")
    assert hw0 == rc_ends[0] + 6 + 3
    # The same transactional id again: the open transaction is aborted, the LSO moves on.
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "txr-1"})
    p.init_transactions(15)
    deadline = time.monotonic() + 10
    while True:
        rc, (lso0, _) = read(b.bootstrap, "read_committed")
        if lso0 > hw0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert lso0 == hw0 + 1, "past the abort marker"
    assert rc == sorted(committed + values(b"Q", 3)), "D aborted, Q visible"
    produce_txn(p, b"E", 4, True)
    b.kill()
    b.start()
    rc, _ = read(b.bootstrap, "read_committed")
    assert rc == sorted(committed + values(b"Q", 3) + values(b"E", 4))
