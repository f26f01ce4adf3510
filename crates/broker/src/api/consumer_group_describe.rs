//! ConsumerGroupDescribe (key 69): state, epochs, assignor and members (subscriptions,
//! current and target assignments) of KIP-848 consumer groups. A classic group, or an
//! unknown one, answers GROUP_ID_NOT_FOUND, as Kafka does (clients then fall back to
//! DescribeGroups).

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use uuid::Uuid;

use super::prelude::*;
use super::str_bytes;
use crate::error_codes as ec;

/// "Not requested" in authorized_operations.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// ConsumerGroupDescribe v1's member type of a consumer-protocol member.
const MEMBER_TYPE_CONSUMER: i8 = 1;
/// ConsumerGroupDescribe v1's MemberType of a classic-protocol member of a consumer group.
const MEMBER_TYPE_CLASSIC: i8 = 0;

fn assignment(a: &[(Uuid, String, Vec<i32>)]) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(id, name, parts)| {
                TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partitions(parts.clone())
            })
            .collect(),
    )
}

pub(crate) fn handle(
    broker: &Broker,
    version: i16,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let d = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            if id.is_empty() {
                return d
                    .with_error_code(ec::INVALID_GROUP_ID)
                    .with_error_message(Some(str_bytes("GroupId can't be empty.")));
            }
            let summary = broker.groups.describe(id.as_str());
            let Some((g, c)) = summary.and_then(|g| g.consumer.clone().map(|c| (g, c))) else {
                return d
                    .with_error_code(ec::GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(str_bytes(&format!(
                        "Group {} is not a consumer group.",
                        id.as_str()
                    ))));
            };
            d.with_error_code(ec::NONE)
                .with_group_state(str_bytes(g.state))
                .with_group_epoch(c.group_epoch)
                .with_assignment_epoch(c.assignment_epoch)
                .with_assignor_name(str_bytes(c.assignor))
                .with_members(
                    c.members
                        .iter()
                        .map(|m| {
                            let member = Member::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_instance_id(m.instance_id.as_deref().map(str_bytes))
                                .with_rack_id(m.rack_id.as_deref().map(str_bytes))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed_topic_names
                                        .iter()
                                        .map(|t| TopicName(str_bytes(t)))
                                        .collect(),
                                )
                                .with_assignment(assignment(&m.assignment))
                                .with_target_assignment(assignment(&m.target_assignment));
                            if version >= 1 {
                                member.with_member_type(if m.classic {
                                    MEMBER_TYPE_CLASSIC
                                } else {
                                    MEMBER_TYPE_CONSUMER
                                })
                            } else {
                                member
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// ConsumerGroupDescribe in the API registry (`super::registry!`).
pub struct ConsumerGroupDescribe;

impl KafkaApi for ConsumerGroupDescribe {
    const KEY: ApiKey = ApiKey::ConsumerGroupDescribe;
    const VERSIONS: RangeInclusive<i16> = 0..=1;
    type Request = ConsumerGroupDescribeRequest;
    type Response = ConsumerGroupDescribeResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        for g in &resp.groups {
            f(g.error_code);
        }
    }
}
