"""A transactional client in its own process, so a test can kill -9 it (test_transactions.py).

    python txn_worker.py '<json config>'

Modes (cfg["mode"]):
  ctp   consume-transform-produce: consume cfg["input"] in group cfg["group"] with
        read_committed, write value + b"-out" (same key, same partition number) to
        cfg["output"] in transactions of cfg["records_per_txn"] records, each carrying the
        consumed offsets (send_offsets_to_transaction). Runs until killed.
  open  init, begin, write cfg["per_partition"] records to each partition in
        cfg["partitions"] of cfg["topic"], flush, report "F", then sleep until killed
        without ending the transaction.

Events go to cfg["events"], one JSON line each (written and flushed at once: a kill -9 of
this process does not lose what it wrote). Kinds:
  S started (pid)   I init_transactions returned   A assigned   R revoked
  B transaction begun   P first record produced by this process   C committed (n, pos)
  X aborted (why)   F open mode: records flushed   E consumer error   FATAL (err), then exit 3
"""

import json
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer

cfg = json.loads(sys.argv[1])
events = open(cfg["events"], "a")


def emit(e, **kw):
    kw["e"] = e
    kw["t"] = time.time()
    events.write(json.dumps(kw) + "\n")
    events.flush()


def fatal(where, ex):
    err = ex.args[0] if ex.args else ex
    emit("FATAL", where=where, err=str(err))
    sys.exit(3)


def new_producer():
    conf = {"bootstrap.servers": cfg["bootstrap"], "transactional.id": cfg["txn_id"],
            "transaction.timeout.ms": cfg["txn_timeout_ms"], "linger.ms": 5}
    conf.update(cfg.get("producer", {}))
    p = Producer(conf)
    try:
        p.init_transactions(60)
    except KafkaException as ex:
        fatal("init_transactions", ex)
    emit("I")
    return p


def retrying(call, limit_s=60):
    """call(), again while it raises a retriable error (librdkafka allows that for
    send_offsets_to_transaction and commit_transaction), for at most limit_s."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return call()
        except KafkaException as ex:
            if not ex.args[0].retriable() or time.monotonic() > deadline:
                raise


def produce(p, topic, partition, key, value):
    while True:
        try:
            p.produce(topic, value, key, partition=partition)
            return
        except BufferError:
            p.poll(0.01)


def open_mode():
    from txn_oracle import encode_value

    p = new_producer()
    p.begin_transaction()
    emit("B")
    parts = cfg["partitions"]
    size = len(parts) * cfg["per_partition"]
    failed = []
    index = 0
    for partition in parts:
        for _ in range(cfg["per_partition"]):
            p.produce(cfg["topic"], encode_value(cfg["txn_name"], index, size),
                      partition=partition,
                      on_delivery=lambda err, msg: err is not None and failed.append(str(err)))
            index += 1
    emit("P")
    left = p.flush(30)
    if left or failed:
        emit("FATAL", where="flush", err=f"{left} undelivered, errors {failed[:3]}")
        sys.exit(3)
    emit("F", size=size)
    while True:
        time.sleep(1)


def ctp_mode():
    p = new_producer()
    c = Consumer({"bootstrap.servers": cfg["bootstrap"], "group.id": cfg["group"],
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "partition.assignment.strategy": "range",
                  "session.timeout.ms": cfg.get("session_timeout_ms", 3000),
                  "heartbeat.interval.ms": 500})
    txn = {"open": False, "n": 0}

    def abort(why):
        try:
            p.abort_transaction(30)
        except KafkaException as ex:
            fatal("abort_transaction", ex)
        txn.update(open=False, n=0)
        emit("X", why=why)

    def rewind():
        """Back to the committed offsets: what the aborted transaction consumed is
        consumed again."""
        assignment = c.assignment()
        if not assignment:
            return
        for tp in c.committed(assignment, timeout=30):
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            c.seek(tp)

    def on_assign(_c, parts):
        emit("A", p=[tp.partition for tp in parts])

    def on_revoke(_c, parts):
        emit("R", p=[tp.partition for tp in parts])
        if txn["open"]:
            abort("revoke")

    c.subscribe([cfg["input"]], on_assign=on_assign, on_revoke=on_revoke)
    per_txn = cfg["records_per_txn"]
    chunk = cfg.get("chunk", 50)
    pause_s = cfg.get("pause_ms", 15) / 1000
    produced_any = False
    while True:
        msgs = c.consume(min(chunk, per_txn - txn["n"]), 0.2)
        data = []
        for m in msgs:
            if m.error():
                emit("E", err=str(m.error()))
            else:
                data.append(m)
        if data:
            if not txn["open"]:
                p.begin_transaction()
                txn.update(open=True, n=0)
                emit("B")
            for m in data:
                produce(p, cfg["output"], m.partition(), m.key(), m.value() + b"-out")
            txn["n"] += len(data)
            if not produced_any:
                produced_any = True
                emit("P")
            p.poll(0)
            # Paced so that the input takes long enough to process for every kill of the
            # test to land in the middle of the work.
            time.sleep(pause_s)
        if txn["open"] and (txn["n"] >= per_txn or not data):
            try:
                pos = [tp for tp in c.position(c.assignment()) if tp.offset >= 0]
                retrying(lambda: p.send_offsets_to_transaction(pos, c.consumer_group_metadata(),
                                                               30))
                retrying(lambda: p.commit_transaction(30))
            except KafkaException as ex:
                err = ex.args[0]
                if err.fatal() or not err.txn_requires_abort():
                    fatal("commit", ex)
                abort(str(err))
                rewind()
                continue
            emit("C", n=txn["n"], pos={tp.partition: tp.offset for tp in pos})
            txn.update(open=False, n=0)


emit("S", pid=os.getpid())
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
{"ctp": ctp_mode, "open": open_mode}[cfg["mode"]]()
