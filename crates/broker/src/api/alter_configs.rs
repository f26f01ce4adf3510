//! AlterConfigs (key 33, v0-2): replace a topic's config overrides with the given set; the
//! change is live (see `Broker::alter_topic_config`). Broker settings are static in weir
//! (flags, environment, file): altering them is refused with INVALID_REQUEST and says so.
//! IncrementalAlterConfigs shares the resource handling below.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::prelude::*;
use super::{some_str, BoxFuture};
use crate::broker::{Broker, TopicError};
use crate::error_codes as ec;

/// Kafka's ConfigResource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's ConfigResource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// Check the resource is a topic (or say why not); returns its name.
pub fn topic_resource(resource_type: i8, name: &str) -> Result<&str, TopicError> {
    match resource_type {
        RESOURCE_TOPIC => Ok(name),
        RESOURCE_BROKER => Err(TopicError::new(
            ec::INVALID_REQUEST,
            "weir's broker settings are static: give them as flags, WEIR_ variables or in the config file",
        )),
        other => Err(TopicError::new(
            ec::INVALID_REQUEST,
            format!("resource type {other} has no configs to alter"),
        )),
    }
}

/// Refuse a resource naming one config twice, as Kafka does.
pub fn no_duplicates<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), TopicError> {
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(TopicError::new(
                ec::INVALID_REQUEST,
                format!("config '{n}' is given more than once"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn handle(
    broker: &Arc<Broker>,
    _version: i16,
    req: AlterConfigsRequest,
) -> BoxFuture<AlterConfigsResponse> {
    let broker = broker.clone();
    Box::pin(async move {
        let mut responses = Vec::with_capacity(req.resources.len());
        for r in req.resources {
            let outcome = async {
                let name = topic_resource(r.resource_type, r.resource_name.as_str())?;
                no_duplicates(r.configs.iter().map(|c| c.name.as_str()))?;
                let overrides: BTreeMap<String, String> = r
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value
                            .as_ref()
                            .map(|v| (c.name.to_string(), v.to_string()))
                    })
                    .collect();
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
        AlterConfigsResponse::default().with_responses(responses)
    })
}

/// AlterConfigs in the API registry (`super::registry!`).
pub struct AlterConfigs;

impl KafkaApi for AlterConfigs {
    const KEY: ApiKey = ApiKey::AlterConfigs;
    const VERSIONS: RangeInclusive<i16> = 0..=2;
    type Request = AlterConfigsRequest;
    type Response = AlterConfigsResponse;

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
