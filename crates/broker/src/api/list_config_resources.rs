//! ListConfigResources (key 74; v0 was ListClientMetricsResources, KIP-714; v1 lists every
//! kind of config resource, KIP-1142).
//!
//! As Kafka's `KafkaApis.handleListConfigResources`: v0 lists the client-metrics resources;
//! v1 lists the resources of the types asked, an empty list meaning every type Kafka lists
//! (topic, broker, broker logger, client metrics, group), in Kafka's order: groups, client
//! metrics, broker loggers, brokers, topics. A type outside that set fails the whole request
//! with UNSUPPORTED_VERSION and no resources.
//!
//! What weir has: every topic (internal ones included) and this broker. It has no client
//! metrics subscriptions, no group configs and no broker-logger configs (DescribeConfigs
//! knows topics and brokers only), so those types list nothing.

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::prelude::*;
use super::str_bytes;
use crate::error_codes as ec;

/// ConfigResource.Type ids.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

/// The types v1 lists (Kafka's `ListConfigResourcesRequest.supportedResourceTypes`).
const LISTED_TYPES: [i8; 5] = [TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP];

pub(crate) fn handle(
    broker: &Broker,
    version: i16,
    req: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    let resp = ListConfigResourcesResponse::default().with_error_code(ec::NONE);
    if version == 0 {
        // ListClientMetricsResources: weir has no client-metrics subscriptions.
        return resp.with_config_resources(client_metrics_resources());
    }
    let types: Vec<i8> = if req.resource_types.is_empty() {
        LISTED_TYPES.to_vec()
    } else {
        req.resource_types
    };
    if let Some(t) = types.iter().find(|t| !LISTED_TYPES.contains(t)) {
        tracing::debug!(
            resource_type = t,
            "ListConfigResources of an unsupported type"
        );
        return resp.with_error_code(ec::UNSUPPORTED_VERSION);
    }
    // Kafka's order: groups, client metrics, broker loggers, brokers, topics. No group has
    // configs of its own (weir has no group configs), and weir's log levels are not a config
    // resource (DescribeConfigs does not know type 8): those two list nothing.
    let mut resources = Vec::new();
    if types.contains(&CLIENT_METRICS) {
        resources.extend(client_metrics_resources());
    }
    if types.contains(&BROKER) {
        resources.push(resource(&broker.config.node_id.to_string(), BROKER));
    }
    if types.contains(&TOPIC) {
        for t in broker.topics() {
            resources.push(resource(&t.name, TOPIC));
        }
    }
    resp.with_config_resources(resources)
}

/// The client-metrics subscriptions (KIP-714): weir has none.
fn client_metrics_resources() -> Vec<ConfigResource> {
    Vec::new()
}

fn resource(name: &str, resource_type: i8) -> ConfigResource {
    ConfigResource::default()
        .with_resource_name(str_bytes(name))
        .with_resource_type(resource_type)
}

/// ListConfigResources in the API registry (`super::registry!`).
pub struct ListConfigResources;

impl KafkaApi for ListConfigResources {
    const KEY: ApiKey = ApiKey::ListConfigResources;
    const VERSIONS: RangeInclusive<i16> = 0..=1;
    type Request = ListConfigResourcesRequest;
    type Response = ListConfigResourcesResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
    }
}
