//! CreatePartitions (key 37): grow a topic's partition count (never shrink).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::prelude::*;
use super::some_str;
use crate::error_codes as ec;

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    _version: i16,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::new();
    for t in req.topics {
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let node = broker.config.node_id;
        let bad_assignment = t.assignments.as_ref().is_some_and(|a| {
            a.iter()
                .any(|x| x.broker_ids.len() != 1 || x.broker_ids[0].0 != node)
        });
        let outcome = if bad_assignment {
            Err((
                ec::INVALID_REPLICA_ASSIGNMENT,
                format!("every new partition must be on broker {node} only"),
            ))
        } else {
            broker
                .create_partitions(t.name.as_str(), t.count, req.validate_only)
                .await
                .map_err(|e| (e.code, e.message))
        };
        results.push(match outcome {
            Ok(()) => r.with_error_code(ec::NONE),
            Err((code, message)) => r
                .with_error_code(code)
                .with_error_message(some_str(&message)),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// CreatePartitions in the API registry (`super::registry!`).
pub struct CreatePartitions;

impl KafkaApi for CreatePartitions {
    const KEY: ApiKey = ApiKey::CreatePartitions;
    const VERSIONS: RangeInclusive<i16> = 0..=3;
    type Request = CreatePartitionsRequest;
    type Response = CreatePartitionsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req).await)
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        resp.results.iter().for_each(|t| f(t.error_code));
    }
}
