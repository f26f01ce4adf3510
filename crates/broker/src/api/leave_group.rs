//! LeaveGroup (key 13): one member (v0-2) or several, by member or instance id (v3+).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::prelude::*;
use super::str_bytes;
use crate::error_codes as ec;

pub(crate) async fn handle(
    broker: &Broker,
    version: i16,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    if req.group_id.is_empty() {
        return LeaveGroupResponse::default().with_error_code(ec::INVALID_GROUP_ID);
    }
    if version < 3 {
        let codes = broker
            .groups
            .leave(req.group_id.as_str(), &[(req.member_id.to_string(), None)])
            .await;
        return LeaveGroupResponse::default().with_error_code(codes[0]);
    }
    let members: Vec<(String, Option<String>)> = req
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|s| s.to_string()),
            )
        })
        .collect();
    let codes = broker.groups.leave(req.group_id.as_str(), &members).await;
    LeaveGroupResponse::default()
        .with_error_code(ec::NONE)
        .with_members(
            members
                .into_iter()
                .zip(codes)
                .map(|((id, instance), code)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(&id))
                        .with_group_instance_id(instance.map(|i| str_bytes(&i)))
                        .with_error_code(code)
                })
                .collect(),
        )
}

/// LeaveGroup in the API registry (`super::registry!`).
pub struct LeaveGroup;

impl KafkaApi for LeaveGroup {
    const KEY: ApiKey = ApiKey::LeaveGroup;
    const VERSIONS: RangeInclusive<i16> = 0..=5;
    type Request = LeaveGroupRequest;
    type Response = LeaveGroupResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req).await)
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
        resp.members.iter().for_each(|m| f(m.error_code));
    }
}
