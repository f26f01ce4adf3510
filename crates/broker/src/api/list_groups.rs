//! ListGroups (key 16): every group this coordinator knows, filtered by state (v4+) and
//! type (v5+: "classic" or "consumer").

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::prelude::*;
use super::str_bytes;
use crate::error_codes as ec;

pub(crate) fn handle(broker: &Broker, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|t| t.to_lowercase()).collect();
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g.group_id)))
                .with_protocol_type(str_bytes(&g.protocol_type));
            if version >= 4 {
                l = l.with_group_state(str_bytes(g.state));
            }
            if version >= 5 {
                l = l.with_group_type(str_bytes(g.group_type));
            }
            l
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(ec::NONE)
        .with_groups(groups)
}

/// ListGroups in the API registry (`super::registry!`).
pub struct ListGroups;

impl KafkaApi for ListGroups {
    const KEY: ApiKey = ApiKey::ListGroups;
    const VERSIONS: RangeInclusive<i16> = 0..=5;
    type Request = ListGroupsRequest;
    type Response = ListGroupsResponse;

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
