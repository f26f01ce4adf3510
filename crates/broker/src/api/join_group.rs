//! JoinGroup (key 11): join or rejoin a group; answered when the rebalance completes.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use weir_protocol::RequestMeta;

use super::prelude::*;
use super::{str_bytes, Reply};
use crate::error_codes as ec;
use crate::group::{join_outcome, JoinOutcome, JoinRequest};

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    meta: &RequestMeta,
    req: JoinGroupRequest,
) -> Reply<JoinGroupResponse> {
    let version = meta.api_version;
    let group_id = req.group_id.to_string();
    if group_id.is_empty() {
        return Reply::Now(response(
            version,
            JoinOutcome::error(ec::INVALID_GROUP_ID, &req.member_id),
        ));
    }
    let member_id = req.member_id.to_string();
    let join = JoinRequest {
        member_id: member_id.clone(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: meta.client_id.clone().unwrap_or_default(),
        client_host: meta.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let action = broker.groups.join(&group_id, join).await;
    Reply::Later(Box::pin(async move {
        response(version, join_outcome(action, &member_id).await)
    }))
}

fn response(version: i16, out: JoinOutcome) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default()
        .with_error_code(out.error)
        .with_generation_id(out.generation)
        .with_leader(str_bytes(&out.leader))
        .with_member_id(str_bytes(&out.member_id))
        .with_members(
            out.members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    let m = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&id))
                        .with_metadata(metadata);
                    if version >= 5 {
                        m.with_group_instance_id(instance.map(|i| str_bytes(&i)))
                    } else {
                        m
                    }
                })
                .collect(),
        );
    // v0-6 carry the protocol name as a non-null string; v7+ may say null.
    let protocol = out.protocol.unwrap_or_default();
    r = r.with_protocol_name(if version >= 7 && protocol.is_empty() {
        None
    } else {
        Some(str_bytes(&protocol))
    });
    if version >= 7 {
        r = r.with_protocol_type(out.protocol_type.map(|t| str_bytes(&t)));
    }
    if version >= 9 {
        r = r.with_skip_assignment(out.skip_assignment);
    }
    r
}

/// JoinGroup in the API registry (`super::registry!`).
pub struct JoinGroup;

impl KafkaApi for JoinGroup {
    const KEY: ApiKey = ApiKey::JoinGroup;
    const VERSIONS: RangeInclusive<i16> = 0..=9;
    type Request = JoinGroupRequest;
    type Response = JoinGroupResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        handle(broker, meta, req).await
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
    }
}
