//! OffsetDelete (key 47): drop a group's committed offsets for partitions it no longer
//! consumes (GROUP_SUBSCRIBED_TO_TOPIC while a member still subscribes to the topic).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::prelude::*;
use super::Reply;
use crate::error_codes as ec;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    _version: i16,
    req: OffsetDeleteRequest,
) -> Reply<OffsetDeleteResponse> {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        if req.group_id.is_empty() {
            return OffsetDeleteResponse::default().with_error_code(ec::INVALID_GROUP_ID);
        }
        let partitions: Vec<(String, i32)> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.name.to_string(), p.partition_index))
            })
            .collect();
        let codes = match broker
            .groups
            .offset_delete(req.group_id.as_str(), &partitions)
            .await
        {
            Ok(codes) => codes,
            Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
        };
        let mut codes = codes.into_iter();
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let code = match broker.partition(t.name.as_str(), p.partition_index) {
                            None => {
                                codes.next();
                                ec::UNKNOWN_TOPIC_OR_PARTITION
                            }
                            Some(_) => codes.next().unwrap_or(ec::UNKNOWN_SERVER_ERROR),
                        };
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetDeleteResponse::default()
            .with_error_code(ec::NONE)
            .with_topics(topics)
    }))
}

/// OffsetDelete in the API registry (`super::registry!`).
pub struct OffsetDelete;

impl KafkaApi for OffsetDelete {
    const KEY: ApiKey = ApiKey::OffsetDelete;
    const VERSIONS: RangeInclusive<i16> = 0..=0;
    type Request = OffsetDeleteRequest;
    type Response = OffsetDeleteResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        handle(broker, meta.api_version, req)
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
        for t in &resp.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}
