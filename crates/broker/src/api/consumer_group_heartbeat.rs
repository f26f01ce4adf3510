//! ConsumerGroupHeartbeat (key 68): a member of a KIP-848 consumer group joins (epoch 0),
//! heartbeats (its epoch, with what changed since its last heartbeat) or leaves (-1, or -2
//! for a static member's temporary leave). The answer carries its epoch and, when it
//! changed, its assignment; it is sent once the group's records are fsync'd.
//!
//! v1 (KIP-848 as released in Kafka 4.0): the client makes its member id, and may subscribe
//! by regular expression (matched against whole topic names, re-evaluated as topics come
//! and go). v0 members may leave the member id empty; the coordinator then makes one.

use std::collections::BTreeSet;

use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::prelude::*;
use super::{str_bytes, Reply};
use crate::error_codes as ec;
use crate::group::consumer::{
    compile_regex, Heartbeat, HeartbeatAnswer, ASSIGNORS, LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
use crate::group::records::Assignment;

/// Kafka's request checks (GroupMetadataManager.throwIfConsumerGroupHeartbeatRequestIsInvalid).
fn invalid(version: i16, req: &ConsumerGroupHeartbeatRequest) -> Option<(i16, String)> {
    let bad = |m: &str| Some((ec::INVALID_REQUEST, m.to_string()));
    if req.group_id.is_empty() {
        return Some((ec::INVALID_GROUP_ID, "GroupId can't be empty.".into()));
    }
    if req.instance_id.as_ref().is_some_and(|i| i.is_empty()) {
        return bad("InstanceId can't be empty.");
    }
    if req.rack_id.as_ref().is_some_and(|i| i.is_empty()) {
        return bad("RackId can't be empty.");
    }
    if let Some(re) = &req.subscribed_topic_regex {
        if !re.is_empty() && compile_regex(re).is_err() {
            return Some((
                ec::INVALID_REGULAR_EXPRESSION,
                format!("SubscribedTopicRegex {re} is not a valid regular expression."),
            ));
        }
    }
    let epoch = req.member_epoch;
    if version >= 1 && req.member_id.is_empty() {
        return bad("MemberId can't be empty.");
    }
    if epoch > 0 || epoch == LEAVE_GROUP_MEMBER_EPOCH {
        if req.member_id.is_empty() {
            return bad("MemberId can't be empty.");
        }
    } else if epoch == 0 {
        if req.rebalance_timeout_ms == -1 {
            return bad("RebalanceTimeoutMs must be provided in first request.");
        }
        if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
            return bad("TopicPartitions must be empty when (re-)joining.");
        }
        let no_names = req
            .subscribed_topic_names
            .as_ref()
            .is_none_or(|t| t.is_empty());
        if no_names
            && req
                .subscribed_topic_regex
                .as_ref()
                .is_none_or(|r| r.is_empty())
        {
            return bad(
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
            );
        }
    } else if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        if req.member_id.is_empty() {
            return bad("MemberId can't be empty.");
        }
        if req.instance_id.is_none() {
            return bad("InstanceId can't be null.");
        }
    } else {
        return bad("MemberEpoch is invalid.");
    }
    if let Some(a) = &req.server_assignor {
        if !ASSIGNORS.contains(&a.as_str()) {
            return Some((
                ec::UNSUPPORTED_ASSIGNOR,
                format!(
                    "ServerAssignor {a} is not supported. Supported assignors: {}.",
                    ASSIGNORS.join(", ")
                ),
            ));
        }
    }
    None
}

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    meta: &RequestMeta,
    req: ConsumerGroupHeartbeatRequest,
) -> Reply<ConsumerGroupHeartbeatResponse> {
    if let Some((code, message)) = invalid(meta.api_version, &req) {
        return Reply::Now(
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&message)))
                .with_member_epoch(-1),
        );
    }
    let owned = req.topic_partitions.map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id)
                .or_default()
                .extend(tp.partitions.iter().copied());
        }
        a.retain(|_, p: &mut BTreeSet<i32>| !p.is_empty());
        a
    });
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: meta.client_id.clone().unwrap_or_default(),
        client_host: meta.client_host.clone(),
    };
    let pending = broker
        .groups
        .consumer_heartbeat(req.group_id.as_str(), hb)
        .await;
    Reply::Later(Box::pin(async move { response(pending.await) }))
}

fn response(a: HeartbeatAnswer) -> ConsumerGroupHeartbeatResponse {
    let r = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(a.error)
        .with_error_message(a.message.map(|m| str_bytes(&m)))
        .with_member_epoch(a.member_epoch)
        .with_heartbeat_interval_ms(a.heartbeat_interval_ms);
    if a.error != ec::NONE {
        return r;
    }
    r.with_member_id(Some(str_bytes(&a.member_id)))
        .with_assignment(a.assignment.map(|asg| {
            WireAssignment::default().with_topic_partitions(
                asg.into_iter()
                    .map(|(id, parts)| {
                        TopicPartitions::default()
                            .with_topic_id(id)
                            .with_partitions(parts.into_iter().collect())
                    })
                    .collect(),
            )
        }))
}

/// ConsumerGroupHeartbeat in the API registry (`super::registry!`).
pub struct ConsumerGroupHeartbeat;

impl KafkaApi for ConsumerGroupHeartbeat {
    const KEY: ApiKey = ApiKey::ConsumerGroupHeartbeat;
    const VERSIONS: RangeInclusive<i16> = 0..=1;
    type Request = ConsumerGroupHeartbeatRequest;
    type Response = ConsumerGroupHeartbeatResponse;

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
