//! DescribeCluster (key 60): this broker as the whole cluster, and as its controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::prelude::*;
use super::{some_str, str_bytes};
use crate::error_codes as ec;

/// Endpoint type 1 = brokers (the only kind weir has); 2 = controllers.
const ENDPOINT_BROKERS: i8 = 1;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

pub(crate) fn handle(
    broker: &Broker,
    version: i16,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if version >= 1 && req.endpoint_type != ENDPOINT_BROKERS {
        return DescribeClusterResponse::default()
            .with_error_code(UNSUPPORTED_ENDPOINT_TYPE)
            .with_error_message(some_str("only broker endpoints exist"))
            .with_cluster_id(str_bytes(&broker.cluster_id));
    }
    let node = BrokerId(broker.config.node_id);
    DescribeClusterResponse::default()
        .with_error_code(ec::NONE)
        .with_cluster_id(str_bytes(&broker.cluster_id))
        .with_controller_id(node)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(str_bytes(&broker.config.advertised_host))
            .with_port(broker.config.advertised_port as i32)])
}

/// DescribeCluster in the API registry (`super::registry!`).
pub struct DescribeCluster;

impl KafkaApi for DescribeCluster {
    const KEY: ApiKey = ApiKey::DescribeCluster;
    const VERSIONS: RangeInclusive<i16> = 0..=1;
    type Request = DescribeClusterRequest;
    type Response = DescribeClusterResponse;

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
