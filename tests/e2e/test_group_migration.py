"""Online migration of a consumer group between the classic protocol and the KIP-848 consumer
protocol, as Kafka 4.x does it, driven by confluent-kafka members of both kinds.

A rolling upgrade of an application's consumers restarts them one by one with
`group.protocol=consumer` while the others still run the classic protocol. Kafka 4.x keeps the
group running through it: the first consumer-protocol member turns the classic group into a
consumer group, the classic members stay in it (JoinGroup/SyncGroup/Heartbeat answered by the
consumer group's coordinator, partitions assigned by the broker's assignor), and when the last
consumer-protocol member leaves a group of classic members it becomes a classic group again
(`group.consumer.migration.policy`, default `bidirectional`). Throughout, a partition is never
owned by two members at once, every message is read, and committed offsets carry over.
"""

import json
import os
import subprocess
import time
from collections import Counter

import pytest
from confluent_kafka import ConsumerGroupType
from conftest import WEIR_BIN, create_topic
from test_groups import (GROUP_ARGS, Member, committed_offsets, end_offsets, group_listing,
                         members, ownership_intervals, produce_numbered, settled, start_members,
                         wait_for)

__all__ = ["members"]  # the fixture, imported for pytest

GROUP_ID_NOT_FOUND = 69


def group_type(b, group):
    return group_listing(b)[group].type


def overlaps(ms):
    """Pairs of members that owned one partition at the same time (from their callbacks)."""
    end = time.time()
    spans = [(m.member_name, p, s, e) for m in ms for p, s, e in ownership_intervals(m.evs(), end)]
    return [(a[0], b[0], a[1]) for i, a in enumerate(spans) for b in spans[i + 1:]
            if a[0] != b[0] and a[1] == b[1] and a[2] < b[3] and b[2] < a[3]]


def weir_describe(b, group):
    r = subprocess.run([str(WEIR_BIN), "group", "describe", group, "--json"], capture_output=True,
                       env=dict(os.environ, WEIR_BROKERS=b.bootstrap), timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def read_all(b, ms, group, topic, P, acked, what):
    """Every acknowledged value was read by one of `ms` and the group committed to the end."""
    wait_for(lambda: committed_offsets(b, group, topic, P) == end_offsets(acked, P), 60,
             f"{what}: the group to read and commit everything", b)
    values = Counter(e["v"] for m in ms for e in m.evs("M"))
    missing = set(acked) - set(values)
    assert not missing, f"{what}: {len(missing)} values never read, e.g. {sorted(missing)[:5]}"
    return values


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_rolling_upgrade_from_classic_to_consumer_protocol_keeps_the_group_running(make_broker,
                                                                                   members,
                                                                                   assignor):
    """Two classic members (eager `range`, or `cooperative-sticky`, which revokes only what it
    loses and reports what it owns) share 6 partitions; a consumer-protocol member joins (online
    upgrade: the group becomes a consumer group with the classic members in it, 2 partitions
    each); a kill -9 of the broker in that mixed state; then the classic members are replaced
    one by one by consumer-protocol members. No partition is owned twice at once, nothing
    produced is left unread, the committed offsets reach the end after each step."""
    b = make_broker(*GROUP_ARGS)
    topic, group, P = "upgrade", "g-upgrade", 6
    create_topic(b.bootstrap, topic, P)
    acked = produce_numbered(b.bootstrap, topic, P, 0, 600)
    every = []

    def member(name, protocol):
        conf = {"partition.assignment.strategy": assignor} if protocol == "classic" else None
        m = Member(b.bootstrap, group, topic, name, conf=conf, commit=True, protocol=protocol)
        every.append(m)
        start_members(members, m)
        return m

    a, bb = member("classic-a", "classic"), member("classic-b", "classic")
    wait_for(lambda: settled([a.assignment(), bb.assignment()], P, [3, 3]), 30,
             "the classic members to share the partitions", b)
    read_all(b, every, group, topic, P, acked, "classic")
    assert group_type(b, group) == ConsumerGroupType.CLASSIC

    c = member("consumer-c", "consumer")
    wait_for(lambda: settled([m.assignment() for m in (a, bb, c)], P, [2, 2, 2]), 60,
             "the upgraded group to give each of the three members 2 partitions", b)
    assert group_type(b, group) == ConsumerGroupType.CONSUMER
    assert not [e for e in c.errors if e.code() == GROUP_ID_NOT_FOUND], c.errors
    cli = weir_describe(b, group)
    assert cli["group_type"] == "consumer", cli
    assert {m["client_id"]: m["member_type"] for m in cli["members"]} == \
        {"classic-a": "classic", "classic-b": "classic", "consumer-c": "consumer"}, cli
    acked.update(produce_numbered(b.bootstrap, topic, P, 600, 600))
    read_all(b, every, group, topic, P, acked, "mixed group")

    # The mixed group (classic members' metadata included) is rebuilt from __consumer_offsets.
    b.kill()
    b.start()
    acked.update(produce_numbered(b.bootstrap, topic, P, 1200, 600))
    read_all(b, every, group, topic, P, acked, "mixed group after kill -9")
    wait_for(lambda: settled([m.assignment() for m in (a, bb, c)], P, [2, 2, 2]), 60,
             "the mixed group to settle after the restart", b)
    assert group_type(b, group) == ConsumerGroupType.CONSUMER

    # The rest of the rolling upgrade.
    a.close()
    a2 = member("consumer-a", "consumer")
    wait_for(lambda: settled([m.assignment() for m in (a2, bb, c)], P, [2, 2, 2]), 60,
             "the first replaced member to get its share", b)
    bb.close()
    b2 = member("consumer-b", "consumer")
    wait_for(lambda: settled([m.assignment() for m in (a2, b2, c)], P, [2, 2, 2]), 60,
             "the second replaced member to get its share", b)
    acked.update(produce_numbered(b.bootstrap, topic, P, 1800, 600))
    values = read_all(b, every, group, topic, P, acked, "after the rolling upgrade")
    assert group_type(b, group) == ConsumerGroupType.CONSUMER
    assert not overlaps(every), f"partitions owned by two members at once: {overlaps(every)}"
    twice = sum(n - 1 for n in values.values())
    print(f"rolling upgrade ({assignor}): {len(acked)} values, {twice} read twice (at-least-once across "
          f"rebalances), generations {[len(m.evs('A')) for m in every]}")


def test_last_consumer_protocol_member_leaving_turns_the_group_classic_again(make_broker,
                                                                             members):
    """Online downgrade: when the only consumer-protocol member of an upgraded group leaves,
    the group goes back to the classic protocol with its classic members, who rebalance and
    again share every partition; committed offsets carry over."""
    b = make_broker(*GROUP_ARGS)
    topic, group, P = "downgrade", "g-downgrade", 4
    create_topic(b.bootstrap, topic, P)
    acked = produce_numbered(b.bootstrap, topic, P, 0, 400)
    a = Member(b.bootstrap, group, topic, "classic-a", commit=True)
    bb = Member(b.bootstrap, group, topic, "classic-b", commit=True)
    start_members(members, a, bb)
    wait_for(lambda: settled([a.assignment(), bb.assignment()], P, [2, 2]), 30,
             "the classic members to share the partitions", b)
    c = Member(b.bootstrap, group, topic, "consumer-c", commit=True, protocol="consumer")
    start_members(members, c)
    wait_for(lambda: group_type(b, group) == ConsumerGroupType.CONSUMER and c.assignment()
             and settled([m.assignment() for m in (a, bb, c)], P), 60,
             "the upgraded group to give the consumer-protocol member its share", b)
    c.close()
    wait_for(lambda: group_type(b, group) == ConsumerGroupType.CLASSIC, 30,
             "the group to become classic again", b)
    wait_for(lambda: settled([a.assignment(), bb.assignment()], P, [2, 2]), 60,
             "the classic members to share every partition again", b)
    acked.update(produce_numbered(b.bootstrap, topic, P, 400, 400))
    read_all(b, [a, bb, c], group, topic, P, acked, "after the downgrade")
    assert not overlaps([a, bb, c]), overlaps([a, bb, c])


def test_migration_policy_disabled_keeps_a_classic_group_classic(make_broker, members):
    """`--group-consumer-migration-policy disabled`: a consumer-protocol member cannot join a
    classic group that has members (GROUP_ID_NOT_FOUND, as Kafka answers); the classic member
    keeps every partition."""
    b = make_broker(*GROUP_ARGS, "--group-consumer-migration-policy", "disabled")
    topic, group, P = "nomigrate", "g-nomigrate", 2
    create_topic(b.bootstrap, topic, P)
    a = Member(b.bootstrap, group, topic, "classic-a")
    start_members(members, a)
    wait_for(lambda: a.assignment() == {0, 1}, 30, "the classic member's assignment", b)
    c = Member(b.bootstrap, group, topic, "consumer-c", protocol="consumer")
    start_members(members, c)
    # librdkafka makes it a fatal error of the consumer ("The group id does not exist").
    wait_for(lambda: [e for e in c.errors if e.code() == GROUP_ID_NOT_FOUND
                      or "group id does not exist" in e.str()], 30,
             f"the consumer-protocol member's GROUP_ID_NOT_FOUND (errors: {c.errors})", b)
    assert c.assignment() == set()
    assert a.assignment() == {0, 1}
    assert group_type(b, group) == ConsumerGroupType.CLASSIC
