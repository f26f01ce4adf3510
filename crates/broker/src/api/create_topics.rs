//! CreateTopics (key 19), with validate_only.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::prelude::*;
use super::{some_str, str_bytes};
use crate::broker::{Broker, TopicError};
use crate::config::{TopicSettings, TOPIC_SETTINGS};
use crate::error_codes as ec;

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::new();
    for t in req.topics {
        let name = t.name.as_str().to_string();
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        let outcome = create_one(broker, &t, req.validate_only).await;
        let result = match outcome {
            Ok((id, partitions, settings, overrides)) => {
                // Kafka answers a created topic with a null message, not "" (the codec's
                // default): aiokafka and others read any non-null message as an error.
                let mut r = result
                    .with_error_code(ec::NONE)
                    .with_error_message(None)
                    .with_topic_id(id);
                if version >= 5 {
                    r = r
                        .with_num_partitions(partitions)
                        .with_replication_factor(1)
                        .with_configs(Some(configs_of(&settings, &overrides)));
                }
                r
            }
            Err(e) => {
                tracing::debug!(topic = %name, code = e.code, message = %e.message, "create topic refused");
                let mut r = result
                    .with_error_code(e.code)
                    .with_error_message(some_str(&e.message));
                if version >= 5 {
                    r = r.with_num_partitions(-1).with_replication_factor(-1);
                }
                r
            }
        };
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

type Created = (uuid::Uuid, i32, TopicSettings, BTreeMap<String, String>);

async fn create_one(
    broker: &Arc<Broker>,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Result<Created, TopicError> {
    let mut overrides = BTreeMap::new();
    for c in &t.configs {
        match &c.value {
            Some(v) => {
                overrides.insert(c.name.to_string(), v.to_string());
            }
            None => {
                return Err(TopicError::new(
                    ec::INVALID_CONFIG,
                    format!("config '{}' has a null value", c.name.as_str()),
                ))
            }
        }
    }
    let (mut num_partitions, mut replication_factor) = (t.num_partitions, t.replication_factor);
    if !t.assignments.is_empty() {
        if num_partitions != -1 || replication_factor != -1 {
            return Err(TopicError::new(
                ec::INVALID_REQUEST,
                "give either partitions and replication factor, or assignments",
            ));
        }
        for (i, a) in t.assignments.iter().enumerate() {
            if a.partition_index != i as i32
                || a.broker_ids.len() != 1
                || a.broker_ids[0].0 != broker.config.node_id
            {
                return Err(TopicError::new(
                    ec::INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "assignment must list partitions 0..n in order, each on broker {} only",
                        broker.config.node_id
                    ),
                ));
            }
        }
        num_partitions = t.assignments.len() as i32;
        replication_factor = 1;
    }
    let name = t.name.as_str();
    if validate_only {
        let (partitions, settings) =
            broker.validate_new_topic(name, num_partitions, replication_factor, &overrides)?;
        return Ok((uuid::Uuid::nil(), partitions, settings, overrides));
    }
    let topic = broker
        .create_topic(name, num_partitions, replication_factor, overrides)
        .await?;
    Ok((
        topic.id,
        topic.partitions.len() as i32,
        topic.settings.clone(),
        topic.overrides.clone(),
    ))
}

fn configs_of(
    settings: &TopicSettings,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    TOPIC_SETTINGS
        .iter()
        .map(|s| {
            let source = if overrides.contains_key(s.name) {
                crate::api::describe_configs::SOURCE_TOPIC
            } else {
                crate::api::describe_configs::SOURCE_DEFAULT
            };
            CreatableTopicConfigs::default()
                .with_name(str_bytes(s.name))
                .with_value(settings.value_of(s.name).as_deref().map(str_bytes))
                .with_read_only(false)
                .with_config_source(source)
                .with_is_sensitive(false)
        })
        .collect()
}

/// CreateTopics in the API registry (`super::registry!`).
pub struct CreateTopics;

impl KafkaApi for CreateTopics {
    const KEY: ApiKey = ApiKey::CreateTopics;
    const VERSIONS: RangeInclusive<i16> = 2..=7;
    type Request = CreateTopicsRequest;
    type Response = CreateTopicsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req).await)
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        resp.topics.iter().for_each(|t| f(t.error_code));
    }
}
