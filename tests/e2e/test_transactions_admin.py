"""Transaction admin APIs against the real binary, through kafka-python's KafkaAdminClient
(confluent-kafka 2.16.1 has no list/describe_transactions): ListTransactions,
DescribeTransactions and DescribeProducers, the calls behind `kafka-transactions.sh`.

Transactions are driven by a confluent-kafka transactional producer; what the admin calls
report is checked against what that producer did: its producer id and epoch (from
DescribeProducers on the partitions it wrote), the partitions of its open transaction, the
state before and after commit and abort, and the first offset of the open transaction.
"""

import time

import pytest
from confluent_kafka import Producer
from conftest import create_topic
from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import KafkaError as KPError


@pytest.fixture
def admin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    yield a
    a.close()


def txn_producer(bootstrap, txn_id):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                  "transaction.timeout.ms": 60000})
    p.init_transactions(15)
    return p


def listed(admin, **filters):
    """ListTransactions from every broker (one here): {transactional id: listing}."""
    by_broker = admin.list_transactions(**filters)
    assert list(by_broker) == [0]
    return {t.transactional_id: t for t in by_broker[0]}


def test_list_and_describe_follow_a_transaction_through_its_states(broker, admin):
    create_topic(broker.bootstrap, "ta-a", 3)
    create_topic(broker.bootstrap, "ta-b", 1)
    p = txn_producer(broker.bootstrap, "admin-tx")
    idle = txn_producer(broker.bootstrap, "admin-idle")

    p.begin_transaction()
    for i in range(6):
        p.produce("ta-a", value=b"a%d" % i, partition=i % 2)
    p.produce("ta-b", value=b"b", partition=0)
    p.flush(15)

    everything = listed(admin)
    assert set(everything) >= {"admin-tx", "admin-idle"}
    assert everything["admin-tx"].state == "Ongoing"
    assert everything["admin-idle"].state == "Empty"
    assert list(listed(admin, state_filters=["Ongoing"])) == ["admin-tx"]
    # ListTransactions v1: only transactions open at least this long.
    assert list(listed(admin, duration_filter_ms=3_600_000)) == []
    time.sleep(0.3)
    assert list(listed(admin, state_filters=["Ongoing"], duration_filter_ms=200)) == ["admin-tx"]

    d = admin.describe_transactions(["admin-tx"])["admin-tx"]
    assert d.state == "Ongoing"
    assert d.transaction_timeout_ms == 60000
    assert 0 < time.time() * 1000 - d.transaction_start_time_ms < 60_000
    assert {(tp.topic, tp.partition) for tp in d.topic_partitions} == {
        ("ta-a", 0), ("ta-a", 1), ("ta-b", 0)}
    pid = d.producer_id
    assert pid >= 0 and everything["admin-tx"].producer_id == pid
    assert list(listed(admin, producer_id_filters=[pid])) == ["admin-tx"]

    # DescribeProducers: the producer and where its open transaction starts in each partition.
    states = admin.describe_producers([TopicPartition("ta-a", 0), TopicPartition("ta-a", 2)])
    (s0,) = states[TopicPartition("ta-a", 0)].active_producers
    assert (s0.producer_id, s0.producer_epoch) == (pid, d.producer_epoch)
    assert s0.current_transaction_start_offset == 0
    assert s0.last_sequence == 2, "three records, one batch per flush: sequences 0-2"
    assert states[TopicPartition("ta-a", 2)].active_producers == []

    p.commit_transaction(15)
    d = admin.describe_transactions(["admin-tx"])["admin-tx"]
    assert d.state == "CompleteCommit"
    assert not d.topic_partitions
    assert listed(admin, state_filters=["Ongoing"]) == {}
    (s0,) = admin.describe_producers([TopicPartition("ta-a", 0)])[TopicPartition("ta-a", 0)].active_producers
    assert s0.current_transaction_start_offset == -1

    p.begin_transaction()
    p.produce("ta-a", value=b"x", partition=2)
    p.flush(15)
    p.abort_transaction(15)
    assert admin.describe_transactions(["admin-tx"])["admin-tx"].state == "CompleteAbort"
    del idle


def test_describe_unknown_transactional_id_is_an_error(broker, admin):
    with pytest.raises(KPError) as e:
        admin.describe_transactions(["no-such-id"])
    assert type(e.value).__name__ == "TransactionalIdNotFoundError"


def test_describe_producers_of_an_unknown_partition_is_an_error(broker, admin):
    create_topic(broker.bootstrap, "ta-c", 1)
    with pytest.raises(KPError) as e:
        admin.describe_producers([TopicPartition("ta-c", 5)])
    assert "UnknownTopicOrPartition" in type(e.value).__name__


def test_idle_transactional_ids_expire_and_survive_no_restart(make_broker):
    """transactional.id.expiration.ms: an id with nothing open and unused that long is
    forgotten (a tombstone in __transaction_state, so a restart does not bring it back);
    an id with a transaction open is kept however old; an expired id can be used again and
    gets a new producer id."""
    b = make_broker("--transactional-id-expiration-ms", "1500",
                    "--transaction-remove-expired-transaction-cleanup-interval-ms", "200")
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=10000)
    try:
        create_topic(b.bootstrap, "ta-exp", 1)
        idle = txn_producer(b.bootstrap, "exp-idle")
        idle.begin_transaction()
        idle.produce("ta-exp", key=b"k", value=b"v", partition=0)
        idle.commit_transaction(15)
        first_pid = admin.describe_transactions(["exp-idle"])["exp-idle"].producer_id
        busy = txn_producer(b.bootstrap, "exp-busy")
        busy.begin_transaction()
        busy.produce("ta-exp", key=b"k", value=b"open", partition=0)
        busy.flush(15)

        deadline = time.monotonic() + 20
        while "exp-idle" in listed(admin):
            assert time.monotonic() < deadline, "the idle transactional id never expired"
            time.sleep(0.2)
        assert listed(admin)["exp-busy"].state == "Ongoing", "an open transaction expired"
        with pytest.raises(KPError) as e:
            admin.describe_transactions(["exp-idle"])
        assert type(e.value).__name__ == "TransactionalIdNotFoundError"
        assert "transactional id expired" in b.log()

        busy.commit_transaction(15)
        admin.close()
        b.kill()
        b.start()
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=10000)
        assert "exp-idle" not in listed(admin), "the expired id came back after a restart"
        again = txn_producer(b.bootstrap, "exp-idle")
        again.begin_transaction()
        again.produce("ta-exp", key=b"k", value=b"again", partition=0)
        again.commit_transaction(15)
        assert admin.describe_transactions(["exp-idle"])["exp-idle"].producer_id != first_pid
    finally:
        admin.close()
