//! FindCoordinator (key 10): which broker coordinates a consumer group or a transactional id.
//!
//! On a single node every coordinator is this broker. The answer is complete for what it is
//! asked (where to send group and transaction requests); whether those requests are served is
//! up to the APIs advertised in ApiVersions. librdkafka also reads the presence of
//! FindCoordinator v0 as "the broker understands LZ4", so without it lz4 batches are never sent.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::prelude::*;
use super::{some_str, str_bytes};
use crate::error_codes as ec;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Whether this node coordinates `key`, or the error that says why there is no coordinator.
fn locate(key_type: i8, key: &StrBytes) -> Result<(), (i16, &'static str)> {
    match key_type {
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION if key.is_empty() => {
            Err((ec::INVALID_REQUEST, "the coordinator key must not be empty"))
        }
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => Ok(()),
        _ => Err((ec::INVALID_REQUEST, "unknown coordinator key type")),
    }
}

pub(crate) fn handle(
    broker: &Broker,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let node = BrokerId(broker.config.node_id);
    let host = str_bytes(&broker.config.advertised_host);
    let port = broker.config.advertised_port as i32;
    // v0 has no key type: it only ever asked for groups.
    let key_type = if version >= 1 {
        req.key_type
    } else {
        KEY_TYPE_GROUP
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match locate(key_type, key) {
                    Ok(()) => c
                        .with_error_code(ec::NONE)
                        .with_node_id(node)
                        .with_host(host.clone())
                        .with_port(port),
                    Err((code, msg)) => c
                        .with_error_code(code)
                        .with_error_message(some_str(msg))
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let resp = FindCoordinatorResponse::default();
    match locate(key_type, &req.key) {
        Ok(()) => resp
            .with_error_code(ec::NONE)
            .with_node_id(node)
            .with_host(host)
            .with_port(port),
        Err((code, msg)) => {
            let resp = resp
                .with_error_code(code)
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            if version >= 1 {
                resp.with_error_message(some_str(msg))
            } else {
                resp
            }
        }
    }
}

/// FindCoordinator in the API registry (`super::registry!`).
pub struct FindCoordinator;

impl KafkaApi for FindCoordinator {
    const KEY: ApiKey = ApiKey::FindCoordinator;
    const VERSIONS: RangeInclusive<i16> = 0..=4;
    type Request = FindCoordinatorRequest;
    type Response = FindCoordinatorResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        // v0-3 answer at the top level, v4 per key.
        if resp.coordinators.is_empty() {
            f(resp.error_code);
        }
        resp.coordinators.iter().for_each(|c| f(c.error_code));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_walk_skips_the_top_level_code_that_v4_does_not_send() {
        let r = FindCoordinatorResponse::default()
            .with_coordinators(vec![Coordinator::default().with_error_code(15)]);
        let mut v = Vec::new();
        FindCoordinator::each_error(&r, &mut |c| v.push(c));
        assert_eq!(v, vec![15]);
    }
}
