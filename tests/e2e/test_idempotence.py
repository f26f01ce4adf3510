"""Issue 4 acceptance 1, 2 and 5: an idempotent producer's retries never duplicate a batch,
through a network that drops and cuts connections, and across kill -9 of the broker."""

import os
import random
import threading
import time

import pytest
from confluent_kafka import Producer
from conftest import consume_to_end, create_topic
from faultproxy import proxied_broker

PARTITIONS = 4


def produce_numbered(bootstrap, topic, count, idempotent):
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
            "enable.idempotence": idempotent, "message.timeout.ms": 300_000,
            "retry.backoff.ms": 20, "batch.num.messages": 200}
    if not idempotent:
        # What a careless producer does: retries with several requests in flight.
        conf.update({"retries": 1_000_000, "max.in.flight.requests.per.connection": 5})
    p = Producer(conf)
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    for i in range(count):
        while True:
            try:
                p.produce(topic, str(i).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(600) == 0
    return errors


def audit(per_partition, count):
    """(missing, duplicated, out_of_order) over the whole topic."""
    seen = {}
    out_of_order = 0
    for p, msgs in per_partition.items():
        last = -1
        for _, _, v in msgs:
            n = int(v)
            seen[n] = seen.get(n, 0) + 1
            if n < last:
                out_of_order += 1
            last = n
    missing = sum(1 for i in range(count) if i not in seen)
    duplicated = sum(c - 1 for c in seen.values() if c > 1)
    return missing, duplicated, out_of_order


def test_idempotent_producer_through_faulty_network_writes_each_message_once(make_broker):
    count = int(os.environ.get("WEIR_E2E_IDEMPOTENT_MESSAGES", "1000000"))
    broker, proxy = proxied_broker(make_broker, seed=1, drop_prob=0.01,
                                   cut_after_request_prob=0.03)
    try:
        # The faults are for the produce path: a cut CreateTopics is not what is tested.
        proxy.faults = False
        create_topic(broker.bootstrap, "exactly-once", PARTITIONS)
        proxy.faults = True
        t0 = time.monotonic()
        errors = produce_numbered(broker.bootstrap, "exactly-once", count, idempotent=True)
        elapsed = time.monotonic() - t0
        print(f"idempotent: {count} messages in {elapsed:.1f}s through the proxy: {proxy.stats}")
        assert errors == []
        assert proxy.stats["cut_after_request"] > 0 and proxy.stats["dropped"] > 0
        proxy.faults = False
        per_partition = consume_to_end(broker.bootstrap, "exactly-once", PARTITIONS,
                                       timeout=180)
        missing, duplicated, out_of_order = audit(per_partition, count)
        print(f"missing={missing} duplicated={duplicated} out_of_order={out_of_order}")
        assert (missing, duplicated, out_of_order) == (0, 0, 0)
        for p, msgs in per_partition.items():
            assert [o for o, _, _ in msgs] == list(range(len(msgs))), f"gap in partition {p}"
    finally:
        proxy.close()


def test_without_idempotence_the_same_faults_make_duplicates(make_broker):
    """The control run: the audit above can fail. Retries of requests whose response was cut
    write the batch twice when the producer is not idempotent."""
    count = 200_000
    broker, proxy = proxied_broker(make_broker, seed=2, drop_prob=0.01,
                                   cut_after_request_prob=0.03)
    try:
        # The faults are for the produce path: a cut CreateTopics is not what is tested.
        proxy.faults = False
        create_topic(broker.bootstrap, "at-least-once", PARTITIONS)
        proxy.faults = True
        errors = produce_numbered(broker.bootstrap, "at-least-once", count, idempotent=False)
        assert errors == []
        proxy.faults = False
        per_partition = consume_to_end(broker.bootstrap, "at-least-once", PARTITIONS)
        missing, duplicated, out_of_order = audit(per_partition, count)
        print(f"non-idempotent through {proxy.stats}: missing={missing} "
              f"duplicated={duplicated} out_of_order={out_of_order}")
        assert missing == 0
        assert duplicated > 0, "the faults should have caused duplicate writes"
    finally:
        proxy.close()


class PacedProducer(threading.Thread):
    """An idempotent producer at a steady pace; records acknowledged values and offsets."""

    def __init__(self, bootstrap, topic, rate=5000):
        super().__init__(daemon=True)
        self.topic, self.rate = topic, rate
        self.next = 0
        self.acked = {}
        self.errors = []
        self.stop_flag = threading.Event()
        # A long message timeout: batches in flight at a crash are retried after the restart
        # (possibly written before it), which is what deduplication must absorb.
        self.p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                           "linger.ms": 2, "message.timeout.ms": 120_000,
                           "retry.backoff.ms": 50, "reconnect.backoff.max.ms": 200})

    def on_delivery(self, err, msg):
        if err is None:
            self.acked[int(msg.value())] = (msg.partition(), msg.offset())
        else:
            self.errors.append(err)

    def run(self):
        start = time.monotonic()
        while not self.stop_flag.is_set():
            due = int((time.monotonic() - start) * self.rate)
            while self.next < due:
                try:
                    self.p.produce(self.topic, str(self.next).encode(),
                                   on_delivery=self.on_delivery)
                    self.next += 1
                except BufferError:
                    break
            self.p.poll(0.005)

    def finish(self):
        self.stop_flag.set()
        self.join(10)
        assert self.p.flush(120) == 0


def check_exactly_once_in_order(per_partition, acked):
    where = {}
    for p, msgs in per_partition.items():
        last = -1
        for o, _, v in msgs:
            n = int(v)
            assert n not in where, f"{n} stored twice: {where[n]} and {(p, o)}"
            where[n] = (p, o)
            assert n > last, f"partition {p} out of order at offset {o}"
            last = n
    lost = [n for n in acked if n not in where]
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {lost[:5]}"
    moved = [n for n, at in acked.items() if where[n] != at]
    assert not moved, f"acknowledged at other offsets: {moved[:5]}"


def test_crash_loop_during_idempotent_produce(broker):
    """20 cycles of kill -9 and restart while an idempotent producer keeps sending; after
    every cycle, every acknowledged message is in the log exactly once and in order."""
    create_topic(broker.bootstrap, "crash-loop", PARTITIONS)
    prod = PacedProducer(broker.bootstrap, "crash-loop")
    prod.start()
    rng = random.Random(4)
    try:
        for cycle in range(20):
            time.sleep(rng.uniform(0.3, 1.0))
            broker.kill()
            time.sleep(rng.uniform(0.0, 0.3))
            broker.start()
            # Let the producer catch up on what it had in flight, then check.
            acked_before = len(prod.acked)
            deadline = time.monotonic() + 30
            while len(prod.acked) <= acked_before and time.monotonic() < deadline:
                time.sleep(0.05)
            snapshot = dict(prod.acked)
            per_partition = consume_to_end(broker.bootstrap, "crash-loop", PARTITIONS)
            check_exactly_once_in_order(per_partition, snapshot)
            print(f"cycle {cycle}: {len(snapshot)} acknowledged, all present once")
    finally:
        prod.finish()
    assert prod.errors == []
    per_partition = consume_to_end(broker.bootstrap, "crash-loop", PARTITIONS)
    check_exactly_once_in_order(per_partition, prod.acked)
    total = sum(len(m) for m in per_partition.values())
    assert total == prod.next, f"{prod.next} produced, {total} stored: a loss or a duplicate"
