//! DescribeConfigs on the broker resource: which settings it answers, with what types and
//! values, and which of them say whether they were given explicitly.

mod common;

use common::*;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_broker::{Broker, BrokerConfig};

const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

async fn describe_broker(config: BrokerConfig) -> Vec<DescribeConfigsResourceResult> {
    let broker = Broker::open(config).await.unwrap();
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("0")),
        ]);
    let r: DescribeConfigsResponse = call(&broker, ApiKey::DescribeConfigs, 4, &req)
        .await
        .unwrap();
    broker.shutdown().unwrap();
    assert_eq!(r.results[0].error_code, 0);
    r.results[0].configs.clone()
}

/// The entries as clients have always seen them: a client or tool that reads one of these
/// names must keep finding it, with the same type and value.
#[tokio::test]
async fn broker_entries_keep_their_names_types_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let configs = describe_broker(config(dir.path())).await;
    let data_dir = dir.path().display().to_string();
    // (name, config type, value); clients look entries up by name, so the order is free.
    let mut expected: Vec<(&str, i8, &str)> = vec![
        ("log.retention.ms", 5, "604800000"),
        ("log.retention.bytes", 5, "-1"),
        ("log.cleanup.policy", 7, "delete"),
        ("log.cleaner.delete.retention.ms", 5, "86400000"),
        ("log.cleaner.min.compaction.lag.ms", 5, "0"),
        (
            "log.cleaner.max.compaction.lag.ms",
            5,
            "9223372036854775807",
        ),
        ("log.cleaner.min.cleanable.ratio", 6, "0.5"),
        ("log.retention.check.interval.ms", 5, "300000"),
        ("log.cleaner.enable", 2, "true"),
        ("log.cleaner.backoff.ms", 5, "15000"),
        ("log.cleaner.dedupe.buffer.size", 5, "134217728"),
        ("transaction.max.timeout.ms", 3, "900000"),
        ("transactional.id.expiration.ms", 3, "604800000"),
        ("node.id", 3, "0"),
        ("log.dirs", 2, &data_dir),
        ("advertised.listeners", 2, "PLAINTEXT://127.0.0.1:9092"),
        ("num.partitions", 3, "2"),
        ("auto.create.topics.enable", 2, "true"),
        ("socket.request.max.bytes", 3, "104857600"),
        ("log.segment.bytes", 3, "1073741824"),
        ("log.roll.ms", 5, "604800000"),
        ("message.max.bytes", 3, "1048588"),
        ("log.index.interval.bytes", 3, "4096"),
        ("log.flush.interval.messages", 5, "1"),
        ("log.flush.interval.ms", 5, "9223372036854775807"),
        ("log.message.timestamp.type", 2, "CreateTime"),
        ("group.initial.rebalance.delay.ms", 3, "0"),
        ("group.min.session.timeout.ms", 3, "6000"),
        ("group.max.session.timeout.ms", 3, "1800000"),
        ("group.max.size", 3, "10000"),
        ("group.consumer.session.timeout.ms", 3, "45000"),
        ("group.consumer.heartbeat.interval.ms", 3, "5000"),
        ("group.consumer.migration.policy", 2, "bidirectional"),
        ("offsets.retention.minutes", 3, "10080"),
        ("offsets.retention.check.interval.ms", 5, "600000"),
        ("offsets.topic.num.partitions", 3, "3"),
        ("offset.metadata.max.bytes", 3, "4096"),
        // The broker defaults of Kafka's other topic configs.
        (
            "log.message.timestamp.before.max.ms",
            5,
            "9223372036854775807",
        ),
        (
            "log.message.timestamp.after.max.ms",
            5,
            "9223372036854775807",
        ),
        (
            "log.message.timestamp.difference.max.ms",
            5,
            "9223372036854775807",
        ),
        ("compression.type", 2, "producer"),
        ("compression.gzip.level", 3, "-1"),
        ("compression.lz4.level", 3, "9"),
        ("compression.zstd.level", 3, "3"),
        ("min.insync.replicas", 3, "1"),
        ("unclean.leader.election.enable", 1, "false"),
        ("log.roll.jitter.ms", 5, "0"),
        ("log.index.size.max.bytes", 3, "10485760"),
        ("log.segment.delete.delay.ms", 5, "60000"),
        ("log.preallocate", 1, "false"),
    ];
    let mut got: Vec<(&str, i8, &str)> = configs
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.config_type,
                c.value.as_ref().map_or("", |v| v.as_str()),
            )
        })
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert!(configs
        .iter()
        .all(|c| c.documentation.as_ref().is_some_and(|d| !d.is_empty())));
}

/// A broker default of a topic setting says whether it was given (STATIC_BROKER_CONFIG) or
/// is weir's built-in default (DEFAULT_CONFIG).
#[tokio::test]
async fn topic_defaults_given_explicitly_are_static_broker_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.topic_defaults.retention_ms = 3_600_000;
    c.explicit.insert("log.retention.ms".to_string());
    let configs = describe_broker(c).await;
    let source = |name: &str| {
        let e = configs.iter().find(|c| c.name.as_str() == name).unwrap();
        (e.value.as_ref().unwrap().to_string(), e.config_source)
    };
    assert_eq!(
        source("log.retention.ms"),
        ("3600000".to_string(), STATIC_BROKER_CONFIG)
    );
    assert_eq!(
        source("log.retention.bytes"),
        ("-1".to_string(), DEFAULT_CONFIG)
    );
    assert_eq!(
        source("log.segment.bytes"),
        ("1073741824".to_string(), DEFAULT_CONFIG)
    );
}

/// DescribeConfigs answers exactly the settings the table marks as described, each once.
#[tokio::test]
async fn each_described_setting_is_answered_once() {
    let dir = tempfile::tempdir().unwrap();
    let configs = describe_broker(config(dir.path())).await;
    let mut answered: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
    let mut described: Vec<&str> = weir_broker::settings::BROKER_SETTINGS
        .iter()
        .filter(|s| s.described)
        .filter_map(|s| s.name)
        .collect();
    answered.sort();
    described.sort();
    assert_eq!(answered, described);
    answered.dedup();
    assert_eq!(answered.len(), configs.len(), "a name answered twice");
}

/// A setting given at start-up is STATIC_BROKER_CONFIG, with the built-in default as its
/// synonym; one not given is DEFAULT_CONFIG. None can be altered while the broker runs.
#[tokio::test]
async fn given_settings_are_static_with_the_default_as_synonym() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.group.max_size = 77;
    c.explicit.insert("group.max.size".to_string());
    let configs = describe_broker(c).await;
    let entry = |name: &str| configs.iter().find(|c| c.name.as_str() == name).unwrap();
    let synonyms = |name: &str| {
        entry(name)
            .synonyms
            .iter()
            .map(|s| (s.value.as_ref().unwrap().to_string(), s.source))
            .collect::<Vec<_>>()
    };
    assert_eq!(entry("group.max.size").config_source, STATIC_BROKER_CONFIG);
    assert_eq!(
        synonyms("group.max.size"),
        [
            ("77".to_string(), STATIC_BROKER_CONFIG),
            ("10000".to_string(), DEFAULT_CONFIG)
        ]
    );
    assert_eq!(entry("node.id").config_source, DEFAULT_CONFIG);
    assert_eq!(synonyms("node.id"), [("0".to_string(), DEFAULT_CONFIG)]);
    assert!(
        configs.iter().all(|c| c.read_only),
        "broker settings are static"
    );
}
