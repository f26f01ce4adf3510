//! DeleteGroups (key 42): remove empty groups and their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::prelude::*;
use super::Reply;
use crate::error_codes as ec;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    _version: i16,
    req: DeleteGroupsRequest,
) -> Reply<DeleteGroupsResponse> {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let mut results = Vec::new();
        for id in req.groups_names {
            let code = if id.is_empty() {
                ec::INVALID_GROUP_ID
            } else {
                broker.groups.delete_group(id.as_str()).await
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(code),
            );
        }
        DeleteGroupsResponse::default().with_results(results)
    }))
}

/// DeleteGroups in the API registry (`super::registry!`).
pub struct DeleteGroups;

impl KafkaApi for DeleteGroups {
    const KEY: ApiKey = ApiKey::DeleteGroups;
    const VERSIONS: RangeInclusive<i16> = 0..=2;
    type Request = DeleteGroupsRequest;
    type Response = DeleteGroupsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        handle(broker, meta.api_version, req)
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        resp.results.iter().for_each(|g| f(g.error_code));
    }
}
