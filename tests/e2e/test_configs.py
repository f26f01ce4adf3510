"""Live topic configuration through real admin clients against the real binary:
AlterConfigs and IncrementalAlterConfigs (confluent-kafka's AdminClient), DescribeConfigs
sources and synonyms, validation errors naming the setting, persistence across a restart,
and DescribeLogDirs (kafka-python's KafkaAdminClient, which confluent-kafka lacks).

What a changed setting does to the data (retention deleting segments, compaction) is tested
in test_retention.py and test_compaction.py.
"""

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, ResourceType)
from conftest import create_topic


def describe(admin, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res])[res].result(timeout=15)


def incremental(admin, topic, *ops, validate_only=False):
    res = ConfigResource(ResourceType.TOPIC, topic,
                         incremental_configs=[ConfigEntry(n, v, incremental_operation=op)
                                              for n, v, op in ops])
    return admin.incremental_alter_configs([res], validate_only=validate_only)[res].result(timeout=15)


def test_incremental_alter_configs_set_delete_append_subtract_live_and_persisted(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    create_topic(broker.bootstrap, "cfg-a", 2)
    before = describe(admin, "cfg-a")
    assert before["retention.ms"].value == "604800000"
    assert before["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert before["cleanup.policy"].value == "delete"

    incremental(admin, "cfg-a", ("retention.ms", "3600000", AlterConfigOpType.SET),
                ("segment.bytes", "1048576", AlterConfigOpType.SET))
    d = describe(admin, "cfg-a")
    assert d["retention.ms"].value == "3600000"
    assert d["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert d["segment.bytes"].value == "1048576"

    incremental(admin, "cfg-a", ("cleanup.policy", "compact", AlterConfigOpType.APPEND))
    assert describe(admin, "cfg-a")["cleanup.policy"].value == "delete,compact" or \
        describe(admin, "cfg-a")["cleanup.policy"].value == "compact,delete"
    incremental(admin, "cfg-a", ("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT))
    assert describe(admin, "cfg-a")["cleanup.policy"].value == "compact"

    # validate_only changes nothing.
    incremental(admin, "cfg-a", ("retention.ms", "1", AlterConfigOpType.SET), validate_only=True)
    assert describe(admin, "cfg-a")["retention.ms"].value == "3600000"

    incremental(admin, "cfg-a", ("retention.ms", None, AlterConfigOpType.DELETE))
    d = describe(admin, "cfg-a")
    assert d["retention.ms"].value == "604800000"
    assert d["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    # The change is in the catalog: a restart keeps it.
    broker.restart()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    d = describe(admin, "cfg-a")
    assert d["cleanup.policy"].value == "compact"
    assert d["segment.bytes"].value == "1048576"
    assert d["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value


def test_alter_configs_replaces_every_override(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    create_topic(broker.bootstrap, "cfg-b", 1, {"retention.bytes": "1000000", "segment.ms": "60000"})
    res = ConfigResource(ResourceType.TOPIC, "cfg-b", set_config={"retention.ms": "120000"})
    admin.alter_configs([res])[res].result(timeout=15)
    d = describe(admin, "cfg-b")
    assert d["retention.ms"].value == "120000"
    # AlterConfigs is a full replacement: the overrides not named are gone.
    assert d["retention.bytes"].value == "-1"
    assert d["retention.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert d["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value


@pytest.mark.parametrize("name,value", [
    ("retention.ms", "-7"),
    ("cleanup.policy", "shred"),
    ("min.cleanable.dirty.ratio", "2"),
    ("segment.bytes", "lots"),
    ("no.such.setting", "1"),
])
def test_invalid_values_are_refused_with_a_message_naming_the_setting(broker, name, value):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    create_topic(broker.bootstrap, "cfg-c", 1)
    with pytest.raises(KafkaException) as e:
        incremental(admin, "cfg-c", (name, value, AlterConfigOpType.SET))
    err = e.value.args[0]
    assert err.name() == "INVALID_CONFIG", err
    assert name in err.str(), err.str()
    assert describe(admin, "cfg-c")["retention.ms"].value == "604800000", "nothing changed"


def test_append_to_a_non_list_setting_and_unknown_topics_are_refused(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    create_topic(broker.bootstrap, "cfg-d", 1)
    with pytest.raises(KafkaException) as e:
        incremental(admin, "cfg-d", ("retention.ms", "5", AlterConfigOpType.APPEND))
    assert e.value.args[0].name() == "INVALID_CONFIG"
    with pytest.raises(KafkaException) as e:
        incremental(admin, "no-such-topic", ("retention.ms", "5", AlterConfigOpType.SET))
    assert e.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"


def test_broker_settings_are_static_and_say_so(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource(ResourceType.BROKER, "0", set_config={"log.retention.ms": "1"})
    with pytest.raises(KafkaException) as e:
        admin.alter_configs([res])[res].result(timeout=15)
    assert e.value.args[0].name() == "INVALID_REQUEST"
    assert "static" in e.value.args[0].str()


def test_describe_configs_synonyms_show_where_a_value_comes_from(make_broker):
    b = make_broker("--log-retention-ms", "86400000")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    create_topic(b.bootstrap, "cfg-e", 1, {"retention.ms": "1000"})
    create_topic(b.bootstrap, "cfg-f", 1)
    res = ConfigResource(ResourceType.TOPIC, "cfg-e")
    d = admin.describe_configs([res])[res].result(timeout=15)
    e = d["retention.ms"]
    assert (e.value, e.source) == ("1000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    # confluent-kafka keys synonyms by name, so of the two log.retention.ms synonyms (the
    # static broker value, then the built-in default) it keeps the last.
    syn = {name: (s.value, s.source) for name, s in e.synonyms.items()}
    assert syn["retention.ms"] == ("1000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert syn["log.retention.ms"] == ("604800000", ConfigSource.DEFAULT_CONFIG.value)
    f = describe(admin, "cfg-f")["retention.ms"]
    assert (f.value, f.source) == ("86400000", ConfigSource.STATIC_BROKER_CONFIG.value)
    assert describe(admin, "cfg-f")["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value


def test_describe_log_dirs_reports_partition_sizes(broker):
    from kafka import KafkaAdminClient
    create_topic(broker.bootstrap, "cfg-g", 2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        p.produce("cfg-g", value=b"x" * 1000, partition=0)
    p.flush(15)
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        res = ka.describe_log_dirs()
    finally:
        ka.close()
    (b0,) = res
    assert b0["broker"] == 0
    (d,) = b0["log_dirs"]
    assert d["error_code"] == 0 and d["log_dir"] == str(broker.data_dir.resolve())
    assert 0 < d["usable_bytes"] <= d["total_bytes"], d
    sizes = {(t["name"], p["partition_index"]): p["partition_size"]
             for t in d["topics"] for p in t["partitions"]}
    assert sizes[("cfg-g", 0)] > 100 * 1000, sizes
    assert sizes[("cfg-g", 1)] == 0, sizes


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_a_compacted_topic_refuses_records_without_a_key(broker, codec):
    create_topic(broker.bootstrap, "cfg-k", 1, {"cleanup.policy": "compact"})
    errors, ok = [], []

    def report(err, msg):
        (errors if err else ok).append(err or msg.offset())

    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec,
                  "linger.ms": 0, "retries": 0})
    p.produce("cfg-k", key=b"k1", value=b"v1", on_delivery=report)
    p.flush(15)
    p.produce("cfg-k", value=b"no key", on_delivery=report)
    p.flush(15)
    assert ok == [0], (ok, errors)
    assert len(errors) == 1 and errors[0].name() == "INVALID_RECORD", errors
    # Switched to delete, the same record is accepted: the check follows the live setting.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    incremental(admin, "cfg-k", ("cleanup.policy", "delete", AlterConfigOpType.SET))
    p.produce("cfg-k", value=b"no key", on_delivery=report)
    p.flush(15)
    assert ok == [0, 1], (ok, errors)
