//! TxnOffsetCommit (key 28, v0-3): offsets committed as part of a transaction
//! (`send_offsets_to_transaction`), applied to the group only when the transaction commits.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::prelude::*;
use super::BoxFuture;
use crate::group::OffsetCommitEntry;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: TxnOffsetCommitRequest,
) -> BoxFuture<TxnOffsetCommitResponse> {
    let broker = broker.clone();
    Box::pin(async move {
        let entries: Vec<OffsetCommitEntry> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| OffsetCommitEntry {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 2 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                })
            })
            .collect();
        let (generation, member, instance) = if version >= 3 {
            (
                req.generation_id,
                req.member_id.to_string(),
                req.group_instance_id.as_ref().map(|i| i.to_string()),
            )
        } else {
            (-1, String::new(), None)
        };
        let transactional_id = req.transactional_id.as_str();
        let (producer_id, epoch) = (req.producer_id.0, req.producer_epoch);
        let in_txn = |offsets_partition: i32| {
            broker
                .txns
                .verify_offsets(transactional_id, producer_id, epoch, offsets_partition)
                .map_err(|e| e.code())
        };
        let codes = broker
            .groups
            .txn_offset_commit(
                &in_txn,
                req.group_id.as_str(),
                req.producer_id.0,
                req.producer_epoch,
                generation,
                &member,
                instance.as_deref(),
                entries,
            )
            .await;
        let mut codes = codes.into_iter();
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(codes.next().unwrap_or_default())
                            })
                            .collect(),
                    )
                    .with_name(t.name)
            })
            .collect();
        TxnOffsetCommitResponse::default().with_topics(topics)
    })
}

/// TxnOffsetCommit in the API registry (`super::registry!`).
pub struct TxnOffsetCommit;

impl KafkaApi for TxnOffsetCommit {
    const KEY: ApiKey = ApiKey::TxnOffsetCommit;
    const VERSIONS: RangeInclusive<i16> = 0..=3;
    type Request = TxnOffsetCommitRequest;
    type Response = TxnOffsetCommitResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Later(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        for t in &resp.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}
