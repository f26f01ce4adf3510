//! Heartbeat (key 12): a member is alive; the answer says whether to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::prelude::*;
use crate::error_codes as ec;

pub(crate) fn handle(broker: &Broker, _version: i16, req: HeartbeatRequest) -> HeartbeatResponse {
    let code = if req.group_id.is_empty() {
        ec::INVALID_GROUP_ID
    } else {
        broker.groups.heartbeat(
            req.group_id.as_str(),
            req.member_id.as_str(),
            req.group_instance_id.as_deref(),
            req.generation_id,
        )
    };
    HeartbeatResponse::default().with_error_code(code)
}

/// Heartbeat in the API registry (`super::registry!`).
pub struct Heartbeat;

impl KafkaApi for Heartbeat {
    const KEY: ApiKey = ApiKey::Heartbeat;
    const VERSIONS: RangeInclusive<i16> = 0..=4;
    type Request = HeartbeatRequest;
    type Response = HeartbeatResponse;

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
