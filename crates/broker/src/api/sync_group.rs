//! SyncGroup (key 14): the leader hands in the assignment; every member gets its own part.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::prelude::*;
use super::{str_bytes, Reply};
use crate::error_codes as ec;
use crate::group::{SyncOutcome, SyncRequest};

pub(crate) fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: SyncGroupRequest,
) -> Reply<SyncGroupResponse> {
    let group_id = req.group_id.to_string();
    if group_id.is_empty() {
        return Reply::Now(response(version, SyncOutcome::error(ec::INVALID_GROUP_ID)));
    }
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let sync = SyncRequest {
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.map(|s| s.to_string()),
            generation: req.generation_id,
            protocol_type: req.protocol_type.map(|s| s.to_string()),
            protocol: req.protocol_name.map(|s| s.to_string()),
            assignments: req
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect(),
        };
        let out = broker.groups.sync(&group_id, sync).await;
        response(version, out)
    }))
}

fn response(version: i16, out: SyncOutcome) -> SyncGroupResponse {
    // The assignment is empty bytes on errors, never null (franz-go depends on it).
    let r = SyncGroupResponse::default()
        .with_error_code(out.error)
        .with_assignment(out.assignment);
    if version >= 5 {
        r.with_protocol_type(out.protocol_type.map(|t| str_bytes(&t)))
            .with_protocol_name(out.protocol.map(|p| str_bytes(&p)))
    } else {
        r
    }
}

/// SyncGroup in the API registry (`super::registry!`).
pub struct SyncGroup;

impl KafkaApi for SyncGroup {
    const KEY: ApiKey = ApiKey::SyncGroup;
    const VERSIONS: RangeInclusive<i16> = 0..=5;
    type Request = SyncGroupRequest;
    type Response = SyncGroupResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        handle(broker, meta.api_version, req)
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
    }
}
