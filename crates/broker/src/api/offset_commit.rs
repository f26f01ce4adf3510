//! OffsetCommit (key 8): a consumer records how far it has processed; answered once the
//! commit is fsync'd in `__consumer_offsets`. For a consumer group of the KIP-848 protocol
//! (v9+) the generation field carries the member epoch: a stale one is STALE_MEMBER_EPOCH.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::prelude::*;
use super::Reply;
use crate::error_codes as ec;
use crate::group::OffsetCommitEntry;

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: OffsetCommitRequest,
) -> Reply<OffsetCommitResponse> {
    let pending = {
        let mut entries = Vec::new();
        for t in &req.topics {
            for p in &t.partitions {
                entries.push(OffsetCommitEntry {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                });
            }
        }
        if req.group_id.is_empty() {
            let codes = vec![ec::INVALID_GROUP_ID; entries.len()];
            Box::pin(std::future::ready(codes)) as crate::api::BoxFuture<Vec<i16>>
        } else {
            broker
                .groups
                .offset_commit(
                    req.group_id.as_str(),
                    req.generation_id_or_member_epoch,
                    req.member_id.as_str(),
                    if version >= 7 {
                        req.group_instance_id.as_deref()
                    } else {
                        None
                    },
                    version,
                    entries,
                )
                .await
        }
    };
    // Appended already; only the wait for the fsync is deferred.
    Reply::Later(Box::pin(async move {
        let mut codes = pending.await.into_iter();
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(codes.next().unwrap_or(ec::UNKNOWN_SERVER_ERROR))
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }))
}

/// OffsetCommit in the API registry (`super::registry!`).
pub struct OffsetCommit;

impl KafkaApi for OffsetCommit {
    const KEY: ApiKey = ApiKey::OffsetCommit;
    const VERSIONS: RangeInclusive<i16> = 2..=9;
    type Request = OffsetCommitRequest;
    type Response = OffsetCommitResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        handle(broker, meta.api_version, req).await
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        for t in &resp.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}
