//! DescribeConfigs (key 32): the real effective values of topic and broker settings, with
//! their sources and (v1+, on request) synonyms: a topic setting's synonyms are its
//! override (TOPIC_CONFIG), the broker setting if it was given explicitly
//! (STATIC_BROKER_CONFIG) and weir's built-in default (DEFAULT_CONFIG), most specific first.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{some_str, str_bytes};
use crate::broker::Broker;
use crate::config::{ConfigType, TOPIC_SETTINGS};
use crate::error_codes as ec;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// One effective setting, as DescribeConfigs and the admin HTTP API report it.
pub struct Entry {
    pub name: String,
    pub value: String,
    /// Kafka's ConfigSource: `SOURCE_TOPIC`, `SOURCE_STATIC_BROKER` or `SOURCE_DEFAULT`.
    pub source: i8,
    pub config_type: ConfigType,
    pub doc: String,
    /// `(name, value, source)`, most specific first.
    pub synonyms: Vec<(String, String, i8)>,
}

impl Entry {
    /// Kafka's rule: a topic's own settings and defaults can be altered, the broker's not.
    pub fn read_only(&self) -> bool {
        self.source != SOURCE_TOPIC && self.source != SOURCE_DEFAULT
    }
}

/// Kafka's name of a ConfigSource value.
pub fn source_name(source: i8) -> &'static str {
    match source {
        SOURCE_TOPIC => "DYNAMIC_TOPIC_CONFIG",
        SOURCE_STATIC_BROKER => "STATIC_BROKER_CONFIG",
        SOURCE_DEFAULT => "DEFAULT_CONFIG",
        _ => "UNKNOWN",
    }
}

pub fn handle(
    broker: &Broker,
    version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let entries = match r.resource_type {
                RESOURCE_TOPIC => topic_entries(broker, r.resource_name.as_str()),
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if name.is_empty() || name == broker.config.node_id.to_string() {
                        Ok(broker_entries(broker))
                    } else {
                        Err((ec::INVALID_REQUEST, format!("unknown broker '{name}'")))
                    }
                }
                other => Err((
                    ec::INVALID_REQUEST,
                    format!("resource type {other} is not supported"),
                )),
            };
            match entries {
                Ok(entries) => {
                    // Null or empty: every setting (as Kafka's ConfigHelper does).
                    let keys: Option<Vec<String>> = r
                        .configuration_keys
                        .filter(|k| !k.is_empty())
                        .map(|k| k.iter().map(|s| s.to_string()).collect());
                    let configs = entries
                        .into_iter()
                        .filter(|e| keys.as_ref().is_none_or(|k| k.contains(&e.name)))
                        .map(|e| {
                            encode_entry(
                                e,
                                version,
                                req.include_synonyms,
                                req.include_documentation,
                            )
                        })
                        .collect();
                    result.with_error_code(ec::NONE).with_configs(configs)
                }
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(some_str(&message)),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

use super::prelude::*;

/// DescribeConfigs in the API registry (`super::registry!`).
pub struct DescribeConfigs;

impl KafkaApi for DescribeConfigs {
    const KEY: ApiKey = ApiKey::DescribeConfigs;
    const VERSIONS: RangeInclusive<i16> = 1..=4;
    type Request = DescribeConfigsRequest;
    type Response = DescribeConfigsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        resp.results.iter().for_each(|r| f(r.error_code));
    }
}

fn encode_entry(
    e: Entry,
    version: i16,
    synonyms: bool,
    docs: bool,
) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(&e.name))
        .with_value(some_str(&e.value))
        .with_read_only(e.read_only())
        .with_config_source(e.source)
        .with_is_sensitive(false);
    if version >= 1 && synonyms {
        r = r.with_synonyms(
            e.synonyms
                .iter()
                .map(|(n, v, s)| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(n))
                        .with_value(some_str(v))
                        .with_source(*s)
                })
                .collect(),
        );
    }
    if version >= 3 {
        r = r.with_config_type(e.config_type as i8);
        if docs {
            r = r.with_documentation(Some(StrBytes::from_string(e.doc)));
        }
    }
    r
}

/// Every setting of topic `name` with its effective value and where it comes from.
pub fn topic_entries(broker: &Broker, name: &str) -> Result<Vec<Entry>, (i16, String)> {
    let Some(topic) = broker.topic(name) else {
        return Err((
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        ));
    };
    let (settings, overrides) = (&topic.settings, &topic.overrides);
    let resolve = |d: &crate::config::TopicDefaults| {
        crate::config::TopicSettings::resolve(d, &Default::default())
            .expect("broker defaults are valid")
    };
    let broker_defaults = resolve(&broker.config.topic_defaults);
    let builtin = resolve(&crate::config::TopicDefaults::default());
    Ok(TOPIC_SETTINGS
        .iter()
        .map(|s| {
            let value = settings.value_of(s.name).unwrap_or_default();
            let explicit = broker.config.explicit.contains(s.broker_synonym);
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(s.name) {
                synonyms.push((s.name.to_string(), v.clone(), SOURCE_TOPIC));
            }
            if explicit {
                synonyms.push((
                    s.broker_synonym.to_string(),
                    broker_defaults.value_of(s.name).unwrap_or_default(),
                    SOURCE_STATIC_BROKER,
                ));
            }
            synonyms.push((
                s.broker_synonym.to_string(),
                builtin.value_of(s.name).unwrap_or_default(),
                SOURCE_DEFAULT,
            ));
            let source = synonyms[0].2;
            Entry {
                name: s.name.to_string(),
                value,
                source,
                config_type: s.config_type,
                doc: s.doc.to_string(),
                synonyms,
            }
        })
        .collect())
}

fn broker_entries(broker: &Broker) -> Vec<Entry> {
    let c = &broker.config;
    let d = &c.topic_defaults;
    // Settings whose explicitness is tracked answer DEFAULT_CONFIG when not given.
    let entry = |name: &str, value: String, config_type: ConfigType, doc: &str| {
        let source = if crate::config::TOPIC_SETTINGS
            .iter()
            .any(|s| s.broker_synonym == name)
            && !c.explicit.contains(name)
        {
            SOURCE_DEFAULT
        } else {
            SOURCE_STATIC_BROKER
        };
        Entry {
            name: name.to_string(),
            value: value.clone(),
            source,
            config_type,
            doc: doc.to_string(),
            synonyms: vec![(name.to_string(), value, source)],
        }
    };
    let m = &c.log_manager;
    vec![
        entry(
            "log.retention.ms",
            d.retention_ms.to_string(),
            ConfigType::Long,
            "Default retention.ms.",
        ),
        entry(
            "log.retention.bytes",
            d.retention_bytes.to_string(),
            ConfigType::Long,
            "Default retention.bytes.",
        ),
        entry(
            "log.cleanup.policy",
            d.cleanup_policy.clone(),
            ConfigType::List,
            "Default cleanup.policy.",
        ),
        entry(
            "log.cleaner.delete.retention.ms",
            d.delete_retention_ms.to_string(),
            ConfigType::Long,
            "Default delete.retention.ms.",
        ),
        entry(
            "log.cleaner.min.compaction.lag.ms",
            d.min_compaction_lag_ms.to_string(),
            ConfigType::Long,
            "Default min.compaction.lag.ms.",
        ),
        entry(
            "log.cleaner.max.compaction.lag.ms",
            d.max_compaction_lag_ms.to_string(),
            ConfigType::Long,
            "Default max.compaction.lag.ms.",
        ),
        entry(
            "log.cleaner.min.cleanable.ratio",
            d.min_cleanable_dirty_ratio.to_string(),
            ConfigType::Double,
            "Default min.cleanable.dirty.ratio.",
        ),
        entry(
            "log.retention.check.interval.ms",
            m.retention_check_interval_ms.to_string(),
            ConfigType::Long,
            "How often segments past retention are deleted.",
        ),
        entry(
            "log.cleaner.enable",
            m.cleaner_enable.to_string(),
            ConfigType::String,
            "Run the log cleaner for compacted topics.",
        ),
        entry(
            "log.cleaner.backoff.ms",
            m.cleaner_backoff_ms.to_string(),
            ConfigType::Long,
            "The cleaner's sleep when nothing needs cleaning.",
        ),
        entry(
            "log.cleaner.dedupe.buffer.size",
            m.cleaner_dedupe_buffer_size.to_string(),
            ConfigType::Long,
            "Memory for the cleaner's key map.",
        ),
        entry(
            "transaction.max.timeout.ms",
            c.txn.max_timeout_ms.to_string(),
            ConfigType::Int,
            "The longest transaction.timeout.ms a producer may ask for.",
        ),
        entry(
            "transactional.id.expiration.ms",
            c.txn.id_expiration_ms.to_string(),
            ConfigType::Int,
            "A transactional id unused this long, with no transaction open, is forgotten.",
        ),
        entry(
            "node.id",
            c.node_id.to_string(),
            ConfigType::Int,
            "This broker's id.",
        ),
        entry(
            "log.dirs",
            c.data_dir.display().to_string(),
            ConfigType::String,
            "The data directory.",
        ),
        entry(
            "advertised.listeners",
            format!("PLAINTEXT://{}:{}", c.advertised_host, c.advertised_port),
            ConfigType::String,
            "Where clients are told to connect.",
        ),
        entry(
            "num.partitions",
            c.num_partitions.to_string(),
            ConfigType::Int,
            "Partitions of an auto-created topic.",
        ),
        entry(
            "auto.create.topics.enable",
            c.auto_create_topics_enable.to_string(),
            ConfigType::String,
            "Create unknown topics named in Metadata requests.",
        ),
        entry(
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            ConfigType::Int,
            "Largest request frame; larger frames close the connection.",
        ),
        entry(
            "log.segment.bytes",
            d.segment_bytes.to_string(),
            ConfigType::Int,
            "Default segment.bytes.",
        ),
        entry(
            "log.roll.ms",
            d.segment_ms.to_string(),
            ConfigType::Long,
            "Default segment.ms.",
        ),
        entry(
            "message.max.bytes",
            d.max_message_bytes.to_string(),
            ConfigType::Int,
            "Default max.message.bytes.",
        ),
        entry(
            "log.index.interval.bytes",
            d.index_interval_bytes.to_string(),
            ConfigType::Int,
            "Default index.interval.bytes.",
        ),
        entry(
            "log.flush.interval.messages",
            d.flush_messages.to_string(),
            ConfigType::Long,
            "Default flush.messages (1: fsync before acknowledging).",
        ),
        entry(
            "log.flush.interval.ms",
            d.flush_ms.to_string(),
            ConfigType::Long,
            "Default flush.ms.",
        ),
        entry(
            "log.message.timestamp.type",
            d.message_timestamp_type.clone(),
            ConfigType::String,
            "Default message.timestamp.type.",
        ),
        entry(
            "group.initial.rebalance.delay.ms",
            c.group.initial_rebalance_delay_ms.to_string(),
            ConfigType::Int,
            "How long the first rebalance of an empty group waits for more members.",
        ),
        entry(
            "group.min.session.timeout.ms",
            c.group.min_session_timeout_ms.to_string(),
            ConfigType::Int,
            "Smallest session timeout a member may ask for.",
        ),
        entry(
            "group.max.session.timeout.ms",
            c.group.max_session_timeout_ms.to_string(),
            ConfigType::Int,
            "Largest session timeout a member may ask for.",
        ),
        entry(
            "group.max.size",
            c.group.max_size.to_string(),
            ConfigType::Int,
            "Most members in one group.",
        ),
        entry(
            "offsets.retention.minutes",
            (c.offsets.retention_ms / 60_000).to_string(),
            ConfigType::Int,
            "Committed offsets of a group empty this long are deleted.",
        ),
        entry(
            "offsets.retention.check.interval.ms",
            c.offsets.retention_check_interval_ms.to_string(),
            ConfigType::Long,
            "How often expired offsets are looked for.",
        ),
        entry(
            "offsets.topic.num.partitions",
            c.offsets.topic_num_partitions.to_string(),
            ConfigType::Int,
            "Partitions of __consumer_offsets when it is created.",
        ),
        entry(
            "offset.metadata.max.bytes",
            c.offsets.metadata_max_bytes.to_string(),
            ConfigType::Int,
            "Largest metadata string of a committed offset.",
        ),
    ]
}
