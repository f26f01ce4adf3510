//! DescribeConfigs (key 32): the real effective values of topic and broker settings, with
//! their sources and (v1+, on request) synonyms: a topic setting's synonyms are its
//! override (TOPIC_CONFIG), the broker setting if it was given explicitly
//! (STATIC_BROKER_CONFIG) and weir's built-in default (DEFAULT_CONFIG), most specific first.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::prelude::*;
use super::{some_str, str_bytes};
use crate::config::{ConfigType, TOPIC_SETTINGS};
use crate::error_codes as ec;
use crate::settings::{self, BROKER_SETTINGS};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs source: set for this topic (DYNAMIC_TOPIC_CONFIG).
pub const SOURCE_TOPIC: i8 = 1;
/// DescribeConfigs source: given to the broker at start (STATIC_BROKER_CONFIG).
pub const SOURCE_STATIC_BROKER: i8 = 4;
/// DescribeConfigs source: the built-in default (DEFAULT_CONFIG).
pub const SOURCE_DEFAULT: i8 = 5;

/// One effective setting, as DescribeConfigs and the admin HTTP API report it.
pub struct Entry {
    /// The setting's Kafka name.
    pub name: String,
    /// Its effective value, as text.
    pub value: String,
    /// Kafka's ConfigSource: `SOURCE_TOPIC`, `SOURCE_STATIC_BROKER` or `SOURCE_DEFAULT`.
    pub source: i8,
    /// The value cannot be altered (a topic's own settings and defaults can, the broker's not).
    pub read_only: bool,
    /// Its type (DescribeConfigs v3+).
    pub config_type: ConfigType,
    /// Its documentation (DescribeConfigs v3+).
    pub doc: String,
    /// `(name, value, source)`, most specific first.
    pub synonyms: Vec<(String, String, i8)>,
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

pub(crate) fn handle(
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
        .with_read_only(e.read_only)
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
        // Kafka sends null, not "" (the codec's default), when documentation was not asked for.
        r = r.with_documentation(docs.then(|| StrBytes::from_string(e.doc)));
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
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(s.name) {
                synonyms.push((s.name.to_string(), v.clone(), SOURCE_TOPIC));
            }
            if let Some(broker_synonym) = s.broker_synonym {
                if broker.config.explicit.contains(broker_synonym) {
                    synonyms.push((
                        broker_synonym.to_string(),
                        broker_defaults.value_of(s.name).unwrap_or_default(),
                        SOURCE_STATIC_BROKER,
                    ));
                }
                synonyms.push((
                    broker_synonym.to_string(),
                    builtin.value_of(s.name).unwrap_or_default(),
                    SOURCE_DEFAULT,
                ));
            }
            // Kafka gives no broker default for a few (tiered storage, throttles): their
            // default is the topic's own.
            let source = synonyms.first().map_or(SOURCE_DEFAULT, |s| s.2);
            Entry {
                name: s.name.to_string(),
                value,
                source,
                read_only: source != SOURCE_TOPIC && source != SOURCE_DEFAULT,
                config_type: s.config_type,
                doc: s.doc.to_string(),
                synonyms,
            }
        })
        .collect())
}

/// Every broker setting DescribeConfigs reports (`settings::BROKER_SETTINGS`): one given at
/// start-up (flag, environment or file) is STATIC_BROKER_CONFIG with weir's built-in default as
/// its synonym; any other is DEFAULT_CONFIG.
pub fn broker_entries(broker: &Broker) -> Vec<Entry> {
    let config = &broker.config;
    let builtin = &settings::builtin().broker;
    BROKER_SETTINGS
        .iter()
        .filter(|s| s.described)
        .filter_map(|s| {
            let (name, get) = (s.name?, s.access.get?);
            let value = get(config);
            let default = (name.to_string(), get(builtin), SOURCE_DEFAULT);
            let synonyms = if config.explicit.contains(name) {
                vec![
                    (name.to_string(), value.clone(), SOURCE_STATIC_BROKER),
                    default,
                ]
            } else {
                vec![(name.to_string(), value.clone(), SOURCE_DEFAULT)]
            };
            Some(Entry {
                name: name.to_string(),
                value,
                source: synonyms[0].2,
                read_only: s.read_only,
                config_type: s.config_type,
                doc: s.doc.to_string(),
                synonyms,
            })
        })
        .collect()
}
