//! AddPartitionsToTxn (key 24, v0-3): the partitions a transactional producer is about to
//! write, added to its open transaction (which this starts). Every partition gets the same
//! answer: if one is unknown, that one is UNKNOWN_TOPIC_OR_PARTITION and the others
//! OPERATION_NOT_ATTEMPTED, as in Kafka. (v4+, the brokers' batched form, is not served.)

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::prelude::*;
use super::BoxFuture;
use crate::error_codes as ec;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> BoxFuture<AddPartitionsToTxnResponse> {
    let broker = broker.clone();
    Box::pin(async move {
        let topics = req.v3_and_below_topics;
        let wanted: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |&p| (t.name.to_string(), p)))
            .collect();
        let unknown: Vec<bool> = wanted
            .iter()
            .map(|(t, p)| crate::broker::is_internal_topic(t) || broker.partition(t, *p).is_none())
            .collect();
        let codes: Vec<i16> = if unknown.iter().any(|&u| u) {
            unknown
                .iter()
                .map(|&u| {
                    if u {
                        ec::UNKNOWN_TOPIC_OR_PARTITION
                    } else {
                        ec::OPERATION_NOT_ATTEMPTED
                    }
                })
                .collect()
        } else {
            let code = match broker
                .txns
                .add_partitions(
                    req.v3_and_below_transactional_id.as_str(),
                    req.v3_and_below_producer_id.0,
                    req.v3_and_below_producer_epoch,
                    &wanted,
                    version >= 2,
                )
                .await
            {
                Ok(()) => ec::NONE,
                Err(e) => e.code(),
            };
            vec![code; wanted.len()]
        };
        let mut codes = codes.into_iter();
        let results = topics
            .into_iter()
            .map(|t| {
                AddPartitionsToTxnTopicResult::default()
                    .with_results_by_partition(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_partition_error_code(codes.next().unwrap_or(ec::NONE))
                            })
                            .collect(),
                    )
                    .with_name(t.name)
            })
            .collect();
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
    })
}

/// AddPartitionsToTxn in the API registry (`super::registry!`).
pub struct AddPartitionsToTxn;

impl KafkaApi for AddPartitionsToTxn {
    const KEY: ApiKey = ApiKey::AddPartitionsToTxn;
    const VERSIONS: RangeInclusive<i16> = 0..=3;
    type Request = AddPartitionsToTxnRequest;
    type Response = AddPartitionsToTxnResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Later(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
        for t in &resp.results_by_topic_v3_and_below {
            t.results_by_partition
                .iter()
                .for_each(|p| f(p.partition_error_code));
        }
    }
}
