//! IncrementalAlterConfigs (key 44, v0-1): SET, DELETE, APPEND and SUBTRACT on a topic's
//! config overrides, applied live. APPEND and SUBTRACT work on list settings
//! (cleanup.policy), starting from the effective value.

use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{no_duplicates, topic_resource};
use super::{some_str, BoxFuture};
use crate::broker::{Broker, TopicError};
use crate::config::{ConfigType, TOPIC_SETTINGS};
use crate::error_codes as ec;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub fn handle(
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
                no_duplicates(r.configs.iter().map(|c| c.name.as_str()))?;
                let topic = broker.topic(name).ok_or_else(|| {
                    TopicError::new(
                        ec::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("topic '{name}' does not exist"),
                    )
                })?;
                let mut overrides = topic.overrides.clone();
                for c in &r.configs {
                    let key = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string());
                    match c.config_operation {
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
                                    format!("{key} is not a list: APPEND and SUBTRACT apply to list settings only"),
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
                                if c.config_operation == APPEND {
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
                    .alter_topic_config(name, overrides, req.validate_only)
                    .await
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
