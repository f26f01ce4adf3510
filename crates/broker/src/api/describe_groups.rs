//! DescribeGroups (key 15): state, protocol and members (client ids, hosts, metadata and
//! assignments) of each group. An unknown group is reported as Dead, as Kafka does; so is a
//! consumer group of the KIP-848 protocol, with GROUP_ID_NOT_FOUND (Kafka 4's answer: such
//! a group is described by ConsumerGroupDescribe).

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::prelude::*;
use super::str_bytes;
use crate::error_codes as ec;

/// "Not requested" in authorized_operations.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub(crate) fn handle(
    broker: &Broker,
    version: i16,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let d = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            if id.is_empty() {
                return d.with_error_code(ec::INVALID_GROUP_ID);
            }
            let Some(g) = broker.groups.describe(id.as_str()) else {
                return d
                    .with_error_code(ec::NONE)
                    .with_group_state(str_bytes("Dead"));
            };
            if g.group_type != "classic" {
                return d
                    .with_error_code(ec::GROUP_ID_NOT_FOUND)
                    .with_group_state(str_bytes("Dead"));
            }
            d.with_error_code(ec::NONE)
                .with_group_state(str_bytes(g.state))
                .with_protocol_type(str_bytes(&g.protocol_type))
                .with_protocol_data(str_bytes(&g.protocol))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            let dm = DescribedGroupMember::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                dm.with_group_instance_id(
                                    m.group_instance_id.map(|i| str_bytes(&i)),
                                )
                            } else {
                                dm
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DescribeGroups in the API registry (`super::registry!`).
pub struct DescribeGroups;

impl KafkaApi for DescribeGroups {
    const KEY: ApiKey = ApiKey::DescribeGroups;
    const VERSIONS: RangeInclusive<i16> = 0..=5;
    type Request = DescribeGroupsRequest;
    type Response = DescribeGroupsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        resp.groups.iter().for_each(|g| f(g.error_code));
    }
}
