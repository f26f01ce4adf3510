//! IncrementalAlterConfigs (key 44, v0-1): SET, DELETE, APPEND and SUBTRACT on a topic's
//! config overrides, applied live. APPEND and SUBTRACT work on list settings
//! (cleanup.policy), starting from the effective value.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{no_duplicates, topic_resource};
use super::prelude::*;
use super::{some_str, BoxFuture};
use crate::broker::{Broker, TopicError};
use crate::config::{ConfigType, TOPIC_SETTINGS};
use crate::error_codes as ec;

/// IncrementalAlterConfigs operation: set the value.
pub const SET: i8 = 0;
/// IncrementalAlterConfigs operation: remove the override (back to the default).
pub const DELETE: i8 = 1;
/// IncrementalAlterConfigs operation: add to a list setting.
pub const APPEND: i8 = 2;
/// IncrementalAlterConfigs operation: remove from a list setting.
pub const SUBTRACT: i8 = 3;

/// One config operation on a topic (Kafka's AlterableConfig).
#[derive(Debug, Clone)]
pub struct ConfigOp {
    /// The setting's Kafka name.
    pub name: String,
    /// `SET`, `DELETE`, `APPEND` or `SUBTRACT`.
    pub operation: i8,
    /// The operation's value (None for DELETE).
    pub value: Option<String>,
}

/// Apply `ops` to topic `name`'s overrides and then the whole new set through
/// `Broker::alter_topic_config`: the one path for IncrementalAlterConfigs and the admin
/// HTTP API.
pub async fn alter_topic_incrementally(
    broker: &Broker,
    name: &str,
    ops: &[ConfigOp],
    validate_only: bool,
) -> Result<(), TopicError> {
    no_duplicates(ops.iter().map(|c| c.name.as_str()))?;
    let topic = broker.topic(name).ok_or_else(|| {
        TopicError::new(
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let mut overrides = topic.overrides.clone();
    for c in ops {
        let key = c.name.clone();
        let value = c.value.clone();
        match c.operation {
            SET => {
                let Some(v) = value else {
                    return Err(TopicError::new(
                        ec::INVALID_CONFIG,
                        format!("SET {key} needs a value"),
                    ));
                };
                overrides.insert(key, v);
            }
            DELETE => {
                overrides.remove(&key);
            }
            APPEND | SUBTRACT => {
                let is_list = TOPIC_SETTINGS
                    .iter()
                    .any(|s| s.name == key && s.config_type == ConfigType::List);
                if !is_list {
                    return Err(TopicError::new(
                        ec::INVALID_CONFIG,
                        format!(
                            "{key} is not a list: APPEND and SUBTRACT apply to list settings only"
                        ),
                    ));
                }
                let current = topic.settings.value_of(&key).unwrap_or_default();
                let mut items: Vec<String> = current
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in value.unwrap_or_default().split(',').map(str::trim) {
                    if item.is_empty() {
                        continue;
                    }
                    if c.operation == APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                if items.is_empty() {
                    return Err(TopicError::new(
                        ec::INVALID_CONFIG,
                        format!("{key} would be empty"),
                    ));
                }
                overrides.insert(key, items.join(","));
            }
            op => {
                return Err(TopicError::new(
                    ec::INVALID_REQUEST,
                    format!("unknown config operation {op} for {key}"),
                ))
            }
        }
    }
    broker
        .alter_topic_config(name, overrides, validate_only)
        .await
}

pub(crate) fn handle(
    broker: &Arc<Broker>,
    _version: i16,
    req: IncrementalAlterConfigsRequest,
) -> BoxFuture<IncrementalAlterConfigsResponse> {
    let broker = broker.clone();
    Box::pin(async move {
        let mut responses = Vec::with_capacity(req.resources.len());
        for r in req.resources {
            let outcome = async {
                let name = topic_resource(r.resource_type, r.resource_name.as_str())?;
                let ops: Vec<ConfigOp> = r
                    .configs
                    .iter()
                    .map(|c| ConfigOp {
                        name: c.name.to_string(),
                        operation: c.config_operation,
                        value: c.value.as_ref().map(|v| v.to_string()),
                    })
                    .collect();
                alter_topic_incrementally(&broker, name, &ops, req.validate_only).await
            }
            .await;
            let (code, message) = match outcome {
                Ok(()) => (ec::NONE, None),
                Err(e) => (e.code, some_str(&e.message)),
            };
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_error_message(message)
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name),
            );
        }
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    })
}

/// IncrementalAlterConfigs in the API registry (`super::registry!`).
pub struct IncrementalAlterConfigs;

impl KafkaApi for IncrementalAlterConfigs {
    const KEY: ApiKey = ApiKey::IncrementalAlterConfigs;
    const VERSIONS: RangeInclusive<i16> = 0..=1;
    type Request = IncrementalAlterConfigsRequest;
    type Response = IncrementalAlterConfigsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Later(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        resp.responses.iter().for_each(|r| f(r.error_code));
    }
}
